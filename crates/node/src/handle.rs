//! [`NodeHandle`]: how the node's servers (RESP, HTTP) talk to the running [`NodeProcess`].
//!
//! Every strong request runs under a Raft client session so a retried request is applied at most
//! once. A session allows one outstanding request (its sequence numbers must rise), so the handle
//! keeps a pool of sessions: a request borrows one, and returns it when answered. Pipelining
//! clients therefore use as many sessions as they have requests in flight.
//!
//! [`NodeProcess`]: crate::process::NodeProcess

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use net::runtime::{ClientHandle, RuntimeError};
use net::transport::LinkControl;
use raft::{ClientError, ClientOperation, ReadConsistency};
use sim::NodeId;
use sim::adapters::raft::RaftResponse;
use thiserror::Error;

use crate::available::{ApError, ApOperation, ApOutput};
use crate::machine::{MachineCommand, MachineOutput, MachineQuery};
use crate::process::{NodeRequest, NodeResponse, NodeStatus};
use crate::strong::{StrongCommand, StrongError, StrongOutput, StrongQuery};

/// Longest a caller waits for the node before answering with an error.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request to the node failed. Display texts are Redis-style error lines (without `-`).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The strong keyspace cannot serve: this node cannot reach a majority.
    #[error("NOQUORUM this node is in a minority partition; last known leader {}", leader_name(*.leader))]
    NoQuorum {
        /// The last leader this node heard from.
        leader: Option<NodeId>,
    },
    /// The write may or may not have been applied (the cluster lost its leader meanwhile).
    #[error(
        "UNCERTAIN the outcome is unknown ({reason}); the write may or may not have been applied"
    )]
    Uncertain {
        /// What happened.
        reason: String,
    },
    /// The cluster refused the request and did not apply it.
    #[error("ERR {0}")]
    Refused(String),
    /// A strong command failed identically on every replica (wrong type, not an integer…).
    #[error("{0}")]
    Strong(StrongError),
    /// An available command failed on this node.
    #[error("{0}")]
    Available(ApError),
    /// The node did not answer in time, or is stopping.
    #[error("TRYAGAIN {0}")]
    Unavailable(String),
}

/// `n2`, or `unknown`.
pub fn leader_name(leader: Option<NodeId>) -> String {
    leader.map_or_else(|| "unknown".to_string(), |node| format!("n{node}"))
}

/// One Raft client session: a random id (so sessions of restarted nodes never collide) and the
/// last sequence number used.
#[derive(Debug)]
struct Session {
    client: u64,
    sequence: u64,
}

/// A cloneable handle on a running node.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    inner: std::sync::Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    node: NodeId,
    client: ClientHandle<NodeRequest, NodeResponse>,
    links: LinkControl,
    sessions: Mutex<Vec<Session>>,
    /// Request ids for calls that need no session (available ops, status).
    next_request: AtomicU64,
    /// Client id under which session-less calls are made.
    anonymous: u64,
}

fn random_u64() -> u64 {
    rand::random::<u64>()
}

impl NodeHandle {
    /// A handle on node `node` reached through `client`, whose links are cut by `links`.
    pub fn new(
        node: NodeId,
        client: ClientHandle<NodeRequest, NodeResponse>,
        links: LinkControl,
    ) -> Self {
        Self {
            inner: std::sync::Arc::new(Inner {
                node,
                client,
                links,
                sessions: Mutex::new(Vec::new()),
                next_request: AtomicU64::new(1),
                anonymous: random_u64(),
            }),
        }
    }

    /// This node's id.
    pub fn node(&self) -> NodeId {
        self.inner.node
    }

    /// Cuts and heals this node's links to its peers.
    pub fn links(&self) -> &LinkControl {
        &self.inner.links
    }

    async fn call(
        &self,
        client: u64,
        request_id: u64,
        request: NodeRequest,
    ) -> Result<NodeResponse, NodeError> {
        let call = self.inner.client.call(client, request_id, request);
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(RuntimeError::Stopped)) => {
                Err(NodeError::Unavailable("node is stopping".into()))
            }
            Ok(Err(error)) => Err(NodeError::Unavailable(error.to_string())),
            Err(_) => Err(NodeError::Uncertain {
                reason: "the node did not answer in time".into(),
            }),
        }
    }

    async fn call_anonymous(&self, request: NodeRequest) -> Result<NodeResponse, NodeError> {
        let request_id = self.inner.next_request.fetch_add(1, Ordering::Relaxed);
        self.call(self.inner.anonymous, request_id, request).await
    }

    /// This node's view of the cluster.
    pub async fn status(&self) -> Result<NodeStatus, NodeError> {
        match self.call_anonymous(NodeRequest::Status).await? {
            NodeResponse::Status(status) => Ok(*status),
            other => Err(NodeError::Unavailable(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }

    /// Queues `request` for the node and returns once it is queued: requests submitted one
    /// after another reach the node in that order. A strong request borrows a session, returned
    /// when its answer is collected by [`Submitted::wait`].
    pub async fn submit(&self, request: NodeRequest) -> Result<Submitted, NodeError> {
        let (client, request_id, session) = match &request {
            NodeRequest::Strong(_) => {
                let mut session = self
                    .inner
                    .sessions
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .pop()
                    .unwrap_or_else(|| Session {
                        client: random_u64(),
                        sequence: 0,
                    });
                session.sequence += 1;
                (session.client, session.sequence, Some(session))
            }
            _ => {
                let request_id = self.inner.next_request.fetch_add(1, Ordering::Relaxed);
                (self.inner.anonymous, request_id, None)
            }
        };
        let answer = match self.inner.client.submit(client, request_id, request).await {
            Ok(answer) => answer,
            Err(error) => {
                self.return_session(session);
                return Err(NodeError::Unavailable(error.to_string()));
            }
        };
        Ok(Submitted {
            handle: self.clone(),
            session,
            answer,
        })
    }

    fn return_session(&self, session: Option<Session>) {
        if let Some(session) = session {
            self.inner
                .sessions
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(session);
        }
    }

    /// Runs a raw Raft operation through the leader under a fresh-numbered session request.
    pub async fn strong_operation(&self, operation: ClientOperation) -> Result<Vec<u8>, NodeError> {
        let response = self
            .submit(NodeRequest::Strong(operation))
            .await?
            .wait()
            .await?;
        strong_result(response)
    }

    /// Applies a write to the strong keyspace (linearizable, through the leader).
    pub async fn strong_write(&self, command: StrongCommand) -> Result<StrongOutput, NodeError> {
        let bytes = MachineCommand::Strong(command).encode();
        let output = self.strong_operation(ClientOperation::Write(bytes)).await?;
        strong_output(&output)
    }

    /// Reads the strong keyspace: linearizable through the leader, or this replica's possibly
    /// stale state when `stale` (the answer then says so).
    pub async fn strong_read(
        &self,
        query: StrongQuery,
        stale: bool,
    ) -> Result<(StrongOutput, bool), NodeError> {
        let operation = strong_read_operation(query, stale);
        if stale {
            let request_id = self.inner.next_request.fetch_add(1, Ordering::Relaxed);
            let answer = self
                .call(
                    self.inner.anonymous,
                    request_id,
                    NodeRequest::StrongLocal(operation),
                )
                .await?;
            return match answer {
                NodeResponse::Strong(RaftResponse::Reply(Ok(response))) => {
                    Ok((strong_output(&response.output)?, response.stale))
                }
                NodeResponse::Strong(RaftResponse::Reply(Err(error))) => Err(strong_error(error)),
                other => Err(NodeError::Unavailable(format!(
                    "unexpected answer {other:?}"
                ))),
            };
        }
        let output = self.strong_operation(operation).await?;
        Ok((strong_output(&output)?, false))
    }

    /// Runs one operation on this node's replica of the available keyspace.
    pub async fn available(&self, operation: ApOperation) -> Result<ApOutput, NodeError> {
        match self
            .call_anonymous(NodeRequest::Available(operation))
            .await?
        {
            NodeResponse::Available(Ok(output)) => Ok(output),
            NodeResponse::Available(Err(error)) => Err(NodeError::Available(error)),
            other => Err(NodeError::Unavailable(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }
}

/// A request queued at the node, its answer still to come.
#[derive(Debug)]
pub struct Submitted {
    handle: NodeHandle,
    session: Option<Session>,
    answer: net::runtime::Answer<NodeResponse>,
}

impl Submitted {
    /// Waits for the node's answer (at most [`CALL_TIMEOUT`]).
    pub async fn wait(self) -> Result<NodeResponse, NodeError> {
        let answer = match tokio::time::timeout(CALL_TIMEOUT, self.answer).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(NodeError::Unavailable(error.to_string())),
            Err(_) => Err(NodeError::Uncertain {
                reason: "the node did not answer in time".into(),
            }),
        };
        // A session whose request may still be in flight is retired, never reused.
        if answer.is_ok() {
            self.handle.return_session(self.session);
        }
        answer
    }
}

/// The output bytes of a strong request's answer, or why it failed.
pub fn strong_result(response: NodeResponse) -> Result<Vec<u8>, NodeError> {
    match response {
        NodeResponse::Strong(RaftResponse::Reply(Ok(response))) => Ok(response.output),
        NodeResponse::Strong(RaftResponse::Reply(Err(error))) => Err(strong_error(error)),
        NodeResponse::Strong(RaftResponse::GaveUp { definite, reason }) => {
            Err(gave_up(definite, reason))
        }
        NodeResponse::Refused { leader } => Err(NodeError::NoQuorum { leader }),
        other => Err(NodeError::Unavailable(format!(
            "unexpected answer {other:?}"
        ))),
    }
}

/// Decodes a strong request's output bytes.
pub fn strong_output(bytes: &[u8]) -> Result<StrongOutput, NodeError> {
    match MachineOutput::decode(bytes) {
        MachineOutput::Strong(StrongOutput::Error(error)) => Err(NodeError::Strong(error)),
        MachineOutput::Strong(output) => Ok(output),
        #[allow(unreachable_patterns)]
        other => Err(NodeError::Unavailable(format!(
            "unexpected output {other:?}"
        ))),
    }
}

fn strong_error(error: ClientError) -> NodeError {
    match error {
        ClientError::NotLeader { leader_hint, .. } => NodeError::NoQuorum {
            leader: leader_hint,
        },
        error if !error.is_definite() => NodeError::Uncertain {
            reason: error.to_string(),
        },
        error => NodeError::Refused(error.to_string()),
    }
}

fn gave_up(definite: bool, reason: String) -> NodeError {
    if definite {
        NodeError::Refused(format!("no leader could be reached: {reason}"))
    } else {
        NodeError::Uncertain { reason }
    }
}

/// The Raft read of `query` in the strong keyspace: linearizable, or from the replica's possibly
/// stale state when `stale`.
pub(crate) fn strong_read_operation(query: StrongQuery, stale: bool) -> ClientOperation {
    let consistency = if stale {
        ReadConsistency::Stale
    } else {
        ReadConsistency::Linearizable
    };
    ClientOperation::Read {
        query: MachineQuery::Strong(query).encode(),
        consistency,
    }
}

//! The unsafe register: primary-backup with a timeout-based failure detector. Every node believes
//! the lowest-numbered node it has heard from recently is primary; the primary applies operations
//! and replicates asynchronously. In a partition each side elects its own primary and keeps
//! accepting writes (split brain), so histories under partitions are not linearizable. It exists
//! to show that the checker catches it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{RegisterResponse, apply_register, register_outcome};
use crate::process::{ClientId, Context, Input, NodeId, Process, RequestId};
use crate::workload::{Outcome, RegisterOperation, RegisterService};

/// Messages between nodes of the primary-backup register.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrimaryBackupMessage {
    /// "I am alive."
    Heartbeat,
    /// The primary's new value for a key.
    Replicate {
        /// Register key.
        key: String,
        /// New value.
        value: i64,
    },
    /// A client request relayed to the node believed primary.
    Forward {
        /// The client.
        client: ClientId,
        /// Its request id.
        request_id: RequestId,
        /// The operation.
        operation: RegisterOperation,
    },
    /// The primary's answer, relayed back.
    Answer {
        /// The client.
        client: ClientId,
        /// Its request id.
        request_id: RequestId,
        /// The answer.
        response: RegisterResponse,
    },
}

type Ctx<'a> = Context<'a, PrimaryBackupMessage, RegisterResponse>;

/// A node of the primary-backup register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrimaryBackupRegister {
    node: NodeId,
    nodes: u64,
    values: BTreeMap<String, i64>,
    last_heard_ns: Vec<u64>,
    heartbeat_ns: u64,
    suspect_ns: u64,
}

impl PrimaryBackupRegister {
    /// Node `node` of `nodes`; heartbeats every 100 ms, a peer silent for 500 ms is presumed dead.
    /// State is volatile: a restarted node comes back empty.
    pub fn new(node: NodeId, nodes: u64) -> Self {
        Self {
            node,
            nodes,
            values: BTreeMap::new(),
            last_heard_ns: vec![0; nodes as usize],
            heartbeat_ns: 100_000_000,
            suspect_ns: 500_000_000,
        }
    }

    /// Who this node believes is primary at local time `now_ns`.
    pub fn primary(&self, now_ns: u64) -> NodeId {
        (0..self.nodes)
            .find(|&peer| {
                peer == self.node
                    || now_ns.saturating_sub(self.last_heard_ns[peer as usize]) < self.suspect_ns
            })
            .unwrap_or(self.node)
    }

    fn execute(
        &mut self,
        operation: &RegisterOperation,
        context: &mut Ctx<'_>,
    ) -> RegisterResponse {
        let (response, changed) = apply_register(&mut self.values, operation);
        if changed {
            let key = match operation {
                RegisterOperation::Read { key }
                | RegisterOperation::Write { key, .. }
                | RegisterOperation::Cas { key, .. } => key,
            };
            if let Some(&value) = self.values.get(key) {
                for peer in (0..self.nodes).filter(|&peer| peer != self.node) {
                    let replicate = PrimaryBackupMessage::Replicate {
                        key: key.clone(),
                        value,
                    };
                    context.send(peer, replicate);
                }
            }
        }
        response
    }

    fn on_message(
        &mut self,
        now_ns: u64,
        from: NodeId,
        message: PrimaryBackupMessage,
        context: &mut Ctx<'_>,
    ) {
        if let Some(heard) = self.last_heard_ns.get_mut(from as usize) {
            *heard = now_ns;
        }
        match message {
            PrimaryBackupMessage::Heartbeat => {}
            PrimaryBackupMessage::Replicate { key, value } => {
                self.values.insert(key, value);
            }
            PrimaryBackupMessage::Forward {
                client,
                request_id,
                operation,
            } => {
                let response = if self.primary(now_ns) == self.node {
                    self.execute(&operation, context)
                } else {
                    RegisterResponse::Refused("not primary".into())
                };
                let answer = PrimaryBackupMessage::Answer {
                    client,
                    request_id,
                    response,
                };
                context.send(from, answer);
            }
            PrimaryBackupMessage::Answer {
                client,
                request_id,
                response,
            } => context.reply(client, request_id, response),
        }
    }
}

impl Process for PrimaryBackupRegister {
    type Message = PrimaryBackupMessage;
    type Request = RegisterOperation;
    type Response = RegisterResponse;

    fn handle(
        &mut self,
        now_ns: u64,
        input: Input<PrimaryBackupMessage, RegisterOperation>,
        context: &mut Ctx<'_>,
    ) {
        match input {
            Input::Start => {
                // Presume everyone alive at boot so nodes do not all start as primary.
                self.last_heard_ns
                    .iter_mut()
                    .for_each(|heard| *heard = now_ns);
                context.set_timer(self.heartbeat_ns, 0);
            }
            Input::Timer { .. } => {
                for peer in (0..self.nodes).filter(|&peer| peer != self.node) {
                    context.send(peer, PrimaryBackupMessage::Heartbeat);
                }
                context.set_timer(self.heartbeat_ns, 0);
            }
            Input::Message { from, message } => self.on_message(now_ns, from, message, context),
            Input::Request {
                client,
                request_id,
                request,
            } => {
                let primary = self.primary(now_ns);
                if primary == self.node {
                    let response = self.execute(&request, context);
                    context.reply(client, request_id, response);
                } else {
                    let forward = PrimaryBackupMessage::Forward {
                        client,
                        request_id,
                        operation: request,
                    };
                    context.send(primary, forward);
                }
            }
            Input::Persisted { .. } => {}
        }
    }
}

impl RegisterService for PrimaryBackupRegister {
    fn request(operation: &RegisterOperation) -> RegisterOperation {
        operation.clone()
    }

    fn outcome(operation: &RegisterOperation, response: &RegisterResponse) -> Outcome {
        register_outcome(operation, response)
    }
}

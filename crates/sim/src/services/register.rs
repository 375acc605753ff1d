//! The correct register: one server (node 0) holds every key; other nodes forward to it. The server
//! runs operations one at a time and answers a write only once it is durable, so the service is
//! linearizable under any network fault and survives crashes — it is just unavailable when cut off.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::{RegisterResponse, apply_register, register_outcome};
use crate::process::{ClientId, Context, Input, NodeId, Process, RequestId, Storage};
use crate::workload::{Outcome, RegisterOperation, RegisterService};

/// Storage key of the server's state.
const STATE_KEY: &str = "register/state";

/// Most operations the server queues before refusing new ones.
const QUEUE_LIMIT: usize = 1_024;

/// Messages between nodes of the single-copy register.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegisterMessage {
    /// A client request relayed to the server by the node the client talks to.
    Forward {
        /// The client.
        client: ClientId,
        /// Its request id.
        request_id: RequestId,
        /// The operation.
        operation: RegisterOperation,
    },
    /// The server's answer, relayed back.
    Answer {
        /// The client.
        client: ClientId,
        /// Its request id.
        request_id: RequestId,
        /// The answer.
        response: RegisterResponse,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct DurableState {
    values: BTreeMap<String, i64>,
    /// Highest request id applied per client: a duplicated or late request is not applied twice.
    applied: BTreeMap<ClientId, RequestId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Pending {
    origin: NodeId,
    client: ClientId,
    request_id: RequestId,
    operation: RegisterOperation,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Writing {
    state: DurableState,
    token: u64,
    response: RegisterResponse,
}

/// A node of the single-copy register (the server if its id is the server id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SingleCopyRegister {
    node: NodeId,
    server: NodeId,
    state: DurableState,
    queue: VecDeque<Pending>,
    /// The write in flight, if any; the head of the queue waits for it.
    writing: Option<Writing>,
    next_token: u64,
}

impl SingleCopyRegister {
    /// Node `node`; `server` holds the data. `storage` is the node's durable storage (empty on
    /// first boot); unreadable state is treated as empty.
    pub fn new(node: NodeId, server: NodeId, storage: &Storage) -> Self {
        let state = storage
            .get(STATE_KEY)
            .and_then(|bytes| serde_json::from_slice(bytes).ok())
            .unwrap_or_default();
        Self {
            node,
            server,
            state,
            queue: VecDeque::new(),
            writing: None,
            next_token: 1,
        }
    }

    /// The current value of `key` at this node.
    pub fn value(&self, key: &str) -> Option<i64> {
        self.state.values.get(key).copied()
    }

    fn accept(
        &mut self,
        pending: Pending,
        context: &mut Context<'_, RegisterMessage, RegisterResponse>,
    ) {
        if self.queue.len() >= QUEUE_LIMIT {
            let refusal = RegisterResponse::Refused("server busy".into());
            self.answer(
                pending.origin,
                pending.client,
                pending.request_id,
                refusal,
                context,
            );
            return;
        }
        self.queue.push_back(pending);
        self.drain(context);
    }

    /// Runs queued operations until one needs a durable write (or the queue is empty).
    fn drain(&mut self, context: &mut Context<'_, RegisterMessage, RegisterResponse>) {
        while self.writing.is_none() {
            let Some(head) = self.queue.front().cloned() else {
                return;
            };
            let seen = self.state.applied.get(&head.client).copied().unwrap_or(0);
            if head.request_id <= seen && !matches!(head.operation, RegisterOperation::Read { .. })
            {
                // Already applied (a duplicate): the original's answer went out before.
                self.queue.pop_front();
                continue;
            }
            let mut next = self.state.clone();
            let (response, _) = apply_register(&mut next.values, &head.operation);
            if matches!(head.operation, RegisterOperation::Read { .. }) {
                self.queue.pop_front();
                self.answer(head.origin, head.client, head.request_id, response, context);
                continue;
            }
            // Even a failed compare-and-set is recorded as applied (durably), so a duplicate
            // arriving later cannot succeed after the client was told it failed.
            next.applied.insert(head.client, head.request_id);
            let token = self.next_token;
            self.next_token += 1;
            let bytes = serde_json::to_vec(&next).unwrap_or_default();
            context.persist(STATE_KEY, Some(bytes), token);
            self.writing = Some(Writing {
                state: next,
                token,
                response,
            });
        }
    }

    fn persisted(
        &mut self,
        token: u64,
        context: &mut Context<'_, RegisterMessage, RegisterResponse>,
    ) {
        match &self.writing {
            Some(writing) if writing.token == token => {}
            _ => return,
        }
        let Some(writing) = self.writing.take() else {
            return;
        };
        self.state = writing.state;
        if let Some(head) = self.queue.pop_front() {
            let response = writing.response;
            self.answer(head.origin, head.client, head.request_id, response, context);
        }
        self.drain(context);
    }

    fn answer(
        &self,
        origin: NodeId,
        client: ClientId,
        request_id: RequestId,
        response: RegisterResponse,
        context: &mut Context<'_, RegisterMessage, RegisterResponse>,
    ) {
        if origin == self.node {
            context.reply(client, request_id, response);
        } else {
            let answer = RegisterMessage::Answer {
                client,
                request_id,
                response,
            };
            context.send(origin, answer);
        }
    }
}

impl Process for SingleCopyRegister {
    type Message = RegisterMessage;
    type Request = RegisterOperation;
    type Response = RegisterResponse;

    fn handle(
        &mut self,
        _now_ns: u64,
        input: Input<RegisterMessage, RegisterOperation>,
        context: &mut Context<'_, RegisterMessage, RegisterResponse>,
    ) {
        match input {
            Input::Request {
                client,
                request_id,
                request,
            } => {
                if self.node == self.server {
                    let pending = Pending {
                        origin: self.node,
                        client,
                        request_id,
                        operation: request,
                    };
                    self.accept(pending, context);
                } else {
                    let forward = RegisterMessage::Forward {
                        client,
                        request_id,
                        operation: request,
                    };
                    context.send(self.server, forward);
                }
            }
            Input::Message { from, message } => match message {
                RegisterMessage::Forward {
                    client,
                    request_id,
                    operation,
                } if self.node == self.server => {
                    let pending = Pending {
                        origin: from,
                        client,
                        request_id,
                        operation,
                    };
                    self.accept(pending, context);
                }
                RegisterMessage::Answer {
                    client,
                    request_id,
                    response,
                } => context.reply(client, request_id, response),
                RegisterMessage::Forward { .. } => {}
            },
            Input::Persisted { token } => self.persisted(token, context),
            Input::Start | Input::Timer { .. } => {}
        }
    }
}

impl RegisterService for SingleCopyRegister {
    fn request(operation: &RegisterOperation) -> RegisterOperation {
        operation.clone()
    }

    fn outcome(operation: &RegisterOperation, response: &RegisterResponse) -> Outcome {
        register_outcome(operation, response)
    }
}

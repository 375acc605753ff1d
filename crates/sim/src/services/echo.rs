//! Echo: every message is bounced straight back, forever — the cheapest possible protocol, used to
//! measure the simulator itself.

use crate::process::{Context, Input, NodeId, Process};

/// A node that starts `window` messages towards its neighbour and bounces everything it receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Echo {
    node: NodeId,
    nodes: u64,
    window: u64,
}

impl Echo {
    /// Node `node` of `nodes`, keeping `window` messages in flight.
    pub fn new(node: NodeId, nodes: u64, window: u64) -> Self {
        Self {
            node,
            nodes: nodes.max(1),
            window,
        }
    }
}

impl Process for Echo {
    type Message = u64;
    type Request = ();
    type Response = ();

    fn handle(&mut self, _now_ns: u64, input: Input<u64, ()>, context: &mut Context<'_, u64, ()>) {
        match input {
            Input::Start => {
                let neighbour = (self.node + 1) % self.nodes;
                for sequence in 0..self.window {
                    context.send(neighbour, sequence);
                }
            }
            Input::Message { from, message } => context.send(from, message + 1),
            Input::Request { .. } | Input::Timer { .. } | Input::Persisted { .. } => {}
        }
    }
}

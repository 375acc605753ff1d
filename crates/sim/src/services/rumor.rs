//! Rumor spreading (push gossip): an infected node tells `fanout` random peers every period, for a
//! bounded number of rounds. Used to exercise the simulator at 10,000 nodes.

use rand::RngExt;

use crate::process::{Context, Input, NodeId, Process};

/// A node in a push-gossip epidemic started by node 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rumor {
    node: NodeId,
    nodes: u64,
    fanout: u32,
    period_ns: u64,
    rounds_left: u32,
    infected: bool,
}

impl Rumor {
    /// Node `node` of `nodes`; once infected it pushes to `fanout` peers each `period_ns`, `rounds`
    /// times.
    pub fn new(node: NodeId, nodes: u64, fanout: u32, period_ns: u64, rounds: u32) -> Self {
        Self {
            node,
            nodes: nodes.max(1),
            fanout,
            period_ns,
            rounds_left: rounds,
            infected: false,
        }
    }

    /// Whether the rumor reached this node.
    pub fn infected(&self) -> bool {
        self.infected
    }

    fn infect(&mut self, context: &mut Context<'_, (), ()>) {
        if !self.infected {
            self.infected = true;
            context.set_timer(self.period_ns, 0);
        }
    }
}

impl Process for Rumor {
    type Message = ();
    type Request = ();
    type Response = ();

    fn handle(&mut self, _now_ns: u64, input: Input<(), ()>, context: &mut Context<'_, (), ()>) {
        match input {
            Input::Start if self.node == 0 => self.infect(context),
            Input::Message { .. } => self.infect(context),
            Input::Timer { .. } if self.rounds_left > 0 => {
                self.rounds_left -= 1;
                for _ in 0..self.fanout {
                    let peer = context.rng().random_range(0..self.nodes);
                    if peer != self.node {
                        context.send(peer, ());
                    }
                }
                context.set_timer(self.period_ns, 0);
            }
            _ => {}
        }
    }
}

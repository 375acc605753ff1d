//! Byzantine wrappers: [`Byzantine`] runs an honest [`Process`] and corrupts what it does — stays
//! silent, replays old messages, or equivocates (tells different peers different things) — so
//! Byzantine-fault-tolerant protocols can be tested against nodes that lie.

use rand::RngExt;

use crate::SimRng;
use crate::process::{Context, Effect, Input, NodeId, Process};

/// Most messages a replaying node remembers (oldest forgotten first).
const REMEMBERED_MAX: usize = 64;

/// How a Byzantine node misbehaves.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Behaviour<M> {
    /// Follows the protocol.
    Honest,
    /// Receives and updates its state but sends and replies nothing (a mute node).
    Silent,
    /// Follows the protocol, and after each input, with `probability`, also re-sends a message it
    /// received or sent earlier to a random node (stale votes, old proposals).
    Replay {
        /// Chance of one replay per input.
        probability: f64,
    },
    /// Sends the honest message to even-numbered peers and `forge(message, rng)` to odd-numbered
    /// ones: two halves of the cluster hear different stories.
    Equivocate {
        /// Builds the lie from the honest message.
        forge: fn(&M, &mut SimRng) -> M,
    },
}

/// An honest process wrapped by a [`Behaviour`]; switch behaviour at any time with
/// [`Byzantine::set_behaviour`] (e.g. through `Simulation::node_mut`).
#[derive(Clone, Debug)]
pub struct Byzantine<P: Process> {
    inner: P,
    behaviour: Behaviour<P::Message>,
    nodes: u64,
    remembered: Vec<P::Message>,
    scratch: Vec<Effect<P::Message, P::Response>>,
}

impl<P: Process> Byzantine<P> {
    /// Wraps `inner`, one of `nodes` nodes, misbehaving as `behaviour`.
    pub fn new(inner: P, nodes: u64, behaviour: Behaviour<P::Message>) -> Self {
        Self {
            inner,
            behaviour,
            nodes,
            remembered: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// The wrapped honest process.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// Changes how the node misbehaves from now on.
    pub fn set_behaviour(&mut self, behaviour: Behaviour<P::Message>) {
        self.behaviour = behaviour;
    }

    fn remember(&mut self, message: &P::Message) {
        if !matches!(self.behaviour, Behaviour::Replay { .. }) {
            return;
        }
        if self.remembered.len() >= REMEMBERED_MAX {
            self.remembered.remove(0);
        }
        self.remembered.push(message.clone());
    }
}

impl<P: Process> Process for Byzantine<P> {
    type Message = P::Message;
    type Request = P::Request;
    type Response = P::Response;

    fn handle(
        &mut self,
        now_ns: u64,
        input: Input<P::Message, P::Request>,
        context: &mut Context<'_, P::Message, P::Response>,
    ) {
        if let Input::Message { message, .. } = &input {
            self.remember(message);
        }
        let node = context.node();
        let tracing = context.tracing();
        let mut scratch = std::mem::take(&mut self.scratch);
        {
            let mut inner = Context::new(node, tracing, context.rng(), &mut scratch);
            self.inner.handle(now_ns, input, &mut inner);
        }
        for effect in scratch.drain(..) {
            match (&self.behaviour, effect) {
                (Behaviour::Silent, Effect::Send { .. } | Effect::Reply { .. }) => {}
                (Behaviour::Equivocate { forge }, Effect::Send { to, message }) if to % 2 == 1 => {
                    let lie = forge(&message, context.rng());
                    context.send(to, lie);
                }
                (_, Effect::Send { to, message }) => {
                    self.remember(&message);
                    context.send(to, message);
                }
                (_, effect) => context.push(effect),
            }
        }
        self.scratch = scratch;
        if let Behaviour::Replay { probability } = self.behaviour
            && !self.remembered.is_empty()
            && context.rng().random_bool(probability.clamp(0.0, 1.0))
        {
            let index = context.rng().random_range(0..self.remembered.len());
            let to: NodeId = context.rng().random_range(0..self.nodes.max(1));
            let stale = self.remembered[index].clone();
            context.send(to, stale);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::Echo;
    use crate::{Config, Simulation};

    fn run(behaviour: Behaviour<u64>, duration_ns: u64) -> Simulation<Byzantine<Echo>> {
        let mut simulation = Simulation::new(Config::new(3, 4), move |node, _| {
            let honest = Echo::new(node, 4, 1);
            let role = if node == 1 {
                behaviour.clone()
            } else {
                Behaviour::Honest
            };
            Byzantine::new(honest, 4, role)
        });
        simulation.run_until(duration_ns);
        simulation
    }

    #[test]
    fn silent_node_swallows_the_ring() {
        let honest = run(Behaviour::Honest, 100_000_000)
            .stats()
            .messages_delivered;
        let silent = run(Behaviour::Silent, 100_000_000)
            .stats()
            .messages_delivered;
        // Four echo chains in the ring; node 1 bounces nothing and starts nothing, so the chains
        // 0 ↔ 1 and 1 ↔ 2 die and only 2 ↔ 3 and 3 ↔ 0 keep going.
        assert!(
            silent > 0 && silent * 5 < honest * 3,
            "{silent} vs {honest}"
        );
    }

    #[test]
    fn replaying_node_sends_more_than_it_should() {
        // Echo bounces every replayed message too, so replays multiply: keep the run short.
        let honest = run(Behaviour::Honest, 10_000_000).stats().messages_sent;
        let replay = Behaviour::Replay { probability: 1.0 };
        let replaying = run(replay, 10_000_000).stats().messages_sent;
        assert!(replaying > honest, "{replaying} vs {honest}");
    }

    #[test]
    fn equivocating_node_forges_messages_to_odd_peers() {
        fn forge(message: &u64, _rng: &mut SimRng) -> u64 {
            message + 1_000_000
        }
        let mut config = Config::new(3, 4);
        config.trace = true;
        let mut simulation = Simulation::new(config, |node, _| {
            let role = if node == 2 {
                Behaviour::Equivocate { forge }
            } else {
                Behaviour::Honest
            };
            Byzantine::new(Echo::new(node, 4, 1), 4, role)
        });
        simulation.run_until(50_000_000);
        // In the ring node 2 talks only to its odd neighbours 1 and 3: everything it sends is a lie,
        // while honest echo values stay small (one increment per hop).
        let trace = simulation.trace().expect("tracing is on");
        let from_two: Vec<u64> = trace
            .events
            .iter()
            .filter(|event| event.kind == crate::trace::TraceKind::Deliver)
            .filter(|event| event.peer == Some(2))
            .filter_map(|event| event.detail.parse().ok())
            .collect();
        assert!(!from_two.is_empty());
        assert!(
            from_two.iter().all(|&value| value >= 1_000_000),
            "{from_two:?}"
        );
    }
}

//! Five replicas in the deterministic simulator, partitioned [0,1,2] | [3,4], edit on both
//! sides; each side converges on its own, the sides differ, and after the partition heals
//! every replica holds the same text. Method: replicas gossip their version every 50 ms and
//! answer with an encoded update of what the asker lacks.

use sim::network::Partition;
use sim::{Config, Context, Fault, Input, NodeId, Process, Simulation};
use text::{Document, Version};

/// Messages between text replicas.
#[derive(Clone, Debug)]
enum Message {
    /// "This is what I have."
    Have(Version),
    /// An encoded update of operations the receiver lacked.
    Update(Vec<u8>),
}

/// Timer token: gossip our version.
const GOSSIP: u64 = 1;
/// Timer token: make a local edit.
const EDIT: u64 = 2;
/// Edits stop after this much local time.
const EDIT_UNTIL_NS: u64 = 2_000_000_000;

/// One replica: a document plus a tiny anti-entropy loop.
struct TextNode {
    node: NodeId,
    nodes: u64,
    doc: Document,
    edits: u64,
}

impl Process for TextNode {
    type Message = Message;
    type Request = ();
    type Response = ();

    fn handle(
        &mut self,
        now_ns: u64,
        input: Input<Message, ()>,
        context: &mut Context<'_, Message, ()>,
    ) {
        match input {
            Input::Start => {
                context.set_timer(50_000_000, GOSSIP);
                context.set_timer(37_000_000 + self.node * 7_000_000, EDIT);
            }
            Input::Timer { token: GOSSIP } => {
                for peer in (0..self.nodes).filter(|&p| p != self.node) {
                    context.send(peer, Message::Have(self.doc.version()));
                }
                context.set_timer(50_000_000, GOSSIP);
            }
            Input::Timer { token: EDIT } => {
                if now_ns < EDIT_UNTIL_NS {
                    self.edits += 1;
                    let word = format!("<{}:{}>", self.node, self.edits);
                    // Deterministic positions without randomness: spread across the text.
                    let pos = (self.edits * 7 + self.node) % (self.doc.len() + 1);
                    self.doc.insert(pos, &word).unwrap();
                    if self.edits.is_multiple_of(3) && self.doc.len() > 4 {
                        self.doc.delete(0..2).unwrap();
                    }
                    context.set_timer(90_000_000, EDIT);
                }
            }
            Input::Message {
                from,
                message: Message::Have(version),
            } => {
                if !version.includes(&self.doc.version()) {
                    context.send(
                        from,
                        Message::Update(self.doc.encode_update_since(&version)),
                    );
                }
            }
            Input::Message {
                message: Message::Update(bytes),
                ..
            } => {
                self.doc
                    .apply_update(&bytes)
                    .expect("updates from peers are valid");
            }
            Input::Timer { .. } | Input::Request { .. } | Input::Persisted { .. } => {}
        }
    }
}

/// Texts of the given nodes.
fn texts(simulation: &Simulation<TextNode>, nodes: &[NodeId]) -> Vec<String> {
    nodes
        .iter()
        .map(|&n| simulation.node(n).expect("node exists").doc.text())
        .collect()
}

#[test]
fn five_replicas_partitioned_converge_after_heal() {
    for seed in [1, 2, 3] {
        let mut config = Config::new(seed, 5);
        config.network.reorder = 0.2;
        config.network.duplicate = 0.05;
        let mut simulation = Simulation::new(config, |node, _storage| TextNode {
            node,
            nodes: 5,
            doc: Document::new(node),
            edits: 0,
        });
        let halves = Partition::from_groups(
            5,
            &[vec![0, 1, 2], vec![3, 4]],
            vec![(0, 1), (1, 0)],
            "halves",
        );
        simulation.apply_fault(&Fault::Partition(halves));
        simulation.run_until(3_000_000_000);
        let left = texts(&simulation, &[0, 1, 2]);
        let right = texts(&simulation, &[3, 4]);
        assert!(
            left.iter().all(|t| *t == left[0]),
            "seed {seed}: left side diverged"
        );
        assert!(
            right.iter().all(|t| *t == right[0]),
            "seed {seed}: right side diverged"
        );
        assert_ne!(
            left[0], right[0],
            "seed {seed}: sides should differ while partitioned"
        );
        assert!(!left[0].contains("<3:") && !right[0].contains("<0:"));

        simulation.apply_fault(&Fault::Heal);
        simulation.run_until(5_000_000_000);
        let all = texts(&simulation, &[0, 1, 2, 3, 4]);
        assert!(
            all.iter().all(|t| *t == all[0]),
            "seed {seed}: not converged after heal"
        );
        let version = simulation.node(0).unwrap().doc.version();
        for n in 1..5 {
            assert_eq!(simulation.node(n).unwrap().doc.version(), version);
        }
        assert!(all[0].contains("<0:") && all[0].contains("<4:"));
    }
}

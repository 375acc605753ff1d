//! Faults and when they happen: a [`NemesisPlan`] is a list of timed [`Fault`]s, written by hand or
//! drawn at random from a seed (so a run is replayable from the seed alone).

use std::fmt;
use std::str::FromStr;

use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::SimRng;
use crate::network::{Partition, PartitionKind};
use crate::process::NodeId;

/// One fault (or its repair) applied at an instant of true time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Fault {
    /// Installs a partition, replacing any other.
    Partition(Partition),
    /// Removes the partition and every link override, and restores the configured loss,
    /// duplication and reordering rates.
    Heal,
    /// Stops a node: volatile state is lost, writes not yet durable may be lost.
    Crash {
        /// The node.
        node: NodeId,
    },
    /// Rebuilds a crashed node from its durable storage.
    Restart {
        /// The node.
        node: NodeId,
    },
    /// Freezes a node: its events are held (not lost) until it resumes.
    Pause {
        /// The node.
        node: NodeId,
    },
    /// Unfreezes a node and hands it the held events in order.
    Resume {
        /// The node.
        node: NodeId,
    },
    /// Sets a node's clock offset from true time and its rate error (its local clock never goes
    /// backwards: a clock set back waits until true time catches up).
    Skew {
        /// The node.
        node: NodeId,
        /// Offset in nanoseconds, positive = ahead.
        offset_ns: i64,
        /// Rate error in parts per million, positive = fast.
        drift_ppm: i64,
    },
    /// Sets every node's offset and drift back to zero (clocks stay monotonic).
    ResetClocks,
    /// Sets random message loss on every link until the next [`Fault::Heal`].
    Loss {
        /// Loss probability.
        probability: f64,
    },
    /// Makes the network deliver some messages twice until the next [`Fault::Heal`].
    Duplicate {
        /// Probability that a message is duplicated.
        probability: f64,
    },
    /// Holds some messages back (up to the configured reorder delay) until the next
    /// [`Fault::Heal`], so later messages overtake them.
    Reorder {
        /// Probability that a message is held back.
        probability: f64,
    },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Partition(partition) => write!(f, "partition {}", partition.description),
            Fault::Heal => f.write_str("heal network"),
            Fault::Crash { node } => write!(f, "crash n{node}"),
            Fault::Restart { node } => write!(f, "restart n{node}"),
            Fault::Pause { node } => write!(f, "pause n{node}"),
            Fault::Resume { node } => write!(f, "resume n{node}"),
            Fault::Skew {
                node,
                offset_ns,
                drift_ppm,
            } => write!(
                f,
                "skew n{node} clock {:+.0} ms, drift {drift_ppm:+} ppm",
                *offset_ns as f64 / 1e6
            ),
            Fault::ResetClocks => f.write_str("reset clocks"),
            Fault::Loss { probability } => write!(f, "loss {:.0}%", probability * 100.0),
            Fault::Duplicate { probability } => {
                write!(f, "duplicate {:.0}%", probability * 100.0)
            }
            Fault::Reorder { probability } => write!(f, "reorder {:.0}%", probability * 100.0),
        }
    }
}

/// A fault scheduled at a true time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NemesisStep {
    /// True (not node-local) time in nanoseconds.
    pub at_ns: u64,
    /// What happens.
    pub fault: Fault,
}

/// Families of fault the random nemesis draws from (the `--nemesis` names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum NemesisKind {
    /// Network partitions of every shape in [`PartitionKind`].
    Partition,
    /// Crash a node, restart it later.
    Crash,
    /// Pause a node, resume it later.
    Pause,
    /// Skew and drift a node's clock, reset later.
    Skew,
    /// Random message loss for a while.
    Loss,
    /// Duplicated messages for a while.
    Duplicate,
    /// Reordered (held back) messages for a while.
    Reorder,
}

impl NemesisKind {
    /// Every kind with its `--nemesis` name.
    pub const ALL: [(&'static str, NemesisKind); 7] = [
        ("partition", NemesisKind::Partition),
        ("crash", NemesisKind::Crash),
        ("pause", NemesisKind::Pause),
        ("skew", NemesisKind::Skew),
        ("loss", NemesisKind::Loss),
        ("duplicate", NemesisKind::Duplicate),
        ("reorder", NemesisKind::Reorder),
    ];
}

/// Why a nemesis name was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NemesisError {
    /// Not one of the names in [`NemesisKind::ALL`].
    #[error(
        "unknown nemesis `{0}`; known: partition, crash, pause, skew, loss, duplicate, reorder, none"
    )]
    Unknown(String),
}

impl FromStr for NemesisKind {
    type Err = NemesisError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        NemesisKind::ALL
            .iter()
            .find(|(name, _)| *name == text.trim())
            .map(|&(_, kind)| kind)
            .ok_or_else(|| NemesisError::Unknown(text.to_string()))
    }
}

/// A time-ordered list of faults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NemesisPlan {
    /// Steps in time order.
    pub steps: Vec<NemesisStep>,
}

/// Salt mixed into the run seed so the plan's random stream is independent of the traffic's.
const PLAN_SALT: u64 = 0x6e65_6d65_7369_7321;

impl NemesisPlan {
    /// No faults.
    pub fn none() -> Self {
        Self::default()
    }

    /// Adds `fault` at `at_ns`, keeping the steps in time order (stable for equal times).
    pub fn at(mut self, at_ns: u64, fault: Fault) -> Self {
        let index = self.steps.partition_point(|step| step.at_ns <= at_ns);
        self.steps.insert(index, NemesisStep { at_ns, fault });
        self
    }

    /// Draws a plan from `seed`: cycles of one fault from `kinds` held for 1–4 s, then 1–3 s of
    /// calm, from 1 s until `duration_ns`; everything is repaired at the end.
    pub fn random(kinds: &[NemesisKind], nodes: usize, duration_ns: u64, seed: u64) -> Self {
        let mut plan = NemesisPlan::none();
        if kinds.is_empty() || nodes == 0 {
            return plan;
        }
        let mut rng = SimRng::seed_from_u64(seed ^ PLAN_SALT);
        let mut now_ns = 1_000_000_000;
        // A bound on cycles keeps absurd durations from building absurd plans.
        for _cycle in 0..100_000 {
            if now_ns >= duration_ns {
                break;
            }
            let kind = kinds[rng.random_range(0..kinds.len())];
            let hold_ns = rng.random_range(1_000_000_000..=4_000_000_000);
            let end_ns = (now_ns + hold_ns).min(duration_ns);
            let node = rng.random_range(0..nodes as NodeId);
            let (fault, repairs) = draw(kind, node, nodes, &mut rng);
            plan.steps.push(NemesisStep {
                at_ns: now_ns,
                fault,
            });
            for repair in repairs {
                plan.steps.push(NemesisStep {
                    at_ns: end_ns,
                    fault: repair,
                });
            }
            now_ns = end_ns + rng.random_range(1_000_000_000..=3_000_000_000);
        }
        plan
    }
}

fn draw(kind: NemesisKind, node: NodeId, nodes: usize, rng: &mut SimRng) -> (Fault, Vec<Fault>) {
    match kind {
        NemesisKind::Partition if nodes >= 2 => {
            let shape = PartitionKind::ALL[rng.random_range(0..PartitionKind::ALL.len())];
            let partition = Partition::random(shape, nodes, rng);
            (Fault::Partition(partition), vec![Fault::Heal])
        }
        NemesisKind::Partition | NemesisKind::Loss => (
            Fault::Loss {
                probability: rng.random_range(0.05..0.5),
            },
            vec![Fault::Heal],
        ),
        NemesisKind::Duplicate => (
            Fault::Duplicate {
                probability: rng.random_range(0.05..0.5),
            },
            vec![Fault::Heal],
        ),
        NemesisKind::Reorder => (
            Fault::Reorder {
                probability: rng.random_range(0.1..0.6),
            },
            vec![Fault::Heal],
        ),
        NemesisKind::Crash => (Fault::Crash { node }, vec![Fault::Restart { node }]),
        NemesisKind::Pause => (Fault::Pause { node }, vec![Fault::Resume { node }]),
        NemesisKind::Skew => {
            let offset_ns = rng.random_range(-2_000_000_000..=2_000_000_000);
            let drift_ppm = rng.random_range(-500..=500);
            let skew = Fault::Skew {
                node,
                offset_ns,
                drift_ppm,
            };
            (skew, vec![Fault::ResetClocks])
        }
    }
}

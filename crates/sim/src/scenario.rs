//! Ready-made runs shared by the CLI, tests and benchmarks: the register scenario (a correct and
//! an unsafe register under the same seed and faults) and the echo throughput run.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::geo::Location;
use crate::nemesis::{NemesisKind, NemesisPlan};
use crate::services::{Echo, PrimaryBackupRegister, SingleCopyRegister};
use crate::simulation::{Config, Report, Simulation};
use crate::trace::Trace;
use crate::workload::RegisterWorkload;

/// Regions nodes are spread over, round-robin, in scenarios.
pub const SCENARIO_REGIONS: [&str; 9] = [
    "virginia",
    "london",
    "frankfurt",
    "california",
    "tokyo",
    "singapore",
    "sydney",
    "sao-paulo",
    "new-york",
];

/// The knobs of a scenario run (what `concur sim` takes on its command line).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioOptions {
    /// The seed.
    pub seed: u64,
    /// Number of nodes.
    pub nodes: usize,
    /// Fault families the random nemesis draws from (empty: no faults).
    pub nemesis: Vec<NemesisKind>,
    /// How long clients run, in virtual nanoseconds.
    pub duration_ns: u64,
    /// Number of clients (default: two per node).
    pub clients: Option<usize>,
    /// Whether to record the trace.
    pub trace: bool,
}

impl Default for ScenarioOptions {
    fn default() -> Self {
        Self {
            seed: 0,
            nodes: 5,
            nemesis: Vec::new(),
            duration_ns: 30_000_000_000,
            clients: None,
            trace: false,
        }
    }
}

impl ScenarioOptions {
    /// The simulator config these options describe (nemesis plan drawn from the seed).
    pub fn config(&self) -> Config {
        let mut config = Config::new(self.seed, self.nodes);
        config.placement = SCENARIO_REGIONS
            .iter()
            .filter_map(|name| Location::region(name))
            .collect();
        config.nemesis =
            NemesisPlan::random(&self.nemesis, self.nodes, self.duration_ns, self.seed);
        config.clients.count = self.clients.unwrap_or(self.nodes * 2).max(1);
        config.trace = self.trace;
        config
    }
}

/// Which register the scenario runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RegisterKind {
    /// [`SingleCopyRegister`]: correct, linearizable, unavailable when cut off.
    SingleCopy,
    /// [`PrimaryBackupRegister`]: split-brain under partitions, not linearizable.
    PrimaryBackup,
}

impl RegisterKind {
    /// Both, correct first.
    pub const BOTH: [RegisterKind; 2] = [RegisterKind::SingleCopy, RegisterKind::PrimaryBackup];

    /// The CLI name: `correct` or `unsafe`.
    pub fn name(self) -> &'static str {
        match self {
            RegisterKind::SingleCopy => "correct",
            RegisterKind::PrimaryBackup => "unsafe",
        }
    }

    /// What it is, in a few words.
    pub fn description(self) -> &'static str {
        match self {
            RegisterKind::SingleCopy => "single-copy register (one server, durable writes)",
            RegisterKind::PrimaryBackup => "primary-backup register (async, timeout failover)",
        }
    }
}

impl fmt::Display for RegisterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RegisterKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "correct" | "single-copy" => Ok(RegisterKind::SingleCopy),
            "unsafe" | "primary-backup" => Ok(RegisterKind::PrimaryBackup),
            other => Err(format!(
                "unknown service `{other}`; known: correct, unsafe, both"
            )),
        }
    }
}

/// A finished run: the report and, if recorded, the trace.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOutput {
    /// Counters, history, nemesis log, hash.
    pub report: Report,
    /// The trace, when `trace` was on.
    pub trace: Option<Trace>,
}

/// Runs the register scenario for one register kind.
pub fn run_register(kind: RegisterKind, options: &ScenarioOptions) -> RunOutput {
    run_register_in(kind, options, &[])
}

/// Runs the register scenario with nodes placed round-robin over `regions` (the scenario's
/// default spread if empty).
pub fn run_register_in(
    kind: RegisterKind,
    options: &ScenarioOptions,
    regions: &[Location],
) -> RunOutput {
    let mut config = options.config();
    if !regions.is_empty() {
        config.placement = regions.to_vec();
    }
    let nodes = options.nodes as u64;
    match kind {
        RegisterKind::SingleCopy => {
            let simulation = Simulation::new(config, |node, storage| {
                SingleCopyRegister::new(node, 0, storage)
            });
            finish(simulation, options.duration_ns)
        }
        RegisterKind::PrimaryBackup => {
            let simulation = Simulation::new(config, move |node, _storage| {
                PrimaryBackupRegister::new(node, nodes)
            });
            finish(simulation, options.duration_ns)
        }
    }
}

fn finish<P>(mut simulation: Simulation<P>, duration_ns: u64) -> RunOutput
where
    P: crate::workload::RegisterService + 'static,
{
    simulation.set_workload(Box::new(RegisterWorkload::default()));
    let report = simulation.run(duration_ns);
    RunOutput {
        report,
        trace: simulation.trace().cloned(),
    }
}

/// Runs echo on `nodes` nodes with `window` messages in flight per node until `delivered`
/// messages were delivered; returns the simulation for inspection.
pub fn run_echo(seed: u64, nodes: usize, window: u64, delivered: u64) -> Simulation<Echo> {
    let mut config = Config::new(seed, nodes);
    config.placement = SCENARIO_REGIONS
        .iter()
        .filter_map(|name| Location::region(name))
        .collect();
    let count = nodes as u64;
    let mut simulation = Simulation::new(config, move |node, _| Echo::new(node, count, window));
    // A bound on steps: each delivery is one event, so this cannot loop forever.
    for _ in 0..delivered.saturating_mul(2) {
        if simulation.stats().messages_delivered >= delivered || !simulation.step() {
            break;
        }
    }
    simulation
}

//! Properties of the simulator itself: determinism, scale, faults as documented, trace format.

use proptest::prelude::*;
use sim::nemesis::Fault;
use sim::process::{Context, Input, Process};
use sim::scenario::{RegisterKind, ScenarioOptions, run_echo, run_register};
use sim::services::{Rumor, SingleCopyRegister};
use sim::workload::RegisterOperation;
use sim::{Config, NemesisKind, Simulation};

fn all_faults(seed: u64) -> ScenarioOptions {
    ScenarioOptions {
        seed,
        nemesis: vec![
            NemesisKind::Partition,
            NemesisKind::Crash,
            NemesisKind::Pause,
            NemesisKind::Skew,
            NemesisKind::Loss,
            NemesisKind::Duplicate,
            NemesisKind::Reorder,
        ],
        duration_ns: 10_000_000_000,
        trace: true,
        ..ScenarioOptions::default()
    }
}

#[test]
fn same_seed_gives_the_same_run_event_for_event() {
    for kind in RegisterKind::BOTH {
        let first = run_register(kind, &all_faults(11));
        let second = run_register(kind, &all_faults(11));
        assert_eq!(first.report.hash, second.report.hash, "{kind}");
        assert_eq!(first.report, second.report, "{kind}");
        assert_eq!(first.trace, second.trace, "{kind}");
        let other = run_register(kind, &all_faults(12));
        assert_ne!(
            first.report.hash, other.report.hash,
            "{kind}: seeds must matter"
        );
    }
}

#[test]
fn tracing_does_not_change_the_run() {
    let traced = run_register(RegisterKind::SingleCopy, &all_faults(4));
    let untraced = run_register(
        RegisterKind::SingleCopy,
        &ScenarioOptions {
            trace: false,
            ..all_faults(4)
        },
    );
    assert_eq!(traced.report, untraced.report);
    assert!(untraced.trace.is_none());
}

#[test]
fn ten_thousand_nodes_spread_a_rumor() {
    // Goal: the simulator scales to 10k nodes with sparse per-link state. Method: push gossip
    // from node 0 with fanout 3 over nine regions; an epidemic reaches everyone in O(log n) rounds.
    let nodes = 10_000u64;
    let config = Config::new(99, nodes as usize);
    let mut config = Config {
        placement: sim::scenario::SCENARIO_REGIONS
            .iter()
            .map(|name| name.parse().unwrap())
            .collect(),
        ..config
    };
    config.network.loss = 0.01;
    let mut simulation = Simulation::new(config, move |node, _| {
        Rumor::new(node, nodes, 3, 100_000_000, 30)
    });
    simulation.run_until(5_000_000_000);
    let infected = (0..nodes)
        .filter(|&node| simulation.node(node).is_some_and(Rumor::infected))
        .count();
    assert_eq!(infected, nodes as usize, "{:?}", simulation.stats());
    let stats = simulation.stats();
    assert!(stats.messages_delivered > 100_000, "{stats:?}");
    assert!(stats.messages_dropped > 0, "1% loss: {stats:?}");
}

#[test]
fn echo_delivers_at_the_speed_of_light_in_fibre() {
    let simulation = run_echo(1, 2, 1, 100);
    // virginia ↔ london ≈ 5,900 km ⇒ ≈ 29.5 ms one way + 0.2 ms overhead + ≤ 1 ms jitter.
    // Both nodes start one message, so 100 deliveries are 50 hops of each.
    let per_hop_ms = simulation.now_ns() as f64 / 1e6 / 50.0;
    assert!((29.0..31.5).contains(&per_hop_ms), "{per_hop_ms}");
}

/// Records the local time of every input, to check clocks.
struct ClockWatcher {
    seen_ns: Vec<u64>,
}

impl Process for ClockWatcher {
    type Message = ();
    type Request = ();
    type Response = ();

    fn handle(&mut self, now_ns: u64, input: Input<(), ()>, context: &mut Context<'_, (), ()>) {
        self.seen_ns.push(now_ns);
        if matches!(input, Input::Start | Input::Timer { .. }) {
            context.set_timer(10_000_000, 0);
        }
    }
}

#[test]
fn skewed_clocks_jump_and_drift_but_never_go_back() {
    let mut simulation = Simulation::new(Config::new(1, 2), |_, _| ClockWatcher {
        seen_ns: Vec::new(),
    });
    simulation.run_until(1_000_000_000);
    let ahead = Fault::Skew {
        node: 1,
        offset_ns: 500_000_000,
        drift_ppm: 100_000,
    };
    simulation.apply_fault(&ahead);
    simulation.run_until(2_000_000_000);
    let ticks =
        |simulation: &Simulation<ClockWatcher>, node| simulation.node(node).unwrap().seen_ns.len();
    // Its 10 ms timers fire every ≈ 9.1 ms of true time while it runs 10% fast.
    let (steady_ticks, fast_ticks) = (ticks(&simulation, 0), ticks(&simulation, 1));
    assert!(
        fast_ticks > steady_ticks + 5,
        "{fast_ticks} vs {steady_ticks}"
    );
    simulation.apply_fault(&Fault::ResetClocks);
    simulation.run_until(3_000_000_000);
    let steady = &simulation.node(0).unwrap().seen_ns;
    let skewed = &simulation.node(1).unwrap().seen_ns;
    assert!(steady.windows(2).all(|pair| pair[0] < pair[1]));
    assert!(
        skewed.windows(2).all(|pair| pair[0] <= pair[1]),
        "monotonic"
    );
    // At true time ≈ 2 s node 1 reads ≈ 2 s + 0.5 s + 10% of 1 s.
    let late = skewed
        .iter()
        .rev()
        .find(|&&t| t < 2_700_000_000)
        .copied()
        .unwrap();
    assert!(late > 2_500_000_000, "{late}");
    // Set back to true time, it stalls (monotonic) until true time catches up, then ticks again.
    assert!(skewed.last().unwrap() > &2_900_000_000);
}

#[test]
fn crash_loses_volatile_state_and_restart_recovers_durable_writes() {
    let mut simulation = Simulation::new(Config::new(5, 3), |node, storage| {
        SingleCopyRegister::new(node, 0, storage)
    });
    let write = RegisterOperation::Write {
        key: "x".into(),
        value: 7,
    };
    let request_id = simulation.submit(0, write);
    simulation.run_until(100_000_000);
    let replies = simulation.take_replies();
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].0, request_id);
    simulation.apply_fault(&Fault::Crash { node: 0 });
    assert!(simulation.node(0).is_none());
    let read = RegisterOperation::Read { key: "x".into() };
    simulation.submit(1, read.clone());
    simulation.run_until(200_000_000);
    assert!(simulation.take_replies().is_empty(), "the server is down");
    simulation.apply_fault(&Fault::Restart { node: 0 });
    assert_eq!(simulation.node(0).unwrap().value("x"), Some(7));
    simulation.submit(1, read);
    simulation.run_until(300_000_000);
    let replies = simulation.take_replies();
    assert_eq!(
        replies.last().map(|(_, response)| response.clone()),
        Some(sim::services::RegisterResponse::Value(Some(7)))
    );
}

#[test]
fn paused_node_gets_its_messages_after_resume() {
    let mut simulation = Simulation::new(Config::new(5, 3), |node, storage| {
        SingleCopyRegister::new(node, 0, storage)
    });
    simulation.apply_fault(&Fault::Pause { node: 0 });
    simulation.submit(1, RegisterOperation::Read { key: "x".into() });
    simulation.run_until(1_000_000_000);
    assert!(simulation.take_replies().is_empty(), "held while paused");
    simulation.apply_fault(&Fault::Resume { node: 0 });
    simulation.run_until(1_100_000_000);
    assert_eq!(simulation.take_replies().len(), 1, "delivered after resume");
}

#[test]
fn trace_has_vector_clocks_and_exports_to_shiviz() {
    let output = run_register(RegisterKind::SingleCopy, &all_faults(3));
    let trace = output.trace.unwrap();
    let kinds =
        |kind: sim::trace::TraceKind| trace.events.iter().filter(|e| e.kind == kind).count();
    assert!(kinds(sim::trace::TraceKind::Send) > 10);
    assert!(kinds(sim::trace::TraceKind::Deliver) > 10);
    assert!(kinds(sim::trace::TraceKind::Drop) > 0);
    // Each node's own counter rises by exactly one per event at that node (ShiViz requires it).
    let mut last = std::collections::BTreeMap::new();
    for event in trace
        .events
        .iter()
        .filter(|e| e.kind != sim::trace::TraceKind::Drop)
    {
        let Some(node) = event.node else { continue };
        let own = event.clock.get(node);
        let previous = last.insert(node, own).unwrap_or(0);
        assert_eq!(own, previous + 1, "{event:?}");
    }
    let mut shiviz = Vec::new();
    trace.write_shiviz(&mut shiviz).unwrap();
    let text = String::from_utf8(shiviz).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(sim::trace::SHIVIZ_REGEX));
    assert_eq!(lines.next(), Some(""));
    let body: Vec<&str> = lines.collect();
    assert_eq!(body.len() % 2, 0);
    let host_line = body[1];
    assert!(
        host_line.starts_with('n') && host_line.contains(" {\"n"),
        "{host_line}"
    );
    let mut jsonl = Vec::new();
    trace.write_jsonl(&mut jsonl).unwrap();
    let first: serde_json::Value =
        serde_json::from_slice(jsonl.split(|&b| b == b'\n').next().unwrap()).unwrap();
    assert!(first.get("kind").is_some() && first.get("clock").is_some());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    /// Any seed, any faults: the correct register's history is linearizable and replays exactly.
    #[test]
    fn correct_register_is_linearizable_for_any_seed(seed in 0u64..1_000_000) {
        let options = ScenarioOptions { trace: false, duration_ns: 8_000_000_000, ..all_faults(seed) };
        let output = run_register(RegisterKind::SingleCopy, &options);
        let mut text = Vec::new();
        sim::history::write_jsonl(&output.report.history, &mut text).unwrap();
        let history = check::history::History::from_jsonl(std::str::from_utf8(&text).unwrap()).unwrap();
        prop_assert!(check::linearizability::check(&history).is_linearizable());
        let again = run_register(RegisterKind::SingleCopy, &options);
        prop_assert_eq!(output.report.hash, again.report.hash);
    }
}

#[test]
fn duplication_and_reordering_show_up_in_the_counts() {
    // Echo bounces every copy, so duplicates multiply: keep the run short (≈ 40 hops).
    let mut config = Config::new(8, 4);
    config.network.duplicate = 0.1;
    config.network.reorder = 0.2;
    let mut simulation = Simulation::new(config, |node, _| sim::services::Echo::new(node, 4, 1));
    simulation.run_until(30_000_000);
    let stats = simulation.stats();
    assert!(stats.messages_duplicated > 0, "{stats:?}");
    assert!(
        stats.messages_delivered > stats.messages_sent / 2,
        "{stats:?}"
    );
    assert!(stats.messages_sent < 100_000, "{stats:?}");
}

#[test]
fn random_nemesis_plans_come_from_the_seed_alone() {
    let kinds = [
        NemesisKind::Partition,
        NemesisKind::Crash,
        NemesisKind::Duplicate,
    ];
    let plan = sim::NemesisPlan::random(&kinds, 5, 30_000_000_000, 42);
    assert_eq!(
        plan,
        sim::NemesisPlan::random(&kinds, 5, 30_000_000_000, 42)
    );
    assert_ne!(
        plan,
        sim::NemesisPlan::random(&kinds, 5, 30_000_000_000, 43)
    );
    assert!(
        plan.steps
            .windows(2)
            .all(|pair| pair[0].at_ns <= pair[1].at_ns)
    );
    assert!(plan.steps.iter().all(|step| step.at_ns <= 30_000_000_000));
    assert!(plan.steps.len() >= 8, "{}", plan.steps.len());
}

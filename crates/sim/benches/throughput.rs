//! Simulator throughput: delivered messages per wall second for the echo protocol (the
//! simulator's own cost per message), and simulated seconds per wall second for a 5-node register
//! run with clients, disk and partitions.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sim::NemesisKind;
use sim::scenario::{RegisterKind, SCENARIO_REGIONS, ScenarioOptions, run_echo, run_register};
use sim::services::Rumor;
use sim::{Config, Simulation};

const ECHO_MESSAGES: u64 = 200_000;

fn echo(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("echo");
    group.throughput(Throughput::Elements(ECHO_MESSAGES));
    group.sample_size(20);
    for nodes in [5usize, 1_000] {
        group.bench_function(format!("{nodes}_nodes_delivered_messages"), |bencher| {
            bencher.iter(|| {
                let simulation = run_echo(black_box(1), nodes, 8, ECHO_MESSAGES);
                assert!(simulation.stats().messages_delivered >= ECHO_MESSAGES);
                black_box(simulation.stats().events)
            });
        });
    }
    group.finish();
}

fn register(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("register");
    group.sample_size(10);
    // Throughput in "elements" = simulated seconds: criterion reports elements/s = simulated
    // seconds per wall second.
    group.throughput(Throughput::Elements(10));
    let options = ScenarioOptions {
        seed: 7,
        nodes: 5,
        nemesis: vec![NemesisKind::Partition],
        duration_ns: 10_000_000_000,
        ..ScenarioOptions::default()
    };
    group.bench_function("5_nodes_10_simulated_seconds", |bencher| {
        bencher.iter(|| {
            let output = run_register(RegisterKind::SingleCopy, black_box(&options));
            assert!(output.report.stats.ok > 0);
            black_box(output.report.hash)
        });
    });
    group.finish();
}

fn rumor(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("rumor");
    group.sample_size(10);
    group.bench_function("10000_nodes_5_simulated_seconds", |bencher| {
        bencher.iter(|| {
            let nodes = 10_000u64;
            let mut config = Config::new(black_box(99), nodes as usize);
            config.placement = SCENARIO_REGIONS
                .iter()
                .filter_map(|name| name.parse().ok())
                .collect();
            let mut simulation = Simulation::new(config, move |node, _| {
                Rumor::new(node, nodes, 3, 100_000_000, 30)
            });
            simulation.run_until(5_000_000_000);
            assert!(simulation.node(nodes - 1).is_some_and(Rumor::infected));
            black_box(simulation.stats().messages_delivered)
        });
    });
    group.finish();
}

criterion_group!(benches, echo, register, rumor);
criterion_main!(benches);

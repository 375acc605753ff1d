//! concur's crdt crate against rust-crdt (`crdts` 7.3) in the same run, on the rows of the issue:
//! OR-Set add of 100k elements, merge of two diverged 100k-element OR-Sets, GCounter merge with
//! 1,000 replica ids, and the encoded size of each state (ours: our codec; theirs: serde with
//! bincode 1.3 default options, and postcard for reference). Sizes are printed before timing.

use std::hint::black_box;

use crdt::{Codec, Crdt, GCounter, OrSet};
use crdts::{CmRDT, CvRDT};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

const ELEMENTS: u64 = 100_000;
const COUNTER_REPLICAS: u64 = 1_000;

fn ours_add(count: u64) -> OrSet<u64> {
    let mut set = OrSet::new();
    for element in 0..count {
        black_box(set.add(1, element));
    }
    set
}

fn theirs_add(count: u64) -> crdts::Orswot<u64, u64> {
    let mut set = crdts::Orswot::new();
    for element in 0..count {
        let op = set.add(element, set.read_ctx().derive_add_ctx(1));
        set.apply(black_box(op));
    }
    set
}

/// Two replicas sharing 50k elements, then each adding 50k of its own and removing 1k shared ones.
fn ours_diverged() -> (OrSet<u64>, OrSet<u64>) {
    let base = ours_add(ELEMENTS / 2);
    let (mut left, mut right) = (base.clone(), base);
    for element in ELEMENTS / 2..ELEMENTS {
        left.add(2, element);
        right.add(3, element + ELEMENTS / 2);
    }
    for element in 0..1_000 {
        left.remove(&element);
        right.remove(&(element + 1_000));
    }
    (left, right)
}

fn theirs_diverged() -> (crdts::Orswot<u64, u64>, crdts::Orswot<u64, u64>) {
    let base = theirs_add(ELEMENTS / 2);
    let (mut left, mut right) = (base.clone(), base);
    for element in ELEMENTS / 2..ELEMENTS {
        let op = left.add(element, left.read_ctx().derive_add_ctx(2));
        left.apply(op);
        let op = right.add(element + ELEMENTS / 2, right.read_ctx().derive_add_ctx(3));
        right.apply(op);
    }
    for element in 0..1_000 {
        let op = left.rm(element, left.contains(&element).derive_rm_ctx());
        left.apply(op);
        let other = element + 1_000;
        let op = right.rm(other, right.contains(&other).derive_rm_ctx());
        right.apply(op);
    }
    (left, right)
}

/// Two GCounters over the same 1,000 replica ids with different counts.
fn ours_counters() -> (GCounter, GCounter) {
    let (mut left, mut right) = (GCounter::new(), GCounter::new());
    for replica in 0..COUNTER_REPLICAS {
        left.increment(replica, replica % 7 + 1);
        right.increment(replica, replica % 5 + 1);
    }
    (left, right)
}

fn theirs_counters() -> (crdts::GCounter<u64>, crdts::GCounter<u64>) {
    let (mut left, mut right) = (crdts::GCounter::new(), crdts::GCounter::new());
    for replica in 0..COUNTER_REPLICAS {
        left.apply(left.inc_many(replica, replica % 7 + 1));
        right.apply(right.inc_many(replica, replica % 5 + 1));
    }
    (left, right)
}

fn print_sizes() {
    let ours_set = ours_add(ELEMENTS);
    let theirs_set = theirs_add(ELEMENTS);
    let (mut ours_merged, ours_other) = ours_diverged();
    ours_merged.merge(&ours_other);
    let (mut theirs_merged, theirs_other) = theirs_diverged();
    theirs_merged.merge(theirs_other);
    assert_eq!(ours_merged.len(), theirs_merged.read().val.len());
    let (ours_counter, _) = ours_counters();
    let (theirs_counter, _) = theirs_counters();
    let rows: [(&str, usize, Vec<u8>, Vec<u8>); 3] = [
        (
            "or_set_100k",
            ours_set.to_bytes().len(),
            bincode::serialize(&theirs_set).expect("bincode"),
            postcard::to_allocvec(&theirs_set).expect("postcard"),
        ),
        (
            "or_set_merged_diverged",
            ours_merged.to_bytes().len(),
            bincode::serialize(&theirs_merged).expect("bincode"),
            postcard::to_allocvec(&theirs_merged).expect("postcard"),
        ),
        (
            "gcounter_1000_replicas",
            ours_counter.to_bytes().len(),
            bincode::serialize(&theirs_counter).expect("bincode"),
            postcard::to_allocvec(&theirs_counter).expect("postcard"),
        ),
    ];
    eprintln!(
        "encoded size (bytes): row | ours | rust-crdt bincode | ratio | rust-crdt postcard | ratio"
    );
    for (name, ours, bincode_bytes, postcard_bytes) in rows {
        eprintln!(
            "size {name} | {ours} | {} | {:.3} | {} | {:.3}",
            bincode_bytes.len(),
            ours as f64 / bincode_bytes.len() as f64,
            postcard_bytes.len(),
            ours as f64 / postcard_bytes.len() as f64,
        );
    }
}

fn benches(criterion: &mut Criterion) {
    print_sizes();
    let mut group = criterion.benchmark_group("or_set_add_100k");
    group.sample_size(10);
    group.bench_function("concur", |bench| bench.iter(|| ours_add(ELEMENTS)));
    group.bench_function("rust-crdt", |bench| bench.iter(|| theirs_add(ELEMENTS)));
    group.finish();

    let mut group = criterion.benchmark_group("or_set_merge_diverged_100k");
    group.sample_size(10);
    let (ours_left, ours_right) = ours_diverged();
    group.bench_function("concur", |bench| {
        bench.iter_batched(
            || ours_left.clone(),
            |mut left| {
                left.merge(&ours_right);
                left
            },
            BatchSize::LargeInput,
        )
    });
    let (theirs_left, theirs_right) = theirs_diverged();
    group.bench_function("rust-crdt", |bench| {
        bench.iter_batched(
            || (theirs_left.clone(), theirs_right.clone()),
            |(mut left, right)| {
                left.merge(right);
                left
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();

    let mut group = criterion.benchmark_group("gcounter_merge_1000_replicas");
    let (ours_left, ours_right) = ours_counters();
    group.bench_function("concur", |bench| {
        bench.iter_batched(
            || ours_left.clone(),
            |mut left| {
                left.merge(&ours_right);
                left
            },
            BatchSize::SmallInput,
        )
    });
    let (theirs_left, theirs_right) = theirs_counters();
    group.bench_function("rust-crdt", |bench| {
        bench.iter_batched(
            || (theirs_left.clone(), theirs_right.clone()),
            |(mut left, right)| {
                left.merge(right);
                left
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(vs_rust_crdt, benches);
criterion_main!(vs_rust_crdt);

//! Replays the automerge-paper trace (259,778 single-character edits, one per transaction)
//! with concur's `text` and with diamond-types side by side, and times loading each library's
//! encoding of the result. Skips with a message when ../shared/traces is absent.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use diamond_types::list::ListCRDT;
use diamond_types::list::encoding::EncodeOptions;
use text::Document;
use text::trace::{Patch, Trace, replay_patches};

/// Path of the shared trace, relative to this crate.
const AUTOMERGE_PAPER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/traces/automerge-paper.json.gz"
);

/// Replays the patches into a diamond-types document, one local operation per patch.
fn replay_diamond(patches: &[Patch]) -> ListCRDT {
    let mut doc = ListCRDT::new();
    let agent = doc.get_or_create_agent_id("paper");
    for Patch(pos, deleted, inserted) in patches {
        let pos = *pos as usize;
        if *deleted > 0 {
            doc.delete(agent, pos..pos + *deleted as usize);
        }
        if !inserted.is_empty() {
            doc.insert(agent, pos, inserted);
        }
    }
    doc
}

fn automerge_paper(c: &mut Criterion) {
    let Ok(bytes) = std::fs::read(AUTOMERGE_PAPER) else {
        println!("skipping: {AUTOMERGE_PAPER} is absent");
        return;
    };
    let trace = Trace::parse(&bytes).expect("trace parses");
    let patches = trace.flat_patches();
    // Both replays must produce the trace's final text, or the timings mean nothing.
    let concur = replay_patches(&trace.start_content, &patches).expect("replays");
    assert_eq!(concur.text(), trace.end_content);
    let diamond = replay_diamond(&patches);
    assert_eq!(diamond.branch.content().to_string(), trace.end_content);
    let concur_encoded = concur.encode();
    let diamond_encoded = diamond.oplog.encode(EncodeOptions::default());
    println!(
        "encoded bytes: concur {} diamond-types {}",
        concur_encoded.len(),
        diamond_encoded.len()
    );

    let mut group = c.benchmark_group("automerge-paper");
    group.sample_size(20);
    group.bench_function("replay/concur", |b| {
        b.iter(|| replay_patches(&trace.start_content, black_box(&patches)).expect("replays"))
    });
    group.bench_function("replay/diamond-types", |b| {
        b.iter(|| replay_diamond(black_box(&patches)))
    });
    group.bench_function("load/concur", |b| {
        b.iter(|| Document::decode(black_box(&concur_encoded), 1).expect("decodes"))
    });
    group.bench_function("load/diamond-types", |b| {
        b.iter(|| ListCRDT::load_from(black_box(&diamond_encoded)).expect("loads"))
    });
    group.bench_function("encode/concur", |b| b.iter(|| black_box(&concur).encode()));
    group.finish();
}

criterion_group!(benches, automerge_paper);
criterion_main!(benches);

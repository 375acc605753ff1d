//! Replays the real automerge-paper trace (when ../shared/traces is present) and checks the
//! final text, plus the encode/decode round trip of the result.

use text::Document;
use text::trace::{Trace, replay_sequential};

/// Path of the shared trace, relative to this crate.
const AUTOMERGE_PAPER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/traces/automerge-paper.json.gz"
);

#[test]
fn automerge_paper_replays_to_end_content_and_round_trips() {
    let Ok(bytes) = std::fs::read(AUTOMERGE_PAPER) else {
        println!("skipping: {AUTOMERGE_PAPER} is absent");
        return;
    };
    let trace = Trace::parse(&bytes).expect("trace parses");
    let start = std::time::Instant::now();
    let doc = replay_sequential(&trace).expect("trace replays");
    println!("replay {:?}", start.elapsed());
    assert_eq!(doc.text(), trace.end_content);
    let encoded = doc.encode();
    println!("encoded {} bytes", encoded.len());
    let start = std::time::Instant::now();
    let mut loaded = Document::decode(&encoded, 7).expect("decodes");
    println!("load {:?}", start.elapsed());
    assert_eq!(loaded.text(), trace.end_content);
    assert_eq!(loaded.version(), doc.version());
    // The loaded copy can hand every operation to an empty replica, which converges.
    let mut fresh = Document::new(9);
    fresh
        .apply_ops(loaded.ops_since(&text::Version::new()))
        .expect("applies");
    assert_eq!(fresh.text(), trace.end_content);
    assert_eq!(fresh.pending_len(), 0);

    // The same operations in a shuffled order: held ones are woken by what they wait for, so
    // this stays fast, and the result is the same.
    let mut ops = loaded.ops_since(&text::Version::new());
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for i in (1..ops.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ops.swap(i, (state % (i as u64 + 1)) as usize);
    }
    let start = std::time::Instant::now();
    let mut shuffled = Document::new(10);
    shuffled.apply_ops(ops).expect("applies");
    println!("shuffled apply {:?}", start.elapsed());
    assert_eq!(shuffled.pending_len(), 0);
    assert_eq!(shuffled.text(), trace.end_content);
}

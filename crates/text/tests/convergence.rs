//! Convergence under concurrency: concurrent edits on several replicas, exchanged in random
//! orders (whole updates, single operations, shuffled), always end in identical text, and
//! concurrent typing at one place never interleaves.

mod common;

use common::{Rng, apply_patch, concurrent_trace, random_patch};
use proptest::prelude::*;
use text::trace::{Trace, replay_concurrent};
use text::{Document, Op, Version};

/// Sends everything `from` has that `to` lacks, as an encoded update.
fn sync(from: &mut Document, to: &mut Document) {
    let update = from.encode_update_since(&to.version());
    to.apply_update(&update).expect("valid update applies");
}

/// Syncs every pair both ways, then asserts all replicas hold the same text and version.
fn sync_all_and_assert_converged(docs: &mut [Document]) {
    for i in 0..docs.len() {
        for j in 0..docs.len() {
            if i != j {
                let (a, b) = pair(docs, i, j);
                sync(a, b);
            }
        }
    }
    let text = docs[0].text();
    for doc in docs.iter() {
        assert_eq!(doc.text(), text, "replica {} diverged", doc.replica());
        assert_eq!(doc.version(), docs[0].version());
        assert_eq!(doc.pending_len(), 0);
    }
}

/// Two distinct replicas, mutably.
fn pair(docs: &mut [Document], i: usize, j: usize) -> (&mut Document, &mut Document) {
    assert_ne!(i, j);
    if i < j {
        let (l, r) = docs.split_at_mut(j);
        (&mut l[i], &mut r[0])
    } else {
        let (l, r) = docs.split_at_mut(i);
        (&mut r[0], &mut l[j])
    }
}

#[test]
fn concurrent_hello_and_world_converge() {
    let mut alice = Document::new(1);
    let mut bob = Document::new(2);
    alice.insert(0, "Hello").unwrap();
    bob.insert(0, "World").unwrap();
    sync(&mut alice, &mut bob);
    sync(&mut bob, &mut alice);
    assert_eq!(alice.text(), bob.text());
    // Replica 1 sorts first among concurrent siblings.
    assert_eq!(alice.text(), "HelloWorld");
}

/// Types `word` one character per operation at position `at` (forwards), or always at `at`
/// (backwards: each new character goes before the previous one).
fn type_word(doc: &mut Document, at: u64, word: &str, backwards: bool) {
    let chars: Vec<char> = word.chars().collect();
    if backwards {
        for c in chars.iter().rev() {
            doc.insert(at, &c.to_string()).unwrap();
        }
    } else {
        for (i, c) in chars.iter().enumerate() {
            doc.insert(at + i as u64, &c.to_string()).unwrap();
        }
    }
}

#[test]
fn words_typed_at_the_same_place_never_interleave() {
    for backwards in [false, true] {
        for order in [false, true] {
            let mut base = Document::new(10);
            base.insert(0, "[]").unwrap();
            let mut docs: Vec<Document> = (1..=3)
                .map(|r| {
                    let mut d = Document::new(r);
                    d.merge(&mut base).unwrap();
                    d
                })
                .collect();
            let words = ["apple", "banana", "cherry"];
            for (doc, word) in docs.iter_mut().zip(words) {
                type_word(doc, 1, word, backwards);
            }
            // Deliver one operation at a time, in two different orders.
            let mut everything = Document::new(99);
            everything.merge(&mut base).unwrap();
            let mut all_ops: Vec<Op> = Vec::new();
            for doc in &mut docs {
                all_ops.extend(doc.ops_since(&base.version()));
            }
            if order {
                all_ops.reverse();
            }
            for op in all_ops {
                everything.apply(op).unwrap();
            }
            assert_eq!(everything.pending_len(), 0);
            let text = everything.text();
            let inner = &text[1..text.len() - 1];
            let mut sorted = words.to_vec();
            sorted.sort_by_key(|w| inner.find(w).expect("each word appears whole"));
            assert_eq!(inner, sorted.concat(), "backwards={backwards}");
        }
    }
}

#[test]
fn shuffled_single_operations_are_held_until_ready_and_converge() {
    let mut rng = Rng::new(42);
    let mut docs: Vec<Document> = (0..3).map(Document::new).collect();
    for step in 0..300 {
        let i = rng.below(3) as usize;
        let patch = random_patch(&mut rng, docs[i].len());
        apply_patch(&mut docs[i], &patch);
        if step % 17 == 0 {
            let j = (i + 1) % 3;
            let (a, b) = pair(&mut docs, i, j);
            b.merge(a).unwrap();
        }
    }
    let mut reference = Document::new(100);
    for doc in &mut docs {
        reference.merge(doc).unwrap();
    }
    let mut ops = reference.ops_since(&Version::new());
    // Fisher-Yates with the test RNG: arbitrary delivery order.
    for i in (1..ops.len()).rev() {
        ops.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut shuffled = Document::new(101);
    for op in ops {
        shuffled.apply(op).unwrap();
    }
    assert_eq!(shuffled.pending_len(), 0);
    assert_eq!(shuffled.text(), reference.text());
    assert_eq!(shuffled.version(), reference.version());
}

#[test]
fn duplicate_and_overlapping_operations_are_ignored() {
    let mut a = Document::new(1);
    a.insert(0, "abcdef").unwrap();
    a.delete(1..3).unwrap();
    let ops = a.ops_since(&Version::new());
    let mut b = Document::new(2);
    b.apply_ops(ops.clone()).unwrap();
    b.apply_ops(ops.clone()).unwrap();
    // An insert overlapping what b already has: only the new tail applies.
    a.insert(4, "XY").unwrap();
    let mut since = b.version();
    since.set(1, since.get(1) - 2);
    b.apply_ops(a.ops_since(&since)).unwrap();
    assert_eq!(b.text(), a.text());
    assert_eq!(b.version(), a.version());
}

#[test]
fn encoded_document_loads_and_keeps_collaborating() {
    let mut rng = Rng::new(7);
    let mut docs: Vec<Document> = (0..3).map(Document::new).collect();
    for _ in 0..200 {
        let i = rng.below(3) as usize;
        let patch = random_patch(&mut rng, docs[i].len());
        apply_patch(&mut docs[i], &patch);
    }
    sync_all_and_assert_converged(&mut docs);
    let bytes = docs[0].encode();
    let mut loaded = Document::decode(&bytes, 0).expect("decodes");
    assert_eq!(loaded.text(), docs[0].text());
    assert_eq!(loaded.version(), docs[0].version());
    // Continue as replica 0 from the loaded copy; the others still converge with it.
    loaded.insert(0, "¡").unwrap();
    let end = docs[1].len();
    docs[1].insert(end, "!").unwrap();
    docs[0] = loaded;
    sync_all_and_assert_converged(&mut docs);
    assert!(docs[0].text().starts_with('¡') && docs[0].text().ends_with('!'));
}

#[test]
fn generated_concurrent_trace_replays_and_converges() {
    for seed in 0..8 {
        let (json, end) = concurrent_trace(seed, 3 + (seed as usize % 3), 120);
        let trace = Trace::parse(json.as_bytes()).expect("generated trace parses");
        assert!(trace.is_concurrent());
        let replicas = replay_concurrent(&trace).expect("replays");
        for replica in &replicas {
            assert_eq!(replica.text(), end, "seed {seed}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// 3–5 replicas edit concurrently (inserts, deletes, replacements, unicode) and sync in a
    /// random order of random pairs; after a final full sync all texts are identical.
    #[test]
    fn random_concurrent_edits_converge(seed in any::<u64>(), replicas in 3usize..=5, steps in 1usize..120) {
        let mut rng = Rng::new(seed);
        let mut docs: Vec<Document> = (0..replicas as u64).map(Document::new).collect();
        for _ in 0..steps {
            let i = rng.below(replicas as u64) as usize;
            match rng.below(4) {
                0 => {
                    let j = (i + 1 + rng.below(replicas as u64 - 1) as usize) % replicas;
                    let (a, b) = pair(&mut docs, i, j);
                    if rng.below(2) == 0 { sync(a, b) } else { b.merge(a).unwrap() }
                }
                1 if docs[i].undo() => {}
                _ => {
                    let patch = random_patch(&mut rng, docs[i].len());
                    apply_patch(&mut docs[i], &patch);
                }
            }
        }
        sync_all_and_assert_converged(&mut docs);
        let loaded = Document::decode(&docs[0].encode(), 0).unwrap();
        prop_assert_eq!(loaded.text(), docs[0].text());
    }
}

#[test]
fn long_concurrent_session_converges_across_leaf_splits() {
    // Thousands of edits on three replicas with sparse syncs: documents large enough that
    // remote integration runs across many leaves and leaf splits move indexed runs.
    let mut rng = Rng::new(2024);
    let mut docs: Vec<Document> = (0..3).map(Document::new).collect();
    for step in 0..6000 {
        let i = rng.below(3) as usize;
        let mut patch = random_patch(&mut rng, docs[i].len());
        if step % 2 == 0 {
            patch.1 = 0;
        }
        apply_patch(&mut docs[i], &patch);
        if rng.below(40) == 0 {
            let j = (i + 1 + rng.below(2) as usize) % 3;
            let (a, b) = pair(&mut docs, i, j);
            sync(a, b);
        }
    }
    sync_all_and_assert_converged(&mut docs);
    assert!(docs[0].len() > 2000, "document grew to {}", docs[0].len());
    let loaded = Document::decode(&docs[1].encode(), 1).unwrap();
    assert_eq!(loaded.text(), docs[0].text());
}

#[test]
fn concurrent_trace_with_an_agent_branching_from_an_older_version_converges() {
    // Agent 0 makes txn 2 on top of txn 0 only, although its replica already holds txn 1 (a
    // branch, as in git histories); agent 1 then merges both branches.
    let json = r#"{"kind":"concurrent","numAgents":2,"endContent":"","txns":[
        {"agent":0,"parents":[],"numChildren":2,"patches":[[0,0,"abc"]]},
        {"agent":0,"parents":[0],"numChildren":1,"patches":[[0,0,"X"]]},
        {"agent":0,"parents":[0],"numChildren":1,"patches":[[3,0,"Y"]]},
        {"agent":1,"parents":[1,2],"numChildren":0,"patches":[[0,1,"Z"],[5,0,"!"]]}]}"#;
    let trace = Trace::parse(json.as_bytes()).unwrap();
    let replicas = replay_concurrent(&trace).expect("replays");
    for replica in &replicas {
        assert_eq!(replica.text(), "ZabcY!");
    }
}

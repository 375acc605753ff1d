//! Bad input: corrupt, truncated or arbitrary bytes are rejected with an error and the document
//! is unchanged; well-framed but nonsensical operations never panic.

mod common;

use common::{Rng, apply_patch, random_patch};
use proptest::prelude::*;
use text::{CharId, DecodeError, Document, Op, UpdateError, Version, decode_ops, encode_ops};

/// A document with some history, and an update carrying edits it lacks.
fn document_and_update(seed: u64) -> (Document, Vec<u8>, Vec<u8>) {
    let mut rng = Rng::new(seed);
    let mut target = Document::new(1);
    let mut source = Document::new(2);
    for _ in 0..20 {
        let patch = random_patch(&mut rng, target.len());
        apply_patch(&mut target, &patch);
    }
    source.merge(&mut target).unwrap();
    for _ in 0..20 {
        let patch = random_patch(&mut rng, source.len());
        apply_patch(&mut source, &patch);
    }
    let update = source.encode_update_since(&target.version());
    let whole = source.encode();
    (target, update, whole)
}

/// What must not change when input is rejected.
fn state(doc: &Document) -> (String, Version, usize) {
    (doc.text(), doc.version(), doc.pending_len())
}

#[test]
fn wrong_magic_and_future_versions_are_named() {
    let (mut doc, update, whole) = document_and_update(1);
    let mut future = update.clone();
    future[3] = 9;
    assert_eq!(
        doc.apply_update(&future),
        Err(UpdateError::Decode(DecodeError::UnsupportedVersion(9)))
    );
    assert!(matches!(
        doc.apply_update(&whole),
        Err(UpdateError::Decode(DecodeError::BadMagic(_)))
    ));
    assert!(matches!(
        Document::decode(&update, 3),
        Err(DecodeError::BadMagic(_))
    ));
    // The valid update still applies afterwards.
    doc.apply_update(&update).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn bit_flipped_updates_are_rejected_unchanged(seed in 0u64..1000, at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let (mut doc, mut update, _) = document_and_update(seed);
        let before = state(&doc);
        let at = at.index(update.len());
        update[at] ^= 1 << bit;
        prop_assert!(doc.apply_update(&update).is_err());
        prop_assert_eq!(state(&doc), before);
    }

    #[test]
    fn truncated_updates_are_rejected_unchanged(seed in 0u64..1000, cut in any::<prop::sample::Index>()) {
        let (mut doc, update, _) = document_and_update(seed);
        let before = state(&doc);
        let cut = cut.index(update.len());
        prop_assert!(doc.apply_update(&update[..cut]).is_err());
        prop_assert_eq!(state(&doc), before);
    }

    #[test]
    fn arbitrary_bytes_are_rejected_unchanged(bytes in prop::collection::vec(any::<u8>(), 0..200), magic in any::<bool>()) {
        let (mut doc, _, _) = document_and_update(5);
        let before = state(&doc);
        let mut bytes = bytes;
        if magic && bytes.len() >= 4 {
            bytes[..4].copy_from_slice(b"CTU\x01");
        }
        prop_assert!(doc.apply_update(&bytes).is_err());
        prop_assert_eq!(state(&doc), before);
        prop_assert!(Document::decode(&bytes, 1).is_err());
    }

    #[test]
    fn corrupt_or_truncated_documents_are_rejected(seed in 0u64..1000, at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let (_, _, whole) = document_and_update(seed);
        let mut flipped = whole.clone();
        let at_flip = at.index(whole.len());
        flipped[at_flip] ^= 1 << bit;
        prop_assert!(Document::decode(&flipped, 1).is_err());
        prop_assert!(Document::decode(&whole[..at_flip], 1).is_err());
        prop_assert!(Document::decode(&whole, 1).is_ok());
    }

    /// Checksum-valid updates of random, mostly nonsensical operations: applying them never
    /// panics and the document stays self-consistent and able to sync.
    #[test]
    fn nonsense_operations_never_panic(ops in prop::collection::vec(arbitrary_op(), 0..12)) {
        let (mut doc, _, _) = document_and_update(9);
        let bytes = encode_ops(&ops);
        prop_assert_eq!(decode_ops(&bytes).unwrap(), ops);
        let _ = doc.apply_update(&bytes);
        prop_assert_eq!(doc.text().chars().count() as u64, doc.len());
        let mut copy = Document::new(77);
        copy.merge(&mut doc).unwrap();
        prop_assert_eq!(copy.text(), doc.text());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary bodies in a valid frame (magic, compression, checksum) reach every field
    /// check: decoding fails cleanly or yields something usable, never a panic.
    #[test]
    fn validly_framed_garbage_never_panics(body in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(mut doc) = Document::decode(&text::seal_document_body(&body), 4) {
            prop_assert_eq!(doc.text().chars().count() as u64, doc.len());
            let _ = doc.insert(doc.len() / 2, "x");
            let _ = doc.ops_since(&Version::new());
        }
        let (mut doc, _, _) = document_and_update(3);
        let before = state(&doc);
        match doc.apply_update(&text::seal_update_body(&body)) {
            Err(UpdateError::Decode(_)) => prop_assert_eq!(state(&doc), before),
            _ => prop_assert_eq!(doc.text().chars().count() as u64, doc.len()),
        }
    }

    /// A valid document body with one byte changed, re-framed validly: never a panic.
    #[test]
    fn mutated_document_bodies_never_panic(seed in 0u64..200, at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let (_, _, whole) = document_and_update(seed);
        let body = inflate_body(&whole);
        let mut body = body;
        let at = at.index(body.len());
        body[at] = byte;
        if let Ok(mut doc) = Document::decode(&text::seal_document_body(&body), 4) {
            prop_assert_eq!(doc.text().chars().count() as u64, doc.len());
            let _ = doc.delete(0..doc.len().min(3));
            let mut copy = Document::new(5);
            let _ = copy.merge(&mut doc);
        }
    }
}

/// The uncompressed body of an encoded document.
fn inflate_body(encoded: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut body = Vec::new();
    flate2::read::DeflateDecoder::new(&encoded[4..encoded.len() - 4])
        .read_to_end(&mut body)
        .expect("our own encoding inflates");
    body
}

/// A random operation over small replica ids and sequence numbers (often referring to
/// characters that exist, often not).
fn arbitrary_op() -> impl Strategy<Value = Op> {
    let id = (0u64..4, 0u64..30).prop_map(|(replica, seq)| CharId { replica, seq });
    prop_oneof![
        (
            id.clone(),
            prop::option::of(id.clone()),
            prop::option::of(id.clone()),
            "[a-zé中😀]{1,4}"
        )
            .prop_map(|(id, origin_left, origin_right, text)| Op::Insert {
                id,
                origin_left,
                origin_right,
                text
            }),
        (id.clone(), 1u64..5, id, any::<bool>()).prop_map(|(id, len, target, reversed)| {
            Op::Delete {
                id,
                len,
                target,
                reversed,
            }
        }),
    ]
}

//! Local editing against a plain model, undo/redo of only this replica's edits (also after
//! remote edits arrived), and cursor anchors that stay on their character.

mod common;

use common::{Rng, apply_patch, random_patch};
use text::{Document, EditError};

#[test]
fn random_local_edits_match_a_plain_model_across_leaf_splits() {
    // Long enough (thousands of edits, multi-byte characters) to split leaves many times.
    for seed in 0..4 {
        let mut rng = Rng::new(seed);
        let mut doc = Document::new(1);
        let mut model: Vec<char> = Vec::new();
        for step in 0..4000 {
            let patch = random_patch(&mut rng, model.len() as u64);
            // Bias towards growth and towards typing at one place, like real editing.
            let patch = if step % 3 == 0 {
                (patch.0, 0, patch.2)
            } else {
                patch
            };
            apply_patch(&mut doc, &patch);
            let (pos, deleted, inserted) = &patch;
            let pos = *pos as usize;
            model.splice(pos..pos + *deleted as usize, inserted.chars());
            if step % 500 == 0 {
                assert_eq!(doc.text(), model.iter().collect::<String>());
            }
        }
        assert_eq!(doc.text(), model.iter().collect::<String>());
        assert_eq!(doc.len(), model.len() as u64);
    }
}

#[test]
fn edits_outside_the_document_are_rejected_without_change() {
    let mut doc = Document::new(1);
    doc.insert(0, "abc").unwrap();
    assert!(matches!(
        doc.insert(4, "x"),
        Err(EditError::OutOfRange { .. })
    ));
    assert!(matches!(
        doc.delete(2..5),
        Err(EditError::OutOfRange { .. })
    ));
    #[allow(clippy::reversed_empty_ranges)]
    let reversed = doc.delete(2..1);
    assert!(reversed.is_err());
    assert_eq!(doc.text(), "abc");
}

#[test]
fn undo_and_redo_revert_only_local_edits_after_remote_ones_arrive() {
    let mut alice = Document::new(1);
    let mut bob = Document::new(2);
    alice.insert(0, "hello").unwrap();
    bob.merge(&mut alice).unwrap();
    // Alice types " world"; Bob concurrently adds "!" at the start.
    alice.insert(5, " world").unwrap();
    bob.insert(0, "!").unwrap();
    alice.merge(&mut bob).unwrap();
    assert_eq!(alice.text(), "!hello world");
    // Undo removes only Alice's latest edit, not Bob's.
    assert!(alice.undo());
    assert_eq!(alice.text(), "!hello");
    assert!(alice.redo());
    assert_eq!(alice.text(), "!hello world");
    // Undoing a delete restores the text where it was, even after remote edits around it.
    alice.delete(1..6).unwrap();
    assert_eq!(alice.text(), "! world");
    bob.merge(&mut alice).unwrap();
    bob.insert(bob.len(), "?").unwrap();
    alice.merge(&mut bob).unwrap();
    assert!(alice.undo());
    assert_eq!(alice.text(), "!hello world?");
    // The undo is an ordinary edit: Bob converges to it.
    bob.merge(&mut alice).unwrap();
    assert_eq!(bob.text(), alice.text());
    // Bob's own undo history holds only Bob's edits.
    assert!(bob.undo());
    assert_eq!(bob.text(), "!hello world");
    assert!(bob.undo());
    assert_eq!(bob.text(), "hello world");
    assert!(!bob.undo());
}

#[test]
fn a_new_edit_clears_redo_and_undo_history_is_bounded() {
    let mut doc = Document::new(1);
    doc.set_undo_limit(2);
    doc.insert(0, "a").unwrap();
    doc.delete(0..1).unwrap();
    doc.insert(0, "b").unwrap();
    doc.delete(0..1).unwrap();
    doc.insert(0, "c").unwrap();
    assert!(doc.undo());
    assert!(doc.undo());
    assert_eq!(doc.text(), "b");
    assert!(!doc.undo(), "only two steps are kept");
    doc.insert(1, "x").unwrap();
    assert!(!doc.redo(), "a new edit clears redo");
}

#[test]
fn anchors_stay_on_their_character_across_concurrent_edits() {
    let mut alice = Document::new(1);
    alice.insert(0, "The quick fox").unwrap();
    let mut bob = Document::new(2);
    bob.merge(&mut alice).unwrap();
    // Alice's cursor sits before "fox".
    let cursor = alice.anchor_at(10);
    let end = alice.anchor_at(alice.len());
    // Bob inserts before it and deletes after; Alice inserts at the cursor.
    bob.insert(4, "very ").unwrap();
    bob.delete(9..15).unwrap(); // "quick " (shifted by 5)
    alice.insert(10, "brown ").unwrap();
    alice.merge(&mut bob).unwrap();
    bob.merge(&mut alice).unwrap();
    assert_eq!(alice.text(), bob.text());
    assert_eq!(alice.text(), "The very brown fox");
    let at = alice.resolve_anchor(&cursor).unwrap();
    assert_eq!(&alice.text()[at as usize..], "fox");
    assert_eq!(bob.resolve_anchor(&cursor), Some(at));
    assert_eq!(alice.resolve_anchor(&end), Some(alice.len()));
    // A deleted character's anchor resolves to where it was.
    let on_f = bob.anchor_at(15);
    bob.delete(15..16).unwrap();
    assert_eq!(bob.resolve_anchor(&on_f), Some(15));
    // An anchor naming a character this replica never saw does not resolve.
    let mut stranger = Document::new(3);
    assert_eq!(stranger.resolve_anchor(&cursor), None);
}

#[test]
fn versions_convert_to_clock_version_vectors_and_compare_causally() {
    let mut a = Document::new(1);
    let mut b = Document::new(2);
    a.insert(0, "ab").unwrap();
    b.merge(&mut a).unwrap();
    let shared = b.version();
    b.insert(0, "c").unwrap();
    a.delete(0..1).unwrap();
    let vector = clock::VersionVector::from(&a.version());
    assert_eq!(vector.get(1), 3, "two insertions and one deletion");
    assert_eq!(text::Version::from(&vector), a.version());
    assert!(a.version().contains_dot(&clock::Dot {
        replica: 1,
        counter: 3
    }));
    assert!(!a.version().contains_dot(&clock::Dot {
        replica: 2,
        counter: 1
    }));
    assert_eq!(
        a.version().compare(&b.version()),
        clock::Causality::Concurrent
    );
    assert_eq!(shared.compare(&a.version()), clock::Causality::Before);
}

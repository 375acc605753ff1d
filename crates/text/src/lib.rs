//! A sequence CRDT for collaborative text: replicas edit by Unicode code point position,
//! exchange operations in any causal order, and converge to the same text without
//! interleaving concurrent insertions at the same place.
//!
//! The ordering rule is **FugueMax** (Weidner and Kleppmann, "The Art of the Fugue"), applied
//! through the left-origin/right-origin integration of Yjs as modified by diamond-types
//! (“YjsMod”), which produces the same order. It was chosen because it is *maximally
//! non-interleaving*: two users typing words at the same place never get them mixed letter by
//! letter, forwards or backwards, and it needs only two origins per run of characters, which
//! run-length encode well.
//!
//! Characters are identified by (replica, sequence number) and stored as runs in a two-level
//! tree of leaves indexed by visible length, with a map from identifiers to leaves for remote
//! operations; local edits hit a cached cursor.
//!
//! **The contract:** a local edit ([`Document::insert`], [`Document::delete`], `undo`, `redo`)
//! takes effect at once and only locally; to share edits, send a peer
//! [`Document::encode_update_since`] its [`Document::version`] (or [`Document::ops_since`]).
//! Remote operations may arrive in any order, duplicated or overlapping: one whose
//! dependencies are missing is held until they arrive. A corrupt update is rejected before
//! anything changes. Replicas that have applied the same operations hold the same text.
//! Design notes: `docs/text.md`.
//!
//! ```
//! use text::Document;
//!
//! let mut alice = Document::new(1);
//! let mut bob = Document::new(2);
//! alice.insert(0, "Hello").unwrap();
//! bob.insert(0, "World").unwrap();
//! // Exchange everything each side lacks, in either direction.
//! let update = alice.encode_update_since(&bob.version());
//! bob.apply_update(&update).unwrap();
//! alice.merge(&mut bob).unwrap();
//! assert_eq!(alice.text(), bob.text());
//! assert!(alice.text() == "HelloWorld" || alice.text() == "WorldHello");
//! ```

#![warn(missing_docs)]

mod doc;
mod encoding;
mod op;
pub mod trace;
mod tree;

pub use doc::{ApplyError, Document, EditError, PENDING_MAX, UNDO_LIMIT_DEFAULT};
pub use encoding::{DOCUMENT_CHARS_MAX, DecodeError, UpdateError, decode_ops, encode_ops};
#[doc(hidden)]
pub use encoding::{seal_document_body, seal_update_body};
pub use op::{Anchor, CharId, Op, ReplicaId, Version};

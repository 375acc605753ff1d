//! A sequence CRDT for collaborative text.

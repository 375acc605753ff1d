//! Benchmarks against rust-crdt (being written).
fn main() {}

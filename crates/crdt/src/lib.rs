//! Conflict-free replicated data types: counters, sets, registers, maps, with delta sync.

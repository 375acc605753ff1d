//! Raft consensus as a sans-IO state machine, with a replicated key-value store.

//! Fuzzes the OR-Set delta decoder (deltas may name removed elements): errors or valid deltas,
//! never a panic; applying a decoded delta never panics either.
#![no_main]

use crdt::{Crdt, Delta, OrSet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(delta) = Delta::<OrSet<String>>::from_bytes(data) {
        let again =
            Delta::<OrSet<String>>::from_bytes(&delta.to_bytes()).expect("re-encoding decodes");
        assert_eq!(again, delta);
        let mut state = OrSet::<String>::new();
        state.add(1, "a".to_string());
        state.apply(&delta);
    }
});

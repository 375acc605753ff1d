//! Fuzzes the `crdt::TwoPhaseSet<String>` decoder: any input gives an error or a value that re-encodes to bytes
//! decoding to the same value. Never a panic.
#![no_main]

use crdt::Codec;
use libfuzzer_sys::fuzz_target;

type Decoded = crdt::TwoPhaseSet<String>;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = Decoded::from_bytes(data) {
        let again = Decoded::from_bytes(&value.to_bytes()).expect("re-encoding decodes");
        assert_eq!(again, value);
    }
});

//! Feeds arbitrary bytes to the accepting side of the handshake: never a panic, never a session.
#![no_main]

use libfuzzer_sys::fuzz_target;
use net::handshake::{Hello, accept};

fuzz_target!(|bytes: &[u8]| {
    let own = Hello { node: 1, nonce: [3; 16] };
    assert!(!matches!(accept(b"fuzzing key", own, bytes, 1 << 16), Ok(Some(_))));
});

//! Feeds arbitrary bytes to the frame decoder: it must return an error or ask for more, never panic
//! and never accept a frame (no one but a key holder can write one).
#![no_main]

use libfuzzer_sys::fuzz_target;
use net::frame::FrameCodec;

fuzz_target!(|bytes: &[u8]| {
    let mut codec = FrameCodec::new(b"fuzzing key", 1 << 16);
    assert!(!matches!(codec.decode(bytes), Ok(Some(_))));
});

//! Arbitrary bytes as a whole document: rejected with an error, or decoded into a document
//! that can be read, edited and re-encoded without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use text::Document;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut doc) = Document::decode(data, 9) {
        let len = doc.len();
        assert_eq!(doc.text().chars().count() as u64, len);
        let _ = doc.insert(len / 2, "x");
        let _ = doc.encode();
    }
});

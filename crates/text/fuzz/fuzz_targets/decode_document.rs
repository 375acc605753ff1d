//! Arbitrary bytes as a whole document: rejected with an error, or decoded into a document
//! that can be read, edited and re-encoded without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use text::Document;

fuzz_target!(|data: &[u8]| {
    // Half the time as given, half the time framed validly so the field checks are reached.
    let framed = if data.first().is_some_and(|b| b & 1 == 1) {
        text::seal_document_body(&data[1..])
    } else {
        data.to_vec()
    };
    if let Ok(mut doc) = Document::decode(&framed, 9) {
        let len = doc.len();
        assert_eq!(doc.text().chars().count() as u64, len);
        let _ = doc.insert(len / 2, "x");
        let _ = doc.encode();
    }
});

//! Arbitrary bytes as an update: either rejected with the document unchanged, or applied
//! without panicking, leaving a document whose text and length agree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use text::Document;

fuzz_target!(|data: &[u8]| {
    let mut doc = Document::new(1);
    doc.insert(0, "héllo wörld").unwrap();
    doc.delete(2..4).unwrap();
    let before = (doc.text(), doc.version());
    // Half the time as given, half the time framed validly so the field checks are reached.
    let framed = if data.first().is_some_and(|b| b & 1 == 1) {
        text::seal_update_body(&data[1..])
    } else {
        data.to_vec()
    };
    let data = framed.as_slice();
    match doc.apply_update(data) {
        Err(text::UpdateError::Decode(_)) => assert_eq!((doc.text(), doc.version()), before),
        _ => assert_eq!(doc.text().chars().count() as u64, doc.len()),
    }
    // Also feed the decoded operations of a checksum-valid re-encoding, so the fuzzer reaches
    // the CRDT past the checksum.
    if let Ok(ops) = text::decode_ops(data) {
        let mut other = Document::new(2);
        let _ = other.apply_update(&text::encode_ops(&ops));
        assert_eq!(other.text().chars().count() as u64, other.len());
    }
});

//! Feeds arbitrary bytes to the RESP request and reply parsers: never a panic; a parsed request
//! consumes at least one byte and no more than given; the resumable parser, fed a prefix and then
//! the whole buffer, agrees with the one-shot parser; a multibulk request re-encodes to exactly
//! the bytes it was read from (headers have one canonical form).
#![no_main]

use libfuzzer_sys::fuzz_target;
use node::resp::{Limits, RequestParser, encode_request, parse_request, parse_value};

fuzz_target!(|bytes: &[u8]| {
    let limits = Limits {
        max_request_bytes: 1 << 16,
        max_args: 64,
        max_inline_bytes: 256,
    };
    let whole = parse_request(bytes, &limits);
    if let Ok(Some((args, used))) = &whole {
        assert!(*used > 0 && *used <= bytes.len());
        if bytes[0] == b'*' && !args.is_empty() {
            let mut encoded = Vec::new();
            encode_request(args, &mut encoded);
            assert_eq!(&encoded[..], &bytes[..*used]);
        }
    }
    // Split where the first byte says. A prefix that already decides (a request or an error)
    // must decide the same as the whole; otherwise resuming on the whole must match it.
    let split = bytes
        .first()
        .map_or(0, |&b| usize::from(b) % (bytes.len() + 1));
    let mut parser = RequestParser::new(limits);
    match parser.parse(&bytes[..split]) {
        Ok(None) => assert_eq!(parser.parse(bytes), whole),
        decided => assert_eq!(decided, whole),
    }
    if let Ok(Some((_, used))) = parse_value(bytes) {
        assert!(used > 0 && used <= bytes.len());
    }
});

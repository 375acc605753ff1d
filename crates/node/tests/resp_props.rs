//! Property tests for RESP: requests and replies round-trip through encode and parse, any split of
//! the bytes waits and then gives the same result, and arbitrary bytes never panic the parsers.

use node::resp::{
    Limits, Protocol, RequestParser, Value, encode_request, parse_request, parse_value,
};
use proptest::prelude::*;

/// Any request argument, binary data included.
fn argument() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..40)
}

/// A reply line's text: no CR or LF (the encoder would replace them).
fn line_text() -> impl Strategy<Value = String> {
    "[^\r\n]{0,20}"
}

/// Any reply value that reads back exactly in RESP3 (no NaN: it is not equal to itself).
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        line_text().prop_map(Value::Simple),
        line_text().prop_map(Value::Error),
        any::<i64>().prop_map(Value::Integer),
        argument().prop_map(Value::Bulk),
        Just(Value::Null),
        any::<f64>()
            .prop_filter("NaN is not equal to itself", |d| !d.is_nan())
            .prop_map(Value::Double),
        any::<bool>().prop_map(Value::Boolean),
        (prop::array::uniform3(b'a'..=b'z'), argument())
            .prop_map(|(format, text)| Value::Verbatim { format, text }),
        "-?[1-9][0-9]{0,40}".prop_map(Value::BigNumber),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Set),
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Push),
            prop::collection::vec((inner.clone(), inner), 0..4).prop_map(Value::Map),
        ]
    })
}

/// What a RESP2 client reads back for `value` (the downgrades of `Value::encode`).
fn downgraded(value: Value) -> Value {
    match value {
        Value::Array(items) | Value::Set(items) | Value::Push(items) => {
            Value::Array(items.into_iter().map(downgraded).collect())
        }
        Value::Map(pairs) => Value::Array(
            pairs
                .into_iter()
                .flat_map(|(k, v)| [downgraded(k), downgraded(v)])
                .collect(),
        ),
        Value::Boolean(b) => Value::Integer(i64::from(b)),
        Value::Double(d) => Value::Bulk(
            Value::Double(d).to_bytes(Protocol::Resp3)[1..]
                .strip_suffix(b"\r\n")
                .unwrap()
                .to_vec(),
        ),
        Value::Verbatim { text, .. } => Value::Bulk(text),
        Value::BigNumber(digits) => Value::Bulk(digits.into_bytes()),
        other => other,
    }
}

proptest! {
    #[test]
    fn multibulk_requests_round_trip(args in prop::collection::vec(argument(), 1..10)) {
        let mut bytes = Vec::new();
        encode_request(&args, &mut bytes);
        prop_assert_eq!(parse_request(&bytes, &Limits::default()), Ok(Some((args, bytes.len()))));
    }

    #[test]
    fn inline_requests_round_trip(args in prop::collection::vec("[a-zA-Z0-9:_.-]{1,12}", 1..8)) {
        let line = format!("{}\r\n", args.join(" "));
        let expected: Vec<Vec<u8>> = args.into_iter().map(String::into_bytes).collect();
        prop_assert_eq!(parse_request(line.as_bytes(), &Limits::default()), Ok(Some((expected, line.len()))));
    }

    #[test]
    fn any_split_of_a_pipeline_gives_the_same_requests(
        requests in prop::collection::vec(prop::collection::vec(argument(), 1..5), 1..6),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let mut bytes = Vec::new();
        for args in &requests {
            encode_request(args, &mut bytes);
        }
        // Deliver the bytes in pieces; parse whenever a piece arrives, as a server would.
        let mut ends: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len())).collect();
        ends.push(bytes.len());
        ends.sort_unstable();
        let mut parser = RequestParser::new(Limits::default());
        let (mut start, mut parsed) = (0, Vec::new());
        for end in ends {
            while let Some((args, used)) = parser.parse(&bytes[start..end]).unwrap() {
                parsed.push(args);
                start += used;
            }
        }
        prop_assert_eq!(start, bytes.len());
        prop_assert_eq!(parsed, requests);
    }

    #[test]
    fn resp3_replies_round_trip(value in value()) {
        let bytes = value.to_bytes(Protocol::Resp3);
        prop_assert_eq!(parse_value(&bytes), Ok(Some((value, bytes.len()))));
    }

    #[test]
    fn resp2_replies_read_back_downgraded(value in value()) {
        let bytes = value.to_bytes(Protocol::Resp2);
        prop_assert_eq!(parse_value(&bytes), Ok(Some((downgraded(value), bytes.len()))));
    }

    #[test]
    fn every_prefix_of_a_reply_is_incomplete(value in value()) {
        let bytes = value.to_bytes(Protocol::Resp3);
        for end in 0..bytes.len() {
            prop_assert_eq!(parse_value(&bytes[..end]), Ok(None));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let limits = Limits { max_request_bytes: 64, max_args: 8, max_inline_bytes: 32 };
        if let Ok(Some((_, used))) = parse_request(&bytes, &limits) {
            prop_assert!(used > 0 && used <= bytes.len());
        }
        if let Ok(Some((_, used))) = parse_value(&bytes) {
            prop_assert!(used > 0 && used <= bytes.len());
        }
    }

    #[test]
    fn mutated_requests_never_panic(
        args in prop::collection::vec(argument(), 1..5),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = Vec::new();
        encode_request(&args, &mut bytes);
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        let mut parser = RequestParser::new(Limits::default());
        for end in 0..=bytes.len() {
            if parser.parse(&bytes[..end]).is_err() {
                break;
            }
            parser = RequestParser::new(Limits::default());
        }
        let _ = parse_value(&bytes);
    }
}

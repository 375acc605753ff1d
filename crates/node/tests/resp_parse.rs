//! Request and reply parsing, case by case: every error Redis names, inline quoting, pipelining,
//! every split point of partial input, and the RESP2 downgrades of RESP3 replies.

use node::resp::{
    Limits, ParsedRequest, Protocol, RequestParser, RespError, Value, encode_request,
    parse_integer, parse_request, parse_value,
};

/// Parses `bytes` with default limits.
fn parse(bytes: &[u8]) -> Result<Option<ParsedRequest>, RespError> {
    parse_request(bytes, &Limits::default())
}

/// The arguments of the one complete request `bytes`, checking it consumed everything.
fn args_of(bytes: &[u8]) -> Vec<String> {
    let (args, used) = parse(bytes).expect("valid").expect("complete");
    assert_eq!(used, bytes.len(), "consumed all of {bytes:?}");
    args.into_iter()
        .map(|a| String::from_utf8(a).expect("utf-8"))
        .collect()
}

/// The error `bytes` give.
fn error_of(bytes: &[u8]) -> RespError {
    parse(bytes).expect_err("malformed")
}

#[test]
fn multibulk_and_inline_requests_parse() {
    assert_eq!(args_of(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"), ["GET", "k"]);
    assert_eq!(args_of(b"*1\r\n$0\r\n\r\n"), [""]);
    assert_eq!(args_of(b"PING\r\n"), ["PING"]);
    assert_eq!(args_of(b"PING\n"), ["PING"]);
    assert_eq!(args_of(b"  SET   k \t v  \r\n"), ["SET", "k", "v"]);
    // Bulk arguments are binary safe: CR, LF and NUL inside are data.
    let (args, _) = parse(b"*1\r\n$5\r\na\r\n\0b\r\n").unwrap().unwrap();
    assert_eq!(args, vec![b"a\r\n\0b".to_vec()]);
}

#[test]
fn inline_quotes_follow_redis_sdssplitargs() {
    assert_eq!(args_of(b"SET \"a b\" 'c d'\r\n"), ["SET", "a b", "c d"]);
    assert_eq!(
        args_of(b"ECHO \"x\\n\\t\\\"\\\\\"\r\n"),
        ["ECHO", "x\n\t\"\\"]
    );
    assert_eq!(args_of(b"ECHO \"\\x41\\x6a\"\r\n"), ["ECHO", "Aj"]);
    assert_eq!(args_of(b"ECHO 'it\\'s'\r\n"), ["ECHO", "it's"]);
    assert_eq!(args_of(b"ECHO \"\"\r\n"), ["ECHO", ""]);
    assert_eq!(args_of(b"a\"b\"\r\n"), ["ab"]);
    assert_eq!(error_of(b"SET \"a b\r\n"), RespError::UnbalancedQuotes);
    assert_eq!(error_of(b"SET \"a\"b c\r\n"), RespError::UnbalancedQuotes);
    assert_eq!(error_of(b"SET 'a'b\r\n"), RespError::UnbalancedQuotes);
}

#[test]
fn blank_and_empty_requests_have_no_arguments() {
    // Redis ignores these without a reply; the caller skips an empty argument list.
    for bytes in [
        &b"\r\n"[..],
        b"\n",
        b"   \r\n",
        b"*0\r\n",
        b"*-1\r\n",
        b"*-5\r\n",
    ] {
        let (args, used) = parse(bytes).unwrap().unwrap();
        assert!(args.is_empty(), "{bytes:?}");
        assert_eq!(used, bytes.len());
    }
}

#[test]
fn every_protocol_error_has_redis_text() {
    let cases: [(&[u8], &str); 12] = [
        (b"*abc\r\n", "Protocol error: invalid multibulk length"),
        (b"*01\r\n", "Protocol error: invalid multibulk length"),
        (b"*+1\r\n", "Protocol error: invalid multibulk length"),
        (
            b"*99999999999\r\n",
            "Protocol error: invalid multibulk length",
        ),
        (b"*1\r\nx", "Protocol error: expected '$', got 'x'"),
        (b"*1\r\n$-3\r\n", "Protocol error: invalid bulk length"),
        (b"*1\r\n$x\r\n", "Protocol error: invalid bulk length"),
        (b"*1\r\n$ 1\r\n", "Protocol error: invalid bulk length"),
        (b"*1\r\n$1\r\nabc\r\n", "Protocol error: expected '\\r\\n'"),
        (b"*1\rx", "Protocol error: expected '\\r\\n'"),
        (
            b"SET \"a\r\n",
            "Protocol error: unbalanced quotes in request",
        ),
        (
            b"*2\r\n$1\r\na\r\n:5\r\n",
            "Protocol error: expected '$', got ':'",
        ),
    ];
    for (bytes, text) in cases {
        assert_eq!(error_of(bytes).to_string(), text, "{bytes:?}");
    }
    assert_eq!(
        RespError::InvalidMultibulkLength
            .to_reply()
            .to_bytes(Protocol::Resp2),
        b"-ERR Protocol error: invalid multibulk length\r\n"
    );
}

#[test]
fn oversized_requests_are_refused_before_their_bytes_arrive() {
    let limits = Limits {
        max_request_bytes: 100,
        max_args: 4,
        max_inline_bytes: 16,
    };
    let parse = |bytes: &[u8]| parse_request(bytes, &limits);
    assert_eq!(parse(&[b'P'; 17]), Err(RespError::InlineTooBig));
    assert_eq!(parse(&[b'P'; 16]), Ok(None));
    assert_eq!(
        parse(b"PING PING PING PING\r\n"),
        Err(RespError::InlineTooBig)
    );
    let mut long_count = b"*".to_vec();
    long_count.extend([b'1'; 20]);
    assert_eq!(parse(&long_count), Err(RespError::MultibulkCountTooBig));
    let mut long_length = b"*1\r\n$".to_vec();
    long_length.extend([b'1'; 20]);
    assert_eq!(parse(&long_length), Err(RespError::BulkCountTooBig));
    assert_eq!(
        parse(b"*5\r\n"),
        Err(RespError::TooManyArguments { count: 5, max: 4 })
    );
    // A bulk longer than the request limit, and one that fits alone but not with its header.
    assert_eq!(parse(b"*1\r\n$101\r\n"), Err(RespError::InvalidBulkLength));
    assert_eq!(
        parse(b"*1\r\n$95\r\n"),
        Err(RespError::RequestTooLarge { max: 100 })
    );
    assert_eq!(parse(b"*1\r\n$80\r\n"), Ok(None));
    // The default limit: a claimed 1 GiB bulk is refused at once, not awaited or allocated.
    assert_eq!(
        parse_request(b"*1\r\n$1073741824\r\n", &Limits::default()),
        Err(RespError::InvalidBulkLength)
    );
    assert_eq!(
        parse_request(b"*2147483647\r\n", &Limits::default()),
        Err(RespError::TooManyArguments {
            count: 2_147_483_647,
            max: 1 << 20
        })
    );
}

#[test]
fn pipelined_requests_parse_one_after_another() {
    let mut buf = Vec::new();
    for i in 0..16 {
        encode_request(
            &[
                b"SET".to_vec(),
                format!("key:{i}").into_bytes(),
                b"xyz".to_vec(),
            ],
            &mut buf,
        );
    }
    buf.extend_from_slice(b"PING\r\n");
    let mut parser = RequestParser::new(Limits::default());
    let mut offset = 0;
    let mut requests = Vec::new();
    while let Some((args, used)) = parser.parse(&buf[offset..]).unwrap() {
        requests.push(args);
        offset += used;
    }
    assert_eq!(offset, buf.len());
    assert_eq!(requests.len(), 17);
    assert_eq!(
        requests[7],
        vec![b"SET".to_vec(), b"key:7".to_vec(), b"xyz".to_vec()]
    );
    assert_eq!(requests[16], vec![b"PING".to_vec()]);
}

#[test]
fn partial_input_at_every_split_point_waits_then_completes() {
    let mut request = Vec::new();
    encode_request(
        &[&b"MSET"[..], b"a", b"\r\n", b"", b"long value"],
        &mut request,
    );
    let inline = b"SET \"quoted key\" v\r\n".to_vec();
    for bytes in [request, inline] {
        let (expected, _) = parse(&bytes).unwrap().unwrap();
        for split in 0..bytes.len() {
            assert_eq!(
                parse(&bytes[..split]),
                Ok(None),
                "stateless, split at {split}"
            );
            // The resumable parser sees the prefix, then the whole buffer.
            let mut parser = RequestParser::new(Limits::default());
            assert_eq!(parser.parse(&bytes[..split]), Ok(None));
            assert_eq!(
                parser.parse(&bytes),
                Ok(Some((expected.clone(), bytes.len())))
            );
        }
    }
}

#[test]
fn resumable_parser_survives_byte_by_byte_delivery_and_resets_after_errors() {
    let mut bytes = Vec::new();
    encode_request(&[&b"HSET"[..], b"h", b"f", b"v"], &mut bytes);
    let mut parser = RequestParser::new(Limits::default());
    for end in 1..bytes.len() {
        assert_eq!(parser.parse(&bytes[..end]), Ok(None));
    }
    let (args, used) = parser.parse(&bytes).unwrap().unwrap();
    assert_eq!((args.len(), used), (4, bytes.len()));
    assert_eq!(parser.parse(b"*1\r\n?"), Err(RespError::ExpectedBulk(b'?')));
    assert_eq!(
        parser.parse(b"PING\r\n"),
        Ok(Some((vec![b"PING".to_vec()], 6)))
    );
}

#[test]
fn integers_parse_like_redis_string2ll() {
    assert_eq!(parse_integer(b"0"), Some(0));
    assert_eq!(parse_integer(b"-12"), Some(-12));
    assert_eq!(parse_integer(b"9223372036854775807"), Some(i64::MAX));
    assert_eq!(parse_integer(b"-9223372036854775808"), Some(i64::MIN));
    for bad in [
        &b""[..],
        b"-",
        b"-0",
        b"01",
        b"+1",
        b" 1",
        b"1 ",
        b"1.5",
        b"9223372036854775808",
        b"1e3",
    ] {
        assert_eq!(parse_integer(bad), None, "{bad:?}");
    }
}

#[test]
fn resp3_values_encode_and_downgrade_to_resp2() {
    let cases: [(Value, &[u8], &[u8]); 12] = [
        (Value::ok(), b"+OK\r\n", b"+OK\r\n"),
        (
            Value::error("ERR bad\r\nthing"),
            b"-ERR bad  thing\r\n",
            b"-ERR bad  thing\r\n",
        ),
        (Value::Integer(-42), b":-42\r\n", b":-42\r\n"),
        (
            Value::Integer(i64::MIN),
            b":-9223372036854775808\r\n",
            b":-9223372036854775808\r\n",
        ),
        (Value::bulk("hi"), b"$2\r\nhi\r\n", b"$2\r\nhi\r\n"),
        (Value::Null, b"_\r\n", b"$-1\r\n"),
        (Value::NullArray, b"_\r\n", b"*-1\r\n"),
        (Value::Boolean(true), b"#t\r\n", b":1\r\n"),
        (Value::Double(1.5), b",1.5\r\n", b"$3\r\n1.5\r\n"),
        (
            Value::Double(f64::NEG_INFINITY),
            b",-inf\r\n",
            b"$4\r\n-inf\r\n",
        ),
        (
            Value::Map(vec![(Value::bulk("k"), Value::Integer(1))]),
            b"%1\r\n$1\r\nk\r\n:1\r\n",
            b"*2\r\n$1\r\nk\r\n:1\r\n",
        ),
        (
            Value::Verbatim {
                format: *b"txt",
                text: b"hello".to_vec(),
            },
            b"=9\r\ntxt:hello\r\n",
            b"$5\r\nhello\r\n",
        ),
    ];
    for (value, resp3, resp2) in cases {
        assert_eq!(value.to_bytes(Protocol::Resp3), resp3, "{value:?} in RESP3");
        assert_eq!(value.to_bytes(Protocol::Resp2), resp2, "{value:?} in RESP2");
    }
    let set = Value::Set(vec![Value::bulk("a")]);
    assert_eq!(set.to_bytes(Protocol::Resp3), b"~1\r\n$1\r\na\r\n");
    assert_eq!(set.to_bytes(Protocol::Resp2), b"*1\r\n$1\r\na\r\n");
}

#[test]
fn replies_parse_including_resp3_extras() {
    let (value, used) = parse_value(b"|1\r\n+ttl\r\n:3\r\n$2\r\nok\r\nextra")
        .unwrap()
        .unwrap();
    assert_eq!((value, used), (Value::bulk("ok"), 22));
    assert_eq!(
        parse_value(b"!5\r\nERR x\r\n").unwrap().unwrap().0,
        Value::error("ERR x")
    );
    assert_eq!(
        parse_value(b"(-123456789012345678901234567890\r\n")
            .unwrap()
            .unwrap()
            .0,
        Value::BigNumber("-123456789012345678901234567890".into())
    );
    assert_eq!(
        parse_value(b">1\r\n+x\r\n").unwrap().unwrap().0,
        Value::Push(vec![Value::simple("x")])
    );
    assert_eq!(
        parse_value(b",nan\r\n")
            .unwrap()
            .unwrap()
            .0
            .to_bytes(Protocol::Resp3),
        b",nan\r\n"
    );
    assert_eq!(parse_value(b"*3\r\n:1\r\n"), Ok(None));
}

#[test]
fn malformed_replies_are_errors() {
    let cases: [(&[u8], RespError); 9] = [
        (b"?x\r\n", RespError::UnknownType(b'?')),
        (b":1.5\r\n", RespError::InvalidField("integer")),
        (b",\r\n", RespError::InvalidField("double")),
        (b",1.5x\r\n", RespError::InvalidField("double")),
        (b"#x\r\n", RespError::InvalidField("boolean")),
        (b"$-2\r\n", RespError::InvalidField("length")),
        (b"*-2\r\n", RespError::InvalidField("length")),
        (b"=2\r\nab\r\n", RespError::InvalidField("verbatim format")),
        (b"$1\r\nab\r\n", RespError::ExpectedCrlf),
    ];
    for (bytes, error) in cases {
        assert_eq!(parse_value(bytes), Err(error), "{bytes:?}");
    }
    let deep = "*1\r\n".repeat(100);
    assert_eq!(
        parse_value(deep.as_bytes()),
        Err(RespError::TooDeep { max: 64 })
    );
    // A huge declared array with few bytes present: no allocation for the claim, just a wait.
    assert_eq!(parse_value(b"*2000000000\r\n:1\r\n"), Ok(None));
}

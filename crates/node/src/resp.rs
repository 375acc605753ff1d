//! Redis serialization protocol (RESP2 and RESP3): request parsing and reply encoding.
//!
//! A client sends requests as multibulk arrays (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`, what every
//! client library sends) or as inline lines (`GET k\r\n`, what telnet and `redis-cli` in some modes
//! send). [`parse_request`] takes one request from the front of a buffer; [`RequestParser`] does the
//! same but remembers its progress through a request that has not fully arrived, so a large request
//! read in many pieces is scanned once. Replies are [`Value`]s, encoded for the protocol the
//! connection speaks (RESP3 after `HELLO 3`, otherwise RESP2, which has fewer types: see
//! [`Value::encode`]). [`parse_value`] reads replies back (for the load generator and tests).
//!
//! Every parser here is total: any input gives a value, a request for more bytes, or an error,
//! never a panic; no allocation is sized by a length the peer claims beyond the bytes present and
//! the [`Limits`].
//!
//! ```
//! use node::resp::{Limits, Protocol, Value, parse_request};
//!
//! let pipelined = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n";
//! let (args, used) = parse_request(pipelined, &Limits::default()).unwrap().unwrap();
//! assert_eq!(args, vec![b"GET".to_vec(), b"k".to_vec()]);
//! let (args, _) = parse_request(&pipelined[used..], &Limits::default()).unwrap().unwrap();
//! assert_eq!(args, vec![b"PING".to_vec()]);
//!
//! let mut out = Vec::new();
//! Value::Null.encode(Protocol::Resp2, &mut out);
//! Value::Null.encode(Protocol::Resp3, &mut out);
//! assert_eq!(out, b"$-1\r\n_\r\n");
//! ```

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Which protocol a connection speaks (`HELLO 3` switches to RESP3, `HELLO 2` back).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// RESP2: the protocol every connection starts with.
    #[default]
    Resp2,
    /// RESP3: maps, sets, doubles, booleans and a distinct null.
    Resp3,
}

/// Bounds on one request; a request beyond them is an error, not an allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest request in bytes, framing included (also the largest single argument).
    pub max_request_bytes: usize,
    /// Most arguments in one multibulk request.
    pub max_args: usize,
    /// Longest inline request line, and longest `*N` / `$N` header line.
    pub max_inline_bytes: usize,
}

impl Default for Limits {
    /// 64 MiB per request, 1 Mi arguments, 64 KiB inline (Redis's inline limit).
    fn default() -> Self {
        Limits {
            max_request_bytes: 64 << 20,
            max_args: 1 << 20,
            max_inline_bytes: 64 << 10,
        }
    }
}

/// Why bytes are not a valid request or reply. Display texts are Redis's where Redis has one.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RespError {
    /// A `*N` header whose count is not an integer (or is above the protocol's range).
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// A `$N` header whose length is not an integer, is negative, or exceeds the request limit.
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// Inside a multibulk request, an argument that does not start with `$`.
    #[error("Protocol error: expected '$', got '{}'", char::from(*.0))]
    ExpectedBulk(u8),
    /// An inline request line longer than the inline limit.
    #[error("Protocol error: too big inline request")]
    InlineTooBig,
    /// A `*N` header line longer than the inline limit.
    #[error("Protocol error: too big mbulk count string")]
    MultibulkCountTooBig,
    /// A `$N` header line longer than the inline limit.
    #[error("Protocol error: too big bulk count string")]
    BulkCountTooBig,
    /// An inline request with an unterminated quote, or a closing quote not followed by a space.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// A multibulk request with more arguments than the limit allows.
    #[error("Protocol error: {count} arguments, the limit is {max}")]
    TooManyArguments {
        /// Arguments the request declared.
        count: u64,
        /// The limit.
        max: usize,
    },
    /// A request whose declared size exceeds the request limit.
    #[error("Protocol error: request larger than the limit of {max} bytes")]
    RequestTooLarge {
        /// The limit in bytes.
        max: usize,
    },
    /// Bulk data not followed by `\r\n`, or a header line whose `\r` is not followed by `\n`.
    #[error("Protocol error: expected '\\r\\n'")]
    ExpectedCrlf,
    /// A reply starting with a byte that is no RESP2 or RESP3 type.
    #[error("Protocol error: unknown reply type '{}'", char::from(*.0))]
    UnknownType(u8),
    /// A reply's integer, double, boolean or length field that does not parse.
    #[error("Protocol error: invalid {0} in reply")]
    InvalidField(&'static str),
    /// A reply nested deeper than the parser follows.
    #[error("Protocol error: reply nested deeper than {max} levels")]
    TooDeep {
        /// The deepest nesting accepted.
        max: usize,
    },
}

impl RespError {
    /// The error reply Redis sends for this error (`-ERR Protocol error: ...`) before it closes
    /// the connection.
    pub fn to_reply(&self) -> Value {
        Value::Error(format!("ERR {self}"))
    }
}

/// A reply value: every RESP3 type, with RESP2 downgrades done by [`Value::encode`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// A status line (`+OK`): no `\r` or `\n` inside (encoding replaces them with spaces).
    Simple(String),
    /// An error line (`-ERR ...`): the text starts with the error code.
    Error(String),
    /// A signed 64-bit integer.
    Integer(i64),
    /// A binary-safe string.
    Bulk(Vec<u8>),
    /// The absent value (RESP2 `$-1`, the null bulk string).
    Null,
    /// The absent array (RESP2 `*-1`); RESP3 has one null for both.
    NullArray,
    /// An ordered list of values.
    Array(Vec<Value>),
    /// Key-value pairs in order (RESP2: a flat array `k1 v1 k2 v2 ...`).
    Map(Vec<(Value, Value)>),
    /// An unordered collection (RESP2: an array).
    Set(Vec<Value>),
    /// An out-of-band push message (RESP2: an array).
    Push(Vec<Value>),
    /// A floating point number (RESP2: a bulk string of its shortest decimal form).
    Double(f64),
    /// True or false (RESP2: the integer 1 or 0).
    Boolean(bool),
    /// Text with a three-letter format such as `txt` (RESP2: a bulk string of the text alone).
    Verbatim {
        /// The format, e.g. `*b"txt"` or `*b"mkd"`.
        format: [u8; 3],
        /// The text.
        text: Vec<u8>,
    },
    /// An integer of any size, in decimal (RESP2: a bulk string).
    BigNumber(String),
}

impl Value {
    /// `+OK`.
    pub fn ok() -> Value {
        Value::Simple("OK".to_owned())
    }

    /// `+PONG`.
    pub fn pong() -> Value {
        Value::Simple("PONG".to_owned())
    }

    /// An error reply; `text` starts with the code (`"ERR syntax error"`, `"NOQUORUM ..."`).
    pub fn error(text: impl Into<String>) -> Value {
        Value::Error(text.into())
    }

    /// A status reply.
    pub fn simple(text: impl Into<String>) -> Value {
        Value::Simple(text.into())
    }

    /// A bulk string reply.
    pub fn bulk(bytes: impl Into<Vec<u8>>) -> Value {
        Value::Bulk(bytes.into())
    }

    /// A bulk string, or the null bulk string when absent (the reply of `GET`).
    pub fn optional_bulk(bytes: Option<Vec<u8>>) -> Value {
        bytes.map_or(Value::Null, Value::Bulk)
    }

    /// An array of bulk strings.
    pub fn bulk_array<I, B>(items: I) -> Value
    where
        I: IntoIterator<Item = B>,
        B: Into<Vec<u8>>,
    {
        Value::Array(items.into_iter().map(|b| Value::Bulk(b.into())).collect())
    }

    /// Whether this is an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Value::Error(_))
    }

    /// Appends the encoding of this value in `protocol` to `out`.
    ///
    /// RESP2 has no null, map, set, push, double, boolean, verbatim or big number types, so there
    /// `Null` is `$-1`, `NullArray` is `*-1`, a map is a flat array of keys and values, sets and
    /// pushes are arrays, a boolean is `:1`/`:0`, and doubles, verbatim text and big numbers are
    /// bulk strings — what Redis itself sends to a RESP2 client.
    pub fn encode(&self, protocol: Protocol, out: &mut Vec<u8>) {
        let resp3 = protocol == Protocol::Resp3;
        match self {
            Value::Simple(text) => encode_line(b'+', text, out),
            Value::Error(text) => encode_line(b'-', text, out),
            Value::Integer(n) => encode_header(b':', *n, out),
            Value::Bulk(bytes) => encode_bulk(bytes, out),
            Value::Null if resp3 => out.extend_from_slice(b"_\r\n"),
            Value::Null => out.extend_from_slice(b"$-1\r\n"),
            Value::NullArray if resp3 => out.extend_from_slice(b"_\r\n"),
            Value::NullArray => out.extend_from_slice(b"*-1\r\n"),
            Value::Array(items) => encode_aggregate(b'*', items, protocol, out),
            Value::Set(items) => {
                encode_aggregate(if resp3 { b'~' } else { b'*' }, items, protocol, out)
            }
            Value::Push(items) => {
                encode_aggregate(if resp3 { b'>' } else { b'*' }, items, protocol, out)
            }
            Value::Map(pairs) => {
                let (kind, count) = if resp3 {
                    (b'%', pairs.len())
                } else {
                    (b'*', pairs.len().saturating_mul(2))
                };
                encode_header(kind, count_as_i64(count), out);
                for (key, value) in pairs {
                    key.encode(protocol, out);
                    value.encode(protocol, out);
                }
            }
            Value::Double(d) => {
                let text = format_double(*d);
                if resp3 {
                    encode_line(b',', &text, out);
                } else {
                    encode_bulk(text.as_bytes(), out);
                }
            }
            Value::Boolean(b) if resp3 => {
                out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" })
            }
            Value::Boolean(b) => encode_header(b':', i64::from(*b), out),
            Value::Verbatim { format, text } if resp3 => {
                encode_header(b'=', count_as_i64(text.len().saturating_add(4)), out);
                out.extend_from_slice(format);
                out.push(b':');
                out.extend_from_slice(text);
                out.extend_from_slice(b"\r\n");
            }
            Value::Verbatim { text, .. } => encode_bulk(text, out),
            Value::BigNumber(digits) if resp3 => encode_line(b'(', digits, out),
            Value::BigNumber(digits) => encode_bulk(digits.as_bytes(), out),
        }
    }

    /// The encoding of this value in `protocol`, as a new buffer.
    pub fn to_bytes(&self, protocol: Protocol) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(protocol, &mut out);
        out
    }
}

/// A length as an i64 for a header (lengths of in-memory values always fit).
fn count_as_i64(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// Writes `kind` then a status-like line; `\r` and `\n` become spaces so the line cannot end early.
fn encode_line(kind: u8, text: &str, out: &mut Vec<u8>) {
    out.push(kind);
    out.extend(
        text.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

/// Writes `kind`, the decimal `n` and `\r\n` (integers and aggregate/bulk headers).
fn encode_header(kind: u8, n: i64, out: &mut Vec<u8>) {
    out.push(kind);
    push_decimal(n, out);
    out.extend_from_slice(b"\r\n");
}

/// Writes `$len\r\nbytes\r\n`.
fn encode_bulk(bytes: &[u8], out: &mut Vec<u8>) {
    out.reserve(bytes.len() + 16);
    encode_header(b'$', count_as_i64(bytes.len()), out);
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// Writes an aggregate header and its items.
fn encode_aggregate(kind: u8, items: &[Value], protocol: Protocol, out: &mut Vec<u8>) {
    encode_header(kind, count_as_i64(items.len()), out);
    for item in items {
        item.encode(protocol, out);
    }
}

/// Appends the decimal form of `n` without allocating (replies are mostly integers and lengths).
fn push_decimal(n: i64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[start..]);
}

/// The shortest decimal form that reads back to the same double; `inf`, `-inf`, `nan` as Redis.
fn format_double(d: f64) -> String {
    if d.is_nan() {
        "nan".to_owned()
    } else if d.is_infinite() {
        if d > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else {
        format!("{d}")
    }
}

/// Appends `args` as a multibulk request (what a client sends).
pub fn encode_request<A: AsRef<[u8]>>(args: &[A], out: &mut Vec<u8>) {
    encode_header(b'*', count_as_i64(args.len()), out);
    for arg in args {
        encode_bulk(arg.as_ref(), out);
    }
}

/// Parses a decimal integer exactly as Redis's `string2ll` does: an optional `-`, no `+`, no
/// spaces, no leading zeros, within `i64`. Commands use it for counts and deltas.
pub fn parse_integer(text: &[u8]) -> Option<i64> {
    if text == b"0" {
        return Some(0);
    }
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 19 || !(b'1'..=b'9').contains(&digits[0]) {
        return None;
    }
    let mut magnitude: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        magnitude = magnitude
            .checked_mul(10)?
            .checked_add(u64::from(b - b'0'))?;
    }
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// A parsed request: its arguments (command name first) and the bytes it took from the buffer.
pub type ParsedRequest = (Vec<Vec<u8>>, usize);

/// Parses one request from the front of `buf`.
///
/// `Ok(None)`: the request is not complete yet, read more bytes and call again with all of them.
/// `Ok(Some((args, consumed)))`: a request and how many bytes it took. `args` is empty for a blank
/// inline line or `*0`/`*-1`: Redis ignores those, and so should the caller (no reply).
/// `Err`: the bytes are not RESP or break the [`Limits`]; reply with the error's text and close the
/// connection, as Redis does.
///
/// Each call scans from the start of `buf`; for requests that may arrive in many pieces, keep a
/// [`RequestParser`] per connection instead.
pub fn parse_request(buf: &[u8], limits: &Limits) -> Result<Option<ParsedRequest>, RespError> {
    RequestParser::new(*limits).parse(buf)
}

/// A request parser for one connection that resumes where it stopped when a request is incomplete.
///
/// Call [`RequestParser::parse`] with the connection's unconsumed bytes. After `Ok(None)` the next
/// call must pass the same bytes with more appended (the usual read loop does); after a request or
/// an error the parser starts afresh at the front of the next buffer.
#[derive(Clone, Debug)]
pub struct RequestParser {
    /// The bounds every request is checked against.
    limits: Limits,
    /// Progress through a request that has not fully arrived.
    partial: Partial,
}

/// What is known about the incomplete request at the front of the buffer.
#[derive(Clone, Debug, Default)]
enum Partial {
    /// Nothing: start at byte 0.
    #[default]
    Fresh,
    /// An inline line whose first `scanned` bytes hold no `\n`.
    Inline {
        /// Bytes already searched for the end of line.
        scanned: usize,
    },
    /// A multibulk request of `count` arguments, `args` of them parsed, the next starting at `next`.
    Multibulk {
        /// Declared number of arguments.
        count: usize,
        /// Arguments parsed so far.
        args: Vec<Vec<u8>>,
        /// Offset of the next argument's `$` header.
        next: usize,
    },
}

/// Smallest encoding of one multibulk argument (`$0\r\n\r\n`), used to cap preallocation.
const MIN_ARGUMENT_BYTES: usize = 6;

impl RequestParser {
    /// A parser that enforces `limits`.
    pub fn new(limits: Limits) -> Self {
        RequestParser {
            limits,
            partial: Partial::Fresh,
        }
    }

    /// The limits this parser enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Parses one request from the front of `buf`; see [`parse_request`] for the results.
    pub fn parse(&mut self, buf: &[u8]) -> Result<Option<ParsedRequest>, RespError> {
        let result = match std::mem::take(&mut self.partial) {
            Partial::Fresh => match buf.first() {
                None => Ok(None),
                Some(b'*') => self.parse_multibulk_header(buf),
                Some(_) => self.parse_inline(buf, 0),
            },
            Partial::Inline { scanned } => self.parse_inline(buf, scanned.min(buf.len())),
            Partial::Multibulk { count, args, next } if next <= buf.len() => {
                self.parse_arguments(buf, count, args, next)
            }
            // The caller broke the contract (passed other bytes): start over rather than misparse.
            Partial::Multibulk { .. } => self.parse(buf),
        };
        if result.is_err() {
            self.partial = Partial::Fresh;
        }
        result
    }

    /// Parses an inline request: one line, split like Redis's `sdssplitargs`.
    fn parse_inline(
        &mut self,
        buf: &[u8],
        scanned: usize,
    ) -> Result<Option<ParsedRequest>, RespError> {
        let window_end = buf
            .len()
            .min(self.limits.max_inline_bytes.saturating_add(1));
        let Some(newline) = buf[scanned.min(window_end)..window_end]
            .iter()
            .position(|&b| b == b'\n')
        else {
            if buf.len() > self.limits.max_inline_bytes {
                return Err(RespError::InlineTooBig);
            }
            self.partial = Partial::Inline { scanned: buf.len() };
            return Ok(None);
        };
        let newline = scanned.min(window_end) + newline;
        let line = &buf[..newline];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > self.limits.max_inline_bytes {
            return Err(RespError::InlineTooBig);
        }
        let args = split_arguments(line)?;
        Ok(Some((args, newline + 1)))
    }

    /// Parses the `*N\r\n` header, then as many arguments as have arrived.
    fn parse_multibulk_header(&mut self, buf: &[u8]) -> Result<Option<ParsedRequest>, RespError> {
        let Some((digits, next)) = header_line(
            buf,
            1,
            self.limits.max_inline_bytes,
            RespError::MultibulkCountTooBig,
        )?
        else {
            return Ok(None);
        };
        let declared = parse_integer(digits).ok_or(RespError::InvalidMultibulkLength)?;
        if declared > i64::from(i32::MAX) {
            return Err(RespError::InvalidMultibulkLength);
        }
        if declared <= 0 {
            return Ok(Some((Vec::new(), next)));
        }
        let count = usize::try_from(declared).map_err(|_| RespError::InvalidMultibulkLength)?;
        if count > self.limits.max_args {
            return Err(RespError::TooManyArguments {
                count: declared.unsigned_abs(),
                max: self.limits.max_args,
            });
        }
        let room = self.limits.max_request_bytes.saturating_sub(next) / MIN_ARGUMENT_BYTES;
        if count > room {
            return Err(RespError::RequestTooLarge {
                max: self.limits.max_request_bytes,
            });
        }
        // Preallocate only for arguments whose bytes could already be here.
        let present = buf.len().saturating_sub(next) / MIN_ARGUMENT_BYTES;
        let args = Vec::with_capacity(count.min(present).min(1024));
        self.parse_arguments(buf, count, args, next)
    }

    /// Parses `$len\r\nbytes\r\n` arguments from `next` until `count` are done or bytes run out.
    fn parse_arguments(
        &mut self,
        buf: &[u8],
        count: usize,
        mut args: Vec<Vec<u8>>,
        mut next: usize,
    ) -> Result<Option<ParsedRequest>, RespError> {
        let max_request_bytes = self.limits.max_request_bytes;
        while args.len() < count {
            let Some(&first) = buf.get(next) else {
                self.partial = Partial::Multibulk { count, args, next };
                return Ok(None);
            };
            if first != b'$' {
                return Err(RespError::ExpectedBulk(first));
            }
            let Some((digits, data_start)) = header_line(
                buf,
                next + 1,
                self.limits.max_inline_bytes,
                RespError::BulkCountTooBig,
            )?
            else {
                self.partial = Partial::Multibulk { count, args, next };
                return Ok(None);
            };
            let length = parse_integer(digits)
                .and_then(|n| usize::try_from(n).ok())
                .filter(|&n| n <= max_request_bytes)
                .ok_or(RespError::InvalidBulkLength)?;
            let data_end = data_start.saturating_add(length);
            if data_end.saturating_add(2) > max_request_bytes {
                return Err(RespError::RequestTooLarge {
                    max: max_request_bytes,
                });
            }
            if buf.len() < data_end + 2 {
                self.partial = Partial::Multibulk { count, args, next };
                return Ok(None);
            }
            if &buf[data_end..data_end + 2] != b"\r\n" {
                return Err(RespError::ExpectedCrlf);
            }
            args.push(buf[data_start..data_end].to_vec());
            next = data_end + 2;
        }
        Ok(Some((args, next)))
    }
}

/// Finds the header line that starts at `start` (after its type byte) and ends in `\r\n`.
/// Returns its text and the offset after `\n`, `None` if the line has not fully arrived, or
/// `too_long` if no `\r` appears within `max_line` bytes.
fn header_line(
    buf: &[u8],
    start: usize,
    max_line: usize,
    too_long: RespError,
) -> Result<Option<(&[u8], usize)>, RespError> {
    let rest = buf.get(start..).unwrap_or_default();
    let window = &rest[..rest.len().min(max_line)];
    let Some(cr) = window.iter().position(|&b| b == b'\r') else {
        return if rest.len() >= max_line {
            Err(too_long)
        } else {
            Ok(None)
        };
    };
    match rest.get(cr + 1) {
        None => Ok(None),
        Some(b'\n') => Ok(Some((&rest[..cr], start + cr + 2))),
        Some(_) => Err(RespError::ExpectedCrlf),
    }
}

/// Splits an inline line into arguments like Redis's `sdssplitargs`: spaces separate arguments;
/// `"..."` allows `\n \r \t \b \a \\ \" \xHH` escapes; `'...'` allows `\'`; a closing quote must be
/// followed by a space or the end of the line.
fn split_arguments(line: &[u8]) -> Result<Vec<Vec<u8>>, RespError> {
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && is_space(line[i]) {
            i += 1;
        }
        if i == line.len() {
            return Ok(args);
        }
        let mut current = Vec::new();
        let mut quote: Option<u8> = None;
        loop {
            let Some(&b) = line.get(i) else {
                if quote.is_some() {
                    return Err(RespError::UnbalancedQuotes);
                }
                break;
            };
            match quote {
                Some(b'"') => {
                    if b == b'\\'
                        && line.get(i + 1) == Some(&b'x')
                        && line.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
                        && line.get(i + 3).is_some_and(u8::is_ascii_hexdigit)
                    {
                        current.push(hex_value(line[i + 2]) * 16 + hex_value(line[i + 3]));
                        i += 3;
                    } else if b == b'\\' && i + 1 < line.len() {
                        i += 1;
                        current.push(match line[i] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                    } else if b == b'"' {
                        if line.get(i + 1).is_some_and(|&next| !is_space(next)) {
                            return Err(RespError::UnbalancedQuotes);
                        }
                        i += 1;
                        break;
                    } else {
                        current.push(b);
                    }
                }
                Some(_) => {
                    if b == b'\\' && line.get(i + 1) == Some(&b'\'') {
                        i += 1;
                        current.push(b'\'');
                    } else if b == b'\'' {
                        if line.get(i + 1).is_some_and(|&next| !is_space(next)) {
                            return Err(RespError::UnbalancedQuotes);
                        }
                        i += 1;
                        break;
                    } else {
                        current.push(b);
                    }
                }
                None => match b {
                    b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => break,
                    b'"' | b'\'' => quote = Some(b),
                    _ => current.push(b),
                },
            }
            i += 1;
        }
        args.push(current);
    }
}

/// The value of one ASCII hex digit (callers check it is one).
fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit.wrapping_sub(b'A').wrapping_add(10) & 0x0f,
    }
}

/// Deepest reply nesting [`parse_value`] follows (Redis itself never sends more than a few levels).
pub const MAX_REPLY_DEPTH: usize = 64;

/// Longest line-typed reply (`+`, `-`, `:` ...) [`parse_value`] waits for.
const MAX_REPLY_LINE_BYTES: usize = 1 << 20;

/// Largest bulk reply [`parse_value`] accepts (Redis's own `proto-max-bulk-len`).
const MAX_REPLY_BULK_BYTES: usize = 512 << 20;

/// Parses one reply (RESP2 or RESP3) from the front of `buf`.
///
/// `Ok(None)`: incomplete, call again with more bytes. `Ok(Some((value, consumed)))` otherwise.
/// RESP3 attributes (`|`) are read and dropped; the value they annotate is returned. Blob errors
/// (`!`) become [`Value::Error`].
pub fn parse_value(buf: &[u8]) -> Result<Option<(Value, usize)>, RespError> {
    parse_value_at(buf, 0, 0)
}

/// Parses the reply at `position`, `depth` levels inside aggregates.
fn parse_value_at(
    buf: &[u8],
    position: usize,
    depth: usize,
) -> Result<Option<(Value, usize)>, RespError> {
    if depth > MAX_REPLY_DEPTH {
        return Err(RespError::TooDeep {
            max: MAX_REPLY_DEPTH,
        });
    }
    let Some(&kind) = buf.get(position) else {
        return Ok(None);
    };
    let Some((line, next)) = header_line(
        buf,
        position + 1,
        MAX_REPLY_LINE_BYTES,
        RespError::InvalidField("line length"),
    )?
    else {
        return Ok(None);
    };
    let text = || String::from_utf8_lossy(line).into_owned();
    let value = match kind {
        b'+' => Value::Simple(text()),
        b'-' => Value::Error(text()),
        b':' => Value::Integer(parse_integer(line).ok_or(RespError::InvalidField("integer"))?),
        b'(' => {
            let digits = line.strip_prefix(b"-").unwrap_or(line);
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return Err(RespError::InvalidField("big number"));
            }
            Value::BigNumber(text())
        }
        b',' => Value::Double(parse_double(line)?),
        b'#' => match line {
            b"t" => Value::Boolean(true),
            b"f" => Value::Boolean(false),
            _ => return Err(RespError::InvalidField("boolean")),
        },
        b'_' if line.is_empty() => Value::Null,
        b'_' => return Err(RespError::InvalidField("null")),
        b'$' | b'=' | b'!' => return parse_blob(buf, kind, line, next),
        b'*' | b'~' | b'>' | b'%' | b'|' => return parse_aggregate(buf, kind, line, next, depth),
        other => return Err(RespError::UnknownType(other)),
    };
    Ok(Some((value, next)))
}

/// Parses a double as RESP3 writes it (`1.5`, `inf`, `-inf`, `nan`, exponent forms).
fn parse_double(line: &[u8]) -> Result<f64, RespError> {
    let text = std::str::from_utf8(line).map_err(|_| RespError::InvalidField("double"))?;
    if text.is_empty() || text.starts_with('+') || text.contains(char::is_whitespace) {
        return Err(RespError::InvalidField("double"));
    }
    text.parse().map_err(|_| RespError::InvalidField("double"))
}

/// Parses the body of a bulk string (`$`), verbatim string (`=`) or blob error (`!`).
fn parse_blob(
    buf: &[u8],
    kind: u8,
    line: &[u8],
    start: usize,
) -> Result<Option<(Value, usize)>, RespError> {
    if kind == b'$' && line == b"-1" {
        return Ok(Some((Value::Null, start)));
    }
    let length = parse_integer(line)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n <= MAX_REPLY_BULK_BYTES)
        .ok_or(RespError::InvalidField("length"))?;
    let end = start + length;
    if buf.len() < end + 2 {
        return Ok(None);
    }
    if &buf[end..end + 2] != b"\r\n" {
        return Err(RespError::ExpectedCrlf);
    }
    let data = &buf[start..end];
    let value = match kind {
        b'$' => Value::Bulk(data.to_vec()),
        b'!' => Value::Error(String::from_utf8_lossy(data).into_owned()),
        _ => {
            if data.len() < 4 || data[3] != b':' {
                return Err(RespError::InvalidField("verbatim format"));
            }
            Value::Verbatim {
                format: [data[0], data[1], data[2]],
                text: data[4..].to_vec(),
            }
        }
    };
    Ok(Some((value, end + 2)))
}

/// Parses the elements of an array, set, push, map or attribute.
fn parse_aggregate(
    buf: &[u8],
    kind: u8,
    line: &[u8],
    start: usize,
    depth: usize,
) -> Result<Option<(Value, usize)>, RespError> {
    if kind == b'*' && line == b"-1" {
        return Ok(Some((Value::NullArray, start)));
    }
    let count = parse_integer(line)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n <= i32::MAX as usize)
        .ok_or(RespError::InvalidField("length"))?;
    let elements = if matches!(kind, b'%' | b'|') {
        count * 2
    } else {
        count
    };
    // Each element takes at least three bytes (`_\r\n`): never reserve beyond what is present.
    let mut items = Vec::with_capacity(elements.min(buf.len().saturating_sub(start) / 3));
    let mut next = start;
    for _ in 0..elements {
        let Some((item, after)) = parse_value_at(buf, next, depth + 1)? else {
            return Ok(None);
        };
        items.push(item);
        next = after;
    }
    let value = match kind {
        b'*' => Value::Array(items),
        b'~' => Value::Set(items),
        b'>' => Value::Push(items),
        b'%' => Value::Map(pair_up(items)),
        _ => return parse_value_at(buf, next, depth + 1),
    };
    Ok(Some((value, next)))
}

/// Turns `[k1, v1, k2, v2, ...]` into pairs (the length is even by construction).
fn pair_up(items: Vec<Value>) -> Vec<(Value, Value)> {
    let mut pairs = Vec::with_capacity(items.len() / 2);
    let mut items = items.into_iter();
    while let (Some(key), Some(value)) = (items.next(), items.next()) {
        pairs.push((key, value));
    }
    pairs
}

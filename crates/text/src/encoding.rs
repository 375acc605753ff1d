//! Binary encodings: a whole document, and an update (operations since a version).
//!
//! Both formats start with a 4-byte magic (the last byte is the format version) and end with a
//! CRC-32 of everything before it, so a corrupt or truncated input is rejected before anything
//! is applied. Integers are LEB128 varints. The document body is deflate-compressed.

use std::io::{Read, Write};

use crate::doc::{DeleteSpan, Document, LogSpan};
use crate::op::{CharId, Op, ReplicaId, Version};
use crate::tree::{Iid, Run, Tree};

/// Magic of an update, version 1.
const UPDATE_MAGIC: [u8; 4] = *b"CTU\x01";
/// Magic of a whole document, version 1.
const DOCUMENT_MAGIC: [u8; 4] = *b"CTD\x01";
/// Largest decompressed document body accepted.
const DOCUMENT_BYTES_MAX: u64 = 1 << 30;
/// Most characters (visible and deleted) a decoded document may hold. Deleted characters cost
/// no bytes in the encoding but do cost memory when sent on (as placeholders), so a small
/// malicious document must not claim billions of them.
pub const DOCUMENT_CHARS_MAX: u64 = 1 << 26;

/// Why bytes could not be decoded. The document is unchanged whenever one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Shorter than the smallest valid encoding, or ended in the middle of a field.
    #[error("truncated input")]
    Truncated,
    /// The magic bytes are not those of this kind of encoding.
    #[error("not a concur text {0}")]
    BadMagic(&'static str),
    /// The format version is one this reader cannot read.
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u8),
    /// The checksum does not match: the bytes were corrupted.
    #[error("checksum mismatch")]
    Checksum,
    /// A field holds an impossible value.
    #[error("invalid data: {0}")]
    Invalid(&'static str),
}

/// Error from applying an encoded update.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// The bytes are not a valid update; the document is unchanged.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// An operation was invalid; operations before it were applied.
    #[error(transparent)]
    Apply(#[from] crate::doc::ApplyError),
}

/// Appends `value` as a LEB128 varint.
fn put(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Maps a signed number to an unsigned one with small magnitudes staying small.
fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// Inverse of `zigzag`.
fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// A bounds-checked reader over bytes.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads one varint.
    fn get(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.bytes.split_first().ok_or(DecodeError::Truncated)?;
            self.bytes = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::Invalid("varint too long"))
    }

    /// Reads a varint that must fit in `u32`.
    fn get_u32(&mut self) -> Result<u32, DecodeError> {
        u32::try_from(self.get()?).map_err(|_| DecodeError::Invalid("number too large"))
    }

    /// Reads a count of items each taking at least one byte (so it cannot exceed the input).
    fn get_count(&mut self) -> Result<usize, DecodeError> {
        let count = self.get()?;
        if count > self.bytes.len() as u64 {
            return Err(DecodeError::Truncated);
        }
        Ok(count as usize)
    }

    /// Reads one byte.
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let (&byte, rest) = self.bytes.split_first().ok_or(DecodeError::Truncated)?;
        self.bytes = rest;
        Ok(byte)
    }

    /// Reads a length-prefixed UTF-8 string.
    fn string(&mut self) -> Result<&'a str, DecodeError> {
        let len = self.get_count()?;
        let (text, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        std::str::from_utf8(text).map_err(|_| DecodeError::Invalid("text is not UTF-8"))
    }
}

/// Checks magic and checksum; returns the body between them.
fn open<'a>(bytes: &'a [u8], magic: [u8; 4], what: &'static str) -> Result<&'a [u8], DecodeError> {
    if bytes.len() < 8 {
        return Err(DecodeError::Truncated);
    }
    if bytes[..3] != magic[..3] {
        return Err(DecodeError::BadMagic(what));
    }
    if bytes[3] != magic[3] {
        return Err(DecodeError::UnsupportedVersion(bytes[3]));
    }
    let (content, sum) = bytes.split_at(bytes.len() - 4);
    let expected = u32::from_le_bytes([sum[0], sum[1], sum[2], sum[3]]);
    if crc32fast::hash(content) != expected {
        return Err(DecodeError::Checksum);
    }
    Ok(&content[4..])
}

/// Wraps an arbitrary update body in a valid magic and checksum, so fuzzers and tests reach the
/// decoder's field checks instead of stopping at the checksum. Not for production use.
#[doc(hidden)]
pub fn seal_update_body(body: &[u8]) -> Vec<u8> {
    let mut out = UPDATE_MAGIC.to_vec();
    out.extend_from_slice(body);
    seal(out)
}

/// Wraps an arbitrary document body in a valid magic, compression and checksum (see
/// [`seal_update_body`]). Not for production use.
#[doc(hidden)]
pub fn seal_document_body(body: &[u8]) -> Vec<u8> {
    let mut encoder =
        flate2::write::DeflateEncoder::new(DOCUMENT_MAGIC.to_vec(), flate2::Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(body);
    seal(encoder.finish().unwrap_or_default())
}

/// Appends the checksum of `out`.
fn seal(mut out: Vec<u8>) -> Vec<u8> {
    let sum = crc32fast::hash(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// Encodes operations as an update.
pub fn encode_ops(ops: &[Op]) -> Vec<u8> {
    let mut replicas: Vec<ReplicaId> = Vec::new();
    let mut table = std::collections::BTreeMap::new();
    let mut index_of = |r: ReplicaId, replicas: &mut Vec<ReplicaId>| -> u64 {
        *table.entry(r).or_insert_with(|| {
            replicas.push(r);
            replicas.len() as u64 - 1
        })
    };
    let mut body = Vec::new();
    put(&mut body, ops.len() as u64);
    for op in ops {
        match op {
            Op::Insert {
                id,
                origin_left,
                origin_right,
                text,
            } => {
                body.push(0);
                put(&mut body, index_of(id.replica, &mut replicas));
                put(&mut body, id.seq);
                for origin in [origin_left, origin_right] {
                    match origin {
                        None => put(&mut body, 0),
                        Some(o) => {
                            put(&mut body, index_of(o.replica, &mut replicas) + 1);
                            put(&mut body, o.seq);
                        }
                    }
                }
                put(&mut body, text.len() as u64);
                body.extend_from_slice(text.as_bytes());
            }
            Op::Delete {
                id,
                len,
                target,
                reversed,
            } => {
                body.push(1 + u8::from(*reversed));
                put(&mut body, index_of(id.replica, &mut replicas));
                put(&mut body, id.seq);
                put(&mut body, *len);
                put(&mut body, index_of(target.replica, &mut replicas));
                put(&mut body, target.seq);
            }
        }
    }
    let mut out = UPDATE_MAGIC.to_vec();
    put(&mut out, replicas.len() as u64);
    for r in &replicas {
        put(&mut out, *r);
    }
    out.extend_from_slice(&body);
    seal(out)
}

/// Decodes an update into operations.
pub fn decode_ops(bytes: &[u8]) -> Result<Vec<Op>, DecodeError> {
    let body = open(bytes, UPDATE_MAGIC, "update")?;
    let mut reader = Reader { bytes: body };
    let replicas: Vec<ReplicaId> = (0..reader.get_count()?)
        .map(|_| reader.get())
        .collect::<Result<_, _>>()?;
    let replica = |reader: &mut Reader<'_>| -> Result<ReplicaId, DecodeError> {
        let index = reader.get()?;
        replicas
            .get(index as usize)
            .copied()
            .ok_or(DecodeError::Invalid("replica index out of range"))
    };
    let count = reader.get_count()?;
    let mut ops = Vec::with_capacity(count);
    for _ in 0..count {
        let tag = reader.byte()?;
        let id = CharId {
            replica: replica(&mut reader)?,
            seq: u64::from(reader.get_u32()?),
        };
        match tag {
            0 => {
                let mut origins = [None, None];
                for origin in &mut origins {
                    let index = reader.get()?;
                    if index > 0 {
                        let replica = replicas
                            .get(index as usize - 1)
                            .copied()
                            .ok_or(DecodeError::Invalid("replica index out of range"))?;
                        let seq = u64::from(reader.get_u32()?);
                        *origin = Some(CharId { replica, seq });
                    }
                }
                let text = reader.string()?;
                if text.is_empty() {
                    return Err(DecodeError::Invalid("empty insertion"));
                }
                ops.push(Op::Insert {
                    id,
                    origin_left: origins[0],
                    origin_right: origins[1],
                    text: text.to_owned(),
                });
            }
            1 | 2 => {
                let len = u64::from(reader.get_u32()?);
                if len == 0 {
                    return Err(DecodeError::Invalid("empty deletion"));
                }
                let target = CharId {
                    replica: replica(&mut reader)?,
                    seq: u64::from(reader.get_u32()?),
                };
                ops.push(Op::Delete {
                    id,
                    len,
                    target,
                    reversed: tag == 2,
                });
            }
            _ => return Err(DecodeError::Invalid("unknown operation tag")),
        }
    }
    if !reader.bytes.is_empty() {
        return Err(DecodeError::Invalid("trailing bytes"));
    }
    Ok(ops)
}

/// Run flag: the characters are deleted.
const RUN_DELETED: u8 = 1;
/// Run flag: same agent as the previous run.
const RUN_SAME_AGENT: u8 = 2;
/// Left origin mode shift: 0 none, 1 the previous character in document order, 2 explicit.
const LEFT_SHIFT: u8 = 2;
/// Right origin mode shift: 0 none, 1 the next run's first character, 2 the previous run's
/// right origin, 3 explicit.
const RIGHT_SHIFT: u8 = 4;

/// Writes an identifier relative to the run's own agent and sequence number.
fn put_id(out: &mut Vec<u8>, id: Iid, run: &Run) {
    put(out, u64::from(id.agent));
    if id.agent == run.agent {
        put(out, zigzag(i64::from(run.seq) - i64::from(id.seq)));
    } else {
        put(out, u64::from(id.seq));
    }
}

/// Reads an identifier written by `put_id`.
fn get_id(
    reader: &mut Reader<'_>,
    agent: u32,
    seq: u32,
    agents: usize,
) -> Result<Iid, DecodeError> {
    let id_agent = reader.get_u32()?;
    if id_agent as usize >= agents {
        return Err(DecodeError::Invalid("agent index out of range"));
    }
    let id_seq = if id_agent == agent {
        let delta = unzigzag(reader.get()?);
        u32::try_from(i64::from(seq) - delta).map_err(|_| DecodeError::Invalid("bad origin"))?
    } else {
        reader.get_u32()?
    };
    Ok(Iid {
        agent: id_agent,
        seq: id_seq,
    })
}

impl Document {
    /// Encodes the whole document (every operation, compactly, as the resulting state).
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        put(&mut body, self.agents.len() as u64);
        for (&replica, &next) in self.agents.iter().zip(&self.next_seq) {
            put(&mut body, replica);
            put(&mut body, u64::from(next));
        }
        let runs: Vec<Run> = self.tree.runs().copied().collect();
        put(&mut body, runs.len() as u64);
        let mut last_end = vec![0u32; self.agents.len()];
        let mut previous: Option<Run> = None;
        for (i, run) in runs.iter().enumerate() {
            let mut flags = if run.deleted { RUN_DELETED } else { 0 };
            if previous.is_some_and(|p| p.agent == run.agent) {
                flags |= RUN_SAME_AGENT;
            }
            let left_mode = if run.origin_left.is_none() {
                0
            } else if previous.is_some_and(|p| p.last_id() == run.origin_left) {
                1
            } else {
                2
            };
            let right_mode = if run.origin_right.is_none() {
                0
            } else if runs
                .get(i + 1)
                .is_some_and(|n| n.id_at(0) == run.origin_right)
            {
                1
            } else if previous.is_some_and(|p| p.origin_right == run.origin_right) {
                2
            } else {
                3
            };
            body.push(flags | left_mode << LEFT_SHIFT | right_mode << RIGHT_SHIFT);
            if flags & RUN_SAME_AGENT == 0 {
                put(&mut body, u64::from(run.agent));
            }
            let end = &mut last_end[run.agent as usize];
            put(&mut body, zigzag(i64::from(run.seq) - i64::from(*end)));
            *end = run.seq + run.len;
            put(&mut body, u64::from(run.len));
            if left_mode == 2 {
                put_id(&mut body, run.origin_left, run);
            }
            if right_mode == 3 {
                put_id(&mut body, run.origin_right, run);
            }
            previous = Some(*run);
        }
        let text = self.tree.text();
        put(&mut body, text.len() as u64);
        body.extend_from_slice(text.as_bytes());
        put(&mut body, self.log.len() as u64);
        for span in &self.log {
            put(&mut body, u64::from(span.agent));
            put(&mut body, u64::from(span.seq));
            put(&mut body, u64::from(span.len));
        }
        for spans in &self.deletes {
            put(&mut body, spans.len() as u64);
            let mut last_end = 0u32;
            let mut last_target = 0u32;
            for span in spans {
                put(&mut body, u64::from(span.seq - last_end));
                put(
                    &mut body,
                    u64::from(span.len) << 1 | u64::from(span.reversed),
                );
                put(&mut body, u64::from(span.target.agent));
                put(
                    &mut body,
                    zigzag(i64::from(span.target.seq) - i64::from(last_target)),
                );
                last_end = span.seq + span.len;
                last_target = span.target.seq;
            }
        }
        let mut out = DOCUMENT_MAGIC.to_vec();
        let mut encoder = flate2::write::DeflateEncoder::new(out, flate2::Compression::default());
        // Writing into a Vec cannot fail.
        let _ = encoder.write_all(&body);
        out = encoder.finish().unwrap_or_default();
        seal(out)
    }

    /// Decodes a whole document; the result is edited as `replica`.
    pub fn decode(bytes: &[u8], replica: ReplicaId) -> Result<Document, DecodeError> {
        let compressed = open(bytes, DOCUMENT_MAGIC, "document")?;
        let mut body = Vec::with_capacity(compressed.len() * 4);
        flate2::read::DeflateDecoder::new(compressed)
            .take(DOCUMENT_BYTES_MAX)
            .read_to_end(&mut body)
            .map_err(|_| DecodeError::Invalid("bad compression"))?;
        let mut reader = Reader { bytes: &body };
        let agent_count = reader.get_count()?;
        let mut agents = Vec::with_capacity(agent_count);
        let mut next_seq = Vec::with_capacity(agent_count);
        for _ in 0..agent_count {
            agents.push(reader.get()?);
            next_seq.push(reader.get_u32()?);
        }
        let mut sorted = agents.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != agents.len() {
            return Err(DecodeError::Invalid("duplicate replica"));
        }
        let runs = decode_runs(&mut reader, &next_seq)?;
        let text = reader.string()?;
        let visible: u64 = runs.iter().map(|r| u64::from(r.visible())).sum();
        if text.chars().count() as u64 != visible {
            return Err(DecodeError::Invalid("text length does not match the runs"));
        }
        let log = decode_log(&mut reader, &next_seq)?;
        let mut deletes = Vec::with_capacity(agent_count);
        for &next in &next_seq {
            deletes.push(decode_deletes(&mut reader, next, &next_seq)?);
        }
        if !reader.bytes.is_empty() {
            return Err(DecodeError::Invalid("trailing bytes"));
        }
        let tree = Tree::from_runs(runs, text).map_err(DecodeError::Invalid)?;
        Ok(Document::from_parts(
            replica, agents, next_seq, tree, log, deletes,
        ))
    }

    /// Encodes every operation not included in `since` as an update.
    pub fn encode_update_since(&mut self, since: &Version) -> Vec<u8> {
        encode_ops(&self.ops_since(since))
    }

    /// Applies an encoded update. A corrupt or truncated update is rejected before anything
    /// changes.
    pub fn apply_update(&mut self, bytes: &[u8]) -> Result<(), UpdateError> {
        let ops = decode_ops(bytes)?;
        self.apply_ops(ops)?;
        Ok(())
    }
}

/// Decodes the run records of a document body.
fn decode_runs(reader: &mut Reader<'_>, next_seq: &[u32]) -> Result<Vec<Run>, DecodeError> {
    let agents = next_seq.len();
    let count = reader.get_count()?;
    let mut runs: Vec<Run> = Vec::with_capacity(count);
    let mut right_from_next = Vec::new();
    let mut last_end = vec![0u32; agents];
    let mut agent = 0u32;
    let mut total_chars = 0u64;
    for i in 0..count {
        let flags = reader.byte()?;
        if flags & RUN_SAME_AGENT == 0 {
            agent = reader.get_u32()?;
        } else if i == 0 {
            return Err(DecodeError::Invalid("first run has no agent"));
        }
        let end = last_end
            .get_mut(agent as usize)
            .ok_or(DecodeError::Invalid("agent index out of range"))?;
        let seq = u32::try_from(i64::from(*end) + unzigzag(reader.get()?))
            .map_err(|_| DecodeError::Invalid("bad sequence number"))?;
        let len = reader.get_u32()?;
        total_chars += u64::from(len);
        if total_chars > DOCUMENT_CHARS_MAX {
            return Err(DecodeError::Invalid("document holds too many characters"));
        }
        let run_end = seq
            .checked_add(len)
            .filter(|&e| len > 0 && e <= next_seq[agent as usize]);
        *end = run_end.ok_or(DecodeError::Invalid("run outside its agent's version"))?;
        let origin_left = match (flags >> LEFT_SHIFT) & 3 {
            0 => Iid::NONE,
            1 => runs
                .last()
                .map(Run::last_id)
                .ok_or(DecodeError::Invalid("no previous run"))?,
            2 => get_id(reader, agent, seq, agents)?,
            _ => return Err(DecodeError::Invalid("bad left origin mode")),
        };
        let origin_right = match (flags >> RIGHT_SHIFT) & 3 {
            0 => Iid::NONE,
            1 => {
                right_from_next.push(i);
                Iid::NONE
            }
            2 => runs
                .last()
                .map(|r| r.origin_right)
                .ok_or(DecodeError::Invalid("no previous run"))?,
            _ => get_id(reader, agent, seq, agents)?,
        };
        runs.push(Run {
            agent,
            seq,
            len,
            deleted: flags & RUN_DELETED != 0,
            origin_left,
            origin_right,
        });
    }
    for i in right_from_next {
        let next = runs
            .get(i + 1)
            .map(|r| r.id_at(0))
            .ok_or(DecodeError::Invalid("no next run"))?;
        runs[i].origin_right = next;
    }
    Ok(runs)
}

/// Decodes the application log.
fn decode_log(reader: &mut Reader<'_>, next_seq: &[u32]) -> Result<Vec<LogSpan>, DecodeError> {
    let count = reader.get_count()?;
    let mut log = Vec::with_capacity(count);
    for _ in 0..count {
        let agent = reader.get_u32()?;
        let seq = reader.get_u32()?;
        let len = reader.get_u32()?;
        let limit = next_seq
            .get(agent as usize)
            .ok_or(DecodeError::Invalid("agent index out of range"))?;
        if len == 0 || seq.checked_add(len).is_none_or(|e| e > *limit) {
            return Err(DecodeError::Invalid("log span outside its agent's version"));
        }
        log.push(LogSpan { agent, seq, len });
    }
    Ok(log)
}

/// Decodes one agent's deletion spans.
fn decode_deletes(
    reader: &mut Reader<'_>,
    next: u32,
    next_seq: &[u32],
) -> Result<Vec<DeleteSpan>, DecodeError> {
    let count = reader.get_count()?;
    let mut spans = Vec::with_capacity(count);
    let mut last_end = 0u32;
    let mut last_target = 0u32;
    for _ in 0..count {
        let seq = last_end
            .checked_add(reader.get_u32()?)
            .ok_or(DecodeError::Invalid("bad deletion"))?;
        let packed = reader.get()?;
        let len = u32::try_from(packed >> 1).map_err(|_| DecodeError::Invalid("bad deletion"))?;
        let reversed = packed & 1 == 1;
        let target_agent = reader.get_u32()?;
        let target_seq = u32::try_from(i64::from(last_target) + unzigzag(reader.get()?))
            .map_err(|_| DecodeError::Invalid("bad deletion target"))?;
        let target_next = *next_seq
            .get(target_agent as usize)
            .ok_or(DecodeError::Invalid("agent index out of range"))?;
        let span = DeleteSpan {
            seq,
            len,
            target: Iid {
                agent: target_agent,
                seq: target_seq,
            },
            reversed,
        };
        let end = seq.checked_add(len).filter(|&e| len > 0 && e <= next);
        let targets_ok = len > 0
            && if reversed {
                target_seq.checked_sub(len - 1).is_some() && target_seq < target_next
            } else {
                target_seq
                    .checked_add(len)
                    .is_some_and(|e| e <= target_next)
            };
        last_end = end
            .filter(|_| targets_ok)
            .ok_or(DecodeError::Invalid("bad deletion"))?;
        last_target = target_seq;
        spans.push(span);
    }
    Ok(spans)
}

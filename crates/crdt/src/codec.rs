//! The compact binary codec: a version byte, a type tag, then a varint payload.
//!
//! Layout of every top-level encoding: `[FORMAT_VERSION][type tag][payload]`. The payload is made
//! of LEB128 varints, zigzag-encoded signed integers, and length-prefixed byte strings. It carries
//! no checksum (frames on the wire have their own); instead every length is checked against the
//! bytes that remain, every count of materialised items is charged against a budget proportional to
//! the input size, and decoders check the invariants of the value they build (sorted keys, dots
//! covered by the causal context, no empty entries). Corrupt or truncated input returns a
//! [`DecodeError`]; it never panics and never allocates more than a small multiple of its input.

use std::collections::BTreeSet;

use clock::{CausalContext, Dot, HlcTimestamp, ReplicaId, VersionVector};
use thiserror::Error;

/// Most out-of-order dots one decoded value may hold in its causal contexts. Runs let a few bytes
/// stand for many dots; this fixed cap (not one proportional to the input, so that a value always
/// decodes from its own re-encoding) stops a 20-byte input from asking for 2^60 of them.
pub const MAX_CONTEXT_CLOUD_DOTS: u64 = 1 << 18;

/// The encoding version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;

/// Why bytes could not be decoded. Decoding never changes any state.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended in the middle of a value.
    #[error("input truncated at byte {offset}")]
    Truncated {
        /// Byte offset where more input was needed.
        offset: usize,
    },
    /// The version byte names a format this reader does not know.
    #[error("cannot read format version {found}; this reader reads version {supported}")]
    UnsupportedVersion {
        /// The version byte found.
        found: u8,
        /// The version this reader understands.
        supported: u8,
    },
    /// The type tag belongs to another CRDT type.
    #[error("expected a {expected} encoding, found type tag {found}")]
    WrongType {
        /// The type the caller asked for.
        expected: &'static str,
        /// The tag found in the input.
        found: u8,
    },
    /// A varint was longer than ten bytes or overflowed 64 bits.
    #[error("malformed varint at byte {offset}")]
    MalformedVarint {
        /// Byte offset of the varint.
        offset: usize,
    },
    /// A length or count cannot fit in the bytes that remain, or exceeds the decode budget.
    #[error("length {length} at byte {offset} exceeds what the input can hold")]
    LengthTooLarge {
        /// The declared length.
        length: u64,
        /// Byte offset of the length.
        offset: usize,
    },
    /// The bytes are well formed but break an invariant of the type.
    #[error("invalid encoding at byte {offset}: {reason}")]
    Invalid {
        /// Byte offset where the problem was detected.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// Bytes remained after the value.
    #[error("{count} trailing bytes after the value")]
    TrailingBytes {
        /// How many bytes were left over.
        count: usize,
    },
}

/// An append-only byte buffer with varint helpers.
#[derive(Debug, Default)]
pub struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes written so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Number of bytes written so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True when nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Writes one raw byte.
    pub fn byte(&mut self, value: u8) {
        self.bytes.push(value);
    }

    /// Writes an unsigned LEB128 varint (1 byte below 128, at most 10 bytes).
    pub fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.bytes.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.bytes.push(value as u8);
    }

    /// Writes a signed integer zigzag-encoded so small magnitudes stay short.
    pub fn signed(&mut self, value: i64) {
        self.varint(((value << 1) ^ (value >> 63)) as u64);
    }

    /// Writes raw bytes with no length (for fixed-size fields).
    pub fn bytes_fixed(&mut self, value: &[u8]) {
        self.bytes.extend_from_slice(value);
    }

    /// Writes a length-prefixed byte string.
    pub fn bytes(&mut self, value: &[u8]) {
        self.varint(value.len() as u64);
        self.bytes.extend_from_slice(value);
    }
}

/// A cursor over untrusted bytes; every read is bounds-checked.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
    budget: u64,
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            offset: 0,
            budget: MAX_CONTEXT_CLOUD_DOTS,
        }
    }

    /// Current byte offset.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.offset
    }

    /// An [`DecodeError::Invalid`] at the current offset.
    pub fn invalid(&self, reason: &'static str) -> DecodeError {
        DecodeError::Invalid {
            offset: self.offset,
            reason,
        }
    }

    /// Reads one raw byte.
    pub fn byte(&mut self) -> Result<u8, DecodeError> {
        let value = *self.bytes.get(self.offset).ok_or(DecodeError::Truncated {
            offset: self.offset,
        })?;
        self.offset += 1;
        Ok(value)
    }

    /// Reads an unsigned LEB128 varint.
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        let start = self.offset;
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = self.byte()?;
            let low = u64::from(byte & 0x7f);
            if shift == 63 && low > 1 {
                return Err(DecodeError::MalformedVarint { offset: start });
            }
            value |= low << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::MalformedVarint { offset: start })
    }

    /// Reads a zigzag-encoded signed integer.
    pub fn signed(&mut self) -> Result<i64, DecodeError> {
        let raw = self.varint()?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    /// Reads a `u32`, rejecting larger values.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        let value = self.varint()?;
        u32::try_from(value).map_err(|_| self.invalid("value does not fit in 32 bits"))
    }

    /// Reads a count of items that each take at least `min_item_bytes` bytes of input, checking it
    /// against the remaining input so no decoder preallocates more than the input could hold.
    pub fn count(&mut self, min_item_bytes: usize) -> Result<usize, DecodeError> {
        let offset = self.offset;
        let length = self.varint()?;
        let limit = self.remaining() / min_item_bytes.max(1);
        if length > limit as u64 {
            return Err(DecodeError::LengthTooLarge { length, offset });
        }
        Ok(length as usize)
    }

    /// Charges `items` against the decode budget of [`MAX_CONTEXT_CLOUD_DOTS`] (for items that
    /// take no input bytes of their own, such as the dots of a run in a causal context).
    pub fn charge(&mut self, items: u64) -> Result<(), DecodeError> {
        if items > self.budget {
            return Err(DecodeError::LengthTooLarge {
                length: items,
                offset: self.offset,
            });
        }
        self.budget -= items;
        Ok(())
    }

    /// Reads exactly `N` raw bytes.
    pub fn fixed<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let end = self
            .offset
            .checked_add(N)
            .filter(|end| *end <= self.bytes.len());
        let Some(end) = end else {
            return Err(DecodeError::Truncated {
                offset: self.offset,
            });
        };
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[self.offset..end]);
        self.offset = end;
        Ok(out)
    }

    /// Reads a length-prefixed byte string.
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let length = self.count(1)?;
        let slice = &self.bytes[self.offset..self.offset + length];
        self.offset += length;
        Ok(slice)
    }

    /// Fails unless every byte has been read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes { count }),
        }
    }
}

/// A value that can be written into the compact codec.
pub trait Encode {
    /// Appends the encoding of `self`.
    fn encode(&self, writer: &mut Writer);
}

/// A value that can be read back from the compact codec.
pub trait Decode: Sized {
    /// Reads one value, validating it.
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

/// A top-level CRDT encoding: version byte, type tag, payload, and nothing after it.
pub trait Codec: Encode + Decode {
    /// The tag byte that identifies this type in an encoding.
    const TYPE_TAG: u8;
    /// The type's name, for error messages.
    const TYPE_NAME: &'static str;

    /// Encodes `self` with the version header.
    fn to_bytes(&self) -> Vec<u8> {
        let mut writer = Writer::new();
        writer.byte(FORMAT_VERSION);
        writer.byte(Self::TYPE_TAG);
        self.encode(&mut writer);
        writer.into_bytes()
    }

    /// Decodes a value written by [`Codec::to_bytes`]; never panics on corrupt input.
    fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let version = reader.byte()?;
        if version != FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let tag = reader.byte()?;
        if tag != Self::TYPE_TAG {
            return Err(DecodeError::WrongType {
                expected: Self::TYPE_NAME,
                found: tag,
            });
        }
        let value = Self::decode(&mut reader)?;
        reader.finish()?;
        Ok(value)
    }
}

impl Encode for u64 {
    fn encode(&self, writer: &mut Writer) {
        writer.varint(*self);
    }
}

impl Decode for u64 {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        reader.varint()
    }
}

impl Encode for u32 {
    fn encode(&self, writer: &mut Writer) {
        writer.varint(u64::from(*self));
    }
}

impl Decode for u32 {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        reader.u32()
    }
}

impl Encode for i64 {
    fn encode(&self, writer: &mut Writer) {
        writer.signed(*self);
    }
}

impl Decode for i64 {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        reader.signed()
    }
}

impl Encode for bool {
    fn encode(&self, writer: &mut Writer) {
        writer.byte(u8::from(*self));
    }
}

impl Decode for bool {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match reader.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(reader.invalid("boolean byte is neither 0 nor 1")),
        }
    }
}

impl Encode for String {
    fn encode(&self, writer: &mut Writer) {
        writer.bytes(self.as_bytes());
    }
}

impl Decode for String {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let bytes = reader.bytes()?;
        let text = std::str::from_utf8(bytes).map_err(|_| reader.invalid("string is not UTF-8"))?;
        Ok(text.to_owned())
    }
}

impl Encode for Vec<u8> {
    fn encode(&self, writer: &mut Writer) {
        writer.bytes(self);
    }
}

impl Decode for Vec<u8> {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(reader.bytes()?.to_vec())
    }
}

impl<T: Encode> Encode for Option<T> {
    fn encode(&self, writer: &mut Writer) {
        match self {
            None => writer.byte(0),
            Some(value) => {
                writer.byte(1);
                value.encode(writer);
            }
        }
    }
}

impl<T: Decode> Decode for Option<T> {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match reader.byte()? {
            0 => Ok(None),
            1 => Ok(Some(T::decode(reader)?)),
            _ => Err(reader.invalid("option byte is neither 0 nor 1")),
        }
    }
}

impl Encode for HlcTimestamp {
    fn encode(&self, writer: &mut Writer) {
        writer.varint(self.wall_ns);
        writer.varint(u64::from(self.logical));
    }
}

impl Decode for HlcTimestamp {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let wall_ns = reader.varint()?;
        let logical = reader.u32()?;
        Ok(HlcTimestamp::new(wall_ns, logical))
    }
}

impl Encode for Dot {
    fn encode(&self, writer: &mut Writer) {
        writer.varint(self.replica);
        writer.varint(self.counter);
    }
}

impl Decode for Dot {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let replica = reader.varint()?;
        let counter = reader.varint()?;
        if counter == 0 {
            return Err(reader.invalid("dot counters start at 1"));
        }
        Ok(Dot::new(replica, counter))
    }
}

/// Writes strictly increasing replica ids as gaps from the previous one.
pub(crate) fn write_replica_gap(writer: &mut Writer, previous: Option<ReplicaId>, replica: u64) {
    match previous {
        None => writer.varint(replica),
        Some(previous) => writer.varint(replica - previous - 1),
    }
}

/// Reads a replica id written by [`write_replica_gap`], rejecting overflow.
pub(crate) fn read_replica_gap(
    reader: &mut Reader<'_>,
    previous: Option<ReplicaId>,
) -> Result<ReplicaId, DecodeError> {
    let gap = reader.varint()?;
    match previous {
        None => Ok(gap),
        Some(previous) => previous
            .checked_add(gap)
            .and_then(|id| id.checked_add(1))
            .ok_or_else(|| reader.invalid("replica id overflows")),
    }
}

/// Writes dots sorted by (replica, counter) as per-replica runs of consecutive counters:
/// `[replica count] ([replica gap] [run count] ([counter gap] [run length - 1])*)*`.
/// `on_run` is called with each run so callers can append per-dot payloads after it.
pub(crate) fn write_dot_runs(
    writer: &mut Writer,
    dots: &[Dot],
    mut on_run: impl FnMut(&mut Writer, std::ops::Range<usize>),
) {
    let runs = split_runs(dots);
    let replica_count = count_distinct_replicas(dots);
    writer.varint(replica_count as u64);
    let mut previous_replica = None;
    let mut index = 0;
    while index < runs.len() {
        let replica = dots[runs[index].start].replica;
        let same: Vec<std::ops::Range<usize>> = runs[index..]
            .iter()
            .take_while(|run| dots[run.start].replica == replica)
            .cloned()
            .collect();
        write_replica_gap(writer, previous_replica, replica);
        previous_replica = Some(replica);
        writer.varint(same.len() as u64);
        let mut previous_end = 0;
        for run in &same {
            let first = dots[run.start].counter;
            writer.varint(first - previous_end - 1);
            writer.varint((run.len() - 1) as u64);
            previous_end = dots[run.end - 1].counter;
            on_run(writer, run.clone());
        }
        index += same.len();
    }
}

/// Reads runs written by [`write_dot_runs`], calling `on_dot` for each dot in order (so callers
/// can read a per-dot payload after it). Dots come out strictly increasing. With
/// `payload_bytes_min > 0` every dot is followed by a payload of at least that many bytes, which
/// bounds a run by the input left; with 0 the dots are charged against the reader's budget.
pub(crate) fn read_dot_runs(
    reader: &mut Reader<'_>,
    payload_bytes_min: usize,
    mut on_dot: impl FnMut(&mut Reader<'_>, Dot) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let replica_count = reader.count(2)?;
    let mut previous_replica = None;
    for _ in 0..replica_count {
        let replica = read_replica_gap(reader, previous_replica)?;
        previous_replica = Some(replica);
        let run_count = reader.count(2)?;
        if run_count == 0 {
            return Err(reader.invalid("replica listed with no runs"));
        }
        let mut previous_end: u64 = 0;
        for _ in 0..run_count {
            let gap = reader.varint()?;
            let extra = reader.varint()?;
            let first = previous_end
                .checked_add(gap)
                .and_then(|c| c.checked_add(1))
                .ok_or_else(|| reader.invalid("dot counter overflows"))?;
            let last = first
                .checked_add(extra)
                .ok_or_else(|| reader.invalid("dot counter overflows"))?;
            if payload_bytes_min == 0 {
                reader.charge(extra + 1)?;
            } else if extra >= (reader.remaining() / payload_bytes_min) as u64 {
                return Err(DecodeError::LengthTooLarge {
                    length: extra + 1,
                    offset: reader.offset(),
                });
            }
            for counter in first..=last {
                on_dot(reader, Dot::new(replica, counter))?;
            }
            previous_end = last;
        }
    }
    Ok(())
}

fn count_distinct_replicas(dots: &[Dot]) -> usize {
    let mut count = 0;
    let mut previous = None;
    for dot in dots {
        if previous != Some(dot.replica) {
            count += 1;
            previous = Some(dot.replica);
        }
    }
    count
}

/// Splits sorted dots into maximal runs of the same replica with consecutive counters.
fn split_runs(dots: &[Dot]) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    for index in 1..=dots.len() {
        let breaks = index == dots.len()
            || dots[index].replica != dots[index - 1].replica
            || dots[index].counter != dots[index - 1].counter + 1;
        if breaks {
            runs.push(start..index);
            start = index;
        }
    }
    runs
}

impl Encode for VersionVector {
    fn encode(&self, writer: &mut Writer) {
        writer.varint(self.len() as u64);
        let mut previous = None;
        for (replica, counter) in self.iter() {
            write_replica_gap(writer, previous, replica);
            writer.varint(counter);
            previous = Some(replica);
        }
    }
}

impl Decode for VersionVector {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let length = reader.count(2)?;
        let mut vector = VersionVector::new();
        let mut previous = None;
        for _ in 0..length {
            let replica = read_replica_gap(reader, previous)?;
            let counter = reader.varint()?;
            if counter == 0 {
                return Err(reader.invalid("version vector entry of zero"));
            }
            vector.set(replica, counter);
            previous = Some(replica);
        }
        Ok(vector)
    }
}

impl Encode for CausalContext {
    fn encode(&self, writer: &mut Writer) {
        self.version_vector().encode(writer);
        let cloud: Vec<Dot> = self.dots().copied().collect();
        write_dot_runs(writer, &cloud, |_, _| {});
    }
}

impl Decode for CausalContext {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let prefix = VersionVector::decode(reader)?;
        let mut context = CausalContext::from_version_vector(prefix);
        let mut cloud = Vec::new();
        read_dot_runs(reader, 0, |_, dot| {
            cloud.push(dot);
            Ok(())
        })?;
        for dot in cloud {
            // Insertion folds dots that extend a prefix, so any accepted input is compact.
            context.insert(dot);
        }
        Ok(context)
    }
}

/// Encodes a sorted set of replica ids (the retired replicas of a causal CRDT).
pub(crate) fn encode_replica_set(writer: &mut Writer, replicas: &BTreeSet<ReplicaId>) {
    writer.varint(replicas.len() as u64);
    let mut previous = None;
    for &replica in replicas {
        write_replica_gap(writer, previous, replica);
        previous = Some(replica);
    }
}

/// Decodes a set written by [`encode_replica_set`].
pub(crate) fn decode_replica_set(
    reader: &mut Reader<'_>,
) -> Result<BTreeSet<ReplicaId>, DecodeError> {
    let length = reader.count(1)?;
    let mut replicas = BTreeSet::new();
    let mut previous = None;
    for _ in 0..length {
        let replica = read_replica_gap(reader, previous)?;
        replicas.insert(replica);
        previous = Some(replica);
    }
    Ok(replicas)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_the_edges() {
        for value in [
            0,
            1,
            127,
            128,
            300,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut writer = Writer::new();
            writer.varint(value);
            let bytes = writer.into_bytes();
            let mut reader = Reader::new(&bytes);
            assert_eq!(reader.varint().unwrap(), value);
            reader.finish().unwrap();
        }
    }

    #[test]
    fn signed_values_round_trip() {
        for value in [0, -1, 1, i64::MIN, i64::MAX, -300] {
            let mut writer = Writer::new();
            writer.signed(value);
            let bytes = writer.into_bytes();
            assert_eq!(Reader::new(&bytes).signed().unwrap(), value);
        }
    }

    #[test]
    fn overlong_varint_is_rejected() {
        let bytes = [0xff; 11];
        assert!(matches!(
            Reader::new(&bytes).varint(),
            Err(DecodeError::MalformedVarint { .. })
        ));
        let overflow = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(Reader::new(&overflow).varint().is_err());
    }

    #[test]
    fn huge_count_is_rejected_before_allocating() {
        let mut writer = Writer::new();
        writer.varint(u64::MAX / 2);
        let bytes = writer.into_bytes();
        assert!(matches!(
            Reader::new(&bytes).count(1),
            Err(DecodeError::LengthTooLarge { .. })
        ));
    }

    #[test]
    fn causal_context_with_gaps_round_trips() {
        let context: CausalContext = [
            Dot::new(1, 1),
            Dot::new(1, 2),
            Dot::new(1, 5),
            Dot::new(1, 6),
            Dot::new(1, 9),
            Dot::new(7, 3),
        ]
        .into_iter()
        .collect();
        let mut writer = Writer::new();
        context.encode(&mut writer);
        let bytes = writer.into_bytes();
        let mut reader = Reader::new(&bytes);
        assert_eq!(CausalContext::decode(&mut reader).unwrap(), context);
        reader.finish().unwrap();
    }

    #[test]
    fn a_run_longer_than_the_budget_is_rejected() {
        let mut writer = Writer::new();
        VersionVector::new().encode(&mut writer);
        writer.varint(1); // one replica
        writer.varint(3); // replica id
        writer.varint(1); // one run
        writer.varint(5); // gap
        writer.varint(u64::MAX / 4); // an enormous run length
        let bytes = writer.into_bytes();
        assert!(CausalContext::decode(&mut Reader::new(&bytes)).is_err());
    }
}

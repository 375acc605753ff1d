//! Compact binary framing for messages and storage records: version, length, CRC32, postcard body.
//!
//! Frame layout (little endian): `version: u8 | length: u32 | crc32(body): u32 | body`.
//! Decoders never panic: a short buffer, a wrong version, an oversized length or a checksum
//! mismatch is an error naming what was wrong.

use serde::{Serialize, de::DeserializeOwned};

use crate::message::Message;

/// The frame format version this crate writes and reads.
pub const FRAME_VERSION: u8 = 1;
/// Bytes of header before the body.
pub const FRAME_HEADER_BYTES: usize = 9;
/// Largest body accepted (bounds memory on corrupt input).
pub const FRAME_BODY_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Why a frame could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The buffer ends before the frame does (a torn write or a partial read).
    #[error("frame truncated: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes the frame needs.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// Written by a format version this reader does not know.
    #[error("frame version {0} is not readable (this reader knows version 1)")]
    UnknownVersion(u8),
    /// The declared length exceeds the bound.
    #[error("frame body of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// The body does not match its checksum (corruption).
    #[error("frame checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch {
        /// Checksum in the header.
        stored: u32,
        /// Checksum of the body read.
        computed: u32,
    },
    /// The checksum matched but the body does not decode.
    #[error("frame body does not decode: {0}")]
    Body(String),
    /// A value could not be encoded.
    #[error("cannot encode: {0}")]
    Encode(String),
}

/// Encodes `value` as one frame.
pub fn encode_frame<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let body = postcard::to_allocvec(value).map_err(|e| CodecError::Encode(e.to_string()))?;
    if body.len() > FRAME_BODY_BYTES_MAX {
        return Err(CodecError::TooLarge(body.len()));
    }
    let length = u32::try_from(body.len()).map_err(|_| CodecError::TooLarge(body.len()))?;
    let mut frame = Vec::with_capacity(FRAME_HEADER_BYTES + body.len());
    frame.push(FRAME_VERSION);
    frame.extend_from_slice(&length.to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Decodes the frame at the start of `bytes`; returns the value and the bytes consumed.
pub fn decode_frame<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), CodecError> {
    let header = bytes
        .get(..FRAME_HEADER_BYTES)
        .ok_or(CodecError::Truncated {
            needed: FRAME_HEADER_BYTES,
            available: bytes.len(),
        })?;
    if header[0] != FRAME_VERSION {
        return Err(CodecError::UnknownVersion(header[0]));
    }
    let length = u32::from_le_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let stored = u32::from_le_bytes([header[5], header[6], header[7], header[8]]);
    if length > FRAME_BODY_BYTES_MAX {
        return Err(CodecError::TooLarge(length));
    }
    let needed = FRAME_HEADER_BYTES + length;
    let body = bytes
        .get(FRAME_HEADER_BYTES..needed)
        .ok_or(CodecError::Truncated {
            needed,
            available: bytes.len(),
        })?;
    let computed = crc32fast::hash(body);
    if computed != stored {
        return Err(CodecError::ChecksumMismatch { stored, computed });
    }
    let value = postcard::from_bytes(body).map_err(|e| CodecError::Body(e.to_string()))?;
    Ok((value, needed))
}

/// Encodes a peer message as one frame.
pub fn encode_message(message: &Message) -> Result<Vec<u8>, CodecError> {
    encode_frame(message)
}

/// Decodes a peer message frame; trailing bytes are an error.
pub fn decode_message(bytes: &[u8]) -> Result<Message, CodecError> {
    let (message, used) = decode_frame(bytes)?;
    if used != bytes.len() {
        return Err(CodecError::Body(format!(
            "{} trailing bytes after message",
            bytes.len() - used
        )));
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::MessageBody;
    use crate::types::{Entry, EntryPayload};
    use proptest::prelude::*;

    fn sample() -> Message {
        Message {
            from: 1,
            to: 2,
            term: 3,
            body: MessageBody::AppendEntries {
                prev_index: 4,
                prev_term: 2,
                entries: vec![Entry {
                    term: 3,
                    index: 5,
                    payload: EntryPayload::Command {
                        client_id: 9,
                        sequence: 1,
                        command: b"x".to_vec().into(),
                    },
                }]
                .into(),
                leader_commit: 4,
                heartbeat_seq: 7,
            },
        }
    }

    #[test]
    fn message_round_trips() {
        let bytes = encode_message(&sample()).expect("encode");
        assert_eq!(decode_message(&bytes), Ok(sample()));
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let bytes = encode_message(&sample()).expect("encode");
        for position in 0..bytes.len() {
            for bit in 0..8 {
                let mut corrupt = bytes.clone();
                corrupt[position] ^= 1 << bit;
                assert!(
                    decode_message(&corrupt).is_err(),
                    "flip at byte {position} bit {bit} undetected"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_message(&bytes);
        }

        #[test]
        fn every_truncation_is_an_error(cut in 0usize..40) {
            let bytes = encode_message(&sample()).expect("encode");
            let cut = cut.min(bytes.len() - 1);
            let truncated = decode_message(&bytes[..cut]);
            prop_assert!(matches!(truncated, Err(CodecError::Truncated { .. })), "got {truncated:?}");
        }
    }
}

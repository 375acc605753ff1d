//! Frames: the unit of bytes between two nodes.
//!
//! Layout, version 1 (all integers little-endian):
//!
//! | bytes | field | why |
//! |---|---|---|
//! | 2 | magic `cc` | a stray client (an HTTP request, redis-cli) on the peer port is recognised at once |
//! | 1 | version | a reader names the version it cannot read |
//! | 1 | kind | handshake or message |
//! | 4 | payload length | bounded by the codec's limit before anything is buffered |
//! | 8 | sequence number | per direction and connection, from 0: a replayed or dropped frame is seen |
//! | n | payload | |
//! | 4 | CRC-32 of everything above | tells corruption apart from a wrong key |
//! | 16 | HMAC-SHA256 tag (first 16 bytes) over everything above | only holders of the key can write frames |

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use thiserror::Error;

/// The wire format version this codec writes and reads.
pub const VERSION: u8 = 1;
/// Bytes before the payload.
pub const HEADER_BYTES: usize = 16;
/// Bytes after the payload.
pub const TRAILER_BYTES: usize = 4 + TAG_BYTES;
const TAG_BYTES: usize = 16;
const MAGIC: [u8; 2] = *b"cc";

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// Part of the connection handshake.
    Handshake,
    /// A protocol message between nodes.
    Message,
}

impl FrameKind {
    fn code(self) -> u8 {
        match self {
            FrameKind::Handshake => 1,
            FrameKind::Message => 2,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(FrameKind::Handshake),
            2 => Some(FrameKind::Message),
            _ => None,
        }
    }
}

/// A decoded, verified frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// What it carries.
    pub kind: FrameKind,
    /// Its sequence number on this connection.
    pub sequence: u64,
    /// The payload bytes.
    pub payload: Vec<u8>,
}

/// Why bytes were not accepted as a frame. The connection should be closed with this as the
/// logged reason; the codec's state is unchanged.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The first bytes are not `cc`: not a concur peer.
    #[error(
        "not a concur frame (magic {0:02x?}); is a non-peer client connected to the peer port?"
    )]
    BadMagic([u8; 2]),
    /// Written by a newer or older concur.
    #[error("frame version {found} cannot be read; this node reads version {VERSION}")]
    UnsupportedVersion {
        /// The version in the frame.
        found: u8,
    },
    /// Unknown frame kind.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// Longer than the configured limit.
    #[error("frame payload of {length} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Declared payload length.
        length: u64,
        /// The codec's limit.
        limit: u64,
    },
    /// Bits changed in flight or on disk.
    #[error("frame checksum mismatch: the frame was corrupted")]
    ChecksumMismatch,
    /// Written without the cluster key (or the session key of this connection).
    #[error("frame authentication failed: the sender does not hold the cluster key")]
    AuthenticationFailed,
    /// A frame was replayed, dropped or reordered.
    #[error("frame sequence number {found}, expected {expected}: replayed or out of order")]
    OutOfSequence {
        /// The next sequence number this side expected.
        expected: u64,
        /// The one in the frame.
        found: u64,
    },
}

/// Encodes and decodes the frames of one direction pair of a connection, with one key.
#[derive(Clone)]
pub struct FrameCodec {
    mac: Hmac<Sha256>,
    payload_bytes_max: usize,
    next_send: u64,
    next_receive: u64,
}

impl std::fmt::Debug for FrameCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameCodec")
            .field("payload_bytes_max", &self.payload_bytes_max)
            .field("next_send", &self.next_send)
            .field("next_receive", &self.next_receive)
            .finish_non_exhaustive()
    }
}

impl FrameCodec {
    /// A codec authenticating with `key`, refusing payloads above `payload_bytes_max`.
    pub fn new(key: &[u8], payload_bytes_max: usize) -> Self {
        // HMAC accepts keys of any length, so this cannot fail.
        let mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
        Self {
            mac,
            payload_bytes_max,
            next_send: 0,
            next_receive: 0,
        }
    }

    /// The largest payload this codec accepts.
    pub fn payload_bytes_max(&self) -> usize {
        self.payload_bytes_max
    }

    /// Encodes `payload` as the next frame of this side.
    ///
    /// # Panics
    /// If `payload` is above the limit: the caller bounds what it sends.
    pub fn encode(&mut self, kind: FrameKind, payload: &[u8]) -> Vec<u8> {
        assert!(
            payload.len() <= self.payload_bytes_max,
            "payload of {} bytes above the {} byte limit",
            payload.len(),
            self.payload_bytes_max
        );
        let mut bytes = Vec::with_capacity(HEADER_BYTES + payload.len() + TRAILER_BYTES);
        bytes.extend_from_slice(&MAGIC);
        bytes.push(VERSION);
        bytes.push(kind.code());
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&self.next_send.to_le_bytes());
        bytes.extend_from_slice(payload);
        let checksum = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&checksum.to_le_bytes());
        let tag = self.tag(&bytes);
        bytes.extend_from_slice(&tag);
        self.next_send += 1;
        bytes
    }

    /// Decodes one frame from the front of `bytes`: `Ok(None)` when more bytes are needed,
    /// `Ok(Some((frame, consumed)))` for a verified frame. Rejects an oversized length from the
    /// header alone, before buffering the payload.
    pub fn decode(&mut self, bytes: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
        if bytes.len() >= 2 && bytes[..2] != MAGIC {
            return Err(FrameError::BadMagic([bytes[0], bytes[1]]));
        }
        if bytes.len() < HEADER_BYTES {
            return Ok(None);
        }
        if bytes[2] != VERSION {
            return Err(FrameError::UnsupportedVersion { found: bytes[2] });
        }
        let kind = FrameKind::from_code(bytes[3]).ok_or(FrameError::UnknownKind(bytes[3]))?;
        let length = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")) as usize;
        if length > self.payload_bytes_max {
            return Err(FrameError::TooLarge {
                length: length as u64,
                limit: self.payload_bytes_max as u64,
            });
        }
        let total = HEADER_BYTES + length + TRAILER_BYTES;
        if bytes.len() < total {
            return Ok(None);
        }
        let body_end = HEADER_BYTES + length;
        let checksum = u32::from_le_bytes(bytes[body_end..body_end + 4].try_into().expect("4"));
        if crc32fast::hash(&bytes[..body_end]) != checksum {
            return Err(FrameError::ChecksumMismatch);
        }
        let mut mac = self.mac.clone();
        mac.update(&bytes[..body_end + 4]);
        if mac
            .verify_truncated_left(&bytes[body_end + 4..total])
            .is_err()
        {
            return Err(FrameError::AuthenticationFailed);
        }
        let sequence = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
        if sequence != self.next_receive {
            return Err(FrameError::OutOfSequence {
                expected: self.next_receive,
                found: sequence,
            });
        }
        self.next_receive += 1;
        let frame = Frame {
            kind,
            sequence,
            payload: bytes[HEADER_BYTES..body_end].to_vec(),
        };
        Ok(Some((frame, total)))
    }

    fn tag(&self, bytes: &[u8]) -> [u8; TAG_BYTES] {
        let mut mac = self.mac.clone();
        mac.update(bytes);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&full[..TAG_BYTES]);
        tag
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: &[u8] = b"cluster key for tests";

    fn pair() -> (FrameCodec, FrameCodec) {
        (FrameCodec::new(KEY, 1024), FrameCodec::new(KEY, 1024))
    }

    #[test]
    fn frames_round_trip_in_order() {
        let (mut sender, mut receiver) = pair();
        let mut stream = sender.encode(FrameKind::Handshake, b"hello");
        stream.extend(sender.encode(FrameKind::Message, b""));
        stream.extend(sender.encode(FrameKind::Message, &[9; 1024]));
        let mut offset = 0;
        let mut frames = Vec::new();
        while let Some((frame, used)) = receiver.decode(&stream[offset..]).unwrap() {
            offset += used;
            frames.push(frame);
        }
        assert_eq!(offset, stream.len());
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0].kind, FrameKind::Handshake);
        assert_eq!(frames[2].payload, vec![9; 1024]);
        assert_eq!(frames[2].sequence, 2);
    }

    #[test]
    fn a_partial_frame_asks_for_more() {
        let (mut sender, mut receiver) = pair();
        let bytes = sender.encode(FrameKind::Message, b"abc");
        for cut in 0..bytes.len() {
            assert_eq!(receiver.decode(&bytes[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn a_node_without_the_key_cannot_write_frames() {
        let mut intruder = FrameCodec::new(b"guessed key", 1024);
        let (_, mut receiver) = pair();
        let bytes = intruder.encode(FrameKind::Message, b"vote for me");
        assert_eq!(
            receiver.decode(&bytes),
            Err(FrameError::AuthenticationFailed)
        );
    }

    #[test]
    fn oversized_frames_are_refused_from_the_header() {
        let mut big = FrameCodec::new(KEY, 1 << 20);
        let (_, mut receiver) = pair();
        let bytes = big.encode(FrameKind::Message, &vec![0; 4096]);
        let error = receiver.decode(&bytes[..HEADER_BYTES]).unwrap_err();
        assert_eq!(
            error,
            FrameError::TooLarge {
                length: 4096,
                limit: 1024
            }
        );
    }

    #[test]
    fn replayed_frames_are_refused() {
        let (mut sender, mut receiver) = pair();
        let first = sender.encode(FrameKind::Message, b"put x 1");
        receiver.decode(&first).unwrap().unwrap();
        assert_eq!(
            receiver.decode(&first),
            Err(FrameError::OutOfSequence {
                expected: 1,
                found: 0
            })
        );
    }

    #[test]
    fn a_stray_client_is_named() {
        let (_, mut receiver) = pair();
        let error = receiver.decode(b"GET / HTTP/1.1\r\n").unwrap_err();
        assert!(matches!(error, FrameError::BadMagic(_)));
        assert!(error.to_string().contains("non-peer client"));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_never_verify(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let (_, mut receiver) = pair();
            let result = receiver.decode(&bytes);
            prop_assert!(!matches!(result, Ok(Some(_))));
        }

        #[test]
        fn any_single_bit_flip_is_caught(payload in prop::collection::vec(any::<u8>(), 0..64), bit in 0usize..1024) {
            let (mut sender, mut receiver) = pair();
            let mut bytes = sender.encode(FrameKind::Message, &payload);
            let bit = bit % (bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            let result = receiver.decode(&bytes);
            prop_assert!(!matches!(result, Ok(Some(_))), "flip of bit {} accepted", bit);
        }
    }
}

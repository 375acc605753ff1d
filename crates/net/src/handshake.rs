//! The connection handshake: both peers prove they hold the cluster key, and the connection gets
//! a fresh session key so frames recorded from one connection cannot be replayed into another.
//!
//! 1. The dialling node sends `Hello { node, nonce }` in a frame keyed by the cluster key.
//! 2. The accepting node verifies it and answers with its own `Hello`, same key.
//! 3. Both derive `session key = HMAC(cluster key, "concur session v1" ‖ dialler hello ‖ acceptor
//!    hello)` and use it for every later frame; sequence numbers start again at 0.
//!
//! Nonces come in as arguments (sans-IO): the driver draws them from the operating system.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use thiserror::Error;

use crate::frame::{FrameCodec, FrameError, FrameKind};

/// Bytes of a handshake nonce.
pub const NONCE_BYTES: usize = 16;
const HELLO_BYTES: usize = 8 + NONCE_BYTES;
/// Handshake frames are tiny; anything bigger is refused before it is read.
const HELLO_PAYLOAD_MAX: usize = 64;

/// One side's greeting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The node id this side claims.
    pub node: u64,
    /// Fresh randomness from this side.
    pub nonce: [u8; NONCE_BYTES],
}

impl Hello {
    fn to_bytes(self) -> [u8; HELLO_BYTES] {
        let mut bytes = [0u8; HELLO_BYTES];
        bytes[..8].copy_from_slice(&self.node.to_le_bytes());
        bytes[8..].copy_from_slice(&self.nonce);
        bytes
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, HandshakeError> {
        if bytes.len() != HELLO_BYTES {
            return Err(HandshakeError::Malformed {
                length: bytes.len(),
            });
        }
        let mut nonce = [0u8; NONCE_BYTES];
        nonce.copy_from_slice(&bytes[8..]);
        Ok(Self {
            node: u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")),
            nonce,
        })
    }
}

/// Why a handshake failed; the connection is closed with this as the logged reason.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The frame itself was refused (wrong key, corrupt, not a peer).
    #[error("handshake frame refused: {0}")]
    Frame(#[from] FrameError),
    /// A frame of another kind came before the handshake finished.
    #[error("expected a handshake frame")]
    NotAHandshake,
    /// The hello had the wrong size.
    #[error("malformed hello of {length} bytes")]
    Malformed {
        /// Its length.
        length: usize,
    },
    /// The peer is not the node this side dialled.
    #[error("dialled node {expected} but node {found} answered")]
    WrongPeer {
        /// The node dialled.
        expected: u64,
        /// The node that answered.
        found: u64,
    },
}

/// A finished handshake: who the peer is and the codec for the rest of the connection.
#[derive(Debug)]
pub struct Session {
    /// The authenticated peer.
    pub peer: u64,
    /// Frames from now on, keyed by the session key.
    pub codec: FrameCodec,
}

/// Builds the first frame a dialling node sends.
pub fn dial(cluster_key: &[u8], hello: Hello) -> (Dialler, Vec<u8>) {
    let mut codec = FrameCodec::new(cluster_key, HELLO_PAYLOAD_MAX);
    let bytes = codec.encode(FrameKind::Handshake, &hello.to_bytes());
    let dialler = Dialler {
        cluster_key: cluster_key.to_vec(),
        codec,
        hello,
    };
    (dialler, bytes)
}

/// The dialling side, waiting for the answer.
#[derive(Debug)]
pub struct Dialler {
    cluster_key: Vec<u8>,
    codec: FrameCodec,
    hello: Hello,
}

impl Dialler {
    /// Reads the acceptor's answer from the front of `bytes`; `Ok(None)` when more are needed,
    /// otherwise the session and how many bytes were used.
    pub fn receive(
        &mut self,
        bytes: &[u8],
        expected_peer: Option<u64>,
        payload_bytes_max: usize,
    ) -> Result<Option<(Session, usize)>, HandshakeError> {
        let Some((frame, used)) = self.codec.decode(bytes)? else {
            return Ok(None);
        };
        if frame.kind != FrameKind::Handshake {
            return Err(HandshakeError::NotAHandshake);
        }
        let answer = Hello::from_bytes(&frame.payload)?;
        if let Some(expected) = expected_peer.filter(|&expected| expected != answer.node) {
            return Err(HandshakeError::WrongPeer {
                expected,
                found: answer.node,
            });
        }
        let key = session_key(&self.cluster_key, self.hello, answer);
        let codec = FrameCodec::new(&key, payload_bytes_max);
        Ok(Some((
            Session {
                peer: answer.node,
                codec,
            },
            used,
        )))
    }
}

/// The accepting side: reads the dialler's hello from the front of `bytes` and, when whole and
/// valid, returns the answer to send, the session, and how many bytes were used.
pub fn accept(
    cluster_key: &[u8],
    own: Hello,
    bytes: &[u8],
    payload_bytes_max: usize,
) -> Result<Option<(Vec<u8>, Session, usize)>, HandshakeError> {
    let mut codec = FrameCodec::new(cluster_key, HELLO_PAYLOAD_MAX);
    let Some((frame, used)) = codec.decode(bytes)? else {
        return Ok(None);
    };
    if frame.kind != FrameKind::Handshake {
        return Err(HandshakeError::NotAHandshake);
    }
    let dialler = Hello::from_bytes(&frame.payload)?;
    let answer = codec.encode(FrameKind::Handshake, &own.to_bytes());
    let key = session_key(cluster_key, dialler, own);
    let session = Session {
        peer: dialler.node,
        codec: FrameCodec::new(&key, payload_bytes_max),
    };
    Ok(Some((answer, session, used)))
}

fn session_key(cluster_key: &[u8], dialler: Hello, acceptor: Hello) -> Vec<u8> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(cluster_key).expect("HMAC takes any key length");
    mac.update(b"concur session v1");
    mac.update(&dialler.to_bytes());
    mac.update(&acceptor.to_bytes());
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"the cluster key";

    fn hello(node: u64, fill: u8) -> Hello {
        Hello {
            node,
            nonce: [fill; NONCE_BYTES],
        }
    }

    fn handshake(dial_key: &[u8], accept_key: &[u8]) -> Result<(Session, Session), HandshakeError> {
        let (mut dialler, first) = dial(dial_key, hello(1, 0xaa));
        let (answer, acceptor_session, _) =
            accept(accept_key, hello(2, 0xbb), &first, 1 << 16)?.expect("whole hello");
        let (dialler_session, _) = dialler
            .receive(&answer, Some(2), 1 << 16)?
            .expect("whole answer");
        Ok((dialler_session, acceptor_session))
    }

    #[test]
    fn peers_with_the_key_agree_on_a_session() {
        let (mut dialler, mut acceptor) = handshake(KEY, KEY).unwrap();
        assert_eq!(dialler.peer, 2);
        assert_eq!(acceptor.peer, 1);
        let bytes = dialler.codec.encode(FrameKind::Message, b"request vote");
        let (frame, _) = acceptor.codec.decode(&bytes).unwrap().unwrap();
        assert_eq!(frame.payload, b"request vote");
    }

    #[test]
    fn a_node_without_the_key_cannot_join() {
        let error = handshake(b"wrong key", KEY).unwrap_err();
        assert_eq!(
            error,
            HandshakeError::Frame(FrameError::AuthenticationFailed)
        );
    }

    #[test]
    fn frames_from_an_old_session_do_not_verify_in_a_new_one() {
        let (mut old, _) = handshake(KEY, KEY).unwrap();
        let recorded = old.codec.encode(FrameKind::Message, b"put x 1");
        // The same dialler hello replayed gets a fresh acceptor nonce, hence a fresh session key.
        let (_, first) = dial(KEY, hello(1, 0xaa));
        let (_, mut fresh, _) = accept(KEY, hello(2, 0xcc), &first, 1 << 16)
            .unwrap()
            .unwrap();
        assert_eq!(
            fresh.codec.decode(&recorded),
            Err(FrameError::AuthenticationFailed)
        );
    }
}

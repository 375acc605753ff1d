//! The network room: how concur nodes talk over real TCP.
//!
//! This crate owns the wire: authenticated, checksummed, size-bounded frames ([`frame`]) and the
//! handshake that proves both peers hold the cluster key and binds a fresh session to the
//! connection ([`handshake`]). A tokio driver that runs the same sans-IO state machines as the
//! simulator is built on top of these.
//!
//! ```
//! use net::frame::{FrameCodec, FrameKind};
//!
//! let key = [7u8; 32];
//! let mut sender = FrameCodec::new(&key, 1 << 20);
//! let mut receiver = FrameCodec::new(&key, 1 << 20);
//! let bytes = sender.encode(FrameKind::Message, b"append entries");
//! let (frame, used) = receiver.decode(&bytes).unwrap().expect("a whole frame");
//! assert_eq!(used, bytes.len());
//! assert_eq!(frame.payload, b"append entries");
//! ```

pub mod disk;
pub mod frame;
pub mod handshake;
pub mod runtime;
pub mod transport;

//! A string value stamped with its hybrid-logical-clock write time, the payload of the registers
//! that hold `ap:` strings and hash fields.

use clock::{HlcTimestamp, ReplicaId};
use crdt::codec::{Decode, DecodeError, Encode, Reader, Writer};

/// Bytes written at `stamp` by `writer`. The derived order — stamp, then writer, then bytes — is
/// exactly [`crdt::LwwRegister`]'s order, so the greatest of a register's concurrent values is the
/// last writer's.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stamped {
    /// When the write happened (the writer's hybrid logical clock).
    pub(crate) stamp: HlcTimestamp,
    /// Who wrote it: breaks exact timestamp ties.
    pub(crate) writer: ReplicaId,
    /// The value.
    pub(crate) bytes: Vec<u8>,
}

impl Encode for Stamped {
    fn encode(&self, writer: &mut Writer) {
        self.stamp.encode(writer);
        writer.varint(self.writer);
        writer.bytes(&self.bytes);
    }
}

impl Decode for Stamped {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            stamp: HlcTimestamp::decode(reader)?,
            writer: reader.varint()?,
            bytes: reader.bytes()?.to_vec(),
        })
    }
}

/// The value a reader sees among a register's concurrent writes: the last writer's.
pub(crate) fn last_writer(values: impl IntoIterator<Item = Stamped>) -> Option<Stamped> {
    values.into_iter().max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crdt::{Crdt, LwwRegister};

    fn stamped(wall_ns: u64, logical: u32, writer: ReplicaId, bytes: &[u8]) -> Stamped {
        Stamped {
            stamp: HlcTimestamp::new(wall_ns, logical),
            writer,
            bytes: bytes.to_vec(),
        }
    }

    #[test]
    fn last_writer_agrees_with_the_lww_register_order() {
        let writes = [
            stamped(10, 0, 2, b"a"),
            stamped(10, 1, 1, b"b"),
            stamped(10, 1, 3, b"c"),
            stamped(9, 7, 9, b"d"),
            stamped(10, 1, 3, b"b"),
        ];
        for first in 0..writes.len() {
            for second in 0..writes.len() {
                let pair = [writes[first].clone(), writes[second].clone()];
                let mut register = LwwRegister::new();
                for write in &pair {
                    let mut other = LwwRegister::new();
                    other.set(write.bytes.clone(), write.stamp, write.writer);
                    register.merge(&other);
                }
                let winner = last_writer(pair).expect("two values");
                assert_eq!(register.get(), Some(&winner.bytes));
                assert_eq!(register.stamp(), Some((winner.stamp, winner.writer)));
            }
        }
    }

    #[test]
    fn encoding_round_trips_and_truncation_is_an_error() {
        let value = stamped(1_700_000_000_000_000_000, 3, 42, b"hello");
        let mut writer = Writer::new();
        value.encode(&mut writer);
        let bytes = writer.into_bytes();
        let mut reader = Reader::new(&bytes);
        assert_eq!(Stamped::decode(&mut reader).unwrap(), value);
        assert!(reader.finish().is_ok());
        let mut short = Reader::new(&bytes[..bytes.len() - 1]);
        assert!(Stamped::decode(&mut short).is_err());
    }
}

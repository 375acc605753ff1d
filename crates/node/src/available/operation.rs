//! What clients ask of the available keyspace, and what it answers.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A key, field, member or value: Redis strings are binary.
pub type Bytes = Vec<u8>;

pub use crate::command::SetCondition;

/// One client operation on `ap:` keys. Conditions (`NX`, `XX`) and answers are judged against
/// what this node has seen: another node may concurrently have written the key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApOperation {
    /// `GET key`: a string, or a counter's value as a decimal string.
    Get(Bytes),
    /// `MGET key…`: like `GET` per key, nil for absent keys and keys of other types.
    MGet(Vec<Bytes>),
    /// `SET key value [NX|XX] [GET]` (and `SETNX` as `IfAbsent`).
    Set {
        /// The key.
        key: Bytes,
        /// The new value.
        value: Bytes,
        /// When to write.
        condition: SetCondition,
        /// Answer with the previous value instead of `OK`.
        get: bool,
    },
    /// `MSET key value…`.
    MSet(Vec<(Bytes, Bytes)>),
    /// `DEL key…`: answers how many existed here; removes what this node has seen.
    Del(Vec<Bytes>),
    /// `EXISTS key…`: answers how many of the keys (repeats counted) exist here.
    Exists(Vec<Bytes>),
    /// `INCRBY key delta` (and `INCR`, `DECR`, `DECRBY`): answers the new value.
    IncrBy {
        /// The key.
        key: Bytes,
        /// Amount to add (negative to subtract).
        delta: i64,
    },
    /// `SADD key member…`: answers how many members were not already present here.
    SAdd {
        /// The key.
        key: Bytes,
        /// Members to add.
        members: Vec<Bytes>,
    },
    /// `SREM key member…`: answers how many members were present here.
    SRem {
        /// The key.
        key: Bytes,
        /// Members to remove.
        members: Vec<Bytes>,
    },
    /// `SMEMBERS key`: members in byte order.
    SMembers(Bytes),
    /// `SISMEMBER key member`.
    SIsMember {
        /// The key.
        key: Bytes,
        /// The member asked about.
        member: Bytes,
    },
    /// `SCARD key`.
    SCard(Bytes),
    /// `HSET key field value…`: answers how many fields were new here.
    HSet {
        /// The key.
        key: Bytes,
        /// `(field, value)` pairs, written in order.
        pairs: Vec<(Bytes, Bytes)>,
    },
    /// `HGET key field`.
    HGet {
        /// The key.
        key: Bytes,
        /// The field.
        field: Bytes,
    },
    /// `HDEL key field…`: answers how many fields were present here.
    HDel {
        /// The key.
        key: Bytes,
        /// Fields to remove.
        fields: Vec<Bytes>,
    },
    /// `HGETALL key`: `(field, value)` pairs in field order.
    HGetAll(Bytes),
    /// `TYPE key`: `string` (counters too, as in Redis), `set`, `hash` or `none`.
    Type(Bytes),
    /// Every available key, in byte order (the caller filters by `KEYS` pattern).
    Keys,
    /// `DBSIZE` for the available keyspace.
    DbSize,
}

impl ApOperation {
    /// True when the operation may change state (and so produce storage writes).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            ApOperation::Set { .. }
                | ApOperation::MSet(_)
                | ApOperation::Del(_)
                | ApOperation::IncrBy { .. }
                | ApOperation::SAdd { .. }
                | ApOperation::SRem { .. }
                | ApOperation::HSet { .. }
                | ApOperation::HDel { .. }
        )
    }
}

/// The answer to an [`ApOperation`], shaped like a RESP reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum ApOutput {
    /// `+OK`.
    Ok,
    /// A nil bulk string.
    Nil,
    /// An integer reply.
    Integer(i64),
    /// One bulk string.
    Bulk(Bytes),
    /// An array of bulk strings, nil where absent (`MGET`).
    Array(Vec<Option<Bytes>>),
    /// An array of bulk strings (`SMEMBERS`, `KEYS`).
    Members(Vec<Bytes>),
    /// An array of alternating fields and values (`HGETALL`).
    Pairs(Vec<(Bytes, Bytes)>),
    /// A simple-string type name (`TYPE`).
    Type(&'static str),
}

/// Why an operation was refused. A refused operation changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize)]
#[non_exhaustive]
pub enum ApError {
    /// The key holds a value of another type.
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    /// `INCRBY` on a string that is not a decimal 64-bit integer.
    #[error("ERR value is not an integer or out of range")]
    NotAnInteger,
    /// `INCRBY` would leave the 64-bit range.
    #[error("ERR increment or decrement would overflow")]
    Overflow,
}

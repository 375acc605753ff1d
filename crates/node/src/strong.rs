//! The strong keyspace's data: Redis-shaped values (strings, sets, hashes) replicated by Raft.
//!
//! Writes are [`StrongCommand`]s applied in log order on every replica; reads are
//! [`StrongQuery`]s answered by the leader after a ReadIndex round (or by any replica when the
//! client asks for a stale read). Both produce a [`StrongOutput`]. A command that fails (wrong type,
//! not an integer) fails identically everywhere, so it leaves every replica unchanged.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// A key or field name: Redis keys are binary.
pub type Bytes = Vec<u8>;

pub use crate::command::SetCondition;

/// One value in the strong keyspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StrongValue {
    /// A string (counters are strings holding a decimal integer, as in Redis).
    String(#[serde(with = "serde_bytes")] Bytes),
    /// A set of members.
    Set(BTreeSet<Bytes>),
    /// A hash: field → value.
    Hash(BTreeMap<Bytes, Bytes>),
}

impl StrongValue {
    /// The Redis `TYPE` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            StrongValue::String(_) => "string",
            StrongValue::Set(_) => "set",
            StrongValue::Hash(_) => "hash",
        }
    }
}

/// A write to the strong keyspace, replicated through the Raft log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StrongCommand {
    /// `SET key value [NX|XX] [GET]`.
    Set {
        /// The key.
        key: Bytes,
        /// The new value.
        #[serde(with = "serde_bytes")]
        value: Bytes,
        /// When to write.
        condition: SetCondition,
        /// Answer with the previous value instead of OK.
        get: bool,
    },
    /// `DEL key…`: answers how many existed.
    Del(Vec<Bytes>),
    /// `INCRBY key delta` (and INCR, DECR, DECRBY): answers the new value.
    IncrBy {
        /// The key.
        key: Bytes,
        /// Amount to add.
        delta: i64,
    },
    /// `MSET key value …`, atomically.
    MSet(Vec<(Bytes, Bytes)>),
    /// `SADD key member…`: answers how many were new.
    SAdd {
        /// The key.
        key: Bytes,
        /// Members to add.
        members: Vec<Bytes>,
    },
    /// `SREM key member…`: answers how many were removed.
    SRem {
        /// The key.
        key: Bytes,
        /// Members to remove.
        members: Vec<Bytes>,
    },
    /// `HSET key field value …`: answers how many fields were new.
    HSet {
        /// The key.
        key: Bytes,
        /// Field/value pairs.
        pairs: Vec<(Bytes, Bytes)>,
    },
    /// `HDEL key field…`: answers how many were removed.
    HDel {
        /// The key.
        key: Bytes,
        /// Fields to remove.
        fields: Vec<Bytes>,
    },
    /// Compare-and-set: install `new` (None deletes) only if the string at `key` is `expected`
    /// (None = absent). Answers 1 when swapped, 0 otherwise.
    CompareAndSet {
        /// The key.
        key: Bytes,
        /// Required current value.
        expected: Option<Bytes>,
        /// Value to install.
        new: Option<Bytes>,
    },
}

/// A read of the strong keyspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StrongQuery {
    /// `GET key`.
    Get(Bytes),
    /// `MGET key…`.
    MGet(Vec<Bytes>),
    /// `EXISTS key…`: counts keys that exist (repeats count again, as in Redis).
    Exists(Vec<Bytes>),
    /// `SMEMBERS key`.
    SMembers(Bytes),
    /// `SISMEMBER key member`.
    SIsMember {
        /// The key.
        key: Bytes,
        /// The member.
        member: Bytes,
    },
    /// `SCARD key`.
    SCard(Bytes),
    /// `HGET key field`.
    HGet {
        /// The key.
        key: Bytes,
        /// The field.
        field: Bytes,
    },
    /// `HGETALL key`.
    HGetAll(Bytes),
    /// `TYPE key`.
    Type(Bytes),
    /// `DBSIZE`: number of strong keys.
    DbSize,
}

/// Why a strong command or query failed (identically on every replica).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum StrongError {
    /// The key holds another type.
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    /// The value is not a decimal integer.
    #[error("ERR value is not an integer or out of range")]
    NotAnInteger,
    /// The result would not fit in 64 bits.
    #[error("ERR increment or decrement would overflow")]
    Overflow,
    /// The command bytes did not decode (a replica running other code, or corruption).
    #[error("ERR undecodable command: {0}")]
    Undecodable(String),
}

/// What a strong command or query answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StrongOutput {
    /// `+OK`.
    Ok,
    /// Nil (absent key, or a conditional SET that did not write).
    Nil,
    /// An integer.
    Integer(i64),
    /// A string value.
    Bulk(#[serde(with = "serde_bytes")] Bytes),
    /// One optional value per key (MGET, HGET-like lists).
    Values(Vec<Option<Bytes>>),
    /// Set members, in order.
    Members(Vec<Bytes>),
    /// Hash field/value pairs, in field order.
    Pairs(Vec<(Bytes, Bytes)>),
    /// A type name (`TYPE`).
    Type(String),
    /// A deterministic failure.
    Error(StrongError),
}

/// The strong keyspace's state machine.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrongStore {
    values: BTreeMap<Bytes, StrongValue>,
}

impl StrongStore {
    /// An empty keyspace.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when no key exists.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value at `key`.
    pub fn value(&self, key: &[u8]) -> Option<&StrongValue> {
        self.values.get(key)
    }

    /// Every key and value, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &StrongValue)> {
        self.values.iter()
    }

    /// Applies one write; a failed command changes nothing.
    pub fn execute(&mut self, command: StrongCommand) -> StrongOutput {
        match self.try_execute(command) {
            Ok(output) => output,
            Err(error) => StrongOutput::Error(error),
        }
    }

    fn try_execute(&mut self, command: StrongCommand) -> Result<StrongOutput, StrongError> {
        match command {
            StrongCommand::Set {
                key,
                value,
                condition,
                get,
            } => {
                let previous = match self.values.get(&key) {
                    None => None,
                    Some(StrongValue::String(previous)) => Some(previous.clone()),
                    // Redis lets SET overwrite any type, but SET … GET on a non-string fails.
                    Some(_) if get => return Err(StrongError::WrongType),
                    Some(_) => Some(Vec::new()),
                };
                let exists = self.values.contains_key(&key);
                let write = match condition {
                    SetCondition::Always => true,
                    SetCondition::IfAbsent => !exists,
                    SetCondition::IfPresent => exists,
                };
                if write {
                    self.values.insert(key, StrongValue::String(value));
                }
                Ok(match (get, write) {
                    (true, _) => previous.map_or(StrongOutput::Nil, StrongOutput::Bulk),
                    (false, true) => StrongOutput::Ok,
                    (false, false) => StrongOutput::Nil,
                })
            }
            StrongCommand::Del(keys) => {
                let removed = keys
                    .iter()
                    .filter(|key| self.values.remove(*key).is_some())
                    .count();
                Ok(StrongOutput::Integer(removed as i64))
            }
            StrongCommand::IncrBy { key, delta } => {
                let current = match self.values.get(&key) {
                    None => 0,
                    Some(StrongValue::String(bytes)) => parse_integer(bytes)?,
                    Some(_) => return Err(StrongError::WrongType),
                };
                let next = current.checked_add(delta).ok_or(StrongError::Overflow)?;
                self.values
                    .insert(key, StrongValue::String(next.to_string().into_bytes()));
                Ok(StrongOutput::Integer(next))
            }
            StrongCommand::MSet(pairs) => {
                for (key, value) in pairs {
                    self.values.insert(key, StrongValue::String(value));
                }
                Ok(StrongOutput::Ok)
            }
            StrongCommand::SAdd { key, members } => {
                let set = match self
                    .values
                    .entry(key)
                    .or_insert_with(|| StrongValue::Set(BTreeSet::new()))
                {
                    StrongValue::Set(set) => set,
                    _ => return Err(StrongError::WrongType),
                };
                let added = members
                    .into_iter()
                    .filter(|member| set.insert(member.clone()))
                    .count();
                Ok(StrongOutput::Integer(added as i64))
            }
            StrongCommand::SRem { key, members } => {
                let removed = match self.values.get_mut(&key) {
                    None => 0,
                    Some(StrongValue::Set(set)) => {
                        members.iter().filter(|member| set.remove(*member)).count()
                    }
                    Some(_) => return Err(StrongError::WrongType),
                };
                self.drop_if_empty(&key);
                Ok(StrongOutput::Integer(removed as i64))
            }
            StrongCommand::HSet { key, pairs } => {
                let hash = match self
                    .values
                    .entry(key)
                    .or_insert_with(|| StrongValue::Hash(BTreeMap::new()))
                {
                    StrongValue::Hash(hash) => hash,
                    _ => return Err(StrongError::WrongType),
                };
                let added = pairs
                    .into_iter()
                    .filter(|(field, value)| hash.insert(field.clone(), value.clone()).is_none())
                    .count();
                Ok(StrongOutput::Integer(added as i64))
            }
            StrongCommand::HDel { key, fields } => {
                let removed = match self.values.get_mut(&key) {
                    None => 0,
                    Some(StrongValue::Hash(hash)) => fields
                        .iter()
                        .filter(|field| hash.remove(*field).is_some())
                        .count(),
                    Some(_) => return Err(StrongError::WrongType),
                };
                self.drop_if_empty(&key);
                Ok(StrongOutput::Integer(removed as i64))
            }
            StrongCommand::CompareAndSet { key, expected, new } => {
                let current = match self.values.get(&key) {
                    None => None,
                    Some(StrongValue::String(bytes)) => Some(bytes),
                    Some(_) => return Err(StrongError::WrongType),
                };
                if current != expected.as_ref() {
                    return Ok(StrongOutput::Integer(0));
                }
                match new {
                    Some(value) => {
                        self.values.insert(key, StrongValue::String(value));
                    }
                    None => {
                        self.values.remove(&key);
                    }
                }
                Ok(StrongOutput::Integer(1))
            }
        }
    }

    /// Answers one read.
    pub fn query(&self, query: &StrongQuery) -> StrongOutput {
        match self.try_query(query) {
            Ok(output) => output,
            Err(error) => StrongOutput::Error(error),
        }
    }

    fn try_query(&self, query: &StrongQuery) -> Result<StrongOutput, StrongError> {
        Ok(match query {
            StrongQuery::Get(key) => match self.values.get(key) {
                None => StrongOutput::Nil,
                Some(StrongValue::String(bytes)) => StrongOutput::Bulk(bytes.clone()),
                Some(_) => return Err(StrongError::WrongType),
            },
            StrongQuery::MGet(keys) => StrongOutput::Values(
                keys.iter()
                    .map(|key| match self.values.get(key) {
                        Some(StrongValue::String(bytes)) => Some(bytes.clone()),
                        _ => None,
                    })
                    .collect(),
            ),
            StrongQuery::Exists(keys) => StrongOutput::Integer(
                keys.iter()
                    .filter(|key| self.values.contains_key(*key))
                    .count() as i64,
            ),
            StrongQuery::SMembers(key) => StrongOutput::Members(
                self.set(key)?
                    .map(|set| set.iter().cloned().collect())
                    .unwrap_or_default(),
            ),
            StrongQuery::SIsMember { key, member } => StrongOutput::Integer(i64::from(
                self.set(key)?.is_some_and(|set| set.contains(member)),
            )),
            StrongQuery::SCard(key) => {
                StrongOutput::Integer(self.set(key)?.map_or(0, |set| set.len() as i64))
            }
            StrongQuery::HGet { key, field } => match self.hash(key)?.and_then(|h| h.get(field)) {
                Some(value) => StrongOutput::Bulk(value.clone()),
                None => StrongOutput::Nil,
            },
            StrongQuery::HGetAll(key) => StrongOutput::Pairs(
                self.hash(key)?
                    .map(|hash| {
                        hash.iter()
                            .map(|(field, value)| (field.clone(), value.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            StrongQuery::Type(key) => StrongOutput::Type(
                self.values
                    .get(key)
                    .map_or("none", StrongValue::type_name)
                    .to_string(),
            ),
            StrongQuery::DbSize => StrongOutput::Integer(self.values.len() as i64),
        })
    }

    fn set(&self, key: &[u8]) -> Result<Option<&BTreeSet<Bytes>>, StrongError> {
        match self.values.get(key) {
            None => Ok(None),
            Some(StrongValue::Set(set)) => Ok(Some(set)),
            Some(_) => Err(StrongError::WrongType),
        }
    }

    fn hash(&self, key: &[u8]) -> Result<Option<&BTreeMap<Bytes, Bytes>>, StrongError> {
        match self.values.get(key) {
            None => Ok(None),
            Some(StrongValue::Hash(hash)) => Ok(Some(hash)),
            Some(_) => Err(StrongError::WrongType),
        }
    }

    /// Redis removes a set or hash when its last member goes.
    fn drop_if_empty(&mut self, key: &[u8]) {
        let empty = match self.values.get(key) {
            Some(StrongValue::Set(set)) => set.is_empty(),
            Some(StrongValue::Hash(hash)) => hash.is_empty(),
            _ => false,
        };
        if empty {
            self.values.remove(key);
        }
    }
}

/// Parses a Redis integer string: optional '-', decimal digits, no spaces or '+'.
fn parse_integer(bytes: &[u8]) -> Result<i64, StrongError> {
    let text = std::str::from_utf8(bytes).map_err(|_| StrongError::NotAnInteger)?;
    if text.is_empty() || text.starts_with('+') || text.len() > 20 {
        return Err(StrongError::NotAnInteger);
    }
    text.parse().map_err(|_| StrongError::NotAnInteger)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(key: &str, value: &str) -> StrongCommand {
        StrongCommand::Set {
            key: key.into(),
            value: value.into(),
            condition: SetCondition::Always,
            get: false,
        }
    }

    #[test]
    fn strings_follow_redis_semantics() {
        let mut store = StrongStore::new();
        assert_eq!(store.execute(set("a", "1")), StrongOutput::Ok);
        assert_eq!(
            store.query(&StrongQuery::Get("a".into())),
            StrongOutput::Bulk(b"1".to_vec())
        );
        let nx = StrongCommand::Set {
            key: "a".into(),
            value: "2".into(),
            condition: SetCondition::IfAbsent,
            get: false,
        };
        assert_eq!(store.execute(nx), StrongOutput::Nil);
        let xx_get = StrongCommand::Set {
            key: "a".into(),
            value: "3".into(),
            condition: SetCondition::IfPresent,
            get: true,
        };
        assert_eq!(store.execute(xx_get), StrongOutput::Bulk(b"1".to_vec()));
        let incr = StrongCommand::IncrBy {
            key: "a".into(),
            delta: 4,
        };
        assert_eq!(store.execute(incr), StrongOutput::Integer(7));
        let overflow = StrongCommand::IncrBy {
            key: "a".into(),
            delta: i64::MAX,
        };
        assert_eq!(
            store.execute(overflow),
            StrongOutput::Error(StrongError::Overflow)
        );
        store.execute(set("text", "abc"));
        let not_integer = StrongCommand::IncrBy {
            key: "text".into(),
            delta: 1,
        };
        assert_eq!(
            store.execute(not_integer),
            StrongOutput::Error(StrongError::NotAnInteger)
        );
        assert_eq!(
            store.query(&StrongQuery::MGet(vec!["a".into(), "missing".into()])),
            StrongOutput::Values(vec![Some(b"7".to_vec()), None])
        );
        assert_eq!(
            store.execute(StrongCommand::Del(vec![
                "a".into(),
                "a".into(),
                "missing".into()
            ])),
            StrongOutput::Integer(1)
        );
        assert_eq!(
            store.query(&StrongQuery::Exists(vec!["text".into(), "text".into()])),
            StrongOutput::Integer(2)
        );
    }

    #[test]
    fn sets_and_hashes_vanish_when_emptied_and_refuse_other_types() {
        let mut store = StrongStore::new();
        let add = StrongCommand::SAdd {
            key: "s".into(),
            members: vec!["x".into(), "y".into(), "x".into()],
        };
        assert_eq!(store.execute(add), StrongOutput::Integer(2));
        assert_eq!(
            store.query(&StrongQuery::SCard("s".into())),
            StrongOutput::Integer(2)
        );
        assert_eq!(
            store.query(&StrongQuery::Get("s".into())),
            StrongOutput::Error(StrongError::WrongType)
        );
        let remove = StrongCommand::SRem {
            key: "s".into(),
            members: vec!["x".into(), "y".into()],
        };
        assert_eq!(store.execute(remove), StrongOutput::Integer(2));
        assert_eq!(
            store.query(&StrongQuery::Type("s".into())),
            StrongOutput::Type("none".into())
        );
        let hset = StrongCommand::HSet {
            key: "h".into(),
            pairs: vec![("f".into(), "1".into()), ("g".into(), "2".into())],
        };
        assert_eq!(store.execute(hset), StrongOutput::Integer(2));
        assert_eq!(
            store.query(&StrongQuery::HGetAll("h".into())),
            StrongOutput::Pairs(vec![("f".into(), "1".into()), ("g".into(), "2".into())])
        );
        let sadd_on_hash = StrongCommand::SAdd {
            key: "h".into(),
            members: vec!["x".into()],
        };
        let before = store.clone();
        assert_eq!(
            store.execute(sadd_on_hash),
            StrongOutput::Error(StrongError::WrongType)
        );
        assert_eq!(store, before, "a failed command changes nothing");
        assert_eq!(store.query(&StrongQuery::DbSize), StrongOutput::Integer(1));
    }

    #[test]
    fn compare_and_set_swaps_only_on_a_match() {
        let mut store = StrongStore::new();
        let cas = |expected: Option<&str>, new: Option<&str>| StrongCommand::CompareAndSet {
            key: "k".into(),
            expected: expected.map(Into::into),
            new: new.map(Into::into),
        };
        assert_eq!(
            store.execute(cas(Some("x"), Some("y"))),
            StrongOutput::Integer(0)
        );
        assert_eq!(
            store.execute(cas(None, Some("y"))),
            StrongOutput::Integer(1)
        );
        assert_eq!(
            store.execute(cas(Some("y"), None)),
            StrongOutput::Integer(1)
        );
        assert!(store.is_empty());
    }
}

//! The replicated key-value state machine: get, put, delete, compare-and-swap, increment.

use std::collections::HashMap;

use compact_str::CompactString;

use serde::{Deserialize, Serialize};

/// A deterministic state machine driven by committed log entries.
///
/// Commands and queries are opaque bytes so log entries and messages stay non-generic; `apply`
/// must be deterministic and must not fail on malformed bytes (encode the failure in the output,
/// so every replica produces the same output).
pub trait StateMachine {
    /// Applies a committed command and returns its output.
    fn apply(&mut self, command: &[u8]) -> Vec<u8>;
    /// Applies a committed command, writing its output into `output`, which arrives empty; its
    /// capacity is a recycled buffer, so a state machine can answer without allocating. Same
    /// outcome as `apply` (the default calls it).
    fn apply_into(&mut self, command: &[u8], output: &mut Vec<u8>) {
        *output = self.apply(command);
    }
    /// Answers a read-only query against the current state.
    fn query(&self, query: &[u8]) -> Vec<u8>;
    /// Serializes the whole state.
    fn snapshot(&self) -> Vec<u8>;
    /// Replaces the state with a snapshot; on error the state is unchanged.
    fn restore(&mut self, data: &[u8]) -> Result<(), StateMachineError>;
}

/// A state machine could not restore a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateMachineError {
    /// The snapshot bytes did not decode; the state is unchanged.
    #[error("snapshot does not decode: {0}")]
    Decode(String),
}

/// A KV write, replicated through the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvCommand {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: String,
        /// The value.
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: String,
    },
    /// Set `key` to `new` (None deletes) only if its current value equals `expected` (None = absent).
    CompareAndSwap {
        /// The key.
        key: String,
        /// Required current value.
        expected: Option<Vec<u8>>,
        /// Value to install.
        new: Option<Vec<u8>>,
    },
    /// Add `delta` to the decimal integer at `key` (absent counts as 0).
    Increment {
        /// The key.
        key: String,
        /// Amount to add.
        delta: i64,
    },
}

/// A KV read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvQuery {
    /// Read `key`.
    Get {
        /// The key.
        key: String,
    },
}

/// The output of a KV command or query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvOutput {
    /// The value read, or the previous value for put/delete.
    Value(Option<Vec<u8>>),
    /// Compare-and-swap result and the value now current.
    Swapped {
        /// Whether the swap happened.
        swapped: bool,
        /// The value after the operation.
        current: Option<Vec<u8>>,
    },
    /// New counter value after an increment.
    Counter(i64),
    /// A deterministic failure (malformed bytes, non-integer increment, overflow).
    Error(String),
}

impl KvCommand {
    /// Encodes for `ClientOperation::Write`.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }
}

impl KvQuery {
    /// Encodes for `ClientOperation::Read`.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }
}

impl KvOutput {
    /// Decodes a reply's output; malformed bytes become `KvOutput::Error`.
    pub fn decode(bytes: &[u8]) -> Self {
        postcard::from_bytes(bytes)
            .unwrap_or_else(|e| Self::Error(format!("undecodable output: {e}")))
    }

    fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }
}

/// The hasher of the replica's lookup tables: deterministic (no per-process random keys), so a
/// run is reproducible; the tables are only looked up, and serialized in key order, so the hash
/// order never reaches any output. Like any unkeyed hash it does not resist chosen colliding keys.
pub(crate) type StableHasher = std::hash::BuildHasherDefault<WordHasher>;

/// A fast multiplicative hash over 8-byte words (the FxHash scheme): a few cycles for the
/// session ids and short keys looked up on every applied command, where SipHash costs tens.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WordHasher {
    state: u64,
}

impl WordHasher {
    const MULTIPLIER: u64 = 0xf135_7aea_2e62_a9c5;

    fn add_word(&mut self, word: u64) {
        self.state = (self.state.rotate_left(26) ^ word).wrapping_mul(Self::MULTIPLIER);
    }
}

impl std::hash::Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add_word(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add_word(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, value: u8) {
        self.add_word(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.add_word(value);
    }

    fn write_usize(&mut self, value: usize) {
        self.add_word(value as u64);
    }

    fn finish(&self) -> u64 {
        // A multiply mixes only upwards; hashbrown takes buckets from the low bits and tags from
        // the top 7, so finish by folding the high half down (half of MurmurHash3's finalizer).
        let mixed = (self.state ^ (self.state >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        mixed ^ (mixed >> 33)
    }
}

/// Serializes a hash map as the `BTreeMap` with the same contents would be: a map in key order.
pub(crate) fn serialize_sorted<K, V, H, S2>(
    map: &HashMap<K, V, H>,
    serializer: S2,
) -> Result<S2::Ok, S2::Error>
where
    K: Ord + Serialize,
    V: Serialize,
    S2: serde::Serializer,
{
    let mut sorted: Vec<(&K, &V)> = map.iter().collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
    serializer.collect_map(sorted)
}

/// The key-value store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kv {
    // Hashed for lookups on every applied command; encoded in key order like the B-tree it was.
    // Keys up to 24 bytes are held inline in the table, so finding one compares bytes already in
    // the cache line the probe loaded instead of following a pointer to the heap. Encoded as a
    // `String`.
    #[serde(serialize_with = "serialize_sorted")]
    entries: HashMap<CompactString, Vec<u8>, StableHasher>,
}

/// Pairs serialized as a map in the order given.
struct MapInOrder<K, V>(Vec<(K, V)>);

impl<K: Serialize, V: Serialize> Serialize for MapInOrder<K, V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl Kv {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a key directly (for tests and checkers).
    pub fn get(&self, key: &str) -> Option<&Vec<u8>> {
        self.entries.get(key)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn execute(&mut self, command: KvCommand) -> KvOutput {
        match command {
            KvCommand::Put { key, value } => {
                KvOutput::Value(self.entries.insert(key.into(), value))
            }
            KvCommand::Delete { key } => KvOutput::Value(self.entries.remove(key.as_str())),
            KvCommand::CompareAndSwap { key, expected, new } => {
                if self.entries.get(key.as_str()) != expected.as_ref() {
                    return KvOutput::Swapped {
                        swapped: false,
                        current: self.entries.get(key.as_str()).cloned(),
                    };
                }
                match &new {
                    Some(value) => self.entries.insert(key.into(), value.clone()),
                    None => self.entries.remove(key.as_str()),
                };
                KvOutput::Swapped {
                    swapped: true,
                    current: new,
                }
            }
            KvCommand::Increment { key, delta } => {
                let current = match self.entries.get(key.as_str()) {
                    None => 0,
                    Some(bytes) => match std::str::from_utf8(bytes)
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                    {
                        Some(n) => n,
                        None => {
                            return KvOutput::Error(format!("value at {key:?} is not an integer"));
                        }
                    },
                };
                let Some(next) = current.checked_add(delta) else {
                    return KvOutput::Error(format!("increment of {key:?} overflows"));
                };
                self.entries
                    .insert(key.into(), next.to_string().into_bytes());
                KvOutput::Counter(next)
            }
        }
    }
}

/// A `KvCommand::Put` read in place from its encoding (the hot path of `apply_into`); any other
/// command fails to decode as this and takes the general path.
#[derive(Deserialize)]
enum BorrowedPut<'a> {
    Put { key: &'a str, value: &'a [u8] },
}

/// Encodes exactly as `KvOutput::Value` (same variant index, bytes written as a length-prefixed
/// string like a `Vec<u8>` sequence), from a borrowed value.
#[derive(Serialize)]
enum BorrowedValue<'a> {
    Value(Option<&'a serde_bytes::Bytes>),
}

impl Kv {
    /// `Put` without decoding into owned strings: the previous value's buffer is encoded into the
    /// output and then overwritten in place, so replacing a key allocates nothing.
    fn put_in_place(&mut self, key: &str, value: &[u8], output: &mut Vec<u8>) {
        let previous = self.entries.get_mut(key);
        let encoded = BorrowedValue::Value(previous.as_deref().map(|v| serde_bytes::Bytes::new(v)));
        *output = postcard::to_extend(&encoded, std::mem::take(output)).unwrap_or_default();
        match previous {
            Some(slot) => {
                slot.clear();
                slot.extend_from_slice(value);
            }
            None => {
                self.entries.insert(key.into(), value.to_vec());
            }
        }
    }
}

impl StateMachine for Kv {
    fn apply(&mut self, command: &[u8]) -> Vec<u8> {
        let mut output = Vec::new();
        self.apply_into(command, &mut output);
        output
    }

    fn apply_into(&mut self, command: &[u8], output: &mut Vec<u8>) {
        output.clear();
        if let Ok(BorrowedPut::Put { key, value }) = postcard::from_bytes::<BorrowedPut>(command) {
            return self.put_in_place(key, value, output);
        }
        let result = match postcard::from_bytes::<KvCommand>(command) {
            Ok(command) => self.execute(command),
            Err(e) => KvOutput::Error(format!("undecodable command: {e}")),
        };
        *output = postcard::to_extend(&result, std::mem::take(output)).unwrap_or_default();
    }

    fn query(&self, query: &[u8]) -> Vec<u8> {
        let output = match postcard::from_bytes::<KvQuery>(query) {
            Ok(KvQuery::Get { key }) => KvOutput::Value(self.entries.get(key.as_str()).cloned()),
            Err(e) => KvOutput::Error(format!("undecodable query: {e}")),
        };
        output.encode()
    }

    fn snapshot(&self) -> Vec<u8> {
        // Sorted as plain `&str`s: each comparison is then a byte compare, not two decodings of
        // the inline-or-heap key representation.
        let mut sorted: Vec<(&str, &serde_bytes::Bytes)> = self
            .entries
            .iter()
            .map(|(key, value)| (key.as_str(), serde_bytes::Bytes::new(value)))
            .collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        // Exact but for the length prefixes (at most 5 bytes each for sizes below 4 GiB), so the
        // encoding is written into one buffer without growing it.
        let size: usize = sorted.iter().map(|(k, v)| k.len() + v.len() + 10).sum();
        // A map in key order, values as byte strings: the encoding of a `BTreeMap<String,
        // Vec<u8>>` in postcard, written without a call per byte.
        postcard::to_extend(&MapInOrder(sorted), Vec::with_capacity(size + 5)).unwrap_or_default()
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), StateMachineError> {
        self.entries =
            postcard::from_bytes(data).map_err(|e| StateMachineError::Decode(e.to_string()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(kv: &mut Kv, command: KvCommand) -> KvOutput {
        KvOutput::decode(&kv.apply(&command.encode()))
    }

    #[test]
    fn operations_follow_their_contracts() {
        let mut kv = Kv::new();
        let key = || "k".to_string();
        assert_eq!(
            run(
                &mut kv,
                KvCommand::Put {
                    key: key(),
                    value: b"1".to_vec()
                }
            ),
            KvOutput::Value(None)
        );
        assert_eq!(
            run(
                &mut kv,
                KvCommand::Increment {
                    key: key(),
                    delta: 41
                }
            ),
            KvOutput::Counter(42)
        );
        let failed = run(
            &mut kv,
            KvCommand::CompareAndSwap {
                key: key(),
                expected: None,
                new: Some(b"x".to_vec()),
            },
        );
        assert_eq!(
            failed,
            KvOutput::Swapped {
                swapped: false,
                current: Some(b"42".to_vec())
            }
        );
        let swapped = run(
            &mut kv,
            KvCommand::CompareAndSwap {
                key: key(),
                expected: Some(b"42".to_vec()),
                new: Some(b"x".to_vec()),
            },
        );
        assert_eq!(
            swapped,
            KvOutput::Swapped {
                swapped: true,
                current: Some(b"x".to_vec())
            }
        );
        assert!(matches!(
            run(
                &mut kv,
                KvCommand::Increment {
                    key: key(),
                    delta: 1
                }
            ),
            KvOutput::Error(_)
        ));
        assert_eq!(
            run(&mut kv, KvCommand::Delete { key: key() }),
            KvOutput::Value(Some(b"x".to_vec()))
        );
        assert_eq!(
            KvOutput::decode(&kv.query(&KvQuery::Get { key: key() }.encode())),
            KvOutput::Value(None)
        );
        assert!(matches!(
            KvOutput::decode(&kv.apply(b"\xff\xff\xff")),
            KvOutput::Error(_)
        ));
    }

    fn command_strategy() -> impl proptest::strategy::Strategy<Value = KvCommand> {
        use proptest::prelude::*;
        let key = (0u8..4).prop_map(|k| format!("k{k}"));
        let value = proptest::collection::vec(any::<u8>(), 0..200);
        prop_oneof![
            (key.clone(), value.clone()).prop_map(|(key, value)| KvCommand::Put { key, value }),
            key.clone().prop_map(|key| KvCommand::Delete { key }),
            (
                key.clone(),
                proptest::option::of(value.clone()),
                proptest::option::of(value)
            )
                .prop_map(|(key, expected, new)| KvCommand::CompareAndSwap {
                    key,
                    expected,
                    new
                }),
            (key, -3i64..3).prop_map(|(key, delta)| KvCommand::Increment { key, delta }),
        ]
    }

    proptest::proptest! {
        /// The in-place path (borrowed decode, recycled output buffer) answers and changes the
        /// store exactly as decoding and executing the owned command does.
        #[test]
        fn apply_into_matches_owned_execution(
            commands in proptest::collection::vec(command_strategy(), 1..40),
            garbage in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12),
        ) {
            let mut fast = Kv::new();
            let mut reference = Kv::new();
            let mut output = vec![9; 3];
            for command in commands {
                let bytes = command.encode();
                output.clear();
                fast.apply_into(&bytes, &mut output);
                let expected = reference.execute(command).encode();
                proptest::prop_assert_eq!(&output, &expected);
                proptest::prop_assert_eq!(&fast, &reference);
            }
            output.clear();
            fast.apply_into(&garbage, &mut output);
            proptest::prop_assert_eq!(output, reference.apply(&garbage));
            proptest::prop_assert_eq!(fast, reference);
        }
    }

    /// The table hasher spreads sequential session ids and short keys over both the low bits
    /// (bucket) and the top 7 bits (tag) hashbrown uses.
    #[test]
    fn word_hasher_spreads_ids_and_keys() {
        use std::hash::BuildHasher;
        let hasher = StableHasher::default();
        let ids: Vec<u64> = (1..=1024u64).map(|id| hasher.hash_one(id)).collect();
        let keys: Vec<u64> = (0..1024)
            .map(|key| hasher.hash_one(format!("k{key}")))
            .collect();
        for hashes in [ids, keys] {
            let buckets: std::collections::BTreeSet<u64> =
                hashes.iter().map(|h| h & 1023).collect();
            let tags: std::collections::BTreeSet<u64> = hashes.iter().map(|h| h >> 57).collect();
            assert!(buckets.len() > 600, "{} buckets", buckets.len());
            assert!(tags.len() > 100, "{} tags", tags.len());
        }
    }

    #[test]
    fn encodings_are_those_of_an_ordered_map() {
        let mut kv = Kv::new();
        let mut ordered = std::collections::BTreeMap::new();
        for key in [7u32, 3, 900, 12, 5, 64, 1, 333] {
            let (key, value) = (format!("key{key}"), vec![key as u8; key as usize % 17]);
            run(
                &mut kv,
                KvCommand::Put {
                    key: key.clone(),
                    value: value.clone(),
                },
            );
            ordered.insert(key, value);
        }
        let expected = postcard::to_allocvec(&ordered).expect("encode");
        assert_eq!(kv.snapshot(), expected);
        assert_eq!(postcard::to_allocvec(&kv).expect("encode"), expected);
        assert_eq!(
            serde_json::to_string(&kv).ok(),
            serde_json::to_string(&serde_json::json!({ "entries": ordered })).ok()
        );
        let mut copy = Kv::new();
        copy.restore(&expected).expect("restore");
        assert_eq!(copy, kv);
    }

    #[test]
    fn snapshot_round_trips_and_bad_bytes_leave_state_unchanged() {
        let mut kv = Kv::new();
        run(
            &mut kv,
            KvCommand::Put {
                key: "a".into(),
                value: b"1".to_vec(),
            },
        );
        let mut copy = Kv::new();
        copy.restore(&kv.snapshot()).expect("restore");
        assert_eq!(copy, kv);
        assert!(copy.restore(b"\xff").is_err());
        assert_eq!(copy, kv);
    }
}

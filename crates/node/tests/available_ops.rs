//! The available keyspace one operation at a time: Redis answers and errors on one node, the
//! documented merge semantics between two nodes (observed-remove DEL, last writer by hybrid
//! logical clock, type precedence), storage recovery and refusal of corrupt input.

use std::collections::BTreeMap;

use node::available::{
    ApError, ApMessage, ApOperation, ApOutput, Available, AvailableError, SetCondition,
};
use rand::SeedableRng;
use sim::SimRng;

fn bytes(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

fn set(key: &str, value: &str) -> ApOperation {
    ApOperation::Set {
        key: bytes(key),
        value: bytes(value),
        condition: SetCondition::Always,
        get: false,
    }
}

fn get(key: &str) -> ApOperation {
    ApOperation::Get(bytes(key))
}

fn incr(key: &str, delta: i64) -> ApOperation {
    ApOperation::IncrBy {
        key: bytes(key),
        delta,
    }
}

fn sadd(key: &str, members: &[&str]) -> ApOperation {
    ApOperation::SAdd {
        key: bytes(key),
        members: members.iter().map(|member| bytes(member)).collect(),
    }
}

fn srem(key: &str, members: &[&str]) -> ApOperation {
    ApOperation::SRem {
        key: bytes(key),
        members: members.iter().map(|member| bytes(member)).collect(),
    }
}

fn hset(key: &str, pairs: &[(&str, &str)]) -> ApOperation {
    ApOperation::HSet {
        key: bytes(key),
        pairs: pairs
            .iter()
            .map(|(field, value)| (bytes(field), bytes(value)))
            .collect(),
    }
}

fn del(keys: &[&str]) -> ApOperation {
    ApOperation::Del(keys.iter().map(|key| bytes(key)).collect())
}

fn kind(node: &mut Available, key: &str) -> &'static str {
    match node.execute(0, ApOperation::Type(bytes(key))) {
        Ok(ApOutput::Type(name)) => name,
        other => panic!("TYPE answered {other:?}"),
    }
}

fn bulk(text: &str) -> Result<ApOutput, ApError> {
    Ok(ApOutput::Bulk(bytes(text)))
}

fn members(list: &[&str]) -> Result<ApOutput, ApError> {
    Ok(ApOutput::Members(list.iter().map(|m| bytes(m)).collect()))
}

/// One full push-pull round opened by `opener` towards `peer`, every message delivered.
fn round(opener: &mut Available, peer: &mut Available, now_ns: u64) {
    let mut rng = SimRng::seed_from_u64(now_ns);
    let mut mail: Vec<(u64, u64, ApMessage)> = opener
        .tick(now_ns, &[peer.replica()], &mut rng)
        .into_iter()
        .map(|(to, message)| (opener.replica(), to, message))
        .collect();
    let mut steps = 0;
    while let Some((from, to, message)) = mail.pop() {
        steps += 1;
        assert!(steps <= 3, "a round is three messages at most");
        let receiver = if to == peer.replica() {
            &mut *peer
        } else {
            &mut *opener
        };
        let replies = receiver.receive(now_ns, from, message).expect("decodes");
        mail.extend(replies.into_iter().map(|(next, m)| (to, next, m)));
    }
}

#[test]
fn strings_set_get_conditions_and_mget() {
    let mut node = Available::new(1);
    assert_eq!(node.execute(1, get("ap:a")), Ok(ApOutput::Nil));
    assert_eq!(node.execute(2, set("ap:a", "one")), Ok(ApOutput::Ok));
    assert_eq!(node.execute(3, get("ap:a")), bulk("one"));
    let conditional = |condition, value: &str, get| ApOperation::Set {
        key: bytes("ap:a"),
        value: bytes(value),
        condition,
        get,
    };
    assert_eq!(
        node.execute(4, conditional(SetCondition::IfAbsent, "two", false)),
        Ok(ApOutput::Nil)
    );
    assert_eq!(node.execute(5, get("ap:a")), bulk("one"));
    assert_eq!(
        node.execute(6, conditional(SetCondition::IfPresent, "three", true)),
        bulk("one")
    );
    assert_eq!(node.execute(7, get("ap:a")), bulk("three"));
    let absent = ApOperation::Set {
        key: bytes("ap:b"),
        value: bytes("x"),
        condition: SetCondition::IfPresent,
        get: false,
    };
    assert_eq!(node.execute(8, absent), Ok(ApOutput::Nil));
    assert_eq!(node.execute(9, get("ap:b")), Ok(ApOutput::Nil));
    let pairs = vec![(bytes("ap:b"), bytes("B")), (bytes("ap:c"), bytes("C"))];
    assert_eq!(node.execute(10, ApOperation::MSet(pairs)), Ok(ApOutput::Ok));
    node.execute(11, sadd("ap:s", &["m"])).unwrap();
    node.execute(12, incr("ap:n", 5)).unwrap();
    let keys = ["ap:a", "ap:missing", "ap:s", "ap:c", "ap:n"];
    assert_eq!(
        node.execute(
            13,
            ApOperation::MGet(keys.iter().map(|k| bytes(k)).collect())
        ),
        Ok(ApOutput::Array(vec![
            Some(bytes("three")),
            None,
            None,
            Some(bytes("C")),
            Some(bytes("5")),
        ]))
    );
    assert_eq!(node.execute(14, get("ap:s")), Err(ApError::WrongType));
}

#[test]
fn counters_and_integer_strings() {
    let mut node = Available::new(1);
    assert_eq!(node.execute(1, incr("ap:n", 5)), Ok(ApOutput::Integer(5)));
    assert_eq!(node.execute(2, incr("ap:n", -8)), Ok(ApOutput::Integer(-3)));
    assert_eq!(node.execute(3, get("ap:n")), bulk("-3"));
    assert_eq!(kind(&mut node, "ap:n"), "string");
    assert_eq!(
        node.execute(4, incr("ap:n", i64::MIN)),
        Err(ApError::Overflow)
    );
    assert_eq!(
        node.execute(5, get("ap:n")),
        bulk("-3"),
        "refused: no change"
    );

    node.execute(6, set("ap:s", "10")).unwrap();
    assert_eq!(node.execute(7, incr("ap:s", 1)), Ok(ApOutput::Integer(11)));
    assert_eq!(node.execute(8, get("ap:s")), bulk("11"));
    node.execute(9, set("ap:max", &i64::MAX.to_string()))
        .unwrap();
    assert_eq!(node.execute(10, incr("ap:max", 1)), Err(ApError::Overflow));
    for text in [
        "abc",
        "+5",
        " 5",
        "5 ",
        "007",
        "-0",
        "",
        "-",
        "99999999999999999999",
    ] {
        node.execute(11, set("ap:t", text)).unwrap();
        assert_eq!(
            node.execute(12, incr("ap:t", 1)),
            Err(ApError::NotAnInteger),
            "{text:?}"
        );
    }
    node.execute(13, sadd("ap:set", &["m"])).unwrap();
    assert_eq!(node.execute(14, incr("ap:set", 1)), Err(ApError::WrongType));
}

#[test]
fn sets_add_remove_and_read() {
    let mut node = Available::new(1);
    assert_eq!(
        node.execute(1, sadd("ap:s", &["b", "a", "b"])),
        Ok(ApOutput::Integer(2))
    );
    assert_eq!(
        node.execute(2, sadd("ap:s", &["a", "c"])),
        Ok(ApOutput::Integer(1))
    );
    assert_eq!(
        node.execute(3, ApOperation::SMembers(bytes("ap:s"))),
        members(&["a", "b", "c"])
    );
    let is_member = |member: &str| ApOperation::SIsMember {
        key: bytes("ap:s"),
        member: bytes(member),
    };
    assert_eq!(node.execute(4, is_member("b")), Ok(ApOutput::Integer(1)));
    assert_eq!(node.execute(5, is_member("z")), Ok(ApOutput::Integer(0)));
    assert_eq!(
        node.execute(6, srem("ap:s", &["b", "z"])),
        Ok(ApOutput::Integer(1))
    );
    assert_eq!(
        node.execute(7, ApOperation::SCard(bytes("ap:s"))),
        Ok(ApOutput::Integer(2))
    );
    assert_eq!(kind(&mut node, "ap:s"), "set");
    assert_eq!(
        node.execute(8, srem("ap:s", &["a", "c"])),
        Ok(ApOutput::Integer(2))
    );
    assert_eq!(kind(&mut node, "ap:s"), "none", "an emptied set is gone");
    assert_eq!(
        node.execute(9, ApOperation::SMembers(bytes("ap:s"))),
        members(&[])
    );
    node.execute(10, set("ap:str", "x")).unwrap();
    assert_eq!(
        node.execute(11, sadd("ap:str", &["m"])),
        Err(ApError::WrongType)
    );
    assert_eq!(
        node.execute(12, srem("ap:str", &["m"])),
        Err(ApError::WrongType)
    );
    assert_eq!(
        node.execute(13, ApOperation::SCard(bytes("ap:str"))),
        Err(ApError::WrongType)
    );
}

#[test]
fn hashes_write_read_and_delete_fields() {
    let mut node = Available::new(1);
    assert_eq!(
        node.execute(1, hset("ap:h", &[("f", "1"), ("g", "2")])),
        Ok(ApOutput::Integer(2))
    );
    assert_eq!(
        node.execute(2, hset("ap:h", &[("f", "3"), ("h", "4")])),
        Ok(ApOutput::Integer(1))
    );
    let hget = |field: &str| ApOperation::HGet {
        key: bytes("ap:h"),
        field: bytes(field),
    };
    assert_eq!(node.execute(3, hget("f")), bulk("3"));
    assert_eq!(node.execute(4, hget("zz")), Ok(ApOutput::Nil));
    let hdel = |fields: &[&str]| ApOperation::HDel {
        key: bytes("ap:h"),
        fields: fields.iter().map(|f| bytes(f)).collect(),
    };
    assert_eq!(
        node.execute(5, hdel(&["g", "zz"])),
        Ok(ApOutput::Integer(1))
    );
    assert_eq!(
        node.execute(6, ApOperation::HGetAll(bytes("ap:h"))),
        Ok(ApOutput::Pairs(vec![
            (bytes("f"), bytes("3")),
            (bytes("h"), bytes("4"))
        ]))
    );
    assert_eq!(kind(&mut node, "ap:h"), "hash");
    assert_eq!(node.execute(7, hdel(&["f", "h"])), Ok(ApOutput::Integer(2)));
    assert_eq!(kind(&mut node, "ap:h"), "none");
    node.execute(8, sadd("ap:s", &["m"])).unwrap();
    assert_eq!(
        node.execute(9, hset("ap:s", &[("f", "v")])),
        Err(ApError::WrongType)
    );
    assert_eq!(
        node.execute(10, ApOperation::HGetAll(bytes("ap:s"))),
        Err(ApError::WrongType)
    );
}

#[test]
fn del_exists_keys_dbsize_and_set_over_other_types() {
    let mut node = Available::new(1);
    node.execute(1, set("ap:a", "x")).unwrap();
    node.execute(2, sadd("ap:b", &["m"])).unwrap();
    node.execute(3, hset("ap:c", &[("f", "v")])).unwrap();
    node.execute(4, incr("ap:d", 1)).unwrap();
    assert_eq!(
        node.execute(5, ApOperation::DbSize),
        Ok(ApOutput::Integer(4))
    );
    assert_eq!(
        node.execute(6, ApOperation::Keys),
        members(&["ap:a", "ap:b", "ap:c", "ap:d"])
    );
    let exists = ApOperation::Exists(vec![bytes("ap:a"), bytes("ap:a"), bytes("ap:z")]);
    assert_eq!(node.execute(7, exists), Ok(ApOutput::Integer(2)));
    assert_eq!(
        node.execute(8, del(&["ap:a", "ap:b", "ap:b", "ap:z"])),
        Ok(ApOutput::Integer(2))
    );
    // SET replaces a value of any type, as in Redis.
    assert_eq!(
        node.execute(9, set("ap:c", "now a string")),
        Ok(ApOutput::Ok)
    );
    assert_eq!(kind(&mut node, "ap:c"), "string");
    assert_eq!(node.execute(10, get("ap:c")), bulk("now a string"));
    node.execute(11, set("ap:d", "7")).unwrap();
    assert_eq!(node.execute(12, incr("ap:d", 1)), Ok(ApOutput::Integer(8)));
    assert_eq!(
        node.execute(13, ApOperation::Keys),
        members(&["ap:c", "ap:d"])
    );
    let snapshot = node.snapshot_json();
    assert_eq!(
        snapshot,
        serde_json::json!({
            "ap:c": {"type": "string", "value": "now a string"},
            "ap:d": {"type": "string", "value": "8"},
        })
    );
}

#[test]
fn errors_read_as_redis_errors() {
    assert_eq!(
        ApError::WrongType.to_string(),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    assert_eq!(
        ApError::NotAnInteger.to_string(),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        ApError::Overflow.to_string(),
        "ERR increment or decrement would overflow"
    );
}

#[test]
fn reads_and_refused_writes_persist_nothing_and_writes_persist_something() {
    let mut node = Available::new(1);
    node.execute(1, set("ap:a", "x")).unwrap();
    assert!(!node.take_writes().is_empty());
    node.execute(2, get("ap:a")).unwrap();
    node.execute(3, sadd("ap:a", &["m"])).unwrap_err();
    node.execute(4, del(&["ap:missing"])).unwrap();
    node.execute(5, srem("ap:missing", &["m"])).unwrap();
    assert!(node.take_writes().is_empty());
    let writes = {
        node.execute(6, del(&["ap:a"])).unwrap();
        node.take_writes()
    };
    assert_eq!(writes.len(), 1);
    assert!(writes[0].0.starts_with(Available::RECORD_PREFIX));
}

#[test]
fn del_removes_what_it_saw_and_a_concurrent_add_survives() {
    let mut alice = Available::new(1);
    let mut bob = Available::new(2);
    alice.execute(10, sadd("ap:s", &["x"])).unwrap();
    round(&mut alice, &mut bob, 20);
    assert_eq!(
        bob.execute(30, ApOperation::SMembers(bytes("ap:s"))),
        members(&["x"])
    );
    // Concurrently: Alice deletes the key, Bob adds y.
    assert_eq!(alice.execute(40, del(&["ap:s"])), Ok(ApOutput::Integer(1)));
    bob.execute(40, sadd("ap:s", &["y"])).unwrap();
    round(&mut bob, &mut alice, 50);
    for node in [&mut alice, &mut bob] {
        assert_eq!(
            node.execute(60, ApOperation::SMembers(bytes("ap:s"))),
            members(&["y"])
        );
    }
    assert_eq!(alice.encoded_state(), bob.encoded_state());
}

#[test]
fn concurrent_sets_resolve_by_timestamp_then_replica() {
    let mut alice = Available::new(1);
    let mut bob = Available::new(2);
    alice.execute(200, set("ap:k", "alice later")).unwrap();
    bob.execute(100, set("ap:k", "bob earlier")).unwrap();
    alice.execute(500, set("ap:tie", "alice")).unwrap();
    bob.execute(500, set("ap:tie", "bob")).unwrap();
    round(&mut alice, &mut bob, 1_000);
    for node in [&mut alice, &mut bob] {
        assert_eq!(node.execute(2_000, get("ap:k")), bulk("alice later"));
        assert_eq!(
            node.execute(2_000, get("ap:tie")),
            bulk("bob"),
            "replica 2 > 1"
        );
    }
    // A write that has seen the value supersedes it whatever the clocks say: Carol's clock is
    // far behind Alice's stamp, but her write comes after reading Alice's value.
    let mut carol = Available::new(3);
    round(&mut carol, &mut alice, 3_000);
    carol
        .execute(50, set("ap:k", "carol after seeing"))
        .unwrap();
    round(&mut carol, &mut alice, 3_000);
    assert_eq!(
        alice.execute(4_000, get("ap:k")),
        bulk("carol after seeing")
    );
}

#[test]
fn concurrent_increments_add_up_and_del_resets_what_it_saw() {
    let mut alice = Available::new(1);
    let mut bob = Available::new(2);
    alice.execute(1, incr("ap:n", 5)).unwrap();
    bob.execute(1, incr("ap:n", 7)).unwrap();
    round(&mut alice, &mut bob, 2);
    assert_eq!(alice.execute(3, get("ap:n")), bulk("12"));
    assert_eq!(bob.execute(3, get("ap:n")), bulk("12"));
    // Alice deletes while Bob increments: Bob's running total (7 + 1) survives, Alice's 5 is gone.
    alice.execute(4, del(&["ap:n"])).unwrap();
    bob.execute(4, incr("ap:n", 1)).unwrap();
    round(&mut alice, &mut bob, 5);
    assert_eq!(alice.execute(6, get("ap:n")), bulk("8"));
    assert_eq!(bob.execute(6, get("ap:n")), bulk("8"));
}

#[test]
fn concurrent_writes_of_different_types_show_by_precedence() {
    let mut alice = Available::new(1);
    let mut bob = Available::new(2);
    alice.execute(1, sadd("ap:k", &["m"])).unwrap();
    bob.execute(1, hset("ap:k", &[("f", "v")])).unwrap();
    round(&mut alice, &mut bob, 2);
    for node in [&mut alice, &mut bob] {
        assert_eq!(kind(node, "ap:k"), "hash", "hash before set");
        assert_eq!(
            node.execute(3, sadd("ap:k", &["n"])),
            Err(ApError::WrongType)
        );
    }
    bob.execute(4, set("ap:k", "s")).unwrap();
    alice.execute(4, incr("ap:c", 1)).unwrap();
    bob.execute(4, set("ap:c", "string wins")).unwrap();
    round(&mut bob, &mut alice, 5);
    assert_eq!(alice.execute(6, get("ap:k")), bulk("s"));
    assert_eq!(alice.execute(6, get("ap:c")), bulk("string wins"));
    // DEL removes every type it saw.
    alice.execute(7, del(&["ap:k", "ap:c"])).unwrap();
    round(&mut alice, &mut bob, 8);
    assert_eq!(
        bob.execute(9, ApOperation::DbSize),
        Ok(ApOutput::Integer(0))
    );
    assert_eq!(alice.encoded_state(), bob.encoded_state());
}

/// Applies writes in order to a key-value map, as the driver's storage would.
fn persist(storage: &mut BTreeMap<String, Vec<u8>>, writes: Vec<(String, Option<Vec<u8>>)>) {
    for (key, value) in writes {
        assert!(key.starts_with(Available::RECORD_PREFIX), "{key}");
        match value {
            Some(value) => storage.insert(key, value),
            None => storage.remove(&key),
        };
    }
}

fn recover(replica: u64, storage: &BTreeMap<String, Vec<u8>>) -> Result<Available, AvailableError> {
    Available::recover(
        replica,
        storage
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_slice())),
    )
}

#[test]
fn recovery_from_persisted_records_gives_the_same_state() {
    let mut alice = Available::new(1);
    let mut bob = Available::new(2);
    let mut storage = BTreeMap::new();
    alice.execute(1, set("ap:a", "x")).unwrap();
    alice.execute(2, sadd("ap:s", &["a", "b", "c"])).unwrap();
    alice.execute(3, srem("ap:s", &["b"])).unwrap();
    alice.execute(4, hset("ap:h", &[("f", "1")])).unwrap();
    alice.execute(5, incr("ap:n", 3)).unwrap();
    alice.execute(6, del(&["ap:a"])).unwrap();
    bob.execute(6, set("ap:b", "from bob")).unwrap();
    round(&mut bob, &mut alice, 7); // merged states are persisted too
    persist(&mut storage, alice.take_writes());
    let recovered = recover(1, &storage).expect("recovers");
    assert_eq!(recovered.snapshot_json(), alice.snapshot_json());
    assert_eq!(recovered.encoded_state(), alice.encoded_state());
    assert_eq!(recovered.snapshot_json()["ap:b"]["value"], "from bob");

    // Keep writing after recovery: dots continue, nothing is reused.
    let mut recovered = recovered;
    recovered.execute(8, incr("ap:n", 1)).unwrap();
    persist(&mut storage, recovered.take_writes());
    let again = recover(1, &storage).unwrap();
    assert_eq!(again.snapshot_json()["ap:n"]["value"], 4);
    assert_eq!(again.encoded_state(), recovered.encoded_state());
}

#[test]
fn compaction_snapshots_the_state_and_deletes_the_log() {
    let mut node = Available::new(1);
    let mut storage = BTreeMap::new();
    let member = "m".repeat(100);
    for batch in 0..200 {
        let members: Vec<String> = (0..50)
            .map(|index| format!("{member}{batch}-{index}"))
            .collect();
        let refs: Vec<&str> = members.iter().map(String::as_str).collect();
        node.execute(batch, sadd("ap:big", &refs)).unwrap();
        node.execute(batch, srem("ap:big", &refs[..10])).unwrap();
        persist(&mut storage, node.take_writes());
    }
    let status = node.status();
    assert!(status.snapshots_written >= 1, "{status:?}");
    assert!(storage.contains_key("ap/snapshot"));
    assert!(
        (storage.len() as u64) < 400,
        "log records were deleted: {} left",
        storage.len()
    );
    let recovered = recover(1, &storage).unwrap();
    assert_eq!(recovered.encoded_state(), node.encoded_state());
    assert_eq!(
        node.execute(0, ApOperation::SCard(bytes("ap:big"))),
        Ok(ApOutput::Integer(200 * 40))
    );
}

#[test]
fn corrupt_or_unknown_records_are_errors_not_panics() {
    let mut node = Available::new(1);
    let mut storage = BTreeMap::new();
    node.execute(1, set("ap:a", "x")).unwrap();
    node.execute(2, sadd("ap:s", &["a", "b"])).unwrap();
    persist(&mut storage, node.take_writes());
    for (key, value) in storage.clone() {
        for cut in 0..value.len() {
            let mut damaged = storage.clone();
            damaged.insert(key.clone(), value[..cut].to_vec());
            assert!(recover(1, &damaged).is_err(), "{key} cut at {cut}");
        }
        let mut longer = storage.clone();
        let mut extended = value.clone();
        extended.push(0);
        longer.insert(key.clone(), extended);
        assert!(recover(1, &longer).is_err(), "{key} with a trailing byte");
        for index in 0..value.len() {
            for bit in 0..8 {
                let mut flipped = value.clone();
                flipped[index] ^= 1 << bit;
                let mut damaged = storage.clone();
                damaged.insert(key.clone(), flipped);
                // Some flips still decode (a different value byte); none may panic.
                let _ = recover(1, &damaged);
            }
        }
    }
    let mut versioned = storage.clone();
    let first = versioned.keys().next().unwrap().clone();
    versioned.get_mut(&first).unwrap()[0] = 9;
    let error = recover(1, &versioned).expect_err("unknown version");
    assert!(error.to_string().contains("version 9"), "{error}");

    let mut unknown = storage.clone();
    unknown.insert("ap/mystery".to_string(), vec![1]);
    assert!(matches!(
        recover(1, &unknown),
        Err(AvailableError::UnknownRecord { .. })
    ));
    let mut foreign = storage.clone();
    foreign.insert("raft/log/1".to_string(), vec![0xff]);
    assert_eq!(
        recover(1, &foreign).unwrap().encoded_state(),
        node.encoded_state(),
        "keys outside the prefix are not ours"
    );
}

#[test]
fn a_message_that_does_not_decode_is_refused_and_changes_nothing() {
    let mut alice = Available::new(1);
    let mut bob = Available::new(2);
    alice.execute(1, sadd("ap:s", &["a"])).unwrap();
    bob.execute(1, sadd("ap:s", &["b"])).unwrap();
    let mut rng = SimRng::seed_from_u64(1);
    let (_, digest) = alice.tick(2, &[1, 2], &mut rng).pop().expect("one peer");
    let (_, answer) = bob.receive(3, 1, digest).unwrap().pop().expect("answer");
    // Corrupt the answer by round-tripping it through postcard and flipping bytes.
    let encoded = postcard::to_allocvec(&answer).unwrap();
    let before = alice.encoded_state();
    let _ = alice.take_writes();
    let mut refused = 0;
    for index in 0..encoded.len() {
        let mut damaged = encoded.clone();
        damaged[index] ^= 0x55;
        let Ok(message) = postcard::from_bytes::<ApMessage>(&damaged) else {
            continue;
        };
        let mut copy = alice.clone();
        match copy.receive(4, 2, message) {
            Err(AvailableError::BadMessage { from: 2, .. }) => {
                refused += 1;
                assert_eq!(copy.encoded_state(), before, "refused whole");
                assert!(copy.take_writes().is_empty());
            }
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => {}
        }
    }
    assert!(refused > 0);
    assert_eq!(alice.status().counters.messages_refused, 0);
    alice.receive(4, 2, answer).unwrap();
    assert_eq!(
        alice.execute(5, ApOperation::SMembers(bytes("ap:s"))),
        members(&["a", "b"])
    );
}

#[test]
fn tick_opens_a_round_with_another_node_only() {
    let mut node = Available::new(3);
    let mut rng = SimRng::seed_from_u64(9);
    assert!(node.tick(1, &[3], &mut rng).is_empty());
    assert!(node.tick(1, &[], &mut rng).is_empty());
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..50 {
        let messages = node.tick(1, &[1, 2, 3], &mut rng);
        assert_eq!(messages.len(), 1);
        assert!(matches!(messages[0].1, ApMessage::Digest(_)));
        seen.insert(messages[0].0);
    }
    assert_eq!(seen, [1, 2].into_iter().collect());
    assert_eq!(node.status().counters.rounds_started, 50);
}

/// Why the driver contract exists: a node that sends one of its own dots before the record is
/// durable, then crashes and loses it, mints the same dot again for another value; both contexts
/// then hold that dot, so no anti-entropy round can ever tell the replicas apart.
#[test]
fn contract_a_sent_dot_lost_in_a_crash_and_minted_again_splits_replicas_for_good() {
    let mut alice = Available::new(1);
    let mut bob = Available::new(2);
    alice.execute(1, sadd("ap:s", &["x"])).unwrap();
    let unpersisted = alice.take_writes(); // never reaches the disk
    assert!(!unpersisted.is_empty());
    round(&mut alice, &mut bob, 2); // ...but its dot reached Bob: the contract is broken here
    let mut alice = recover(1, &BTreeMap::new()).unwrap(); // crash: the write is lost
    alice.execute(3, sadd("ap:s", &["y"])).unwrap(); // the same dot, another member
    for now_ns in 4..10 {
        round(&mut alice, &mut bob, now_ns);
        round(&mut bob, &mut alice, now_ns);
    }
    assert_eq!(
        alice.execute(10, ApOperation::SMembers(bytes("ap:s"))),
        members(&["y"])
    );
    assert_eq!(
        bob.execute(10, ApOperation::SMembers(bytes("ap:s"))),
        members(&["x"])
    );
}

//! Goal: anti-entropy sends only what the peer lacks. Method: two replicas of a 100,000-element
//! OR-Set (5,000 earlier removals in their shared history), one change on one side, then one sync
//! round (request + reply, encoded); the bytes on the wire must be under 1% of the full state's
//! encoding, and the round must leave both replicas equal. Numbers are printed for docs/crdt.md.

use crdt::sync::{SyncRequest, reply};
use crdt::{Codec, Crdt, OrSet};

const ELEMENTS: u64 = 100_000;

fn shared_history() -> OrSet<u64> {
    let mut set = OrSet::new();
    for element in 0..ELEMENTS + 5_000 {
        set.add(1, element);
    }
    for element in (0..ELEMENTS + 5_000).step_by(21).take(5_000) {
        set.remove(&element);
    }
    set
}

/// One round: `requester` asks, `responder` answers, `requester` joins. Returns bytes on the wire.
fn round(requester: &mut OrSet<u64>, responder: &OrSet<u64>) -> (usize, usize) {
    let request = SyncRequest::new(requester).to_bytes();
    let decoded = SyncRequest::from_bytes(&request).expect("request decodes");
    let answer = reply(responder, &decoded).to_bytes();
    requester.merge(&OrSet::from_bytes(&answer).expect("reply decodes"));
    (request.len(), answer.len())
}

fn check_one_change(name: &str, change: impl FnOnce(&mut OrSet<u64>)) {
    let mut stale = shared_history();
    let mut changed = stale.clone();
    change(&mut changed);
    let full = changed.to_bytes().len();
    let (request, answer) = round(&mut stale, &changed);
    let ratio = (request + answer) as f64 / full as f64;
    println!(
        "sync after one {name}: request {request} B + reply {answer} B = {} B; full state {full} B ({:.3}%)",
        request + answer,
        ratio * 100.0
    );
    assert_eq!(stale, changed, "one round brings the change");
    assert!(
        ratio < 0.01,
        "{name}: sync sent {:.3}% of the full state",
        ratio * 100.0
    );
}

#[test]
fn one_add_syncs_in_under_one_percent_of_the_state() {
    check_one_change("add", |set| {
        set.add(2, 1_000_000);
    });
}

#[test]
fn one_remove_syncs_in_under_one_percent_of_the_state() {
    check_one_change("remove", |set| {
        assert!(set.contains(&50_002));
        set.remove(&50_002);
    });
}

#[test]
fn one_re_add_syncs_in_under_one_percent_of_the_state() {
    check_one_change("re-add", |set| {
        assert!(set.contains(&77));
        set.add(3, 77);
    });
}

#[test]
fn in_sync_replicas_exchange_almost_nothing() {
    let mut left = shared_history();
    let right = left.clone();
    let (request, answer) = round(&mut left, &right);
    assert_eq!(left, right);
    assert!(answer < 64, "reply to an up-to-date peer is {answer} bytes");
    assert!(request < 2_048, "request is {request} bytes");
}

#[test]
fn a_far_behind_replica_catches_up_in_one_round() {
    let responder = shared_history();
    for seen in [0, 10, 90_000] {
        let mut requester: OrSet<u64> = OrSet::new();
        for element in 0..seen {
            requester.add(1, element);
        }
        let (_, answer) = round(&mut requester, &responder);
        assert_eq!(requester, responder, "after a round from {seen} dots seen");
        assert!(answer <= responder.to_bytes().len() + 16, "{answer} bytes");
    }
}

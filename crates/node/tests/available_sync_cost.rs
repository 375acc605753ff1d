//! Goal: an anti-entropy round costs what changed, not what exists. Method: two nodes share a
//! 10,000-member set (plus 1,000 string keys); one node makes one change; one push-pull round
//! (digest → deltas and digest → deltas) brings the other node level. The bytes on the wire (each
//! message postcard-encoded, as the node sends it) are compared with the full state's encoding,
//! printed (`cargo test -p node --test available_sync_cost -- --nocapture`) and bounded.

use node::available::{ApMessage, ApOperation, Available, SetCondition};
use rand::SeedableRng;
use sim::SimRng;

const MEMBERS: usize = 10_000;
const STRINGS: usize = 1_000;

fn member(index: usize) -> Vec<u8> {
    format!("member-{index:05}").into_bytes()
}

/// Runs one round opened by `opener`; returns (messages, wire bytes).
fn round(opener: &mut Available, peer: &mut Available, now_ns: u64) -> (usize, usize) {
    let mut rng = SimRng::seed_from_u64(now_ns);
    let mut mail: Vec<(u64, u64, ApMessage)> = opener
        .tick(now_ns, &[peer.replica()], &mut rng)
        .into_iter()
        .map(|(to, message)| (opener.replica(), to, message))
        .collect();
    let (mut messages, mut bytes) = (0, 0);
    while let Some((from, to, message)) = mail.pop() {
        messages += 1;
        let wire = postcard::to_allocvec(&message).expect("encodes");
        bytes += wire.len();
        let message: ApMessage = postcard::from_bytes(&wire).expect("decodes");
        let receiver = if to == peer.replica() {
            &mut *peer
        } else {
            &mut *opener
        };
        let replies = receiver.receive(now_ns, from, message).expect("valid");
        mail.extend(replies.into_iter().map(|(next, reply)| (to, next, reply)));
    }
    (messages, bytes)
}

fn full_state_bytes(node: &Available) -> usize {
    node.encoded_state().iter().map(Vec::len).sum()
}

#[test]
fn one_change_in_a_10k_member_set_costs_a_small_fraction_of_the_state() {
    let mut alice = Available::new(1);
    let mut bob = Available::new(2);
    for chunk in (0..MEMBERS).collect::<Vec<_>>().chunks(500) {
        let members = chunk.iter().map(|index| member(*index)).collect();
        alice
            .execute(
                1,
                ApOperation::SAdd {
                    key: b"ap:big".to_vec(),
                    members,
                },
            )
            .unwrap();
    }
    for index in 0..STRINGS {
        alice
            .execute(
                2,
                ApOperation::Set {
                    key: format!("ap:string:{index}").into_bytes(),
                    value: b"some value".to_vec(),
                    condition: SetCondition::Always,
                    get: false,
                },
            )
            .unwrap();
    }
    let (_, first_bytes) = round(&mut alice, &mut bob, 10);
    assert_eq!(
        alice.encoded_state(),
        bob.encoded_state(),
        "one round syncs all"
    );
    let full = full_state_bytes(&alice);
    println!("full state: {full} B; first round (bob empty): {first_bytes} B");
    println!("| change | messages | wire bytes | share of full state | round time |");
    println!("|---|---|---|---|---|");

    let changes: Vec<(&str, ApOperation)> = vec![
        (
            "none (already in sync)",
            ApOperation::SCard(b"ap:big".to_vec()),
        ),
        (
            "add one member",
            ApOperation::SAdd {
                key: b"ap:big".to_vec(),
                members: vec![b"a new member".to_vec()],
            },
        ),
        (
            "remove one member",
            ApOperation::SRem {
                key: b"ap:big".to_vec(),
                members: vec![member(4_321)],
            },
        ),
        (
            "re-add an existing member",
            ApOperation::SAdd {
                key: b"ap:big".to_vec(),
                members: vec![member(17)],
            },
        ),
        (
            "overwrite one string",
            ApOperation::Set {
                key: b"ap:string:500".to_vec(),
                value: b"changed".to_vec(),
                condition: SetCondition::Always,
                get: false,
            },
        ),
    ];
    for (step, (name, change)) in changes.into_iter().enumerate() {
        let now_ns = 100 + step as u64;
        alice.execute(now_ns, change).unwrap();
        let started = std::time::Instant::now();
        let (messages, bytes) = round(&mut bob, &mut alice, now_ns);
        let elapsed = started.elapsed();
        assert_eq!(
            alice.encoded_state(),
            bob.encoded_state(),
            "{name}: one round syncs"
        );
        let share = bytes as f64 / full as f64;
        println!(
            "| {name} | {messages} | {bytes} | {:.2} % | {:.1} ms |",
            share * 100.0,
            elapsed.as_secs_f64() * 1_000.0
        );
        assert!(share < 0.02, "{name}: {bytes} B of {full} B");
    }
    assert_eq!(
        bob.execute(0, ApOperation::SCard(b"ap:big".to_vec())),
        Ok(node::available::ApOutput::Integer(MEMBERS as i64))
    );
}

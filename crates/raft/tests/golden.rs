//! Golden (datadriven) decision tables for the vote, append and quorum rules. Each file under
//! `tests/golden/` holds cases: `# comments`, a command line, `----`, the expected output, a blank
//! line. `UPDATE_GOLDEN=1 cargo test -p raft --test golden` rewrites the expectations (review the
//! diff!).

use std::collections::{BTreeMap, BTreeSet};

use raft::{
    Effect, Entry, EntryPayload, HardState, Input, Kv, Membership, Message, MessageBody,
    RaftConfig, RecoveredState, Replica, quorum,
};

fn arguments(line: &str) -> (String, BTreeMap<String, String>) {
    let mut words = line.split_whitespace();
    let command = words.next().unwrap_or_default().to_string();
    let arguments = words
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (command, arguments)
}

fn number(arguments: &BTreeMap<String, String>, key: &str) -> u64 {
    arguments.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn ids(arguments: &BTreeMap<String, String>, key: &str) -> BTreeSet<u64> {
    arguments
        .get(key)
        .map(|v| v.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_default()
}

/// `log=1,1,2` is three entries with terms 1, 1, 2 (indexes from `first`).
fn log(arguments: &BTreeMap<String, String>, key: &str, first: u64) -> Vec<Entry> {
    let terms: Vec<u64> = arguments
        .get(key)
        .map(|v| v.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_default();
    terms
        .iter()
        .enumerate()
        .map(|(offset, &term)| Entry {
            term,
            index: first + offset as u64,
            payload: EntryPayload::Noop,
        })
        .collect()
}

fn terms(replica: &Replica<Kv>) -> String {
    (1..=replica.last_index())
        .map(|i| replica.term_at(i).map_or("?".into(), |t| t.to_string()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Steps `input`, acknowledges every persist, and returns the messages released.
fn step_all(replica: &mut Replica<Kv>, input: Input) -> Vec<Message> {
    replica.step(1, input);
    let mut sent = Vec::new();
    let mut effects = replica.drain_effects();
    while !effects.is_empty() {
        let mut acks = Vec::new();
        for effect in effects {
            match effect {
                Effect::Persist(request) => acks.push(request.token),
                Effect::Send(message) => sent.push(message),
                _ => {}
            }
        }
        for token in acks {
            replica.step(1, Input::PersistDone(token));
        }
        effects = replica.drain_effects();
    }
    sent
}

fn follower(arguments: &BTreeMap<String, String>) -> Replica<Kv> {
    let hard_state = HardState {
        term: number(arguments, "term"),
        voted_for: arguments.get("voted_for").and_then(|v| v.parse().ok()),
    };
    let recovered = RecoveredState {
        hard_state,
        entries: log(arguments, "log", 1),
        ..RecoveredState::default()
    };
    let config = RaftConfig {
        pre_vote: true,
        check_quorum: true,
        ..RaftConfig::new(1, [1, 2, 3])
    };
    let mut replica = Replica::new(config, recovered, Kv::new(), 0).expect("replica");
    let _ = replica.drain_effects();
    let commit = number(arguments, "commit");
    if arguments.contains_key("leader") || commit > 0 {
        // A same-term heartbeat from the leader establishes it and the commit index.
        let leader = arguments
            .get("leader")
            .and_then(|v| v.parse().ok())
            .unwrap_or(2);
        let prev_term = replica.term_at(commit).unwrap_or(0);
        let body = MessageBody::AppendEntries {
            prev_index: commit,
            prev_term,
            entries: Default::default(),
            leader_commit: commit,
            heartbeat_seq: 0,
        };
        let term = replica.term();
        step_all(
            &mut replica,
            Input::Message(Message {
                from: leader,
                to: 1,
                term,
                body,
            }),
        );
    }
    replica
}

fn run(command: &str, arguments: &BTreeMap<String, String>) -> String {
    match command {
        "vote" => {
            let mut replica = follower(arguments);
            let body = MessageBody::RequestVote {
                last_index: number(arguments, "cand_last_index"),
                last_term: number(arguments, "cand_last_term"),
                pre_vote: arguments.get("pre_vote").is_some_and(|v| v == "true"),
                leadership_transfer: arguments.get("transfer").is_some_and(|v| v == "true"),
            };
            let message = Message {
                from: number(arguments, "cand"),
                to: 1,
                term: number(arguments, "cand_term"),
                body,
            };
            let sent = step_all(&mut replica, Input::Message(message));
            let answer = sent.iter().find_map(|m| match m.body {
                MessageBody::RequestVoteResponse { granted, .. } => {
                    Some(format!("granted={granted} reply_term={}", m.term))
                }
                _ => None,
            });
            format!(
                "{} term={} voted_for={:?}",
                answer.unwrap_or("no answer".into()),
                replica.term(),
                replica.voted_for()
            )
        }
        "append" => {
            let mut replica = follower(arguments);
            let prev_index = number(arguments, "prev");
            let entries = log(arguments, "entries", prev_index + 1);
            let body = MessageBody::AppendEntries {
                prev_index,
                prev_term: number(arguments, "prev_term"),
                entries: entries.into(),
                leader_commit: number(arguments, "leader_commit"),
                heartbeat_seq: 0,
            };
            let term = arguments
                .get("msg_term")
                .and_then(|v| v.parse().ok())
                .unwrap_or(replica.term());
            let sent = step_all(
                &mut replica,
                Input::Message(Message {
                    from: 2,
                    to: 1,
                    term,
                    body,
                }),
            );
            let answer = sent.iter().find_map(|m| match &m.body {
                MessageBody::AppendEntriesResponse {
                    success: true,
                    match_index,
                    ..
                } => Some(format!("success match={match_index} reply_term={}", m.term)),
                MessageBody::AppendEntriesResponse {
                    success: false,
                    rejected_index,
                    hint_index,
                    hint_term,
                    ..
                } => Some(format!(
                    "reject rejected={rejected_index} hint={hint_index} hint_term={hint_term:?} reply_term={}",
                    m.term
                )),
                _ => None,
            });
            format!(
                "{}\nlog={} commit={}",
                answer.unwrap_or("no answer".into()),
                terms(&replica),
                replica.commit_index()
            )
        }
        "quorum" => {
            let membership = Membership {
                voters: ids(arguments, "voters"),
                outgoing_voters: ids(arguments, "outgoing"),
                learners: ids(arguments, "learners"),
            };
            let matched: BTreeMap<u64, u64> = arguments
                .get("match")
                .map(|v| {
                    v.split(',')
                        .filter_map(|pair| pair.split_once(':'))
                        .filter_map(|(id, index)| Some((id.parse().ok()?, index.parse().ok()?)))
                        .collect()
                })
                .unwrap_or_default();
            let lookup = |id: u64| matched.get(&id).copied().unwrap_or(0);
            let granted: BTreeSet<u64> = ids(arguments, "granted");
            let votes = granted
                .iter()
                .map(|&id| (id, true))
                .chain(ids(arguments, "rejected").into_iter().map(|id| (id, false)))
                .collect();
            format!(
                "committed={} election={:?}",
                quorum::committed_index(&membership, &lookup),
                quorum::vote_result(&membership, &votes)
            )
        }
        other => format!("unknown command {other}"),
    }
}

fn check_file(name: &str) {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("golden file");
    let update = std::env::var("UPDATE_GOLDEN").is_ok();
    let mut rewritten = String::new();
    let mut failures = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.starts_with('#') || line.trim().is_empty() {
            rewritten.push_str(line);
            rewritten.push('\n');
            continue;
        }
        let (command, arguments) = arguments(line);
        let mut expected = Vec::new();
        if lines.peek() == Some(&"----") {
            lines.next();
            while let Some(next) = lines.peek() {
                if next.trim().is_empty() {
                    break;
                }
                expected.push(lines.next().unwrap_or_default().to_string());
            }
        }
        let actual = run(&command, &arguments);
        if actual != expected.join("\n") {
            failures.push(format!(
                "{line}\n  expected: {}\n  actual:   {actual}",
                expected.join(" / ")
            ));
        }
        rewritten.push_str(&format!("{line}\n----\n{actual}\n"));
    }
    if update {
        std::fs::write(&path, rewritten).expect("rewrite golden file");
    } else {
        assert!(failures.is_empty(), "{name}:\n{}", failures.join("\n"));
    }
}

#[test]
fn golden_vote_rules() {
    check_file("vote.txt");
}

#[test]
fn golden_append_rules() {
    check_file("append.txt");
}

#[test]
fn golden_quorum_rules() {
    check_file("quorum.txt");
}

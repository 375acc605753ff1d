//! The event store replicated by Raft on the deterministic simulator: "a 3-node cluster keeps
//! it through a node loss". Three `NodeProcess` nodes (the code `concur node` runs); events are
//! appended through the leader, the leader is crashed or cut off, more events are appended through
//! the new leader, and every acknowledged event must be readable from the new leader in order,
//! at the position it was acknowledged with, with gapless positions and revisions.
//!
//! Replay one seed with `CONCUR_SEED=<seed> cargo test -p node --test events_replication`.

use std::collections::BTreeMap;
use std::rc::Rc;

use clock::HlcTimestamp;
use events::{AppendResult, EventData, ExpectedVersion, Uuid};
use node::history::{EventsCommand, EventsOutput, EventsQuery, ReadRange, ReadSlice};
use node::machine::{MachineCommand, MachineOutput, MachineQuery};
use node::process::{NodeProcess, NodeRequest, NodeResponse, NodeSettings};
use raft::{ClientOperation, ReadConsistency};
use sim::adapters::raft::RaftResponse;
use sim::network::Partition;
use sim::{Config, Fault, NodeId, Simulation};

const NODES: usize = 3;
const SECOND_NS: u64 = 1_000_000_000;
const STREAMS: [&str; 3] = ["cart-1", "cart-2", "audit"];

fn seeds() -> Vec<u64> {
    match std::env::var("CONCUR_SEED") {
        Ok(seed) => vec![seed.parse().expect("CONCUR_SEED is a number")],
        Err(_) => (0..16).collect(),
    }
}

/// A 3-node cluster; snapshots every 16 entries so a restarted node catches up by snapshot.
fn cluster(seed: u64) -> Simulation<NodeProcess> {
    let config = Config::new(seed, NODES);
    let mut settings = NodeSettings::new((0..NODES as NodeId).collect());
    settings.raft.snapshot_threshold_entries = 16;
    let settings = Rc::new(settings);
    Simulation::new(config, move |node, storage| {
        NodeProcess::new(node, Rc::clone(&settings), storage)
    })
}

fn leader(simulation: &Simulation<NodeProcess>) -> Option<NodeId> {
    (0..NODES as NodeId)
        .filter_map(|node| {
            let replica = simulation.node(node)?.raft().replica()?;
            (replica.role() == raft::Role::Leader).then_some((replica.term(), node))
        })
        .max()
        .map(|(_, node)| node)
}

/// Runs until some node other than `not` leads (or `limit_ns` passes).
fn await_leader(
    simulation: &mut Simulation<NodeProcess>,
    not: Option<NodeId>,
    limit_ns: u64,
) -> Option<NodeId> {
    let end_ns = simulation.now_ns() + limit_ns;
    while simulation.now_ns() < end_ns {
        simulation.run_until(simulation.now_ns() + 100_000_000);
        if let Some(node) = leader(simulation).filter(|&node| Some(node) != not) {
            return Some(node);
        }
    }
    None
}

/// Submits `request` to `node` and runs until it is answered (or `limit_ns` passes).
fn call(
    simulation: &mut Simulation<NodeProcess>,
    node: NodeId,
    request: NodeRequest,
    limit_ns: u64,
) -> Option<NodeResponse> {
    let id = simulation.submit(node, request);
    let end_ns = simulation.now_ns() + limit_ns;
    while simulation.now_ns() < end_ns {
        if !simulation.step() {
            break;
        }
        let replies = simulation.take_replies();
        if let Some((_, response)) = replies.into_iter().find(|(reply, _)| *reply == id) {
            return Some(response);
        }
    }
    None
}

/// The event store's answer inside a node's response, if the state machine answered.
fn events_output(response: &NodeResponse) -> Option<EventsOutput> {
    match response {
        NodeResponse::Strong(RaftResponse::Reply(Ok(reply))) => {
            match MachineOutput::decode(&reply.output) {
                MachineOutput::Events(output) => Some(output),
                _ => None,
            }
        }
        _ => None,
    }
}

/// An event with a deterministic id, so a retry is recognisable.
fn event(id: u128) -> EventData {
    EventData::json("Recorded", &serde_json::json!({ "n": id }))
        .expect("json")
        .with_id(Uuid::from_u128(id))
}

/// An append command stamped with the simulation's clock (the proposer's choice of time).
fn append(
    simulation: &Simulation<NodeProcess>,
    stream: &str,
    events: Vec<EventData>,
) -> NodeRequest {
    let command = MachineCommand::Events(EventsCommand::Append {
        stream: stream.into(),
        expected: ExpectedVersion::Any,
        events,
        timestamp: HlcTimestamp::new(simulation.now_ns(), 0),
    });
    NodeRequest::Strong(ClientOperation::Write(command.encode()))
}

fn read(query: EventsQuery) -> NodeRequest {
    NodeRequest::Strong(ClientOperation::Read {
        query: MachineQuery::Events(query).encode(),
        consistency: ReadConsistency::Linearizable,
    })
}

/// Size (1–3 events) and stream of the batch whose first event id is `first_id` (ids go up by
/// three per batch), varied by batch and seed.
fn batch_shape(first_id: u128, seed: u64) -> (u64, &'static str) {
    let batch = (first_id / 3) as u64;
    let size = 1 + (batch + seed) % 3;
    let stream = STREAMS[((batch / 2 + seed) % 3) as usize];
    (size, stream)
}

/// What the test knows was acknowledged: event id → (stream, position).
#[derive(Default)]
struct Acknowledged {
    events: BTreeMap<u128, (String, u64)>,
    appends: u64,
}

impl Acknowledged {
    /// Appends a batch of 1–3 events through `node`; records it if acknowledged.
    fn append_batch(
        &mut self,
        simulation: &mut Simulation<NodeProcess>,
        node: NodeId,
        first_id: u128,
        seed: u64,
    ) -> Option<AppendResult> {
        let (size, stream) = batch_shape(first_id, seed);
        let ids: Vec<u128> = (first_id..first_id + size as u128).collect();
        let batch = ids.iter().map(|&id| event(id)).collect();
        let request = append(simulation, stream, batch);
        let answer = call(simulation, node, request, 10 * SECOND_NS)?;
        let Some(EventsOutput::Appended(result)) = events_output(&answer) else {
            return None;
        };
        assert_eq!(
            result.last_position - result.first_position + 1,
            size,
            "seed {seed}: one position per event"
        );
        for (offset, id) in ids.into_iter().enumerate() {
            let position = result.first_position + offset as u64;
            self.events.insert(id, (stream.to_owned(), position));
        }
        self.appends += 1;
        Some(result)
    }
}

/// Reads all of `$all` through `node` (linearizable), page by page.
fn read_all(simulation: &mut Simulation<NodeProcess>, node: NodeId, seed: u64) -> ReadSlice {
    let mut events = Vec::new();
    let mut from = 0;
    let mut head_position = 0;
    for _page in 0..1_000 {
        let range = ReadRange::forwards().from(from).max_count(7);
        let answer = call(
            simulation,
            node,
            read(EventsQuery::ReadAll(range)),
            10 * SECOND_NS,
        );
        let output = answer.as_ref().and_then(events_output);
        let Some(EventsOutput::Events(slice)) = output else {
            panic!("seed {seed}: read of $all through n{node} failed: {answer:?}");
        };
        head_position = slice.head_position;
        events.extend(slice.events);
        match slice.next {
            Some(next) => from = next,
            None => break,
        }
    }
    ReadSlice {
        events,
        next: None,
        head_position,
    }
}

/// Every acknowledged event is in `$all` at its acknowledged position, positions are gapless
/// from 0, and each stream's revisions are gapless and in position order.
fn check_log(all: &ReadSlice, acknowledged: &Acknowledged, seed: u64) {
    let positions: Vec<u64> = all.events.iter().map(|event| event.position).collect();
    let gapless: Vec<u64> = (0..all.events.len() as u64).collect();
    assert_eq!(positions, gapless, "seed {seed}: positions are gapless");
    assert_eq!(all.head_position, all.events.len() as u64);
    for (&id, (stream, position)) in &acknowledged.events {
        let found = all.events.get(*position as usize);
        assert!(
            found.is_some_and(
                |event| event.event.event_id == Uuid::from_u128(id) && &event.stream == stream
            ),
            "seed {seed}: acknowledged event {id} not at position {position}: {found:?}"
        );
    }
    let mut revisions: BTreeMap<&str, u64> = BTreeMap::new();
    for event in &all.events {
        let next = revisions.entry(event.stream.as_str()).or_default();
        assert_eq!(event.revision, *next, "seed {seed}: revisions gapless");
        *next += 1;
    }
}

#[test]
fn a_three_node_cluster_keeps_every_acknowledged_event_through_a_leader_crash() {
    // Goal: no acknowledged event is lost or moved when the leader dies. Method: 12 appends
    // through the leader, crash it, 12 more (plus a retry of an old batch) through the new leader,
    // read $all from the new leader; restart the old one and check it converges to the same log.
    for seed in seeds() {
        let mut simulation = cluster(seed);
        let first = await_leader(&mut simulation, None, 10 * SECOND_NS)
            .unwrap_or_else(|| panic!("seed {seed}: no leader"));
        let mut acknowledged = Acknowledged::default();
        let mut next_id = 1u128;
        for _ in 0..12 {
            let result = acknowledged.append_batch(&mut simulation, first, next_id, seed);
            assert!(result.is_some(), "seed {seed}: append on a healthy cluster");
            next_id += 3;
        }
        simulation.apply_fault(&Fault::Crash { node: first });
        let second = await_leader(&mut simulation, Some(first), 10 * SECOND_NS)
            .unwrap_or_else(|| panic!("seed {seed}: no new leader after the crash"));
        for _ in 0..12 {
            let result = acknowledged.append_batch(&mut simulation, second, next_id, seed);
            assert!(
                result.is_some(),
                "seed {seed}: append after the leader loss"
            );
            next_id += 3;
        }
        // A client retrying its first batch (same ids) writes nothing twice.
        let (retry_size, stream) = batch_shape(1, seed);
        let retry = (1..=retry_size as u128).map(event).collect();
        let request = append(&simulation, stream, retry);
        let answer = call(&mut simulation, second, request, 10 * SECOND_NS);
        assert!(
            matches!(
                answer.as_ref().and_then(events_output),
                Some(EventsOutput::Appended(AppendResult {
                    duplicate: true,
                    first_position: 0,
                    ..
                }))
            ),
            "seed {seed}: retry is recognised: {answer:?}"
        );

        let all = read_all(&mut simulation, second, seed);
        check_log(&all, &acknowledged, seed);
        assert_eq!(
            all.events.len(),
            acknowledged.events.len(),
            "seed {seed}: nothing but the acknowledged events was written"
        );

        // The crashed node comes back and catches up (by snapshot: 16 entries per snapshot).
        simulation.apply_fault(&Fault::Restart { node: first });
        simulation.run_until(simulation.now_ns() + 5 * SECOND_NS);
        let state = |node: NodeId| {
            simulation
                .node(node)
                .and_then(|process| process.raft().replica())
                .map(|replica| replica.state_machine().events().clone())
        };
        let reference = state(second).expect("the leader runs");
        assert_eq!(
            reference.log().next_position(),
            acknowledged.events.len() as u64
        );
        for node in 0..NODES as NodeId {
            assert!(
                state(node).as_ref() == Some(&reference),
                "seed {seed}: n{node}'s event log differs from the leader's"
            );
        }
    }
}

#[test]
fn a_cut_off_leader_refuses_appends_and_the_majority_keeps_the_log() {
    // Goal: a leader alone in a minority acknowledges nothing, and after healing its log equals
    // the majority's. Method: partition the leader away, append through it (must not succeed)
    // and through the new leader (must), heal, read $all through the old leader.
    for seed in seeds() {
        let mut simulation = cluster(seed);
        let first = await_leader(&mut simulation, None, 10 * SECOND_NS)
            .unwrap_or_else(|| panic!("seed {seed}: no leader"));
        let mut acknowledged = Acknowledged::default();
        let mut next_id = 1u128;
        for _ in 0..6 {
            assert!(
                acknowledged
                    .append_batch(&mut simulation, first, next_id, seed)
                    .is_some()
            );
            next_id += 3;
        }
        let partition = Partition::symmetric(NODES, &[first]);
        simulation.apply_fault(&Fault::Partition(partition));
        let minority = acknowledged.append_batch(&mut simulation, first, 10_000, seed);
        assert!(
            minority.is_none(),
            "seed {seed}: the cut-off leader acknowledged an append: {minority:?}"
        );
        let second = await_leader(&mut simulation, Some(first), 10 * SECOND_NS)
            .unwrap_or_else(|| panic!("seed {seed}: the majority elects no leader"));
        for _ in 0..6 {
            assert!(
                acknowledged
                    .append_batch(&mut simulation, second, next_id, seed)
                    .is_some(),
                "seed {seed}: the majority appends"
            );
            next_id += 3;
        }
        simulation.apply_fault(&Fault::Heal);
        simulation.run_until(simulation.now_ns() + 3 * SECOND_NS);
        // Linearizable reads through the old leader route to the new one and see everything.
        let all = read_all(&mut simulation, first, seed);
        check_log(&all, &acknowledged, seed);
        let stranded = all
            .events
            .iter()
            .filter(|event| event.event.event_id.as_u128() >= 10_000)
            .count();
        assert!(
            stranded == 0 || stranded as u64 == batch_shape(10_000, seed).0,
            "seed {seed}: the minority's unacknowledged batch is all or nothing"
        );
    }
}

#[test]
fn a_lossy_duplicating_network_writes_each_event_once() {
    // Goal: message loss, duplication and reordering (the gateway retrying, the network
    // delivering twice) never write an event twice or lose an acknowledged one. Method: 30
    // appends through changing nodes under 5% loss, 10% duplication, 20% reordering, with a
    // crash and restart of the leader midway; then heal and read $all through every node.
    for seed in seeds() {
        let mut simulation = cluster(seed);
        let first = await_leader(&mut simulation, None, 10 * SECOND_NS)
            .unwrap_or_else(|| panic!("seed {seed}: no leader"));
        simulation.apply_fault(&Fault::Loss { probability: 0.05 });
        simulation.apply_fault(&Fault::Duplicate { probability: 0.1 });
        simulation.apply_fault(&Fault::Reorder { probability: 0.2 });
        let mut acknowledged = Acknowledged::default();
        let mut next_id = 1u128;
        for round in 0..30u64 {
            if round == 10 {
                simulation.apply_fault(&Fault::Crash { node: first });
            }
            if round == 20 {
                simulation.apply_fault(&Fault::Restart { node: first });
            }
            let Some(target) = leader(&simulation) else {
                simulation.run_until(simulation.now_ns() + SECOND_NS);
                continue;
            };
            acknowledged.append_batch(&mut simulation, target, next_id, seed);
            next_id += 3;
        }
        simulation.apply_fault(&Fault::Heal);
        simulation.run_until(simulation.now_ns() + 3 * SECOND_NS);
        assert!(
            acknowledged.appends >= 15,
            "seed {seed}: only {} of 30 appends acknowledged",
            acknowledged.appends
        );
        for node in 0..NODES as NodeId {
            let all = read_all(&mut simulation, node, seed);
            check_log(&all, &acknowledged, seed);
            let mut ids: Vec<u128> = all
                .events
                .iter()
                .map(|event| event.event.event_id.as_u128())
                .collect();
            let written = ids.len();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(
                ids.len(),
                written,
                "seed {seed}: an event was written twice"
            );
        }
    }
}

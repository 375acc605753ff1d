//! The node's process on the deterministic simulator: the same code `concur node` runs, with
//! partitions, crashes and restarts applied from a seed.
//!
//! Replay a failing seed with `CONCUR_SEED=<seed> cargo test -p node --test sim_cluster`.

use std::rc::Rc;

use node::available::{ApOperation, ApOutput};
use node::machine::{MachineCommand, MachineOutput, MachineQuery};
use node::process::{NodeProcess, NodeRequest, NodeResponse, NodeSettings};
use node::strong::{SetCondition, StrongCommand, StrongOutput, StrongQuery};
use raft::{ClientOperation, ReadConsistency};
use sim::adapters::raft::RaftResponse;
use sim::network::Partition;
use sim::{Config, Fault, NodeId, Simulation};

const NODES: usize = 3;
const SECOND_NS: u64 = 1_000_000_000;

fn seeds() -> Vec<u64> {
    match std::env::var("CONCUR_SEED") {
        Ok(seed) => vec![seed.parse().expect("CONCUR_SEED is a number")],
        Err(_) => (0..8).collect(),
    }
}

fn cluster(seed: u64) -> Simulation<NodeProcess> {
    let config = Config::new(seed, NODES);
    let settings = Rc::new(NodeSettings::new((0..NODES as NodeId).collect()));
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

fn run_for(simulation: &mut Simulation<NodeProcess>, duration_ns: u64) {
    let end_ns = simulation.now_ns() + duration_ns;
    simulation.run_until(end_ns);
}

fn set(key: &str, value: &str) -> NodeRequest {
    let command = MachineCommand::Strong(StrongCommand::Set {
        key: key.into(),
        value: value.into(),
        condition: SetCondition::Always,
        get: false,
    });
    NodeRequest::Strong(ClientOperation::Write(command.encode()))
}

fn get(key: &str) -> NodeRequest {
    NodeRequest::Strong(ClientOperation::Read {
        query: MachineQuery::Strong(StrongQuery::Get(key.into())).encode(),
        consistency: ReadConsistency::Linearizable,
    })
}

fn strong_output(response: &NodeResponse) -> Option<StrongOutput> {
    match response {
        NodeResponse::Strong(RaftResponse::Reply(Ok(reply))) => {
            match MachineOutput::decode(&reply.output) {
                MachineOutput::Strong(output) => Some(output),
                #[allow(unreachable_patterns)]
                _ => None,
            }
        }
        _ => None,
    }
}

fn sadd(key: &str, member: &str) -> NodeRequest {
    NodeRequest::Available(ApOperation::SAdd {
        key: key.into(),
        members: vec![member.into()],
    })
}

#[test]
fn strong_keys_refuse_in_the_minority_while_available_keys_accept_and_converge() {
    for seed in seeds() {
        let mut simulation = cluster(seed);
        simulation.run_until(3 * SECOND_NS);
        let first = leader(&simulation).unwrap_or_else(|| panic!("seed {seed}: no leader"));
        let follower = (first + 1) % NODES as NodeId;

        // Any node serves strong writes: a follower routes to the leader.
        let answer = call(&mut simulation, follower, set("k", "1"), 5 * SECOND_NS);
        assert_eq!(
            answer.as_ref().and_then(strong_output),
            Some(StrongOutput::Ok),
            "seed {seed}: {answer:?}"
        );

        // Cut the leader off alone: it is the minority.
        let partition = Partition::symmetric(NODES, &[first]);
        simulation.apply_fault(&Fault::Partition(partition));
        run_for(&mut simulation, 3 * SECOND_NS);
        let refused = call(&mut simulation, first, set("k", "2"), 10 * SECOND_NS);
        assert!(
            matches!(
                refused,
                Some(NodeResponse::Refused { .. })
                    | Some(NodeResponse::Strong(RaftResponse::Reply(Err(_))))
                    | Some(NodeResponse::Strong(RaftResponse::GaveUp { .. }))
            ),
            "seed {seed}: the old leader must refuse strong writes in the minority, got {refused:?}"
        );
        // …while it still takes available writes, and so does the majority.
        let minority_add = call(&mut simulation, first, sadd("ap:s", "minority"), SECOND_NS);
        assert!(
            matches!(
                minority_add,
                Some(NodeResponse::Available(Ok(ApOutput::Integer(1))))
            ),
            "seed {seed}: {minority_add:?}"
        );
        let majority_add = call(
            &mut simulation,
            follower,
            sadd("ap:s", "majority"),
            SECOND_NS,
        );
        assert!(
            matches!(
                majority_add,
                Some(NodeResponse::Available(Ok(ApOutput::Integer(1))))
            ),
            "seed {seed}: {majority_add:?}"
        );
        // The majority elects a new leader and keeps serving strong writes.
        let written = call(&mut simulation, follower, set("k", "3"), 10 * SECOND_NS);
        assert_eq!(
            written.as_ref().and_then(strong_output),
            Some(StrongOutput::Ok),
            "seed {seed}: majority write {written:?}"
        );

        simulation.apply_fault(&Fault::Heal);
        run_for(&mut simulation, 5 * SECOND_NS);
        let states: Vec<(u64, serde_json::Value)> = (0..NODES as NodeId)
            .map(|node| {
                let process = simulation.node(node).expect("node runs");
                (node, process.available().snapshot_json())
            })
            .collect();
        assert!(
            matches!(
                check::convergence::check(&states),
                check::convergence::ConvergenceVerdict::Converged
            ),
            "seed {seed}: available keyspace diverged after heal: {states:?}"
        );
        let members = states[0].1.to_string();
        assert!(
            members.contains("minority") && members.contains("majority"),
            "seed {seed}: both sides' writes survive: {members}"
        );
        // The old leader caught up: a linearizable read through it sees the majority's write.
        let read = call(&mut simulation, first, get("k"), 10 * SECOND_NS);
        assert_eq!(
            read.as_ref().and_then(strong_output),
            Some(StrongOutput::Bulk(b"3".to_vec())),
            "seed {seed}: {read:?}"
        );
    }
}

#[test]
fn acknowledged_writes_of_both_keyspaces_survive_a_crash_and_restart() {
    for seed in seeds() {
        let mut simulation = cluster(seed);
        simulation.run_until(3 * SECOND_NS);
        let node: NodeId = 1;
        for index in 0..20 {
            let key = format!("key-{index}");
            let answer = call(&mut simulation, node, set(&key, "v"), 10 * SECOND_NS);
            assert_eq!(
                answer.as_ref().and_then(strong_output),
                Some(StrongOutput::Ok),
                "seed {seed}"
            );
            let added = call(&mut simulation, node, sadd("ap:set", &key), SECOND_NS);
            assert!(
                matches!(added, Some(NodeResponse::Available(Ok(_)))),
                "seed {seed}: {added:?}"
            );
        }
        // Crash every node at once: only durable state survives.
        for crashed in 0..NODES as NodeId {
            simulation.apply_fault(&Fault::Crash { node: crashed });
        }
        for restarted in 0..NODES as NodeId {
            simulation.apply_fault(&Fault::Restart { node: restarted });
        }
        run_for(&mut simulation, 5 * SECOND_NS);
        let members = simulation
            .node(node)
            .expect("restarted")
            .available()
            .snapshot_json()
            .to_string();
        for index in 0..20 {
            assert!(
                members.contains(&format!("key-{index}")),
                "seed {seed}: lost ap member {index}: {members}"
            );
            let read = call(
                &mut simulation,
                0,
                get(&format!("key-{index}")),
                10 * SECOND_NS,
            );
            assert_eq!(
                read.as_ref().and_then(strong_output),
                Some(StrongOutput::Bulk(b"v".to_vec())),
                "seed {seed}: lost strong key {index}"
            );
        }
    }
}

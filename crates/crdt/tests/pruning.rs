//! Goal: a retired replica's entries can be pruned from causal contexts without breaking
//! convergence, so causal metadata stays bounded by the live replicas. Method: replica 3 works,
//! retires; the successor (replica 1) re-issues its live dots with `retire`; once every live
//! replica has seen replica 3's whole history and the re-issue, replicas prune replica 3 (one
//! explicitly, others by merging). We check values are unchanged by the protocol, contexts lose
//! replica 3, stale messages from replica 3 cannot resurrect anything, and random work afterwards
//! still converges.

use crdt::{CausalCounter, Codec, CounterStore, Crdt, OrMap, OrSet, PruneError};
use proptest::prelude::*;

const RETIRED: u64 = 3;
const SUCCESSOR: u64 = 1;

fn sync_all<T: Crdt>(replicas: &mut [T]) {
    let mut all = replicas[0].clone();
    for replica in replicas.iter() {
        all.merge(replica);
    }
    for replica in replicas.iter_mut() {
        replica.merge(&all);
    }
}

#[test]
fn pruning_a_retired_replica_keeps_values_and_drops_its_metadata() {
    let mut replicas: Vec<OrSet<u64>> = vec![OrSet::new(); 3];
    let mut stale_deltas = Vec::new();
    for element in 0..20 {
        stale_deltas.push(replicas[2].add(RETIRED, element));
        replicas[0].add(SUCCESSOR, element + 100);
    }
    let removal = replicas[2].remove(&5);
    stale_deltas.push(removal);
    sync_all(&mut replicas);
    let before = replicas[0].value();

    // The live replica 3 refuses to be pruned while its dots are live anywhere.
    assert!(matches!(
        replicas[0].clone().prune(RETIRED),
        Err(PruneError::LiveDots {
            replica: RETIRED,
            live_dots: 19
        })
    ));

    // Step 1: the successor re-issues replica 3's live dots as its own.
    let handover = replicas[0].retire(RETIRED, SUCCESSOR);
    replicas.truncate(2); // replica 3 is gone
    replicas[1].apply(&handover);
    assert_eq!(replicas[0], replicas[1]);
    assert_eq!(replicas[0].value(), before, "re-issuing changes no value");

    // Step 2: everyone has seen everything of replica 3 and the handover: replica 1 prunes,
    // replica 2 learns the pruning by merging.
    replicas[0]
        .prune(RETIRED)
        .expect("no live dots of the retired replica remain");
    assert_eq!(replicas[0].context().version_vector().get(RETIRED), 0);
    let pruned = replicas[0].clone();
    replicas[1].merge(&pruned);
    assert_eq!(replicas[1].context().version_vector().get(RETIRED), 0);
    assert!(replicas[1].retired().contains(&RETIRED));
    assert_eq!(replicas[0], replicas[1]);

    // Stale messages from replica 3 arrive late: nothing comes back, no metadata returns.
    for delta in &stale_deltas {
        replicas[1].apply(delta);
    }
    assert_eq!(replicas[1].value(), before);
    assert_eq!(replicas[1].context().version_vector().get(RETIRED), 0);
    assert_eq!(replicas[0], replicas[1]);

    // Work continues and converges; the encoding forgets replica 3 too.
    replicas[0].remove(&7);
    replicas[1].add(2, 7);
    replicas[1].remove(&100);
    sync_all(&mut replicas);
    assert_eq!(replicas[0], replicas[1]);
    assert!(replicas[0].contains(&7) && !replicas[0].contains(&100));
    let decoded = OrSet::<u64>::from_bytes(&replicas[0].to_bytes()).unwrap();
    assert_eq!(decoded, replicas[0]);
}

#[test]
fn pruning_spreads_through_a_replica_that_has_not_pruned() {
    let mut replicas: Vec<OrMap<u64, CounterStore>> = vec![OrMap::new(); 3];
    replicas[2].update(1, |counter: &mut CausalCounter| counter.add(RETIRED, 5));
    replicas[0].update(1, |counter: &mut CausalCounter| counter.add(SUCCESSOR, 2));
    sync_all(&mut replicas);
    let handover = replicas[0].retire(RETIRED, SUCCESSOR);
    replicas.truncate(2);
    replicas[1].apply(&handover);
    assert_eq!(replicas[1].value_at(&1), Some(7));
    replicas[0].prune(RETIRED).unwrap();
    // The unpruned replica's full state, merged into the pruned one, brings no replica-3 entry.
    let unpruned = replicas[1].clone();
    replicas[0].merge(&unpruned);
    assert_eq!(replicas[0].context().version_vector().get(RETIRED), 0);
    // And the other way round, the merge prunes.
    let pruned = replicas[0].clone();
    replicas[1].merge(&pruned);
    assert_eq!(replicas[0], replicas[1]);
    assert_eq!(replicas[0].value_at(&1), Some(7));
    // The successor's running total now includes replica 3's, and keeps counting.
    replicas[1].update(1, |counter: &mut CausalCounter| counter.add(SUCCESSOR, 1));
    sync_all(&mut replicas);
    assert_eq!(replicas[0].value_at(&1), Some(8));
}

proptest! {
    /// Random work by three replicas, retirement of replica 3 at a random point, random work by the
    /// other two: the pruned replicas converge to the same value as unpruned twins that never ran
    /// the protocol.
    #[test]
    fn pruned_replicas_converge_like_unpruned_ones(
        before in proptest::collection::vec((1u64..4, any::<bool>(), 0u64..12), 0..40),
        after in proptest::collection::vec((1u64..3, any::<bool>(), 0u64..12), 0..40),
    ) {
        let mut replicas: Vec<OrSet<u64>> = vec![OrSet::new(); 3];
        for &(replica, add, element) in &before {
            let state = &mut replicas[replica as usize - 1];
            if add { state.add(replica, element); } else { state.remove(&element); }
        }
        sync_all(&mut replicas);
        let mut twins = replicas[..2].to_vec();
        let handover = replicas[0].retire(RETIRED, SUCCESSOR);
        replicas.truncate(2);
        replicas[1].apply(&handover);
        replicas[0].prune(RETIRED).unwrap();
        prop_assert_eq!(replicas[0].value(), twins[0].value());
        for &(replica, add, element) in &after {
            for set in [&mut replicas[replica as usize - 1], &mut twins[replica as usize - 1]] {
                if add { set.add(replica, element); } else { set.remove(&element); }
            }
        }
        sync_all(&mut replicas);
        sync_all(&mut twins);
        prop_assert_eq!(&replicas[0], &replicas[1]);
        prop_assert_eq!(replicas[0].value(), twins[0].value());
        prop_assert_eq!(replicas[0].context().version_vector().get(RETIRED), 0);
    }
}

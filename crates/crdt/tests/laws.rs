//! Goal: every CRDT type obeys the join-semilattice laws and the delta law, and its codec round
//! trips. Method: three replicas run a random schedule of mutations, full merges and deliveries
//! of earlier deltas (out of order, duplicated); at each step and at the end we check
//! - merge is commutative, associative and idempotent on the replicas' states;
//! - a mutation's delta joined into the state before the mutation gives the state after it;
//! - applying a delta (the cheap keyed path) equals merging it as a full state, on any replica;
//! - encode then decode is the identity, for states and deltas.

use std::fmt::Debug;

use clock::HlcTimestamp;
use crdt::{
    CausalCounter, Codec, CounterStore, Crdt, Delta, DisableWinsFlag, EnableWinsFlag, GCounter,
    GSet, LwwMap, LwwRegister, MvRegister, OrMap, OrSet, PnCounter, SetStore, TwoPhaseSet,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

const REPLICAS: usize = 3;

#[derive(Clone, Debug)]
enum Step {
    Mutate {
        replica: u8,
        kind: u8,
        element: u8,
        amount: i8,
    },
    Merge {
        from: u8,
        to: u8,
    },
    Deliver {
        delta: u8,
        to: u8,
    },
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        4 => (0..REPLICAS as u8, 0u8..4, 0u8..6, -3i8..4).prop_map(|(replica, kind, element, amount)| {
            Step::Mutate { replica, kind, element, amount }
        }),
        1 => (0..REPLICAS as u8, 0..REPLICAS as u8).prop_map(|(from, to)| Step::Merge { from, to }),
        2 => (any::<u8>(), 0..REPLICAS as u8).prop_map(|(delta, to)| Step::Deliver { delta, to }),
    ];
    proptest::collection::vec(step, 1..40)
}

fn joined<T: Crdt>(left: &T, right: &T) -> T {
    let mut out = left.clone();
    out.merge(right);
    out
}

fn round_trip<T: Codec + PartialEq + Debug>(state: &T) -> Result<(), TestCaseError> {
    let bytes = state.to_bytes();
    prop_assert_eq!(
        &T::from_bytes(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?,
        state
    );
    Ok(())
}

/// Runs the schedule with `mutate` interpreting mutation steps, checking every law on the way.
fn check_laws<T>(
    schedule: &[Step],
    mutate: impl Fn(&mut T, u64, u8, u8, i8, HlcTimestamp) -> Delta<T>,
) -> Result<(), TestCaseError>
where
    T: Crdt + Codec + Default + PartialEq + Debug,
{
    let mut replicas: Vec<T> = (0..REPLICAS).map(|_| T::default()).collect();
    let mut deltas: Vec<Delta<T>> = Vec::new();
    for (index, step) in schedule.iter().enumerate() {
        match *step {
            Step::Mutate {
                replica,
                kind,
                element,
                amount,
            } => {
                let at = replica as usize;
                let before = replicas[at].clone();
                let timestamp = HlcTimestamp::new(index as u64 + 1, 0);
                let delta = mutate(
                    &mut replicas[at],
                    replica as u64 + 1,
                    kind,
                    element,
                    amount,
                    timestamp,
                );
                // Delta law: the state after a mutation is the state before joined with the delta.
                prop_assert_eq!(&joined(&before, delta.as_state()), &replicas[at]);
                let bytes = delta.to_bytes();
                prop_assert_eq!(&Delta::<T>::from_bytes(&bytes).unwrap(), &delta);
                deltas.push(delta);
            }
            Step::Merge { from, to } => {
                let source = replicas[from as usize].clone();
                replicas[to as usize].merge(&source);
            }
            Step::Deliver { delta, to } => {
                if deltas.is_empty() {
                    continue;
                }
                let delta = &deltas[delta as usize % deltas.len()];
                let mut applied = replicas[to as usize].clone();
                applied.apply(delta);
                let merged = joined(&replicas[to as usize], delta.as_state());
                prop_assert_eq!(&applied, &merged);
                replicas[to as usize] = applied;
            }
        }
    }
    let (a, b, c) = (&replicas[0], &replicas[1], &replicas[2]);
    prop_assert_eq!(joined(a, b), joined(b, a), "commutative");
    prop_assert_eq!(
        joined(&joined(a, b), c),
        joined(a, &joined(b, c)),
        "associative"
    );
    prop_assert_eq!(&joined(a, a), a, "idempotent");
    // Everything delivered everywhere: all replicas equal.
    let all = joined(&joined(a, b), c);
    for replica in &replicas {
        let mut caught_up = replica.clone();
        for delta in &deltas {
            caught_up.apply(delta);
        }
        caught_up.merge(&all);
        prop_assert_eq!(&caught_up, &all);
        round_trip(replica)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn gcounter_laws(schedule in steps()) {
        check_laws::<GCounter>(&schedule, |state, replica, _, _, amount, _| {
            state.increment(replica, amount.unsigned_abs() as u64)
        })?;
    }

    #[test]
    fn pn_counter_laws(schedule in steps()) {
        check_laws::<PnCounter>(&schedule, |state, replica, _, _, amount, _| state.add(replica, amount.into()))?;
    }

    #[test]
    fn gset_laws(schedule in steps()) {
        check_laws::<GSet<u64>>(&schedule, |state, _, _, element, _, _| state.add(element.into()))?;
    }

    #[test]
    fn two_phase_set_laws(schedule in steps()) {
        check_laws::<TwoPhaseSet<u64>>(&schedule, |state, _, kind, element, _, _| {
            if kind == 0 { state.remove(element.into()) } else { state.add(element.into()) }
        })?;
    }

    #[test]
    fn or_set_laws(schedule in steps()) {
        check_laws::<OrSet<u64>>(&schedule, |state, replica, kind, element, _, _| match kind {
            0 => state.remove(&element.into()),
            1 if element == 0 => state.clear(),
            _ => state.add(replica, element.into()),
        })?;
    }

    #[test]
    fn lww_register_laws(schedule in steps()) {
        check_laws::<LwwRegister<u64>>(&schedule, |state, replica, _, element, _, timestamp| {
            state.set(element.into(), timestamp, replica)
        })?;
    }

    #[test]
    fn mv_register_laws(schedule in steps()) {
        check_laws::<MvRegister<u64>>(&schedule, |state, replica, kind, element, _, _| {
            if kind == 0 { state.clear() } else { state.write(replica, element.into()) }
        })?;
    }

    #[test]
    fn enable_wins_flag_laws(schedule in steps()) {
        check_laws::<EnableWinsFlag>(&schedule, |state, replica, kind, _, _, _| {
            if kind % 2 == 0 { state.enable(replica) } else { state.disable(replica) }
        })?;
    }

    #[test]
    fn disable_wins_flag_laws(schedule in steps()) {
        check_laws::<DisableWinsFlag>(&schedule, |state, replica, kind, _, _, _| {
            if kind % 2 == 0 { state.enable(replica) } else { state.disable(replica) }
        })?;
    }

    #[test]
    fn causal_counter_laws(schedule in steps()) {
        check_laws::<CausalCounter>(&schedule, |state, replica, kind, _, amount, _| {
            if kind == 0 { state.reset() } else { state.add(replica, amount.into()) }
        })?;
    }

    #[test]
    fn or_map_of_counters_laws(schedule in steps()) {
        check_laws::<OrMap<u64, CounterStore>>(&schedule, |state, replica, kind, element, amount, _| {
            match kind {
                0 => state.remove(&element.into()),
                1 => state.update(element.into(), |counter: &mut CausalCounter| counter.reset()),
                _ => state.update(element.into(), |counter: &mut CausalCounter| counter.add(replica, amount.into())),
            }
        })?;
    }

    #[test]
    fn or_map_of_sets_laws(schedule in steps()) {
        check_laws::<OrMap<u64, SetStore<u64>>>(&schedule, |state, replica, kind, element, amount, _| {
            let key = u64::from(element % 3);
            let member = amount.unsigned_abs() as u64;
            match kind {
                0 => state.remove(&key),
                1 => state.update(key, |set: &mut OrSet<u64>| set.remove(&member)),
                _ => state.update(key, |set: &mut OrSet<u64>| set.add(replica, member)),
            }
        })?;
    }

    #[test]
    fn lww_map_laws(schedule in steps()) {
        check_laws::<LwwMap<u64, u64>>(&schedule, |state, replica, kind, element, amount, timestamp| {
            if kind == 0 {
                state.remove(element.into(), timestamp, replica)
            } else {
                state.insert(element.into(), amount.unsigned_abs().into(), timestamp, replica)
            }
        })?;
    }
}

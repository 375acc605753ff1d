//! Property tests: partial-order laws of vector clocks and version vectors, merge as a join
//! (commutative, associative, idempotent, an upper bound), causal-context set semantics, and hybrid
//! logical clocks monotonic and within the offset bound of physical time.

use std::collections::BTreeSet;

use clock::{
    CausalContext, Causality, Dot, HlcTimestamp, HybridClock, ReplicaId, VectorClock, VersionVector,
};
use proptest::prelude::*;

fn vector_clock() -> impl Strategy<Value = VectorClock> {
    prop::collection::vec((0u64..6, 0u64..5), 0..8)
        .prop_map(|entries| entries.into_iter().collect())
}

fn version_vector() -> impl Strategy<Value = VersionVector> {
    prop::collection::vec((0u64..6, 0u64..5), 0..8)
        .prop_map(|entries| entries.into_iter().collect())
}

fn dots() -> impl Strategy<Value = Vec<Dot>> {
    prop::collection::vec((0u64..4, 1u64..12), 0..30)
        .prop_map(|pairs| pairs.into_iter().map(|(r, c)| Dot::new(r, c)).collect())
}

fn merged(a: &VectorClock, b: &VectorClock) -> VectorClock {
    let mut joined = a.clone();
    joined.merge(b);
    joined
}

proptest! {
    #[test]
    fn compare_is_antisymmetric(a in vector_clock(), b in vector_clock()) {
        prop_assert_eq!(a.compare(&b), b.compare(&a).reverse());
    }

    #[test]
    fn compare_is_reflexive(a in vector_clock()) {
        prop_assert_eq!(a.compare(&a), Causality::Equal);
    }

    #[test]
    fn happened_before_is_transitive(a in vector_clock(), b in vector_clock(), c in vector_clock()) {
        if a.le(&b) && b.le(&c) {
            prop_assert!(a.le(&c));
        }
    }

    #[test]
    fn compare_agrees_with_pointwise_order(a in vector_clock(), b in vector_clock()) {
        let replicas: BTreeSet<ReplicaId> = a.iter().chain(b.iter()).map(|(r, _)| r).collect();
        let le = replicas.iter().all(|&r| a.get(r) <= b.get(r));
        let ge = replicas.iter().all(|&r| a.get(r) >= b.get(r));
        let expected = match (le, ge) {
            (true, true) => Causality::Equal,
            (true, false) => Causality::Before,
            (false, true) => Causality::After,
            (false, false) => Causality::Concurrent,
        };
        prop_assert_eq!(a.compare(&b), expected);
    }

    #[test]
    fn merge_is_a_join(a in vector_clock(), b in vector_clock(), c in vector_clock()) {
        prop_assert_eq!(merged(&a, &b), merged(&b, &a));
        prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
        prop_assert_eq!(merged(&a, &a), a.clone());
        let join = merged(&a, &b);
        prop_assert!(a.le(&join) && b.le(&join));
        // Least upper bound: anything above both is above the join.
        if a.le(&c) && b.le(&c) {
            prop_assert!(join.le(&c));
        }
    }

    #[test]
    fn version_vector_merge_is_a_join(a in version_vector(), b in version_vector(), c in version_vector()) {
        let join = |x: &VersionVector, y: &VersionVector| { let mut j = x.clone(); j.merge(y); j };
        prop_assert_eq!(join(&a, &b), join(&b, &a));
        prop_assert_eq!(join(&join(&a, &b), &c), join(&a, &join(&b, &c)));
        prop_assert_eq!(join(&a, &a), a.clone());
        prop_assert!(a.le(&join(&a, &b)));
    }

    #[test]
    fn causal_context_is_exactly_the_set_of_inserted_dots(inserted in dots(), probes in dots()) {
        let context: CausalContext = inserted.iter().copied().collect();
        let expected: BTreeSet<Dot> = inserted.iter().copied().collect();
        for dot in inserted.iter().chain(probes.iter()) {
            prop_assert_eq!(context.contains(dot), expected.contains(dot));
        }
        // Compact: no cloud dot is adjacent to or inside its replica's prefix.
        for dot in context.dots() {
            prop_assert!(dot.counter > context.version_vector().get(dot.replica) + 1);
        }
    }

    #[test]
    fn causal_context_merge_is_set_union(a in dots(), b in dots(), c in dots()) {
        let ctx = |ds: &[Dot]| ds.iter().copied().collect::<CausalContext>();
        let join = |x: &CausalContext, y: &CausalContext| { let mut j = x.clone(); j.merge(y); j };
        let (ca, cb, cc) = (ctx(&a), ctx(&b), ctx(&c));
        let union: Vec<Dot> = a.iter().chain(b.iter()).copied().collect();
        prop_assert_eq!(join(&ca, &cb), ctx(&union));
        prop_assert_eq!(join(&ca, &cb), join(&cb, &ca));
        prop_assert_eq!(join(&join(&ca, &cb), &cc), join(&ca, &join(&cb, &cc)));
        prop_assert_eq!(join(&ca, &ca), ca.clone());
        prop_assert!(ca.is_subset(&join(&ca, &cb)));
    }

    #[test]
    fn next_dot_is_always_fresh(inserted in dots(), replica in 0u64..4) {
        let mut context: CausalContext = inserted.iter().copied().collect();
        let before = context.clone();
        let dot = context.next_dot(replica);
        prop_assert!(!before.contains(&dot));
        prop_assert!(context.contains(&dot));
    }

    /// Goal: an HLC never goes backwards, never lags local physical time, and stays within the
    /// offset bound of the largest physical time seen. Method: random interleavings of local events
    /// and receipts of remote timestamps (some too far ahead, which must be refused).
    #[test]
    fn hlc_is_monotonic_and_bounded(
        steps in prop::collection::vec((0u64..1_000, prop::option::of((0u64..3_000, 0u32..4))), 1..200)
    ) {
        let max_offset_ns = 1_000;
        let mut clock = HybridClock::new(max_offset_ns);
        let mut physical_ns = 0u64;
        let mut previous = HlcTimestamp::default();
        for (advance_ns, remote) in steps {
            physical_ns += advance_ns;
            let stamped = match remote {
                None => clock.now(physical_ns),
                Some((ahead_ns, logical)) => {
                    let remote = HlcTimestamp::new(physical_ns + ahead_ns, logical);
                    match clock.observe(remote, physical_ns) {
                        Ok(stamped) => { prop_assert!(stamped > remote); stamped }
                        Err(_) => { prop_assert!(ahead_ns > max_offset_ns); continue; }
                    }
                }
            };
            prop_assert!(stamped > previous);
            prop_assert!(stamped.wall_ns >= physical_ns);
            prop_assert!(stamped.wall_ns <= physical_ns + max_offset_ns);
            previous = stamped;
        }
    }
}

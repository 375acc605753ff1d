//! Quorum arithmetic: commit index and election results for simple and joint configurations.
//!
//! Learners never count. A joint configuration needs a majority of *both* voter sets (dissertation
//! §4.3); an empty voter set agrees to everything, so a non-joint configuration is the special case
//! with an empty outgoing set. Property-tested against brute force (bug class B8).

use std::collections::{BTreeMap, BTreeSet};

use crate::types::{LogIndex, Membership, NodeId};

/// The outcome of counting votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    /// A quorum granted.
    Won,
    /// A quorum can no longer be reached.
    Lost,
    /// Not decided yet.
    Pending,
}

/// The largest index that a majority of `voters` have matched; `LogIndex::MAX` for an empty set.
pub fn majority_index(voters: &BTreeSet<NodeId>, matched: &dyn Fn(NodeId) -> LogIndex) -> LogIndex {
    if voters.is_empty() {
        return LogIndex::MAX;
    }
    // Sort descending: the value at position n/2 is held by at least n/2+1 voters. Computed on
    // every acknowledgement, so small clusters sort on the stack.
    const ON_STACK: usize = 9;
    if voters.len() <= ON_STACK {
        let mut indexes = [0; ON_STACK];
        for (slot, &id) in indexes.iter_mut().zip(voters) {
            *slot = matched(id);
        }
        let indexes = &mut indexes[..voters.len()];
        indexes.sort_unstable_by(|a, b| b.cmp(a));
        return indexes[voters.len() / 2];
    }
    let mut indexes: Vec<LogIndex> = voters.iter().map(|&id| matched(id)).collect();
    indexes.sort_unstable_by(|a, b| b.cmp(a));
    indexes[voters.len() / 2]
}

/// The largest index committed by the membership's quorum rule (both halves when joint).
pub fn committed_index(membership: &Membership, matched: &dyn Fn(NodeId) -> LogIndex) -> LogIndex {
    let incoming = majority_index(&membership.voters, matched);
    let outgoing = majority_index(&membership.outgoing_voters, matched);
    incoming.min(outgoing)
}

fn majority_vote(voters: &BTreeSet<NodeId>, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
    if voters.is_empty() {
        return VoteResult::Won;
    }
    let granted = voters
        .iter()
        .filter(|id| votes.get(id) == Some(&true))
        .count();
    let rejected = voters
        .iter()
        .filter(|id| votes.get(id) == Some(&false))
        .count();
    let majority = voters.len() / 2 + 1;
    if granted >= majority {
        VoteResult::Won
    } else if voters.len() - rejected < majority {
        VoteResult::Lost
    } else {
        VoteResult::Pending
    }
}

/// Counts `votes` (true = granted) under the membership's quorum rule.
pub fn vote_result(membership: &Membership, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
    let incoming = majority_vote(&membership.voters, votes);
    let outgoing = majority_vote(&membership.outgoing_voters, votes);
    match (incoming, outgoing) {
        (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
        (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
        _ => VoteResult::Pending,
    }
}

/// True when the members in `active` form a quorum (check-quorum and ReadIndex confirmation).
pub fn is_quorum(membership: &Membership, active: &BTreeSet<NodeId>) -> bool {
    let votes: BTreeMap<NodeId, bool> = active.iter().map(|&id| (id, true)).collect();
    vote_result(membership, &votes) == VoteResult::Won
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Brute force: the largest index i such that some majority subset all have matched >= i.
    fn brute_majority(voters: &[NodeId], matched: &BTreeMap<NodeId, LogIndex>) -> LogIndex {
        if voters.is_empty() {
            return LogIndex::MAX;
        }
        let mut best = 0;
        for mask in 0u32..(1 << voters.len()) {
            if (mask.count_ones() as usize) * 2 <= voters.len() {
                continue;
            }
            let low = (0..voters.len())
                .filter(|bit| mask & (1 << bit) != 0)
                .map(|bit| matched[&voters[bit]])
                .min()
                .unwrap_or(0);
            best = best.max(low);
        }
        best
    }

    fn membership_strategy() -> impl Strategy<Value = (Membership, BTreeMap<NodeId, LogIndex>)> {
        (
            proptest::collection::btree_set(0u64..9, 1..7),
            proptest::collection::btree_set(0u64..9, 0..6),
            proptest::collection::btree_set(0u64..12, 0..3),
            proptest::collection::vec(0u64..20, 12),
        )
            .prop_map(|(voters, outgoing, learners, values)| {
                let learners = learners
                    .difference(&voters)
                    .copied()
                    .collect::<BTreeSet<_>>();
                let learners = learners.difference(&outgoing).copied().collect();
                let matched = (0u64..12).map(|id| (id, values[id as usize])).collect();
                (
                    Membership {
                        voters,
                        outgoing_voters: outgoing,
                        learners,
                    },
                    matched,
                )
            })
    }

    proptest! {
        #[test]
        fn b08_commit_index_matches_brute_force_incl_joint_and_learners((membership, matched) in membership_strategy()) {
            let lookup = |id: NodeId| matched[&id];
            let voters: Vec<_> = membership.voters.iter().copied().collect();
            let outgoing: Vec<_> = membership.outgoing_voters.iter().copied().collect();
            let expected = brute_majority(&voters, &matched).min(brute_majority(&outgoing, &matched));
            prop_assert_eq!(committed_index(&membership, &lookup), expected);
            // Learners' progress never changes the answer.
            let mut boosted = matched.clone();
            for learner in &membership.learners { boosted.insert(*learner, 1_000); }
            let boosted_lookup = |id: NodeId| boosted[&id];
            prop_assert_eq!(committed_index(&membership, &boosted_lookup), expected);
        }

        #[test]
        fn b08_vote_result_matches_brute_force((membership, matched) in membership_strategy()) {
            // Interpret even match values as granted, odd as rejected, >15 as not yet answered.
            let votes: BTreeMap<NodeId, bool> = matched.iter()
                .filter(|(_, v)| **v <= 15)
                .map(|(id, v)| (*id, v % 2 == 0)).collect();
            let half = |set: &BTreeSet<NodeId>| -> VoteResult {
                if set.is_empty() { return VoteResult::Won; }
                let yes = set.iter().filter(|id| votes.get(id) == Some(&true)).count();
                let open = set.iter().filter(|id| !votes.contains_key(id)).count();
                if yes * 2 > set.len() { VoteResult::Won }
                else if (yes + open) * 2 > set.len() { VoteResult::Pending }
                else { VoteResult::Lost }
            };
            let expected = match (half(&membership.voters), half(&membership.outgoing_voters)) {
                (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
                (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
                _ => VoteResult::Pending,
            };
            prop_assert_eq!(vote_result(&membership, &votes), expected);
        }
    }

    #[test]
    fn b08_two_of_five_never_commits() {
        let membership = Membership::with_voters([1, 2, 3, 4, 5]);
        let matched = |id: NodeId| if id <= 2 { 10 } else { 0 };
        assert_eq!(committed_index(&membership, &matched), 0);
        let matched = |id: NodeId| if id <= 3 { 10 } else { 0 };
        assert_eq!(committed_index(&membership, &matched), 10);
    }
}

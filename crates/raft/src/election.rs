//! Elections: term rules for every message, pre-vote, votes, check-quorum, role transitions.

use std::collections::BTreeMap;

use crate::client::ClientError;
use crate::kv::StateMachine;
use crate::message::{Message, MessageBody};
use crate::quorum::{self, VoteResult};
use crate::replica::{Gate, Progress, Replica, Role, Transfer};
use crate::types::{EntryPayload, NodeId, Term};

impl<M: StateMachine> Replica<M> {
    /// True when this replica heard from a live leader within the minimum election timeout, so it
    /// ignores vote requests (leader stickiness; required by check-quorum and lease reads).
    fn in_leader_lease(&self) -> bool {
        (self.config.check_quorum || self.config.lease_reads)
            && self.leader.is_some()
            && self
                .last_leader_contact_ms
                .is_some_and(|at| self.now_ms < at + self.config.election_timeout_min_ms)
    }

    /// True when this replica may campaign: not repairing, and a voter of its latest
    /// configuration or of the configuration in force at its commit index. The second case is the
    /// dissertation's §4.2.2 rule (cowsql/raft#150, B10): a server removed by a configuration that
    /// is not committed yet may be needed to elect the leader that commits it.
    pub(crate) fn is_promotable(&self) -> bool {
        let id = self.config.id;
        !self.repairing
            && (self.membership.is_voter(id)
                || self.log.membership_at(self.commit_index).is_voter(id))
    }

    pub(crate) fn handle_message(&mut self, message: Message) {
        if message.to != self.config.id || message.from == self.config.id {
            return;
        }
        let term = self.hard_state.term;
        if message.term > term {
            match &message.body {
                MessageBody::RequestVote {
                    leadership_transfer,
                    ..
                } if !leadership_transfer && self.in_leader_lease() => {
                    return; // a live leader exists: do not let a disruptive server depose it (B14)
                }
                MessageBody::RequestVote { pre_vote: true, .. } => {} // pre-votes change no state
                MessageBody::RequestVoteResponse {
                    pre_vote: true,
                    granted: true,
                } => {}
                body => {
                    let leader = body.is_from_leader().then_some(message.from);
                    self.become_follower(message.term, leader);
                }
            }
        } else if message.term < term {
            match &message.body {
                // A stale leader (or one partitioned away) learns the newer term and steps down
                // instead of retrying forever (etcd#8243 family).
                MessageBody::AppendEntries { .. } | MessageBody::InstallSnapshot { .. } => {
                    let body = self.rejection(0, 0, None);
                    self.send(message.from, term, body, Gate::Log);
                }
                MessageBody::RequestVote { pre_vote: true, .. } => {
                    let body = MessageBody::RequestVoteResponse {
                        granted: false,
                        pre_vote: true,
                    };
                    self.send(message.from, term, body, Gate::Log);
                }
                _ => {}
            }
            return;
        }
        self.dispatch(message);
    }

    fn dispatch(&mut self, message: Message) {
        let Message {
            from, term, body, ..
        } = message;
        match body {
            MessageBody::AppendEntries {
                prev_index,
                prev_term,
                entries,
                leader_commit,
                heartbeat_seq,
            } => {
                self.follow(from);
                self.handle_append_entries(
                    from,
                    prev_index,
                    prev_term,
                    entries,
                    leader_commit,
                    heartbeat_seq,
                );
            }
            MessageBody::InstallSnapshot {
                meta,
                offset,
                chunk,
                done,
                heartbeat_seq,
            } => {
                self.follow(from);
                self.handle_install_snapshot(from, *meta, offset, chunk, done, heartbeat_seq);
            }
            MessageBody::AppendEntriesResponse { .. }
            | MessageBody::InstallSnapshotResponse { .. } => {
                if self.role == Role::Leader {
                    self.handle_replication_response(from, body);
                }
            }
            MessageBody::RequestVote {
                last_index,
                last_term,
                pre_vote,
                ..
            } => {
                self.handle_request_vote(from, term, last_index, last_term, pre_vote);
            }
            MessageBody::RequestVoteResponse { granted, pre_vote } => {
                self.handle_vote_response(from, term, granted, pre_vote)
            }
            MessageBody::TimeoutNow => {
                if self.is_promotable() {
                    self.start_election(false, true);
                }
            }
        }
    }

    /// Same-term traffic from the leader: become (or stay) its follower.
    fn follow(&mut self, leader: NodeId) {
        self.last_leader_contact_ms = Some(self.now_ms);
        if self.role != Role::Follower || self.leader != Some(leader) {
            let term = self.hard_state.term;
            self.become_follower(term, Some(leader));
        } else {
            self.reset_election_deadline();
        }
    }

    fn handle_request_vote(
        &mut self,
        from: NodeId,
        term: Term,
        last_index: u64,
        last_term: Term,
        pre_vote: bool,
    ) {
        let current = self.hard_state.term;
        // etcd's rule: vote again for the same candidate; vote when free and leaderless; a pre-vote
        // for a later term is always considered. The vote is never cleared within a term (B3).
        let can_vote = self.hard_state.voted_for == Some(from)
            || (self.hard_state.voted_for.is_none() && self.leader.is_none())
            || (pre_vote && term > current);
        let up_to_date = (last_term, last_index) >= (self.log.last_term(), self.log.last_index());
        let granted = can_vote && up_to_date && !self.repairing;
        if granted && !pre_vote {
            self.hard_state.voted_for = Some(from);
            self.persist.hard_state = true;
            self.reset_election_deadline();
        }
        let reply_term = if granted && pre_vote { term } else { current };
        // The vote must be durable before the candidate hears of it (B2): gate on the log.
        self.send(
            from,
            reply_term,
            MessageBody::RequestVoteResponse { granted, pre_vote },
            Gate::Log,
        );
    }

    fn handle_vote_response(&mut self, from: NodeId, term: Term, granted: bool, pre_vote: bool) {
        let expected_role = if pre_vote {
            Role::PreCandidate
        } else {
            Role::Candidate
        };
        let expected_term = if pre_vote {
            self.hard_state.term + 1
        } else {
            self.hard_state.term
        };
        if self.role != expected_role || term != expected_term {
            return;
        }
        self.votes.insert(from, granted);
        match quorum::vote_result(&self.membership, &self.votes) {
            VoteResult::Won if pre_vote => self.start_election(false, false),
            VoteResult::Won => self.become_leader(),
            VoteResult::Lost => {
                let current = self.hard_state.term;
                self.become_follower(current, None);
            }
            VoteResult::Pending => {}
        }
    }

    /// Starts a (pre-)election. `transfer` marks elections requested by the leader.
    pub(crate) fn start_election(&mut self, pre_vote: bool, transfer: bool) {
        if !self.is_promotable() {
            return;
        }
        self.reset_election_deadline();
        self.leader = None;
        self.votes = BTreeMap::from([(self.config.id, true)]);
        let campaign_term = if pre_vote {
            self.role = Role::PreCandidate;
            self.hard_state.term + 1
        } else {
            self.role = Role::Candidate;
            self.hard_state.term += 1;
            self.hard_state.voted_for = Some(self.config.id);
            self.persist.hard_state = true;
            self.hard_state.term
        };
        self.emit_role();
        if quorum::vote_result(&self.membership, &self.votes) == VoteResult::Won {
            if pre_vote {
                self.start_election(false, transfer);
            } else {
                self.become_leader();
            }
            return;
        }
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        let voters: Vec<NodeId> = self
            .membership
            .voters
            .union(&self.membership.outgoing_voters)
            .copied()
            .collect();
        let own = self.config.id;
        for voter in voters.into_iter().filter(|&v| v != own) {
            let body = MessageBody::RequestVote {
                last_index,
                last_term,
                pre_vote,
                leadership_transfer: transfer,
            };
            self.send(voter, campaign_term, body, Gate::Log);
        }
    }

    /// Becomes a follower in `term`; the vote is kept when the term does not change (B3).
    pub(crate) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        if term != self.hard_state.term {
            self.hard_state.term = term;
            self.hard_state.voted_for = None;
            self.persist.hard_state = true;
        }
        if self.role == Role::Leader {
            self.abandon_leadership();
        }
        self.role = Role::Follower;
        self.leader = leader;
        if leader.is_some() {
            self.last_known_leader = leader;
            self.last_leader_contact_ms = Some(self.now_ms);
        }
        self.votes.clear();
        self.reset_election_deadline();
        self.emit_role();
    }

    /// Fails whatever a leader had pending: writes become indefinite (they may still commit),
    /// reads and transfers definite failures.
    fn abandon_leadership(&mut self) {
        let hint = self.leader.or(self.last_known_leader);
        for (client_id, sequence) in self.pending_writes.take_all() {
            self.reply(
                client_id,
                sequence,
                Err(ClientError::Indefinite { leader_hint: hint }),
            );
        }
        let error = self.not_leader_error();
        for read in std::mem::take(&mut self.pending_reads) {
            self.reply(read.client_id, read.sequence, Err(error.clone()));
        }
        if let Some(Transfer {
            target,
            waiter: Some((client_id, sequence)),
            ..
        }) = self.transfer.take()
        {
            self.reply(
                client_id,
                sequence,
                Err(ClientError::TransferFailed { target }),
            );
        }
        self.progress.clear();
        self.proposals.clear();
        self.heartbeat_sent_ms.clear();
        self.lease_until_ms = 0;
    }

    fn become_leader(&mut self) {
        self.role = Role::Leader;
        self.leader = Some(self.config.id);
        self.last_known_leader = Some(self.config.id);
        self.votes.clear();
        self.progress.clear();
        self.refresh_progress();
        self.index_proposals();
        self.heartbeat_deadline_ms = self.now_ms + self.config.heartbeat_interval_ms;
        self.election_deadline_ms = self.now_ms + self.config.election_timeout_min_ms;
        self.emit_role();
        // The no-op commits every earlier entry and unblocks reads (§5.4.2, §8; B1, B6).
        self.append_new_entry(EntryPayload::Noop);
        self.broadcast_append();
    }

    /// Keeps one progress record per member other than this replica.
    pub(crate) fn refresh_progress(&mut self) {
        let members = self.membership.members();
        self.progress.retain(|id, _| members.contains(id));
        let next = self.log.last_index() + 1;
        for member in members {
            if member != self.config.id {
                self.progress
                    .entry(member)
                    .or_insert_with(|| Progress::new(next));
            }
        }
    }

    /// Leader: step down when a quorum has not been heard from within an election timeout.
    pub(crate) fn check_quorum_or_step_down(&mut self) {
        let mut active: std::collections::BTreeSet<NodeId> = self
            .progress
            .iter()
            .filter(|(_, p)| p.recent_active)
            .map(|(id, _)| *id)
            .collect();
        active.insert(self.config.id);
        for progress in self.progress.values_mut() {
            progress.recent_active = false;
        }
        if self.config.check_quorum && !quorum::is_quorum(&self.membership, &active) {
            let term = self.hard_state.term;
            self.become_follower(term, None);
        }
    }
}

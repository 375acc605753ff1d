//! Client requests on the replica: writes with session dedup, ReadIndex and lease reads, stale
//! reads, membership changes and leadership transfer.

use crate::client::{
    ClientError, ClientOperation, ClientRequest, ClientResponse, MembershipChange, ReadConsistency,
    SessionCheck,
};
use crate::kv::StateMachine;
use crate::message::MessageBody;
use crate::quorum;
use crate::replica::{Gate, PendingRead, Replica, Role, Transfer};
use crate::types::{ClientId, Entry, EntryPayload, LogIndex, Membership, NodeId};

impl<M: StateMachine> Replica<M> {
    pub(crate) fn handle_client(&mut self, request: ClientRequest) {
        let ClientRequest {
            client_id,
            sequence,
            operation,
        } = request;
        if let ClientOperation::Read {
            query,
            consistency: ReadConsistency::Stale,
        } = &operation
        {
            // Explicitly stale: served anywhere, from whatever this replica has applied.
            let output = self.state_machine.query(query);
            let response = ClientResponse {
                output,
                index: self.applied_index,
                stale: true,
            };
            self.reply(client_id, sequence, Ok(response));
            return;
        }
        if self.role != Role::Leader {
            let error = self.not_leader_error();
            self.reply(client_id, sequence, Err(error));
            return;
        }
        if self.pending_writes.len() + self.pending_reads.len() >= self.config.max_pending_requests
        {
            self.reply(client_id, sequence, Err(ClientError::Overloaded));
            return;
        }
        match operation {
            ClientOperation::Read { query, .. } => self.start_read(client_id, sequence, query),
            ClientOperation::Write(command) => self.propose_command(client_id, sequence, command),
            ClientOperation::ChangeMembership(change) => {
                self.propose_membership(client_id, sequence, change)
            }
            ClientOperation::TransferLeadership(target) => {
                self.start_transfer(client_id, sequence, target)
            }
        }
    }

    fn own_term_committed(&self) -> bool {
        self.log.term_at(self.commit_index) == Some(self.hard_state.term)
    }

    fn propose_command(&mut self, client_id: u64, sequence: u64, command: Vec<u8>) {
        if self.transfer.is_some() {
            self.reply(client_id, sequence, Err(ClientError::TransferInProgress));
            return;
        }
        match self.sessions.check(client_id, sequence) {
            SessionCheck::Duplicate(output) => {
                let response = ClientResponse {
                    output,
                    index: self.applied_index,
                    stale: false,
                };
                self.reply(client_id, sequence, Ok(response));
                return;
            }
            SessionCheck::Expired => {
                self.reply(
                    client_id,
                    sequence,
                    Err(ClientError::SessionExpired {
                        client_id,
                        sequence,
                    }),
                );
                return;
            }
            SessionCheck::New => {}
        }
        // A retry of a request still in the log waits for that entry instead of re-proposing
        // (RedisRaft #13; B16).
        let in_flight = self.proposed_index(client_id, sequence);
        let index = match in_flight {
            Some(index) => index,
            None => {
                let index = self.append_new_entry(EntryPayload::Command {
                    client_id,
                    sequence,
                    command: command.into(),
                });
                self.proposals.insert((client_id, sequence), index);
                index
            }
        };
        self.pending_writes.add(index, client_id, sequence);
        if in_flight.is_none() {
            // Sent when the step finishes, so the proposals of one step share one AppendEntries
            // per follower.
            self.append_pending = true;
        }
    }

    /// The unapplied log entry holding this session's request, if any (B16).
    fn proposed_index(&self, client_id: ClientId, sequence: u64) -> Option<LogIndex> {
        let index = *self.proposals.get(&(client_id, sequence))?;
        let holds_request = matches!(self.log.entry(index).map(|e| &e.payload),
            Some(EntryPayload::Command { client_id: c, sequence: s, .. }) if *c == client_id && *s == sequence);
        (index > self.applied_index && holds_request).then_some(index)
    }

    /// Leader: indexes the unapplied commands inherited from earlier terms (the earliest copy of
    /// each request wins, as a log scan would find it).
    pub(crate) fn index_proposals(&mut self) {
        self.proposals.clear();
        for index in self.applied_index + 1..=self.log.last_index() {
            if let Some(Entry {
                payload:
                    EntryPayload::Command {
                        client_id,
                        sequence,
                        ..
                    },
                ..
            }) = self.log.entry(index)
            {
                self.proposals
                    .entry((*client_id, *sequence))
                    .or_insert(index);
            }
        }
    }

    fn start_read(&mut self, client_id: u64, sequence: u64, query: Vec<u8>) {
        let mut read = PendingRead {
            client_id,
            sequence,
            query,
            read_index: None,
            heartbeat_seq: 0,
            confirmed: false,
        };
        if self.own_term_committed() {
            read.read_index = Some(self.commit_index);
            if self.config.lease_reads
                && self.transfer.is_none()
                && self.now_ms < self.lease_until_ms
            {
                read.confirmed = true;
            } else {
                read.heartbeat_seq = self.heartbeat_seq + 1;
            }
        }
        // Otherwise (B6) the read waits until the no-op of this term commits.
        let needs_round = read.read_index.is_some() && !read.confirmed;
        self.pending_reads.push(read);
        // Batching: while a round is in flight, new reads wait for the next one, started when it
        // completes (or by the next heartbeat), so a burst of reads costs one round per RTT.
        if needs_round && !self.read_round_in_flight() {
            self.broadcast_heartbeat();
        }
        self.serve_ready_reads();
    }

    /// Leader: the first entry of this term committed; reads waiting for it get a read index.
    pub(crate) fn on_first_commit_of_term(&mut self) {
        let commit = self.commit_index;
        let round = self.heartbeat_seq + 1;
        let mut needs_round = false;
        for read in self
            .pending_reads
            .iter_mut()
            .filter(|r| r.read_index.is_none())
        {
            read.read_index = Some(commit);
            read.heartbeat_seq = round;
            needs_round = true;
        }
        if needs_round {
            self.broadcast_heartbeat();
        }
        self.maybe_leave_joint();
    }

    /// Leader: confirms reads whose heartbeat round a quorum acknowledged; extends the lease.
    pub(crate) fn maybe_confirm_reads(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let own = self.config.id;
        let own_seq = self.heartbeat_seq;
        let progress = &self.progress;
        let acked = |id: NodeId| {
            if id == own {
                own_seq
            } else {
                progress.get(&id).map_or(0, |p| p.acked_heartbeat_seq)
            }
        };
        let confirmed_seq = quorum::committed_index(&self.membership, &acked).min(own_seq);
        if self.config.lease_reads
            && self.transfer.is_none()
            && let Some(&sent_ms) = self.heartbeat_sent_ms.get(&confirmed_seq)
        {
            // Followers ignore other candidates for election_timeout_min after hearing from us,
            // counted from when they received the round, which is after it was sent.
            let until =
                sent_ms + self.config.election_timeout_min_ms - self.config.clock_drift_bound_ms;
            self.lease_until_ms = self.lease_until_ms.max(until);
        }
        for read in &mut self.pending_reads {
            if read.read_index.is_some() && read.heartbeat_seq <= confirmed_seq {
                read.confirmed = true;
            }
        }
        let current = self.heartbeat_seq;
        let waiting = self
            .pending_reads
            .iter()
            .any(|r| !r.confirmed && r.read_index.is_some() && r.heartbeat_seq > current);
        if waiting && !self.read_round_in_flight() {
            self.broadcast_heartbeat(); // re-enters once; the waiting reads are then in flight
        }
        self.serve_ready_reads();
    }

    /// True while some read waits for a round that has already been sent.
    fn read_round_in_flight(&self) -> bool {
        let current = self.heartbeat_seq;
        self.pending_reads
            .iter()
            .any(|r| !r.confirmed && r.read_index.is_some() && r.heartbeat_seq <= current)
    }

    /// Leader: answers confirmed reads once their read index is applied.
    pub(crate) fn serve_ready_reads(&mut self) {
        if self.role != Role::Leader || self.pending_reads.is_empty() {
            return;
        }
        let applied = self.applied_index;
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending_reads)
            .into_iter()
            .partition(|r| r.confirmed && r.read_index.is_some_and(|i| i <= applied));
        self.pending_reads = waiting;
        for read in ready {
            let output = self.state_machine.query(&read.query);
            self.reply(
                read.client_id,
                read.sequence,
                Ok(ClientResponse {
                    output,
                    index: applied,
                    stale: false,
                }),
            );
        }
    }

    fn propose_membership(&mut self, client_id: u64, sequence: u64, change: MembershipChange) {
        let refuse = |reason: &str| {
            Err(ClientError::MembershipChangeRefused {
                reason: reason.to_string(),
            })
        };
        let current = self.membership.clone();
        let uncommitted = self
            .log
            .latest_membership_index()
            .is_some_and(|i| i > self.commit_index);
        let result = if current.is_joint() {
            refuse("a joint configuration is still in progress")
        } else if uncommitted {
            refuse("an earlier membership change is not committed yet")
        } else if !self.own_term_committed() {
            refuse("the leader has not committed an entry of its term yet")
        } else if self.transfer.is_some() {
            Err(ClientError::TransferInProgress)
        } else {
            next_membership(&current, change)
        };
        let target = match result {
            Ok(target) => target,
            Err(error) => return self.reply(client_id, sequence, Err(error)),
        };
        if target == current {
            let response = ClientResponse {
                output: Vec::new(),
                index: self.commit_index,
                stale: false,
            };
            return self.reply(client_id, sequence, Ok(response));
        }
        let changed_voters = current.voters.symmetric_difference(&target.voters).count();
        let entry = if changed_voters > 1 {
            Membership {
                voters: target.voters,
                outgoing_voters: current.voters,
                learners: target.learners,
            }
        } else {
            target
        };
        let index = self.append_new_entry(EntryPayload::Membership(Box::new(entry)));
        self.pending_writes.add(index, client_id, sequence);
        self.broadcast_append();
    }

    /// Leader: once a joint configuration is committed, move to the new configuration alone.
    pub(crate) fn maybe_leave_joint(&mut self) {
        if self.role != Role::Leader || !self.membership.is_joint() {
            return;
        }
        // Only now look for the latest configuration entry: it is a scan back through the log.
        let committed = self
            .log
            .latest_membership_index()
            .is_none_or(|i| i <= self.commit_index);
        if committed {
            let next = Membership {
                outgoing_voters: Default::default(),
                ..self.membership.clone()
            };
            self.append_new_entry(EntryPayload::Membership(Box::new(next)));
            self.broadcast_append();
        }
    }

    /// Called when a membership entry is applied.
    pub(crate) fn after_membership_applied(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        self.maybe_leave_joint();
        let committed = self
            .log
            .latest_membership_index()
            .is_none_or(|i| i <= self.commit_index);
        if committed && !self.membership.is_voter(self.config.id) {
            // Removed leader: it stopped counting itself at append time; now it hands over.
            let term = self.hard_state.term;
            self.become_follower(term, None);
        }
    }

    fn start_transfer(&mut self, client_id: u64, sequence: u64, target: NodeId) {
        if target == self.config.id {
            let response = ClientResponse {
                output: Vec::new(),
                index: self.commit_index,
                stale: false,
            };
            return self.reply(client_id, sequence, Ok(response));
        }
        if !self.membership.voters.contains(&target) {
            return self.reply(
                client_id,
                sequence,
                Err(ClientError::BadRequest(format!("{target} is not a voter"))),
            );
        }
        if self.transfer.is_some() {
            return self.reply(client_id, sequence, Err(ClientError::TransferInProgress));
        }
        let deadline_ms = self.now_ms + self.config.election_timeout_max_ms;
        self.transfer = Some(Transfer {
            target,
            deadline_ms,
            waiter: Some((client_id, sequence)),
        });
        self.maybe_send_timeout_now(target);
        self.send_append(target, false);
    }

    /// Leader: tells the transfer target to campaign once it has the whole log; replies to the
    /// requester that the transfer started.
    pub(crate) fn maybe_send_timeout_now(&mut self, peer: NodeId) {
        let Some(Transfer {
            target,
            deadline_ms,
            waiter,
        }) = self.transfer
        else {
            return;
        };
        let caught_up = self
            .progress
            .get(&peer)
            .is_some_and(|p| p.match_index == self.log.last_index());
        if target != peer || !caught_up || waiter.is_none() {
            return;
        }
        self.transfer = Some(Transfer {
            target,
            deadline_ms,
            waiter: None,
        });
        let term = self.hard_state.term;
        // TimeoutNow overrides the followers' lease stickiness, so this leader's lease ends here.
        self.lease_until_ms = 0;
        self.send(target, term, MessageBody::TimeoutNow, Gate::HardState);
        if let Some((client_id, sequence)) = waiter {
            let response = ClientResponse {
                output: Vec::new(),
                index: self.log.last_index() as LogIndex,
                stale: false,
            };
            self.reply(client_id, sequence, Ok(response));
        }
    }
}

/// The configuration after applying `change` to `current`.
fn next_membership(
    current: &Membership,
    change: MembershipChange,
) -> Result<Membership, ClientError> {
    let mut next = current.clone();
    match change {
        MembershipChange::AddLearner(id) => {
            if next.voters.contains(&id) {
                return Err(ClientError::BadRequest(format!("{id} is already a voter")));
            }
            next.learners.insert(id);
        }
        MembershipChange::AddVoter(id) => {
            next.learners.remove(&id);
            next.voters.insert(id);
        }
        MembershipChange::Remove(id) => {
            next.voters.remove(&id);
            next.learners.remove(&id);
        }
        MembershipChange::Replace(target) => {
            if target.is_joint() {
                return Err(ClientError::BadRequest(
                    "target configuration must not be joint".into(),
                ));
            }
            next = target;
        }
    }
    if next.voters.is_empty() {
        return Err(ClientError::BadRequest(
            "a configuration needs at least one voter".into(),
        ));
    }
    if next.voters.intersection(&next.learners).next().is_some() {
        return Err(ClientError::BadRequest(
            "a member cannot be both voter and learner".into(),
        ));
    }
    Ok(next)
}

//! Log replication: the leader's per-follower flow control and the follower's append rules.

use crate::kv::StateMachine;
use crate::message::MessageBody;
use crate::quorum;
use crate::replica::{Gate, ProgressState, Replica, Role};
use crate::types::{Entries, Entry, EntryPayload, LogIndex, NodeId, Term};

impl<M: StateMachine> Replica<M> {
    /// Leader: appends an entry of the current term and returns its index.
    pub(crate) fn append_new_entry(&mut self, payload: EntryPayload) -> LogIndex {
        let index = self.log.last_index() + 1;
        let is_membership = matches!(payload, EntryPayload::Membership(_));
        self.log.push(Entry {
            term: self.hard_state.term,
            index,
            payload,
        });
        self.log_changed_from(index);
        if is_membership {
            self.membership = self.log.membership_at(index);
            self.refresh_progress();
        }
        index
    }

    /// Leader: sends whatever each follower's flow control allows.
    pub(crate) fn broadcast_append(&mut self) {
        let peers: Vec<NodeId> = self.progress.keys().copied().collect();
        for peer in peers {
            self.send_append(peer, false);
        }
        self.maybe_commit(); // a single voter commits on its own
    }

    /// Leader: a heartbeat round; also starts a new confirmation round for reads and the lease.
    pub(crate) fn broadcast_heartbeat(&mut self) {
        self.heartbeat_seq += 1;
        self.heartbeat_sent_ms
            .insert(self.heartbeat_seq, self.now_ms);
        while self.heartbeat_sent_ms.len() > 64 {
            self.heartbeat_sent_ms.pop_first();
        }
        let peers: Vec<NodeId> = self.progress.keys().copied().collect();
        for peer in peers {
            let Some(progress) = self.progress.get_mut(&peer) else {
                continue;
            };
            match progress.state {
                ProgressState::Replicate => {
                    // A full window with no acknowledgement since the last beat means messages
                    // were lost: fall back to probing from the match point (B15).
                    if !progress.inflight.is_empty() && !progress.progressed {
                        progress.state = ProgressState::Probe;
                        progress.next_index = progress.match_index + 1;
                        progress.inflight.clear();
                    }
                }
                ProgressState::Probe => progress.paused = false,
                ProgressState::Snapshot => {}
            }
            progress.progressed = false;
            self.send_append(peer, true);
        }
        self.maybe_confirm_reads();
    }

    /// Leader: sends one AppendEntries (or snapshot chunk) to `peer` if flow control allows;
    /// `heartbeat` forces a message even when nothing new is to be sent.
    pub(crate) fn send_append(&mut self, peer: NodeId, heartbeat: bool) {
        let Some(progress) = self.progress.get(&peer) else {
            return;
        };
        let (state, next, match_index) =
            (progress.state, progress.next_index, progress.match_index);
        let (paused, window_full) = (
            progress.paused,
            progress.inflight.len() >= self.config.max_inflight_messages,
        );
        if state == ProgressState::Snapshot {
            if heartbeat {
                self.send_snapshot_chunk(peer);
            }
            return;
        }
        let prev_index = next - 1;
        let Some(prev_term) = self.log.term_at(prev_index) else {
            self.start_snapshot_transfer(peer);
            return;
        };
        let has_new = next <= self.log.last_index();
        let blocked = match state {
            ProgressState::Probe => paused,
            _ => window_full,
        };
        if blocked || !has_new {
            if heartbeat {
                // Heartbeat: anchored at the match point so it never races pipelined appends.
                let anchor = if state == ProgressState::Replicate {
                    match_index
                } else {
                    prev_index
                };
                let anchor_term = self.log.term_at(anchor).unwrap_or(prev_term);
                self.send_entries(peer, anchor, anchor_term, Entries::default());
            }
            return;
        }
        let entries = self.log.slice(
            next,
            next + self.config.max_entries_per_message as u64,
            self.config.max_bytes_per_message,
        );
        let last = entries.last().map_or(prev_index, |e| e.index);
        if let Some(progress) = self.progress.get_mut(&peer) {
            match progress.state {
                ProgressState::Replicate => {
                    progress.next_index = last + 1;
                    progress.inflight.push_back(last);
                }
                _ => progress.paused = true,
            }
        }
        self.send_entries(peer, prev_index, prev_term, entries);
    }

    fn send_entries(
        &mut self,
        peer: NodeId,
        prev_index: LogIndex,
        prev_term: Term,
        entries: Entries,
    ) {
        let body = MessageBody::AppendEntries {
            prev_index,
            prev_term,
            entries,
            leader_commit: self.commit_index,
            heartbeat_seq: self.heartbeat_seq,
        };
        let term = self.hard_state.term;
        self.send(peer, term, body, Gate::HardState);
    }

    /// Leader: the commit rule. Only an entry of the current term is committed by counting
    /// replicas (Figure 8, B1); this replica counts only what is durable locally (B12).
    pub(crate) fn maybe_commit(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let own = self.config.id;
        let durable = self.durable_index;
        let progress = &self.progress;
        let matched = |id: NodeId| {
            if id == own {
                durable
            } else {
                progress.get(&id).map_or(0, |p| p.match_index)
            }
        };
        let candidate =
            quorum::committed_index(&self.membership, &matched).min(self.log.last_index());
        if candidate > self.commit_index
            && self.log.term_at(candidate) == Some(self.hard_state.term)
        {
            let was_own_term = self.log.term_at(self.commit_index) == Some(self.hard_state.term);
            self.commit_index = candidate;
            if !was_own_term {
                self.on_first_commit_of_term();
            }
            // Followers learn the new commit index promptly instead of at the next heartbeat.
            let peers: Vec<NodeId> = self.progress.keys().copied().collect();
            for peer in peers {
                self.send_append(peer, false);
            }
        }
    }

    pub(crate) fn rejection(
        &self,
        rejected_index: LogIndex,
        hint_index: LogIndex,
        hint_term: Option<Term>,
    ) -> MessageBody {
        MessageBody::AppendEntriesResponse {
            success: false,
            match_index: 0,
            rejected_index,
            hint_index,
            hint_term,
            log_lost: self.repairing,
            heartbeat_seq: 0,
        }
    }

    /// Follower: the AppendEntries receiver rules.
    pub(crate) fn handle_append_entries(
        &mut self,
        leader: NodeId,
        prev_index: LogIndex,
        prev_term: Term,
        entries: Entries,
        leader_commit: LogIndex,
        heartbeat_seq: u64,
    ) {
        let term = self.hard_state.term;
        // A malformed message (entries not contiguous after prev, or terms out of order) is
        // dropped: the commit rule below relies on `prev_index + len` being the last entry.
        let well_formed = entries.iter().enumerate().all(|(offset, entry)| {
            entry.index == prev_index + 1 + offset as u64 && entry.term <= term
        }) && entries.windows(2).all(|pair| pair[0].term <= pair[1].term);
        if !well_formed {
            return;
        }
        let (prev_index, prev_term, entries) = if prev_index < self.commit_index {
            // Entries up to our commit index are committed, hence identical to the leader's; skip
            // them instead of comparing against a possibly compacted prefix (B5, openraft#511).
            let skip = entries
                .iter()
                .take_while(|e| e.index <= self.commit_index)
                .count();
            let commit = self.commit_index;
            let anchor_term = self.log.term_at(commit).unwrap_or(prev_term);
            let rest = entries.slice(skip..entries.len());
            if rest.is_empty() {
                let body = self.success(commit.max(prev_index), heartbeat_seq);
                self.send(leader, term, body, Gate::Log);
                return;
            }
            (commit, anchor_term, rest)
        } else {
            (prev_index, prev_term, entries)
        };
        if self.log.term_at(prev_index) != Some(prev_term) {
            let body = match self.log.term_at(prev_index) {
                None => self.rejection(prev_index, self.log.last_index() + 1, None),
                Some(conflict) => self.rejection(
                    prev_index,
                    self.log.first_index_of_term_at(prev_index),
                    Some(conflict),
                ),
            };
            let body = with_heartbeat_seq(body, heartbeat_seq);
            self.send(leader, term, body, Gate::Log);
            return;
        }
        let last_new = prev_index + entries.len() as u64;
        self.append_from_leader(entries);
        // B4: never past what this message proved to match.
        let commit = leader_commit.min(last_new);
        if commit > self.commit_index {
            self.commit_index = commit;
        }
        self.maybe_finish_repair(leader);
        let body = self.success(last_new, heartbeat_seq);
        self.send(leader, term, body, Gate::Log);
    }

    /// Appends entries that matched at their predecessor, truncating only at the first conflict
    /// and never at or below the commit index (B5). The new entries are kept as the run the
    /// message carried, not copied.
    fn append_from_leader(&mut self, entries: Entries) {
        // The latest configuration changes only if a membership entry is truncated or appended;
        // recomputing it scans the log, so do it only then.
        let mut changed = false;
        let mut skip = 0;
        for entry in &entries {
            match self.log.term_at(entry.index) {
                Some(term) if term == entry.term => skip += 1,
                Some(_) => {
                    if entry.index <= self.commit_index {
                        return; // impossible for a correct leader; refuse rather than lose commits
                    }
                    let from = entry.index;
                    changed |= self
                        .log
                        .latest_membership_index()
                        .is_some_and(|i| i >= from);
                    self.log.truncate_from(from);
                    self.log_changed_from(from);
                    break;
                }
                None => break,
            }
        }
        let new = entries.slice(skip..entries.len());
        // Contiguous from the message's `prev_index` (checked on receipt), so the new entries
        // follow on from the log if their first does.
        if let Some(first) = new.first().map(|e| e.index)
            && first == self.log.last_index() + 1
        {
            changed |= new
                .iter()
                .any(|e| matches!(e.payload, EntryPayload::Membership(_)));
            self.log.append(new);
            self.log_changed_from(first);
        }
        if changed {
            self.membership = self.log.membership_at(self.log.last_index());
        }
    }

    fn success(&self, match_index: LogIndex, heartbeat_seq: u64) -> MessageBody {
        MessageBody::AppendEntriesResponse {
            success: true,
            match_index,
            rejected_index: 0,
            hint_index: 0,
            hint_term: None,
            log_lost: false,
            heartbeat_seq,
        }
    }

    /// A replica that lost log records may vote again once it holds an entry of the leader's term
    /// at its commit index: then it has every committed entry (Leader Completeness).
    pub(crate) fn maybe_finish_repair(&mut self, leader: NodeId) {
        if self.repairing && self.log.term_at(self.commit_index) == Some(self.hard_state.term) {
            self.repairing = false;
            self.persist.repair_finished = true;
            if self.hard_state.voted_for.is_none() {
                // The lost records may have held a vote in this term: count it as given to the
                // leader so no second candidate can get it.
                self.hard_state.voted_for = Some(leader);
                self.persist.hard_state = true;
            }
        }
    }

    /// Leader: handles AppendEntries and InstallSnapshot answers.
    pub(crate) fn handle_replication_response(&mut self, from: NodeId, body: MessageBody) {
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        progress.recent_active = true;
        match body {
            MessageBody::AppendEntriesResponse {
                success,
                match_index,
                rejected_index,
                hint_index,
                hint_term,
                log_lost,
                heartbeat_seq,
            } => {
                progress.acked_heartbeat_seq = progress.acked_heartbeat_seq.max(heartbeat_seq);
                if success {
                    self.on_append_success(from, match_index);
                } else {
                    self.on_append_rejected(from, rejected_index, hint_index, hint_term, log_lost);
                }
            }
            MessageBody::InstallSnapshotResponse {
                snapshot_index,
                next_offset,
                installed,
                match_index,
                heartbeat_seq,
            } => {
                progress.acked_heartbeat_seq = progress.acked_heartbeat_seq.max(heartbeat_seq);
                self.on_snapshot_response(
                    from,
                    snapshot_index,
                    next_offset,
                    installed,
                    match_index,
                );
            }
            _ => {}
        }
        self.maybe_confirm_reads();
    }

    fn on_append_success(&mut self, from: NodeId, match_index: LogIndex) {
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        while progress
            .inflight
            .front()
            .is_some_and(|&last| last <= match_index)
        {
            progress.inflight.pop_front();
        }
        if match_index > progress.match_index {
            progress.match_index = match_index;
            progress.progressed = true;
        }
        progress.next_index = progress.next_index.max(progress.match_index + 1);
        if progress.state == ProgressState::Probe {
            progress.state = ProgressState::Replicate;
            progress.paused = false;
            progress.next_index = progress.match_index + 1;
            progress.inflight.clear();
        }
        self.maybe_commit();
        self.maybe_send_timeout_now(from);
        self.send_append(from, false);
    }

    fn on_append_rejected(
        &mut self,
        from: NodeId,
        rejected: LogIndex,
        hint_index: LogIndex,
        hint_term: Option<Term>,
        log_lost: bool,
    ) {
        let last_index = self.log.last_index();
        let retry = match hint_term {
            Some(term) => self
                .log
                .last_index_of_term(term, rejected)
                .map_or(hint_index, |i| i + 1),
            None => hint_index,
        };
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        if log_lost && hint_index <= progress.match_index {
            // The follower repaired a corrupted log: forget what we thought it had.
            progress.match_index = hint_index.saturating_sub(1);
        } else if rejected <= progress.match_index || rejected == 0 {
            return; // stale (reordered or duplicated) answer
        } else if progress.state == ProgressState::Probe && rejected + 1 != progress.next_index {
            return; // answer to an older probe
        }
        progress.state = ProgressState::Probe;
        progress.inflight.clear();
        progress.paused = false;
        // Retry no later than the rejected point and never at or below what is known to match.
        let upper = rejected.max(progress.match_index + 1).min(last_index + 1);
        progress.next_index = retry.clamp(progress.match_index + 1, upper);
        self.send_append(from, false);
    }
}

fn with_heartbeat_seq(body: MessageBody, seq: u64) -> MessageBody {
    match body {
        MessageBody::AppendEntriesResponse {
            success,
            match_index,
            rejected_index,
            hint_index,
            hint_term,
            log_lost,
            ..
        } => MessageBody::AppendEntriesResponse {
            success,
            match_index,
            rejected_index,
            hint_index,
            hint_term,
            log_lost,
            heartbeat_seq: seq,
        },
        other => other,
    }
}

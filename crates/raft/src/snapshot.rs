//! Snapshots on the wire: the leader's chunked InstallSnapshot and the follower's installation.

use crate::kv::StateMachine;
use crate::message::MessageBody;
use crate::replica::{Gate, ProgressState, Replica, SnapshotData};
use crate::types::{LogIndex, NodeId, Snapshot, SnapshotMeta};

impl<M: StateMachine> Replica<M> {
    /// Leader: `peer` needs entries that were compacted; send the latest snapshot instead.
    pub(crate) fn start_snapshot_transfer(&mut self, peer: NodeId) {
        let Some(index) = self.latest_snapshot.as_ref().map(|s| s.meta.index) else {
            return;
        };
        let Some(progress) = self.progress.get_mut(&peer) else {
            return;
        };
        progress.state = ProgressState::Snapshot;
        progress.snapshot_index = index;
        progress.snapshot_offset = 0;
        progress.inflight.clear();
        self.send_snapshot_chunk(peer);
    }

    /// Leader: (re)sends the chunk at the follower's current offset.
    pub(crate) fn send_snapshot_chunk(&mut self, peer: NodeId) {
        let Some(snapshot) = &self.latest_snapshot else {
            return;
        };
        let Some(progress) = self.progress.get_mut(&peer) else {
            return;
        };
        if progress.snapshot_index != snapshot.meta.index {
            // A newer snapshot was taken meanwhile: restart the transfer with it.
            progress.snapshot_index = snapshot.meta.index;
            progress.snapshot_offset = 0;
        }
        let total = snapshot.data.len();
        let start = usize::try_from(progress.snapshot_offset)
            .unwrap_or(total)
            .min(total);
        let end = (start + self.config.snapshot_chunk_bytes).min(total);
        let body = MessageBody::InstallSnapshot {
            meta: Box::new(snapshot.meta.clone()),
            offset: start as u64,
            chunk: snapshot.data[start..end].to_vec(),
            done: end == total,
            heartbeat_seq: self.heartbeat_seq,
        };
        let term = self.hard_state.term;
        self.send(peer, term, body, Gate::HardState);
    }

    /// Leader: a follower answered a snapshot chunk.
    pub(crate) fn on_snapshot_response(
        &mut self,
        from: NodeId,
        snapshot_index: LogIndex,
        next_offset: u64,
        installed: bool,
        match_index: LogIndex,
    ) {
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        if installed {
            if match_index > progress.match_index {
                progress.match_index = match_index;
                progress.progressed = true;
            }
            if progress.state == ProgressState::Snapshot {
                progress.state = ProgressState::Probe;
                progress.paused = false;
                progress.next_index = progress.match_index + 1;
            }
            self.maybe_commit();
            self.send_append(from, false);
            return;
        }
        if progress.state != ProgressState::Snapshot || progress.snapshot_index != snapshot_index {
            return; // stale answer about an older transfer
        }
        progress.snapshot_offset = next_offset;
        progress.progressed = true;
        self.send_snapshot_chunk(from);
    }

    /// Follower: accumulates chunks in order and installs the snapshot on the last one.
    pub(crate) fn handle_install_snapshot(
        &mut self,
        leader: NodeId,
        meta: SnapshotMeta,
        offset: u64,
        chunk: Vec<u8>,
        done: bool,
        heartbeat_seq: u64,
    ) {
        let term = self.hard_state.term;
        let answer = |next_offset: u64, installed: bool, match_index: LogIndex| {
            MessageBody::InstallSnapshotResponse {
                snapshot_index: meta.index,
                next_offset,
                installed,
                match_index,
                heartbeat_seq,
            }
        };
        if meta.index <= self.commit_index {
            // Already have everything it covers: an old or duplicate snapshot must never roll the
            // state machine back (B11).
            let body = answer(0, true, self.commit_index);
            self.send(leader, term, body, Gate::Log);
            return;
        }
        if offset == 0 {
            self.incoming_snapshot = Some((meta.clone(), Vec::new()));
        }
        let expected = match &mut self.incoming_snapshot {
            Some((incoming, buffer)) if *incoming == meta && buffer.len() as u64 == offset => {
                if buffer.len() + chunk.len() > self.config.snapshot_bytes_max {
                    self.incoming_snapshot = None;
                    0
                } else {
                    buffer.extend_from_slice(&chunk);
                    buffer.len() as u64
                }
            }
            Some((incoming, buffer)) if *incoming == meta => buffer.len() as u64,
            _ => 0,
        };
        if !done || expected != offset + chunk.len() as u64 {
            let body = answer(expected, false, 0);
            self.send(leader, term, body, Gate::Log);
            return;
        }
        let Some((meta, data)) = self.incoming_snapshot.take() else {
            return;
        };
        let installed = self.install_snapshot(Snapshot {
            meta,
            data: data.into(),
        });
        let match_index = if installed { self.commit_index } else { 0 };
        let body = answer(0, installed, match_index);
        self.send(leader, term, body, Gate::Log);
    }

    /// Replaces state machine, sessions and log prefix with `snapshot`; false if it does not decode.
    fn install_snapshot(&mut self, snapshot: Snapshot) -> bool {
        let Ok(data) = postcard::from_bytes::<SnapshotData>(&snapshot.data) else {
            return false;
        };
        if self.state_machine.restore(&data.state).is_err() {
            return false;
        }
        self.sessions = data.sessions;
        let meta = snapshot.meta.clone();
        let keeps_suffix = self.log.term_at(meta.index) == Some(meta.term);
        self.log.install_snapshot(meta.clone());
        if !keeps_suffix {
            self.durable_index = self.durable_index.min(meta.index);
        }
        self.commit_index = meta.index;
        self.applied_index = meta.index;
        self.membership = self.log.membership_at(self.log.last_index());
        self.latest_snapshot = Some(snapshot.clone());
        self.persist.snapshot = Some(Box::new(snapshot));
        if let Some(leader) = self.leader {
            self.maybe_finish_repair(leader);
        }
        true
    }
}

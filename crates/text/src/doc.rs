//! The document: local edits, remote operations, versions, undo and anchors.

use std::collections::{BTreeMap, VecDeque};

use crate::op::{Anchor, CharId, Op, ReplicaId, Version};
use crate::tree::{Iid, Run, Tree};

/// Most operations held while waiting for their dependencies.
pub const PENDING_MAX: usize = 1 << 20;
/// Default number of undo steps kept.
pub const UNDO_LIMIT_DEFAULT: usize = 1000;

/// Error from a local edit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EditError {
    /// The position or range lies outside the document; nothing changed.
    #[error("range {start}..{end} is outside the document of {len} characters")]
    OutOfRange {
        /// First position requested.
        start: u64,
        /// One past the last position requested.
        end: u64,
        /// Document length in characters.
        len: u64,
    },
    /// This replica has used up its sequence numbers (2^32 elements); nothing changed.
    #[error("replica sequence numbers exhausted")]
    SequenceExhausted,
}

/// Error from applying a remote operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The operation is malformed (empty, overflowing, or naming a non-character as origin or
    /// target); it was dropped and nothing changed.
    #[error("invalid operation: {0}")]
    Invalid(&'static str),
    /// Too many operations are waiting for dependencies; this one was dropped, nothing changed.
    #[error("too many pending operations")]
    PendingFull,
}

/// A run of this document's operation elements in the order they were applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LogSpan {
    /// Agent index.
    pub agent: u32,
    /// First sequence number.
    pub seq: u32,
    /// Number of elements.
    pub len: u32,
}

/// A run of deletions by one agent: element `seq + i` deletes `target ± i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DeleteSpan {
    /// First sequence number of the deleting agent.
    pub seq: u32,
    /// Number of characters deleted.
    pub len: u32,
    /// Character deleted by the first element.
    pub target: Iid,
    /// Whether targets go backwards.
    pub reversed: bool,
}

/// One step of local undo history.
#[derive(Clone, Debug, PartialEq, Eq)]
enum UndoStep {
    /// This replica inserted characters `[start, start+len)`, ending at position `pos_end`.
    Inserted { start: Iid, len: u32, pos_end: u64 },
    /// This replica deleted these characters (pieces in document order) with this text.
    Deleted {
        pieces: Vec<(Iid, u32)>,
        text: String,
    },
}

/// A replica of a collaborative text document.
#[derive(Clone, Debug)]
pub struct Document {
    /// This replica's id.
    replica: ReplicaId,
    /// This replica's agent index.
    agent: u32,
    /// Agent index to replica id.
    pub(crate) agents: Vec<ReplicaId>,
    /// Replica id to agent index.
    agent_index: BTreeMap<ReplicaId, u32>,
    /// Per agent, elements applied (the version).
    pub(crate) next_seq: Vec<u32>,
    /// The characters.
    pub(crate) tree: Tree,
    /// Application order of every element (a causal order).
    pub(crate) log: Vec<LogSpan>,
    /// Per agent: (first sequence number, index in `log`) of each of its log spans, so
    /// operations since a version are found without walking the whole log.
    log_index: Vec<Vec<(u32, u32)>>,
    /// Per agent, its deletions in sequence order.
    pub(crate) deletes: Vec<Vec<DeleteSpan>>,
    /// Remote operations waiting for dependencies.
    /// Held operations, keyed by the element each is waiting for.
    pending: BTreeMap<(ReplicaId, u64), Vec<Op>>,
    /// Number of held operations.
    pending_count: usize,
    /// Local undo history, newest last.
    undo_steps: VecDeque<UndoStep>,
    /// Steps undone, newest last; cleared by a new local edit.
    redo_steps: VecDeque<UndoStep>,
    /// Most undo steps kept.
    undo_limit: usize,
    /// Reused buffer for the pieces of a local deletion.
    scratch: Vec<(Iid, u32)>,
}

impl Document {
    /// An empty document edited by `replica`.
    pub fn new(replica: ReplicaId) -> Self {
        let mut doc = Document {
            replica,
            agent: 0,
            agents: Vec::new(),
            agent_index: BTreeMap::new(),
            next_seq: Vec::new(),
            tree: Tree::default(),
            log: Vec::new(),
            log_index: Vec::new(),
            deletes: Vec::new(),
            pending: BTreeMap::new(),
            pending_count: 0,
            undo_steps: VecDeque::new(),
            redo_steps: VecDeque::new(),
            undo_limit: UNDO_LIMIT_DEFAULT,
            scratch: Vec::new(),
        };
        doc.agent = doc.agent_for(replica);
        doc
    }

    /// Rebuilds a document from decoded parts (see `encoding`).
    pub(crate) fn from_parts(
        replica: ReplicaId,
        agents: Vec<ReplicaId>,
        next_seq: Vec<u32>,
        tree: Tree,
        log: Vec<LogSpan>,
        deletes: Vec<Vec<DeleteSpan>>,
    ) -> Self {
        let agent_index = agents
            .iter()
            .enumerate()
            .map(|(i, &r)| (r, i as u32))
            .collect();
        let mut doc = Document {
            replica,
            agent: 0,
            agents,
            agent_index,
            next_seq,
            tree,
            log_index: Vec::new(),
            log,
            deletes,
            pending: BTreeMap::new(),
            pending_count: 0,
            undo_steps: VecDeque::new(),
            redo_steps: VecDeque::new(),
            undo_limit: UNDO_LIMIT_DEFAULT,
            scratch: Vec::new(),
        };
        doc.agent = doc.agent_for(replica);
        for position in 0..doc.log.len() {
            doc.index_log_span(position);
        }
        doc
    }

    /// Adds log span `position` to the per-agent log index.
    fn index_log_span(&mut self, position: usize) {
        let span = self.log[position];
        let agent = span.agent as usize;
        if self.log_index.len() <= agent {
            self.log_index.resize(agent + 1, Vec::new());
        }
        self.log_index[agent].push((span.seq, position as u32));
    }

    /// A copy of this document that edits as `replica` (with empty undo history). If `replica`
    /// already has operations here, the copy continues after them: no other live copy may edit
    /// as the same replica, or identifiers would repeat.
    pub fn fork(&self, replica: ReplicaId) -> Document {
        let mut copy = self.clone();
        copy.replica = replica;
        copy.agent = copy.agent_for(replica);
        copy.pending.clear();
        copy.pending_count = 0;
        copy.undo_steps.clear();
        copy.redo_steps.clear();
        copy
    }

    /// This replica's id.
    pub fn replica(&self) -> ReplicaId {
        self.replica
    }

    /// Agent index of `replica`, adding it if new.
    fn agent_for(&mut self, replica: ReplicaId) -> u32 {
        if let Some(&agent) = self.agent_index.get(&replica) {
            return agent;
        }
        let agent = self.agents.len() as u32;
        self.agents.push(replica);
        self.agent_index.insert(replica, agent);
        self.next_seq.push(0);
        self.deletes.push(Vec::new());
        agent
    }

    /// Internal identifier of a public one, if its replica is known and it fits.
    fn iid(&self, id: CharId) -> Option<Iid> {
        let agent = *self.agent_index.get(&id.replica)?;
        let seq = u32::try_from(id.seq).ok()?;
        Some(Iid { agent, seq })
    }

    /// Public identifier of an internal one.
    fn char_id(&self, id: Iid) -> Option<CharId> {
        (!id.is_none()).then(|| CharId {
            replica: self.agents[id.agent as usize],
            seq: u64::from(id.seq),
        })
    }

    /// Number of characters (Unicode code points).
    pub fn len(&self) -> u64 {
        self.tree.len()
    }

    /// Whether the document has no visible characters.
    pub fn is_empty(&self) -> bool {
        self.tree.len() == 0
    }

    /// The text.
    pub fn text(&self) -> String {
        self.tree.text()
    }

    /// The version: how many operation elements of each replica are applied.
    pub fn version(&self) -> Version {
        let mut version = Version::new();
        for (agent, &count) in self.next_seq.iter().enumerate() {
            version.set(self.agents[agent], u64::from(count));
        }
        version
    }

    /// Number of remote operations waiting for dependencies.
    pub fn pending_len(&self) -> usize {
        self.pending_count
    }

    /// Appends `len` elements of `agent` to the application log.
    fn log_elements(&mut self, agent: u32, seq: u32, len: u32) {
        if let Some(last) = self.log.last_mut()
            && last.agent == agent
            && last.seq + last.len == seq
        {
            last.len += len;
            return;
        }
        self.log.push(LogSpan { agent, seq, len });
        self.index_log_span(self.log.len() - 1);
    }

    /// Records a deletion span of `agent`, merging with the previous one when it continues it.
    fn record_delete(&mut self, agent: u32, span: DeleteSpan) {
        let spans = &mut self.deletes[agent as usize];
        if let Some(last) = spans.last_mut()
            && last.seq + last.len == span.seq
            && last.target.agent == span.target.agent
        {
            let last_forward = !last.reversed || last.len == 1;
            let span_forward = !span.reversed || span.len == 1;
            let last_backward = last.reversed || last.len == 1;
            let span_backward = span.reversed || span.len == 1;
            if last_forward && span_forward && span.target.seq == last.target.seq + last.len {
                last.reversed = false;
                last.len += span.len;
                return;
            }
            if last_backward
                && span_backward
                && span.target.seq.checked_add(last.len) == Some(last.target.seq)
            {
                last.reversed = true;
                last.len += span.len;
                return;
            }
        }
        spans.push(span);
    }

    /// Takes `count` sequence numbers for this replica.
    fn take_seq(&mut self, count: u64) -> Result<u32, EditError> {
        let seq = self.next_seq[self.agent as usize];
        let count = u32::try_from(count).map_err(|_| EditError::SequenceExhausted)?;
        seq.checked_add(count).ok_or(EditError::SequenceExhausted)?;
        Ok(seq)
    }

    /// Inserts `text` at character position `pos`.
    pub fn insert(&mut self, pos: u64, text: &str) -> Result<(), EditError> {
        let inserted = self.insert_inner(pos, text)?;
        if let Some((start, len)) = inserted
            && self.undo_limit > 0
        {
            let pos_end = pos + u64::from(len);
            self.push_undo(UndoStep::Inserted {
                start,
                len,
                pos_end,
            });
        }
        Ok(())
    }

    /// Inserts without touching undo history; returns the identifiers inserted.
    fn insert_inner(&mut self, pos: u64, text: &str) -> Result<Option<(Iid, u32)>, EditError> {
        let len = self.len();
        if pos > len {
            return Err(EditError::OutOfRange {
                start: pos,
                end: pos,
                len,
            });
        }
        if text.is_empty() {
            return Ok(None);
        }
        let chars = text.chars().count() as u64;
        let seq = self.take_seq(chars)?;
        let chars = chars as u32;
        self.tree.local_insert(pos, self.agent, seq, text, chars);
        self.next_seq[self.agent as usize] = seq + chars;
        self.log_elements(self.agent, seq, chars);
        let start = Iid {
            agent: self.agent,
            seq,
        };
        Ok(Some((start, chars)))
    }

    /// Deletes the characters in `range` (character positions).
    pub fn delete(&mut self, range: std::ops::Range<u64>) -> Result<(), EditError> {
        let len = self.len();
        if range.start > range.end || range.end > len {
            return Err(EditError::OutOfRange {
                start: range.start,
                end: range.end,
                len,
            });
        }
        if range.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        let mut pieces = Vec::new();
        if self.undo_limit > 0 {
            let mut pos = range.start;
            while pos < range.end {
                let Some(id) = self.tree.id_at_position(pos) else {
                    break;
                };
                let max = u32::try_from(range.end - pos).unwrap_or(u32::MAX);
                let Some((piece, _, _, _)) = self.tree.read_piece(id, max, &mut text) else {
                    break;
                };
                pieces.push((id, piece));
                pos += u64::from(piece);
            }
        }
        self.take_seq(range.end - range.start)?;
        // A reused buffer: deleting is frequent and usually one piece.
        let mut deleted = std::mem::take(&mut self.scratch);
        deleted.clear();
        self.tree
            .local_delete(range.start, range.end - range.start, |id, n| {
                deleted.push((id, n));
            });
        for &(target, n) in &deleted {
            self.record_local_delete(target, n);
        }
        self.scratch = deleted;
        if self.undo_limit > 0 {
            self.push_undo(UndoStep::Deleted { pieces, text });
        }
        Ok(())
    }

    /// Logs a local deletion of `n` characters from `target` (already applied to the tree).
    fn record_local_delete(&mut self, target: Iid, n: u32) {
        let seq = self.next_seq[self.agent as usize];
        self.next_seq[self.agent as usize] = seq + n;
        self.log_elements(self.agent, seq, n);
        self.record_delete(
            self.agent,
            DeleteSpan {
                seq,
                len: n,
                target,
                reversed: false,
            },
        );
    }

    /// Pushes a new local undo step (a new edit clears the redo history).
    fn push_undo(&mut self, step: UndoStep) {
        self.redo_steps.clear();
        self.push_step(step, true);
    }

    /// Pushes onto the undo (`undo == true`) or redo history, bounded by the undo limit.
    fn push_step(&mut self, step: UndoStep, undo: bool) {
        if self.undo_limit == 0 {
            return;
        }
        let steps = if undo {
            &mut self.undo_steps
        } else {
            &mut self.redo_steps
        };
        // Typing character by character is one step: a one-character insertion that continues
        // the previous insertion's identifiers merges into it. Longer insertions stand alone.
        if let (
            Some(UndoStep::Inserted {
                start,
                len,
                pos_end,
            }),
            UndoStep::Inserted {
                start: s,
                len: 1,
                pos_end: p,
            },
        ) = (steps.back_mut(), &step)
            && start.agent == s.agent
            && start.seq + *len == s.seq
            && *pos_end + 1 == *p
        {
            *len += 1;
            *pos_end = *p;
            return;
        }
        if steps.len() >= self.undo_limit {
            steps.pop_front();
        }
        steps.push_back(step);
    }

    /// Sets how many undo steps are kept (0 disables undo history, saving memory).
    pub fn set_undo_limit(&mut self, limit: usize) {
        self.undo_limit = limit;
        let excess = self.undo_steps.len().saturating_sub(limit);
        self.undo_steps.drain(..excess);
        let excess = self.redo_steps.len().saturating_sub(limit);
        self.redo_steps.drain(..excess);
    }

    /// Undoes this replica's most recent edit still in history (remote edits are untouched).
    /// Returns whether there was anything to undo.
    pub fn undo(&mut self) -> bool {
        let Some(step) = self.undo_steps.pop_back() else {
            return false;
        };
        if let Some(inverse) = self.revert(step) {
            self.push_step(inverse, false);
        }
        true
    }

    /// Redoes the most recently undone edit. Returns whether there was anything to redo.
    pub fn redo(&mut self) -> bool {
        let Some(step) = self.redo_steps.pop_back() else {
            return false;
        };
        if let Some(inverse) = self.revert(step) {
            self.push_step(inverse, true);
        }
        true
    }

    /// Applies the inverse of `step` as new local operations; returns the inverse's inverse.
    fn revert(&mut self, step: UndoStep) -> Option<UndoStep> {
        match step {
            UndoStep::Inserted { start, len, .. } => {
                let mut pieces = Vec::new();
                let mut text = String::new();
                let mut seq = start.seq;
                while seq < start.seq + len {
                    let id = Iid {
                        agent: start.agent,
                        seq,
                    };
                    let (piece, _, _, deleted) =
                        self.tree.read_piece(id, start.seq + len - seq, &mut text)?;
                    if !deleted {
                        pieces.push((id, piece));
                    }
                    seq += piece;
                }
                for &(id, piece) in &pieces {
                    if self.take_seq(u64::from(piece)).is_err() {
                        return None;
                    }
                    let mut removed = Vec::new();
                    self.tree
                        .delete_ids(id, piece, |id, n| removed.push((id, n)));
                    for (target, n) in removed {
                        self.record_local_delete(target, n);
                    }
                }
                Some(UndoStep::Deleted { pieces, text })
            }
            UndoStep::Deleted { pieces, text } => {
                let (first, _) = *pieces.first()?;
                let (pos, _) = self.tree.position_of(first)?;
                let (start, len) = self.insert_inner(pos, &text).ok().flatten()?;
                Some(UndoStep::Inserted {
                    start,
                    len,
                    pos_end: pos + u64::from(len),
                })
            }
        }
    }

    /// An anchor before the character at `pos` (at the end if `pos` is the length).
    pub fn anchor_at(&mut self, pos: u64) -> Anchor {
        let before = self
            .tree
            .id_at_position(pos)
            .and_then(|id| self.char_id(id));
        Anchor { before }
    }

    /// Current position of `anchor`: before its character, or where it was if deleted.
    /// `None` if the anchor names a character this replica has not seen.
    pub fn resolve_anchor(&mut self, anchor: &Anchor) -> Option<u64> {
        match anchor.before {
            None => Some(self.len()),
            Some(id) => {
                let id = self.iid(id)?;
                self.tree.position_of(id).map(|(pos, _)| pos)
            }
        }
    }

    /// Applies a remote operation, or holds it until its dependencies arrive. Duplicates and
    /// already-applied prefixes are ignored.
    pub fn apply(&mut self, op: Op) -> Result<(), ApplyError> {
        self.apply_and_wake(op)
    }

    /// Applies many operations (in any order), holding those whose dependencies are missing.
    /// Stops at the first invalid operation.
    pub fn apply_ops(&mut self, ops: impl IntoIterator<Item = Op>) -> Result<(), ApplyError> {
        for op in ops {
            self.apply_and_wake(op)?;
        }
        Ok(())
    }

    /// Applies `op` (or holds it), then every held operation its elements unblock, and so on.
    /// An error is returned only for `op` itself; a held operation found invalid once its
    /// dependencies arrive is dropped.
    fn apply_and_wake(&mut self, op: Op) -> Result<(), ApplyError> {
        let mut applied = Vec::new();
        if let Some(range) = self.try_apply(op)?
            && self.pending_count > 0
        {
            applied.push(range);
        }
        while let Some((replica, start, end)) = applied.pop() {
            let keys: Vec<(ReplicaId, u64)> = self
                .pending
                .range((replica, start)..(replica, end))
                .map(|(key, _)| *key)
                .collect();
            for key in keys {
                let Some(ops) = self.pending.remove(&key) else {
                    continue;
                };
                self.pending_count -= ops.len();
                for op in ops {
                    if let Ok(Some(range)) = self.try_apply(op) {
                        applied.push(range);
                    }
                }
            }
        }
        Ok(())
    }

    /// Applies `op` if its dependencies are present and returns the element range applied
    /// (replica, first, end); holds it (`None`) otherwise, or ignores it if already applied.
    fn try_apply(&mut self, op: Op) -> Result<Option<(ReplicaId, u64, u64)>, ApplyError> {
        let replica = op.id().replica;
        let agent = self.agent_for(replica);
        let next = u64::from(self.next_seq[agent as usize]);
        let start = op.id().seq;
        let len = op.len();
        if len == 0 {
            return Err(ApplyError::Invalid("empty operation"));
        }
        let end = start
            .checked_add(len)
            .filter(|&e| e <= u64::from(u32::MAX))
            .ok_or(ApplyError::Invalid("sequence number overflow"))?;
        if end <= next {
            return Ok(None);
        }
        let waiting_for = if start > next {
            Some((replica, start - 1))
        } else {
            self.missing_dependency(&op)?
        };
        if let Some(key) = waiting_for {
            if self.pending_count >= PENDING_MAX {
                return Err(ApplyError::PendingFull);
            }
            self.pending.entry(key).or_default().push(op);
            self.pending_count += 1;
            return Ok(None);
        }
        let skip = (next - start) as u32;
        match op {
            Op::Insert {
                origin_left,
                origin_right,
                text,
                ..
            } => self.apply_insert(agent, next as u32, skip, origin_left, origin_right, &text)?,
            Op::Delete {
                len,
                target,
                reversed,
                ..
            } => self.apply_delete(agent, next as u32, skip, len, target, reversed)?,
        }
        Ok(Some((replica, next, end)))
    }

    /// The element `op` still waits for, if any (an origin, or the last deletion target).
    fn missing_dependency(&self, op: &Op) -> Result<Option<(ReplicaId, u64)>, ApplyError> {
        let known = |id: &CharId| {
            self.agent_index
                .get(&id.replica)
                .is_some_and(|&a| id.seq < u64::from(self.next_seq[a as usize]))
        };
        match op {
            Op::Insert {
                origin_left,
                origin_right,
                ..
            } => Ok(origin_left
                .iter()
                .chain(origin_right)
                .find(|id| !known(id))
                .map(|id| (id.replica, id.seq))),
            Op::Delete {
                len,
                target,
                reversed,
                ..
            } => {
                let last = if *reversed {
                    target.seq.checked_sub(len - 1)
                } else {
                    target.seq.checked_add(len - 1)
                }
                .ok_or(ApplyError::Invalid("deletion targets overflow"))?;
                // Targets are one replica's contiguous elements: the highest arrives last.
                let highest = CharId {
                    replica: target.replica,
                    seq: last.max(target.seq),
                };
                Ok((!known(&highest)).then_some((highest.replica, highest.seq)))
            }
        }
    }

    /// Integrates a remote insertion from element `skip` on (earlier ones are duplicates).
    fn apply_insert(
        &mut self,
        agent: u32,
        seq: u32,
        skip: u32,
        origin_left: Option<CharId>,
        origin_right: Option<CharId>,
        text: &str,
    ) -> Result<(), ApplyError> {
        let invalid = ApplyError::Invalid("origin is not a character");
        let origin_left = if skip > 0 {
            Iid {
                agent,
                seq: seq - 1,
            }
        } else {
            match origin_left {
                Some(id) => self.iid(id).ok_or(invalid.clone())?,
                None => Iid::NONE,
            }
        };
        let origin_right = match origin_right {
            Some(id) => self.iid(id).ok_or(invalid.clone())?,
            None => Iid::NONE,
        };
        let byte = text
            .char_indices()
            .nth(skip as usize)
            .map_or(text.len(), |(b, _)| b);
        let text = &text[byte..];
        let chars = text.chars().count() as u32;
        let run = Run {
            agent,
            seq,
            len: chars,
            deleted: false,
            origin_left,
            origin_right,
        };
        let agents = &self.agents;
        if !self.tree.integrate(run, text, |a| agents[a as usize]) {
            return Err(invalid);
        }
        self.next_seq[agent as usize] = seq + chars;
        self.log_elements(agent, seq, chars);
        Ok(())
    }

    /// Applies a remote deletion from element `skip` on.
    fn apply_delete(
        &mut self,
        agent: u32,
        seq: u32,
        skip: u32,
        len: u64,
        target: CharId,
        reversed: bool,
    ) -> Result<(), ApplyError> {
        let invalid = ApplyError::Invalid("delete target is not a character");
        let len = (len - u64::from(skip)) as u32;
        let target = self.iid(target).ok_or(invalid.clone())?;
        let first = if reversed {
            target.seq - skip
        } else {
            target.seq + skip
        };
        let low = if reversed { first + 1 - len } else { first };
        let low_id = Iid {
            agent: target.agent,
            seq: low,
        };
        // `delete_ids` checks every target before changing anything.
        if !self.tree.delete_ids(low_id, len, |_, _| {}) {
            return Err(invalid);
        }
        self.next_seq[agent as usize] = seq + len;
        self.log_elements(agent, seq, len);
        self.record_delete(
            agent,
            DeleteSpan {
                seq,
                len,
                target: Iid {
                    agent: target.agent,
                    seq: first,
                },
                reversed: reversed && len > 1,
            },
        );
        Ok(())
    }

    /// Every operation this replica has applied that `since` does not include, in an order
    /// that respects causality.
    pub fn ops_since(&mut self, since: &Version) -> Vec<Op> {
        self.ops_between(since, None)
    }

    /// Like [`Document::ops_since`], but only operations included in `until` (which must be a
    /// version this replica has applied, or the union of such versions).
    pub fn ops_between(&mut self, since: &Version, until: Option<&Version>) -> Vec<Op> {
        let mut ops = Vec::new();
        // Every element since `since` lies at or after the earliest log span holding an
        // agent's first missing element.
        let mut first = self.log.len();
        for (agent, spans) in self.log_index.iter().enumerate() {
            let known = since.get(self.agents[agent]);
            let index = spans.partition_point(|&(seq, _)| u64::from(seq) <= known);
            if let Some(&(_, position)) = spans.get(index.saturating_sub(1)) {
                let span = self.log[position as usize];
                let position = if u64::from(span.seq + span.len) > known {
                    position
                } else {
                    spans.get(index).map_or(u32::MAX, |&(_, p)| p)
                };
                first = first.min(position as usize);
            }
        }
        let log = std::mem::take(&mut self.log);
        for span in log.iter().skip(first) {
            let replica = self.agents[span.agent as usize];
            let known = since.get(replica);
            let limit = until.map_or(u64::MAX, |u| u.get(replica));
            let end = (span.seq + span.len).min(u32::try_from(limit).unwrap_or(u32::MAX));
            let start = u64::from(span.seq).max(known);
            if start >= u64::from(end) {
                continue;
            }
            self.collect_ops(span.agent, start as u32, end, &mut ops);
        }
        self.log = log;
        ops
    }

    /// Appends operations for elements `[start, end)` of `agent`.
    fn collect_ops(&mut self, agent: u32, mut start: u32, end: u32, ops: &mut Vec<Op>) {
        let replica = self.agents[agent as usize];
        while start < end {
            let spans = &self.deletes[agent as usize];
            let index = spans.partition_point(|d| d.seq + d.len <= start);
            match spans.get(index) {
                Some(span) if span.seq <= start => {
                    let span = *span;
                    let skip = start - span.seq;
                    let n = (span.seq + span.len).min(end) - start;
                    // Decoding checked that every target fits; saturate rather than trust it.
                    let target_seq = if span.reversed {
                        span.target.seq.saturating_sub(skip)
                    } else {
                        span.target.seq.saturating_add(skip)
                    };
                    ops.push(Op::Delete {
                        id: CharId {
                            replica,
                            seq: u64::from(start),
                        },
                        len: u64::from(n),
                        target: CharId {
                            replica: self.agents[span.target.agent as usize],
                            seq: u64::from(target_seq),
                        },
                        reversed: span.reversed && n > 1,
                    });
                    start += n;
                }
                next => {
                    let limit = next.map_or(end, |s| s.seq.min(end));
                    start = self.collect_inserts(agent, start, limit, ops);
                }
            }
        }
    }

    /// Appends insert operations for characters `[start, limit)` of `agent`; returns `limit`
    /// (or the first element that is not a character, which is skipped).
    fn collect_inserts(
        &mut self,
        agent: u32,
        mut start: u32,
        limit: u32,
        ops: &mut Vec<Op>,
    ) -> u32 {
        let replica = self.agents[agent as usize];
        while start < limit {
            let id = Iid { agent, seq: start };
            let mut text = String::new();
            let Some((len, left, right, deleted)) =
                self.tree.read_piece(id, limit - start, &mut text)
            else {
                // Not a character: nothing to send for it.
                return start + 1;
            };
            if deleted {
                text = "\0".repeat(len as usize);
            }
            ops.push(Op::Insert {
                id: CharId {
                    replica,
                    seq: u64::from(start),
                },
                origin_left: self.char_id(left),
                origin_right: self.char_id(right),
                text,
            });
            start += len;
        }
        limit
    }

    /// Brings in everything `other` has that this replica lacks.
    pub fn merge(&mut self, other: &mut Document) -> Result<(), ApplyError> {
        let ops = other.ops_since(&self.version());
        self.apply_ops(ops)
    }
}

//! The in-memory view of the replicated log: a snapshot boundary followed by contiguous entries.

use std::collections::VecDeque;

use crate::types::{Entries, Entry, EntryPayload, LogIndex, Membership, SnapshotMeta, Term};

/// Log entries after the latest snapshot: runs of entries shared with the messages and persist
/// requests that carry them, then the entries appended one at a time since the last run was
/// sealed. The first held entry has index `snapshot.index + 1`.
#[derive(Clone, Debug, Default)]
pub struct RaftLog {
    snapshot: SnapshotMeta,
    /// Sealed runs in index order, each non-empty and continuing the previous one.
    runs: VecDeque<Run>,
    /// Entries after the last run, appended one at a time (the leader's proposals); sealed into a
    /// run when a slice of the log is taken, so a step's proposals become one shared run.
    tail: Vec<Entry>,
}

/// A sealed run of entries and the index of its first one (kept beside it so finding the run of
/// an index searches this deque, not the entries).
#[derive(Clone, Debug)]
struct Run {
    first: LogIndex,
    entries: Entries,
}

impl Run {
    fn last(&self) -> LogIndex {
        self.first + self.entries.len() as u64 - 1
    }
}

impl RaftLog {
    /// A log starting after `snapshot` with the given following entries (which must be contiguous).
    pub fn new(snapshot: SnapshotMeta, entries: Vec<Entry>) -> Self {
        let mut log = Self {
            snapshot,
            runs: VecDeque::new(),
            tail: Vec::new(),
        };
        for entry in entries {
            if entry.index == log.last_index() + 1 {
                log.tail.push(entry);
            }
        }
        log
    }

    /// The snapshot boundary: entries at or below `snapshot().index` are compacted away.
    pub fn snapshot(&self) -> &SnapshotMeta {
        &self.snapshot
    }

    /// Index of the first entry still held (snapshot index + 1).
    pub fn first_index(&self) -> LogIndex {
        self.snapshot.index + 1
    }

    /// Index of the last entry (or of the snapshot when no entries follow it).
    pub fn last_index(&self) -> LogIndex {
        self.last_entry().map_or(self.snapshot.index, |e| e.index)
    }

    /// Term of the last entry (or of the snapshot).
    pub fn last_term(&self) -> Term {
        self.last_entry().map_or(self.snapshot.term, |e| e.term)
    }

    fn last_entry(&self) -> Option<&Entry> {
        match self.tail.last() {
            Some(entry) => Some(entry),
            None => self.runs.back().and_then(|run| run.entries.last()),
        }
    }

    /// Term of the entry at `index`, known for the snapshot boundary and held entries; None otherwise.
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        self.entry(index).map(|e| e.term)
    }

    /// The entry at `index` if it is held (not compacted, not beyond the end).
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        if index <= self.snapshot.index {
            return None;
        }
        if let Some(first) = self.tail.first()
            && index >= first.index
        {
            return self.tail.get(usize::try_from(index - first.index).ok()?);
        }
        let run = self.run_of(index)?;
        run.entries.get(usize::try_from(index - run.first).ok()?)
    }

    /// The sealed run holding `index`, if any.
    fn run_of(&self, index: LogIndex) -> Option<&Run> {
        // Most lookups are of recent entries (applying, replicating): try the newest runs before
        // searching the whole deque, whose older parts are cold.
        for run in self.runs.iter().rev().take(4) {
            if run.first <= index {
                return (index <= run.last()).then_some(run);
            }
        }
        let after = self.runs.partition_point(|run| run.first <= index);
        let run = self.runs.get(after.checked_sub(1)?)?;
        (index <= run.last()).then_some(run)
    }

    /// Seals the entries appended one at a time into a shared run.
    fn seal(&mut self) {
        if let Some(first) = self.tail.first().map(|e| e.index) {
            let entries: Entries = self.tail.drain(..).collect();
            self.runs.push_back(Run { first, entries });
        }
    }

    /// Entries over `[low, high)` clipped to what is held, at most `max_bytes` (always at least one).
    /// A range inside one run shares its entries; one spanning runs is copied.
    pub fn slice(&mut self, low: LogIndex, high: LogIndex, max_bytes: usize) -> Entries {
        self.seal();
        let low = low.max(self.first_index());
        let mut high = high.min(self.last_index() + 1);
        if low >= high {
            return Entries::default();
        }
        if max_bytes != usize::MAX {
            let mut bytes = 0;
            let mut index = low;
            while index < high {
                bytes += self.entry(index).map_or(0, Entry::size_bytes);
                if index > low && bytes > max_bytes {
                    break;
                }
                index += 1;
            }
            high = index;
        }
        let Some(run) = self.run_of(low) else {
            return Entries::default();
        };
        if high - 1 <= run.last() {
            let from = (low - run.first) as usize;
            return run.entries.slice(from..(high - run.first) as usize);
        }
        (low..high)
            .map_while(|index| self.entry(index).cloned())
            .collect()
    }

    /// Removes entries at or after `index`. Callers guarantee `index` is above the commit index.
    pub fn truncate_from(&mut self, index: LogIndex) {
        if let Some(first) = self.tail.first().map(|e| e.index)
            && index >= first
        {
            self.tail
                .truncate(usize::try_from(index - first).unwrap_or(usize::MAX));
            return;
        }
        self.tail.clear();
        while self.runs.back().is_some_and(|run| run.first >= index) {
            self.runs.pop_back();
        }
        if let Some(run) = self.runs.back_mut()
            && run.last() >= index
        {
            run.entries = run.entries.slice(0..(index - run.first) as usize);
        }
    }

    /// Appends one entry that must directly follow the last one.
    pub fn push(&mut self, entry: Entry) {
        debug_assert_eq!(
            entry.index,
            self.last_index() + 1,
            "log entries must be contiguous"
        );
        self.tail.push(entry);
    }

    /// Appends a run of contiguous entries whose first must directly follow the last entry held;
    /// the log keeps the run itself, shared with whoever else holds it.
    pub fn append(&mut self, entries: Entries) {
        let Some(first) = entries.first().map(|e| e.index) else {
            return;
        };
        debug_assert_eq!(
            first,
            self.last_index() + 1,
            "log entries must be contiguous"
        );
        self.seal();
        self.runs.push_back(Run { first, entries });
    }

    /// Moves the snapshot boundary to `meta`, keeping later entries only when they continue it.
    pub fn install_snapshot(&mut self, meta: SnapshotMeta) {
        let keeps_suffix = self.term_at(meta.index) == Some(meta.term);
        if keeps_suffix {
            while self
                .runs
                .front()
                .is_some_and(|run| run.last() <= meta.index)
            {
                self.runs.pop_front();
            }
            if let Some(run) = self.runs.front_mut()
                && run.first <= meta.index
            {
                let from = (meta.index + 1 - run.first) as usize;
                run.entries = run.entries.slice(from..run.entries.len());
                run.first = meta.index + 1;
            }
            if self.runs.is_empty()
                && let Some(first) = self.tail.first().map(|e| e.index)
                && first <= meta.index
            {
                let drop = usize::try_from(meta.index + 1 - first).unwrap_or(usize::MAX);
                self.tail.drain(..drop.min(self.tail.len()));
            }
        } else {
            self.runs.clear();
            self.tail.clear();
        }
        self.snapshot = meta;
    }

    /// Every held entry, in index order.
    fn iter(&self) -> impl DoubleEndedIterator<Item = &Entry> {
        self.runs
            .iter()
            .flat_map(|run| run.entries.iter())
            .chain(self.tail.iter())
    }

    /// The configuration in force at `index`: the latest membership entry at or below it.
    pub fn membership_at(&self, index: LogIndex) -> Membership {
        self.iter()
            .rev()
            .filter(|e| e.index <= index)
            .find_map(|e| match &e.payload {
                EntryPayload::Membership(m) => Some(Membership::clone(m)),
                _ => None,
            })
            .unwrap_or_else(|| self.snapshot.membership.clone())
    }

    /// Index of the latest membership entry held, if any follows the snapshot.
    pub fn latest_membership_index(&self) -> Option<LogIndex> {
        self.iter()
            .rev()
            .find(|e| matches!(e.payload, EntryPayload::Membership(_)))
            .map(|e| e.index)
    }

    /// The last index whose entry has `term`, searching back from `from` (fast backtracking).
    pub fn last_index_of_term(&self, term: Term, from: LogIndex) -> Option<LogIndex> {
        let mut index = from.min(self.last_index());
        while index >= self.snapshot.index {
            match self.term_at(index) {
                Some(t) if t == term => return Some(index),
                Some(t) if t < term => return None,
                _ => {}
            }
            if index == 0 {
                break;
            }
            index -= 1;
        }
        None
    }

    /// The first index of the term of the entry at `index` (the follower's conflict hint).
    pub fn first_index_of_term_at(&self, index: LogIndex) -> LogIndex {
        let Some(term) = self.term_at(index) else {
            return index;
        };
        let mut first = index;
        while first > self.first_index() && self.term_at(first - 1) == Some(term) {
            first -= 1;
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Operation {
        /// Entries appended one at a time (a leader's proposals).
        Push(usize),
        /// A run appended whole (a follower's AppendEntries).
        Append(usize),
        /// A slice of the log taken (seals the pushed entries), by offsets into what is held.
        Slice(usize, usize, usize),
        /// Entries from this offset on removed.
        Truncate(usize),
        /// A snapshot covering this many held entries.
        Compact(usize),
    }

    fn operation() -> impl Strategy<Value = Operation> {
        prop_oneof![
            (1..40usize).prop_map(Operation::Push),
            (1..40usize).prop_map(Operation::Append),
            (0..80usize, 0..80usize, 1..4usize).prop_map(|(a, b, c)| Operation::Slice(a, b, c)),
            (0..80usize).prop_map(Operation::Truncate),
            (0..60usize).prop_map(Operation::Compact),
        ]
    }

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            term,
            index,
            payload: EntryPayload::Command {
                client_id: 1,
                sequence: index,
                command: vec![7; 8].into(),
            },
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// The log holds exactly what one vector after the snapshot would, whatever mix of single
        /// pushes, shared runs, slices (which seal), truncations and compactions built it.
        #[test]
        fn log_behaves_like_a_vector(operations in proptest::collection::vec(operation(), 1..24)) {
            let mut log = RaftLog::default();
            let mut model: Vec<Entry> = Vec::new();
            let mut snapshot = SnapshotMeta::default();
            let mut term = 1;
            for operation in operations {
                let next = model.last().map_or(snapshot.index, |e| e.index) + 1;
                match operation {
                    Operation::Push(count) => {
                        for index in next..next + count as u64 {
                            log.push(entry(index, term));
                            model.push(entry(index, term));
                        }
                    }
                    Operation::Append(count) => {
                        let run: Vec<Entry> =
                            (next..next + count as u64).map(|i| entry(i, term)).collect();
                        model.extend(run.iter().cloned());
                        log.append(run.into());
                    }
                    Operation::Slice(from, len, per_entry_budget) => {
                        let low = snapshot.index + 1 + from as u64;
                        let high = low + len as u64;
                        // A byte budget of a few entries (each is 48 bytes by `size_bytes`).
                        let budget = per_entry_budget * 48;
                        let sliced = log.slice(low, high, budget);
                        let expected: Vec<&Entry> = model
                            .iter()
                            .filter(|e| e.index >= low && e.index < high)
                            .take(per_entry_budget)
                            .collect();
                        prop_assert!(sliced.iter().eq(expected.iter().copied()));
                        let all = log.slice(0, u64::MAX, usize::MAX);
                        prop_assert!(all.iter().eq(model.iter()));
                    }
                    Operation::Truncate(offset) => {
                        let from = snapshot.index + 1 + offset as u64;
                        log.truncate_from(from);
                        model.retain(|e| e.index < from);
                        term += 1; // later entries come from a newer leader
                    }
                    Operation::Compact(count) => {
                        let Some(last) = model.get(count.min(model.len().saturating_sub(1))) else {
                            continue;
                        };
                        let meta = SnapshotMeta {
                            index: last.index,
                            term: last.term,
                            membership: Membership::default(),
                        };
                        model.retain(|e| e.index > meta.index);
                        snapshot = meta.clone();
                        log.install_snapshot(meta);
                    }
                }
                prop_assert_eq!(log.first_index(), snapshot.index + 1);
                prop_assert_eq!(log.last_index(), model.last().map_or(snapshot.index, |e| e.index));
                prop_assert_eq!(log.last_term(), model.last().map_or(snapshot.term, |e| e.term));
                prop_assert!(log.iter().eq(model.iter()));
                prop_assert!(log.iter().rev().eq(model.iter().rev()));
                for index in 0..=log.last_index() + 2 {
                    let expected = model.iter().find(|e| e.index == index);
                    prop_assert_eq!(log.entry(index), expected);
                }
            }
        }
    }

    #[test]
    fn a_slice_inside_one_run_shares_its_entries() {
        let mut log = RaftLog::default();
        for index in 1..=10 {
            log.push(entry(index, 1));
        }
        let whole = log.slice(1, 11, usize::MAX);
        let part = log.slice(3, 6, usize::MAX);
        assert_eq!(part.len(), 3);
        assert!(std::ptr::eq(&part[0], &whole[2]), "same buffer, not a copy");
    }
}

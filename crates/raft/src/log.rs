//! The in-memory view of the replicated log: a snapshot boundary followed by contiguous entries.

use crate::types::{Entry, EntryPayload, LogIndex, Membership, SnapshotMeta, Term};

/// Log entries after the latest snapshot; `entries[0].index == snapshot.index + 1`.
#[derive(Clone, Debug, Default)]
pub struct RaftLog {
    snapshot: SnapshotMeta,
    entries: Vec<Entry>,
}

impl RaftLog {
    /// A log starting after `snapshot` with the given following entries (which must be contiguous).
    pub fn new(snapshot: SnapshotMeta, entries: Vec<Entry>) -> Self {
        let mut log = Self {
            snapshot,
            entries: Vec::new(),
        };
        for entry in entries {
            if entry.index == log.last_index() + 1 {
                log.entries.push(entry);
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
        self.entries.last().map_or(self.snapshot.index, |e| e.index)
    }

    /// Term of the last entry (or of the snapshot).
    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(self.snapshot.term, |e| e.term)
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
        self.entries
            .get(usize::try_from(index - self.snapshot.index - 1).ok()?)
    }

    /// Entries over `[low, high)` clipped to what is held, at most `max_bytes` (always at least one).
    pub fn slice(&self, low: LogIndex, high: LogIndex, max_bytes: usize) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut index = low.max(self.first_index());
        while index < high.min(self.last_index() + 1) {
            let Some(entry) = self.entry(index) else {
                break;
            };
            bytes += entry.size_bytes();
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(entry.clone());
            index += 1;
        }
        out
    }

    /// Removes entries at or after `index`. Callers guarantee `index` is above the commit index.
    pub fn truncate_from(&mut self, index: LogIndex) {
        let keep = index.saturating_sub(self.snapshot.index + 1);
        self.entries
            .truncate(usize::try_from(keep).unwrap_or(usize::MAX));
    }

    /// Appends one entry that must directly follow the last one.
    pub fn push(&mut self, entry: Entry) {
        debug_assert_eq!(
            entry.index,
            self.last_index() + 1,
            "log entries must be contiguous"
        );
        self.entries.push(entry);
    }

    /// Moves the snapshot boundary to `meta`, keeping later entries only when they continue it.
    pub fn install_snapshot(&mut self, meta: SnapshotMeta) {
        let keeps_suffix = self.term_at(meta.index) == Some(meta.term);
        if keeps_suffix {
            let drop = usize::try_from(meta.index - self.snapshot.index).unwrap_or(usize::MAX);
            self.entries.drain(..drop.min(self.entries.len()));
        } else {
            self.entries.clear();
        }
        self.snapshot = meta;
    }

    /// The configuration in force at `index`: the latest membership entry at or below it.
    pub fn membership_at(&self, index: LogIndex) -> Membership {
        self.entries
            .iter()
            .rev()
            .filter(|e| e.index <= index)
            .find_map(|e| match &e.payload {
                EntryPayload::Membership(m) => Some(m.clone()),
                _ => None,
            })
            .unwrap_or_else(|| self.snapshot.membership.clone())
    }

    /// Index of the latest membership entry held, if any follows the snapshot.
    pub fn latest_membership_index(&self) -> Option<LogIndex> {
        self.entries
            .iter()
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

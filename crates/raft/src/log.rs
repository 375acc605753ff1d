//! The in-memory view of the replicated log: a snapshot boundary followed by contiguous entries.

use crate::types::{Entry, EntryPayload, LogIndex, Membership, SnapshotMeta, Term};

/// Log entries after the latest snapshot; `entries[0].index == snapshot.index + 1`.
#[derive(Clone, Debug, Default)]
pub struct RaftLog {
    snapshot: SnapshotMeta,
    entries: Chunks,
}

/// Entries per chunk of the in-memory log.
const CHUNK_ENTRIES: usize = 4096;

/// A sequence of entries stored in fixed-size chunks, so an ever-growing log never reallocates
/// and copies what it holds (a single vector moves every entry each time it doubles), and
/// dropping a compacted prefix frees whole chunks.
#[derive(Clone, Debug, Default)]
struct Chunks {
    /// Chunk `k` covers positions `k * CHUNK_ENTRIES - skipped ..`; every chunk but the last is
    /// full, and the first starts `skipped` slots in (the part a snapshot compacted away).
    chunks: std::collections::VecDeque<Vec<Entry>>,
    skipped: usize,
    len: usize,
}

impl Chunks {
    /// (chunk, slot in that chunk's vector) of position `position`.
    fn locate(&self, position: usize) -> (usize, usize) {
        let slot = position + self.skipped;
        let chunk = slot / CHUNK_ENTRIES;
        let first_chunk_start = if chunk == 0 { self.skipped } else { 0 };
        (chunk, slot % CHUNK_ENTRIES - first_chunk_start)
    }

    fn get(&self, position: usize) -> Option<&Entry> {
        if position >= self.len {
            return None;
        }
        let (chunk, slot) = self.locate(position);
        self.chunks.get(chunk)?.get(slot)
    }

    fn last(&self) -> Option<&Entry> {
        self.chunks.back()?.last()
    }

    fn push(&mut self, entry: Entry) {
        let capacity = |chunk: usize, skipped: usize| {
            if chunk == 0 {
                CHUNK_ENTRIES - skipped
            } else {
                CHUNK_ENTRIES
            }
        };
        let last_chunk = self.chunks.len().wrapping_sub(1);
        let full = self
            .chunks
            .back()
            .is_none_or(|chunk| chunk.len() >= capacity(last_chunk, self.skipped));
        if full {
            let chunk = self.chunks.len();
            self.chunks
                .push_back(Vec::with_capacity(capacity(chunk, self.skipped)));
        }
        if let Some(chunk) = self.chunks.back_mut() {
            chunk.push(entry);
            self.len += 1;
        }
    }

    /// Keeps the first `len` entries.
    fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        if len == 0 {
            return self.clear();
        }
        let (chunk, slot) = self.locate(len);
        self.chunks.truncate(chunk + 1);
        if let Some(last) = self.chunks.back_mut() {
            last.truncate(slot);
            if last.is_empty() {
                self.chunks.pop_back();
            }
        }
        self.len = len;
    }

    /// Removes the first `count` entries.
    fn drop_front(&mut self, count: usize) {
        if count >= self.len {
            return self.clear();
        }
        let mut skipped = self.skipped + count;
        let mut first_start = self.skipped;
        while skipped >= CHUNK_ENTRIES {
            self.chunks.pop_front();
            skipped -= CHUNK_ENTRIES;
            first_start = 0;
        }
        if let Some(first) = self.chunks.front_mut() {
            first.drain(..skipped - first_start);
        }
        self.skipped = skipped;
        self.len -= count;
    }

    fn clear(&mut self) {
        self.chunks.clear();
        self.skipped = 0;
        self.len = 0;
    }

    fn iter(&self) -> impl DoubleEndedIterator<Item = &Entry> {
        self.chunks.iter().flat_map(|chunk| chunk.iter())
    }
}

impl RaftLog {
    /// A log starting after `snapshot` with the given following entries (which must be contiguous).
    pub fn new(snapshot: SnapshotMeta, entries: Vec<Entry>) -> Self {
        let mut log = Self {
            snapshot,
            entries: Chunks::default(),
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
        let mut index = low.max(self.first_index());
        let end = high.min(self.last_index() + 1);
        let mut out = Vec::with_capacity(usize::try_from(end.saturating_sub(index)).unwrap_or(0));
        let mut bytes = 0;
        while index < end {
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
            self.entries.drop_front(drop);
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
                EntryPayload::Membership(m) => Some(Membership::clone(m)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Operation {
        Push(usize),
        Truncate(usize),
        DropFront(usize),
    }

    fn operation() -> impl Strategy<Value = Operation> {
        prop_oneof![
            (1..CHUNK_ENTRIES * 2).prop_map(Operation::Push),
            (0..CHUNK_ENTRIES * 3).prop_map(Operation::Truncate),
            (0..CHUNK_ENTRIES * 2).prop_map(Operation::DropFront),
        ]
    }

    fn entry(index: u64) -> Entry {
        Entry {
            term: 1,
            index,
            payload: EntryPayload::Noop,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// The chunked store holds exactly what one vector would after any pushes, truncations
        /// and prefix drops, across chunk boundaries.
        #[test]
        fn chunks_behave_like_a_vector(operations in proptest::collection::vec(operation(), 1..12)) {
            let mut chunks = Chunks::default();
            let mut model: Vec<Entry> = Vec::new();
            let mut next = 0;
            for operation in operations {
                match operation {
                    Operation::Push(count) => {
                        for _ in 0..count {
                            next += 1;
                            chunks.push(entry(next));
                            model.push(entry(next));
                        }
                    }
                    Operation::Truncate(len) => {
                        chunks.truncate(len);
                        model.truncate(len);
                    }
                    Operation::DropFront(count) => {
                        chunks.drop_front(count);
                        model.drain(..count.min(model.len()));
                    }
                }
                prop_assert_eq!(chunks.len, model.len());
                prop_assert_eq!(chunks.last(), model.last());
                prop_assert!(chunks.iter().eq(model.iter()));
                prop_assert!(chunks.iter().rev().eq(model.iter().rev()));
                for position in [0, 1, model.len() / 2, model.len().saturating_sub(1), model.len()] {
                    prop_assert_eq!(chunks.get(position), model.get(position));
                }
            }
        }
    }
}

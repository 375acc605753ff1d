//! The run tree: the document as runs of characters in document order, grouped into leaves.
//!
//! Two levels: a vector of leaves in document order, each leaf a short vector of runs plus the
//! visible text of those runs. Positions are found by summing per-leaf visible counts from a
//! cached cursor (edits are local in real traces, so this walk is short), and characters are
//! found by identifier through a piecewise-constant map from (agent, sequence number) to the
//! leaf holding it.

use std::collections::BTreeMap;

/// Agent index meaning "no character" (the document's start or end).
pub(crate) const NO_AGENT: u32 = u32::MAX;
/// A leaf splits when it holds more runs than this.
const LEAF_RUNS_MAX: usize = 32;
/// A leaf splits when its visible text exceeds this many bytes.
const LEAF_TEXT_BYTES_MAX: usize = 2048;

/// Internal identifier of one character: agent index in this document and sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Iid {
    /// Index into the document's agent table, or `NO_AGENT`.
    pub agent: u32,
    /// Sequence number of the character within its agent's operations.
    pub seq: u32,
}

impl Iid {
    /// The absent identifier (document start for a left origin, end for a right origin).
    pub const NONE: Iid = Iid {
        agent: NO_AGENT,
        seq: 0,
    };

    /// Whether this is the absent identifier.
    pub fn is_none(self) -> bool {
        self.agent == NO_AGENT
    }
}

/// A run of characters inserted by one agent with consecutive sequence numbers, each one
/// typed right after the previous (its left origin), all with the same right origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    /// Agent index of every character in the run.
    pub agent: u32,
    /// Sequence number of the first character.
    pub seq: u32,
    /// Number of characters.
    pub len: u32,
    /// Whether the characters are deleted (tombstones).
    pub deleted: bool,
    /// Left origin of the first character; later characters' left origin is their predecessor.
    pub origin_left: Iid,
    /// Right origin shared by every character of the run.
    pub origin_right: Iid,
}

impl Run {
    /// Number of visible characters.
    pub fn visible(&self) -> u32 {
        if self.deleted { 0 } else { self.len }
    }

    /// Identifier of the character at `offset`.
    pub fn id_at(&self, offset: u32) -> Iid {
        Iid {
            agent: self.agent,
            seq: self.seq + offset,
        }
    }

    /// Identifier of the last character.
    pub fn last_id(&self) -> Iid {
        self.id_at(self.len - 1)
    }

    /// Whether `id` falls inside this run.
    pub fn contains(&self, id: Iid) -> bool {
        // One unsigned comparison: another agent's key differs by at least 2^32 > len.
        index_key(id.agent, id.seq).wrapping_sub(index_key(self.agent, self.seq))
            < u64::from(self.len)
    }

    /// Splits off characters `[offset, len)` into a new run; `self` keeps `[0, offset)`.
    pub fn split_off(&mut self, offset: u32) -> Run {
        debug_assert!(offset > 0 && offset < self.len);
        let right = Run {
            agent: self.agent,
            seq: self.seq + offset,
            len: self.len - offset,
            deleted: self.deleted,
            origin_left: self.id_at(offset - 1),
            origin_right: self.origin_right,
        };
        self.len = offset;
        right
    }

    /// Whether `next` continues this run exactly (so the two can be one run).
    pub fn can_append(&self, next: &Run) -> bool {
        next.agent == self.agent
            && next.seq == self.seq + self.len
            && next.deleted == self.deleted
            && next.origin_left == self.last_id()
            && next.origin_right == self.origin_right
    }
}

/// A leaf: runs in document order and their visible text.
#[derive(Clone, Debug, Default)]
pub(crate) struct Leaf {
    /// Runs in document order; never empty except in an empty document.
    pub runs: Vec<Run>,
    /// Visible characters of `runs`, in order.
    pub text: String,
    /// Number of visible characters (code points) in `text`.
    pub visible: u32,
}

impl Leaf {
    /// Byte offset in `text` of visible character `chars`.
    fn byte_offset(&self, chars: u32) -> usize {
        if self.text.len() == self.visible as usize {
            // Every character is one byte: ASCII fast path.
            return chars as usize;
        }
        skip_chars(&self.text, 0, chars as usize)
    }

    /// Number of visible characters before run `run_index`.
    fn visible_before(&self, run_index: usize) -> u32 {
        self.runs[..run_index].iter().map(Run::visible).sum()
    }
}

/// A place between runs: before run `run` of the leaf at document-order index `order`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Slot {
    /// Index of the leaf in document order.
    pub order: usize,
    /// Index of the run within the leaf (may equal the number of runs: the leaf's end).
    pub run: usize,
}

/// The whole sequence: leaves in document order plus indexes.
#[derive(Clone, Debug)]
pub(crate) struct Tree {
    /// Leaf storage by leaf id.
    leaves: Vec<Leaf>,
    /// Leaf ids in document order.
    order: Vec<u32>,
    /// Visible characters per leaf, aligned with `order`.
    order_visible: Vec<u32>,
    /// Leaf id to document-order index; valid below `positions_dirty_from`.
    leaf_order: Vec<u32>,
    /// First document-order index whose `leaf_order` entry may be stale.
    positions_dirty_from: usize,
    /// Piecewise-constant map: from (agent, seq) onward, characters live in this leaf.
    index: BTreeMap<u64, u32>,
    /// Cached (order index, visible characters before that leaf) from the last position lookup.
    cursor: (usize, u64),
    /// Visible characters in the document.
    total_visible: u64,
    /// Per agent: one past the highest character sequence number in the tree.
    seq_end: Vec<u32>,
    /// Per agent: the leaf its highest index entry maps to (where its newest ids start).
    index_last: Vec<u32>,
    /// Where the last local insertion ended, while nothing else has changed since.
    typing: Option<Typing>,
    /// Leaf of the most recent identifier lookup.
    recent_leaf: u32,
    /// A known (leaf id, visible character, byte offset) triple, so converting a character
    /// index near the last edit to a byte offset scans only the distance between them.
    byte_hint: (u32, u32, usize),
}

/// The end of the last local insertion: typing on from here extends that run in place.
#[derive(Clone, Copy, Debug)]
struct Typing {
    /// Document-order index of the leaf.
    order: usize,
    /// Run index within the leaf.
    run: usize,
    /// Visible position just after the inserted text.
    pos: u64,
    /// Byte offset in the leaf's text just after the inserted text.
    byte: usize,
}

impl Default for Tree {
    fn default() -> Self {
        Tree {
            leaves: vec![Leaf::default()],
            order: vec![0],
            order_visible: vec![0],
            leaf_order: vec![0],
            positions_dirty_from: 1,
            index: BTreeMap::new(),
            cursor: (0, 0),
            total_visible: 0,
            seq_end: Vec::new(),
            index_last: Vec::new(),
            typing: None,
            recent_leaf: 0,
            byte_hint: (u32::MAX, 0, 0),
        }
    }
}

impl Tree {
    /// Number of visible characters.
    pub fn len(&self) -> u64 {
        self.total_visible
    }

    /// The visible text.
    pub fn text(&self) -> String {
        let bytes = self
            .order
            .iter()
            .map(|&l| self.leaves[l as usize].text.len())
            .sum();
        let mut out = String::with_capacity(bytes);
        for &leaf in &self.order {
            out.push_str(&self.leaves[leaf as usize].text);
        }
        out
    }

    /// Every run in document order.
    pub fn runs(&self) -> impl Iterator<Item = &Run> + '_ {
        self.order
            .iter()
            .flat_map(move |&l| self.leaves[l as usize].runs.iter())
    }

    /// Builds a tree from runs in document order and their visible text (used by decoding).
    /// Fails if two runs share an identifier.
    pub fn from_runs(runs: Vec<Run>, text: &str) -> Result<Tree, &'static str> {
        let mut tree = Tree {
            leaves: Vec::new(),
            order: Vec::new(),
            order_visible: Vec::new(),
            leaf_order: Vec::new(),
            positions_dirty_from: 0,
            index: BTreeMap::new(),
            cursor: (0, 0),
            total_visible: 0,
            seq_end: Vec::new(),
            index_last: Vec::new(),
            typing: None,
            recent_leaf: 0,
            byte_hint: (u32::MAX, 0, 0),
        };
        let ascii = text.is_ascii();
        let mut byte_start = 0usize;
        // (index key, run length, leaf): sorted once, both to check that no identifier is in
        // two runs and to bulk-build the index.
        let mut entries: Vec<(u64, u32, u32)> = Vec::with_capacity(runs.len());
        let mut leaf = Leaf::default();
        for run in runs {
            if leaf.runs.len() >= LEAF_RUNS_MAX / 2 || leaf.text.len() >= LEAF_TEXT_BYTES_MAX / 2 {
                tree.push_leaf(std::mem::take(&mut leaf));
            }
            entries.push((
                index_key(run.agent, run.seq),
                run.len,
                tree.leaves.len() as u32,
            ));
            tree.note_seq_end(&run);
            let visible = run.visible();
            if visible > 0 {
                let end = if ascii {
                    (byte_start + visible as usize).min(text.len())
                } else {
                    skip_chars(text, byte_start, visible as usize)
                };
                leaf.text.push_str(&text[byte_start..end]);
                byte_start = end;
                leaf.visible += visible;
            }
            leaf.runs.push(run);
        }
        if !leaf.runs.is_empty() || tree.leaves.is_empty() {
            tree.push_leaf(leaf);
        }
        tree.positions_dirty_from = tree.order.len();
        entries.sort_unstable_by_key(|e| e.0);
        for pair in entries.windows(2) {
            if pair[1].0 < pair[0].0 + u64::from(pair[0].1) && pair[1].0 >> 32 == pair[0].0 >> 32 {
                return Err("overlapping runs");
            }
        }
        entries.dedup_by(|next, prev| next.0 >> 32 == prev.0 >> 32 && next.2 == prev.2);
        tree.index = entries
            .into_iter()
            .map(|(key, _, leaf)| (key, leaf))
            .collect();
        for agent in 0..tree.seq_end.len() {
            tree.refresh_index_last(agent as u32);
        }
        Ok(tree)
    }
}

/// Byte offset reached by skipping `chars` characters of `text` from byte `from`. Counts
/// character starts eight bytes at a time (a UTF-8 continuation byte is `10xxxxxx`), so
/// non-ASCII text costs little more than ASCII.
fn skip_chars(text: &str, from: usize, chars: usize) -> usize {
    let bytes = &text.as_bytes()[from..];
    let mut seen = 0usize;
    let mut offset = 0usize;
    for chunk in bytes.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let continuation = word & !(word << 1) & 0x8080_8080_8080_8080;
        let starts = 8 - continuation.count_ones() as usize;
        if seen + starts > chars {
            break;
        }
        seen += starts;
        offset += 8;
    }
    for (i, &byte) in bytes[offset..].iter().enumerate() {
        if (byte as i8) >= -0x40 {
            if seen == chars {
                return from + offset + i;
            }
            seen += 1;
        }
    }
    text.len()
}

/// Byte offset reached by going back `chars` characters of `text` from byte `from`.
fn skip_chars_back(text: &str, from: usize, chars: usize) -> usize {
    if chars == 0 {
        return from;
    }
    let mut seen = 0usize;
    for (i, &byte) in text.as_bytes()[..from].iter().enumerate().rev() {
        if (byte as i8) >= -0x40 {
            seen += 1;
            if seen == chars {
                return i;
            }
        }
    }
    0
}

/// Key of the identifier index: agent in the high half, sequence number in the low half.
fn index_key(agent: u32, seq: u32) -> u64 {
    u64::from(agent) << 32 | u64::from(seq)
}

/// Sort key of a left origin: `None` (document start) sorts before every character.
pub(crate) type LeftKey = Option<(usize, usize, u32)>;
/// Sort key of a right origin: the document end sorts after every character.
pub(crate) type RightKey = (usize, usize, u32);

impl Tree {
    /// Appends a leaf at the end of the document order (used while building).
    fn push_leaf(&mut self, leaf: Leaf) {
        let id = self.leaves.len() as u32;
        self.leaf_order.push(self.order.len() as u32);
        self.order.push(id);
        self.order_visible.push(leaf.visible);
        self.total_visible += u64::from(leaf.visible);
        self.leaves.push(leaf);
    }

    /// Leaf (by order index) containing visible position `pos`, and visible chars before it.
    fn find_leaf(&mut self, pos: u64) -> (usize, u64) {
        let (mut k, mut base) = self.cursor;
        if k >= self.order.len() || base > self.total_visible {
            (k, base) = (0, 0);
        }
        while pos < base && k > 0 {
            k -= 1;
            base -= u64::from(self.order_visible[k]);
        }
        let last = self.order.len() - 1;
        while k < last && pos >= base + u64::from(self.order_visible[k]) {
            base += u64::from(self.order_visible[k]);
            k += 1;
        }
        self.cursor = (k, base);
        (k, base)
    }

    /// Run index and offset of visible character `visible_index` of a leaf, or the leaf's end.
    fn locate_visible(leaf: &Leaf, mut visible_index: u32) -> (usize, u32) {
        for (i, run) in leaf.runs.iter().enumerate() {
            if !run.deleted {
                if visible_index < run.len {
                    return (i, visible_index);
                }
                visible_index -= run.len;
            }
        }
        (leaf.runs.len(), 0)
    }

    /// Raises the agent's known sequence end to cover `run`.
    fn note_seq_end(&mut self, run: &Run) {
        let agent = run.agent as usize;
        if self.seq_end.len() <= agent {
            self.seq_end.resize(agent + 1, 0);
        }
        self.seq_end[agent] = self.seq_end[agent].max(run.seq + run.len);
    }

    /// Byte offset of visible character `chars` in leaf `leaf_id`'s text, scanning from the
    /// byte hint when it is in the same leaf.
    fn leaf_byte(&self, leaf_id: u32, chars: u32) -> usize {
        let leaf = &self.leaves[leaf_id as usize];
        if leaf.text.len() == leaf.visible as usize {
            return chars as usize;
        }
        let (hint_leaf, hint_chars, hint_byte) = self.byte_hint;
        if hint_leaf == leaf_id {
            if chars >= hint_chars {
                return skip_chars(&leaf.text, hint_byte, (chars - hint_chars) as usize);
            }
            if hint_chars - chars < chars {
                return skip_chars_back(&leaf.text, hint_byte, (hint_chars - chars) as usize);
            }
        }
        skip_chars(&leaf.text, 0, chars as usize)
    }

    /// Recomputes stale leaf-to-order positions.
    fn ensure_positions(&mut self) {
        for i in self.positions_dirty_from..self.order.len() {
            self.leaf_order[self.order[i] as usize] = i as u32;
        }
        self.positions_dirty_from = self.order.len();
    }

    /// Leaf id the index maps `(agent, seq)` to.
    fn index_floor(&self, agent: u32, seq: u32) -> Option<u32> {
        // A one-sided range descends the tree once; check the entry is this agent's.
        let (&key, &leaf) = self.index.range(..=index_key(agent, seq)).next_back()?;
        (key >> 32 == u64::from(agent)).then_some(leaf)
    }

    /// Records that characters `[seq, ...)` of `agent` start in `leaf` (new identifiers only,
    /// so the floor entry is the agent's highest, whose leaf `index_last` caches).
    fn index_set_start(&mut self, agent: u32, seq: u32, leaf: u32) {
        let slot = agent as usize;
        if self.index_last.len() <= slot {
            self.index_last.resize(slot + 1, u32::MAX);
        }
        if self.index_last[slot] != leaf {
            self.index.insert(index_key(agent, seq), leaf);
            self.index_last[slot] = leaf;
        }
    }

    /// Re-reads the cached leaf of `agent`'s highest index entry.
    fn refresh_index_last(&mut self, agent: u32) {
        let slot = agent as usize;
        if self.index_last.len() <= slot {
            self.index_last.resize(slot + 1, u32::MAX);
        }
        self.index_last[slot] = self.index_floor(agent, u32::MAX).unwrap_or(u32::MAX);
    }

    /// Records that characters `[start, end)` of `agent` now live in `leaf`.
    fn index_set_range(&mut self, agent: u32, start: u32, end: u32, leaf: u32) {
        let covered = self.index_floor(agent, start) == Some(leaf)
            && self
                .index
                .range(index_key(agent, start + 1)..index_key(agent, end))
                .next()
                .is_none();
        if covered {
            return;
        }
        let after = self.index_floor(agent, end);
        let inner = index_key(agent, start + 1)..index_key(agent, end);
        while let Some((&key, _)) = self.index.range(inner.clone()).next() {
            self.index.remove(&key);
        }
        self.index.insert(index_key(agent, start), leaf);
        let known = self.seq_end.get(agent as usize).is_some_and(|&e| end < e);
        if let (Some(after), true) = (after, known) {
            self.index.entry(index_key(agent, end)).or_insert(after);
        }
        self.refresh_index_last(agent);
    }

    /// Location (order index, run index, offset) of character `id`.
    pub fn locate_id(&mut self, id: Iid) -> Option<(usize, usize, u32)> {
        // Lookups cluster (a deletion's pieces, an integration's neighbours): try the leaf of
        // the previous lookup before the index.
        let recent = self.recent_leaf as usize;
        let (leaf, run_index) = match self
            .leaves
            .get(recent)
            .and_then(|l| l.runs.iter().position(|r| r.contains(id)))
        {
            Some(run_index) => (recent as u32, run_index),
            None => {
                let leaf = self.index_floor(id.agent, id.seq)?;
                let runs = &self.leaves[leaf as usize].runs;
                (leaf, runs.iter().position(|r| r.contains(id))?)
            }
        };
        self.recent_leaf = leaf;
        let runs = &self.leaves[leaf as usize].runs;
        let offset = id.seq - runs[run_index].seq;
        self.ensure_positions();
        Some((self.leaf_order[leaf as usize] as usize, run_index, offset))
    }

    /// The run holding location `(order, run)`.
    fn run_at(&self, order: usize, run: usize) -> &Run {
        &self.leaves[self.order[order] as usize].runs[run]
    }

    /// Identifier of the character just before slot `(order, run)`.
    fn id_before(&self, order: usize, run: usize) -> Iid {
        if run > 0 {
            return self.run_at(order, run - 1).last_id();
        }
        (0..order)
            .rev()
            .find_map(|k| self.leaves[self.order[k] as usize].runs.last())
            .map_or(Iid::NONE, Run::last_id)
    }

    /// The next run at or after slot `(order, run)`, skipping leaf ends.
    fn normalize(&self, mut order: usize, run: usize) -> Option<Slot> {
        if run < self.leaves[self.order[order] as usize].runs.len() {
            return Some(Slot { order, run });
        }
        while order + 1 < self.order.len() {
            order += 1;
            if !self.leaves[self.order[order] as usize].runs.is_empty() {
                return Some(Slot { order, run: 0 });
            }
        }
        None
    }

    /// Inserts `run` (visible, `text` its characters) before run `run_index` of leaf `order`,
    /// where `chars_before` visible characters of the leaf precede it.
    fn insert_run(
        &mut self,
        order: usize,
        run_index: usize,
        run: Run,
        text: &str,
        chars_before: u32,
    ) {
        self.typing = None;
        let leaf_id = self.order[order];
        let byte = self.leaf_byte(leaf_id, chars_before);
        self.byte_hint = (leaf_id, chars_before + run.len, byte + text.len());
        let leaf = &mut self.leaves[leaf_id as usize];
        leaf.text.insert_str(byte, text);
        leaf.visible += run.len;
        let extended = run_index > 0 && leaf.runs[run_index - 1].can_append(&run);
        if extended {
            leaf.runs[run_index - 1].len += run.len;
        } else {
            leaf.runs.insert(run_index, run);
        }
        let split = leaf.runs.len() > LEAF_RUNS_MAX || leaf.text.len() > LEAF_TEXT_BYTES_MAX;
        self.order_visible[order] += run.len;
        self.total_visible += u64::from(run.len);
        if self.cursor.0 > order {
            self.cursor.1 += u64::from(run.len);
        }
        if !extended {
            self.index_set_start(run.agent, run.seq, leaf_id);
        }
        self.note_seq_end(&run);
        if split {
            self.split_leaf(order);
        }
    }

    /// Splits an over-full leaf in two.
    fn split_leaf(&mut self, order: usize) {
        self.typing = None;
        self.byte_hint.0 = u32::MAX;
        let leaf_id = self.order[order] as usize;
        let leaf = &mut self.leaves[leaf_id];
        let middle = if leaf.runs.len() > LEAF_RUNS_MAX {
            leaf.runs.len() / 2
        } else {
            let (run_index, offset) = Self::locate_visible(leaf, leaf.visible / 2);
            if offset > 0 {
                let right = leaf.runs[run_index].split_off(offset);
                leaf.runs.insert(run_index + 1, right);
                run_index + 1
            } else {
                run_index
            }
        };
        if middle == 0 || middle >= leaf.runs.len() {
            return;
        }
        let right_runs = leaf.runs.split_off(middle);
        let right_visible: u32 = right_runs.iter().map(Run::visible).sum();
        let left_visible = leaf.visible - right_visible;
        let byte = leaf.byte_offset(left_visible);
        let right_text = leaf.text[byte..].to_owned();
        leaf.text.truncate(byte);
        leaf.visible = left_visible;
        let new_id = self.leaves.len() as u32;
        // Group moved runs into ranges of consecutive identifiers: deletes split runs without
        // breaking identifier continuity, so this keeps index updates few.
        let mut ranges: Vec<(u32, u32, u32)> = Vec::new();
        for run in &right_runs {
            match ranges.last_mut() {
                Some(last) if last.0 == run.agent && last.2 == run.seq => last.2 += run.len,
                _ => ranges.push((run.agent, run.seq, run.seq + run.len)),
            }
        }
        self.leaves.push(Leaf {
            runs: right_runs,
            text: right_text,
            visible: right_visible,
        });
        self.leaf_order.push(0);
        self.order.insert(order + 1, new_id);
        self.order_visible[order] = left_visible;
        self.order_visible.insert(order + 1, right_visible);
        self.positions_dirty_from = self.positions_dirty_from.min(order + 1);
        if self.cursor.0 > order {
            self.cursor.0 += 1;
        }
        for (agent, start, end) in ranges {
            self.index_set_range(agent, start, end, new_id);
        }
    }

    /// Inserts a local run at visible position `pos` (before the character there, after any
    /// tombstones before it). Returns nothing; origins are chosen here.
    pub fn local_insert(&mut self, pos: u64, agent: u32, seq: u32, text: &str, chars: u32) {
        if self.try_extend_typing(pos, agent, seq, text, chars) {
            return;
        }
        let (order, base) = self.find_leaf(pos);
        let leaf_id = self.order[order] as usize;
        let within = (pos - base) as u32;
        let (mut run_index, offset) = Self::locate_visible(&self.leaves[leaf_id], within);
        let (origin_left, origin_right) = if offset > 0 {
            let run = &self.leaves[leaf_id].runs[run_index];
            (run.id_at(offset - 1), run.id_at(offset))
        } else {
            let right = match self.normalize(order, run_index) {
                Some(slot) => self.run_at(slot.order, slot.run).id_at(0),
                None => Iid::NONE,
            };
            (self.id_before(order, run_index), right)
        };
        if offset > 0 {
            let leaf = &mut self.leaves[leaf_id];
            let right = leaf.runs[run_index].split_off(offset);
            leaf.runs.insert(run_index + 1, right);
            run_index += 1;
        }
        let run = Run {
            agent,
            seq,
            len: chars,
            deleted: false,
            origin_left,
            origin_right,
        };
        self.insert_run(order, run_index, run, text, within);
        self.remember_typing(pos + u64::from(chars), agent, seq + chars);
    }

    /// Extends the run of the previous local insertion in place when this one continues it
    /// (the common case of typing): same place, nothing else changed in between.
    fn try_extend_typing(
        &mut self,
        pos: u64,
        agent: u32,
        seq: u32,
        text: &str,
        chars: u32,
    ) -> bool {
        let Some(typing) = self.typing else {
            return false;
        };
        let leaf_id = self.order[typing.order];
        let leaf = &mut self.leaves[leaf_id as usize];
        let run = &mut leaf.runs[typing.run];
        if typing.pos != pos
            || run.agent != agent
            || run.seq + run.len != seq
            || leaf.text.len() + text.len() > LEAF_TEXT_BYTES_MAX
        {
            return false;
        }
        run.len += chars;
        leaf.text.insert_str(typing.byte, text);
        if self.byte_hint.0 == leaf_id && self.byte_hint.2 >= typing.byte {
            self.byte_hint.1 += chars;
            self.byte_hint.2 += text.len();
        }
        leaf.visible += chars;
        self.order_visible[typing.order] += chars;
        self.total_visible += u64::from(chars);
        if self.cursor.0 > typing.order {
            self.cursor.1 += u64::from(chars);
        }
        self.seq_end[agent as usize] = seq + chars;
        self.typing = Some(Typing {
            pos: pos + u64::from(chars),
            byte: typing.byte + text.len(),
            ..typing
        });
        true
    }

    /// After a local insertion (slow path), records where it ended for `try_extend_typing`.
    fn remember_typing(&mut self, pos_end: u64, agent: u32, seq_end: u32) {
        self.typing = None;
        if pos_end == 0 {
            return;
        }
        // The inserted text ends just before visible position `pos_end`.
        let (order, base) = self.find_leaf(pos_end - 1);
        let leaf = &self.leaves[self.order[order] as usize];
        let (run_index, offset) = Self::locate_visible(leaf, (pos_end - 1 - base) as u32);
        let Some(run) = leaf.runs.get(run_index) else {
            return;
        };
        if run.agent != agent || run.seq + run.len != seq_end || offset + 1 != run.len {
            return;
        }
        let chars = (pos_end - base) as u32;
        let byte = self.leaf_byte(self.order[order], chars);
        self.typing = Some(Typing {
            order,
            run: run_index,
            pos: pos_end,
            byte,
        });
    }

    /// Deletes `count` characters of run `(order, run_index)` from `offset` (which must fit in
    /// the run). Returns whether they were visible (a no-op on tombstones).
    /// `char_start`, if known, is the leaf's visible index of the first deleted character.
    fn delete_in_run(
        &mut self,
        order: usize,
        run_index: usize,
        offset: u32,
        count: u32,
        char_start: Option<u32>,
    ) -> bool {
        self.typing = None;
        let leaf_id = self.order[order];
        let leaf = &self.leaves[leaf_id as usize];
        let run = leaf.runs[run_index];
        if run.deleted {
            return false;
        }
        let char_start = char_start.unwrap_or_else(|| leaf.visible_before(run_index) + offset);
        let byte_start = self.leaf_byte(leaf_id, char_start);
        self.byte_hint = (leaf_id, char_start, byte_start);
        let leaf = &mut self.leaves[leaf_id as usize];
        let byte_end = if leaf.text.len() == leaf.visible as usize {
            byte_start + count as usize
        } else {
            skip_chars(&leaf.text, byte_start, count as usize)
        };
        leaf.text.replace_range(byte_start..byte_end, "");
        leaf.visible -= count;
        let mut index = run_index;
        if offset + count < run.len {
            let right = leaf.runs[index].split_off(offset + count);
            leaf.runs.insert(index + 1, right);
        }
        if offset > 0 {
            let middle = leaf.runs[index].split_off(offset);
            leaf.runs.insert(index + 1, middle);
            index += 1;
        }
        leaf.runs[index].deleted = true;
        if index + 1 < leaf.runs.len() && leaf.runs[index].can_append(&leaf.runs[index + 1]) {
            leaf.runs[index].len += leaf.runs[index + 1].len;
            leaf.runs.remove(index + 1);
        }
        if index > 0 && leaf.runs[index - 1].can_append(&leaf.runs[index]) {
            leaf.runs[index - 1].len += leaf.runs[index].len;
            leaf.runs.remove(index);
        }
        let split = leaf.runs.len() > LEAF_RUNS_MAX;
        self.order_visible[order] -= count;
        self.total_visible -= u64::from(count);
        if self.cursor.0 > order {
            self.cursor.1 -= u64::from(count);
        }
        if split {
            self.split_leaf(order);
        }
        true
    }

    /// Deletes `count` visible characters from visible position `pos`; calls `deleted` with
    /// each deleted piece (first identifier, length) in document order.
    pub fn local_delete(&mut self, pos: u64, mut count: u64, mut deleted: impl FnMut(Iid, u32)) {
        while count > 0 {
            let (order, base) = self.find_leaf(pos);
            let leaf = &self.leaves[self.order[order] as usize];
            let within = (pos - base) as u32;
            let (run_index, offset) = Self::locate_visible(leaf, within);
            let Some(run) = leaf.runs.get(run_index) else {
                return;
            };
            let piece = (run.len - offset).min(u32::try_from(count).unwrap_or(u32::MAX));
            deleted(run.id_at(offset), piece);
            self.delete_in_run(order, run_index, offset, piece, Some(within));
            count -= u64::from(piece);
        }
    }

    /// Checks that every identifier in `[start, start+len)` is a character here.
    pub fn contains_range(&mut self, start: Iid, len: u32) -> bool {
        let mut seq = start.seq;
        let end = start.seq.saturating_add(len);
        while seq < end {
            let Some((order, run_index, offset)) = self.locate_id(Iid {
                agent: start.agent,
                seq,
            }) else {
                return false;
            };
            seq += self.run_at(order, run_index).len - offset;
        }
        true
    }

    /// Deletes the characters `[start, start+len)` by identifier; calls `deleted` with each
    /// piece that was visible. Returns false (having changed nothing) if one is unknown.
    pub fn delete_ids(&mut self, start: Iid, len: u32, mut deleted: impl FnMut(Iid, u32)) -> bool {
        if !self.contains_range(start, len) {
            return false;
        }
        let mut seq = start.seq;
        let end = start.seq + len;
        while seq < end {
            let id = Iid {
                agent: start.agent,
                seq,
            };
            let Some((order, run_index, offset)) = self.locate_id(id) else {
                return false;
            };
            let piece = (self.run_at(order, run_index).len - offset).min(end - seq);
            if self.delete_in_run(order, run_index, offset, piece, None) {
                deleted(id, piece);
            }
            seq += piece;
        }
        true
    }

    /// Sort key of a left origin.
    fn left_key(&mut self, id: Iid) -> Option<LeftKey> {
        if id.is_none() {
            return Some(None);
        }
        self.locate_id(id).map(Some)
    }

    /// Sort key of a right origin.
    fn right_key(&mut self, id: Iid) -> Option<RightKey> {
        if id.is_none() {
            return Some((usize::MAX, 0, 0));
        }
        self.locate_id(id)
    }

    /// Integrates a remote run (FugueMax order; see the crate docs). `replica_of` maps an agent
    /// index to its replica id for tie-breaks. Returns false, changing nothing visible, if an
    /// origin is not a character of this document.
    pub fn integrate(&mut self, run: Run, text: &str, replica_of: impl Fn(u32) -> u64) -> bool {
        self.typing = None;
        // Splitting a run never changes the document, so doing it before validating the right
        // origin is harmless; the left origin's location is unchanged by the split.
        let (start, my_left) = if run.origin_left.is_none() {
            (Slot { order: 0, run: 0 }, None)
        } else {
            let Some((order, run_index, offset)) = self.locate_id(run.origin_left) else {
                return false;
            };
            let leaf = &mut self.leaves[self.order[order] as usize];
            if offset + 1 < leaf.runs[run_index].len {
                let right = leaf.runs[run_index].split_off(offset + 1);
                leaf.runs.insert(run_index + 1, right);
            }
            let slot = Slot {
                order,
                run: run_index + 1,
            };
            (slot, Some((order, run_index, offset)))
        };
        let Some(my_right) = self.right_key(run.origin_right) else {
            return false;
        };
        let mut cursor = self.normalize(start.order, start.run);
        let mut scanning = false;
        let mut scan_start = cursor;
        while let Some(slot) = cursor {
            let other = *self.run_at(slot.order, slot.run);
            if other.id_at(0) == run.origin_right {
                break;
            }
            let Some(other_left) = self.left_key(other.origin_left) else {
                return false;
            };
            match other_left.cmp(&my_left) {
                std::cmp::Ordering::Less => break,
                std::cmp::Ordering::Greater => {}
                std::cmp::Ordering::Equal => {
                    if other.origin_right == run.origin_right {
                        let mine = (replica_of(run.agent), run.seq);
                        let theirs = (replica_of(other.agent), other.seq);
                        if mine < theirs {
                            break;
                        }
                        scanning = false;
                    } else {
                        let Some(other_right) = self.right_key(other.origin_right) else {
                            return false;
                        };
                        if other_right < my_right {
                            if !scanning {
                                scanning = true;
                                scan_start = cursor;
                            }
                        } else {
                            scanning = false;
                        }
                    }
                }
            }
            cursor = self.normalize(slot.order, slot.run + 1);
        }
        if scanning {
            cursor = scan_start;
        }
        let (order, run_index) = match cursor {
            Some(Slot { order, run: 0 }) if order > 0 => (
                order - 1,
                self.leaves[self.order[order - 1] as usize].runs.len(),
            ),
            Some(slot) => (slot.order, slot.run),
            None => {
                let last = self.order.len() - 1;
                (last, self.leaves[self.order[last] as usize].runs.len())
            }
        };
        let chars_before = self.leaves[self.order[order] as usize].visible_before(run_index);
        self.insert_run(order, run_index, run, text, chars_before);
        true
    }

    /// Reads the piece of run holding `id`: length up to `len_max` within that run, its
    /// origins, and (if visible) appends its text to `out`. `None` if `id` is not a character.
    pub fn read_piece(
        &mut self,
        id: Iid,
        len_max: u32,
        out: &mut String,
    ) -> Option<(u32, Iid, Iid, bool)> {
        let (order, run_index, offset) = self.locate_id(id)?;
        let leaf = &self.leaves[self.order[order] as usize];
        let run = leaf.runs[run_index];
        let len = (run.len - offset).min(len_max);
        if !run.deleted {
            let chars_before = leaf.visible_before(run_index) + offset;
            let start = self.leaf_byte(self.order[order], chars_before);
            let end = skip_chars(&leaf.text, start, len as usize);
            out.push_str(&leaf.text[start..end]);
        }
        Some((
            len,
            run.origin_left_at(offset),
            run.origin_right,
            run.deleted,
        ))
    }

    /// Visible position of character `id` (where it was, if deleted), and whether it is visible.
    pub fn position_of(&mut self, id: Iid) -> Option<(u64, bool)> {
        let (order, run_index, offset) = self.locate_id(id)?;
        let before: u64 = self.order_visible[..order]
            .iter()
            .map(|&v| u64::from(v))
            .sum();
        let leaf = &self.leaves[self.order[order] as usize];
        let run = &leaf.runs[run_index];
        let within = leaf.visible_before(run_index) + if run.deleted { 0 } else { offset };
        Some((before + u64::from(within), !run.deleted))
    }

    /// Identifier of the visible character at `pos`, if any.
    pub fn id_at_position(&mut self, pos: u64) -> Option<Iid> {
        if pos >= self.total_visible {
            return None;
        }
        let (order, base) = self.find_leaf(pos);
        let leaf = &self.leaves[self.order[order] as usize];
        let (run_index, offset) = Self::locate_visible(leaf, (pos - base) as u32);
        leaf.runs.get(run_index).map(|r| r.id_at(offset))
    }
}

impl Run {
    /// Left origin of the character at `offset`.
    pub fn origin_left_at(&self, offset: u32) -> Iid {
        if offset == 0 {
            self.origin_left
        } else {
            self.id_at(offset - 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::skip_chars;

    #[test]
    fn skip_chars_matches_char_indices_on_mixed_text() {
        let text = "aé中😀b".repeat(7) + "xyz\u{10FFFF}ß";
        let starts: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
        for (from_char, &from) in starts.iter().enumerate() {
            for chars in 0..=starts.len() - from_char {
                let expected = starts.get(from_char + chars).copied().unwrap_or(text.len());
                assert_eq!(
                    skip_chars(&text, from, chars),
                    expected,
                    "from {from} skip {chars}"
                );
                if chars <= from_char {
                    let back = super::skip_chars_back(&text, from, chars);
                    assert_eq!(back, starts[from_char - chars], "from {from} back {chars}");
                }
            }
        }
    }
}

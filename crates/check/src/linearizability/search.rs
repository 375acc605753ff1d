//! The Wing–Gong / Lowe search over one partition (one key), memoised on (linearized set, state).
//!
//! Calls and returns form a doubly linked list in real-time order. The search walks it from the
//! head: at a call it tries to make the operation take effect now (the model must accept it and the
//! resulting (set, state) pair must be new), and if so lifts the call and its return out of the
//! list and starts again from the head; at a return whose operation has not taken effect it
//! backtracks. The history is linearizable when the list empties.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use super::model::Model;
use crate::history::{Call, Operation, Outcome};

/// No entry: the end of the list.
const NIL: u32 = u32::MAX;

/// How many linearized operations a failure report keeps, most recent last.
pub(crate) const TAIL_LENGTH: usize = 8;

/// How many distinct states a failure report keeps.
const STATES_MAX: usize = 16;

/// Where the search got furthest before it had to give up on a partition.
#[derive(Debug, Clone)]
pub(crate) struct Failure<S> {
    /// The operation (partition index) whose return could never be passed.
    pub(crate) operation: usize,
    /// States the object held in the configurations that reached that return.
    pub(crate) states: Vec<S>,
    /// How many operations had taken effect in the first such configuration.
    pub(crate) depth: usize,
    /// That configuration's linearized set, one bit per partition index.
    pub(crate) linearized: Vec<u64>,
    /// Its last linearized operations with the state each left, oldest first.
    pub(crate) tail: Vec<(usize, S)>,
}

/// The real-time position of each operation's call and return; indeterminate returns are at +∞.
pub(crate) struct Positions {
    pub(crate) call: Vec<u64>,
    pub(crate) ret: Vec<u64>,
}

impl Positions {
    pub(crate) fn of(operations: &[&Operation]) -> Positions {
        let call = operations
            .iter()
            .map(|operation| operation.invoke.line as u64)
            .collect();
        let ret = operations
            .iter()
            .map(|operation| match operation.complete {
                Some(event) if !operation.is_indeterminate() => event.line as u64,
                _ => u64::MAX,
            })
            .collect();
        Positions { call, ret }
    }
}

/// What one slice of search work ended with.
#[derive(Debug)]
pub(crate) enum Progress<S> {
    /// The partition is linearizable.
    Linearizable,
    /// It is not; where the search got furthest.
    NotLinearizable(Failure<S>),
    /// The step quantum ran out; call [`Search::run`] again to go on.
    Unfinished,
}

/// A resumable search over one partition (one key), so that partitions can take turns and an
/// easy failing key is found before a hard one is finished.
pub(crate) struct Search<'a, M: Model> {
    model: &'a M,
    operations: &'a [&'a Operation],
    positions: Positions,
    list: EntryList,
    linearized: LinearizedSet,
    cache: Cache<M::State>,
    stack: Vec<(u32, M::State)>,
    state: M::State,
    progress: Option<Failure<M::State>>,
    progress_position: u64,
    entry: u32,
    /// For an indeterminate operation, the closest earlier-invoked indeterminate operation with
    /// the same call and outcome (`NIL` if none). Such twins are interchangeable, so the search
    /// only places them in invocation order: any linearization can swap two twins' places.
    twins: Vec<u32>,
}

impl<'a, M: Model> Search<'a, M> {
    /// Prepares the search of `operations` (one partition, in invocation order).
    pub(crate) fn new(model: &'a M, operations: &'a [&'a Operation]) -> Self {
        let count = operations.len();
        assert!(count < (u32::MAX / 2) as usize, "partition too large");
        let positions = Positions::of(operations);
        let list = EntryList::new(&positions);
        let entry = list.first();
        Search {
            model,
            operations,
            positions,
            list,
            linearized: LinearizedSet::new(count),
            cache: Cache::default(),
            stack: Vec::with_capacity(count),
            state: model.initial_state(),
            progress: None,
            progress_position: 0,
            entry,
            twins: twins(operations),
        }
    }

    /// Runs at most `steps_max` steps; returns the verdict (or `Unfinished`) and the steps taken.
    pub(crate) fn run(&mut self, steps_max: u64) -> (Progress<M::State>, u64) {
        let mut steps = 0;
        while self.list.first() != NIL {
            if steps == steps_max {
                return (Progress::Unfinished, steps);
            }
            steps += 1;
            let entry = self.entry;
            let operation = entry / 2;
            if entry.is_multiple_of(2) {
                self.entry = self.try_call(operation);
                continue;
            }
            // A return whose operation has not taken effect: this configuration is a dead end.
            self.record_dead_end(operation);
            let Some((undone, previous_state)) = self.stack.pop() else {
                // `record_dead_end` has just stored a failure; the fallback only satisfies types.
                let failure = self.progress.take().unwrap_or_else(|| Failure {
                    operation: operation as usize,
                    states: vec![self.state.clone()],
                    depth: 0,
                    linearized: self.linearized.words.clone(),
                    tail: Vec::new(),
                });
                return (Progress::NotLinearizable(failure), steps);
            };
            self.state = previous_state;
            self.linearized.remove(undone as usize);
            self.list.unlift(undone);
            self.entry = self.list.next(undone * 2);
        }
        (Progress::Linearizable, steps)
    }

    /// Tries to make `operation` take effect now; returns the entry to look at next.
    fn try_call(&mut self, operation: u32) -> u32 {
        let index = operation as usize;
        let twin = self.twins[index];
        if twin != NIL && !self.linearized.contains(twin as usize) {
            return self.list.next(2 * operation);
        }
        if let Some(next_state) = self.model.step(&self.state, self.operations[index]) {
            self.linearized.insert(index);
            if self.cache.insert_if_new(&self.linearized, &next_state) {
                let previous = std::mem::replace(&mut self.state, next_state);
                self.stack.push((operation, previous));
                self.list.lift(operation);
                return self.list.first();
            }
            self.linearized.remove(index);
        }
        self.list.next(2 * operation)
    }

    /// Remembers the configuration that got furthest, for the counterexample.
    fn record_dead_end(&mut self, operation: u32) {
        let position = self.positions.ret[operation as usize];
        let state = &self.state;
        if self.progress.is_none() || position > self.progress_position {
            self.progress_position = position;
            self.progress = Some(Failure {
                operation: operation as usize,
                states: vec![state.clone()],
                depth: self.stack.len(),
                linearized: self.linearized.words.clone(),
                tail: tail(&self.stack, state),
            });
        } else if let Some(failure) = self.progress.as_mut().filter(|failure| {
            position == self.progress_position
                && failure.states.len() < STATES_MAX
                && !failure.states.contains(state)
        }) {
            failure.states.push(state.clone());
        }
    }
}

/// Links each indeterminate operation to its closest earlier identical one (see `Search::twins`).
fn twins(operations: &[&Operation]) -> Vec<u32> {
    let mut last_seen: HashMap<(&Call, &Outcome), u32> = HashMap::new();
    let mut twins = vec![NIL; operations.len()];
    for (index, operation) in operations.iter().enumerate() {
        if operation.is_indeterminate() {
            let key = (&operation.call, &operation.outcome);
            if let Some(twin) = last_seen.insert(key, index as u32) {
                twins[index] = twin;
            }
        }
    }
    twins
}

/// The last linearized operations and the state each left, oldest first.
fn tail<S: Clone>(stack: &[(u32, S)], state: &S) -> Vec<(usize, S)> {
    let start = stack.len().saturating_sub(TAIL_LENGTH);
    (start..stack.len())
        .map(|index| {
            let after = stack.get(index + 1).map_or(state, |(_, before)| before);
            (stack[index].0 as usize, after.clone())
        })
        .collect()
}

/// Calls (entry `2i`) and returns (entry `2i + 1`) of every operation, linked in real-time order
/// behind a head sentinel; lifting an operation unlinks both of its entries and unlifting relinks
/// them (dancing links: undo happens in reverse order, so each entry's own links stay valid).
struct EntryList {
    next: Vec<u32>,
    previous: Vec<u32>,
    head: u32,
}

impl EntryList {
    fn new(positions: &Positions) -> EntryList {
        let count = positions.call.len();
        let mut order: Vec<(u64, u32)> = Vec::with_capacity(2 * count);
        for index in 0..count {
            order.push((positions.call[index], 2 * index as u32));
            order.push((positions.ret[index], 2 * index as u32 + 1));
        }
        // Ties only happen among returns at +∞; entry order keeps them deterministic.
        order.sort_unstable();
        let head = 2 * count as u32;
        let mut next = vec![NIL; 2 * count + 1];
        let mut previous = vec![NIL; 2 * count + 1];
        let mut last = head;
        for &(_, entry) in &order {
            next[last as usize] = entry;
            previous[entry as usize] = last;
            last = entry;
        }
        EntryList {
            next,
            previous,
            head,
        }
    }

    fn first(&self) -> u32 {
        self.next[self.head as usize]
    }

    fn next(&self, entry: u32) -> u32 {
        self.next[entry as usize]
    }

    fn unlink(&mut self, entry: u32) {
        let (before, after) = (self.previous[entry as usize], self.next[entry as usize]);
        self.next[before as usize] = after;
        if after != NIL {
            self.previous[after as usize] = before;
        }
    }

    fn relink(&mut self, entry: u32) {
        let (before, after) = (self.previous[entry as usize], self.next[entry as usize]);
        self.next[before as usize] = entry;
        if after != NIL {
            self.previous[after as usize] = entry;
        }
    }

    fn lift(&mut self, operation: u32) {
        self.unlink(2 * operation);
        self.unlink(2 * operation + 1);
    }

    fn unlift(&mut self, operation: u32) {
        self.relink(2 * operation + 1);
        self.relink(2 * operation);
    }
}

/// The set of operations that have taken effect, one bit each, with the bounds of its canonical
/// form kept up to date: every word below `low` is full, none from `high` on has a bit set.
struct LinearizedSet {
    words: Vec<u64>,
    low: usize,
    high: usize,
}

impl LinearizedSet {
    fn new(count: usize) -> LinearizedSet {
        LinearizedSet {
            words: vec![0; count.div_ceil(64)],
            low: 0,
            high: 0,
        }
    }

    fn insert(&mut self, index: usize) {
        let word = index / 64;
        self.words[word] |= 1 << (index % 64);
        self.high = self.high.max(word + 1);
        while self.low < self.words.len() && self.words[self.low] == u64::MAX {
            self.low += 1;
        }
    }

    fn contains(&self, index: usize) -> bool {
        self.words[index / 64] & (1 << (index % 64)) != 0
    }

    fn remove(&mut self, index: usize) {
        let word = index / 64;
        self.words[word] &= !(1 << (index % 64));
        self.low = self.low.min(word);
        while self.high > 0 && self.words[self.high - 1] == 0 {
            self.high -= 1;
        }
    }

    /// Writes the canonical form: (full words below, one past the highest member, then the
    /// non-members between) into `form`. Its size is the number of pending operations, not the
    /// partition's, so memoised configurations stay small even for long histories.
    fn canonical_form(&self, form: &mut Vec<u32>) {
        form.clear();
        let top = match self.high {
            0 => 0,
            high => high * 64 - self.words[high - 1].leading_zeros() as usize,
        };
        form.push(self.low as u32);
        form.push(top as u32);
        for word in self.low..self.high {
            let mut zeros = !self.words[word];
            while zeros != 0 {
                let bit = word * 64 + zeros.trailing_zeros() as usize;
                if bit >= top {
                    break;
                }
                form.push(bit as u32);
                zeros &= zeros - 1;
            }
        }
    }
}

/// Configurations (linearized set, state) already explored. Canonical forms of the sets live in
/// one arena; the map goes from a hash to the most recent entry with it, entries chain the rest.
struct Cache<S> {
    buckets: HashMap<u64, u32, BuildHasherDefault<PassThroughHasher>>,
    entries: Vec<CacheEntry<S>>,
    forms: Vec<u32>,
    scratch: Vec<u32>,
}

impl<S> Default for Cache<S> {
    fn default() -> Self {
        Cache {
            buckets: HashMap::default(),
            entries: Vec::new(),
            forms: Vec::new(),
            scratch: Vec::new(),
        }
    }
}

struct CacheEntry<S> {
    form_start: usize,
    form_length: u32,
    next: u32,
    state: S,
}

impl<S: Clone + Eq + Hash> Cache<S> {
    /// Records (set, state); false if it was already there.
    fn insert_if_new(&mut self, set: &LinearizedSet, state: &S) -> bool {
        set.canonical_form(&mut self.scratch);
        let mut hasher = FxHasher::default();
        for &part in &self.scratch {
            hasher.write_u32(part);
        }
        state.hash(&mut hasher);
        let hash = hasher.finish();
        let head = self.buckets.get(&hash).copied().unwrap_or(NIL);
        let mut cursor = head;
        while cursor != NIL {
            let entry = &self.entries[cursor as usize];
            let form = &self.forms[entry.form_start..entry.form_start + entry.form_length as usize];
            if form == self.scratch.as_slice() && entry.state == *state {
                return false;
            }
            cursor = entry.next;
        }
        let index = self.entries.len() as u32;
        self.entries.push(CacheEntry {
            form_start: self.forms.len(),
            form_length: self.scratch.len() as u32,
            next: head,
            state: state.clone(),
        });
        self.forms.extend_from_slice(&self.scratch);
        self.buckets.insert(hash, index);
        true
    }
}

/// The Firefox/rustc multiply-rotate hash: fast and deterministic.
#[derive(Default)]
struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
        let mut rest = [0u8; 8];
        let remainder = chunks.remainder();
        rest[..remainder.len()].copy_from_slice(remainder);
        self.write_u64(u64::from_le_bytes(rest) ^ remainder.len() as u64);
    }

    fn write_u64(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }

    fn write_u32(&mut self, word: u32) {
        self.write_u64(u64::from(word));
    }

    fn write_u8(&mut self, byte: u8) {
        self.write_u64(u64::from(byte));
    }

    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

/// The bucket map's keys are already hashes.
#[derive(Default)]
struct PassThroughHasher {
    hash: u64,
}

impl Hasher for PassThroughHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.hash = (self.hash << 8) | u64::from(byte);
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.hash = word;
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_lists_only_pending_members_below_the_top() {
        let mut set = LinearizedSet::new(200);
        let mut form = Vec::new();
        set.canonical_form(&mut form);
        assert_eq!(form, vec![0, 0]);
        for index in 0..70 {
            set.insert(index);
        }
        set.remove(3);
        set.insert(90);
        set.canonical_form(&mut form);
        let mut expected = vec![0, 91, 3];
        expected.extend(70..90);
        assert_eq!(form, expected);
        set.insert(3);
        set.canonical_form(&mut form);
        assert_eq!(form[..2], [1, 91]);
        set.remove(90);
        for index in 64..70 {
            set.remove(index);
        }
        set.canonical_form(&mut form);
        assert_eq!(form, vec![1, 64]);
    }

    #[test]
    fn entry_list_lift_and_unlift_restore_the_order() {
        let positions = Positions {
            call: vec![1, 2, 3],
            ret: vec![4, u64::MAX, 5],
        };
        let mut list = EntryList::new(&positions);
        let walk = |list: &EntryList| {
            let mut entries = Vec::new();
            let mut entry = list.first();
            while entry != NIL {
                entries.push(entry);
                entry = list.next(entry);
            }
            entries
        };
        assert_eq!(walk(&list), vec![0, 2, 4, 1, 5, 3]);
        list.lift(1);
        list.lift(0);
        assert_eq!(walk(&list), vec![4, 5]);
        list.unlift(0);
        list.unlift(1);
        assert_eq!(walk(&list), vec![0, 2, 4, 1, 5, 3]);
    }
}

//! Conflict-free replicated data types: the available (AP) half of concur. Replicas accept writes
//! with no coordination, through any partition, and converge once messages flow again.
//!
//! Every type implements [`Crdt`]: `merge` is a join (commutative, associative, idempotent), and
//! every mutator applies locally *and returns a [`Delta`]*, a small state that has the same effect
//! on any other replica as shipping the whole new state. Deltas may be lost, duplicated or
//! reordered; a later full merge or an anti-entropy round ([`sync`]) repairs any gap.
//!
//! - Counters: [`GCounter`], [`PnCounter`], [`CausalCounter`] (resettable, for maps).
//! - Sets: [`GSet`], [`TwoPhaseSet`], [`OrSet`] (add-wins, no per-element tombstones).
//! - Registers: [`LwwRegister`] (hybrid-logical-clock timestamps, replica id breaks ties),
//!   [`MvRegister`] (keeps concurrent values).
//! - Flags: [`EnableWinsFlag`], [`DisableWinsFlag`].
//! - Maps: [`OrMap`] of nested causal CRDTs (a removed key's value resets), [`LwwMap`].
//!
//! The dot-based types ([`OrSet`], [`MvRegister`], the flags, [`CausalCounter`], [`OrMap`]) are
//! [`Causal`] dot stores with a [`clock::CausalContext`], after Almeida, Shoker and Baquero's
//! delta-state CRDTs. All types have a versioned compact binary encoding ([`Codec`]) whose
//! decoders reject corrupt input with a [`DecodeError`] and never panic.
//!
//! ```
//! use crdt::{Codec, Crdt, OrSet};
//!
//! let mut alice: OrSet<String> = OrSet::new();
//! let mut bob = alice.clone();
//! let milk = alice.add(1, "milk".to_string()); // Alice adds milk...
//! bob.apply(&milk); // ...and Bob receives the delta.
//! bob.remove(&"milk".to_string()); // Bob removes it while Alice concurrently re-adds it.
//! alice.add(1, "milk".to_string());
//! alice.merge(&bob);
//! bob.merge(&alice);
//! assert_eq!(alice, bob);
//! assert!(alice.contains(&"milk".to_string())); // add wins
//!
//! let bytes = alice.to_bytes();
//! assert_eq!(OrSet::<String>::from_bytes(&bytes).unwrap(), alice);
//! assert!(OrSet::<String>::from_bytes(&bytes[..bytes.len() - 1]).is_err());
//! ```

pub mod codec;
mod counter;
pub mod dot_store;
mod flag;
mod map;
mod orset;
mod register;
mod set;
pub mod sync;

pub use codec::{Codec, DecodeError};
pub use counter::{CausalCounter, CounterStore, GCounter, PnCounter};
pub use dot_store::{Causal, DotFun, DotSet, DotStore, PruneError};
pub use flag::{DisableWinsFlag, DisableWinsStore, EnableWinsFlag, EnableWinsStore};
pub use map::{LwwMap, MapStore, OrMap};
pub use orset::{Key, OrSet, SetStore};
pub use register::{LwwRegister, MvRegister, MvStore};
pub use set::{GSet, TwoPhaseSet};

/// A state-based CRDT: a join-semilattice with a read function.
pub trait Crdt: Clone {
    /// What a reader sees.
    type Value;

    /// Joins `other` into `self`: commutative, associative and idempotent.
    fn merge(&mut self, other: &Self);

    /// The current value.
    fn value(&self) -> Self::Value;

    /// Joins a delta produced by a mutator (on this or another replica). Same result as
    /// `merge(delta.as_state())`, often cheaper.
    fn apply(&mut self, delta: &Delta<Self>) {
        self.merge(delta.as_state());
    }
}

/// What a mutator returns: a small state holding only the mutation's effect. Joining it anywhere
/// equals joining the mutated replica's full state there, minus what that replica already had.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Delta<T>(T);

impl<T> Delta<T> {
    pub(crate) fn new(state: T) -> Self {
        Self(state)
    }

    /// The delta viewed as a state of its type.
    pub fn as_state(&self) -> &T {
        &self.0
    }

    /// The delta as a state of its type.
    pub fn into_state(self) -> T {
        self.0
    }
}

impl<T: Codec> Delta<T> {
    /// Tag bit that marks a delta encoding.
    const DELTA_TAG_BIT: u8 = 0x80;

    /// Encodes the delta (same layout as its type, with the delta bit set in the type tag).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut writer = codec::Writer::new();
        writer.byte(codec::FORMAT_VERSION);
        writer.byte(T::TYPE_TAG | Self::DELTA_TAG_BIT);
        self.0.encode(&mut writer);
        writer.into_bytes()
    }

    /// Decodes a delta written by [`Delta::to_bytes`]; never panics on corrupt input.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        dot_store::decode_framed(bytes, T::TYPE_TAG | Self::DELTA_TAG_BIT, T::TYPE_NAME).map(Self)
    }
}

//! Flags: enable-wins and disable-wins booleans. Each enable or disable writes a fresh dot that
//! replaces the dots observed; concurrent writes survive side by side and the policy reads them.

use clock::{CausalContext, Dot, ReplicaId};
use serde::{Deserialize, Serialize};

use crate::Delta;
use crate::codec::{DecodeError, Reader, Writer};
use crate::dot_store::{Causal, DotFun, DotStore};

macro_rules! flag_store {
    ($(#[$doc:meta])* $store:ident, $flag:ident, $tag:expr, $name:expr, $read:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub struct $store {
            writes: DotFun<bool>,
        }

        impl DotStore for $store {
            type Value = bool;
            const TYPE_TAG: u8 = $tag;
            const TYPE_NAME: &'static str = $name;

            fn value(&self) -> bool {
                let read: fn(&DotFun<bool>) -> bool = $read;
                read(&self.writes)
            }

            fn is_empty(&self) -> bool {
                self.writes.is_empty()
            }

            fn join(
                &mut self,
                own_context: &CausalContext,
                other: &Self,
                other_context: &CausalContext,
            ) {
                self.writes
                    .join_with(own_context, &other.writes, other_context);
            }

            fn for_each_dot(&self, visit: &mut dyn FnMut(Dot)) {
                self.writes.for_each(visit);
            }

            fn retain_dots(&mut self, keep: &mut dyn FnMut(&Dot) -> bool) {
                self.writes.retain(keep);
            }

            fn rewrite_dots(&mut self, rewrite: &mut dyn FnMut(Dot) -> Dot) {
                self.writes.rewrite(rewrite);
            }

            fn encode_store(&self, writer: &mut Writer) {
                self.writes.encode_entries(writer);
            }

            fn decode_store(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
                Ok(Self {
                    writes: DotFun::decode_entries(reader)?,
                })
            }
        }

        impl Causal<$store> {
            /// Turns the flag on, superseding every write observed here.
            pub fn enable(&mut self, replica: ReplicaId) -> Delta<Self> {
                self.write(replica, true)
            }

            /// Turns the flag off, superseding every write observed here.
            pub fn disable(&mut self, replica: ReplicaId) -> Delta<Self> {
                self.write(replica, false)
            }

            /// True when the flag reads as on.
            pub fn is_enabled(&self) -> bool {
                self.store.value()
            }

            fn write(&mut self, replica: ReplicaId, on: bool) -> Delta<Self> {
                let mut delta_context = CausalContext::new();
                self.store.writes.for_each(&mut |dot| delta_context.insert(dot));
                let dot = self.context.next_dot(replica);
                delta_context.insert(dot);
                self.store.writes = DotFun::single(dot, on);
                let delta_store = $store {
                    writes: DotFun::single(dot, on),
                };
                Delta::new(Self::from_parts(delta_store, delta_context))
            }
        }
    };
}

flag_store!(
    /// The dot store of an [`EnableWinsFlag`].
    EnableWinsStore,
    EnableWinsFlag,
    30,
    "EnableWinsFlag",
    |writes| writes.iter().any(|(_, on)| *on)
);

flag_store!(
    /// The dot store of a [`DisableWinsFlag`].
    DisableWinsStore,
    DisableWinsFlag,
    31,
    "DisableWinsFlag",
    |writes| !writes.is_empty() && writes.iter().all(|(_, on)| *on)
);

/// A flag where a concurrent enable beats a disable; starts off.
pub type EnableWinsFlag = Causal<EnableWinsStore>;

/// A flag where a concurrent disable beats an enable; starts off.
pub type DisableWinsFlag = Causal<DisableWinsStore>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Crdt;

    #[test]
    fn concurrent_enable_and_disable_follow_the_policy() {
        let mut ew_a = EnableWinsFlag::new();
        ew_a.disable(1);
        let mut ew_b = ew_a.clone();
        ew_a.enable(1);
        ew_b.disable(2);
        ew_a.merge(&ew_b);
        assert!(ew_a.is_enabled());

        let mut dw_a = DisableWinsFlag::new();
        dw_a.enable(1);
        let mut dw_b = dw_a.clone();
        dw_a.enable(1);
        dw_b.disable(2);
        dw_a.merge(&dw_b);
        assert!(!dw_a.is_enabled());
        dw_a.enable(1);
        assert!(dw_a.is_enabled());
    }
}

//! Goal: decoders never panic and never accept bytes they cannot stand behind. Method: build valid
//! states from random operations, then feed each decoder arbitrary bytes (bare and behind a valid
//! header), every strict prefix of a valid encoding, and single bit flips. Arbitrary input and bit
//! flips must give an error or a value that re-encodes and decodes to itself; strict prefixes must
//! give an error.

use std::fmt::Debug;

use clock::HlcTimestamp;
use crdt::sync::SyncRequest;
use crdt::{
    CausalCounter, Codec, CounterStore, Delta, DisableWinsFlag, EnableWinsFlag, GCounter, GSet,
    LwwMap, LwwRegister, MvRegister, OrMap, OrSet, PnCounter, TwoPhaseSet,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

fn accepts_only_valid<T: Codec + PartialEq + Debug>(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(value) = T::from_bytes(bytes) {
        let again = T::from_bytes(&value.to_bytes());
        prop_assert_eq!(again.as_ref(), Ok(&value));
    }
    Ok(())
}

fn check_decoder<T: Codec + PartialEq + Debug>(
    valid: &T,
    noise: &[u8],
    flip: (usize, u8),
) -> Result<(), TestCaseError> {
    let bytes = valid.to_bytes();
    let decoded = T::from_bytes(&bytes);
    prop_assert_eq!(decoded.as_ref(), Ok(valid));
    accepts_only_valid::<T>(noise)?;
    let mut framed = vec![bytes[0], bytes[1]];
    framed.extend_from_slice(noise);
    accepts_only_valid::<T>(&framed)?;
    for end in 0..bytes.len() {
        prop_assert!(
            T::from_bytes(&bytes[..end]).is_err(),
            "prefix of {} bytes accepted",
            end
        );
    }
    let mut flipped = bytes.clone();
    let at = flip.0 % flipped.len();
    flipped[at] ^= 1 << (flip.1 % 8);
    accepts_only_valid::<T>(&flipped)
}

fn check_delta_decoder<T: Codec + PartialEq + Debug>(
    delta: &Delta<T>,
    noise: &[u8],
) -> Result<(), TestCaseError> {
    let bytes = delta.to_bytes();
    let decoded = Delta::<T>::from_bytes(&bytes);
    prop_assert_eq!(decoded.as_ref(), Ok(delta));
    let mut framed = vec![bytes[0], bytes[1]];
    framed.extend_from_slice(noise);
    let _ = Delta::<T>::from_bytes(&framed);
    for end in 0..bytes.len() {
        prop_assert!(Delta::<T>::from_bytes(&bytes[..end]).is_err());
    }
    Ok(())
}

fn ops() -> impl Strategy<Value = Vec<(u8, u8, u8)>> {
    proptest::collection::vec((1u8..4, 0u8..4, any::<u8>()), 0..30)
}

fn noise() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..64)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn counters_and_sets_decode_safely(ops in ops(), noise in noise(), flip in (any::<usize>(), any::<u8>())) {
        let (mut g, mut pn, mut gs, mut tp) = (GCounter::new(), PnCounter::new(), GSet::new(), TwoPhaseSet::new());
        for &(replica, kind, value) in &ops {
            g.increment(replica.into(), value.into());
            pn.add(replica.into(), i64::from(value) - 128);
            gs.add(u64::from(value));
            if kind == 0 { tp.remove(u64::from(value)); } else { tp.add(u64::from(value)); }
        }
        check_decoder(&g, &noise, flip)?;
        check_decoder(&pn, &noise, flip)?;
        check_decoder(&gs, &noise, flip)?;
        check_decoder(&tp, &noise, flip)?;
    }

    #[test]
    fn causal_types_decode_safely(ops in ops(), noise in noise(), flip in (any::<usize>(), any::<u8>())) {
        let mut set: OrSet<u64> = OrSet::new();
        let mut mv: MvRegister<String> = MvRegister::new();
        let (mut ew, mut dw) = (EnableWinsFlag::new(), DisableWinsFlag::new());
        let mut counter = CausalCounter::new();
        let mut map: OrMap<u64, CounterStore> = OrMap::new();
        let mut last_set_delta = None;
        for &(replica, kind, value) in &ops {
            let (replica, element) = (u64::from(replica), u64::from(value % 16));
            last_set_delta = Some(if kind == 0 { set.remove(&element) } else { set.add(replica, element) });
            mv.write(replica, value.to_string());
            if kind % 2 == 0 { ew.enable(replica); dw.disable(replica); } else { ew.disable(replica); dw.enable(replica); }
            if kind == 0 { counter.reset(); } else { counter.add(replica, value.into()); }
            if kind == 0 { map.remove(&element); } else { map.update(element, |c: &mut CausalCounter| c.add(replica, 1)); }
        }
        check_decoder(&set, &noise, flip)?;
        check_decoder(&mv, &noise, flip)?;
        check_decoder(&ew, &noise, flip)?;
        check_decoder(&dw, &noise, flip)?;
        check_decoder(&counter, &noise, flip)?;
        check_decoder(&map, &noise, flip)?;
        if let Some(delta) = last_set_delta {
            check_delta_decoder(&delta, &noise)?;
        }
        check_decoder(&SyncRequest::new(&set), &noise, flip)?;
    }

    #[test]
    fn lww_types_decode_safely(ops in ops(), noise in noise(), flip in (any::<usize>(), any::<u8>())) {
        let mut register: LwwRegister<String> = LwwRegister::new();
        let mut map: LwwMap<String, u64> = LwwMap::new();
        for (index, &(replica, kind, value)) in ops.iter().enumerate() {
            let timestamp = HlcTimestamp::new(1_000 * index as u64, u32::from(kind));
            register.set(format!("v{value}"), timestamp, replica.into());
            if kind == 0 {
                map.remove(format!("k{}", value % 8), timestamp, replica.into());
            } else {
                map.insert(format!("k{}", value % 8), value.into(), timestamp, replica.into());
            }
        }
        check_decoder(&register, &noise, flip)?;
        check_decoder(&map, &noise, flip)?;
    }
}

//! Hybrid logical clocks (Kulkarni, Demirbas et al., 2014) with a bounded clock offset.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A hybrid logical timestamp: physical nanoseconds plus a logical counter for events within the
/// same nanosecond. Orders like a Lamport clock and stays close to physical time.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct HlcTimestamp {
    /// The largest physical time (ns since the epoch) known when the event happened.
    pub wall_ns: u64,
    /// Events ordered after others at the same `wall_ns`.
    pub logical: u32,
}

impl HlcTimestamp {
    /// A timestamp at `wall_ns` with logical part `logical`.
    pub fn new(wall_ns: u64, logical: u32) -> Self {
        Self { wall_ns, logical }
    }

    /// The smallest timestamp strictly greater than `self`.
    fn successor(self) -> Self {
        match self.logical.checked_add(1) {
            Some(logical) => Self::new(self.wall_ns, logical),
            // A full logical counter moves the wall part by the smallest unit instead.
            None => Self::new(self.wall_ns + 1, 0),
        }
    }
}

/// An interval `[earliest_ns, latest_ns]` that contains true time, as TrueTime reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TimeInterval {
    /// True time is no earlier than this.
    pub earliest_ns: u64,
    /// True time is no later than this.
    pub latest_ns: u64,
}

impl TimeInterval {
    /// Width of the uncertainty.
    pub fn width_ns(&self) -> u64 {
        self.latest_ns - self.earliest_ns
    }
}

/// Why a clock refused a remote timestamp.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClockError {
    /// The remote timestamp is further ahead of local physical time than the offset bound allows:
    /// one of the two clocks is broken. The local clock is unchanged.
    #[error(
        "remote timestamp {remote_ns} ns is {ahead_ns} ns ahead of local physical time, beyond the {max_offset_ns} ns bound"
    )]
    OffsetExceeded {
        /// The remote wall time.
        remote_ns: u64,
        /// How far ahead of local physical time it was.
        ahead_ns: u64,
        /// The configured bound.
        max_offset_ns: u64,
    },
}

/// A hybrid logical clock. Physical time is passed in by the caller (the simulator or the real
/// system clock), and every clock in the cluster is assumed within `max_offset_ns` of true time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HybridClock {
    last: HlcTimestamp,
    max_offset_ns: u64,
}

impl HybridClock {
    /// A clock that trusts physical clocks to be within `max_offset_ns` of true time.
    pub fn new(max_offset_ns: u64) -> Self {
        Self {
            last: HlcTimestamp::default(),
            max_offset_ns,
        }
    }

    /// The assumed maximum clock offset.
    pub fn max_offset_ns(&self) -> u64 {
        self.max_offset_ns
    }

    /// The latest timestamp issued or observed.
    pub fn last(&self) -> HlcTimestamp {
        self.last
    }

    /// Timestamps a local or send event at local physical time `physical_ns`.
    pub fn now(&mut self, physical_ns: u64) -> HlcTimestamp {
        self.last = if physical_ns > self.last.wall_ns {
            HlcTimestamp::new(physical_ns, 0)
        } else {
            self.last.successor()
        };
        self.last
    }

    /// [`now`](Self::now) together with the interval that contains true time at this moment.
    pub fn now_with_interval(&mut self, physical_ns: u64) -> (HlcTimestamp, TimeInterval) {
        (self.now(physical_ns), self.interval(physical_ns))
    }

    /// Timestamps the receipt of a message stamped `remote` at local physical time `physical_ns`.
    pub fn observe(
        &mut self,
        remote: HlcTimestamp,
        physical_ns: u64,
    ) -> Result<HlcTimestamp, ClockError> {
        let ahead_ns = remote.wall_ns.saturating_sub(physical_ns);
        if ahead_ns > self.max_offset_ns {
            return Err(ClockError::OffsetExceeded {
                remote_ns: remote.wall_ns,
                ahead_ns,
                max_offset_ns: self.max_offset_ns,
            });
        }
        let latest = self.last.max(remote);
        self.last = if physical_ns > latest.wall_ns {
            HlcTimestamp::new(physical_ns, 0)
        } else {
            latest.successor()
        };
        Ok(self.last)
    }

    /// The interval containing true time when local physical time reads `physical_ns`.
    pub fn interval(&self, physical_ns: u64) -> TimeInterval {
        TimeInterval {
            earliest_ns: physical_ns.saturating_sub(self.max_offset_ns),
            latest_ns: physical_ns.saturating_add(self.max_offset_ns),
        }
    }

    /// How long to wait, from local physical time `physical_ns`, until `timestamp` is certainly in
    /// the past on every clock (Spanner's commit wait): after it, `interval().earliest_ns >
    /// timestamp.wall_ns`.
    pub fn commit_wait_ns(&self, timestamp: HlcTimestamp, physical_ns: u64) -> u64 {
        let earliest_ns = self.interval(physical_ns).earliest_ns;
        (timestamp.wall_ns + 1).saturating_sub(earliest_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_nanosecond_events_use_the_logical_part() {
        let mut clock = HybridClock::new(1_000);
        assert_eq!(clock.now(50), HlcTimestamp::new(50, 0));
        assert_eq!(clock.now(50), HlcTimestamp::new(50, 1));
        assert_eq!(clock.now(40), HlcTimestamp::new(50, 2));
        assert_eq!(clock.now(60), HlcTimestamp::new(60, 0));
    }

    #[test]
    fn receive_is_after_a_remote_timestamp_ahead_of_us() {
        let mut clock = HybridClock::new(1_000);
        clock.now(100);
        let received = clock.observe(HlcTimestamp::new(500, 3), 200).unwrap();
        assert_eq!(received, HlcTimestamp::new(500, 4));
        assert_eq!(clock.now(300), HlcTimestamp::new(500, 5));
    }

    #[test]
    fn remote_too_far_ahead_is_refused_and_changes_nothing() {
        let mut clock = HybridClock::new(1_000);
        clock.now(100);
        let before = clock.clone();
        let error = clock.observe(HlcTimestamp::new(5_000, 0), 100).unwrap_err();
        assert!(matches!(
            error,
            ClockError::OffsetExceeded {
                ahead_ns: 4_900,
                ..
            }
        ));
        assert_eq!(clock, before);
    }

    #[test]
    fn commit_wait_ends_once_earliest_passes_the_timestamp() {
        let mut clock = HybridClock::new(7);
        let (timestamp, interval) = clock.now_with_interval(1_000);
        assert_eq!(
            interval,
            TimeInterval {
                earliest_ns: 993,
                latest_ns: 1_007
            }
        );
        let wait_ns = clock.commit_wait_ns(timestamp, 1_000);
        assert_eq!(wait_ns, 8);
        assert!(clock.interval(1_000 + wait_ns).earliest_ns > timestamp.wall_ns);
        assert!(clock.interval(1_000 + wait_ns - 1).earliest_ns <= timestamp.wall_ns);
    }
}

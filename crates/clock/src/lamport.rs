//! Lamport's scalar logical clock.

use serde::{Deserialize, Serialize};

/// A Lamport clock: if event a happened before b then `time(a) < time(b)` (not the converse).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LamportClock {
    time: u64,
}

impl LamportClock {
    /// A clock at time 0, before any event.
    pub fn new() -> Self {
        Self::default()
    }

    /// The time of the latest event this clock has seen.
    pub fn time(&self) -> u64 {
        self.time
    }

    /// Records a local event (or a send) and returns its timestamp.
    pub fn tick(&mut self) -> u64 {
        self.time += 1;
        self.time
    }

    /// Records the receipt of a message stamped `remote` and returns the receive event's timestamp.
    pub fn observe(&mut self, remote: u64) -> u64 {
        self.time = self.time.max(remote) + 1;
        self.time
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_is_after_send() {
        let mut sender = LamportClock::new();
        let mut receiver = LamportClock::new();
        for _ in 0..5 {
            sender.tick();
        }
        let sent = sender.tick();
        let received = receiver.observe(sent);
        assert!(received > sent);
        assert_eq!(receiver.tick(), received + 1);
    }
}

//! The disk model: per node a durable part (what survives a crash) and an ordered queue of writes
//! not yet durable. Writes become durable one after another, each after `write_latency_ns`.

use std::collections::VecDeque;

use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::SimRng;
use crate::process::{Storage, Token};

/// Disk timing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskConfig {
    /// Time for one write to become durable (write + fsync), in nanoseconds.
    pub write_latency_ns: u64,
}

impl Default for DiskConfig {
    fn default() -> Self {
        Self {
            write_latency_ns: 1_000_000,
        }
    }
}

/// A write waiting to become durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingWrite {
    /// Storage key.
    pub key: String,
    /// New bytes, or `None` to delete.
    pub value: Option<Vec<u8>>,
    /// Handed back when durable.
    pub token: Token,
}

/// One node's disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Disk {
    durable: Storage,
    pending: VecDeque<PendingWrite>,
    busy_until_ns: u64,
}

impl Disk {
    /// What survives a crash.
    pub fn durable(&self) -> &Storage {
        &self.durable
    }

    /// Writes not yet durable, oldest first.
    pub fn pending(&self) -> impl Iterator<Item = &PendingWrite> {
        self.pending.iter()
    }

    /// Queues a write at true time `now_ns`; returns when it will be durable.
    pub fn submit(&mut self, write: PendingWrite, now_ns: u64, config: &DiskConfig) -> u64 {
        self.busy_until_ns = self.busy_until_ns.max(now_ns) + config.write_latency_ns;
        self.pending.push_back(write);
        self.busy_until_ns
    }

    /// Makes the oldest pending write durable and returns its token.
    pub fn complete_oldest(&mut self) -> Option<Token> {
        let write = self.pending.pop_front()?;
        self.durable.apply(write.key, write.value);
        Some(write.token)
    }

    /// A crash: a random prefix of the pending writes reached the platter (the OS may have
    /// flushed them), the rest are lost. Returns how many were lost.
    pub fn crash(&mut self, rng: &mut SimRng) -> usize {
        let kept = rng.random_range(0..=self.pending.len());
        for _ in 0..kept {
            let _ = self.complete_oldest();
        }
        let lost = self.pending.len();
        self.pending.clear();
        self.busy_until_ns = 0;
        lost
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn crash_keeps_durable_writes_and_a_prefix_of_pending_ones() {
        let config = DiskConfig::default();
        let mut disk = Disk::default();
        let write = |key: &str, token| PendingWrite {
            key: key.into(),
            value: Some(vec![token as u8]),
            token,
        };
        assert_eq!(disk.submit(write("a", 1), 0, &config), 1_000_000);
        assert_eq!(disk.submit(write("b", 2), 0, &config), 2_000_000);
        disk.submit(write("c", 3), 0, &config);
        assert_eq!(disk.complete_oldest(), Some(1));
        let mut rng = SimRng::seed_from_u64(5);
        let lost = disk.crash(&mut rng);
        let storage = disk.durable();
        assert_eq!(storage.get("a"), Some(&[1u8][..]));
        assert_eq!(
            storage.len(),
            3 - lost,
            "a prefix survived, the rest is lost"
        );
        if storage.get("c").is_some() {
            assert!(storage.get("b").is_some(), "writes survive in order");
        }
        assert_eq!(disk.pending().count(), 0);
    }
}

//! The network model: where nodes sit, how long a message takes between them, and which messages
//! are lost, duplicated, delayed out of order or blocked by a partition.
//!
//! Per-link state is sparse: latency comes from a small site-by-site table (sites are the distinct
//! locations nodes are placed at), and only explicit per-link overrides are stored, so 10,000 nodes
//! cost a few bytes each.

use std::collections::BTreeMap;
use std::fmt;

use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::SimRng;
use crate::geo::{FIBRE_FRACTION, Location};
use crate::process::NodeId;

/// Tunable link behaviour shared by every link (overrides aside).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkConfig {
    /// Fixed cost added to every message: serialisation, switching, kernel, in nanoseconds.
    pub overhead_ns: u64,
    /// Uniform random extra delay in `[0, jitter_ns]`; it also reorders close messages.
    pub jitter_ns: u64,
    /// Probability that a message is lost.
    pub loss: f64,
    /// Probability that a message is delivered twice (the copy gets its own delay).
    pub duplicate: f64,
    /// Probability that a message is held back by up to `reorder_delay_ns` extra (explicit reordering).
    pub reorder: f64,
    /// Largest extra delay of a reordered message, in nanoseconds.
    pub reorder_delay_ns: u64,
    /// One-way delay between a client and the node it talks to, in nanoseconds (clients sit next
    /// to their node and are not cut off by partitions between nodes).
    pub client_latency_ns: u64,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            overhead_ns: 200_000,
            jitter_ns: 1_000_000,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay_ns: 20_000_000,
            client_latency_ns: 100_000,
        }
    }
}

/// A per-link exception to the shared config (only these are stored per link).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkOverride {
    /// Loss probability on this directed link, replacing the shared one.
    pub loss: Option<f64>,
    /// Extra one-way delay on this link, in nanoseconds.
    pub extra_latency_ns: u64,
    /// Every message on this directed link is dropped.
    pub blocked: bool,
}

/// A partition: every node belongs to a group, and some directed group pairs cannot talk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// Short description, e.g. `majority/minority {0,1,2} | {3,4}`.
    pub description: String,
    /// Group of each node, indexed by node id.
    pub group_of: Vec<u8>,
    /// Directed `(from_group, to_group)` pairs whose messages are dropped.
    pub blocked: Vec<(u8, u8)>,
}

/// Shapes of partition the nemesis can draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PartitionKind {
    /// Two sides, a strict majority and a minority, cut both ways.
    MajorityMinority,
    /// Two sides where only the minority's messages to the majority are lost (one-way).
    Asymmetric,
    /// Two sides cut from each other, plus one bridge node that still talks to both.
    Bridge,
    /// Three groups, no traffic between any two.
    ThreeWay,
    /// One node cut off from all others.
    Isolate,
}

impl PartitionKind {
    /// Every kind, for random choice.
    pub const ALL: [PartitionKind; 5] = [
        PartitionKind::MajorityMinority,
        PartitionKind::Asymmetric,
        PartitionKind::Bridge,
        PartitionKind::ThreeWay,
        PartitionKind::Isolate,
    ];
}

impl Partition {
    /// Builds a partition from explicit groups (node lists); nodes not listed join group 0.
    pub fn from_groups(
        nodes: usize,
        groups: &[Vec<NodeId>],
        blocked: Vec<(u8, u8)>,
        label: &str,
    ) -> Self {
        let mut group_of = vec![0u8; nodes];
        for (group, members) in groups.iter().enumerate() {
            for &node in members {
                if let Some(slot) = group_of.get_mut(node as usize) {
                    *slot = group as u8;
                }
            }
        }
        let sides: Vec<String> = groups.iter().map(|members| format_set(members)).collect();
        Self {
            description: format!("{label} {}", sides.join(" | ")),
            group_of,
            blocked,
        }
    }

    /// Two groups cut both ways.
    pub fn symmetric(nodes: usize, side: &[NodeId]) -> Self {
        let rest = complement(nodes, side);
        Partition::from_groups(
            nodes,
            &[rest, side.to_vec()],
            vec![(0, 1), (1, 0)],
            "symmetric",
        )
    }

    /// Draws a partition of `kind` over `nodes` nodes using `rng`.
    pub fn random(kind: PartitionKind, nodes: usize, rng: &mut SimRng) -> Self {
        let mut order: Vec<NodeId> = (0..nodes as NodeId).collect();
        shuffle(&mut order, rng);
        let minority = nodes.saturating_sub(1) / 2;
        let minority = minority.max(1).min(nodes.saturating_sub(1));
        let (small, large) = order.split_at(minority);
        let (mut small, mut large) = (small.to_vec(), large.to_vec());
        small.sort_unstable();
        large.sort_unstable();
        match kind {
            PartitionKind::MajorityMinority => Partition::from_groups(
                nodes,
                &[large, small],
                vec![(0, 1), (1, 0)],
                "majority/minority",
            ),
            PartitionKind::Asymmetric => Partition::from_groups(
                nodes,
                &[large, small],
                vec![(1, 0)],
                "one-way (minority cannot reach majority)",
            ),
            PartitionKind::Bridge => {
                let bridge = order[nodes / 2];
                let mut left: Vec<NodeId> = order[..nodes / 2].to_vec();
                let mut right: Vec<NodeId> = order[nodes / 2 + 1..].to_vec();
                left.sort_unstable();
                right.sort_unstable();
                Partition::from_groups(
                    nodes,
                    &[left, right, vec![bridge]],
                    vec![(0, 1), (1, 0)],
                    "bridge",
                )
            }
            PartitionKind::ThreeWay => {
                let third = nodes.div_ceil(3).max(1);
                let mut groups: Vec<Vec<NodeId>> = order.chunks(third).map(<[_]>::to_vec).collect();
                groups.iter_mut().for_each(|group| group.sort_unstable());
                let count = groups.len() as u8;
                let blocked = (0..count)
                    .flat_map(|a| (0..count).filter(move |&b| b != a).map(move |b| (a, b)))
                    .collect();
                Partition::from_groups(nodes, &groups, blocked, "three-way")
            }
            PartitionKind::Isolate => {
                let lonely = order[0];
                Partition::symmetric(nodes, &[lonely])
            }
        }
    }

    /// Whether a message from `from` to `to` is cut.
    pub fn blocks(&self, from: NodeId, to: NodeId) -> bool {
        let group = |node: NodeId| self.group_of.get(node as usize).copied().unwrap_or(0);
        let pair = (group(from), group(to));
        pair.0 != pair.1 && self.blocked.contains(&pair)
    }
}

fn complement(nodes: usize, side: &[NodeId]) -> Vec<NodeId> {
    (0..nodes as NodeId)
        .filter(|node| !side.contains(node))
        .collect()
}

fn format_set(members: &[NodeId]) -> String {
    if members.len() > 12 {
        return format!("{{{} nodes}}", members.len());
    }
    let names: Vec<String> = members.iter().map(NodeId::to_string).collect();
    format!("{{{}}}", names.join(","))
}

/// Fisher–Yates shuffle driven by the run's RNG.
pub fn shuffle<T>(items: &mut [T], rng: &mut SimRng) {
    for index in (1..items.len()).rev() {
        let other = rng.random_range(0..=index);
        items.swap(index, other);
    }
}

/// Why a message was not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum DropReason {
    /// Random loss.
    Loss,
    /// Cut by a partition or a blocked link.
    Partition,
    /// The receiver was down when the message arrived.
    NodeDown,
    /// The receiver does not exist.
    NoSuchNode,
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DropReason::Loss => "loss",
            DropReason::Partition => "partition",
            DropReason::NodeDown => "node-down",
            DropReason::NoSuchNode => "no-such-node",
        })
    }
}

/// What the network decided for one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Dropped, for this reason.
    Dropped(DropReason),
    /// Delivered after `delay_ns`, and once more after `duplicate_ns` if set.
    Delivered {
        /// One-way delay of the message.
        delay_ns: u64,
        /// Delay of a duplicate copy, if the network duplicates this one.
        duplicate_ns: Option<u64>,
    },
}

/// Node placement, latency table, current partition and link overrides.
#[derive(Clone, Debug)]
pub struct Network {
    config: NetworkConfig,
    sites: Vec<Location>,
    site_of: Vec<u16>,
    base_ns: Vec<u64>,
    partition: Option<Partition>,
    overrides: BTreeMap<(NodeId, NodeId), LinkOverride>,
}

impl Network {
    /// Places `nodes` nodes round-robin over `placement` (all in virginia if empty).
    pub fn new(config: NetworkConfig, nodes: usize, placement: &[Location]) -> Self {
        let mut sites: Vec<Location> = Vec::new();
        let mut site_of = Vec::with_capacity(nodes);
        let fallback = [Location::region("virginia").unwrap_or(Location {
            name: "virginia".into(),
            latitude_deg: 39.0,
            longitude_deg: -77.5,
        })];
        let placement = if placement.is_empty() {
            &fallback[..]
        } else {
            placement
        };
        for node in 0..nodes {
            let location = &placement[node % placement.len()];
            let site = match sites.iter().position(|site| site == location) {
                Some(site) => site,
                None => {
                    sites.push(location.clone());
                    sites.len() - 1
                }
            };
            site_of.push(site as u16);
        }
        let base_ns = sites
            .iter()
            .flat_map(|a| sites.iter().map(move |b| a.one_way_ns(b, FIBRE_FRACTION)))
            .collect();
        Self {
            config,
            sites,
            site_of,
            base_ns,
            partition: None,
            overrides: BTreeMap::new(),
        }
    }

    /// The shared link config.
    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    /// Number of nodes placed.
    pub fn nodes(&self) -> usize {
        self.site_of.len()
    }

    /// Where `node` sits.
    pub fn location(&self, node: NodeId) -> Option<&Location> {
        let site = *self.site_of.get(node as usize)?;
        self.sites.get(site as usize)
    }

    /// Propagation delay in fibre between two nodes' sites, without overhead or jitter.
    pub fn propagation_ns(&self, from: NodeId, to: NodeId) -> u64 {
        let site = |node: NodeId| self.site_of.get(node as usize).copied().unwrap_or(0) as usize;
        self.base_ns[site(from) * self.sites.len() + site(to)]
    }

    /// The partition in force, if any.
    pub fn partition(&self) -> Option<&Partition> {
        self.partition.as_ref()
    }

    /// Replaces the partition (`None` heals it).
    pub fn set_partition(&mut self, partition: Option<Partition>) {
        self.partition = partition;
    }

    /// Sets or (with `None`) clears the override on the directed link `from → to`.
    pub fn set_override(&mut self, from: NodeId, to: NodeId, link: Option<LinkOverride>) {
        match link {
            Some(link) => self.overrides.insert((from, to), link),
            None => self.overrides.remove(&(from, to)),
        };
    }

    /// Sets the loss probability shared by every link (overrides aside).
    pub fn set_loss(&mut self, probability: f64) {
        self.config.loss = probability.clamp(0.0, 1.0);
    }

    /// Sets the duplication probability shared by every link.
    pub fn set_duplicate(&mut self, probability: f64) {
        self.config.duplicate = probability.clamp(0.0, 1.0);
    }

    /// Sets the probability that a message is held back (reordered) on every link.
    pub fn set_reorder(&mut self, probability: f64) {
        self.config.reorder = probability.clamp(0.0, 1.0);
    }

    /// Clears every link override.
    pub fn clear_overrides(&mut self) {
        self.overrides.clear();
    }

    /// Decides the fate of one message from `from` to `to`.
    pub fn route(&self, from: NodeId, to: NodeId, rng: &mut SimRng) -> Route {
        if to as usize >= self.site_of.len() {
            return Route::Dropped(DropReason::NoSuchNode);
        }
        if let Some(partition) = &self.partition
            && partition.blocks(from, to)
        {
            return Route::Dropped(DropReason::Partition);
        }
        let mut loss = self.config.loss;
        let mut extra_ns = 0;
        if !self.overrides.is_empty()
            && let Some(link) = self.overrides.get(&(from, to))
        {
            if link.blocked {
                return Route::Dropped(DropReason::Partition);
            }
            loss = link.loss.unwrap_or(loss);
            extra_ns = link.extra_latency_ns;
        }
        if loss > 0.0 && rng.random_bool(loss.min(1.0)) {
            return Route::Dropped(DropReason::Loss);
        }
        let base_ns = self.propagation_ns(from, to) + self.config.overhead_ns + extra_ns;
        let delay_ns = base_ns + self.extra_delay_ns(rng);
        let duplicate_ns = (self.config.duplicate > 0.0
            && rng.random_bool(self.config.duplicate.min(1.0)))
        .then(|| base_ns + self.extra_delay_ns(rng));
        Route::Delivered {
            delay_ns,
            duplicate_ns,
        }
    }

    fn extra_delay_ns(&self, rng: &mut SimRng) -> u64 {
        let mut extra_ns = 0;
        if self.config.jitter_ns > 0 {
            extra_ns += rng.random_range(0..=self.config.jitter_ns);
        }
        if self.config.reorder > 0.0 && rng.random_bool(self.config.reorder.min(1.0)) {
            extra_ns += rng.random_range(0..=self.config.reorder_delay_ns);
        }
        extra_ns
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn places(names: &[&str]) -> Vec<Location> {
        names.iter().map(|name| name.parse().unwrap()).collect()
    }

    #[test]
    fn latency_follows_distance_in_fibre_plus_overhead() {
        let config = NetworkConfig {
            jitter_ns: 0,
            ..NetworkConfig::default()
        };
        let network = Network::new(config, 2, &places(&["new-york", "london"]));
        let mut rng = SimRng::seed_from_u64(1);
        let Route::Delivered { delay_ns, .. } = network.route(0, 1, &mut rng) else {
            panic!("no partition, no loss: must deliver");
        };
        // ≈ 5,570 km at 2/3 c ≈ 27.9 ms, plus 0.2 ms overhead.
        assert!((delay_ns as f64 / 1e6 - 28.1).abs() < 0.2, "{delay_ns}");
    }

    #[test]
    fn partitions_block_the_directions_they_name() {
        let mut rng = SimRng::seed_from_u64(3);
        let one_way = Partition::random(PartitionKind::Asymmetric, 5, &mut rng);
        let minority: Vec<NodeId> = (0..5)
            .filter(|&n| one_way.group_of[n as usize] == 1)
            .collect();
        let majority: Vec<NodeId> = (0..5)
            .filter(|&n| one_way.group_of[n as usize] == 0)
            .collect();
        assert_eq!((minority.len(), majority.len()), (2, 3));
        assert!(one_way.blocks(minority[0], majority[0]));
        assert!(!one_way.blocks(majority[0], minority[0]));
        let bridge = Partition::random(PartitionKind::Bridge, 5, &mut rng);
        let hub = (0..5).find(|&n| bridge.group_of[n as usize] == 2).unwrap();
        for other in (0..5).filter(|&n| n != hub) {
            assert!(!bridge.blocks(hub, other) && !bridge.blocks(other, hub));
        }
        let three = Partition::random(PartitionKind::ThreeWay, 6, &mut rng);
        let cut = (0..6u64)
            .flat_map(|a| (0..6u64).map(move |b| (a, b)))
            .filter(|&(a, b)| three.blocks(a, b))
            .count();
        assert_eq!(cut, 24, "three groups of two: 6·6 − 3·4 directed pairs cut");
    }

    #[test]
    fn loss_and_overrides_apply_per_link() {
        let mut network = Network::new(NetworkConfig::default(), 3, &[]);
        let mut rng = SimRng::seed_from_u64(9);
        let blocked = LinkOverride {
            blocked: true,
            ..LinkOverride::default()
        };
        network.set_override(0, 1, Some(blocked));
        assert_eq!(
            network.route(0, 1, &mut rng),
            Route::Dropped(DropReason::Partition)
        );
        assert!(matches!(
            network.route(1, 0, &mut rng),
            Route::Delivered { .. }
        ));
        assert_eq!(
            network.route(0, 7, &mut rng),
            Route::Dropped(DropReason::NoSuchNode)
        );
    }
}

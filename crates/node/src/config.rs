//! A node's configuration: who it is, where every node of the cluster listens, where its data
//! lives and the cluster's secrets. Built from flags or read from a TOML file.
//!
//! ```toml
//! id = 1
//! data_dir = "concur-data/n1"
//! cluster_key = "change me"
//! # password = "for AUTH"
//! [[nodes]]
//! id = 1
//! peer = "127.0.0.1:9001"
//! redis = "127.0.0.1:7001"
//! http = "127.0.0.1:8001"
//! # … one [[nodes]] table per node
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sim::NodeId;
use thiserror::Error;

/// Where one node listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddresses {
    /// The node's id (1, 2, 3…; shown as n1, n2, n3).
    pub id: NodeId,
    /// Node-to-node traffic.
    pub peer: SocketAddr,
    /// Redis clients.
    pub redis: SocketAddr,
    /// HTTP clients.
    pub http: SocketAddr,
}

/// Everything one node needs to run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeConfig {
    /// This node's id; must appear in `nodes`.
    pub id: NodeId,
    /// Every node of the cluster.
    pub nodes: Vec<NodeAddresses>,
    /// Where this node keeps its durable store.
    pub data_dir: PathBuf,
    /// The secret every node of the cluster shares; peers without it are refused.
    pub cluster_key: String,
    /// When set, Redis clients must `AUTH` with it (HTTP clients send it as a bearer token).
    #[serde(default)]
    pub password: Option<String>,
}

/// A configuration that cannot run.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for a node configuration.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's explanation.
        message: String,
    },
    /// The configuration is inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl NodeConfig {
    /// Reads and checks a TOML configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config: NodeConfig = toml::from_str(&text).map_err(|error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: error.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The configuration of node `id` in a local cluster of `nodes` nodes on loopback: node i
    /// serves Redis on `base_port + i`, HTTP on `base_port + 1000 + i` and peers on
    /// `base_port + 2000 + i`, with data in `data_root/n{i}`.
    pub fn local(
        id: NodeId,
        nodes: u64,
        base_port: u16,
        data_root: &Path,
        cluster_key: &str,
    ) -> Result<Self, ConfigError> {
        let config = Self {
            id,
            nodes: local_cluster(nodes, base_port)?,
            data_dir: data_root.join(format!("n{id}")),
            cluster_key: cluster_key.to_string(),
            password: None,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks ids are unique and contiguous, this node is listed and the key is not empty.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut ids: Vec<NodeId> = self.nodes.iter().map(|node| node.id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != self.nodes.len() {
            return Err(ConfigError::Invalid("two nodes share an id".into()));
        }
        if ids.is_empty() {
            return Err(ConfigError::Invalid("no nodes listed".into()));
        }
        if ids.windows(2).any(|pair| pair[1] != pair[0] + 1) {
            return Err(ConfigError::Invalid(format!(
                "node ids must be contiguous (got {ids:?})"
            )));
        }
        if !ids.contains(&self.id) {
            return Err(ConfigError::Invalid(format!(
                "this node's id {} is not among the nodes {ids:?}",
                self.id
            )));
        }
        if self.cluster_key.is_empty() {
            return Err(ConfigError::Invalid("the cluster key is empty".into()));
        }
        Ok(())
    }

    /// This node's addresses.
    pub fn this(&self) -> NodeAddresses {
        self.nodes
            .iter()
            .copied()
            .find(|node| node.id == self.id)
            .unwrap_or(NodeAddresses {
                id: self.id,
                peer: SocketAddr::from(([127, 0, 0, 1], 0)),
                redis: SocketAddr::from(([127, 0, 0, 1], 0)),
                http: SocketAddr::from(([127, 0, 0, 1], 0)),
            })
    }

    /// Every node's id.
    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(|node| node.id).collect()
    }

    /// Peer addresses by id (this node included).
    pub fn peers(&self) -> BTreeMap<NodeId, SocketAddr> {
        self.nodes.iter().map(|node| (node.id, node.peer)).collect()
    }
}

/// The addresses of a local cluster of `nodes` nodes numbered from 1 (see [`NodeConfig::local`]).
pub fn local_cluster(nodes: u64, base_port: u16) -> Result<Vec<NodeAddresses>, ConfigError> {
    if nodes == 0 || nodes > 99 {
        return Err(ConfigError::Invalid(format!(
            "a local cluster has 1 to 99 nodes, not {nodes}"
        )));
    }
    let port = |offset: u64, id: u64| -> Result<u16, ConfigError> {
        u16::try_from(u64::from(base_port) + offset + id).map_err(|_| {
            ConfigError::Invalid(format!(
                "base port {base_port} leaves no room for {nodes} nodes (ports up to base + 2000 + n)"
            ))
        })
    };
    (1..=nodes)
        .map(|id| {
            Ok(NodeAddresses {
                id,
                redis: SocketAddr::from(([127, 0, 0, 1], port(0, id)?)),
                http: SocketAddr::from(([127, 0, 0, 1], port(1_000, id)?)),
                peer: SocketAddr::from(([127, 0, 0, 1], port(2_000, id)?)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_cluster_uses_the_documented_ports() {
        let config = NodeConfig::local(2, 3, 7000, Path::new("concur-data"), "key").unwrap();
        let this = config.this();
        assert_eq!(this.redis.port(), 7002);
        assert_eq!(this.http.port(), 8002);
        assert_eq!(this.peer.port(), 9002);
        assert_eq!(config.data_dir, Path::new("concur-data/n2"));
        assert_eq!(config.ids(), vec![1, 2, 3]);
    }

    #[test]
    fn bad_configurations_are_refused_with_reasons() {
        assert!(local_cluster(0, 7000).is_err());
        assert!(local_cluster(3, 65_000).is_err());
        let mut config = NodeConfig::local(1, 3, 7000, Path::new("d"), "key").unwrap();
        config.id = 9;
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("not among")
        );
        config.id = 1;
        config.cluster_key.clear();
        assert!(config.validate().unwrap_err().to_string().contains("key"));
    }

    #[test]
    fn a_toml_file_round_trips() {
        let config = NodeConfig::local(1, 3, 7000, Path::new("d"), "secret").unwrap();
        let text = toml::to_string(&config).unwrap();
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("node.toml");
        std::fs::write(&path, text).unwrap();
        assert_eq!(NodeConfig::load(&path).unwrap(), config);
        std::fs::write(&path, "id = \"one\"").unwrap();
        assert!(matches!(
            NodeConfig::load(&path),
            Err(ConfigError::Parse { .. })
        ));
    }
}

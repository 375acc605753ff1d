//! Editing traces (the format of `shared/traces/README.md`): parsing and replay.
//!
//! A sequential trace is replayed as local edits into one document; a concurrent trace
//! (`"kind": "concurrent"`) gives each agent its own replica, applies each transaction once
//! that replica holds exactly the transaction's parents, and finally merges everything
//! everywhere.

use std::io::Read;

use serde::Deserialize;

use crate::doc::{ApplyError, Document, EditError};
use crate::op::{ReplicaId, Version};

/// Replica id of the observer that collects every operation in a concurrent replay.
const OBSERVER: ReplicaId = u64::MAX;
/// Replica ids above this are forks of agents that branched from an older version.
const FORK_BASE: ReplicaId = 1 << 40;

/// Why a trace could not be read or replayed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// The file is not gzip-compressed or plain JSON in the trace format.
    #[error("malformed trace: {0}")]
    Malformed(String),
    /// A patch does not fit the document it applies to.
    #[error("{what} {index} does not fit the document")]
    Patch {
        /// "patch" (index among all patches, sequential replay) or "transaction".
        what: &'static str,
        /// Index of the patch or transaction.
        index: usize,
        /// What was wrong.
        source: EditError,
    },
    /// A transaction's parents or agent are inconsistent with the replay.
    #[error("transaction {txn}: {reason}")]
    Causality {
        /// Index of the transaction.
        txn: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// Merging replicas failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

/// One patch: delete `.1` code points at `.0`, then insert `.2` there.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Patch(pub u64, pub u64, pub String);

/// One transaction of a trace.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Txn {
    /// The agent that made it (concurrent traces only).
    #[serde(default)]
    pub agent: Option<u64>,
    /// Indices of the transactions it was made on (concurrent traces only).
    #[serde(default)]
    pub parents: Vec<usize>,
    /// Patches, applied in order.
    pub patches: Vec<Patch>,
}

/// A parsed editing trace.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Trace {
    /// `"concurrent"` for the concurrent variant; absent for sequential traces.
    #[serde(default)]
    pub kind: Option<String>,
    /// The document before the first transaction.
    #[serde(rename = "startContent", default)]
    pub start_content: String,
    /// The document after every transaction.
    #[serde(rename = "endContent")]
    pub end_content: String,
    /// Number of agents (concurrent traces only).
    #[serde(rename = "numAgents", default)]
    pub num_agents: Option<u64>,
    /// Transactions in order.
    pub txns: Vec<Txn>,
}

impl Trace {
    /// Parses a trace from JSON bytes, gunzipping first if they start with the gzip magic.
    pub fn parse(bytes: &[u8]) -> Result<Trace, TraceError> {
        if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut json = Vec::new();
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut json)
                .map_err(|e| TraceError::Malformed(format!("gzip: {e}")))?;
            return Self::parse_json(&json);
        }
        Self::parse_json(bytes)
    }

    /// Parses a trace from JSON bytes.
    fn parse_json(json: &[u8]) -> Result<Trace, TraceError> {
        serde_json::from_slice(json).map_err(|e| TraceError::Malformed(e.to_string()))
    }

    /// Whether this is the concurrent variant.
    pub fn is_concurrent(&self) -> bool {
        self.kind.as_deref() == Some("concurrent")
    }

    /// Every patch of every transaction, in order, in one contiguous vector (so a timed replay
    /// measures the document, not walking the parsed JSON's nested vectors).
    pub fn flat_patches(&self) -> Vec<Patch> {
        self.txns
            .iter()
            .flat_map(|t| t.patches.iter().cloned())
            .collect()
    }

    /// Number of patches in all transactions.
    pub fn patch_count(&self) -> usize {
        self.txns.iter().map(|t| t.patches.len()).sum()
    }
}

/// Applies patches to `doc` as local edits; errors name `what` number `index`.
fn apply_patches(
    doc: &mut Document,
    what: &'static str,
    index: usize,
    patches: &[Patch],
) -> Result<(), TraceError> {
    let error = |source| TraceError::Patch {
        what,
        index,
        source,
    };
    for Patch(pos, deleted, inserted) in patches {
        let end = pos
            .checked_add(*deleted)
            .ok_or(error(EditError::OutOfRange {
                start: *pos,
                end: u64::MAX,
                len: doc.len(),
            }))?;
        doc.delete(*pos..end).map_err(error)?;
        doc.insert(*pos, inserted).map_err(error)?;
    }
    Ok(())
}

/// Replays a sequential trace as local edits into one document (undo history off).
pub fn replay_sequential(trace: &Trace) -> Result<Document, TraceError> {
    replay_patches(&trace.start_content, &trace.flat_patches())
}

/// Replays patches (as from [`Trace::flat_patches`]) as local edits into one document that
/// starts as `start` (undo history off). Errors name the patch index.
pub fn replay_patches(start: &str, patches: &[Patch]) -> Result<Document, TraceError> {
    let mut doc = Document::new(0);
    doc.set_undo_limit(0);
    apply_patches(
        &mut doc,
        "startContent",
        0,
        &[Patch(0, 0, start.to_owned())],
    )?;
    for (index, patch) in patches.iter().enumerate() {
        apply_patches(&mut doc, "patch", index, std::slice::from_ref(patch))?;
    }
    Ok(doc)
}

/// Replays a concurrent trace with one replica per agent (replica id = agent number) and
/// merges everything everywhere; returns the replicas. An agent whose transaction is made on
/// an older version than its replica already holds (a branch) continues on a fork with a new
/// replica id, so identifiers never repeat.
pub fn replay_concurrent(trace: &Trace) -> Result<Vec<Document>, TraceError> {
    let agents_max = trace
        .txns
        .iter()
        .filter_map(|t| t.agent)
        .max()
        .map_or(0, |a| a + 1);
    let agents = trace.num_agents.unwrap_or(0).max(agents_max);
    if agents > 1 << 16 {
        return Err(TraceError::Malformed("too many agents".into()));
    }
    let mut replicas: Vec<Document> = (0..agents)
        .map(|a| {
            let mut doc = Document::new(a);
            doc.set_undo_limit(0);
            doc
        })
        .collect();
    let mut observer = Document::new(OBSERVER);
    // Each transaction's version is kept only until its last child has used it.
    let mut children_left = vec![0u32; trace.txns.len()];
    for txn in &trace.txns {
        for &parent in &txn.parents {
            if let Some(count) = children_left.get_mut(parent) {
                *count += 1;
            }
        }
    }
    let mut versions: Vec<Option<Version>> = Vec::with_capacity(trace.txns.len());
    let mut forks = 0u64;
    for (index, txn) in trace.txns.iter().enumerate() {
        let causality = |reason| TraceError::Causality { txn: index, reason };
        let agent = txn.agent.ok_or_else(|| causality("no agent"))? as usize;
        let mut parents = Version::new();
        for &parent in &txn.parents {
            let version = versions
                .get_mut(parent)
                .ok_or_else(|| causality("parent is not an earlier transaction"))?;
            children_left[parent] -= 1;
            let kept = if children_left[parent] == 0 {
                version.take()
            } else {
                version.clone()
            };
            parents.merge(&kept.ok_or_else(|| causality("parent listed twice"))?);
        }
        let agent_replica = replicas
            .get_mut(agent)
            .ok_or_else(|| causality("agent out of range"))?;
        if !parents.includes(&agent_replica.version()) {
            // The agent edits on top of an older version than its replica holds (a branch, as
            // in histories taken from git): continue as a new replica id, forked from the
            // latest replica whose version the parents include (or from scratch).
            let base = replicas
                .iter()
                .filter(|r| parents.includes(&r.version()))
                .max_by_key(|r| r.version().iter().map(|(_, c)| c).sum::<u64>());
            forks += 1;
            let fork_id = FORK_BASE + forks;
            let fork = match base {
                Some(base) => base.fork(fork_id),
                None => {
                    let mut doc = Document::new(fork_id);
                    doc.set_undo_limit(0);
                    doc
                }
            };
            replicas[agent] = fork;
        }
        let replica = &mut replicas[agent];
        let held = replica.version();
        if held != parents {
            let ops = observer.ops_between(&held, Some(&parents));
            replica.apply_ops(ops)?;
        }
        apply_patches(replica, "transaction", index, &txn.patches)?;
        versions.push(Some(replica.version()));
        let ops = replica.ops_since(&observer.version());
        observer.apply_ops(ops)?;
    }
    for replica in &mut replicas {
        let ops = observer.ops_since(&replica.version());
        replica.apply_ops(ops)?;
    }
    Ok(replicas)
}

//! `concur partition` and `concur heal`: cut and restore the links between the nodes of a running
//! cluster, through each node's `POST /admin/partition` and `POST /admin/heal`.
//!
//! Group syntax: `concur partition n1 n2|n3` (quote it for the shell: `'n1 n2|n3'`) or
//! `concur partition n1,n2 n3`. All arguments are joined with spaces; when the text holds a `|`,
//! groups are split on `|` and members on spaces or commas; otherwise each word is a group whose
//! members are split on commas. Nodes are named `n1` or `1`. A node in no group is isolated.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

/// How long one admin request may take before the node counts as unreachable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// Where the nodes' HTTP servers listen, shared by `partition` and `heal`.
#[derive(clap::Args, Debug, Clone)]
pub struct ClusterAddressArgs {
    /// Number of nodes of the local cluster (ignored with --http).
    #[arg(long, default_value_t = 3)]
    pub nodes: u64,
    /// Local cluster ports: node i serves HTTP on B+1000+i (as `concur up --base-port B`).
    #[arg(long, default_value_t = 7000)]
    pub base_port: u16,
    /// The nodes' HTTP addresses in node order (n1 first), instead of the local layout.
    #[arg(long, value_name = "ADDR,...", value_delimiter = ',')]
    pub http: Vec<SocketAddr>,
    /// Bearer token for clusters started with a password.
    #[arg(long, env = "CONCUR_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

/// Flags of `concur partition`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples: concur partition 'n1 n2|n3'   concur partition n1,n2 n3   \
                        concur partition n1 (isolates n2 and n3 from n1 and from each other)"
)]
pub struct PartitionArgs {
    /// The groups that can still talk among themselves, e.g. `n1 n2|n3` or `n1,n2 n3`.
    #[arg(required = true, num_args = 1.., value_name = "GROUPS")]
    pub groups: Vec<String>,
    /// Where the nodes listen.
    #[command(flatten)]
    pub cluster: ClusterAddressArgs,
}

/// Flags of `concur heal`.
#[derive(clap::Args, Debug)]
pub struct HealArgs {
    /// Where the nodes listen.
    #[command(flatten)]
    pub cluster: ClusterAddressArgs,
}

/// What a node answers to `/admin/partition` and `/admin/heal`: the peers it now cuts off.
#[derive(Debug, Deserialize)]
struct CutAnswer {
    node: u64,
    cut: Vec<u64>,
}

/// Cuts the cluster into `args.groups`: tells every node which peers to cut, and prints what each
/// one cut.
pub fn partition(args: &PartitionArgs) -> anyhow::Result<()> {
    let addresses = http_addresses(&args.cluster)?;
    let groups = parse_groups(&args.groups, addresses.len() as u64)?;
    let body = serde_json::json!({ "groups": groups });
    println!("partition: {}", describe_groups(&groups));
    broadcast(&args.cluster, &addresses, "/admin/partition", &body)
}

/// Restores every link between the nodes of the cluster.
pub fn heal(args: &HealArgs) -> anyhow::Result<()> {
    let addresses = http_addresses(&args.cluster)?;
    broadcast(
        &args.cluster,
        &addresses,
        "/admin/heal",
        &serde_json::json!({}),
    )
}

/// `(node id, HTTP address)` of every node, from `--http` or the local layout.
fn http_addresses(args: &ClusterAddressArgs) -> anyhow::Result<Vec<(u64, SocketAddr)>> {
    if !args.http.is_empty() {
        return Ok((1..).zip(args.http.iter().copied()).collect());
    }
    let nodes = node::config::local_cluster(args.nodes, args.base_port)
        .context("cannot lay out the local cluster")?;
    Ok(nodes.iter().map(|node| (node.id, node.http)).collect())
}

/// Posts `body` to `path` on every node and prints each answer; fails (after trying them all)
/// when any node did not apply it.
fn broadcast(
    args: &ClusterAddressArgs,
    addresses: &[(u64, SocketAddr)],
    path: &str,
    body: &serde_json::Value,
) -> anyhow::Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(REQUEST_TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    let mut failed = Vec::new();
    for &(id, address) in addresses {
        match post(&agent, args.password.as_deref(), address, path, body) {
            Ok(answer) => println!("n{}: {}", answer.node, describe_cut(&answer.cut)),
            Err(error) => {
                println!("n{id}: FAILED ({error:#})");
                failed.push(format!("n{id}"));
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} nodes did not apply {path}: {}",
            failed.len(),
            addresses.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

fn post(
    agent: &ureq::Agent,
    password: Option<&str>,
    address: SocketAddr,
    path: &str,
    body: &serde_json::Value,
) -> anyhow::Result<CutAnswer> {
    let url = format!("http://{address}{path}");
    let mut request = agent.post(&url);
    if let Some(password) = password {
        request = request.header("authorization", format!("Bearer {password}"));
    }
    let mut response = request
        .send_json(body)
        .with_context(|| format!("{url} is unreachable"))?;
    let status = response.status();
    let text = response
        .body_mut()
        .read_to_string()
        .with_context(|| format!("{url}: unreadable answer"))?;
    if !status.is_success() {
        bail!("{url} answered {status}: {}", text.trim());
    }
    serde_json::from_str(&text).with_context(|| format!("{url}: unexpected answer {text:?}"))
}

fn describe_cut(cut: &[u64]) -> String {
    if cut.is_empty() {
        return "all links up".to_string();
    }
    let names: Vec<String> = cut.iter().map(|peer| format!("n{peer}")).collect();
    format!("cut links to {}", names.join(", "))
}

fn describe_groups(groups: &[Vec<u64>]) -> String {
    let groups: Vec<String> = groups
        .iter()
        .map(|group| {
            let names: Vec<String> = group.iter().map(|node| format!("n{node}")).collect();
            format!("{{{}}}", names.join(" "))
        })
        .collect();
    groups.join(" | ")
}

/// Parses partition groups over nodes `1..=nodes` (see the module docs for the syntax).
pub fn parse_groups(args: &[String], nodes: u64) -> anyhow::Result<Vec<Vec<u64>>> {
    let text = args.join(" ");
    let groups: Vec<Vec<&str>> = if text.contains('|') {
        text.split('|')
            .map(|group| {
                group
                    .split(|character: char| character.is_whitespace() || character == ',')
                    .filter(|name| !name.is_empty())
                    .collect()
            })
            .collect()
    } else {
        text.split_whitespace()
            .map(|group| group.split(',').filter(|name| !name.is_empty()).collect())
            .collect()
    };
    let mut seen = BTreeSet::new();
    let mut parsed = Vec::with_capacity(groups.len());
    for (index, group) in groups.iter().enumerate() {
        if group.is_empty() {
            bail!("group {} of {text:?} is empty", index + 1);
        }
        let mut members = Vec::with_capacity(group.len());
        for name in group {
            let node = parse_node_name(name, nodes)?;
            if !seen.insert(node) {
                bail!("n{node} appears twice in {text:?}; a node belongs to one group");
            }
            members.push(node);
        }
        parsed.push(members);
    }
    if parsed.is_empty() {
        bail!("no groups given; e.g. `concur partition 'n1 n2|n3'`");
    }
    Ok(parsed)
}

/// `n2`, `N2` or `2` → 2, checked against the cluster's `1..=nodes`.
fn parse_node_name(name: &str, nodes: u64) -> anyhow::Result<u64> {
    let digits = name.strip_prefix(['n', 'N']).unwrap_or(name);
    let node: u64 = digits
        .parse()
        .ok()
        .filter(|_| digits.bytes().all(|byte| byte.is_ascii_digit()))
        .with_context(|| format!("{name:?} is not a node name (expected n1, n2… or 1, 2…)"))?;
    if node == 0 || node > nodes {
        bail!("unknown node {name:?}: the cluster has n1 to n{nodes}");
    }
    Ok(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(args: &[&str], nodes: u64) -> anyhow::Result<Vec<Vec<u64>>> {
        let args: Vec<String> = args.iter().map(|arg| (*arg).to_string()).collect();
        parse_groups(&args, nodes)
    }

    #[test]
    fn bar_separates_groups_and_spaces_or_commas_separate_members() {
        assert_eq!(groups(&["n1 n2|n3"], 3).unwrap(), vec![vec![1, 2], vec![3]]);
        // The shell split it: `concur partition n1 n2 '|' n3`.
        assert_eq!(
            groups(&["n1", "n2", "|", "n3"], 3).unwrap(),
            vec![vec![1, 2], vec![3]]
        );
        assert_eq!(
            groups(&["n1,n2|n3 n4"], 5).unwrap(),
            vec![vec![1, 2], vec![3, 4]]
        );
        assert_eq!(
            groups(&["1 | 2 | 3"], 3).unwrap(),
            vec![vec![1], vec![2], vec![3]]
        );
    }

    #[test]
    fn without_a_bar_each_word_is_a_group_of_comma_separated_members() {
        assert_eq!(
            groups(&["n1,n2", "n3"], 3).unwrap(),
            vec![vec![1, 2], vec![3]]
        );
        assert_eq!(groups(&["n1,n2 n3"], 3).unwrap(), vec![vec![1, 2], vec![3]]);
        assert_eq!(
            groups(&["N1", "2", "n3"], 3).unwrap(),
            vec![vec![1], vec![2], vec![3]]
        );
        // One group: the nodes left out are isolated by the server.
        assert_eq!(groups(&["n1,n2"], 5).unwrap(), vec![vec![1, 2]]);
    }

    #[test]
    fn unknown_duplicate_and_malformed_names_are_refused_with_reasons() {
        let error = groups(&["n1 n4|n2"], 3).unwrap_err().to_string();
        assert!(
            error.contains("unknown node") && error.contains("n1 to n3"),
            "{error}"
        );
        let error = groups(&["n1 n2|n2"], 3).unwrap_err().to_string();
        assert!(error.contains("n2 appears twice"), "{error}");
        let error = groups(&["n1,n1"], 3).unwrap_err().to_string();
        assert!(error.contains("twice"), "{error}");
        let error = groups(&["n0"], 3).unwrap_err().to_string();
        assert!(error.contains("unknown node"), "{error}");
        let error = groups(&["node1"], 3).unwrap_err().to_string();
        assert!(error.contains("not a node name"), "{error}");
        let error = groups(&["n+1"], 3).unwrap_err().to_string();
        assert!(error.contains("not a node name"), "{error}");
        let error = groups(&["n1 n2|"], 3).unwrap_err().to_string();
        assert!(
            error.contains("group 2") && error.contains("empty"),
            "{error}"
        );
        let error = groups(&[" "], 3).unwrap_err().to_string();
        assert!(error.contains("no groups"), "{error}");
    }

    #[test]
    fn addresses_follow_the_local_layout_or_the_override() {
        let local = ClusterAddressArgs {
            nodes: 3,
            base_port: 7000,
            http: Vec::new(),
            password: None,
        };
        let addresses = http_addresses(&local).unwrap();
        let ports: Vec<(u64, u16)> = addresses.iter().map(|(id, a)| (*id, a.port())).collect();
        assert_eq!(ports, vec![(1, 8001), (2, 8002), (3, 8003)]);
        let given = ClusterAddressArgs {
            http: vec![
                "10.1.0.5:80".parse().unwrap(),
                "10.1.0.6:80".parse().unwrap(),
            ],
            ..local
        };
        let addresses = http_addresses(&given).unwrap();
        assert_eq!(addresses[1], (2, "10.1.0.6:80".parse().unwrap()));
    }

    #[test]
    fn groups_and_cuts_read_naturally() {
        assert_eq!(describe_groups(&[vec![1, 2], vec![3]]), "{n1 n2} | {n3}");
        assert_eq!(describe_cut(&[3]), "cut links to n3");
        assert_eq!(describe_cut(&[]), "all links up");
    }
}

//! `concur node` (one node of a cluster) and `concur up` (a whole local cluster on loopback).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use node::config::{NodeAddresses, NodeConfig, local_cluster};

/// Flags of `concur node`.
#[derive(clap::Args, Debug)]
pub struct NodeArgs {
    /// A TOML configuration file (see docs/node.md); the other flags are then ignored.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// This node's id (1, 2, 3…).
    #[arg(long, default_value_t = 1)]
    id: u64,
    /// Every node of the cluster as ID=PEER,REDIS,HTTP addresses, e.g.
    /// `--node 1=10.0.0.1:9001,10.0.0.1:7001,10.0.0.1:8001` (repeat per node). Without it, a local
    /// cluster of `--nodes` nodes on loopback is assumed.
    #[arg(long = "node", value_name = "ID=PEER,REDIS,HTTP")]
    nodes_list: Vec<String>,
    /// Size of the local cluster when no `--node` is given.
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Local cluster ports: Redis at B+i, HTTP at B+1000+i, peers at B+2000+i.
    #[arg(long, default_value_t = 7000)]
    base_port: u16,
    /// Root of the data directories (this node keeps its data in DIR/n<id>).
    #[arg(long, default_value = "concur-data")]
    data_dir: PathBuf,
    /// The cluster's shared secret.
    #[arg(long, env = "CONCUR_CLUSTER_KEY", conflicts_with = "cluster_key_file")]
    cluster_key: Option<String>,
    /// A file holding the cluster's shared secret.
    #[arg(long, value_name = "FILE")]
    cluster_key_file: Option<PathBuf>,
    /// Require Redis clients to AUTH with this password (HTTP: bearer token).
    #[arg(long, env = "CONCUR_PASSWORD")]
    password: Option<String>,
}

/// Flags of `concur up`.
#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Node i serves Redis on B+i, HTTP on B+1000+i and peers on B+2000+i.
    #[arg(long, default_value_t = 7000)]
    base_port: u16,
    /// Where the nodes keep their data (node i in DIR/n<i>); starting again recovers it.
    #[arg(long, default_value = "concur-data")]
    data_dir: PathBuf,
    /// Require Redis clients to AUTH with this password.
    #[arg(long, env = "CONCUR_PASSWORD")]
    password: Option<String>,
}

fn parse_node(text: &str) -> anyhow::Result<NodeAddresses> {
    let (id, addresses) = text
        .split_once('=')
        .with_context(|| format!("--node {text}: expected ID=PEER,REDIS,HTTP"))?;
    let id: u64 = id
        .trim_start_matches('n')
        .parse()
        .with_context(|| format!("--node {text}: the id must be a number"))?;
    let parts: Vec<&str> = addresses.split(',').collect();
    let [peer, redis, http] = parts.as_slice() else {
        bail!("--node {text}: expected three addresses PEER,REDIS,HTTP");
    };
    let address = |what: &str, text: &str| {
        text.parse()
            .with_context(|| format!("--node {id}: bad {what} address {text:?}"))
    };
    Ok(NodeAddresses {
        id,
        peer: address("peer", peer)?,
        redis: address("redis", redis)?,
        http: address("http", http)?,
    })
}

fn node_config(args: &NodeArgs) -> anyhow::Result<NodeConfig> {
    if let Some(path) = &args.config {
        return Ok(NodeConfig::load(path)?);
    }
    let cluster_key = match (&args.cluster_key, &args.cluster_key_file) {
        (Some(key), _) => key.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the cluster key from {}", path.display()))?
            .trim()
            .to_string(),
        (None, None) => bail!(
            "a cluster key is required: --cluster-key, --cluster-key-file or CONCUR_CLUSTER_KEY (every node needs the same one)"
        ),
    };
    let nodes = if args.nodes_list.is_empty() {
        local_cluster(args.nodes, args.base_port)?
    } else {
        args.nodes_list
            .iter()
            .map(|text| parse_node(text))
            .collect::<anyhow::Result<_>>()?
    };
    let config = NodeConfig {
        id: args.id,
        nodes,
        data_dir: args.data_dir.join(format!("n{}", args.id)),
        cluster_key,
        password: args.password.clone(),
    };
    config.validate()?;
    Ok(config)
}

/// Resolves when the process is asked to stop (SIGINT — Ctrl-C — or SIGTERM). A signal that
/// cannot be watched is simply never seen (it must not stop the node at once).
async fn stop_requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).ok();
        let mut terminate = signal(SignalKind::terminate()).ok();
        let wait = |signal: &mut Option<tokio::signal::unix::Signal>| {
            let signal = signal.take();
            async move {
                match signal {
                    Some(mut signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
        };
        tokio::select! {
            () = wait(&mut interrupt) => {}
            () = wait(&mut terminate) => {}
        }
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Runs `concur node`.
pub fn run_node(args: NodeArgs) -> anyhow::Result<ExitCode> {
    let config = node_config(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let this = config.this();
    eprintln!(
        "n{}: redis {} · http {} · peers {} · data {}",
        config.id,
        this.redis,
        this.http,
        this.peer,
        config.data_dir.display()
    );
    runtime.block_on(node::daemon::run(config, stop_requested()))?;
    Ok(ExitCode::SUCCESS)
}

/// The cluster key of a local cluster: read from DIR/cluster.key, created on first start.
fn local_cluster_key(data_dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let path = data_dir.join("cluster.key");
    if !path.exists() {
        let mut key = [0u8; 16];
        getrandom::fill(&mut key).context("no operating system randomness for the cluster key")?;
        let text: String = key.iter().map(|byte| format!("{byte:02x}")).collect();
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(path)
}

/// Runs `concur up`: starts `--nodes` node processes, prints their addresses, and stops them all
/// on Ctrl-C.
pub fn run_up(args: UpArgs) -> anyhow::Result<ExitCode> {
    let addresses = local_cluster(args.nodes, args.base_port)?;
    let key_file = local_cluster_key(&args.data_dir)?;
    let exe = std::env::current_exe().context("cannot find the concur executable")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let mut children = Vec::new();
        for node in &addresses {
            let mut command = tokio::process::Command::new(&exe);
            command
                .arg("node")
                .args(["--id", &node.id.to_string()])
                .args(["--nodes", &args.nodes.to_string()])
                .args(["--base-port", &args.base_port.to_string()])
                .arg("--data-dir")
                .arg(&args.data_dir)
                .arg("--cluster-key-file")
                .arg(&key_file)
                .kill_on_drop(true);
            if let Some(password) = &args.password {
                command.env("CONCUR_PASSWORD", password);
            }
            let child = command
                .spawn()
                .with_context(|| format!("cannot start node n{}", node.id))?;
            children.push((node.id, child));
        }
        println!(
            "concur: a {}-node cluster on loopback, data in {}",
            args.nodes,
            args.data_dir.display()
        );
        for node in &addresses {
            println!(
                "  n{}  redis {}  (redis-cli -p {})   http http://{}",
                node.id,
                node.redis,
                node.redis.port(),
                node.http
            );
        }
        println!("strong keys: any key; available keys: ap:*   ·   Ctrl-C stops the cluster");
        // Run until a stop request. A node that dies (say, killed to watch the others keep their
        // promises) is reported; the others keep running, and the cluster stops when all are gone.
        let mut exited: Vec<u64> = Vec::new();
        loop {
            tokio::select! {
                () = stop_requested() => break,
                (id, status) = first_exit(&mut children, &exited) => {
                    eprintln!(
                        "concur: n{id} exited ({status}); the others keep running. Restart it with: {} node --id {id} --nodes {} --base-port {} --data-dir {} --cluster-key-file {}",
                        exe.display(), args.nodes, args.base_port, args.data_dir.display(), key_file.display()
                    );
                    exited.push(id);
                    if exited.len() == children.len() {
                        break;
                    }
                }
            }
        }
        for (id, child) in &mut children {
            if let Some(pid) = child.id() {
                let pid = nix::unistd::Pid::from_raw(pid as i32);
                if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).is_err() {
                    tracing::warn!(node = *id, "could not signal the node");
                }
            }
        }
        for (id, child) in &mut children {
            match tokio::time::timeout(Duration::from_secs(15), child.wait()).await {
                Ok(Ok(status)) if status.success() => {}
                Ok(Ok(status)) => eprintln!("n{id} exited with {status}"),
                Ok(Err(error)) => eprintln!("n{id}: {error}"),
                Err(_) => {
                    eprintln!("n{id} did not stop in 15 s; killing it");
                    let _ = child.kill().await;
                }
            }
        }
        if exited.len() == children.len() {
            bail!("every node exited; the cluster is down");
        }
        println!(
            "concur: cluster stopped; `concur up` again recovers it from {}",
            args.data_dir.display()
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// The first child to exit, with how it ended.
async fn first_exit(
    children: &mut [(u64, tokio::process::Child)],
    exited: &[u64],
) -> (u64, String) {
    loop {
        for (id, child) in children.iter_mut().filter(|(id, _)| !exited.contains(id)) {
            if let Ok(Some(status)) = child.try_wait() {
                return (*id, status.to_string());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_flags_parse_into_addresses() {
        let node = parse_node("2=10.0.0.2:9002,10.0.0.2:7002,10.0.0.2:8002").unwrap();
        assert_eq!(node.id, 2);
        assert_eq!(node.redis.port(), 7002);
        assert!(parse_node("2=10.0.0.2:9002").is_err());
        assert!(parse_node("x=1.2.3.4:1,1.2.3.4:2,1.2.3.4:3").is_err());
    }
}

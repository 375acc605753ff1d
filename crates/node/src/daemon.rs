//! Runs one node for real: the protocol process on its own thread under the `net` driver (peer
//! links, timers, fsync'd disk), and the Redis and HTTP servers on the caller's tokio runtime.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use net::runtime::{self, client_channel};
use net::transport::{LinkControl, TransportConfig};
use thiserror::Error;

use crate::config::NodeConfig;
use crate::handle::NodeHandle;
use crate::http::{self, HttpState};
use crate::metrics::Metrics;
use crate::process::{NodeProcess, NodeSettings};
use crate::redis::{self, RedisOptions};

/// Why a node could not start or stopped with an error.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// A listening address could not be bound.
    #[error("cannot listen for {what} on {address}: {source}")]
    Bind {
        /// Which server.
        what: &'static str,
        /// The address.
        address: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The protocol thread failed (disk or network).
    #[error("node stopped: {0}")]
    Node(String),
    /// Something else went wrong with the operating system.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

async fn bind(
    what: &'static str,
    address: std::net::SocketAddr,
) -> Result<tokio::net::TcpListener, DaemonError> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| DaemonError::Bind {
            what,
            address,
            source,
        })
}

/// Runs node `config.id` until `shutdown` completes (then stops serving, lets the disk writer
/// finish, and returns) or until the node fails.
pub async fn run(
    config: NodeConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DaemonError> {
    let this = config.this();
    let redis_listener = bind("Redis clients", this.redis).await?;
    let http_listener = bind("HTTP", this.http).await?;
    let peer_listener =
        std::net::TcpListener::bind(this.peer).map_err(|source| DaemonError::Bind {
            what: "peers",
            address: this.peer,
            source,
        })?;
    peer_listener.set_nonblocking(true)?;
    std::fs::create_dir_all(&config.data_dir)?;

    let links = LinkControl::default();
    let mut transport = TransportConfig::new(
        config.id,
        config.peers(),
        config.cluster_key.as_bytes().to_vec(),
    );
    transport.links = links.clone();
    let (client, requests) = client_channel();
    let ids = config.ids();
    let node_config = runtime::NodeConfig {
        transport,
        data_dir: config.data_dir.clone(),
    };
    // The process is single-threaded (it holds `Rc`s): it gets a thread and runtime of its own.
    let protocol = std::thread::Builder::new()
        .name(format!("concur-n{}", config.id))
        .spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|error| error.to_string())?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(peer_listener)
                    .map_err(|error| error.to_string())?;
                let settings = Rc::new(NodeSettings::new(ids));
                runtime::run_node(
                    node_config,
                    listener,
                    move |node, storage| NodeProcess::new(node, settings, storage),
                    requests,
                )
                .await
                .map_err(|error| error.to_string())
            })
        })?;

    let handle = NodeHandle::new(config.id, client, links);
    let metrics = Arc::new(Metrics::new());
    let redis_options = RedisOptions {
        password: config.password.clone(),
        ..RedisOptions::default()
    };
    let http_state = HttpState {
        handle: handle.clone(),
        config: Arc::new(config.clone()),
        metrics: Arc::clone(&metrics),
    };
    let redis_server = tokio::spawn(redis::serve(
        redis_listener,
        handle.clone(),
        Arc::clone(&metrics),
        redis_options,
    ));
    let http_server = tokio::spawn(http::serve(http_listener, http_state));
    drop(handle);
    tracing::info!(
        node = config.id,
        redis = %this.redis,
        http = %this.http,
        peer = %this.peer,
        data_dir = %config.data_dir.display(),
        "node serving"
    );

    let protocol_done = tokio::task::spawn_blocking(move || protocol.join());
    tokio::pin!(protocol_done);
    let outcome = tokio::select! {
        () = shutdown => {
            tracing::info!(node = config.id, "shutting down");
            None
        }
        joined = &mut protocol_done => Some(joined),
    };
    // Dropping the servers drops every handle on the process: it syncs its disk and stops.
    redis_server.abort();
    http_server.abort();
    let _ = redis_server.await;
    let _ = http_server.await;
    let joined = match outcome {
        Some(joined) => joined,
        None => match tokio::time::timeout(Duration::from_secs(10), &mut protocol_done).await {
            Ok(joined) => joined,
            Err(_) => {
                return Err(DaemonError::Node(
                    "the protocol thread did not stop in 10 s".into(),
                ));
            }
        },
    };
    match joined {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(error))) => Err(DaemonError::Node(error)),
        Ok(Err(_)) | Err(_) => Err(DaemonError::Node("the protocol thread panicked".into())),
    }
}

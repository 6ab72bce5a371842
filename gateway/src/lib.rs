//! Cairn's stateless S3 gateway: authenticates S3 requests and serves them from the
//! storage nodes over gRPC.

pub mod auth;
pub mod body;
pub mod checksum;
pub mod cluster;
pub mod cors;
pub mod error;
pub mod listener;
pub mod metrics;
pub mod s3;
pub mod server;
pub mod tls;
pub mod web;
pub mod xml;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_proto::tls::Dialer;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cluster::{Cluster, LocalNode};
use crate::s3::{S3, S3Config};

/// How to run a gateway.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// gRPC addresses of storage nodes to start from.
    pub nodes: Vec<String>,
    pub s3_listen: String,
    pub web_listen: Option<String>,
    pub root_domain: Option<String>,
    pub web_root_domain: Option<String>,
    pub region: String,
    pub cluster_secret: String,
    /// How to dial the nodes (TLS trusting a CA, or plaintext).
    pub dialer: Dialer,
    /// Bodies up to this many bytes are stored inline in the object record (no block I/O).
    pub inline_max: usize,
    /// A node running in this process (`cairn server`), reached without the network.
    pub local_node: Option<LocalNode>,
    /// Serve S3 and the website over TLS with this certificate (else plain HTTP).
    pub tls: Option<tls::TlsFiles>,
}

/// A started gateway.
pub struct RunningGateway {
    pub s3_addr: SocketAddr,
    pub web_addr: Option<SocketAddr>,
    /// Whether the listeners speak TLS (`https://`).
    pub tls: bool,
    cluster: Cluster,
    /// Cancelled when the listeners are to stop accepting and drain.
    stop: CancellationToken,
    /// The listeners' serving tasks (they end once drained).
    listeners: Mutex<Vec<JoinHandle<()>>>,
}

impl RunningGateway {
    /// Ready once the cluster metadata (with a layout) has been received, until draining.
    pub fn ready(&self) -> bool {
        !self.stop.is_cancelled() && self.cluster.ready()
    }

    /// Closes the listeners and waits, at most `grace`, for the requests in flight to finish.
    /// Returns whether everything drained in time (requests still running then are dropped
    /// with the process; an interrupted upload never becomes visible).
    pub async fn drain(&self, grace: Duration) -> bool {
        self.stop.cancel();
        let tasks = std::mem::take(&mut *self.listeners.lock().unwrap_or_else(|e| e.into_inner()));
        let all = futures::future::join_all(tasks);
        tokio::time::timeout(grace, all).await.is_ok()
    }
}

/// Binds a listener and prints `listening NAME=ADDR` (port 0 picks a free port).
async fn bind(name: &str, addr: &str) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} ({name}): {e}"))?;
    let local = listener.local_addr()?;
    println!("listening {name}={local}");
    Ok((listener, local))
}

/// Starts the S3 (and website) listeners, over TLS when `config.tls` names a certificate.
pub async fn start(config: GatewayConfig) -> anyhow::Result<RunningGateway> {
    let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
    let cluster = Cluster::start(
        config.nodes.clone(),
        &config.cluster_secret,
        config.dialer.clone(),
        config.local_node.clone(),
    )?;
    let s3 = S3::new(
        cluster.clone(),
        S3Config {
            region: config.region.clone(),
            root_domain: config.root_domain.clone(),
            inline_max: config.inline_max,
            tls: tls.is_some(),
            ..Default::default()
        },
    );
    let stop = CancellationToken::new();
    let mut listeners = Vec::new();
    let (listener, s3_addr) = bind("s3", &config.s3_listen).await?;
    listeners.push(tokio::spawn(server::serve(
        s3.clone(),
        listener,
        tls.clone(),
        stop.clone(),
    )));
    let web_addr = match &config.web_listen {
        Some(addr) => {
            let (listener, local) = bind("web", addr).await?;
            let site = Arc::new(web::Website {
                s3: s3.clone(),
                root_domain: config.web_root_domain.clone(),
            });
            listeners.push(tokio::spawn(web::serve(
                site,
                listener,
                tls.clone(),
                stop.clone(),
            )));
            Some(local)
        }
        None => None,
    };
    Ok(RunningGateway {
        s3_addr,
        web_addr,
        tls: tls.is_some(),
        cluster,
        stop,
        listeners: Mutex::new(listeners),
    })
}

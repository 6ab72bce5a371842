//! Cairn storage node: block store, object index and Raft metadata member.

pub mod coordinator;
pub mod disk;
pub mod gc;
pub mod lifecycle;
pub mod liveness;
pub mod local;
pub mod membership;
pub mod raft;
pub mod repair;
pub mod rpc;
pub mod state;
pub mod store;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use cairn_proto::client::Peers;
use cairn_proto::tls::{Dialer, GrpcIdentityFiles};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use crate::membership::{Membership, MembershipConfig};
use crate::raft::MetaRaft;
pub use crate::state::NodeState;
use crate::store::{BlockStore, Index};

/// How to run a node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub rpc_listen: String,
    /// Address other processes use to reach this node; defaults to the bound address.
    pub advertise_addr: Option<String>,
    /// Joining, bootstrapping, zone, weight, initial key (see [`membership`]).
    pub membership: MembershipConfig,
    pub cluster_secret: String,
    /// Serve gRPC over TLS with this certificate (else plaintext).
    pub grpc_identity: Option<GrpcIdentityFiles>,
    /// How this node dials its peers (TLS trusting a CA, or plaintext).
    pub dialer: Dialer,
    pub gc: gc::GcConfig,
    pub anti_entropy: repair::AntiEntropyConfig,
    /// Day length and pass interval of the lifecycle worker.
    pub lifecycle: lifecycle::LifecycleTiming,
    /// Free bytes to keep on the data dir's filesystem (below them new data is refused);
    /// `None` = the smaller of 1 GiB and 2 % of the filesystem (see [`disk`]).
    pub disk_reserve: Option<u64>,
}

/// A started node.
pub struct RunningNode {
    pub state: Arc<NodeState>,
    pub rpc_addr: SocketAddr,
    /// Cancelled when the gRPC server is to stop accepting and drain.
    rpc_stop: CancellationToken,
    /// The gRPC server's task (it ends once drained).
    rpc_task: Mutex<Option<JoinHandle<()>>>,
}

impl RunningNode {
    /// Ready to serve: the Raft group has a leader and the ring has a layout; not once the
    /// gRPC server drains.
    pub fn ready(&self) -> bool {
        !self.rpc_stop.is_cancelled()
            && !self.state.raft.status().leader.is_empty()
            && !self.state.placement().is_empty()
    }

    /// Closes the gRPC listener, ends metadata watch streams and waits, at most `grace`,
    /// for the calls in flight to finish. Returns whether they all did.
    pub async fn drain_rpc(&self, grace: Duration) -> bool {
        self.rpc_stop.cancel();
        let task = self
            .rpc_task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        match task {
            Some(task) => tokio::time::timeout(grace, task).await.is_ok(),
            None => true,
        }
    }
}

/// Reads this node's uuid from its data dir, creating it on first start. A wiped data dir
/// means a new node with a new id.
fn node_identity(data_dir: &Path) -> anyhow::Result<Uuid> {
    let path = data_dir.join("node_id");
    match std::fs::read_to_string(&path) {
        Ok(s) => Uuid::parse_str(s.trim()).with_context(|| format!("corrupt {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = Uuid::new_v4();
            let tmp = data_dir.join("node_id.tmp");
            std::fs::write(&tmp, id.to_string())?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(data_dir)?.sync_all()?;
            Ok(id)
        }
        Err(e) => Err(e.into()),
    }
}

/// Starts a node: opens its stores, serves gRPC, and brings it into its cluster (see
/// [`membership`]): a node without peers on an empty data dir bootstraps a one-node cluster
/// before this returns; joining and `--bootstrap-expect` continue in the background.
pub async fn start(config: NodeConfig) -> anyhow::Result<RunningNode> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let id = node_identity(&config.data_dir)?;
    let server_tls = (config.grpc_identity.as_ref())
        .map(GrpcIdentityFiles::server_config)
        .transpose()?;
    let (listener, rpc_addr) = rpc::bind("rpc", &config.rpc_listen).await?;
    let advertise = config.advertise_addr.clone().unwrap_or_else(|| {
        if rpc_addr.ip().is_unspecified() {
            format!("127.0.0.1:{}", rpc_addr.port())
        } else {
            rpc_addr.to_string()
        }
    });
    let (blocks_dir, index_file) = (
        config.data_dir.join("blocks"),
        config.data_dir.join("index.redb"),
    );
    liveness::discard_if_stale(
        &config.data_dir,
        config.gc.tombstone_grace,
        &[index_file.clone(), blocks_dir.clone()],
    )?;
    liveness::mark_alive(&config.data_dir)?;
    let blocks = BlockStore::open(&blocks_dir)?;
    let index = Index::open(&index_file)?;
    let raft = MetaRaft::open(
        &config.data_dir.join("meta"),
        id,
        advertise.clone(),
        config.cluster_secret.clone(),
        config.dialer.clone(),
    )
    .await?;
    let peers = Peers::new(&config.cluster_secret)
        .map_err(|e| anyhow::anyhow!("{}", e.message()))?
        .with_dialer(config.dialer.clone());
    let disk = disk::DiskGuard::new(
        &config.data_dir,
        config.disk_reserve,
        format!("{id} ({advertise})"),
    );
    if let Some(space) = disk.space() {
        tracing::info!(
            free = space.free,
            reserve = space.reserve,
            "data dir free space (new data is refused below the reserve)"
        );
    }
    let state = NodeState::new(id, advertise.clone(), blocks, index, raft, peers, disk);
    let membership = Membership::new(state.clone(), config.membership.clone());

    let (serve_state, handler) = (state.clone(), membership.clone());
    let secret = config.cluster_secret.clone();
    let rpc_stop = CancellationToken::new();
    let stop = rpc_stop.clone();
    let rpc_task = tokio::spawn(async move {
        if let Err(e) = rpc::serve(serve_state, handler, listener, &secret, server_tls, stop).await
        {
            tracing::error!(error = %e, "gRPC server stopped");
        }
    });

    membership.start().await?;
    tokio::spawn(liveness::run(
        config.data_dir.clone(),
        config.gc.tombstone_grace,
    ));
    tokio::spawn(gc::run(state.clone(), config.gc));
    tokio::spawn(repair::run(state.clone(), config.anti_entropy));
    tokio::spawn(lifecycle::run(state.clone(), config.lifecycle));
    tracing::info!(node = %id, rpc = %advertise, "node started");
    Ok(RunningNode {
        state,
        rpc_addr,
        rpc_stop,
        rpc_task: Mutex::new(Some(rpc_task)),
    })
}

//! Cairn storage node: block store, object index and Raft metadata member.

pub mod coordinator;
pub mod gc;
pub mod raft;
pub mod rpc;
pub mod state;
pub mod store;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use cairn_proto::client::Peers;
use cairn_proto::meta::{AccessKey, Layout, LayoutNode, MetaCommand};
use uuid::Uuid;

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
    pub join: Vec<String>,
    pub zone: String,
    pub weight: u32,
    /// Replication factor of the first layout when this node bootstraps a cluster.
    pub replication: u32,
    pub cluster_secret: String,
    /// Access key created on first start (id, secret), allowed to create buckets.
    pub initial_key: Option<(String, String)>,
    pub gc: gc::GcConfig,
}

/// A started node.
pub struct RunningNode {
    pub state: Arc<NodeState>,
    pub rpc_addr: SocketAddr,
}

impl RunningNode {
    /// Ready to serve: the Raft group has a leader and the ring has a layout.
    pub fn ready(&self) -> bool {
        !self.state.raft.status().leader.is_empty() && !self.state.ring().is_empty()
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

/// Starts a node: opens its stores, serves gRPC, and bootstraps a one-node cluster on an
/// empty data dir when no peers are given.
pub async fn start(config: NodeConfig) -> anyhow::Result<RunningNode> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let id = node_identity(&config.data_dir)?;
    let (listener, rpc_addr) = rpc::bind("rpc", &config.rpc_listen).await?;
    let advertise = config.advertise_addr.clone().unwrap_or_else(|| {
        if rpc_addr.ip().is_unspecified() {
            format!("127.0.0.1:{}", rpc_addr.port())
        } else {
            rpc_addr.to_string()
        }
    });
    let blocks = BlockStore::open(&config.data_dir.join("blocks"))?;
    let index = Index::open(&config.data_dir.join("index.redb"))?;
    let raft = MetaRaft::open(&config.data_dir.join("meta"), id, advertise.clone(), config.cluster_secret.clone()).await?;
    let peers = Peers::new(&config.cluster_secret).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    let state = NodeState::new(id, advertise.clone(), blocks, index, raft.clone(), peers);

    let serve_state = state.clone();
    let secret = config.cluster_secret.clone();
    tokio::spawn(async move {
        if let Err(e) = rpc::serve(serve_state, listener, &secret).await {
            tracing::error!(error = %e, "gRPC server stopped");
        }
    });

    if !config.join.is_empty() {
        anyhow::bail!("joining an existing cluster (--join) arrives with multi-node support");
    }
    raft.bootstrap_single().await?;
    ensure_initial_layout(&raft, id, &advertise, &config).await?;
    if let Some((key_id, secret)) = &config.initial_key {
        ensure_initial_key(&raft, key_id, secret).await?;
    }
    tokio::spawn(gc::run(state.clone(), config.gc));
    tracing::info!(node = %id, rpc = %advertise, "node started");
    Ok(RunningNode { state, rpc_addr })
}

async fn ensure_initial_layout(raft: &MetaRaft, id: Uuid, addr: &str, config: &NodeConfig) -> anyhow::Result<()> {
    let (_, meta) = raft.read_linearizable().await?;
    if !meta.layout.nodes.is_empty() {
        return Ok(());
    }
    let layout = Layout {
        version: meta.layout.version + 1,
        replication: config.replication.clamp(1, 1),
        nodes: vec![LayoutNode { id, addr: addr.to_string(), zone: config.zone.clone(), weight: config.weight.max(1) }],
    };
    raft.write(MetaCommand::SetLayout { layout }).await?.into_result()?;
    Ok(())
}

async fn ensure_initial_key(raft: &MetaRaft, key_id: &str, secret: &str) -> anyhow::Result<()> {
    let (_, meta) = raft.read_linearizable().await?;
    if meta.keys.contains_key(key_id) {
        return Ok(());
    }
    let key = AccessKey {
        id: key_id.to_string(),
        secret: secret.to_string(),
        name: "initial".into(),
        created_ms: cairn_proto::ids::now_ms(),
        allow_create_bucket: true,
        buckets: Default::default(),
    };
    raft.write(MetaCommand::CreateKey { key }).await?.into_result()?;
    Ok(())
}

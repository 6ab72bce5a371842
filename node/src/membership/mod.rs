//! Cluster membership: how a node becomes and stays a member of the metadata Raft group.
//!
//! - A node without `--join` on an empty data dir bootstraps a one-node cluster.
//! - `--join ADDR,...`: the node sends `MetaService.Join` to those nodes; whoever receives it
//!   forwards it to the leader ([`join`]), which adds the node as a learner, records its
//!   address, zone and weight, and promotes it while there are fewer than three voters.
//! - `--bootstrap-expect N` ([`bootstrap`]): nobody bootstraps alone; nodes find each other
//!   with `Hello` and the smallest uuid initializes the group once N nodes are known.
//! - A restarted node (Raft state in its data dir) sends `Join` again under its own id, so the
//!   leader learns a changed address; a wiped data dir means a new id, so a new node.
//! - The leader keeps three voters, replacing one that stays unreachable ([`voters`]).
//! - Ring changes are refused while the cluster holds data ([`layout`]).

mod bootstrap;
mod join;
pub mod layout;
mod voters;

use std::collections::BTreeSet;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cairn_proto::meta::{AccessKey, Layout, LayoutNode, MetaCommand, MetaError};
use cairn_proto::pb::{HelloRequest, HelloResponse, JoinRequest, JoinResponse, NodeInfo};
use tonic::Status;
use uuid::Uuid;

use crate::raft::MembershipHandler;
use crate::state::NodeState;

/// Deadline of one `Join` call (the leader waits for the new learner to catch up).
const JOIN_TIMEOUT: Duration = Duration::from_secs(90);
/// Pause between attempts to join or to find the other nodes.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// How this node enters its cluster.
#[derive(Debug, Clone, Default)]
pub struct MembershipConfig {
    /// Nodes to join or to bootstrap with (`host:port`).
    pub join: Vec<String>,
    /// Bootstrap only together with this many nodes.
    pub bootstrap_expect: Option<u32>,
    /// Enter the ring on join while the cluster holds no data.
    pub auto_layout: bool,
    pub zone: String,
    pub weight: u32,
    /// Replication factor of a layout this node writes (capped by the node count).
    pub replication: u32,
    /// Access key (id, secret) created when this node bootstraps the cluster.
    pub initial_key: Option<(String, String)>,
    /// How long a voter may stay unreachable before the leader replaces it.
    pub voter_timeout: Duration,
}

/// This node's membership duties; serves `Join` and `Hello`.
pub struct Membership {
    state: Arc<NodeState>,
    config: MembershipConfig,
    /// Node addresses learned through `Hello` (callers and the peers they know).
    discovered: Mutex<BTreeSet<String>>,
    /// Nodes found in the last `--bootstrap-expect` round (to log progress).
    found: AtomicUsize,
    /// Serializes membership changes on the leader.
    changes: tokio::sync::Mutex<()>,
    voters: voters::Tracker,
}

impl Membership {
    pub fn new(state: Arc<NodeState>, config: MembershipConfig) -> Arc<Self> {
        let voters = voters::Tracker::new(config.voter_timeout);
        Arc::new(Self {
            state,
            config,
            discovered: Mutex::default(),
            found: AtomicUsize::new(0),
            changes: tokio::sync::Mutex::new(()),
            voters,
        })
    }

    /// This node as it appears in the layout.
    fn me(&self) -> LayoutNode {
        LayoutNode {
            id: self.state.id,
            addr: self.state.addr.clone(),
            zone: self.config.zone.clone(),
            weight: self.config.weight.max(1),
        }
    }

    /// Brings this node into its cluster. A node that bootstraps alone (or is alone in its
    /// cluster) is ready when this returns; every other node joins in the background.
    pub async fn start(self: &Arc<Self>) -> anyhow::Result<()> {
        let raft = &self.state.raft;
        let alone = raft.members().nodes.keys().eq([&self.state.id]);
        let fresh = !raft.is_member();
        if alone
            || (fresh
                && self.config.join.is_empty()
                && self.config.bootstrap_expect.unwrap_or(1) <= 1)
        {
            raft.bootstrap_single().await?;
            self.join_local(&self.me(), false)
                .await
                .map_err(|e| anyhow::anyhow!("{}", local_error(e)))?;
            if fresh {
                self.first_layout(vec![self.me()]).await?;
                self.ensure_initial_key().await?;
            }
        } else {
            tokio::spawn(self.clone().enter());
        }
        tokio::spawn(self.clone().maintain_voters());
        Ok(())
    }

    /// Background: join (or bootstrap with the expected nodes), then make sure the leader
    /// knows this node's current address, zone and weight.
    async fn enter(self: Arc<Self>) {
        let mut announced = false;
        loop {
            let outcome = if self.state.raft.is_member() {
                let candidates = self.member_candidates();
                self.join_via(&candidates).await.map(|r| {
                    tracing::info!(voter = r.voter, in_layout = r.in_layout, note = %r.note, "joined the cluster");
                    true
                })
            } else if let Some(n) = self.config.bootstrap_expect.filter(|n| *n > 1) {
                self.bootstrap_round(n as usize).await
            } else {
                self.join_via(&self.config.join).await.map(|r| {
                    tracing::info!(voter = r.voter, in_layout = r.in_layout, note = %r.note, "joined the cluster");
                    true
                })
            };
            match outcome {
                Ok(true) if self.state.raft.is_member() => return,
                Ok(_) => {}
                Err(e) if !announced => {
                    tracing::warn!(error = %e, "not a cluster member yet; retrying");
                    announced = true;
                }
                Err(e) => tracing::debug!(error = %e, "not a cluster member yet; retrying"),
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// Where a member sends `Join`: the other members it knows, then the `--join` nodes.
    fn member_candidates(&self) -> Vec<String> {
        let members = self.state.raft.members();
        let mut out: Vec<String> = members
            .nodes
            .iter()
            .filter(|(id, _)| **id != self.state.id)
            .map(|(_, addr)| addr.clone())
            .collect();
        for addr in &self.config.join {
            if !out.contains(addr) {
                out.push(addr.clone());
            }
        }
        out
    }

    /// Sends `Join` for this node to the first of `addrs` that accepts it.
    async fn join_via(&self, addrs: &[String]) -> anyhow::Result<JoinResponse> {
        let mut last = anyhow::anyhow!("no node to join (--join is empty)");
        for addr in addrs {
            let req = JoinRequest {
                node: Some(node_info(&self.me())),
                auto_layout: self.config.auto_layout,
            };
            let mut call = tonic::Request::new(req);
            call.set_timeout(JOIN_TIMEOUT);
            let result = match self.state.peers.meta(addr) {
                Ok(mut client) => client.join(call).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(resp) => return Ok(resp.into_inner()),
                Err(e) => {
                    last = anyhow::anyhow!("join via {addr}: {:?}: {}", e.code(), e.message())
                }
            }
        }
        Err(last)
    }

    /// Writes the first layout (these nodes, replication capped by their number) unless one
    /// exists.
    async fn first_layout(&self, nodes: Vec<LayoutNode>) -> anyhow::Result<()> {
        let (_, meta) = self.state.raft.read_linearizable().await?;
        if !meta.layout.nodes.is_empty() {
            return Ok(());
        }
        let layout = Layout {
            version: meta.layout.version + 1,
            replication: self.config.replication.clamp(1, nodes.len() as u32),
            nodes,
        };
        tracing::info!(
            nodes = layout.nodes.len(),
            replication = layout.replication,
            "writing the first layout"
        );
        self.state
            .raft
            .write(MetaCommand::SetLayout { layout })
            .await?
            .into_result()?;
        Ok(())
    }

    /// Creates the configured initial access key unless it exists.
    async fn ensure_initial_key(&self) -> anyhow::Result<()> {
        let Some((id, secret)) = &self.config.initial_key else {
            return Ok(());
        };
        let (_, meta) = self.state.raft.read_linearizable().await?;
        if meta.keys.contains_key(id) {
            return Ok(());
        }
        let key = AccessKey {
            id: id.clone(),
            secret: secret.clone(),
            name: "initial".into(),
            created_ms: cairn_proto::ids::now_ms(),
            allow_create_bucket: true,
            buckets: Default::default(),
        };
        match self
            .state
            .raft
            .write(MetaCommand::CreateKey { key })
            .await?
            .into_result()
        {
            Ok(_) | Err(MetaError::KeyExists(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn remember(&self, addrs: impl IntoIterator<Item = String>) {
        let mut known = self
            .discovered
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        known.extend(
            addrs
                .into_iter()
                .filter(|a| !a.is_empty() && *a != self.state.addr),
        );
    }
}

#[tonic::async_trait]
impl MembershipHandler for Membership {
    async fn join(&self, req: JoinRequest, forwarded: bool) -> Result<JoinResponse, Status> {
        let node = req.node.as_ref().and_then(layout_node).ok_or_else(|| {
            Status::invalid_argument("Join needs the node's id, address and weight")
        })?;
        if !self.state.raft.is_member() {
            return Err(Status::unavailable(format!(
                "node {} is not a cluster member (yet)",
                self.state.id
            )));
        }
        if forwarded {
            return self
                .join_local(&node, req.auto_layout)
                .await
                .map_err(crate::raft::local_status);
        }
        let raft = &self.state.raft;
        raft.via_leader(
            "join",
            || self.join_local(&node, req.auto_layout),
            |addr| self.forward_join(addr, req.clone()),
        )
        .await
        .map_err(crate::raft::meta_status)
    }

    fn hello(&self, req: HelloRequest) -> HelloResponse {
        self.hello_reply(req)
    }
}

fn local_error(e: crate::raft::LocalError) -> String {
    crate::raft::local_status(e).message().to_string()
}

/// The wire form of a node.
fn node_info(n: &LayoutNode) -> NodeInfo {
    NodeInfo {
        node_id: n.id.to_string(),
        addr: n.addr.clone(),
        zone: n.zone.clone(),
        weight: n.weight,
    }
}

/// A node from its wire form, if complete.
fn layout_node(n: &NodeInfo) -> Option<LayoutNode> {
    let id = Uuid::parse_str(&n.node_id).ok()?;
    (!n.addr.is_empty()).then(|| LayoutNode {
        id,
        addr: n.addr.clone(),
        zone: n.zone.clone(),
        weight: n.weight.max(1),
    })
}

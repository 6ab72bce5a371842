//! `--bootstrap-expect N`: no node bootstraps alone. Each round, a node says `Hello` to the
//! `--join` nodes and every node it heard of (callers of its own `Hello` and the peers they
//! know). If one of them already belongs to a cluster, it joins that one. Once N distinct
//! nodes answer and none is initialized, the node with the smallest uuid initializes the
//! Raft group (up to three voters, spread over zones) and writes the first layout with all of
//! them; the others become members through it (or join as learners).
//!
//! Like every expect-style bootstrap, this relies on the N nodes being started for the same
//! cluster: two disjoint groups of N that never hear of each other form two clusters.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cairn_proto::meta::{LayoutNode, MetaCommand};
use cairn_proto::pb::{HelloRequest, HelloResponse};
use futures::future::join_all;
use uuid::Uuid;

use super::{Membership, layout_node, node_info, voters};

/// Deadline of one `Hello`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(2);

/// A node that answered `Hello`.
struct Peer {
    node: LayoutNode,
    initialized: bool,
}

impl Membership {
    /// Answers `Hello` and remembers the caller.
    pub(super) fn hello_reply(&self, req: HelloRequest) -> HelloResponse {
        if let Some(from) = req.from.as_ref().and_then(layout_node)
            && from.id != self.state.id
        {
            self.remember([from.addr]);
        }
        let mut peers: Vec<String> = self
            .discovered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        peers.extend(self.config.join.iter().cloned());
        peers.extend(self.state.raft.members().nodes.into_values());
        peers.sort();
        peers.dedup();
        peers.retain(|a| *a != self.state.addr);
        HelloResponse {
            node: Some(node_info(&self.me())),
            initialized: self.state.raft.is_member(),
            peers,
        }
    }

    /// Says `Hello` to every node known so far; returns the other nodes that answered and
    /// remembers whom they know.
    async fn probe(&self) -> Vec<Peer> {
        let mut targets: Vec<String> = self.config.join.clone();
        targets.extend(
            self.discovered
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned(),
        );
        targets.sort();
        targets.dedup();
        targets.retain(|a| *a != self.state.addr);
        let calls = targets.iter().map(|addr| async move {
            let mut client = self.state.peers.meta(addr).ok()?;
            let mut req = tonic::Request::new(HelloRequest {
                from: Some(node_info(&self.me())),
            });
            req.set_timeout(HELLO_TIMEOUT);
            match client.hello(req).await {
                Ok(resp) => Some(resp.into_inner()),
                Err(e) => {
                    tracing::debug!(node = %addr, error = %e.message(), "no hello");
                    None
                }
            }
        });
        let mut peers = Vec::new();
        for resp in join_all(calls).await.into_iter().flatten() {
            self.remember(resp.peers);
            if let Some(node) = resp.node.as_ref().and_then(layout_node)
                && node.id != self.state.id
            {
                self.remember([node.addr.clone()]);
                peers.push(Peer {
                    node,
                    initialized: resp.initialized,
                });
            }
        }
        peers
    }

    /// One discovery round; `Ok(true)` once this node joined or initialized a cluster.
    pub(super) async fn bootstrap_round(&self, expect: usize) -> anyhow::Result<bool> {
        let peers = self.probe().await;
        let initialized: Vec<String> = peers
            .iter()
            .filter(|p| p.initialized)
            .map(|p| p.node.addr.clone())
            .collect();
        if !initialized.is_empty() {
            let resp = self.join_via(&initialized).await?;
            tracing::info!(
                voter = resp.voter,
                in_layout = resp.in_layout,
                "joined the existing cluster"
            );
            return Ok(true);
        }
        let mut nodes: BTreeMap<Uuid, LayoutNode> =
            peers.into_iter().map(|p| (p.node.id, p.node)).collect();
        nodes.insert(self.state.id, self.me());
        if self.found.swap(nodes.len(), Ordering::Relaxed) != nodes.len() {
            tracing::info!(
                found = nodes.len(),
                expect,
                "looking for the nodes to bootstrap with"
            );
        }
        if nodes.len() < expect {
            return Ok(false);
        }
        if nodes.keys().next() != Some(&self.state.id) {
            tracing::debug!(
                found = nodes.len(),
                "waiting for the node with the smallest id to bootstrap"
            );
            return Ok(false);
        }
        self.initialize_with(nodes.into_values().collect()).await?;
        Ok(true)
    }

    /// Initializes the Raft group with (up to three of) `nodes` as voters, then writes their
    /// registry entries, the first layout (all of them) and the initial access key.
    async fn initialize_with(&self, nodes: Vec<LayoutNode>) -> anyhow::Result<()> {
        let zones = nodes.iter().map(|n| (n.id, n.zone.clone())).collect();
        let voter_ids = voters::initial_voters(&zones);
        let voters = nodes
            .iter()
            .filter(|n| voter_ids.contains(&n.id))
            .map(|n| (n.id, n.addr.clone()))
            .collect();
        tracing::info!(nodes = nodes.len(), voters = ?voter_ids, "bootstrapping the cluster");
        self.state.raft.initialize(voters).await?;
        self.state
            .raft
            .wait_for_leader(Duration::from_secs(30))
            .await?;
        for node in &nodes {
            self.state
                .raft
                .write(MetaCommand::RegisterNode { node: node.clone() })
                .await?
                .into_result()?;
        }
        self.first_layout(nodes).await?;
        self.ensure_initial_key().await
    }
}

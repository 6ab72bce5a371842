//! `Join` on the leader: make the node a Raft member under its current address, record it
//! in the node registry, keep its layout address current, promote it while voters are
//! missing, and (with `--auto-layout`) put it in the ring while the cluster holds no data.

use cairn_proto::meta::{LayoutNode, MetaCommand, MetaError, MetaResult};
use cairn_proto::pb::{JoinRequest, JoinResponse};

use super::{JOIN_TIMEOUT, Membership, layout};
use crate::raft::{LocalError, forward_error, forwarded};

impl Membership {
    /// Serves a join on this node if it is the leader (`NotLeader` otherwise).
    pub(super) async fn join_local(
        &self,
        node: &LayoutNode,
        auto_layout: bool,
    ) -> Result<JoinResponse, LocalError> {
        let raft = &self.state.raft;
        if let Some(not_leader) = raft.not_leader() {
            return Err(not_leader);
        }
        let _serial = self.changes.lock().await;
        match raft.members().nodes.get(&node.id) {
            None => {
                tracing::info!(node = %node.id, addr = %node.addr, "adding a learner");
                raft.add_learner(node.id, &node.addr).await?;
            }
            Some(addr) if *addr != node.addr => {
                tracing::info!(node = %node.id, old = %addr, new = %node.addr, "member address changed");
                raft.set_member_addr(node.id, &node.addr).await?;
            }
            Some(_) => {}
        }
        let (_, meta) = raft.current();
        if meta.nodes.get(&node.id) != Some(node) {
            self.commit(MetaCommand::RegisterNode { node: node.clone() })
                .await?;
        }
        if let Some(layout) = layout::with_address(&meta.layout, node) {
            tracing::info!(node = %node.id, addr = %node.addr, "updating the node's address in the layout");
            self.commit(MetaCommand::SetLayout { layout }).await?;
        }
        if let Err(e) = self.rebalance_voters().await {
            tracing::warn!(error = %crate::membership::local_error(e), "could not adjust the voters");
        }
        let (_, meta) = raft.current();
        let mut note = String::new();
        if auto_layout && meta.layout.node(&node.id).is_none() {
            match layout::auto_add(&self.state, node, self.config.replication).await {
                Ok(next) => self
                    .commit(MetaCommand::SetLayout { layout: next })
                    .await
                    .map(drop)?,
                Err(why) => {
                    tracing::info!(node = %node.id, %why, "not adding the node to the layout");
                    note = why;
                }
            }
        }
        let (_, meta) = raft.current();
        Ok(JoinResponse {
            voter: raft.members().is_voter(&node.id),
            in_layout: meta.layout.node(&node.id).is_some(),
            note,
        })
    }

    /// Commits a command as the leader; a refusal is an error.
    async fn commit(&self, cmd: MetaCommand) -> Result<MetaResult, LocalError> {
        self.state
            .raft
            .write_local(cmd)
            .await?
            .0
            .into_result()
            .map_err(LocalError::Meta)
    }

    /// Sends a join to the leader at `addr`. `Ok(None)`: it is no longer the leader.
    pub(super) async fn forward_join(
        &self,
        addr: String,
        req: JoinRequest,
    ) -> Result<Option<JoinResponse>, MetaError> {
        let mut client = self
            .state
            .peers
            .meta(&addr)
            .map_err(|e| MetaError::Unavailable(format!("{addr}: {}", e.message())))?;
        let mut call = forwarded(req);
        call.set_timeout(JOIN_TIMEOUT);
        match client.join(call).await {
            Ok(resp) => Ok(Some(resp.into_inner())),
            Err(status) => forward_error(&addr, status),
        }
    }
}

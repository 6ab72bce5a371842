//! AdminService: node status and layout changes for the CLI.

use std::sync::Arc;

use cairn_proto::pb::admin_service_server::AdminService;
use cairn_proto::pb::{
    ApplyLayoutRequest, ApplyLayoutResponse, RaftMember, StatusRequest, StatusResponse,
};
use tonic::{Request, Response, Status};

use crate::coordinator::index_status;
use crate::membership::layout;
use crate::state::NodeState;

pub struct AdminRpc(pub Arc<NodeState>);

#[tonic::async_trait]
impl AdminService for AdminRpc {
    async fn status(
        &self,
        _req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let raft = self.0.raft.status();
        let (applied_index, meta) = self.0.raft.current();
        let members = self.0.raft.members();
        let members = members
            .nodes
            .iter()
            .map(|(id, addr)| RaftMember {
                node_id: id.to_string(),
                addr: addr.clone(),
                voter: members.is_voter(id),
            })
            .collect();
        Ok(Response::new(StatusResponse {
            node_id: self.0.id.to_string(),
            rpc_address: self.0.addr.clone(),
            raft_term: raft.term,
            raft_leader: raft.leader,
            raft_role: raft.role,
            applied_index,
            layout_version: meta.layout.version,
            object_records: self.0.index.record_count().map_err(index_status)?,
            blocks: 0,
            members,
            anti_entropy: Some(self.0.repair.snapshot()),
            rebalance: Some(self.0.repair.rebalance.snapshot(&meta)),
            lifecycle: Some(self.0.lifecycle.snapshot()),
            gc: Some(self.0.gc.snapshot(&self.0.index)),
            disk: Some(self.0.disk.status()),
        }))
    }

    async fn apply_layout(
        &self,
        req: Request<ApplyLayoutRequest>,
    ) -> Result<Response<ApplyLayoutResponse>, Status> {
        let replication = Some(req.get_ref().replication).filter(|r| *r > 0);
        let layout = layout::apply(&self.0, replication).await?;
        Ok(Response::new(ApplyLayoutResponse {
            version: layout.version,
        }))
    }
}

//! AdminService: node status for the CLI.

use std::sync::Arc;

use cairn_proto::pb::admin_service_server::AdminService;
use cairn_proto::pb::{StatusRequest, StatusResponse};
use tonic::{Request, Response, Status};

use crate::coordinator::index_status;
use crate::state::NodeState;

pub struct AdminRpc(pub Arc<NodeState>);

#[tonic::async_trait]
impl AdminService for AdminRpc {
    async fn status(&self, _req: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let raft = self.0.raft.status();
        let (applied_index, meta) = self.0.raft.current();
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
        }))
    }
}

//! The node's gRPC server: every service behind the cluster-secret check.

mod admin;
mod block;
mod object;

use std::net::SocketAddr;
use std::sync::Arc;

use cairn_proto::client::MAX_MESSAGE;
use cairn_proto::pb::admin_service_server::AdminServiceServer;
use cairn_proto::pb::block_service_server::BlockServiceServer;
use cairn_proto::pb::object_service_server::ObjectServiceServer;
use cairn_proto::secret::RequireSecret;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;

use crate::raft::{MembershipHandler, meta_service_with};
use crate::state::NodeState;

pub use block::MAX_BLOCK;

/// Serves BlockService, ObjectService, MetaService (with `membership` answering Join and
/// Hello) and AdminService on `listener` until the
/// process ends.
pub async fn serve(
    state: Arc<NodeState>,
    membership: Arc<dyn MembershipHandler>,
    listener: TcpListener,
    secret: &str,
) -> anyhow::Result<()> {
    let guard = RequireSecret::new(secret);
    let blocks = BlockServiceServer::new(block::BlockRpc(state.clone()))
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let objects = ObjectServiceServer::new(object::ObjectRpc(state.clone()))
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let admin = AdminServiceServer::new(admin::AdminRpc(state.clone()));
    Server::builder()
        .tcp_nodelay(true)
        .initial_stream_window_size(4 << 20)
        .initial_connection_window_size(16 << 20)
        .add_service(InterceptedService::new(blocks, guard.clone()))
        .add_service(InterceptedService::new(objects, guard.clone()))
        .add_service(InterceptedService::new(admin, guard))
        .add_service(meta_service_with(
            state.raft.clone(),
            Some(membership),
            secret,
        ))
        .serve_with_incoming(TcpListenerStream::new(listener))
        .await?;
    Ok(())
}

/// Binds a listener, printing `listening NAME=ADDR` (port 0 picks a free port).
pub async fn bind(name: &str, addr: &str) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} ({name}): {e}"))?;
    let local = listener.local_addr()?;
    println!("listening {name}={local}");
    Ok((listener, local))
}

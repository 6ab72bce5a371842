//! The node's gRPC server: every service behind the cluster-secret check.

mod admin;
mod block;
mod object;

use std::net::SocketAddr;
use std::sync::Arc;

use cairn_proto::client::MAX_MESSAGE;
use cairn_proto::pb::admin_service_server::AdminServiceServer;
use cairn_proto::pb::block_service_server::BlockServiceServer;
use cairn_proto::pb::object_service_server::{ObjectService, ObjectServiceServer};
use cairn_proto::secret::RequireSecret;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Server, ServerTlsConfig};

use crate::raft::{MembershipHandler, meta_service_with};
use crate::state::NodeState;

pub use block::MAX_BLOCK;
pub use object::read_record;

/// Serves BlockService, ObjectService, MetaService (with `membership` answering Join and
/// Hello) and AdminService on `listener` (over TLS with `tls`) until `stop` is cancelled;
/// then closes the listener, ends metadata watch streams, lets the calls in flight finish and
/// returns.
pub async fn serve(
    state: Arc<NodeState>,
    membership: Arc<dyn MembershipHandler>,
    listener: TcpListener,
    secret: &str,
    tls: Option<ServerTlsConfig>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let guard = RequireSecret::new(secret).for_node(state.id);
    let blocks = BlockServiceServer::new(block::BlockRpc(state.clone()))
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let objects = ObjectServiceServer::new(object::ObjectRpc(state.clone()))
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let admin = AdminServiceServer::new(admin::AdminRpc(state.clone()));
    // `tcp_nodelay` on the builder only applies to listeners tonic binds itself: without it on
    // the accepted sockets, Nagle holds the tail of every multi-segment answer until the peer's
    // delayed ACK (~40 ms on Linux).
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut server = Server::builder();
    if let Some(tls) = tls {
        server = server.tls_config(tls)?;
    }
    server
        .initial_stream_window_size(4 << 20)
        .initial_connection_window_size(16 << 20)
        .add_service(InterceptedService::new(blocks, guard.clone()))
        .add_service(InterceptedService::new(objects, guard.clone()))
        .add_service(InterceptedService::new(admin, guard))
        .add_service(meta_service_with(
            state.raft.clone(),
            Some(membership),
            secret,
            stop.clone(),
        ))
        .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
        .await?;
    Ok(())
}

/// This node's ObjectService, for a gateway in the same process to call without the network
/// (trusted by construction, so without the cluster-secret check; layout checks still apply).
pub fn object_service(state: Arc<NodeState>) -> Arc<dyn ObjectService> {
    Arc::new(object::ObjectRpc(state))
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

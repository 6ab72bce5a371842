//! gRPC clients to nodes: one lazily-connected tonic channel per address, shared by every
//! call, each call carrying the cluster secret.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::pb::admin_service_client::AdminServiceClient;
use crate::pb::block_service_client::BlockServiceClient;
use crate::pb::meta_service_client::MetaServiceClient;
use crate::pb::object_service_client::ObjectServiceClient;
use crate::secret::AttachSecret;

/// A channel with the cluster secret attached.
pub type AuthChannel = InterceptedService<Channel, AttachSecret>;

/// Largest gRPC message we send or accept (a block plus framing).
pub const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// Connections to every node this process talks to.
#[derive(Clone)]
pub struct Peers {
    secret: AttachSecret,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl Peers {
    pub fn new(cluster_secret: &str) -> Result<Self, tonic::Status> {
        Ok(Self { secret: AttachSecret::new(cluster_secret)?, channels: Default::default() })
    }

    /// The shared channel to `addr` (`host:port`), created on first use.
    pub fn channel(&self, addr: &str) -> Result<AuthChannel, tonic::Status> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let channel = match channels.get(addr) {
            Some(c) => c.clone(),
            None => {
                let c = Endpoint::from_shared(format!("http://{addr}"))
                    .map_err(|e| tonic::Status::invalid_argument(format!("bad address {addr}: {e}")))?
                    .connect_timeout(Duration::from_secs(3))
                    .tcp_nodelay(true)
                    .http2_adaptive_window(true)
                    .initial_stream_window_size(4 << 20)
                    .initial_connection_window_size(16 << 20)
                    .connect_lazy();
                channels.insert(addr.to_string(), c.clone());
                c
            }
        };
        Ok(InterceptedService::new(channel, self.secret.clone()))
    }

    pub fn blocks(&self, addr: &str) -> Result<BlockServiceClient<AuthChannel>, tonic::Status> {
        Ok(BlockServiceClient::new(self.channel(addr)?)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE))
    }

    pub fn objects(&self, addr: &str) -> Result<ObjectServiceClient<AuthChannel>, tonic::Status> {
        Ok(ObjectServiceClient::new(self.channel(addr)?)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE))
    }

    pub fn meta(&self, addr: &str) -> Result<MetaServiceClient<AuthChannel>, tonic::Status> {
        Ok(MetaServiceClient::new(self.channel(addr)?)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE))
    }

    pub fn admin(&self, addr: &str) -> Result<AdminServiceClient<AuthChannel>, tonic::Status> {
        Ok(AdminServiceClient::new(self.channel(addr)?))
    }
}

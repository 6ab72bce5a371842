//! gRPC clients to nodes: one lazily-connected tonic channel per address, shared by every
//! call, each call carrying the cluster secret; plaintext or TLS as the [`Dialer`] says.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::meta::LayoutNode;
use crate::pb::admin_service_client::AdminServiceClient;
use crate::pb::block_service_client::BlockServiceClient;
use crate::pb::meta_service_client::MetaServiceClient;
use crate::pb::object_service_client::ObjectServiceClient;
use crate::pb::{self, RefsRequest};
use crate::ring::{Placement, block_hash};
use crate::secret::AttachSecret;
use crate::tls::Dialer;

/// A channel with the cluster secret attached.
pub type AuthChannel = InterceptedService<Channel, AttachSecret>;

/// Largest gRPC message we send or accept (a block plus framing).
pub const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// Connections to every node this process talks to.
#[derive(Clone)]
pub struct Peers {
    secret: AttachSecret,
    dialer: Dialer,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl Peers {
    /// Plaintext connections carrying `cluster_secret` (see [`Peers::with_dialer`] for TLS).
    pub fn new(cluster_secret: &str) -> Result<Self, tonic::Status> {
        Ok(Self {
            secret: AttachSecret::new(cluster_secret)?,
            dialer: Dialer::plaintext(),
            channels: Default::default(),
        })
    }

    /// The same, dialing nodes with `dialer` (before the first call).
    pub fn with_dialer(self, dialer: Dialer) -> Self {
        Self { dialer, ..self }
    }

    /// The shared channel to `addr` (`host:port`), created on first use.
    pub fn channel(&self, addr: &str) -> Result<AuthChannel, tonic::Status> {
        Ok(InterceptedService::new(
            self.connection(addr)?,
            self.secret.clone(),
        ))
    }

    /// The shared channel to `node`, its calls naming the node so that only it answers.
    fn node_channel(&self, node: &LayoutNode) -> Result<AuthChannel, tonic::Status> {
        let secret = self.secret.for_node(node.id);
        Ok(InterceptedService::new(
            self.connection(&node.addr)?,
            secret,
        ))
    }

    /// The connection to `addr`, created (lazily connecting) on first use.
    fn connection(&self, addr: &str) -> Result<Channel, tonic::Status> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let channel = match channels.get(addr) {
            Some(c) => c.clone(),
            None => {
                let c = self
                    .dialer
                    .endpoint(addr)
                    .map_err(|e| {
                        tonic::Status::invalid_argument(format!("bad address {addr}: {e}"))
                    })?
                    .connect_timeout(Duration::from_secs(3))
                    .tcp_nodelay(true)
                    .initial_stream_window_size(4 << 20)
                    .initial_connection_window_size(16 << 20)
                    .connect_lazy();
                channels.insert(addr.to_string(), c.clone());
                c
            }
        };
        Ok(channel)
    }

    /// The BlockService at `addr`, whichever node answers there.
    pub fn blocks(&self, addr: &str) -> Result<BlockServiceClient<AuthChannel>, tonic::Status> {
        Ok(block_client(self.channel(addr)?))
    }

    /// The BlockService of `node` (another process at its address refuses the calls).
    pub fn blocks_on(
        &self,
        node: &LayoutNode,
    ) -> Result<BlockServiceClient<AuthChannel>, tonic::Status> {
        Ok(block_client(self.node_channel(node)?))
    }

    /// The ObjectService at `addr`, whichever node answers there.
    pub fn objects(&self, addr: &str) -> Result<ObjectServiceClient<AuthChannel>, tonic::Status> {
        Ok(object_client(self.channel(addr)?))
    }

    /// The ObjectService of `node` (another process at its address refuses the calls).
    pub fn objects_on(
        &self,
        node: &LayoutNode,
    ) -> Result<ObjectServiceClient<AuthChannel>, tonic::Status> {
        Ok(object_client(self.node_channel(node)?))
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

fn block_client(channel: AuthChannel) -> BlockServiceClient<AuthChannel> {
    BlockServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

fn object_client(channel: AuthChannel) -> ObjectServiceClient<AuthChannel> {
    ObjectServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

/// Most block references sent in one AddRefs / DropRefs request.
pub const REFS_BATCH: usize = 1000;

/// Block references grouped by the replica nodes that hold them: every entry goes to every
/// replica of its block in every active layout, in batches of at most [`REFS_BATCH`] per
/// request.
pub fn refs_by_replica(
    placement: &Placement,
    refs: &[pb::BlockRefEntry],
) -> Vec<(LayoutNode, Vec<pb::BlockRefEntry>)> {
    let mut by_node: BTreeMap<Uuid, (LayoutNode, Vec<pb::BlockRefEntry>)> = BTreeMap::new();
    for entry in refs {
        for node in placement.write_targets(block_hash(&entry.block_id)) {
            by_node
                .entry(node.id)
                .or_insert_with(|| (node.clone(), Vec::new()))
                .1
                .push(entry.clone());
        }
    }
    by_node
        .into_values()
        .flat_map(|(node, entries)| {
            entries
                .chunks(REFS_BATCH)
                .map(|batch| (node.clone(), batch.to_vec()))
                .collect::<Vec<_>>()
        })
        .collect()
}

impl Peers {
    /// Drops block references on every replica of their blocks: one request per node and
    /// batch, the nodes in parallel. Best effort, like every release: a replica that cannot be
    /// reached keeps its references until repair; failures are logged and counted. The batch
    /// of the node `local_id` (this process's own node, if any) goes to `local` instead of
    /// the network.
    pub async fn drop_refs_everywhere<Fut>(
        &self,
        placement: &Placement,
        refs: &[pb::BlockRefEntry],
        local_id: Option<Uuid>,
        local: impl Fn(Vec<pb::BlockRefEntry>) -> Fut,
    ) -> usize
    where
        Fut: Future<Output = Result<(), tonic::Status>>,
    {
        let mut failures = 0;
        let mut remote = tokio::task::JoinSet::new();
        for (node, batch) in refs_by_replica(placement, refs) {
            if Some(node.id) == local_id {
                if let Err(e) = local(batch).await {
                    tracing::warn!(node = %node.id, error = %e, "could not drop block references");
                    failures += 1;
                }
                continue;
            }
            let client = self.blocks_on(&node);
            let req = RefsRequest {
                refs: batch,
                layout_version: placement.version(),
            };
            remote
                .spawn(async move { (node.id, async move { client?.drop_refs(req).await }.await) });
        }
        while let Some(done) = remote.join_next().await {
            match done {
                Ok((_, Ok(_))) => {}
                Ok((node, Err(e))) => {
                    tracing::warn!(node = %node, error = %e, "could not drop block references");
                    failures += 1;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "dropping block references panicked");
                    failures += 1;
                }
            }
        }
        failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::Layout;
    use crate::ring::Ring;

    #[test]
    fn refs_go_to_every_replica_in_batches() {
        let nodes: Vec<LayoutNode> = (0..4)
            .map(|i| LayoutNode {
                id: Uuid::new_v4(),
                addr: format!("n{i}:1"),
                zone: format!("z{i}"),
                weight: 1,
            })
            .collect();
        let layout = Layout {
            version: 1,
            replication: 3,
            nodes,
        };
        let ring = Ring::new(&layout);
        let refs: Vec<pb::BlockRefEntry> = (0..2500u32)
            .map(|i| pb::BlockRefEntry {
                block_id: [i.to_be_bytes(); 4].concat(),
                owner: None,
            })
            .collect();
        let batches = refs_by_replica(&Placement::new([&layout]), &refs);
        assert!(
            batches
                .iter()
                .all(|(_, b)| !b.is_empty() && b.len() <= REFS_BATCH)
        );
        assert_eq!(
            batches.iter().map(|(_, b)| b.len()).sum::<usize>(),
            refs.len() * 3
        );
        for entry in refs.iter().step_by(97) {
            let mut holders: Vec<Uuid> = batches
                .iter()
                .filter(|(_, b)| b.contains(entry))
                .map(|(n, _)| n.id)
                .collect();
            holders.sort();
            let mut expected: Vec<Uuid> = ring
                .replicas(block_hash(&entry.block_id))
                .iter()
                .map(|n| n.id)
                .collect();
            expected.sort();
            assert_eq!(holders, expected);
        }
    }
}

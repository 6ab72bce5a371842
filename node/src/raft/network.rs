//! Raft networking over the `MetaService` gRPC service.
//!
//! [`Peers`] keeps ONE lazily connected tonic channel per peer address, carrying the cluster
//! secret; openraft's per-target clients ([`PeerNetwork`]) and the write/read forwarding of
//! [`super::MetaRaft`] all share it. Payloads are serde_json of openraft's messages, wrapped in
//! an [`Addressed`] envelope so a node refuses a message meant for another node id (an address
//! may be reused by a different node).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use cairn_proto::pb::RaftMessage;
use cairn_proto::pb::meta_service_client::MetaServiceClient;
use cairn_proto::secret::AttachSecret;
use cairn_proto::tls::Dialer;
use openraft::alias::{SnapshotMetaOf, SnapshotOf, VoteOf};
use openraft::errors::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend, RaftNetworkV2};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Status};
use uuid::Uuid;

use super::TypeConfig;

/// Largest gRPC message accepted or sent on `MetaService` (snapshots carry the whole state).
pub(crate) const MAX_MESSAGE: usize = 256 * 1024 * 1024;

/// A `MetaService` client that attaches the cluster secret to every call.
pub(crate) type MetaClient = MetaServiceClient<InterceptedService<Channel, AttachSecret>>;

/// One cached channel per peer address, shared by everything that talks to peers.
#[derive(Clone)]
pub(crate) struct Peers {
    secret: AttachSecret,
    dialer: Dialer,
    clients: Arc<Mutex<HashMap<String, MetaClient>>>,
}

impl Peers {
    pub(crate) fn new(cluster_secret: &str, dialer: Dialer) -> anyhow::Result<Self> {
        let secret =
            AttachSecret::new(cluster_secret).map_err(|s| anyhow::anyhow!("{}", s.message()))?;
        Ok(Self {
            secret,
            dialer,
            clients: Arc::default(),
        })
    }

    /// The client for `addr` (`host:port` or a full URI); connects lazily on first use and
    /// reconnects by itself after failures.
    pub(crate) fn client(&self, addr: &str) -> Result<MetaClient, tonic::transport::Error> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.get(addr) {
            return Ok(client.clone());
        }
        let channel = self
            .dialer
            .endpoint(addr)?
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true)
            .connect_lazy();
        let client = MetaServiceClient::with_interceptor(channel, self.secret.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        clients.insert(addr.to_string(), client.clone());
        Ok(client)
    }
}

/// A Raft RPC body together with the node id it is meant for.
#[derive(Serialize, Deserialize)]
pub(crate) struct Addressed<T> {
    pub to: Uuid,
    pub body: T,
}

/// Body of the `Vote` RPC, which carries both votes and pre-votes.
#[derive(Serialize, Deserialize)]
pub(crate) struct VoteBody {
    pub pre_vote: bool,
    pub req: VoteRequest<TypeConfig>,
}

/// Header of the `InstallSnapshot` RPC; the snapshot bytes follow it (see [`frame`]).
#[derive(Serialize, Deserialize)]
pub(crate) struct SnapshotHeader {
    pub vote: VoteOf<TypeConfig>,
    pub meta: SnapshotMetaOf<TypeConfig>,
}

/// `[u32 big-endian header length][header][data]`: keeps snapshot bytes out of JSON.
pub(crate) fn frame(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + header.len() + data.len());
    out.extend_from_slice(&(header.len() as u32).to_be_bytes());
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    out
}

/// Splits a [`frame`]d payload into header and data.
pub(crate) fn unframe(payload: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_be_bytes(payload.get(..4)?.try_into().ok()?) as usize;
    let rest = payload.get(4..)?;
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// The current address of every member, following the membership. openraft keeps a
/// replication stream (and its network client) across membership changes, so a client reads
/// its target's address here on every call: a member that moved is reached at once.
#[derive(Clone, Default)]
pub(crate) struct Addresses(Arc<RwLock<BTreeMap<Uuid, String>>>);

impl Addresses {
    fn get(&self, id: &Uuid) -> Option<String> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// Replaces the known addresses (no-op if unchanged).
    pub(crate) fn set(&self, addrs: BTreeMap<Uuid, String>) {
        let mut current = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if *current != addrs {
            *current = addrs;
        }
    }
}

/// Creates openraft's per-target network clients.
pub struct NetworkFactory {
    id: Uuid,
    peers: Peers,
    addresses: Addresses,
}

impl NetworkFactory {
    pub(crate) fn new(id: Uuid, peers: Peers, addresses: Addresses) -> Self {
        Self {
            id,
            peers,
            addresses,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: Uuid, node: &BasicNode) -> PeerNetwork {
        PeerNetwork {
            id: self.id,
            target,
            addr: node.addr.clone(),
            peers: self.peers.clone(),
            addresses: self.addresses.clone(),
        }
    }
}

/// Sends Raft RPCs from this node (`id`) to one peer (`target`, at its current address or
/// else `addr`, the one it had when the client was made).
pub struct PeerNetwork {
    id: Uuid,
    target: Uuid,
    addr: String,
    peers: Peers,
    addresses: Addresses,
}

impl PeerNetwork {
    /// One unary RPC with a deadline; returns the response payload.
    async fn call(
        &self,
        rpc: RPCTypes,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, RPCError<TypeConfig>> {
        let addr = self
            .addresses
            .get(&self.target)
            .unwrap_or_else(|| self.addr.clone());
        let mut client = self
            .peers
            .client(&addr)
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let mut req = tonic::Request::new(RaftMessage { payload });
        req.set_timeout(timeout);
        let call = async {
            match rpc {
                RPCTypes::AppendEntries => client.append_entries(req).await,
                RPCTypes::Vote => client.vote(req).await,
                RPCTypes::InstallSnapshot => client.install_snapshot(req).await,
                RPCTypes::TransferLeader => Err(Status::unimplemented("transfer leader")),
            }
        };
        match tokio::time::timeout(timeout, call).await {
            Err(_) => Err(RPCError::Timeout(Timeout {
                action: rpc,
                id: self.id,
                target: self.target,
                timeout,
            })),
            Ok(Err(status)) => Err(status_error(&status)),
            Ok(Ok(resp)) => Ok(resp.into_inner().payload),
        }
    }

    fn addressed<T: Serialize>(&self, body: T) -> Result<Vec<u8>, RPCError<TypeConfig>> {
        serde_json::to_vec(&Addressed {
            to: self.target,
            body,
        })
        .map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }
}

fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, RPCError<TypeConfig>> {
    serde_json::from_slice(payload).map_err(|e| RPCError::Network(NetworkError::new(&e)))
}

/// Peers that refuse or cannot be reached are `Unreachable` (openraft backs off); anything
/// else is a transient network error.
fn status_error(status: &Status) -> RPCError<TypeConfig> {
    let msg = format!("{:?}: {}", status.code(), status.message());
    match status.code() {
        Code::Unavailable
        | Code::Unauthenticated
        | Code::FailedPrecondition
        | Code::Unimplemented => RPCError::Unreachable(Unreachable::from_string(msg)),
        _ => RPCError::Network(NetworkError::from_string(msg)),
    }
}

impl RaftNetworkV2<TypeConfig> for PeerNetwork {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let payload = self.addressed(rpc)?;
        decode(
            &self
                .call(RPCTypes::AppendEntries, payload, option.soft_ttl())
                .await?,
        )
    }

    async fn vote(
        &mut self,
        req: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let payload = self.addressed(VoteBody {
            pre_vote: false,
            req,
        })?;
        decode(
            &self
                .call(RPCTypes::Vote, payload, option.soft_ttl())
                .await?,
        )
    }

    async fn pre_vote(
        &mut self,
        req: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let payload = self.addressed(VoteBody {
            pre_vote: true,
            req,
        })?;
        decode(
            &self
                .call(RPCTypes::Vote, payload, option.soft_ttl())
                .await?,
        )
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, Vec<u8>>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let header = self.addressed(SnapshotHeader {
            vote,
            meta: snapshot.meta,
        })?;
        let payload = frame(&header, &snapshot.snapshot);
        tokio::select! {
            out = self.call(RPCTypes::InstallSnapshot, payload, option.hard_ttl()) => Ok(decode(&out?)?),
            closed = cancel => Err(StreamingError::Closed(closed)),
        }
    }
}

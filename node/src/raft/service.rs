//! `MetaService`: the Raft RPCs between members, and Write / Read / Watch for gateways, the
//! CLI and followers forwarding to the leader. Payloads are serde_json.
//!
//! A Write or Read that a follower forwards carries the [`FORWARDED`] header; the receiver then
//! serves it only if it is the leader (else `FAILED_PRECONDITION`, nothing proposed), so a
//! request never bounces between nodes.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use cairn_proto::meta::{MetaCommand, MetaError, MetaResult, Metadata};
use cairn_proto::pb::meta_service_server::{MetaService, MetaServiceServer};
use cairn_proto::pb::{
    HelloRequest, HelloResponse, JoinRequest, JoinResponse, MetaReadRequest, MetaState,
    MetaWriteRequest, MetaWriteResponse, RaftMessage,
};
use cairn_proto::secret::RequireSecret;
use futures::{Stream, StreamExt};
use openraft::Snapshot;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_stream::wrappers::{IntervalStream, WatchStream};
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::{Code, Request, Response, Status};

use super::network::{Addressed, MAX_MESSAGE, Peers, SnapshotHeader, VoteBody, unframe};
use super::{Applied, LocalError, MetaRaft};

/// gRPC header marking a Write/Read forwarded by a follower.
pub(crate) const FORWARDED: &str = "x-cairn-forwarded";
/// How often a metadata watch stream sends a heartbeat while nothing changes, saying
/// whether the node is in touch with a working Raft quorum (gateways fail closed if not).
pub const WATCH_HEARTBEAT: Duration = Duration::from_secs(1);
/// How recent a quorum acknowledgement (leader) or leader contact (others) must be.
const IN_TOUCH: Duration = Duration::from_secs(2);
/// Deadline of a forwarded Write/Read.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(15);

/// Serves `Join` and `Hello` (cluster membership lives above the Raft layer).
#[tonic::async_trait]
pub trait MembershipHandler: Send + Sync + 'static {
    /// `forwarded`: sent by a follower, serve only as the leader (else `FAILED_PRECONDITION`).
    async fn join(&self, req: JoinRequest, forwarded: bool) -> Result<JoinResponse, Status>;
    fn hello(&self, req: HelloRequest) -> HelloResponse;
}

/// The `MetaService` implementation over a [`MetaRaft`].
pub struct MetaServiceImpl {
    raft: Arc<MetaRaft>,
    membership: Option<Arc<dyn MembershipHandler>>,
    /// Ends `Watch` streams when the server shuts down (they would never end otherwise).
    stop: CancellationToken,
}

/// The `MetaService` server for `raft`, refusing calls without the cluster secret. `Join` and
/// `Hello` are unimplemented.
pub fn meta_service(
    raft: Arc<MetaRaft>,
    cluster_secret: &str,
) -> InterceptedService<MetaServiceServer<MetaServiceImpl>, RequireSecret> {
    meta_service_with(raft, None, cluster_secret, CancellationToken::new())
}

/// [`meta_service`] with `Join` and `Hello` served by `membership`; `Watch` streams end when
/// `stop` is cancelled.
pub fn meta_service_with(
    raft: Arc<MetaRaft>,
    membership: Option<Arc<dyn MembershipHandler>>,
    cluster_secret: &str,
    stop: CancellationToken,
) -> InterceptedService<MetaServiceServer<MetaServiceImpl>, RequireSecret> {
    let server = MetaServiceServer::new(MetaServiceImpl {
        raft,
        membership,
        stop,
    })
    .max_decoding_message_size(MAX_MESSAGE)
    .max_encoding_message_size(MAX_MESSAGE);
    InterceptedService::new(server, RequireSecret::new(cluster_secret))
}

impl MetaServiceImpl {
    /// Decodes an [`Addressed`] body, refusing one meant for another node.
    fn addressed<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, Status> {
        let msg: Addressed<T> = serde_json::from_slice(bytes).map_err(bad_request)?;
        self.check_target(msg.to)?;
        Ok(msg.body)
    }

    fn check_target(&self, to: uuid::Uuid) -> Result<(), Status> {
        if to == self.raft.id {
            Ok(())
        } else {
            Err(Status::failed_precondition(format!(
                "this is node {}, not {to}",
                self.raft.id
            )))
        }
    }
}

fn bad_request(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("bad payload: {e}"))
}

fn raft_reply<T: Serialize, E: std::fmt::Display>(
    res: Result<T, E>,
) -> Result<Response<RaftMessage>, Status> {
    let resp = res.map_err(|e| Status::unavailable(format!("raft: {e}")))?;
    let payload = serde_json::to_vec(&resp).map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(RaftMessage { payload }))
}

pub(crate) fn local_status(e: LocalError) -> Status {
    match e {
        LocalError::NotLeader(_) => Status::failed_precondition("not the metadata leader"),
        LocalError::Meta(e) => meta_status(e),
    }
}

pub(crate) fn meta_status(e: MetaError) -> Status {
    match e {
        MetaError::Unavailable(m) => Status::unavailable(m),
        MetaError::Invalid(m) => Status::invalid_argument(m),
        other => Status::internal(other.to_string()),
    }
}

fn state_message((applied_index, state): &Applied, current: bool) -> Result<MetaState, Status> {
    let state = serde_json::to_vec(&**state).map_err(|e| Status::internal(e.to_string()))?;
    Ok(MetaState {
        applied_index: *applied_index,
        state,
        current,
        ..Default::default()
    })
}

#[tonic::async_trait]
impl MetaService for MetaServiceImpl {
    async fn append_entries(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let req: AppendEntriesRequest<super::TypeConfig> =
            self.addressed(&request.get_ref().payload)?;
        let reply = self.raft.raft.append_entries(req).await;
        if reply
            .as_ref()
            .is_ok_and(|r| !matches!(r, AppendEntriesResponse::HigherVote { .. }))
        {
            self.raft.note_leader_contact();
        }
        raft_reply(reply)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let body: VoteBody = self.addressed(&request.get_ref().payload)?;
        if body.pre_vote {
            raft_reply(self.raft.raft.pre_vote(body.req).await)
        } else {
            raft_reply(self.raft.raft.vote(body.req).await)
        }
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let payload = request.into_inner().payload;
        let (header, data) =
            unframe(&payload).ok_or_else(|| bad_request("truncated snapshot frame"))?;
        let header: SnapshotHeader = self.addressed(header)?;
        let snapshot = Snapshot {
            meta: header.meta,
            snapshot: data.to_vec(),
        };
        raft_reply(
            self.raft
                .raft
                .install_full_snapshot(header.vote, snapshot)
                .await,
        )
    }

    async fn write(
        &self,
        request: Request<MetaWriteRequest>,
    ) -> Result<Response<MetaWriteResponse>, Status> {
        let forwarded = request.metadata().contains_key(FORWARDED);
        let cmd: MetaCommand =
            serde_json::from_slice(&request.get_ref().command).map_err(bad_request)?;
        let (result, applied_index) = if forwarded {
            self.raft.write_local(cmd).await.map_err(local_status)?
        } else {
            self.raft.write_indexed(cmd).await.map_err(meta_status)?
        };
        let result = serde_json::to_vec(&result).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(MetaWriteResponse {
            result,
            applied_index,
        }))
    }

    async fn read(&self, request: Request<MetaReadRequest>) -> Result<Response<MetaState>, Status> {
        if request.get_ref().index_only {
            let applied_index = if request.metadata().contains_key(FORWARDED) {
                self.raft.read_local().await.map_err(local_status)?.0
            } else {
                self.raft.read_index().await.map_err(meta_status)?
            };
            return Ok(Response::new(MetaState {
                applied_index,
                current: true,
                ..Default::default()
            }));
        }
        let applied = if request.metadata().contains_key(FORWARDED) {
            self.raft.read_local().await.map_err(local_status)?
        } else {
            self.raft.read_linearizable().await.map_err(meta_status)?
        };
        Ok(Response::new(state_message(&applied, true)?))
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<MetaState, Status>> + Send>>;

    async fn watch(
        &self,
        _request: Request<MetaReadRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let raft = self.raft.clone();
        let mut sent: Option<u64> = None;
        let updates = WatchStream::new(self.raft.subscribe()).map(move |applied| {
            let current = raft.in_touch(IN_TOUCH);
            let index = applied.0;
            let delta = sent.and_then(|base| Some((base, raft.commands_between(base, index)?)));
            sent = Some(index);
            match delta {
                Some((base_index, commands)) => Ok(MetaState {
                    applied_index: index,
                    state: Vec::new(),
                    current,
                    commands,
                    base_index,
                }),
                None => state_message(&applied, current),
            }
        });
        let raft = self.raft.clone();
        let heartbeats =
            IntervalStream::new(tokio::time::interval(WATCH_HEARTBEAT)).map(move |_| {
                Ok(MetaState {
                    applied_index: raft.current().0,
                    current: raft.in_touch(IN_TOUCH),
                    ..Default::default()
                })
            });
        let stopped = self.stop.clone().cancelled_owned();
        Ok(Response::new(Box::pin(
            futures::stream::select(updates, heartbeats).take_until(stopped),
        )))
    }

    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinResponse>, Status> {
        let forwarded = request.metadata().contains_key(FORWARDED);
        let handler = self.membership()?;
        Ok(Response::new(
            handler.join(request.into_inner(), forwarded).await?,
        ))
    }

    async fn hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloResponse>, Status> {
        Ok(Response::new(
            self.membership()?.hello(request.into_inner()),
        ))
    }
}

impl MetaServiceImpl {
    fn membership(&self) -> Result<&Arc<dyn MembershipHandler>, Status> {
        self.membership
            .as_ref()
            .ok_or_else(|| Status::unimplemented("this server does not manage membership"))
    }
}

/// A forwarded request marked with [`FORWARDED`] and the forwarding deadline.
pub(crate) fn forwarded<T>(msg: T) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut()
        .insert(FORWARDED, MetadataValue::from_static("1"));
    req.set_timeout(FORWARD_TIMEOUT);
    req
}

/// Maps the leader's refusal: `Ok(None)` when it is not the leader (nothing was proposed, the
/// caller may retry), else the error.
pub(crate) fn forward_error<T>(addr: &str, status: Status) -> Result<Option<T>, MetaError> {
    match status.code() {
        Code::FailedPrecondition => Ok(None),
        Code::InvalidArgument => Err(MetaError::Invalid(status.message().to_string())),
        _ => Err(MetaError::Unavailable(format!(
            "metadata leader {addr}: {}",
            status.message()
        ))),
    }
}

/// Sends a write to the leader at `addr`: its result and log index. `Ok(None)`: it is no
/// longer the leader.
pub(crate) async fn forward_write(
    peers: &Peers,
    addr: &str,
    cmd: &MetaCommand,
) -> Result<Option<(MetaResult, u64)>, MetaError> {
    let unavailable = |e: String| MetaError::Unavailable(format!("metadata leader {addr}: {e}"));
    let mut client = peers.client(addr).map_err(|e| unavailable(e.to_string()))?;
    let command = serde_json::to_vec(cmd).map_err(|e| MetaError::Invalid(e.to_string()))?;
    let call = client.write(forwarded(MetaWriteRequest { command }));
    match tokio::time::timeout(FORWARD_TIMEOUT, call).await {
        Err(_) => Err(unavailable("forwarded write timed out".into())),
        Ok(Err(status)) => forward_error(addr, status),
        Ok(Ok(resp)) => serde_json::from_slice(&resp.get_ref().result)
            .map(|result| Some((result, resp.get_ref().applied_index)))
            .map_err(|e| unavailable(e.to_string())),
    }
}

/// Linearizable read on the leader at `addr`. `Ok(None)`: it is no longer the leader.
pub(crate) async fn forward_read(peers: &Peers, addr: &str) -> Result<Option<Applied>, MetaError> {
    let Some(resp) = forward_read_request(peers, addr, false).await? else {
        return Ok(None);
    };
    let state: Metadata = serde_json::from_slice(&resp.state)
        .map_err(|e| MetaError::Unavailable(format!("metadata leader {addr}: {e}")))?;
    Ok(Some((resp.applied_index, Arc::new(state))))
}

/// The linearizable applied index on the leader at `addr`. `Ok(None)`: no longer the leader.
pub(crate) async fn forward_read_index(
    peers: &Peers,
    addr: &str,
) -> Result<Option<u64>, MetaError> {
    Ok(forward_read_request(peers, addr, true)
        .await?
        .map(|resp| resp.applied_index))
}

async fn forward_read_request(
    peers: &Peers,
    addr: &str,
    index_only: bool,
) -> Result<Option<MetaState>, MetaError> {
    let unavailable = |e: String| MetaError::Unavailable(format!("metadata leader {addr}: {e}"));
    let mut client = peers.client(addr).map_err(|e| unavailable(e.to_string()))?;
    let call = client.read(forwarded(MetaReadRequest { index_only }));
    match tokio::time::timeout(FORWARD_TIMEOUT, call).await {
        Err(_) => Err(unavailable("forwarded read timed out".into())),
        Ok(Err(status)) => forward_error(addr, status),
        Ok(Ok(resp)) => Ok(Some(resp.into_inner())),
    }
}

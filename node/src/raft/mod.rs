//! The Raft metadata group: openraft with a persistent log and state machine in one redb file
//! (`<dir>/raft.redb`), Raft RPCs over the `MetaService` gRPC service.
//!
//! - [`MetaRaft`] is this node's member of the group: commit commands, read the state
//!   (locally, or linearizably through the leader), watch it change.
//! - [`meta_service`] serves `MetaService` (Raft RPCs + Write/Read/Watch) behind the cluster
//!   secret.
//!
//! Node ids are the nodes' uuids (openraft accepts any ordered, hashable, serde type); each
//! node's openraft `BasicNode { addr }` is its advertised gRPC address.

mod command_log;
mod db;
mod log_store;
mod network;
mod service;
mod state_machine;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use cairn_proto::meta::{MetaCommand, MetaError, MetaResult};
use cairn_proto::tls::Dialer;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{
    ClientWriteError, ForwardToLeader, InitializeError, LinearizableReadError, RaftError,
};
use openraft::{
    BasicNode, ChangeMembers, Config, Instant as _, ReadPolicy, ServerState, SnapshotPolicy,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

pub use service::{MembershipHandler, MetaServiceImpl, meta_service, meta_service_with};
pub(crate) use service::{forward_error, forwarded, local_status, meta_status};
pub use state_machine::Applied;

use log_store::LogStore;
use network::{Addresses, NetworkFactory, Peers};
use state_machine::{SharedCommandLog, StateMachine};

openraft::declare_raft_types!(
    /// openraft type configuration of the metadata group: node ids are uuids, nodes carry
    /// their gRPC address, log payloads are metadata commands.
    pub TypeConfig:
        D = MetaRequest,
        R = MetaResult,
        NodeId = Uuid,
        Node = BasicNode,
);

/// A metadata command as a Raft log payload. `Debug`/`Display` name the command without its
/// secrets, since openraft logs entries.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MetaRequest(pub MetaCommand);

impl fmt::Display for MetaRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            MetaCommand::CreateBucket { name, .. } => write!(f, "CreateBucket({name})"),
            MetaCommand::DeleteBucket { name, .. } => write!(f, "DeleteBucket({name})"),
            MetaCommand::CreateKey { key } => write!(f, "CreateKey({})", key.id),
            MetaCommand::DeleteKey { id } => write!(f, "DeleteKey({id})"),
            MetaCommand::SetRights { key_id, bucket, .. } => {
                write!(f, "SetRights({key_id}, {bucket})")
            }
            MetaCommand::SetCreateBucket { key_id, allow } => {
                write!(f, "SetCreateBucket({key_id}, {allow})")
            }
            MetaCommand::SetLayout { layout } => write!(f, "SetLayout(v{})", layout.version),
            MetaCommand::RegisterNode { node } => write!(f, "RegisterNode({})", node.id),
            MetaCommand::LayoutSynced { node, version } => {
                write!(f, "LayoutSynced({node}, v{version})")
            }
            MetaCommand::StageLayout { id, .. } => write!(f, "StageLayout({id})"),
            MetaCommand::RevertLayout => write!(f, "RevertLayout"),
            MetaCommand::ApplyLayout { version, .. } => write!(f, "ApplyLayout(v{version})"),
            MetaCommand::PauseRebalance { paused } => write!(f, "PauseRebalance({paused})"),
            MetaCommand::SetRebalanceRate { rate_mib } => {
                write!(f, "SetRebalanceRate({rate_mib:?})")
            }
            MetaCommand::CreateUpload { upload } => write!(f, "CreateUpload({})", upload.id),
            MetaCommand::PutPart { upload_id, part } => {
                write!(f, "PutPart({upload_id}, {})", part.number)
            }
            MetaCommand::CompleteUpload { upload_id } => write!(f, "CompleteUpload({upload_id})"),
            MetaCommand::AbortUpload { upload_id } => write!(f, "AbortUpload({upload_id})"),
            MetaCommand::SetBucketCors { bucket, cors } => {
                let action = if cors.is_some() { "set" } else { "remove" };
                write!(f, "SetBucketCors({bucket}, {action})")
            }
            MetaCommand::SetBucketWebsite { bucket, website } => {
                let action = if website.is_some() { "set" } else { "remove" };
                write!(f, "SetBucketWebsite({bucket}, {action})")
            }
            MetaCommand::SetBucketLifecycle { bucket, lifecycle } => {
                let action = if lifecycle.is_some() { "set" } else { "remove" };
                write!(f, "SetBucketLifecycle({bucket}, {action})")
            }
            MetaCommand::SetBucketVersioning { bucket, status } => {
                write!(f, "SetBucketVersioning({bucket}, {status:?})")
            }
            MetaCommand::SetBucketTags { bucket, tags } => {
                write!(f, "SetBucketTags({bucket}, {} tags)", tags.len())
            }
        }
    }
}

impl fmt::Debug for MetaRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Raft role and leadership as seen by this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftStatus {
    pub term: u64,
    /// Leader node id (uuid string), empty if none is known.
    pub leader: String,
    /// "leader", "follower", "learner", "candidate" (or "shutdown").
    pub role: String,
    /// Index of the last log entry this node knows to be committed (0 = none).
    pub commit_index: u64,
    /// Index of the last entry in this node's log (0 = none).
    pub last_log_index: u64,
}

/// The Raft membership as one node sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Members {
    /// Voter ids (the last configuration of a joint one).
    pub voters: BTreeSet<Uuid>,
    /// Every member (voters and learners) with its address.
    pub nodes: BTreeMap<Uuid, String>,
}

impl Members {
    pub fn is_voter(&self, id: &Uuid) -> bool {
        self.voters.contains(id)
    }
}

/// How long a blocking `add_learner` may wait for the new learner to catch up.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a write or read waits for a leader (elections) before giving up as unavailable.
const LEADER_WAIT: Duration = Duration::from_secs(5);
/// Upper bound of one local commit or read-index round.
const LOCAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request could not be served by this node alone.
pub(crate) enum LocalError {
    /// Not the leader; the leader's address if known. Nothing was proposed.
    NotLeader(Option<String>),
    Meta(MetaError),
}

/// This node's member of the metadata Raft group. Share it as `Arc<MetaRaft>`.
pub struct MetaRaft {
    id: Uuid,
    addr: String,
    raft: openraft::Raft<TypeConfig, StateMachine>,
    applied: watch::Receiver<Applied>,
    /// The commands applied lately, for watch streams (deltas instead of full states).
    commands: SharedCommandLog,
    peers: Peers,
    /// When a leader last replicated to this node (as a follower or learner).
    leader_contact: std::sync::Mutex<Option<Instant>>,
}

impl MetaRaft {
    /// Opens (or creates) the persistent Raft log + state machine under `dir` (one redb file,
    /// every acknowledged write fsynced) and starts the Raft node. `node_id` is the node's
    /// uuid, `addr` its advertised gRPC address, `cluster_secret` what peers require,
    /// `dialer` how to reach them.
    pub async fn open(
        dir: &Path,
        node_id: Uuid,
        addr: String,
        cluster_secret: String,
        dialer: Dialer,
    ) -> anyhow::Result<Arc<Self>> {
        let db = db::open(dir)?;
        let log_store = LogStore::new(db.clone());
        let (state_machine, applied, commands) = StateMachine::open(db)?;
        let peers = Peers::new(&cluster_secret, dialer)?;
        let config = Config {
            cluster_name: "cairn-meta".into(),
            heartbeat_interval: 100,
            election_timeout_min: 500,
            election_timeout_max: 1000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(1000),
            max_in_snapshot_log_to_keep: 1000,
            enable_pre_vote: Some(true),
            ..Default::default()
        }
        .validate()?;
        let addresses = Addresses::default();
        let network = NetworkFactory::new(node_id, peers.clone(), addresses.clone());
        let raft =
            openraft::Raft::new(node_id, Arc::new(config), network, log_store, state_machine)
                .await
                .map_err(|e| anyhow!("starting the metadata Raft node: {e}"))?;
        tokio::spawn(follow_addresses(raft.server_metrics(), addresses));
        tracing::info!(node = %node_id, applied = applied.borrow().0, dir = %dir.display(), "metadata raft opened");
        Ok(Arc::new(Self {
            id: node_id,
            addr,
            raft,
            applied,
            commands,
            peers,
            leader_contact: Default::default(),
        }))
    }

    /// If this node has never been initialized, initializes a cluster with itself as the only
    /// voter (no-op otherwise). Then waits until it is leader — or, when the membership has
    /// other voters (the node joined a larger group), until some leader is known.
    pub async fn bootstrap_single(&self) -> anyhow::Result<()> {
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|e| anyhow!("{e}"))?;
        if !initialized {
            tracing::info!(node = %self.id, addr = %self.addr, "initializing a single-voter metadata group");
            let nodes = BTreeMap::from([(self.id, BasicNode::new(&self.addr))]);
            match self.raft.initialize(nodes).await {
                Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(anyhow!("initializing the metadata group: {e}")),
            }
        }
        let id = self.id;
        self.raft
            .wait(Some(Duration::from_secs(30)))
            .metrics(
                move |m| {
                    let alone = m
                        .membership_config
                        .membership()
                        .voter_ids()
                        .all(|v| v == id);
                    if alone {
                        m.state == ServerState::Leader
                    } else {
                        m.current_leader.is_some()
                    }
                },
                "metadata leader elected",
            )
            .await
            .map_err(|e| anyhow!("waiting for a metadata leader: {e}"))?;
        Ok(())
    }

    /// Commits a command through Raft and returns the state machine's answer (which may be a
    /// refusal, `MetaResult::Err`). Not the leader: forwards to the leader's
    /// `MetaService.Write`. No leader, lost quorum or transport failure: `MetaError::Unavailable`.
    pub async fn write(&self, cmd: MetaCommand) -> Result<MetaResult, MetaError> {
        Ok(self.write_indexed(cmd).await?.0)
    }

    /// [`MetaRaft::write`], also returning the log index of the command: a state whose
    /// applied index reached it includes the change.
    pub async fn write_indexed(&self, cmd: MetaCommand) -> Result<(MetaResult, u64), MetaError> {
        let cmd = &cmd;
        self.via_leader(
            "write",
            || self.write_local(cmd.clone()),
            |addr| async move { service::forward_write(&self.peers, &addr, cmd).await },
        )
        .await
    }

    /// The commands applied after log index `base` up to `upto` (serde_json, in order), if
    /// this node still has them all.
    pub(crate) fn commands_between(&self, base: u64, upto: u64) -> Option<Vec<Vec<u8>>> {
        (self.commands.lock().unwrap_or_else(|e| e.into_inner())).between(base, upto)
    }

    /// Commits a command on this node only if it is the leader; answers with its log index.
    pub(crate) async fn write_local(
        &self,
        cmd: MetaCommand,
    ) -> Result<(MetaResult, u64), LocalError> {
        let res = tokio::time::timeout(LOCAL_TIMEOUT, self.raft.client_write(MetaRequest(cmd)))
            .await
            .map_err(|_| {
                LocalError::Meta(MetaError::Unavailable("metadata commit timed out".into()))
            })?;
        match res {
            Ok(resp) => Ok((resp.data, resp.log_id.index)),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(LocalError::NotLeader(self.leader_addr(&f)))
            }
            Err(e) => Err(LocalError::Meta(MetaError::Unavailable(e.to_string()))),
        }
    }

    /// Current applied state (local, possibly stale on a follower): (applied log index, state).
    pub fn current(&self) -> Applied {
        self.applied.borrow().clone()
    }

    /// Linearizable read: read index on the leader; a follower forwards to the leader's
    /// `MetaService.Read`.
    pub async fn read_linearizable(&self) -> Result<Applied, MetaError> {
        self.via_leader(
            "read",
            || self.read_local(),
            |addr| async move { service::forward_read(&self.peers, &addr).await },
        )
        .await
    }

    /// The applied index a linearizable read would return (on the leader, or forwarded to
    /// it): a copy of the state that reached it reflects every write committed before.
    pub async fn read_index(&self) -> Result<u64, MetaError> {
        self.via_leader(
            "read index",
            || async { Ok(self.read_local().await?.0) },
            |addr| async move { service::forward_read_index(&self.peers, &addr).await },
        )
        .await
    }

    /// Linearizable read on this node only if it is the leader.
    pub(crate) async fn read_local(&self) -> Result<Applied, LocalError> {
        let res = tokio::time::timeout(
            LOCAL_TIMEOUT,
            self.raft.ensure_linearizable(ReadPolicy::ReadIndex),
        )
        .await
        .map_err(|_| LocalError::Meta(MetaError::Unavailable("metadata read timed out".into())))?;
        match res {
            // The state machine has applied at least the read index now.
            Ok(_) => Ok(self.current()),
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => {
                Err(LocalError::NotLeader(self.leader_addr(&f)))
            }
            Err(e) => Err(LocalError::Meta(MetaError::Unavailable(e.to_string()))),
        }
    }

    /// Receives (applied index, state) after every applied change (starting with the current).
    pub fn subscribe(&self) -> watch::Receiver<Applied> {
        self.applied.clone()
    }

    /// Term, leader and own role.
    pub fn status(&self) -> RaftStatus {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        let role = match m.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Learner => "learner",
            ServerState::Candidate => "candidate",
            ServerState::Shutdown => "shutdown",
        };
        RaftStatus {
            term: m.current_term,
            leader: m.current_leader.map(|l| l.to_string()).unwrap_or_default(),
            role: role.to_string(),
            commit_index: m.local_committed.as_ref().map(|l| l.index).unwrap_or(0),
            last_log_index: m.last_log_index.unwrap_or(0),
        }
    }

    /// Stops the Raft node and closes its storage. Dropping a `MetaRaft` without this leaves
    /// the Raft tasks running (and the redb file open, so it cannot be reopened in-process).
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "metadata Raft shutdown");
        }
    }

    /// This node's id.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Whether this node belongs to an initialized group (it has a membership with voters).
    pub fn is_member(&self) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        m.membership_config
            .membership()
            .voter_ids()
            .next()
            .is_some()
    }

    /// `None` on the leader; otherwise `NotLeader` with the leader's address if known.
    pub(crate) fn not_leader(&self) -> Option<LocalError> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        if m.state == ServerState::Leader {
            return None;
        }
        let addr = m.current_leader.filter(|l| *l != self.id).and_then(|l| {
            m.membership_config
                .membership()
                .get_node(&l)
                .map(|n| n.addr.clone())
        });
        Some(LocalError::NotLeader(addr))
    }

    /// Notes that a current leader just replicated to this node.
    pub(crate) fn note_leader_contact(&self) {
        if let Ok(mut t) = self.leader_contact.lock() {
            *t = Some(Instant::now());
        }
    }

    /// Whether this node's metadata is known current: as the leader, a quorum acknowledged
    /// it within `within` (always, when it is the only voter); otherwise a leader replicated
    /// to it within `within`. A node cut off from the majority soon answers `false`.
    pub fn in_touch(&self, within: Duration) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        if m.state == ServerState::Leader {
            let voters: Vec<_> = m.membership_config.membership().voter_ids().collect();
            return voters == [self.id]
                || m.last_quorum_acked
                    .as_ref()
                    .is_some_and(|t| t.elapsed() < within);
        }
        self.leader_contact
            .lock()
            .map(|t| t.is_some_and(|t| t.elapsed() < within))
            .unwrap_or(false)
    }

    /// Whether this node is the leader now.
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow_watched().state == ServerState::Leader
    }

    /// The membership this node knows (its latest, possibly uncommitted, configuration).
    pub fn members(&self) -> Members {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        let membership = m.membership_config.membership();
        Members {
            voters: membership
                .get_joint_config()
                .last()
                .cloned()
                .unwrap_or_default(),
            nodes: membership
                .nodes()
                .map(|(id, n)| (*id, n.addr.clone()))
                .collect(),
        }
    }

    /// On the leader: how long ago each other member last acknowledged a heartbeat or
    /// replication (`None`: never since this node became leader). Empty on other nodes.
    pub fn last_acks(&self) -> BTreeMap<Uuid, Option<Duration>> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        m.heartbeat
            .iter()
            .flatten()
            .filter(|(id, _)| **id != self.id)
            .map(|(id, at)| (*id, at.as_ref().map(|t| t.elapsed())))
            .collect()
    }

    /// Initializes a new group with these voters (id → address). Fails if this node already
    /// belongs to one.
    pub async fn initialize(&self, voters: BTreeMap<Uuid, String>) -> anyhow::Result<()> {
        let nodes: BTreeMap<Uuid, BasicNode> = voters
            .into_iter()
            .map(|(id, addr)| (id, BasicNode::new(addr)))
            .collect();
        self.raft
            .initialize(nodes)
            .await
            .map_err(|e| anyhow!("initializing the metadata group: {e}"))
    }

    /// Waits until some leader is known.
    pub async fn wait_for_leader(&self, timeout: Duration) -> anyhow::Result<()> {
        self.raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a metadata leader is known")
            .await
            .map_err(|e| anyhow!("waiting for a metadata leader: {e}"))?;
        Ok(())
    }

    /// On the leader: adds a learner and waits (bounded) until it has caught up.
    pub(crate) async fn add_learner(&self, id: Uuid, addr: &str) -> Result<(), LocalError> {
        let add = self.raft.add_learner(id, BasicNode::new(addr), true);
        let res = tokio::time::timeout(CATCH_UP_TIMEOUT, add)
            .await
            .map_err(|_| {
                LocalError::Meta(MetaError::Unavailable(format!(
                    "node {id} did not catch up with the metadata log within {CATCH_UP_TIMEOUT:?}"
                )))
            })?;
        self.membership_result(res)
    }

    /// On the leader: applies a membership change (joint consensus when voters change).
    pub(crate) async fn change_members(
        &self,
        change: ChangeMembers<Uuid, BasicNode>,
    ) -> Result<(), LocalError> {
        let res = tokio::time::timeout(LOCAL_TIMEOUT, self.raft.change_membership(change, true))
            .await
            .map_err(|_| {
                LocalError::Meta(MetaError::Unavailable("membership change timed out".into()))
            })?;
        self.membership_result(res)
    }

    /// On the leader: records a member's new address.
    pub(crate) async fn set_member_addr(&self, id: Uuid, addr: &str) -> Result<(), LocalError> {
        let nodes = BTreeMap::from([(id, BasicNode::new(addr))]);
        self.change_members(ChangeMembers::SetNodes(nodes)).await
    }

    /// On the leader: makes exactly `voters` the voters; removed voters stay learners.
    pub(crate) async fn set_voters(&self, voters: BTreeSet<Uuid>) -> Result<(), LocalError> {
        self.change_members(ChangeMembers::ReplaceAllVoters(voters))
            .await
    }

    fn membership_result<T>(
        &self,
        res: Result<T, RaftError<TypeConfig, ClientWriteError<TypeConfig>>>,
    ) -> Result<(), LocalError> {
        match res {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(LocalError::NotLeader(self.leader_addr(&f)))
            }
            Err(e) => Err(LocalError::Meta(MetaError::Unavailable(e.to_string()))),
        }
    }

    /// The leader's address from a forward hint (or the membership), unless it is us.
    fn leader_addr(&self, f: &ForwardToLeader<TypeConfig>) -> Option<String> {
        let leader = f.leader_id.filter(|l| *l != self.id)?;
        if let Some(node) = &f.leader_node {
            return Some(node.addr.clone());
        }
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        m.membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())
    }

    /// Runs `local` on this node; when it is not the leader, `remote` on the leader (one hop:
    /// the leader serves forwarded requests locally). Retries while no leader is known or
    /// leadership moved before anything was proposed, up to [`LEADER_WAIT`].
    pub(crate) async fn via_leader<T, L, LF, R, RF>(
        &self,
        what: &str,
        local: L,
        remote: R,
    ) -> Result<T, MetaError>
    where
        L: Fn() -> LF,
        LF: Future<Output = Result<T, LocalError>>,
        R: Fn(String) -> RF,
        RF: Future<Output = Result<Option<T>, MetaError>>,
    {
        let deadline = Instant::now() + LEADER_WAIT;
        let mut pause = Duration::from_millis(20);
        loop {
            match local().await {
                Ok(v) => return Ok(v),
                Err(LocalError::Meta(e)) => return Err(e),
                Err(LocalError::NotLeader(Some(addr))) => {
                    if let Some(v) = remote(addr).await? {
                        return Ok(v);
                    }
                }
                Err(LocalError::NotLeader(None)) => {}
            }
            if Instant::now() + pause > deadline {
                return Err(MetaError::Unavailable(format!(
                    "no metadata leader for {what}"
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }
}

/// Keeps `addresses` equal to the members' addresses in the latest membership.
async fn follow_addresses(
    mut metrics: openraft::alias::WatchReceiverOf<
        TypeConfig,
        openraft::metrics::RaftServerMetrics<TypeConfig>,
    >,
    addresses: Addresses,
) {
    loop {
        let addrs = {
            let m = metrics.borrow_watched();
            m.membership_config
                .membership()
                .nodes()
                .map(|(id, n)| (*id, n.addr.clone()))
                .collect()
        };
        addresses.set(addrs);
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests;

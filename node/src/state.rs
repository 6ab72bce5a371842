//! What one running node holds: its identity, local stores, Raft handle, clock, peers and
//! its view of the placement (the rings of the active layouts).

use std::sync::Arc;

use cairn_proto::client::Peers;
use cairn_proto::meta::LayoutNode;
use cairn_proto::{Hlc, Metadata, Placement};
use tokio::sync::watch;
use tonic::Status;
use uuid::Uuid;

use crate::coordinator::KeyLocks;
use crate::disk::DiskGuard;
use crate::gc::GcState;
use crate::lifecycle::LifecycleState;
use crate::raft::MetaRaft;
use crate::repair::RepairState;
use crate::store::{BlockStore, Index};

/// Shared state of a running node, handed to every RPC service and background task.
pub struct NodeState {
    pub id: Uuid,
    /// The gRPC address other processes reach this node at.
    pub addr: String,
    pub blocks: BlockStore,
    pub index: Index,
    pub raft: Arc<MetaRaft>,
    pub hlc: Hlc,
    pub peers: Peers,
    /// Per-key locks the coordinator holds across a conditional write.
    pub key_locks: KeyLocks,
    /// Anti-entropy counters (for `cairn status`) and its limit on index scans.
    pub repair: RepairState,
    /// Lifecycle worker counters (for `cairn status` and metrics).
    pub lifecycle: LifecycleState,
    /// Collector counters (for `cairn status` and metrics).
    pub gc: GcState,
    /// Free space of the data dir and its reserve: every admission point of new data asks it.
    pub disk: DiskGuard,
    placement: watch::Receiver<Arc<Placement>>,
}

impl NodeState {
    pub fn new(
        id: Uuid,
        addr: String,
        blocks: BlockStore,
        index: Index,
        raft: Arc<MetaRaft>,
        peers: Peers,
        disk: DiskGuard,
    ) -> Arc<Self> {
        let placement = placement_watch(&raft);
        Arc::new(Self {
            id,
            addr,
            blocks,
            index,
            raft,
            hlc: Hlc::new(),
            peers,
            key_locks: KeyLocks::default(),
            repair: RepairState::default(),
            lifecycle: LifecycleState::default(),
            gc: GcState::default(),
            disk,
            placement,
        })
    }

    /// The current placement (from the applied layouts).
    pub fn placement(&self) -> Arc<Placement> {
        self.placement.borrow().clone()
    }

    /// Notified whenever the active layouts (and so the placement) change.
    pub fn placement_changes(&self) -> watch::Receiver<Arc<Placement>> {
        self.placement.clone()
    }

    /// Refuses a write sent with an older layout than ours (0 = sender does not care), so no
    /// write lands only on the replicas of a layout the sender did not know had changed.
    /// Reads are served whatever the sender's version: under a newer layout the older one
    /// stays readable until every node holds its new share.
    pub fn check_layout(&self, sender_version: u64) -> Result<(), Status> {
        let ours = self.placement().version();
        if sender_version != 0 && sender_version < ours {
            return Err(Status::failed_precondition(format!(
                "stale layout: request has version {sender_version}, node has {ours}"
            )));
        }
        Ok(())
    }

    /// Whether `node` is this node.
    pub fn is_self(&self, node: &LayoutNode) -> bool {
        node.id == self.id
    }
}

/// Which layout versions are active: the placement changes exactly when this does.
fn active_versions(meta: &Metadata) -> Vec<u64> {
    meta.active_layouts().map(|l| l.version).collect()
}

/// A placement rebuilt whenever the active layout versions change.
fn placement_watch(raft: &MetaRaft) -> watch::Receiver<Arc<Placement>> {
    let mut applied = raft.subscribe();
    let initial = applied.borrow().1.clone();
    let (tx, rx) = watch::channel(Arc::new(initial.placement()));
    tokio::spawn(async move {
        let mut versions = active_versions(&initial);
        loop {
            let meta = applied.borrow_and_update().1.clone();
            if active_versions(&meta) != versions {
                versions = active_versions(&meta);
                tx.send_replace(Arc::new(meta.placement()));
            }
            if applied.changed().await.is_err() {
                break;
            }
        }
    });
    rx
}

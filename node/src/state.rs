//! What one running node holds: its identity, local stores, Raft handle, clock, peers and
//! its view of the ring.

use std::sync::Arc;

use cairn_proto::client::Peers;
use cairn_proto::meta::LayoutNode;
use cairn_proto::{Hlc, Ring};
use tokio::sync::watch;
use tonic::Status;
use uuid::Uuid;

use crate::coordinator::KeyLocks;
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
    ring: watch::Receiver<Arc<Ring>>,
}

impl NodeState {
    pub fn new(
        id: Uuid,
        addr: String,
        blocks: BlockStore,
        index: Index,
        raft: Arc<MetaRaft>,
        peers: Peers,
    ) -> Arc<Self> {
        let ring = ring_watch(&raft);
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
            ring,
        })
    }

    /// The current ring (from the applied layout).
    pub fn ring(&self) -> Arc<Ring> {
        self.ring.borrow().clone()
    }

    /// Notified whenever the applied layout (and so the ring) changes.
    pub fn ring_changes(&self) -> watch::Receiver<Arc<Ring>> {
        self.ring.clone()
    }

    /// Refuses a request sent with an older layout than ours (0 = sender does not care).
    pub fn check_layout(&self, sender_version: u64) -> Result<(), Status> {
        let ours = self.ring().version();
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

/// A ring rebuilt whenever the applied layout version changes.
fn ring_watch(raft: &MetaRaft) -> watch::Receiver<Arc<Ring>> {
    let mut applied = raft.subscribe();
    let initial = Arc::new(Ring::new(&applied.borrow().1.layout));
    let (tx, rx) = watch::channel(initial);
    tokio::spawn(async move {
        loop {
            let layout = applied.borrow_and_update().1.layout.clone();
            if layout.version != tx.borrow().version() {
                tx.send_replace(Arc::new(Ring::new(&layout)));
            }
            if applied.changed().await.is_err() {
                break;
            }
        }
    });
    rx
}

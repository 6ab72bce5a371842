//! This node's part in a layout transition. Anti-entropy passes already pull records across
//! every active layout; once a pass shows this node holds every record the current layout
//! gives it, it copies the blocks of the records — and of the parts of in-progress multipart
//! uploads — whose key it is the current primary of to their current replicas (every key has
//! one current primary, which reports too, so every block is covered), then reports
//! `LayoutSynced` through Raft. The older layouts retire once every
//! node of the current one has reported. While rebalancing is paused it waits (between
//! batches) and does not report; its progress is counted in
//! [`Rebalance`](super::rebalance::Rebalance).

use std::sync::Arc;

use cairn_proto::ids::record_blocks;
use cairn_proto::pb::{self, RecordState};
use cairn_proto::ring::object_hash;
use cairn_proto::{MetaCommand, Placement};
use uuid::Uuid;

use super::blocking;
use super::blocks::{ensure_blocks, ensure_refs};
use crate::state::NodeState;
use crate::store::index::bucket_of;

/// Records whose blocks are checked per round of the handoff.
const HANDOFF_BATCH: usize = 1000;

/// Whether this node still owes a `LayoutSynced` for the current layout.
pub fn owes_sync(state: &NodeState) -> bool {
    let meta = state.raft.current().1;
    meta.nodes_syncing().iter().any(|n| n.id == state.id)
}

/// Copies the blocks this node is responsible for to the current layout's replicas, then
/// reports the node synced. `Err` says what is left (the next pass tries again).
pub async fn finish_sync(state: &Arc<NodeState>, placement: &Arc<Placement>) -> Result<(), String> {
    let rebalance = &state.repair.rebalance;
    let version = placement.version();
    rebalance.wait_unpaused(state).await;
    let (objects, bytes) = primary_totals(state, placement).await?;
    rebalance.handoff_started(version, objects, bytes);
    let mut after: Vec<u8> = Vec::new();
    loop {
        let (batch, next) = primary_records(state, placement, after).await?;
        if !batch.is_empty() {
            rebalance.wait_unpaused(state).await;
            let done = ensure_blocks(state, placement, &batch, usize::MAX).await;
            if !done.errors.is_empty() {
                return Err(done.errors.join("; "));
            }
            let bytes = batch.iter().map(blocks_size).sum();
            rebalance.checked(version, batch.len() as u64, bytes);
        }
        match next {
            Some(next) => after = next,
            None => break,
        }
    }
    let parts = upload_part_refs(state, placement);
    let done = ensure_refs(state, placement, parts, usize::MAX).await;
    if !done.errors.is_empty() {
        return Err(done.errors.join("; "));
    }
    rebalance.wait_unpaused(state).await;
    state
        .raft
        .write(MetaCommand::LayoutSynced {
            node: state.id,
            version,
        })
        .await
        .map_err(|e| format!("reporting the layout synced: {e}"))?;
    tracing::info!(version, "holds everything layout {version} gives it");
    Ok(())
}

/// The references the parts of in-progress multipart uploads hold on their blocks, for the
/// uploads whose key this node is the current primary of: they become the object's blocks
/// when the upload completes, so they move with the records.
fn upload_part_refs(state: &NodeState, placement: &Placement) -> Vec<pb::BlockRefEntry> {
    let meta = state.raft.current().1;
    let mut entries = Vec::new();
    for upload in meta.uploads.values() {
        let primary = placement
            .current()
            .replicas(object_hash(&upload.bucket_id, &upload.key))
            .first()
            .is_some_and(|n| n.id == state.id);
        if !primary {
            continue;
        }
        for part in upload.parts.values() {
            let owner = pb::BlockOwner {
                owner: Some(pb::block_owner::Owner::UploadId(part.owner_id(&upload.id))),
            };
            for block in &part.blocks {
                if let Ok(id) = hex::decode(&block.id) {
                    entries.push(pb::BlockRefEntry {
                        block_id: id,
                        owner: Some(owner.clone()),
                    });
                }
            }
        }
    }
    entries
}

/// Whether the handoff covers this record: complete, with blocks, and this node is the
/// first replica of its key in the current ring.
fn handed_off(placement: &Placement, me: Uuid, record: &pb::ObjectRecord) -> bool {
    record.state() == RecordState::Complete
        && !record_blocks(record).is_empty()
        && placement
            .current()
            .replicas(object_hash(&bucket_of(record), &record.key))
            .first()
            .is_some_and(|n| n.id == me)
}

/// Bytes of a record's blocks.
fn blocks_size(record: &pb::ObjectRecord) -> u64 {
    record_blocks(record).iter().map(|b| b.size).sum()
}

/// How many records the handoff covers, and the bytes of their blocks (one index scan).
async fn primary_totals(
    state: &Arc<NodeState>,
    placement: &Arc<Placement>,
) -> Result<(u64, u64), String> {
    let (index, placement, me) = (state.index.clone(), placement.clone(), state.id);
    blocking(move || {
        let (mut objects, mut bytes) = (0, 0);
        index.scan(None, |_, record| {
            if handed_off(&placement, me, &record) {
                objects += 1;
                bytes += blocks_size(&record);
            }
            true
        })?;
        Ok((objects, bytes))
    })
    .await
    .map_err(|e| e.message().to_string())
}

/// The next (up to) [`HANDOFF_BATCH`] records the handoff covers after `after`, and where to
/// continue (`None` at the end).
async fn primary_records(
    state: &Arc<NodeState>,
    placement: &Arc<Placement>,
    after: Vec<u8>,
) -> Result<(Vec<pb::ObjectRecord>, Option<Vec<u8>>), String> {
    let (index, placement, me) = (state.index.clone(), placement.clone(), state.id);
    blocking(move || {
        let (mut batch, mut next) = (Vec::new(), None);
        index.scan((!after.is_empty()).then_some(&after[..]), |raw, record| {
            if handed_off(&placement, me, &record) {
                batch.push(record);
            }
            if batch.len() >= HANDOFF_BATCH {
                next = Some(raw.to_vec());
                return false;
            }
            true
        })?;
        Ok((batch, next))
    })
    .await
    .map_err(|e| e.message().to_string())
}

//! This node's part in a layout transition. Anti-entropy passes already pull records across
//! every active layout; once a pass shows this node holds every record the current layout
//! gives it, it copies the blocks of the records it is the current primary of to their
//! current replicas (every record has one current primary, which reports too, so every block
//! is covered), then reports `LayoutSynced` through Raft. The older layouts retire once every
//! node of the current one has reported.

use std::sync::Arc;

use cairn_proto::ids::record_blocks;
use cairn_proto::pb::{self, RecordState};
use cairn_proto::ring::object_hash;
use cairn_proto::{MetaCommand, Placement};

use super::blocking;
use super::blocks::ensure_blocks;
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
    let mut after: Vec<u8> = Vec::new();
    loop {
        let (batch, next) = primary_records(state, placement, after).await?;
        if !batch.is_empty() {
            let done = ensure_blocks(state, placement, &batch, usize::MAX).await;
            if !done.errors.is_empty() {
                return Err(done.errors.join("; "));
            }
        }
        match next {
            Some(next) => after = next,
            None => break,
        }
    }
    let version = placement.version();
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

/// The next (up to) [`HANDOFF_BATCH`] complete records with blocks after `after` whose first
/// replica in the current ring is this node, and where to continue (`None` at the end).
async fn primary_records(
    state: &Arc<NodeState>,
    placement: &Arc<Placement>,
    after: Vec<u8>,
) -> Result<(Vec<pb::ObjectRecord>, Option<Vec<u8>>), String> {
    let (index, placement, me) = (state.index.clone(), placement.clone(), state.id);
    blocking(move || {
        let (mut batch, mut next) = (Vec::new(), None);
        index.scan((!after.is_empty()).then_some(&after[..]), |raw, record| {
            let primary = placement
                .current()
                .replicas(object_hash(&bucket_of(&record), &record.key))
                .first()
                .is_some_and(|n| n.id == me);
            if primary
                && record.state() == RecordState::Complete
                && !record_blocks(&record).is_empty()
            {
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

//! Background collection: blocks that have had no reference for the grace delay are
//! deleted, and `uploading` records of abandoned writes expire (releasing their blocks).

use std::sync::Arc;
use std::time::Duration;

use cairn_proto::VersionKey;
use cairn_proto::ids::now_ms;
use cairn_proto::pb::{self, RecordState};
use cairn_proto::ring::object_hash;

use crate::coordinator::release_blocks;
use crate::repair::holds::replica_holds;
use crate::state::NodeState;
use crate::store::Op;

/// Timing of the collector.
#[derive(Debug, Clone, Copy)]
pub struct GcConfig {
    /// How long a block stays after losing its last reference.
    pub block_grace: Duration,
    /// After how long an `uploading` record counts as abandoned.
    pub upload_expiry: Duration,
    /// How long a tombstone is kept at least (longer while a replica may lack it).
    pub tombstone_grace: Duration,
    /// Pause between passes.
    pub interval: Duration,
}

impl Default for GcConfig {
    fn default() -> Self {
        Self {
            block_grace: Duration::from_secs(600),
            upload_expiry: Duration::from_secs(24 * 3600),
            tombstone_grace: Duration::from_secs(24 * 3600),
            interval: Duration::from_secs(30),
        }
    }
}

/// Runs collection passes forever.
pub async fn run(state: Arc<NodeState>, config: GcConfig) {
    loop {
        tokio::time::sleep(config.interval).await;
        if let Err(e) = pass(&state, &config).await {
            tracing::warn!(error = %e, "garbage collection pass failed");
        }
    }
}

/// One pass: expire abandoned uploads, drop settled tombstones, then delete blocks
/// unreferenced past the grace delay.
pub async fn pass(state: &Arc<NodeState>, config: &GcConfig) -> anyhow::Result<()> {
    let now = now_ms();
    let cutoff = now - config.upload_expiry.as_millis() as i64;
    let stale = state
        .index
        .older_than(RecordState::Uploading, cutoff, 1000)?;
    for record in &stale {
        forget_record(state, record).await?;
    }
    release_blocks(state, &stale).await;

    let cutoff = now - config.tombstone_grace.as_millis() as i64;
    // Delete markers of versioned buckets are versions in their own right: they stay until
    // deleted by id.
    let mut deletions = state
        .index
        .older_than(RecordState::Tombstone, cutoff, 1000)?;
    deletions.retain(|t| !t.versioned);
    deletions.extend(state.index.older_than(RecordState::Purged, cutoff, 1000)?);
    for deletion in deletions {
        if deletion_settled(state, &deletion).await {
            forget_record(state, &deletion).await?;
        }
    }

    let cutoff = now - config.block_grace.as_millis() as i64;
    for block in state.index.orphans_before(cutoff, 10_000)? {
        if state.index.ref_count(&block)? == 0 {
            let blocks = state.blocks.clone();
            tokio::task::spawn_blocking(move || blocks.delete(&block)).await??;
            state.index.apply(vec![Op::ForgetOrphan { block }]).await?;
        }
    }
    Ok(())
}

/// Removes one record version from the local index.
async fn forget_record(state: &NodeState, record: &pb::ObjectRecord) -> anyhow::Result<()> {
    let Some(version) = record.version.as_ref().and_then(VersionKey::from_pb) else {
        return Ok(());
    };
    let bucket = uuid::Uuid::from_slice(&record.bucket_id)?;
    state
        .index
        .apply(vec![Op::DeleteRecord {
            bucket,
            key: record.key.clone(),
            version,
        }])
        .await?;
    Ok(())
}

/// A tombstone or purge marker may go once no replica of its key (in any active layout)
/// can still hold the version it deletes or an older one it hides: every other replica
/// holds the deletion, something newer, or nothing at all.
async fn deletion_settled(state: &Arc<NodeState>, deletion: &pb::ObjectRecord) -> bool {
    let Ok(bucket) = uuid::Uuid::from_slice(&deletion.bucket_id) else {
        return false;
    };
    let placement = state.placement();
    for node in placement.write_targets(object_hash(&bucket, &deletion.key)) {
        if !state.is_self(node) && !replica_holds(state, node, placement.version(), deletion).await
        {
            return false;
        }
    }
    true
}

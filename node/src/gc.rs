//! Background collection: blocks that have had no reference for the grace delay are
//! deleted, and `uploading` records of abandoned writes expire (releasing their blocks).

use std::sync::Arc;
use std::time::Duration;

use cairn_proto::ids::now_ms;

use crate::coordinator::release_blocks;
use crate::state::NodeState;
use crate::store::Op;

/// Timing of the collector.
#[derive(Debug, Clone, Copy)]
pub struct GcConfig {
    /// How long a block stays after losing its last reference.
    pub block_grace: Duration,
    /// After how long an `uploading` record counts as abandoned.
    pub upload_expiry: Duration,
    /// Pause between passes.
    pub interval: Duration,
}

impl Default for GcConfig {
    fn default() -> Self {
        Self {
            block_grace: Duration::from_secs(600),
            upload_expiry: Duration::from_secs(24 * 3600),
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

/// One pass: expire abandoned uploads, then delete blocks unreferenced past the grace delay.
pub async fn pass(state: &Arc<NodeState>, config: &GcConfig) -> anyhow::Result<()> {
    let now = now_ms();
    let cutoff = now - config.upload_expiry.as_millis() as i64;
    let stale = state.index.stale_uploads(cutoff, 1000)?;
    for record in &stale {
        let Some(version) = record.version.as_ref().and_then(cairn_proto::VersionKey::from_pb) else { continue };
        let bucket = uuid::Uuid::from_slice(&record.bucket_id)?;
        state.index.apply(vec![Op::DeleteRecord { bucket, key: record.key.clone(), version }]).await?;
    }
    release_blocks(state, &stale).await;

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

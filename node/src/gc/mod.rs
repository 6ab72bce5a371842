//! Background collection: blocks that have had no reference for the grace delay are
//! deleted, `uploading` records of abandoned writes expire, settled tombstones go, and the
//! [`ref_audit`] drops references whose owner is gone everywhere (left behind by writes
//! that died mid-body or releases that could not reach a replica).

pub mod ref_audit;
pub mod verdict;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use cairn_proto::VersionKey;
use cairn_proto::ids::now_ms;
use cairn_proto::pb::{self, RecordState};
use cairn_proto::ring::object_hash;

use crate::coordinator::release_blocks;
use crate::repair::holds::replica_holds;
use crate::state::NodeState;
use crate::store::{Index, Op};
use ref_audit::{AuditReport, RefAudit};

/// Timing of the collector.
#[derive(Debug, Clone, Copy)]
pub struct GcConfig {
    /// How long a block stays after losing its last reference.
    pub block_grace: Duration,
    /// After how long an `uploading` record counts as abandoned; also the age from which
    /// the reference audit checks a reference's owner.
    pub upload_expiry: Duration,
    /// How long a tombstone is kept at least (longer while a replica may lack it).
    pub tombstone_grace: Duration,
    /// Pause between passes.
    pub interval: Duration,
    /// Most old references the audit checks per pass (0 = no audit).
    pub ref_audit_budget: usize,
}

impl Default for GcConfig {
    fn default() -> Self {
        Self {
            block_grace: Duration::from_secs(600),
            upload_expiry: Duration::from_secs(24 * 3600),
            tombstone_grace: Duration::from_secs(24 * 3600),
            interval: Duration::from_secs(30),
            ref_audit_budget: 2000,
        }
    }
}

/// What the collector has done since the node started (for `cairn status` and metrics).
#[derive(Debug, Default)]
pub struct GcState {
    last_pass_ms: AtomicI64,
    passes: AtomicU64,
    blocks_deleted: AtomicU64,
    refs_checked: AtomicU64,
    refs_dropped: AtomicU64,
    last_error: Mutex<String>,
}

impl GcState {
    /// The counters, as `cairn status` reports them, with the references `index` holds.
    pub fn snapshot(&self, index: &Index) -> pb::GcStatus {
        pb::GcStatus {
            last_pass_ms: self.last_pass_ms.load(Ordering::Relaxed),
            passes: self.passes.load(Ordering::Relaxed),
            blocks_deleted: self.blocks_deleted.load(Ordering::Relaxed),
            refs_checked: self.refs_checked.load(Ordering::Relaxed),
            refs_dropped: self.refs_dropped.load(Ordering::Relaxed),
            block_refs: index.ref_total().unwrap_or_default(),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    fn audited(&self, report: &AuditReport) {
        self.refs_checked
            .fetch_add(report.checked, Ordering::Relaxed);
        self.refs_dropped
            .fetch_add(report.dropped, Ordering::Relaxed);
    }

    /// Records a finished pass; returns whether its error differs from the previous pass's.
    fn finish_pass(&self, error: String) -> bool {
        self.last_pass_ms.store(now_ms(), Ordering::Relaxed);
        self.passes.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
        let changed = *last != error;
        *last = error;
        changed
    }
}

/// Runs collection passes forever.
pub async fn run(state: Arc<NodeState>, config: GcConfig) {
    let mut audit = RefAudit::default();
    loop {
        tokio::time::sleep(config.interval).await;
        let error = match pass(&state, &config, &mut audit).await {
            Ok(()) => String::new(),
            Err(e) => format!("{e:#}"),
        };
        // The same failure every pass (a peer stays down) is logged once.
        if state.gc.finish_pass(error.clone()) && !error.is_empty() {
            tracing::warn!(error = %error, "garbage collection pass incomplete");
        }
    }
}

/// One pass: expire abandoned uploads, drop settled tombstones, audit old block references,
/// then delete blocks unreferenced past the grace delay.
pub async fn pass(
    state: &Arc<NodeState>,
    config: &GcConfig,
    audit: &mut RefAudit,
) -> anyhow::Result<()> {
    let now = now_ms();
    let expiry_cutoff = now - config.upload_expiry.as_millis() as i64;
    let stale = state
        .index
        .older_than(RecordState::Uploading, expiry_cutoff, 1000)?;
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

    let audited = audit
        .pass(state, expiry_cutoff, config.ref_audit_budget)
        .await
        .map_err(|e| anyhow::anyhow!("reference audit: {}", e.message()))?;
    state.gc.audited(&audited);
    if audited.dropped > 0 {
        tracing::info!(
            checked = audited.checked,
            dropped = audited.dropped,
            "reference audit dropped references whose owner is gone"
        );
    }

    let cutoff = now - config.block_grace.as_millis() as i64;
    for block in state.index.orphans_before(cutoff, 10_000)? {
        if state.index.ref_count(&block)? == 0 {
            let blocks = state.blocks.clone();
            tokio::task::spawn_blocking(move || blocks.delete(&block)).await??;
            state.index.apply(vec![Op::ForgetOrphan { block }]).await?;
            state.gc.blocks_deleted.fetch_add(1, Ordering::Relaxed);
        }
    }
    if !audited.unanswered.is_empty() {
        anyhow::bail!(
            "reference audit kept references it could not check: {}",
            audited.unanswered.join("; ")
        );
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

//! Repair: anti-entropy brings a replica that missed writes (it was down, or cut off) back in
//! line with the others, without operator action. Read repair lives in the gateway's quorum
//! read; the scrubber is still to come.
//!
//! **Partitions.** The ring is cut at every distinct vnode point
//! ([`Ring::partitions`](cairn_proto::Ring::partitions)): all
//! hashes of a partition share one replica set, the same partitions listings need an answer
//! for. A pass compares, with each other replica of a partition this node holds, a digest of
//! the visible records (complete and tombstone) in it: an order-independent sum of a hash of
//! (bucket, key, version, state) plus a count.
//!
//! **Pull only.** Every replica pulls what it lacks; nobody pushes. For the partitions whose
//! digests differ, the peer streams summaries (bucket, key, version, state) in index order;
//! this node fetches the records it has no version of or an older one, in batches, and stores
//! them through [`store_local`](crate::coordinator::store_local), so the supersede rules apply
//! and superseded versions release their blocks. `uploading` records are never copied: a write
//! that failed must not surface through repair.
//!
//! **Scans, not a hash index.** Records are keyed by (bucket, key, version), not by ring
//! position, so a digest is one walk over the whole index placing each record by its object
//! hash. 100k records with 1 KiB inline bodies take ~0.1 s (release build), once locally and
//! once per peer request each pass (one such scan at a time per node); a secondary hash→key
//! table would make every PUT pay instead. Revisit if passes get long (`cairn status` shows
//! their duration).
//!
//! **Blocks** are placed independently of records, so they are repaired from the records:
//! for a complete record, every replica of each of its blocks must hold the block and a
//! reference for that object version ([`blocks`]). Checked for every record a pass pulled,
//! and by a sweep over the records this node is the first replica of (a budget per pass,
//! starting over when a peer comes back or restarted). A replica missing a block gets a copy
//! from one that has it; one missing only the reference gets the reference. Copies per pass
//! are bounded; what is left waits for the next pass, which then comes sooner.

mod antientropy;
pub mod blocks;
pub mod digest;
mod foreign;
pub mod holds;
pub mod rebalance;
mod transition;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use cairn_proto::pb;
use tokio::sync::{Semaphore, SemaphorePermit};
use tonic::Status;

use crate::coordinator::index_status;
use crate::state::NodeState;
use crate::store::IndexError;

pub use antientropy::{PassReport, pass, serve_digests, serve_get_records, serve_records};
pub use blocks::missing_refs;

/// After a pass that could not reach every peer or finish its block copies, the next one
/// starts at most this soon.
const RETRY_PAUSE: Duration = Duration::from_secs(10);
/// Pause after start (or a layout change) before the first pass, so peers can settle.
const SETTLE_PAUSE: Duration = Duration::from_secs(1);

/// Timing and bounds of anti-entropy.
#[derive(Debug, Clone, Copy)]
pub struct AntiEntropyConfig {
    /// Pause between passes (a pass also runs at start and after every layout change).
    pub interval: Duration,
    /// Records whose blocks the sweep checks per pass.
    pub sweep_records: usize,
    /// Most block copies per pass; the rest wait for the next pass.
    pub max_block_copies: usize,
    /// This node's limit on the bytes layout transitions move, in MiB/s (0 = unlimited),
    /// while the cluster metadata sets none (`cairn layout rate`).
    pub rebalance_rate_mib: u32,
}

impl Default for AntiEntropyConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
            sweep_records: 2000,
            max_block_copies: 256,
            rebalance_rate_mib: 0,
        }
    }
}

/// Anti-entropy's shared state on a node: what it has done since the node started (for
/// `cairn status`), and a limit of one full index scan at a time for peers' requests.
#[derive(Debug)]
pub struct RepairState {
    /// Random per process start, sent with digests so peers notice a restart.
    incarnation: u64,
    scans: Semaphore,
    last_pass_ms: AtomicI64,
    last_pass_duration_ms: AtomicU64,
    passes: AtomicU64,
    records_pulled: AtomicU64,
    blocks_copied: AtomicU64,
    refs_added: AtomicU64,
    last_error: Mutex<String>,
    /// Pause, rate limit and progress of layout transitions.
    pub rebalance: rebalance::Rebalance,
}

impl Default for RepairState {
    fn default() -> Self {
        Self {
            incarnation: rand::random(),
            scans: Semaphore::new(1),
            last_pass_ms: AtomicI64::default(),
            last_pass_duration_ms: AtomicU64::default(),
            passes: AtomicU64::default(),
            records_pulled: AtomicU64::default(),
            blocks_copied: AtomicU64::default(),
            refs_added: AtomicU64::default(),
            last_error: Mutex::default(),
            rebalance: Default::default(),
        }
    }
}

impl RepairState {
    /// Waits for the right to scan the index for a peer.
    async fn scan_permit(&self) -> Option<SemaphorePermit<'_>> {
        self.scans.acquire().await.ok()
    }

    /// Records a finished pass; returns whether its errors differ from the previous pass's.
    fn record(&self, report: &PassReport, took: Duration) -> bool {
        self.last_pass_ms
            .store(cairn_proto::ids::now_ms(), Ordering::Relaxed);
        self.last_pass_duration_ms
            .store(took.as_millis() as u64, Ordering::Relaxed);
        self.passes.fetch_add(1, Ordering::Relaxed);
        self.records_pulled
            .fetch_add(report.records_pulled, Ordering::Relaxed);
        self.blocks_copied
            .fetch_add(report.blocks_copied, Ordering::Relaxed);
        self.refs_added
            .fetch_add(report.refs_added, Ordering::Relaxed);
        let errors = report.errors.join("; ");
        let mut last = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
        let changed = *last != errors;
        *last = errors;
        changed
    }

    /// The wire form, for `AdminService.Status`.
    pub fn snapshot(&self) -> pb::AntiEntropyStatus {
        pb::AntiEntropyStatus {
            last_pass_ms: self.last_pass_ms.load(Ordering::Relaxed),
            last_pass_duration_ms: self.last_pass_duration_ms.load(Ordering::Relaxed),
            passes: self.passes.load(Ordering::Relaxed),
            records_pulled: self.records_pulled.load(Ordering::Relaxed),
            blocks_copied: self.blocks_copied.load(Ordering::Relaxed),
            refs_added: self.refs_added.load(Ordering::Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

/// Runs blocking index work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, IndexError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(index_status)
}

/// Runs anti-entropy passes forever: soon after start, after every layout change and every
/// `interval` (sooner after a pass that missed a peer), while this node is in the layout.
pub async fn run(state: Arc<NodeState>, config: AntiEntropyConfig) {
    state
        .repair
        .rebalance
        .set_default_rate_mib(config.rebalance_rate_mib);
    let mut ring_changes = state.placement_changes();
    let mut sweep = blocks::Sweep::default();
    // The layout version under which this node last held nothing outside its share.
    let mut foreign_clean_at = None;
    let mut pause = SETTLE_PAUSE;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            changed = ring_changes.changed() => {
                if changed.is_err() {
                    return;
                }
                pause = SETTLE_PAUSE;
                continue;
            }
        }
        pause = config.interval;
        // Changes from here on trigger another pass after this one.
        ring_changes.borrow_and_update();
        let placement = state.placement();
        if placement.node(&state.id).is_none() {
            continue;
        }
        let started = std::time::Instant::now();
        let mut report = pass(&state, &config, &mut sweep).await;
        if report.records_complete
            && transition::owes_sync(&state)
            && let Err(e) = transition::finish_sync(&state, &placement).await
        {
            report.errors.push(format!("layout handoff: {e}"));
        }
        if !placement.in_transition() && foreign_clean_at != Some(placement.version()) {
            match foreign::drop_foreign(&state, &placement).await {
                Ok(dropped) if dropped.kept == 0 => foreign_clean_at = Some(placement.version()),
                Ok(_) => pause = pause.min(RETRY_PAUSE),
                Err(e) => report
                    .errors
                    .push(format!("dropping foreign copies: {}", e.message())),
            }
        }
        let took = started.elapsed();
        let new_errors = state.repair.record(&report, took);
        if report.changed() {
            tracing::info!(
                took = ?took,
                records_pulled = report.records_pulled,
                blocks_copied = report.blocks_copied,
                refs_added = report.refs_added,
                "anti-entropy repaired replicas"
            );
        } else {
            tracing::debug!(took = ?took, "anti-entropy pass found nothing to repair");
        }
        if !report.errors.is_empty() {
            // The same failures every few seconds (a peer stays down) are logged once.
            if new_errors {
                tracing::warn!(errors = %report.errors.join("; "), "anti-entropy pass incomplete");
            }
            pause = pause.min(RETRY_PAUSE);
        }
        if report.more_work {
            pause = pause.min(RETRY_PAUSE);
        }
    }
}

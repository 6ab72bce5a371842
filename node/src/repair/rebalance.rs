//! Operator controls and progress of layout transitions on one node. The cluster metadata
//! says whether data movement is paused and may set a rate limit (`cairn layout pause |
//! resume | rate`; without one, this node's `--rebalance-rate-mib` applies). Both are checked
//! between the records and blocks a transition moves — never on client reads or writes —
//! and only while a transition is active (anti-entropy outside transitions is repair, not
//! rebalancing). The counters of what moved feed `cairn layout watch` and `/metrics`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use cairn_proto::Metadata;
use cairn_proto::pb;

use crate::state::NodeState;

/// Bytes in a MiB.
pub const MIB: u64 = 1 << 20;
/// How often a paused mover looks at the metadata again.
const PAUSE_POLL: Duration = Duration::from_millis(250);

/// Rebalance controls and counters of one node.
#[derive(Debug, Default)]
pub struct Rebalance {
    /// This node's limit in MiB/s when the metadata sets none (0 = unlimited).
    default_rate_mib: AtomicU32,
    bucket: tokio::sync::Mutex<TokenBucket>,
    progress: Mutex<Progress>,
}

/// What moved for the transition to `version`.
#[derive(Debug, Default, Clone, PartialEq)]
struct Progress {
    version: u64,
    objects_moved: u64,
    blocks_moved: u64,
    bytes_moved: u64,
    totals_known: bool,
    objects_checked: u64,
    objects_total: u64,
    bytes_checked: u64,
    bytes_total: u64,
}

/// Whether the metadata has a transition moving data.
fn in_transition(meta: &Metadata) -> bool {
    !meta.layout_history.is_empty()
}

impl Rebalance {
    /// Sets this node's own limit (used while the metadata sets none).
    pub fn set_default_rate_mib(&self, mib: u32) {
        self.default_rate_mib.store(mib, Ordering::Relaxed);
    }

    /// The limit in bytes per second in effect under `meta` (0 = unlimited).
    pub fn rate_limit(&self, meta: &Metadata) -> u64 {
        let mib = meta
            .rebalance
            .rate_mib
            .unwrap_or_else(|| self.default_rate_mib.load(Ordering::Relaxed));
        u64::from(mib) * MIB
    }

    /// Returns once transition data may move: at once unless the metadata says pause while
    /// a transition is active.
    pub async fn wait_unpaused(&self, state: &NodeState) {
        let mut logged = false;
        loop {
            let meta = state.raft.current().1;
            if !(meta.rebalance.paused && in_transition(&meta)) {
                if logged {
                    tracing::info!("rebalancing resumed");
                }
                return;
            }
            if !logged {
                tracing::info!("rebalancing paused (`cairn layout resume` continues)");
                logged = true;
            }
            tokio::time::sleep(PAUSE_POLL).await;
        }
    }

    /// Waits until `bytes` more transition bytes may move under the rate limit (and no
    /// pause); returns at once outside transitions or without a limit.
    pub async fn throttle(&self, state: &NodeState, bytes: u64) {
        self.wait_unpaused(state).await;
        let meta = state.raft.current().1;
        let rate = self.rate_limit(&meta);
        if rate == 0 || !in_transition(&meta) {
            return;
        }
        // Movers queue on the lock, so together they stay under the limit.
        let mut bucket = self.bucket.lock().await;
        let wait = bucket.reserve(bytes, rate, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    fn update(&self, version: u64, f: impl FnOnce(&mut Progress)) {
        let mut p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        if version > p.version {
            *p = Progress {
                version,
                ..Default::default()
            };
        }
        if version == p.version {
            f(&mut p);
        }
    }

    /// Counts records pulled and blocks copied for the transition to layout `version`.
    pub fn moved(&self, version: u64, objects: u64, blocks: u64, bytes: u64) {
        self.update(version, |p| {
            p.objects_moved += objects;
            p.blocks_moved += blocks;
            p.bytes_moved += bytes;
        });
    }

    /// The handoff to `version` (re)starts with this much to check.
    pub fn handoff_started(&self, version: u64, objects: u64, bytes: u64) {
        self.update(version, |p| {
            p.totals_known = true;
            (p.objects_total, p.bytes_total) = (objects, bytes);
            (p.objects_checked, p.bytes_checked) = (0, 0);
        });
    }

    /// The handoff to `version` checked (and copied where missing) these records' blocks.
    pub fn checked(&self, version: u64, objects: u64, bytes: u64) {
        self.update(version, |p| {
            p.objects_checked += objects;
            p.bytes_checked += bytes;
        });
    }

    /// The wire form, for `AdminService.Status`.
    pub fn snapshot(&self, meta: &Metadata) -> pb::RebalanceStatus {
        let p = self
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        pb::RebalanceStatus {
            layout_version: p.version,
            paused: meta.rebalance.paused,
            rate_limit_bytes: self.rate_limit(meta),
            objects_moved: p.objects_moved,
            blocks_moved: p.blocks_moved,
            bytes_moved: p.bytes_moved,
            totals_known: p.totals_known,
            objects_checked: p.objects_checked,
            objects_total: p.objects_total,
            bytes_checked: p.bytes_checked,
            bytes_total: p.bytes_total,
        }
    }
}

/// A token bucket holding at most one second's worth of bytes. Reservations may overdraw
/// it; the reserver then waits until the debt is paid off, so over any period no more than
/// `rate` × seconds + one second's worth pass.
#[derive(Debug, Default)]
struct TokenBucket {
    tokens: f64,
    rate: u64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// Takes `bytes` at `rate` bytes/s; returns how long to wait before they go.
    fn reserve(&mut self, bytes: u64, rate: u64, now: Instant) -> Duration {
        let capacity = rate as f64;
        match self.last {
            Some(last) if self.rate == rate => {
                let refill = now.saturating_duration_since(last).as_secs_f64() * capacity;
                self.tokens = (self.tokens + refill).min(capacity);
            }
            // First use, or a new limit: start with a full second's worth.
            _ => self.tokens = capacity,
        }
        (self.rate, self.last) = (rate, Some(now));
        self.tokens -= bytes as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / capacity)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_lets_a_burst_through_then_paces_at_the_rate() {
        let mut b = TokenBucket::default();
        let t0 = Instant::now();
        let rate = 2 * MIB;
        assert_eq!(
            b.reserve(2 * MIB, rate, t0),
            Duration::ZERO,
            "a full bucket"
        );
        let wait = b.reserve(MIB, rate, t0);
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        // After the wait the debt is paid; the next MiB waits another half second.
        let t1 = t0 + wait;
        let wait = b.reserve(MIB, rate, t1);
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        // Idle time refills at most one second's worth.
        let later = t1 + Duration::from_secs(60);
        assert_eq!(b.reserve(MIB, rate, later), Duration::ZERO);
        let wait = b.reserve(2 * MIB, rate, later);
        assert!(wait > Duration::ZERO, "{wait:?}");
    }

    #[test]
    fn progress_starts_over_with_each_layout_version() {
        let r = Rebalance::default();
        let meta = Metadata::default();
        r.moved(3, 2, 1, 100);
        r.moved(2, 5, 5, 5); // an older transition's late count
        r.handoff_started(3, 10, 1000);
        r.checked(3, 4, 400);
        let s = r.snapshot(&meta);
        assert_eq!(
            (s.layout_version, s.objects_moved, s.bytes_moved),
            (3, 2, 100)
        );
        assert_eq!((s.objects_checked, s.objects_total), (4, 10));
        assert!(s.totals_known);
        r.moved(4, 1, 0, 7);
        let s = r.snapshot(&meta);
        assert_eq!(
            (s.layout_version, s.objects_moved, s.bytes_moved),
            (4, 1, 7)
        );
        assert!(!s.totals_known);
    }

    #[test]
    fn the_metadata_limit_overrides_the_node_default() {
        let r = Rebalance::default();
        let mut meta = Metadata::default();
        assert_eq!(r.rate_limit(&meta), 0);
        r.set_default_rate_mib(5);
        assert_eq!(r.rate_limit(&meta), 5 * MIB);
        meta.rebalance.rate_mib = Some(0);
        assert_eq!(r.rate_limit(&meta), 0, "0 = unlimited, cluster-wide");
        meta.rebalance.rate_mib = Some(2);
        assert_eq!(r.rate_limit(&meta), 2 * MIB);
    }
}

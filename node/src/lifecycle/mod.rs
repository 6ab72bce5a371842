//! The lifecycle worker: applies the buckets' lifecycle rules cluster-wide.
//!
//! Every node runs it and acts only for the keys it coordinates: the first replica of the
//! key's replica set that answered this pass's probe. So each key is handled once while the
//! nodes agree on who is up, and by the next replica while its coordinator is down. A pass
//! that is interrupted or repeated changes nothing twice (expiry is a conditional write,
//! aborting an aborted upload is refused). Per pass it walks the local versions of each
//! bucket that has rules, asks [`decide`] what the rules call for, and carries it out; then
//! it aborts the incomplete multipart uploads (from the replicated metadata) the rules call
//! for, releasing their blocks.

mod decide;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use cairn_proto::ids::now_ms;
use cairn_proto::meta::{Bucket, LifecycleRule, MetaCommand, MetaError, MetaResult, Metadata};
use cairn_proto::pb;
use cairn_proto::ring::object_hash;
use uuid::Uuid;

use decide::aged;
pub use decide::{Action, decide};

use crate::coordinator::{coordinate, drop_refs, expire_current};
use crate::state::NodeState;
use cairn_proto::versions::purge_of;

/// Most actions one bucket gets per pass (the rest wait for the next pass).
const MAX_ACTIONS_PER_BUCKET: usize = 10_000;

/// Timing of the worker. Tests shorten the day so that expiry is seen in seconds.
#[derive(Debug, Clone, Copy)]
pub struct LifecycleTiming {
    /// The length of one lifecycle "day" (rules count in these).
    pub day: Duration,
    /// Pause between passes.
    pub interval: Duration,
}

impl Default for LifecycleTiming {
    fn default() -> Self {
        Self {
            day: Duration::from_secs(86_400),
            interval: Duration::from_secs(3600),
        }
    }
}

/// What the worker has done since the node started (for `cairn status` and metrics).
#[derive(Debug, Default)]
pub struct LifecycleState {
    last_pass_ms: AtomicI64,
    passes: AtomicU64,
    objects_expired: AtomicU64,
    versions_removed: AtomicU64,
    uploads_aborted: AtomicU64,
    last_error: Mutex<String>,
}

impl LifecycleState {
    /// The counters, as `cairn status` reports them.
    pub fn snapshot(&self) -> pb::LifecycleStatus {
        pb::LifecycleStatus {
            last_pass_ms: self.last_pass_ms.load(Ordering::Relaxed),
            passes: self.passes.load(Ordering::Relaxed),
            objects_expired: self.objects_expired.load(Ordering::Relaxed),
            versions_removed: self.versions_removed.load(Ordering::Relaxed),
            uploads_aborted: self.uploads_aborted.load(Ordering::Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    fn finish_pass(&self, error: String) {
        self.last_pass_ms.store(now_ms(), Ordering::Relaxed);
        self.passes.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = error;
    }
}

/// Runs passes forever.
pub async fn run(state: Arc<NodeState>, timing: LifecycleTiming) {
    loop {
        tokio::time::sleep(timing.interval).await;
        let error = match pass(&state, &timing).await {
            Ok(()) => String::new(),
            Err(e) => {
                tracing::warn!(error = %e, "lifecycle pass failed");
                e.to_string()
            }
        };
        state.lifecycle.finish_pass(error);
    }
}

/// How long a peer may take to answer the liveness probe of a pass.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The nodes of the placement that did not answer a probe at the start of a pass.
async fn unreachable_nodes(state: &Arc<NodeState>) -> HashSet<Uuid> {
    let placement = state.placement();
    let probes = placement
        .nodes()
        .into_iter()
        .filter(|n| !state.is_self(n))
        .map(|node| {
            let (id, client) = (node.id, state.peers.objects_on(node));
            async move {
                let probe = async {
                    client?
                        .get(pb::GetRecordRequest {
                            bucket_id: Uuid::nil().as_bytes().to_vec(),
                            key: String::new(),
                            layout_version: 0,
                            ..Default::default()
                        })
                        .await
                };
                let up = matches!(tokio::time::timeout(PROBE_TIMEOUT, probe).await, Ok(Ok(_)));
                (!up).then_some(id)
            }
        });
    futures::future::join_all(probes)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Whether this node acts for `key` of `bucket`: it is the first replica (the coordinator)
/// of the key under the current placement that is not in `down`.
fn coordinates(state: &NodeState, down: &HashSet<Uuid>, bucket: &Uuid, key: &str) -> bool {
    state
        .placement()
        .write_targets(object_hash(bucket, key))
        .into_iter()
        .find(|n| !down.contains(&n.id))
        .is_some_and(|n| n.id == state.id)
}

/// One pass over every bucket with enabled rules.
pub async fn pass(state: &Arc<NodeState>, timing: &LifecycleTiming) -> anyhow::Result<()> {
    let (_, meta) = state.raft.current();
    let day_ms = timing.day.as_millis().max(1) as i64;
    let down = Arc::new(unreachable_nodes(state).await);
    let mut first_error = None;
    for bucket in meta.buckets.values() {
        let Some(config) = &bucket.lifecycle else {
            continue;
        };
        let rules: Vec<LifecycleRule> = config.enabled_rules().cloned().collect();
        if rules.is_empty() {
            continue;
        }
        if let Err(e) = expire_objects(state, &down, bucket, rules, day_ms).await {
            tracing::warn!(bucket = %bucket.name, error = %e, "lifecycle: object expiry failed");
            first_error.get_or_insert(e);
        }
    }
    if let Err(e) = abort_uploads(state, &down, &meta, day_ms).await {
        first_error.get_or_insert(e);
    }
    first_error.map_or(Ok(()), Err)
}

/// Decides over the local versions of the bucket's keys this node coordinates, then acts.
async fn expire_objects(
    state: &Arc<NodeState>,
    down: &Arc<HashSet<Uuid>>,
    bucket: &Bucket,
    rules: Vec<LifecycleRule>,
    day_ms: i64,
) -> anyhow::Result<()> {
    let now = now_ms();
    let (scan_state, down, id) = (state.clone(), down.clone(), bucket.id);
    let actions = tokio::task::spawn_blocking(move || {
        let mut actions = Vec::new();
        let mut group: Vec<pb::ObjectRecord> = Vec::new();
        let flush = |group: &mut Vec<pb::ObjectRecord>, actions: &mut Vec<Action>| {
            if let Some(first) = group.first()
                && coordinates(&scan_state, &down, &id, &first.key)
            {
                actions.extend(decide(&rules, group, now, day_ms));
            }
            group.clear();
        };
        scan_state.index.scan(Some(id.as_bytes()), |_, record| {
            if record.bucket_id != id.as_bytes() {
                return false;
            }
            if group.first().is_some_and(|g| g.key != record.key) {
                flush(&mut group, &mut actions);
            }
            group.push(record);
            actions.len() < MAX_ACTIONS_PER_BUCKET
        })?;
        flush(&mut group, &mut actions);
        Ok::<_, anyhow::Error>(actions)
    })
    .await??;

    for action in actions {
        match action {
            Action::ExpireCurrent(record) => {
                if expire_current(state, bucket, &record).await? {
                    state
                        .lifecycle
                        .objects_expired
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(bucket = %bucket.name, key = %record.key, "lifecycle: expired");
                }
            }
            Action::RemoveVersion(record) => {
                coordinate(state, purge_of(&record)).await?;
                state
                    .lifecycle
                    .versions_removed
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(bucket = %bucket.name, key = %record.key, "lifecycle: version removed");
            }
        }
    }
    Ok(())
}

/// Aborts the incomplete uploads whose rule says so, for the keys this node coordinates, and
/// releases their parts' blocks.
async fn abort_uploads(
    state: &Arc<NodeState>,
    down: &HashSet<Uuid>,
    meta: &Metadata,
    day_ms: i64,
) -> anyhow::Result<()> {
    let now = now_ms();
    for upload in meta.uploads.values().filter(|u| !u.completed) {
        let Some(config) = meta
            .bucket_by_id(&upload.bucket_id)
            .and_then(|b| b.lifecycle.as_ref())
        else {
            continue;
        };
        let due = config.enabled_rules().any(|rule| {
            rule.abort_incomplete_upload_days.is_some_and(|days| {
                rule.filter.matches_upload(&upload.key)
                    && aged(upload.initiated_ms, days, now, day_ms)
            })
        });
        if !due || !coordinates(state, down, &upload.bucket_id, &upload.key) {
            continue;
        }
        let cmd = MetaCommand::AbortUpload {
            upload_id: upload.id.clone(),
        };
        match state.raft.write(cmd).await? {
            MetaResult::Upload(aborted) => {
                drop_refs(state, &aborted.block_refs()).await;
                state
                    .lifecycle
                    .uploads_aborted
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(upload = %aborted.id, key = %aborted.key, "lifecycle: aborted upload");
            }
            // Completed or aborted meanwhile.
            MetaResult::Err(MetaError::NoSuchUpload(_)) => {}
            MetaResult::Err(e) => return Err(e.into()),
            _ => {}
        }
    }
    Ok(())
}

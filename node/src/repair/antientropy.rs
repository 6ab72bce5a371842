//! One anti-entropy pass, and the RPCs that answer other nodes' passes.
//!
//! For each peer sharing partitions with this node: compare the partition digests, page
//! through the peer's summaries of the partitions that differ, fetch the records that are
//! missing or older here and store them. Then repair the blocks of what was pulled and of the
//! block sweep's next batch.

use std::collections::BTreeMap;
use std::sync::Arc;

use cairn_proto::ids::{record_blocks, record_freshness};
use cairn_proto::meta::LayoutNode;
use cairn_proto::pb::{
    self, GetRecordRequest, GetRecordsRequest, GetRecordsResponse, PartitionDigestsRequest,
    PartitionDigestsResponse, PartitionRecordsRequest, PartitionRecordsResponse, RecordState,
};
use cairn_proto::ring::Partition;
use cairn_proto::{Placement, is_storage_full};
use prost::Message;
use tonic::Status;
use uuid::Uuid;

use super::blocks::{Sweep, ensure_blocks};
use super::digest::{self, from_ranges, to_ranges};
use super::{AntiEntropyConfig, blocking};
use crate::coordinator::store_local;
use crate::rpc::read_record;
use crate::state::NodeState;
use crate::store::index::{bucket_of, is_purged, is_visible, version_of};
use cairn_proto::versions::supersedes;

/// Summaries per page asked from a peer.
const SUMMARY_PAGE: u32 = 1000;
/// Largest page a node answers.
const MAX_SUMMARY_PAGE: u32 = 10_000;
/// Records fetched per `GetRecords` call.
const FETCH_BATCH: usize = 256;
/// Records whose blocks are checked together.
const BLOCK_CHECK_BATCH: usize = 1000;

/// What one pass did.
#[derive(Debug, Default)]
pub struct PassReport {
    pub records_pulled: u64,
    pub blocks_copied: u64,
    pub refs_added: u64,
    /// What the pass could not do (unreachable peers, failed copies); empty when complete.
    pub errors: Vec<String>,
    /// The block copy budget ran out: the rest waits for the next pass.
    pub more_work: bool,
    /// Every record the current layout gives this node is here (see [`holds_all_records`]).
    pub records_complete: bool,
}

impl PassReport {
    /// Whether the pass repaired anything on any replica.
    pub fn changed(&self) -> bool {
        self.records_pulled + self.blocks_copied + self.refs_added > 0
    }
}

/// Runs one pass over the active layouts' partitions.
pub async fn pass(
    state: &Arc<NodeState>,
    config: &AntiEntropyConfig,
    sweep: &mut Sweep,
) -> PassReport {
    let placement = state.placement();
    let mut report = PassReport::default();
    let Shares { mine, peers } = Shares::of(state, &placement);
    let local = if peers.is_empty() {
        Vec::new()
    } else {
        let (index, parts) = (state.index.clone(), mine.clone());
        match blocking(move || digest::digests(&index, &parts)).await {
            Ok(d) => d,
            Err(e) => {
                report
                    .errors
                    .push(format!("local digests: {}", e.message()));
                return report;
            }
        }
    };

    let mut pulled = Vec::new();
    let mut answered = vec![state.id];
    for (peer, indexes) in peers.values() {
        let parts: Vec<Partition> = indexes.iter().map(|i| mine[*i]).collect();
        let ours: Vec<pb::PartitionDigest> = indexes.iter().map(|i| local[*i]).collect();
        match pull_from(state, &placement, peer, &parts, &ours, &mut pulled).await {
            Ok((n, incarnation)) => {
                report.records_pulled += n;
                answered.push(peer.id);
                sweep.note_peer(peer.id, Some(incarnation));
            }
            Err(e) => {
                report
                    .errors
                    .push(format!("peer {} ({}): {}", peer.id, peer.addr, e.message()));
                sweep.note_peer(peer.id, None);
            }
        }
    }
    report.records_complete = holds_all_records(state, &placement, &mine, &answered);

    // Blocks: of what was pulled, of what earlier passes left over, of the sweep's next batch.
    let mut records = sweep.take_carried();
    records.append(&mut pulled);
    match sweep
        .next_batch(state, &placement, config.sweep_records)
        .await
    {
        Ok(batch) => records.extend(batch),
        Err(e) => report.errors.push(format!("block sweep: {}", e.message())),
    }
    let mut copies_left = config.max_block_copies;
    for chunk in records.chunks(BLOCK_CHECK_BATCH) {
        if copies_left == 0 {
            sweep.carry(chunk);
            continue;
        }
        let done = ensure_blocks(state, &placement, chunk, copies_left).await;
        copies_left = copies_left.saturating_sub(done.blocks_copied as usize);
        report.blocks_copied += done.blocks_copied;
        report.refs_added += done.refs_added;
        report.errors.extend(done.errors);
        if done.out_of_budget {
            sweep.carry(chunk);
        }
    }
    report.more_work = sweep.has_carried();
    report
}

/// Whether this node now holds every record the current layout gives it: for each of its
/// partitions in the current ring, a read quorum of every older ring's replicas (this node
/// included) was compared with, so it saw every write acknowledged under those layouts.
fn holds_all_records(
    state: &NodeState,
    placement: &Placement,
    mine: &[Partition],
    answered: &[Uuid],
) -> bool {
    mine.iter().all(|part| {
        let sets = placement.replica_sets(part.end);
        let Some((current, older)) = sets.split_last() else {
            return true;
        };
        !current.iter().any(|n| state.is_self(n))
            || older.iter().all(|set| {
                let seen = set.iter().filter(|n| answered.contains(&n.id)).count();
                seen > set.len() / 2
            })
    })
}

/// The partitions this node replicates in some active layout, and which of them each other
/// replica (in any active layout) shares.
struct Shares {
    mine: Vec<Partition>,
    /// Per peer: the node and the indexes into `mine` of the partitions it replicates too.
    peers: BTreeMap<Uuid, (LayoutNode, Vec<usize>)>,
}

impl Shares {
    fn of(state: &NodeState, placement: &Placement) -> Self {
        let mut shares = Shares {
            mine: Vec::new(),
            peers: BTreeMap::new(),
        };
        for part in placement.partitions() {
            let replicas = placement.write_targets(part.end);
            if !replicas.iter().any(|n| state.is_self(n)) {
                continue;
            }
            for node in replicas.into_iter().filter(|n| !state.is_self(n)) {
                shares
                    .peers
                    .entry(node.id)
                    .or_insert_with(|| (node.clone(), Vec::new()))
                    .1
                    .push(shares.mine.len());
            }
            shares.mine.push(part);
        }
        shares
    }
}

/// Pulls from `peer` what differs in `parts` (whose local digests are `ours`); returns the
/// number of records stored and the peer's incarnation, and adds the complete records with
/// blocks to `pulled`.
async fn pull_from(
    state: &Arc<NodeState>,
    placement: &Placement,
    peer: &LayoutNode,
    parts: &[Partition],
    ours: &[pb::PartitionDigest],
    pulled: &mut Vec<pb::ObjectRecord>,
) -> Result<(u64, u64), Status> {
    let mut client = state.peers.objects_on(peer)?;
    let layout_version = placement.version();
    let answer = client
        .partition_digests(PartitionDigestsRequest {
            partitions: to_ranges(parts),
            layout_version,
        })
        .await?
        .into_inner();
    let (theirs, incarnation) = (answer.digests, answer.incarnation);
    if theirs.len() != parts.len() {
        return Err(Status::internal(
            "peer answered a different number of digests",
        ));
    }
    let differing: Vec<Partition> = parts
        .iter()
        .zip(ours.iter().zip(&theirs))
        .filter(|(_, (a, b))| a != b)
        .map(|(p, _)| *p)
        .collect();
    if differing.is_empty() {
        return Ok((0, incarnation));
    }
    tracing::debug!(peer = %peer.id, partitions = differing.len(), "partitions differ");
    let partitions = to_ranges(&differing);
    let (mut after, mut stored) = (Vec::new(), 0);
    loop {
        let page = client
            .partition_records(PartitionRecordsRequest {
                partitions: partitions.clone(),
                after,
                limit: SUMMARY_PAGE,
                layout_version,
            })
            .await?
            .into_inner();
        let wanted = newer_than_local(state, page.summaries).await?;
        for keys in wanted.chunks(FETCH_BATCH) {
            let rebalance = &state.repair.rebalance;
            rebalance.wait_unpaused(state).await;
            let records = client
                .get_records(GetRecordsRequest {
                    keys: keys.to_vec(),
                    layout_version,
                })
                .await?
                .into_inner()
                .records;
            let bytes: u64 = records.iter().map(|r| r.encoded_len() as u64).sum();
            rebalance.throttle(state, bytes).await;
            let n = store_pulled(state, records, pulled).await?;
            if placement.in_transition() {
                rebalance.moved(layout_version, n, 0, bytes);
            }
            stored += n;
        }
        if page.next.is_empty() {
            return Ok((stored, incarnation));
        }
        after = page.next;
    }
}

/// The record versions of the summaries this node lacks: neither that version (visible with
/// tags at least as fresh, or purged) nor a visible version superseding it.
async fn newer_than_local(
    state: &NodeState,
    summaries: Vec<pb::ObjectRecord>,
) -> Result<Vec<GetRecordRequest>, Status> {
    let index = state.index.clone();
    blocking(move || {
        let mut wanted = Vec::new();
        for summary in summaries {
            let held = index.versions(&bucket_of(&summary), &summary.key)?;
            let covered = held.iter().any(|l| {
                let same = version_of(l) == version_of(&summary);
                (same && is_purged(l))
                    || (same
                        && is_visible(l)
                        && is_visible(&summary)
                        && record_freshness(l) >= record_freshness(&summary))
                    || (is_visible(l) && is_visible(&summary) && supersedes(l, &summary))
            });
            if !covered {
                wanted.push(GetRecordRequest {
                    bucket_id: summary.bucket_id,
                    key: summary.key,
                    version: summary.version,
                    ..Default::default()
                });
            }
        }
        Ok(wanted)
    })
    .await
}

/// Stores pulled records (concurrently, so they share index commits); returns how many were
/// kept and adds the complete ones with blocks to `pulled`. Records refused because this
/// node is below its free-space reserve are skipped (a later pass pulls them again), so the
/// deletes of the same batches still arrive.
async fn store_pulled(
    state: &Arc<NodeState>,
    records: Vec<pb::ObjectRecord>,
    pulled: &mut Vec<pb::ObjectRecord>,
) -> Result<u64, Status> {
    let stores = records.iter().map(|r| store_local(state, r.clone()));
    let outcomes = futures::future::join_all(stores).await;
    let mut stored = 0;
    for (record, outcome) in records.into_iter().zip(outcomes) {
        match outcome {
            Ok(outcome) if outcome.stored => {}
            Ok(_) => continue,
            Err(e) if is_storage_full(&e) => continue,
            Err(e) => return Err(e),
        }
        stored += 1;
        if record.state() == RecordState::Complete && !record_blocks(&record).is_empty() {
            pulled.push(record);
        }
    }
    Ok(stored)
}

/// `PartitionDigests`: digests of this node's records in the asked partitions.
pub async fn serve_digests(
    state: &NodeState,
    req: PartitionDigestsRequest,
) -> Result<PartitionDigestsResponse, Status> {
    state.check_layout(req.layout_version)?;
    let parts = from_ranges(&req.partitions)?;
    let index = state.index.clone();
    let _scan = state.repair.scan_permit().await;
    let digests = blocking(move || digest::digests(&index, &parts)).await?;
    Ok(PartitionDigestsResponse {
        digests,
        incarnation: state.repair.incarnation,
    })
}

/// `PartitionRecords`: one page of summaries in the asked partitions.
pub async fn serve_records(
    state: &NodeState,
    req: PartitionRecordsRequest,
) -> Result<PartitionRecordsResponse, Status> {
    state.check_layout(req.layout_version)?;
    let parts = from_ranges(&req.partitions)?;
    let limit = req.limit.clamp(1, MAX_SUMMARY_PAGE) as usize;
    let index = state.index.clone();
    let _scan = state.repair.scan_permit().await;
    let (summaries, next) =
        blocking(move || digest::summaries(&index, &parts, &req.after, limit)).await?;
    Ok(PartitionRecordsResponse { summaries, next })
}

/// `GetRecords`: for each asked key, the version asked for or the newest visible record
/// (a purged version comes back as its purge marker).
pub async fn serve_get_records(
    state: &NodeState,
    req: GetRecordsRequest,
) -> Result<GetRecordsResponse, Status> {
    state.check_layout(req.layout_version)?;
    let index = state.index.clone();
    let records = tokio::task::spawn_blocking(move || {
        let mut out = Vec::with_capacity(req.keys.len());
        for key in &req.keys {
            let answer = read_record(&index, key)?;
            match (answer.record, key.version.is_some()) {
                (Some(record), _) => out.push(record),
                (None, true) if !answer.purged.is_empty() => out.push(pb::ObjectRecord {
                    bucket_id: key.bucket_id.clone(),
                    key: key.key.clone(),
                    version: key.version.clone(),
                    state: RecordState::Purged as i32,
                    ..Default::default()
                }),
                _ => {}
            }
        }
        Ok::<_, Status>(out)
    })
    .await
    .map_err(|e| Status::internal(e.to_string()))??;
    Ok(GetRecordsResponse { records })
}

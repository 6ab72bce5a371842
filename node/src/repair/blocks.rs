//! Block repair driven by records: for a complete record, every replica of each of its blocks
//! must hold the block file and a reference for that object version. References are only ever
//! added here for records this node holds as their newest visible version, and re-checked
//! afterwards, so a reference dropped by a concurrent overwrite or delete is not left behind.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use cairn_proto::block_node::{BlockNode, GrpcBlockNode};
use cairn_proto::client::refs_by_replica;
use cairn_proto::ids::{record_blocks, record_owner};
use cairn_proto::meta::LayoutNode;
use cairn_proto::pb::{self, GetBlockRequest, PutBlockHeader, RecordState, RefsRequest};
use cairn_proto::ring::object_hash;
use cairn_proto::{BlockId, Placement, is_storage_full};
use prost::Message;
use tonic::Status;
use uuid::Uuid;

use super::blocking;
use crate::coordinator::{index_status, release_blocks};
use crate::state::NodeState;
use crate::store::Op;
use crate::store::index::{bucket_of, is_visible, version_of};
use cairn_proto::versions::VersionSelector;

/// Which of `refs` this node lacks: blocks it has no file for, and references on blocks it
/// holds. Read-only.
pub async fn missing_refs(
    state: &Arc<NodeState>,
    refs: Vec<pb::BlockRefEntry>,
) -> Result<pb::MissingRefsResponse, Status> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let mut out = pb::MissingRefsResponse::default();
        let mut absent: HashSet<BlockId> = HashSet::new();
        for entry in refs {
            let id = BlockId::from_slice(&entry.block_id)
                .ok_or_else(|| Status::invalid_argument("block id must be 16 bytes"))?;
            let owner = entry
                .owner
                .as_ref()
                .ok_or_else(|| Status::invalid_argument("owner missing"))?
                .encode_to_vec();
            if absent.contains(&id) {
                continue;
            }
            if !state.blocks.contains(&id) {
                absent.insert(id);
                out.missing_blocks.push(entry.block_id);
            } else if !state.index.has_ref(&id, &owner).map_err(index_status)? {
                out.missing_refs.push(entry);
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| Status::internal(e.to_string()))?
}

/// What [`ensure_blocks`] did.
#[derive(Debug, Default)]
pub struct BlockRepair {
    pub blocks_copied: u64,
    pub refs_added: u64,
    /// Block replicas that could not be checked or repaired.
    pub errors: Vec<String>,
    /// Copies were left undone because the budget ran out.
    pub out_of_budget: bool,
}

/// What one block replica lacks of the references it was asked about.
struct Lacking {
    node: LayoutNode,
    /// Entries whose block the node holds without the reference.
    refs: Vec<pb::BlockRefEntry>,
    /// Entries whose block file the node does not have, by block.
    blocks: HashMap<Vec<u8>, Vec<pb::BlockRefEntry>>,
}

/// Makes every replica of every block of the complete `records` hold the block and a
/// reference for its record: references are added where the block is present, blocks copied
/// (from a replica that has one) where it is not, at most `max_copies` of them.
pub async fn ensure_blocks(
    state: &Arc<NodeState>,
    placement: &Placement,
    records: &[pb::ObjectRecord],
    max_copies: usize,
) -> BlockRepair {
    let report = ensure_refs(state, placement, block_refs(records), max_copies).await;
    if report.refs_added > 0 {
        release_superseded(state, records).await;
    }
    report
}

/// Makes every replica of each entry's block hold the block and the entry's reference
/// (blocks copied from a replica that has one, at most `max_copies` of them).
pub async fn ensure_refs(
    state: &Arc<NodeState>,
    placement: &Placement,
    entries: Vec<pb::BlockRefEntry>,
    max_copies: usize,
) -> BlockRepair {
    let mut report = BlockRepair::default();
    if entries.is_empty() {
        return report;
    }
    // Ask every block replica what it lacks; remember who holds which block.
    let mut holders: HashMap<Vec<u8>, Vec<LayoutNode>> = HashMap::new();
    let mut lacking: Vec<Lacking> = Vec::new();
    for (node, batch) in refs_by_replica(placement, &entries) {
        let answer = if state.is_self(&node) {
            missing_refs(state, batch.clone()).await
        } else {
            ask_missing(state, &node, batch.clone(), placement.version()).await
        };
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                report
                    .errors
                    .push(format!("checking blocks on {}: {}", node.id, e.message()));
                continue;
            }
        };
        let absent: HashSet<&Vec<u8>> = answer.missing_blocks.iter().collect();
        let mut lack = Lacking {
            node: node.clone(),
            refs: answer.missing_refs,
            blocks: HashMap::new(),
        };
        for entry in batch {
            if absent.contains(&entry.block_id) {
                lack.blocks
                    .entry(entry.block_id.clone())
                    .or_default()
                    .push(entry);
            } else {
                holders
                    .entry(entry.block_id)
                    .or_default()
                    .push(node.clone());
            }
        }
        if !lack.refs.is_empty() || !lack.blocks.is_empty() {
            lacking.push(lack);
        }
    }

    let mut copies_left = max_copies;
    for lack in lacking {
        if !lack.refs.is_empty() {
            match add_refs(state, &lack.node, lack.refs.clone(), placement.version()).await {
                Ok(()) => report.refs_added += lack.refs.len() as u64,
                Err(e) => {
                    report
                        .errors
                        .push(format!("adding refs on {}: {}", lack.node.id, e.message()))
                }
            }
        }
        for (block, owners) in lack.blocks {
            if copies_left == 0 {
                report.out_of_budget = true;
                break;
            }
            let Some(sources) = holders.get(&block) else {
                tracing::warn!(block = %hex::encode(&block), "no replica holds this block");
                continue;
            };
            let version = placement.version();
            match copy_block(state, sources, &lack.node, &block, &owners, version).await {
                Ok(size) => {
                    if placement.in_transition() {
                        state.repair.rebalance.moved(version, 0, 1, size);
                    }
                    copies_left -= 1;
                    report.blocks_copied += 1;
                    report.refs_added += owners.len() as u64;
                    holders.entry(block).or_default().push(lack.node.clone());
                }
                Err(e) => {
                    report.errors.push(format!(
                        "copying block {} to {}: {}",
                        hex::encode(&block),
                        lack.node.id,
                        e.message()
                    ));
                    // A node below its free-space reserve refuses the rest too.
                    if is_storage_full(&e) {
                        break;
                    }
                }
            }
        }
    }
    report
}

/// The references complete records hold on their blocks, without duplicates.
fn block_refs(records: &[pb::ObjectRecord]) -> Vec<pb::BlockRefEntry> {
    let mut seen = HashSet::new();
    records
        .iter()
        .filter(|r| r.state() == RecordState::Complete)
        .filter_map(|r| Some((record_owner(r)?, record_blocks(r))))
        .flat_map(|(owner, blocks)| {
            blocks.iter().map(move |b| pb::BlockRefEntry {
                block_id: b.id.clone(),
                owner: Some(owner.clone()),
            })
        })
        .filter(|e| seen.insert(e.encode_to_vec()))
        .collect()
}

/// Asks `node` which of `refs` it lacks (whole blocks, or only the references).
pub(super) async fn ask_missing(
    state: &NodeState,
    node: &LayoutNode,
    refs: Vec<pb::BlockRefEntry>,
    layout_version: u64,
) -> Result<pb::MissingRefsResponse, Status> {
    let req = RefsRequest {
        refs,
        layout_version,
    };
    Ok(state
        .peers
        .blocks_on(node)?
        .missing_refs(req)
        .await?
        .into_inner())
}

/// Adds references on `node`, whose blocks are present there.
async fn add_refs(
    state: &NodeState,
    node: &LayoutNode,
    refs: Vec<pb::BlockRefEntry>,
    layout_version: u64,
) -> Result<(), Status> {
    if state.is_self(node) {
        let ops = refs
            .iter()
            .filter_map(|r| {
                Some(Op::AddRef {
                    block: BlockId::from_slice(&r.block_id)?,
                    owner: r.owner.as_ref()?.encode_to_vec(),
                })
            })
            .collect();
        state.index.apply(ops).await.map_err(index_status)?;
        return Ok(());
    }
    let req = RefsRequest {
        refs,
        layout_version,
    };
    let missing = state.peers.blocks_on(node)?.add_refs(req).await?;
    if !missing.get_ref().missing.is_empty() {
        return Err(Status::not_found(
            "a block vanished while adding references",
        ));
    }
    Ok(())
}

/// Copies one block from the first of `sources` that serves it to `target`, with a
/// reference for each of `owners`; returns its size. During a transition it waits while
/// rebalancing is paused and for the rate limit.
async fn copy_block(
    state: &Arc<NodeState>,
    sources: &[LayoutNode],
    target: &LayoutNode,
    block: &[u8],
    owners: &[pb::BlockRefEntry],
    layout_version: u64,
) -> Result<u64, Status> {
    state.repair.rebalance.wait_unpaused(state).await;
    let mut data = None;
    let mut last = Status::not_found("no replica holds the block");
    for source in sources {
        let req = GetBlockRequest {
            id: block.to_vec(),
            offset: 0,
            length: 0,
            layout_version,
        };
        match block_node(state, source)?.get_block(req).await {
            Ok(d) => {
                data = Some(d);
                break;
            }
            Err(e) => last = e,
        }
    }
    let data = data.ok_or(last)?;
    let (first, rest) = owners
        .split_first()
        .ok_or_else(|| Status::invalid_argument("no owner"))?;
    let size = data.iter().map(|c| c.len() as u64).sum();
    state.repair.rebalance.throttle(state, size).await;
    let header = PutBlockHeader {
        id: block.to_vec(),
        owner: first.owner.clone(),
        size,
        layout_version,
    };
    block_node(state, target)?.put_block(header, data).await?;
    if !rest.is_empty() {
        add_refs(state, target, rest.to_vec(), layout_version).await?;
    }
    tracing::debug!(block = %hex::encode(block), to = %target.id, "anti-entropy copied a block");
    Ok(size)
}

/// How this node reaches a block replica: its own stores in process, a peer over gRPC.
fn block_node(state: &Arc<NodeState>, node: &LayoutNode) -> Result<Arc<dyn BlockNode>, Status> {
    if state.is_self(node) {
        return Ok(crate::local::block_node(state.clone()));
    }
    Ok(Arc::new(GrpcBlockNode(state.peers.blocks_on(node)?)))
}

/// Drops again the references taken for records that were replaced or purged meanwhile
/// (that write released them, possibly before they were added here).
async fn release_superseded(state: &Arc<NodeState>, records: &[pb::ObjectRecord]) {
    let stale: Vec<pb::ObjectRecord> = records
        .iter()
        .filter(|r| {
            let held =
                state
                    .index
                    .selected(&bucket_of(r), &r.key, VersionSelector::Id(version_of(r)));
            matches!(held, Ok(h) if !h.as_ref().is_some_and(is_visible))
        })
        .cloned()
        .collect();
    if !stale.is_empty() {
        release_blocks(state, &stale).await;
    }
}

/// Block work that outlives a pass: the sweep's position in the index (the raw key of the
/// last record it looked at), records whose blocks are still to be checked, and what each
/// peer looked like last time (its incarnation, `None` when unreachable).
#[derive(Debug, Default)]
pub struct Sweep {
    cursor: Vec<u8>,
    carried: Vec<pb::ObjectRecord>,
    peers: HashMap<Uuid, Option<u64>>,
}

/// Most records one sweep step looks at (whether or not they qualify).
const SWEEP_SCAN_BUDGET: usize = 50_000;

impl Sweep {
    /// Notes how a pass found a peer: when it is back from being unreachable, or restarted,
    /// it may have missed block writes, so the sweep starts over.
    pub fn note_peer(&mut self, peer: Uuid, incarnation: Option<u64>) {
        let before = self.peers.insert(peer, incarnation);
        if incarnation.is_some() && before.is_some_and(|b| b != incarnation) {
            tracing::info!(%peer, "peer is back or restarted: the block sweep starts over");
            self.cursor.clear();
        }
    }

    /// Keeps records whose blocks are still to be checked for the next pass.
    pub fn carry(&mut self, records: &[pb::ObjectRecord]) {
        self.carried.extend_from_slice(records);
    }

    pub fn take_carried(&mut self) -> Vec<pb::ObjectRecord> {
        std::mem::take(&mut self.carried)
    }

    pub fn has_carried(&self) -> bool {
        !self.carried.is_empty()
    }

    /// The next (up to) `budget` complete records with blocks whose first replica is this
    /// node, continuing where the last call stopped and wrapping around at the end.
    pub async fn next_batch(
        &mut self,
        state: &Arc<NodeState>,
        placement: &Arc<Placement>,
        budget: usize,
    ) -> Result<Vec<pb::ObjectRecord>, Status> {
        let (index, placement, me) = (state.index.clone(), placement.clone(), state.id);
        let after = self.cursor.clone();
        let (batch, next) = blocking(move || {
            let (mut batch, mut next, mut looked) = (Vec::new(), Vec::new(), 0);
            index.scan((!after.is_empty()).then_some(&after[..]), |raw, record| {
                looked += 1;
                if record.state() == RecordState::Complete
                    && !record_blocks(&record).is_empty()
                    && is_primary(&placement, me, &record)
                {
                    batch.push(record);
                }
                if batch.len() >= budget || looked >= SWEEP_SCAN_BUDGET {
                    next = raw.to_vec();
                    return false;
                }
                true
            })?;
            Ok((batch, next))
        })
        .await?;
        self.cursor = next;
        Ok(batch)
    }
}

/// Whether `node` is the first replica of the record's key (in the oldest active ring,
/// whose replicas hold every record).
fn is_primary(placement: &Placement, node: Uuid, record: &pb::ObjectRecord) -> bool {
    placement
        .read_set(object_hash(&bucket_of(record), &record.key))
        .first()
        .is_some_and(|n| n.id == node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_starts_over_when_a_peer_returns_or_restarts() {
        let mut sweep = Sweep {
            cursor: b"somewhere".to_vec(),
            ..Default::default()
        };
        let peer = Uuid::from_u128(1);
        sweep.note_peer(peer, Some(7));
        sweep.note_peer(peer, Some(7));
        assert!(
            !sweep.cursor.is_empty(),
            "a peer seen twice alike changes nothing"
        );
        sweep.note_peer(peer, None);
        assert!(!sweep.cursor.is_empty(), "going away alone changes nothing");
        sweep.note_peer(peer, Some(7));
        assert!(sweep.cursor.is_empty(), "back after being unreachable");
        sweep.cursor = b"again".to_vec();
        sweep.note_peer(peer, Some(8));
        assert!(sweep.cursor.is_empty(), "restarted (new incarnation)");
    }
}

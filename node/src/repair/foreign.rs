//! Copies this node holds but no longer replicates, once a layout transition has retired the
//! layout that placed them here. Each goes only once every replica of the current layout
//! holds it: a record version once all of them answer with it or something newer, a block
//! once all of them hold its file (the new primaries copied the blocks of every current
//! record, with their references, before the transition retired). Nothing is released
//! elsewhere: these are local copies, not versions going away.

use std::sync::Arc;

use cairn_proto::Placement;
use cairn_proto::ids::BlockId;
use cairn_proto::meta::LayoutNode;
use cairn_proto::pb::{self, RecordState};
use cairn_proto::ring::{block_hash, object_hash};
use prost::Message;
use tonic::Status;

use super::blocking;
use super::blocks::ask_missing;
use super::holds::replica_holds;
use crate::state::NodeState;
use crate::store::Op;
use crate::store::index::{bucket_of, version_of};

/// Record versions or blocks looked at per round.
const BATCH: usize = 500;

/// What [`drop_foreign`] did.
#[derive(Debug, Default)]
pub struct ForeignReport {
    pub records_dropped: u64,
    pub blocks_dropped: u64,
    pub bytes_dropped: u64,
    /// Copies kept because a current replica could not confirm it holds them.
    pub kept: u64,
}

/// Drops every record version and block this node holds outside its share of the current
/// layout, where the current replicas confirm they hold them. Only outside transitions.
pub async fn drop_foreign(
    state: &Arc<NodeState>,
    placement: &Arc<Placement>,
) -> Result<ForeignReport, Status> {
    let mut report = ForeignReport::default();
    if placement.in_transition() || placement.is_empty() {
        return Ok(report);
    }
    drop_records(state, placement, &mut report).await?;
    drop_blocks(state, placement, &mut report).await?;
    if report.records_dropped + report.blocks_dropped > 0 {
        tracing::info!(
            records = report.records_dropped,
            blocks = report.blocks_dropped,
            bytes = report.bytes_dropped,
            "dropped copies this node no longer replicates"
        );
    }
    Ok(report)
}

async fn drop_records(
    state: &Arc<NodeState>,
    placement: &Arc<Placement>,
    report: &mut ForeignReport,
) -> Result<(), Status> {
    let mut after: Vec<u8> = Vec::new();
    loop {
        let (index, placement_c, me) = (state.index.clone(), placement.clone(), state.id);
        let cursor = after.clone();
        let (batch, next) = blocking(move || {
            let (mut batch, mut next) = (Vec::new(), None);
            index.scan(
                (!cursor.is_empty()).then_some(&cursor[..]),
                |raw, record| {
                    let hash = object_hash(&bucket_of(&record), &record.key);
                    if record.state() != RecordState::Uploading && !placement_c.holds(&me, hash) {
                        batch.push(record);
                    }
                    if batch.len() >= BATCH {
                        next = Some(raw.to_vec());
                        return false;
                    }
                    true
                },
            )?;
            Ok((batch, next))
        })
        .await?;
        let mut ops = Vec::new();
        for record in batch {
            if replicas_hold_record(state, placement, &record).await {
                ops.push(Op::DeleteRecord {
                    bucket: bucket_of(&record),
                    key: record.key.clone(),
                    version: version_of(&record),
                });
            } else {
                report.kept += 1;
            }
        }
        report.records_dropped += ops.len() as u64;
        if !ops.is_empty() {
            state
                .index
                .apply(ops)
                .await
                .map_err(crate::coordinator::index_status)?;
        }
        match next {
            Some(n) => after = n,
            None => return Ok(()),
        }
    }
}

/// Whether every current replica of the record's key holds it (see [`replica_holds`]).
async fn replicas_hold_record(
    state: &NodeState,
    placement: &Placement,
    record: &pb::ObjectRecord,
) -> bool {
    let bucket = bucket_of(record);
    let asks = placement
        .current()
        .replicas(object_hash(&bucket, &record.key))
        .into_iter()
        .map(|node| replica_holds(state, node, placement.version(), record));
    futures::future::join_all(asks)
        .await
        .into_iter()
        .all(|held| held)
}

async fn drop_blocks(
    state: &Arc<NodeState>,
    placement: &Arc<Placement>,
    report: &mut ForeignReport,
) -> Result<(), Status> {
    let mut after: Option<BlockId> = None;
    loop {
        let index = state.index.clone();
        let cursor = after;
        let batch = blocking(move || index.referenced_blocks(cursor.as_ref(), BATCH)).await?;
        let Some((last, _)) = batch.last() else {
            return Ok(());
        };
        after = Some(*last);
        for (block, owners) in batch {
            if placement.holds(&state.id, block_hash(&block.0)) {
                continue;
            }
            if !replicas_hold_block(state, placement, &block, &owners).await {
                report.kept += 1;
                continue;
            }
            let ops = owners
                .into_iter()
                .map(|owner| Op::DropRef { block, owner })
                .collect();
            state
                .index
                .apply(ops)
                .await
                .map_err(crate::coordinator::index_status)?;
            let blocks = state.blocks.clone();
            let size = tokio::task::spawn_blocking(move || {
                let size = blocks.size(&block).unwrap_or(0);
                blocks.delete(&block).map(|()| size)
            })
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::internal(e.to_string()))?;
            state
                .index
                .apply(vec![Op::ForgetOrphan { block }])
                .await
                .map_err(crate::coordinator::index_status)?;
            report.blocks_dropped += 1;
            report.bytes_dropped += size;
        }
    }
}

/// Whether every current replica of `block` holds its file.
async fn replicas_hold_block(
    state: &NodeState,
    placement: &Placement,
    block: &BlockId,
    owners: &[Vec<u8>],
) -> bool {
    let Some(owner) = owners
        .first()
        .and_then(|o| pb::BlockOwner::decode(&o[..]).ok())
    else {
        return false;
    };
    let entry = pb::BlockRefEntry {
        block_id: block.0.to_vec(),
        owner: Some(owner),
    };
    let replicas: Vec<LayoutNode> = placement
        .current()
        .replicas(block_hash(&block.0))
        .into_iter()
        .cloned()
        .collect();
    let asks = replicas
        .iter()
        .map(|node| ask_missing(state, node, vec![entry.clone()], placement.version()));
    futures::future::join_all(asks)
        .await
        .into_iter()
        .all(|answer| answer.is_ok_and(|a| a.missing_blocks.is_empty()))
}

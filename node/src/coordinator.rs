//! The coordinator role: every record write for a key goes through the first live node of
//! its replica set, which stamps the version (HLC above every version it holds for the key)
//! and replicates to a write quorum. Replicas drop the block references of the versions a
//! write superseded.

use std::sync::Arc;

use cairn_proto::ids::{record_blocks, record_owner};
use cairn_proto::pb::{self, CoordinateResponse, StoreRequest};
use cairn_proto::ring::object_hash;
use cairn_proto::{BlockId, VersionKey};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use prost::Message;
use tonic::Status;
use uuid::Uuid;

use crate::state::NodeState;
use crate::store::{IndexError, Op, StoreOutcome};

/// Maps index failures to gRPC status.
pub fn index_status(e: IndexError) -> Status {
    Status::internal(e.to_string())
}

/// Stamps (if needed), stores and replicates a record; answers once W replicas hold it.
pub async fn coordinate(
    state: &Arc<NodeState>,
    mut record: pb::ObjectRecord,
) -> Result<CoordinateResponse, Status> {
    let bucket = Uuid::from_slice(&record.bucket_id)
        .map_err(|_| Status::invalid_argument("bad bucket id"))?;
    let version = match record.version.as_ref().and_then(VersionKey::from_pb) {
        Some(v) => {
            state.hlc.observe(v.hlc);
            v
        }
        None => {
            let floor = state
                .index
                .newest_version(&bucket, &record.key)
                .map_err(index_status)?;
            let v = VersionKey {
                hlc: state.hlc.stamp_after(floor.map(|v| v.hlc).unwrap_or(0)),
                node_id: *state.id.as_bytes(),
                uuid: *Uuid::new_v4().as_bytes(),
            };
            record.version = Some(v.to_pb());
            v
        }
    };
    record.last_modified_ms = version.millis();

    let ring = state.ring();
    let replicas = ring.replicas(object_hash(&bucket, &record.key));
    if replicas.is_empty() {
        return Err(Status::unavailable("no layout yet"));
    }
    let quorum = replicas.len() / 2 + 1;
    let mut writes: FuturesUnordered<_> = replicas
        .iter()
        .map(|node| {
            let record = record.clone();
            let state = state.clone();
            let node = (*node).clone();
            let layout_version = ring.version();
            async move {
                if state.is_self(&node) {
                    store_local(&state, record).await.map(Some)
                } else {
                    let mut client = state.peers.objects(&node.addr)?;
                    client
                        .store(StoreRequest {
                            record: Some(record),
                            layout_version,
                        })
                        .await?;
                    Ok(None)
                }
            }
        })
        .collect();
    let (mut acks, mut previous, mut last_error) = (0, None, None);
    while let Some(result) = writes.next().await {
        match result {
            Ok(local) => {
                acks += 1;
                if let Some(outcome) = local {
                    previous = outcome.previous;
                }
                if acks >= quorum {
                    break;
                }
            }
            Err(e) => last_error = Some(e),
        }
    }
    if acks < quorum {
        let why = last_error.map(|e| e.to_string()).unwrap_or_default();
        return Err(Status::unavailable(format!(
            "write quorum not reached ({acks}/{quorum}): {why}"
        )));
    }
    // Let the slower replicas finish in the background.
    tokio::spawn(async move { while writes.next().await.is_some() {} });
    Ok(CoordinateResponse {
        record: Some(record),
        previous,
    })
}

/// Stores a stamped record in the local index and releases what it superseded.
pub async fn store_local(
    state: &Arc<NodeState>,
    record: pb::ObjectRecord,
) -> Result<StoreOutcome, Status> {
    if let Some(v) = record.version.as_ref() {
        state.hlc.observe(v.hlc);
    }
    let outcome = state.index.store(record).await.map_err(index_status)?;
    if !outcome.garbage.is_empty() {
        let state = state.clone();
        let garbage = outcome.garbage.clone();
        tokio::spawn(async move { release_blocks(&state, &garbage).await });
    }
    Ok(outcome)
}

/// Drops the block references held by records that are gone (on every replica of each
/// block). Failures are logged; the refs then stay until repair.
pub async fn release_blocks(state: &Arc<NodeState>, records: &[pb::ObjectRecord]) {
    let entries: Vec<pb::BlockRefEntry> = records
        .iter()
        .filter_map(|record| Some((record_owner(record)?, record_blocks(record))))
        .flat_map(|(owner, blocks)| {
            blocks.iter().map(move |b| pb::BlockRefEntry {
                block_id: b.id.clone(),
                owner: Some(owner.clone()),
            })
        })
        .collect();
    if entries.is_empty() {
        return;
    }
    let ring = state.ring();
    let local = |refs: Vec<pb::BlockRefEntry>| {
        let state = state.clone();
        async move { drop_refs_local(&state, &refs).await }
    };
    state
        .peers
        .drop_refs_everywhere(&ring, &entries, Some(state.id), local)
        .await;
}

/// Drops references in the local index.
pub async fn drop_refs_local(state: &NodeState, refs: &[pb::BlockRefEntry]) -> Result<(), Status> {
    let ops = refs
        .iter()
        .filter_map(|r| {
            Some(Op::DropRef {
                block: BlockId::from_slice(&r.block_id)?,
                owner: r.owner.as_ref()?.encode_to_vec(),
            })
        })
        .collect();
    state.index.apply(ops).await.map_err(index_status)?;
    Ok(())
}

//! Whether another replica holds a record version as far as this node is concerned: asked
//! before a node forgets a copy it no longer needs (tombstones and purge markers after their
//! grace, foreign copies after a layout change).

use cairn_proto::ids::record_freshness;
use cairn_proto::meta::LayoutNode;
use cairn_proto::pb::{self, GetRecordRequest};
use cairn_proto::versions::{is_purged, is_visible, supersedes, version_key};
use tonic::Status;

use crate::state::NodeState;

/// Whether the replica `node` holds `record`: that version itself, its purge, or a
/// visible version superseding it. A tombstone or purge marker also counts as held where the
/// version is gone altogether (collected there already). Unreachable = not held.
pub async fn replica_holds(
    state: &NodeState,
    node: &LayoutNode,
    layout_version: u64,
    record: &pb::ObjectRecord,
) -> bool {
    match ask(state, node, layout_version, record).await {
        Ok(held) => held,
        Err(e) => {
            tracing::debug!(node = %node.addr, error = %e, "cannot ask a replica for a version");
            false
        }
    }
}

async fn ask(
    state: &NodeState,
    node: &LayoutNode,
    layout_version: u64,
    record: &pb::ObjectRecord,
) -> Result<bool, Status> {
    let mut client = state.peers.objects_on(node)?;
    let exact = GetRecordRequest {
        bucket_id: record.bucket_id.clone(),
        key: record.key.clone(),
        layout_version,
        version: record.version.clone(),
        ..Default::default()
    };
    let answer = client.get(exact.clone()).await?.into_inner();
    if !answer.purged.is_empty() {
        return Ok(true);
    }
    if let Some(held) = answer.record {
        // A replica still showing a version this node purged has not seen the purge.
        return Ok(!is_purged(record)
            && version_key(&held) == version_key(record)
            && record_freshness(&held) >= record_freshness(record));
    }
    let newest = client
        .get(GetRecordRequest {
            version: None,
            ..exact
        })
        .await?
        .into_inner()
        .record;
    Ok(match newest {
        Some(n) => is_visible(record) && supersedes(&n, record),
        None => !is_visible(record) || record.state() == pb::RecordState::Tombstone,
    })
}

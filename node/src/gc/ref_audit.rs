//! The block reference audit: drops the references this node holds whose owner is gone.
//!
//! A body's blocks are referenced on every replica while it streams in, before any record
//! lists them (a PUT's `uploading` record does not). A gateway that dies mid-body never
//! releases those references, and a release that could not reach a replica leaves its
//! reference behind; nothing else would ever drop them, so their blocks would stay forever.
//!
//! Every collector pass walks a budget of this node's references, continuing where the last
//! pass stopped (a cursor over the reference table that starts over at its end), and checks
//! the owner of each one taken longer ago than the upload expiry — a write running that long
//! is abandoned (its `uploading` record expires too):
//! - an object version: every replica of the key in every active layout is asked whether it
//!   holds exactly that version in any state (one GetRecords with `any_state` per node and
//!   batch, addressed to the node's id, so a process that took over its address refuses);
//!   the reference goes only when all of them answered and none does (a purge counts as
//!   gone). A replica that does not answer keeps it until a later pass.
//! - a multipart part: the upload is looked up in a linearizable read of the metadata; the
//!   reference goes once the upload is not listed (completed — the object then holds its
//!   own references — aborted, or removed with its bucket).
//!
//! A dropped reference goes through the index's ordinary `DropRef`: a block left without any
//! becomes an orphan and is deleted after the block grace like every other.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use cairn_proto::meta::LayoutNode;
use cairn_proto::pb::{GetRecordRequest, GetRecordsRequest, GetRecordsResponse};
use cairn_proto::ring::object_hash;
use cairn_proto::versions::version_key;
use tonic::Status;
use uuid::Uuid;

use super::verdict::{
    ObjectVersion, Owner, ReplicaAnswer, Verdict, object_verdict, upload_verdict,
};
use crate::coordinator::index_status;
use crate::repair::{blocking, serve_get_records};
use crate::state::NodeState;
use crate::store::index::{HeldRef, bucket_of};
use crate::store::{Index, Op};

/// Most references one pass walks past (young ones included) looking for old ones.
const SCAN_LIMIT: usize = 50_000;
/// Most versions asked about in one GetRecords request.
const LOOKUP_BATCH: usize = 500;
/// How long one replica may take to answer all of a pass's lookups.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The audit's position: the table key of the last reference a pass looked at (empty: the
/// next pass starts from the beginning).
#[derive(Debug, Default)]
pub struct RefAudit {
    cursor: Vec<u8>,
}

/// What one audit pass did.
#[derive(Debug, Default)]
pub struct AuditReport {
    /// Old references whose owner was looked up.
    pub checked: u64,
    /// References dropped because their owner is gone.
    pub dropped: u64,
    /// Why some references were kept unchecked (replicas or metadata that did not answer).
    pub unanswered: Vec<String>,
}

impl RefAudit {
    /// Checks up to `budget` references taken before `cutoff_ms` and drops those whose
    /// owner is gone. Fails only on local index errors.
    pub async fn pass(
        &mut self,
        state: &Arc<NodeState>,
        cutoff_ms: i64,
        budget: usize,
    ) -> Result<AuditReport, Status> {
        let mut report = AuditReport::default();
        if budget == 0 {
            return Ok(report);
        }
        let old = self.next_batch(&state.index, cutoff_ms, budget).await?;
        report.checked = old.len() as u64;
        let mut objects: BTreeMap<ObjectVersion, Vec<HeldRef>> = BTreeMap::new();
        let mut uploads: BTreeMap<String, Vec<HeldRef>> = BTreeMap::new();
        for held in old {
            match Owner::decode(&held.owner) {
                Owner::Object(version) => objects.entry(version).or_default().push(held),
                Owner::Upload(id) => uploads.entry(id).or_default().push(held),
                Owner::Unknown => {}
            }
        }

        let mut gone: Vec<HeldRef> = Vec::new();
        let versions: Vec<&ObjectVersion> = objects.keys().collect();
        let (answers, unanswered) = ask_replicas(state, &versions).await;
        report.unanswered.extend(unanswered);
        for (version, refs) in &objects {
            let said = answers.get(version).map_or(&[][..], Vec::as_slice);
            if object_verdict(said) == Verdict::Drop {
                gone.extend_from_slice(refs);
            }
        }

        if !uploads.is_empty() {
            let meta = match state.raft.read_linearizable().await {
                Ok((_, meta)) => Some(meta),
                Err(e) => {
                    report.unanswered.push(format!("metadata: {e}"));
                    None
                }
            };
            for (id, refs) in uploads {
                let listed = meta.as_ref().map(|m| m.uploads.contains_key(&id));
                if upload_verdict(listed) == Verdict::Drop {
                    gone.extend(refs);
                }
            }
        }

        report.dropped = gone.len() as u64;
        if !gone.is_empty() {
            let ops = gone
                .into_iter()
                .map(|r| Op::DropRef {
                    block: r.block,
                    owner: r.owner,
                })
                .collect();
            state.index.apply(ops).await.map_err(index_status)?;
        }
        Ok(report)
    }

    /// The next references taken before `cutoff_ms`, at most `budget` of them, walking at
    /// most [`SCAN_LIMIT`] from the cursor on.
    async fn next_batch(
        &mut self,
        index: &Index,
        cutoff_ms: i64,
        budget: usize,
    ) -> Result<Vec<HeldRef>, Status> {
        let (index, after) = (index.clone(), std::mem::take(&mut self.cursor));
        let (batch, next) = blocking(move || {
            let (mut batch, mut next, mut looked) = (Vec::new(), Vec::new(), 0);
            index.scan_refs((!after.is_empty()).then_some(&after[..]), |held| {
                looked += 1;
                let old = held.taken_ms < cutoff_ms;
                let stop = looked >= SCAN_LIMIT || (old && batch.len() + 1 >= budget);
                if stop {
                    next = held.table_key();
                }
                if old {
                    batch.push(held);
                }
                !stop
            })?;
            Ok((batch, next))
        })
        .await?;
        self.cursor = next;
        Ok(batch)
    }
}

/// What every replica (in every active layout) of each version's key says about it, and
/// the replicas that did not answer. A version whose key has no replica gets no answers.
async fn ask_replicas<'a>(
    state: &Arc<NodeState>,
    versions: &[&'a ObjectVersion],
) -> (HashMap<&'a ObjectVersion, Vec<ReplicaAnswer>>, Vec<String>) {
    let placement = state.placement();
    let mut by_node: BTreeMap<Uuid, (LayoutNode, Vec<&'a ObjectVersion>)> = BTreeMap::new();
    for version in versions {
        for node in placement.write_targets(object_hash(&version.bucket, &version.key)) {
            by_node
                .entry(node.id)
                .or_insert_with(|| (node.clone(), Vec::new()))
                .1
                .push(*version);
        }
    }
    let layout_version = placement.version();
    let lookups = by_node.into_values().map(|(node, asked)| async move {
        let held = tokio::time::timeout(
            LOOKUP_TIMEOUT,
            held_on(state, &node, &asked, layout_version),
        )
        .await
        .unwrap_or_else(|_| Err(Status::deadline_exceeded("no answer in time")));
        (node, asked, held)
    });
    let mut answers: HashMap<&ObjectVersion, Vec<ReplicaAnswer>> = HashMap::new();
    let mut unanswered = Vec::new();
    for (node, asked, held) in futures::future::join_all(lookups).await {
        if let Err(e) = &held {
            unanswered.push(format!("node {}: {}", node.id, e.message()));
        }
        for version in asked {
            let answer = match &held {
                Ok(states) => ReplicaAnswer::from_state(states.get(version).copied()),
                Err(_) => ReplicaAnswer::Unknown,
            };
            answers.entry(version).or_default().push(answer);
        }
    }
    (answers, unanswered)
}

/// The state in which `node` holds each of `asked` (versions it holds no record of are left
/// out).
async fn held_on(
    state: &Arc<NodeState>,
    node: &LayoutNode,
    asked: &[&ObjectVersion],
    layout_version: u64,
) -> Result<HashMap<ObjectVersion, cairn_proto::pb::RecordState>, Status> {
    let mut held = HashMap::new();
    for batch in asked.chunks(LOOKUP_BATCH) {
        let req = GetRecordsRequest {
            keys: batch
                .iter()
                .map(|v| GetRecordRequest {
                    bucket_id: v.bucket.as_bytes().to_vec(),
                    key: v.key.clone(),
                    version: Some(v.version.to_pb()),
                    any_state: true,
                    layout_version,
                    ..Default::default()
                })
                .collect(),
            layout_version,
        };
        let answer: GetRecordsResponse = if state.is_self(node) {
            serve_get_records(state, req).await?
        } else {
            state
                .peers
                .objects_on(node)?
                .get_records(req)
                .await?
                .into_inner()
        };
        for record in answer.records {
            let version = ObjectVersion {
                bucket: bucket_of(&record),
                key: record.key.clone(),
                version: version_key(&record),
            };
            held.insert(version, record.state());
        }
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::index::test_index;
    use cairn_proto::BlockId;

    #[tokio::test]
    async fn walks_old_references_in_budget_sized_steps_and_starts_over() {
        let (_dir, index) = test_index();
        let ops = (0..5u8)
            .flat_map(|b| {
                ["x", "y"].map(|owner| Op::AddRef {
                    block: BlockId([b; 16]),
                    owner: owner.as_bytes().to_vec(),
                })
            })
            .collect();
        index.apply(ops).await.unwrap();
        let mut audit = RefAudit::default();
        let names = |refs: Vec<HeldRef>| -> Vec<(u8, String)> {
            refs.into_iter()
                .map(|r| (r.block.0[0], String::from_utf8(r.owner).unwrap()))
                .collect()
        };
        // Every reference is older than a cutoff in the future: 4 per pass, then the rest.
        let mut seen = Vec::new();
        for expected in [4, 4, 2] {
            let batch = audit.next_batch(&index, i64::MAX, 4).await.unwrap();
            assert_eq!(batch.len(), expected);
            seen.extend(names(batch));
        }
        assert_eq!(seen.len(), 10);
        assert_eq!(seen[..2], [(0, "x".into()), (0, "y".into())]);
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "in table order, once each"
        );
        // The walk reached the end: the next pass starts over.
        let again = audit.next_batch(&index, i64::MAX, 4).await.unwrap();
        assert_eq!(names(again)[0], (0, "x".into()));
        // Young references are walked past without being checked.
        let mut fresh = RefAudit::default();
        assert!(fresh.next_batch(&index, 0, 4).await.unwrap().is_empty());
        assert!(fresh.cursor.is_empty());
    }
}

//! The coordinator role: every record write for a key goes through the first live node of
//! its replica set, which stamps the version (HLC above every version it holds for the key)
//! and replicates to a write quorum. Replicas drop the block references of the versions a
//! write superseded.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use cairn_proto::ids::{record_blocks, record_freshness, record_owner};
use cairn_proto::meta::Bucket;
use cairn_proto::pb::{self, CoordinateResponse, GetRecordRequest, RecordState, StoreRequest};
use cairn_proto::ring::object_hash;
use cairn_proto::versions::{NewestMerge, VersionSelector};
use cairn_proto::{
    BlockId, CONDITION_CONFLICT, CONDITION_FAILED, STORAGE_FULL, VersionKey, is_storage_full,
};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use prost::Message;
use tonic::Status;
use uuid::Uuid;

use crate::rpc::read_record;
use crate::state::NodeState;

use crate::store::{IndexError, Op, StoreOutcome};

/// Maps index failures to gRPC status.
pub fn index_status(e: IndexError) -> Status {
    Status::internal(e.to_string())
}

/// Stamps (if needed), stores and replicates a record; answers once W replicas hold it.
pub async fn coordinate(
    state: &Arc<NodeState>,
    record: pb::ObjectRecord,
) -> Result<CoordinateResponse, Status> {
    coordinate_if(state, record, None).await
}

/// [`coordinate`] for a write that may carry a condition: the key's lock is then held from
/// the quorum read that checks the condition until the write holds at quorum, so two
/// conditional writes of one key through this coordinator cannot both pass.
pub async fn coordinate_if(
    state: &Arc<NodeState>,
    mut record: pb::ObjectRecord,
    condition: Option<pb::WriteCondition>,
) -> Result<CoordinateResponse, Status> {
    let bucket = Uuid::from_slice(&record.bucket_id)
        .map_err(|_| Status::invalid_argument("bad bucket id"))?;
    let _lock = match condition.and_then(|c| c.test) {
        Some(test) => {
            let lock = state.key_locks.lock(bucket, &record.key).await;
            let current = quorum_read(state, &bucket, &record.key, None).await?;
            check_condition(&test, current.as_ref(), record.version.as_ref())?;
            // A version stamped below must sort after what the check saw.
            if let Some(v) = current.as_ref().and_then(|c| c.version.as_ref()) {
                state.hlc.observe(v.hlc);
            }
            Some(lock)
        }
        None => None,
    };
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
    let previous = replicate(state, &record).await?;
    Ok(CoordinateResponse {
        record: Some(record),
        previous,
    })
}

/// Stores a stamped record on its replicas; answers once a write quorum holds it, with the
/// newest visible record the local copy replaced (if this node is a replica).
async fn replicate(
    state: &Arc<NodeState>,
    record: &pb::ObjectRecord,
) -> Result<Option<pb::ObjectRecord>, Status> {
    let bucket = Uuid::from_slice(&record.bucket_id)
        .map_err(|_| Status::invalid_argument("bad bucket id"))?;
    let placement = state.placement();
    let hash = object_hash(&bucket, &record.key);
    let targets = placement.write_targets(hash);
    if targets.is_empty() {
        return Err(Status::unavailable("no layout yet"));
    }
    let mut writes: FuturesUnordered<_> = targets
        .iter()
        .map(|node| {
            let record = record.clone();
            let state = state.clone();
            let node = (*node).clone();
            let layout_version = placement.version();
            async move {
                let stored = if state.is_self(&node) {
                    store_local(&state, record).await.map(Some)
                } else {
                    match state.peers.objects_on(&node) {
                        Ok(mut client) => client
                            .store(StoreRequest {
                                record: Some(record),
                                layout_version,
                            })
                            .await
                            .map(|_| None),
                        Err(e) => Err(e),
                    }
                };
                (node.id, stored)
            }
        })
        .collect();
    let (mut acked, mut previous, mut last_error, mut full) = (Vec::new(), None, None, None);
    while let Some((node, result)) = writes.next().await {
        match result {
            Ok(local) => {
                acked.push(node);
                if let Some(outcome) = local {
                    previous = outcome.previous;
                }
                if placement.write_quorum(hash, |id| acked.contains(id)) {
                    break;
                }
            }
            Err(e) if is_storage_full(&e) => full = Some(e),
            Err(e) => last_error = Some(e),
        }
    }
    if !placement.write_quorum(hash, |id| acked.contains(id)) {
        let counts = format!("{} of {} replicas", acked.len(), targets.len());
        // Replicas out of space kept the quorum from being reached: say so, so the client
        // learns the cluster is full rather than down.
        return Err(match full {
            Some(full) => Status::resource_exhausted(format!(
                "{STORAGE_FULL}: write quorum not reached ({counts}): {}",
                full.message()
                    .strip_prefix(STORAGE_FULL)
                    .map_or(full.message(), |m| m.trim_start_matches(": "))
            )),
            None => Status::unavailable(format!(
                "write quorum not reached ({counts}): {}",
                last_error.map(|e| e.to_string()).unwrap_or_default()
            )),
        });
    }
    // Let the slower replicas finish in the background.
    tokio::spawn(async move { while writes.next().await.is_some() {} });
    Ok(previous)
}

/// Checks a write condition against the key's newest visible record. `stamped` is the
/// version the write already carries (flipping an `uploading` record), if any.
fn check_condition(
    test: &pb::write_condition::Test,
    current: Option<&pb::ObjectRecord>,
    stamped: Option<&pb::Version>,
) -> Result<(), Status> {
    use pb::write_condition::Test;
    let live = current.filter(|r| r.state() == RecordState::Complete);
    match test {
        Test::IfNoneMatchAny(_) => {
            if live.is_some() {
                return Err(Status::failed_precondition(format!(
                    "{CONDITION_FAILED}: the key exists"
                )));
            }
        }
        Test::IfMatchEtag(etag) => {
            let Some(live) = live else {
                return Err(Status::not_found("no such key"));
            };
            let wanted = etag.trim().trim_matches('"');
            if wanted != "*" && wanted != live.etag.trim_matches('"') {
                return Err(Status::failed_precondition(format!(
                    "{CONDITION_FAILED}: the ETag differs"
                )));
            }
        }
    }
    // A record stamped before a version that is now visible would stay hidden behind it:
    // acknowledging it would lose the write.
    let newer = |v: &pb::Version| {
        let theirs = VersionKey::from_pb(v);
        stamped
            .and_then(VersionKey::from_pb)
            .is_some_and(|ours| theirs > Some(ours))
    };
    if current.and_then(|c| c.version.as_ref()).is_some_and(newer) {
        return Err(Status::aborted(format!(
            "{CONDITION_CONFLICT}: a newer version was written meanwhile"
        )));
    }
    Ok(())
}

/// Replaces the tags of one complete version of a key (the newest visible one when `version`
/// is `None`): under the key's lock, reads the freshest copy at quorum, stamps the edit above
/// both the version and any earlier edit, and replicates the edited record (same version) to
/// a write quorum. A write racing the edit either hides the edited version (the edit then
/// applied to a version that is no longer current) or is the version edited: never both lost.
pub async fn set_tags(
    state: &Arc<NodeState>,
    req: pb::SetTagsRequest,
) -> Result<pb::ObjectRecord, Status> {
    let bucket =
        Uuid::from_slice(&req.bucket_id).map_err(|_| Status::invalid_argument("bad bucket id"))?;
    let wanted = req
        .version
        .as_ref()
        .map(|v| VersionKey::from_pb(v).ok_or_else(|| Status::invalid_argument("bad version")))
        .transpose()?;
    let _lock = state.key_locks.lock(bucket, &req.key).await;
    let mut record = quorum_read(state, &bucket, &req.key, wanted)
        .await?
        .filter(|r| r.state() == RecordState::Complete)
        .ok_or_else(|| Status::not_found("no such version"))?;
    let (version, edited) = record_freshness(&record);
    let stamp = VersionKey {
        hlc: state.hlc.stamp_after(version.hlc.max(edited.hlc)),
        node_id: *state.id.as_bytes(),
        uuid: *Uuid::new_v4().as_bytes(),
    };
    record.tags = req.tags;
    record.tags_stamp = Some(stamp.to_pb());
    replicate(state, &record).await?;
    Ok(record)
}

/// The freshest copy of a key's newest visible record, or of one visible version, among a
/// read quorum of its replicas (this node included when it is one).
async fn quorum_read(
    state: &Arc<NodeState>,
    bucket: &Uuid,
    key: &str,
    version: Option<VersionKey>,
) -> Result<Option<pb::ObjectRecord>, Status> {
    let placement = state.placement();
    let replicas = placement.read_set(object_hash(bucket, key));
    if replicas.is_empty() {
        return Err(Status::unavailable("no layout yet"));
    }
    let quorum = replicas.len() / 2 + 1;
    let mut reads: FuturesUnordered<_> = replicas
        .iter()
        .map(|node| {
            let local = state.is_self(node);
            let client = state.peers.objects_on(node);
            let req = GetRecordRequest {
                bucket_id: bucket.as_bytes().to_vec(),
                key: key.to_string(),
                layout_version: placement.version(),
                version: version.map(|v| v.to_pb()),
                ..Default::default()
            };
            async move {
                if local {
                    read_record(&state.index, &req)
                } else {
                    Ok(client?.get(req).await?.into_inner())
                }
            }
        })
        .collect();
    let (mut answers, mut merge, mut last_error) = (0, NewestMerge::default(), None);
    while let Some(result) = reads.next().await {
        match result {
            Ok(answer) => {
                answers += 1;
                merge.add(answer.record, &answer.purged);
                if answers >= quorum {
                    return Ok(merge.newest().cloned());
                }
            }
            Err(e) => last_error = Some(e),
        }
    }
    let why = last_error.map(|e| e.to_string()).unwrap_or_default();
    Err(Status::unavailable(format!(
        "read quorum not reached ({answers}/{quorum}): {why}"
    )))
}

/// Per-key async locks for conditional writes, in a sharded map whose entries live only
/// while someone holds or awaits them.
pub struct KeyLocks {
    shards: Vec<std::sync::Mutex<HashMap<(Uuid, String), LockSlot>>>,
}

struct LockSlot {
    mutex: Arc<tokio::sync::Mutex<()>>,
    /// Holders and waiters; the slot goes when the last one leaves.
    users: usize,
}

/// A held key lock (released on drop).
pub struct KeyGuard<'a> {
    _guard: tokio::sync::OwnedMutexGuard<()>,
    _user: LockUser<'a>,
}

/// Membership in a slot's `users`, also while still waiting (a cancelled wait leaves too).
struct LockUser<'a> {
    locks: &'a KeyLocks,
    key: (Uuid, String),
}

impl Drop for LockUser<'_> {
    fn drop(&mut self) {
        let mut shard = self.locks.shard(&self.key);
        if let Some(slot) = shard.get_mut(&self.key) {
            slot.users -= 1;
            if slot.users == 0 {
                shard.remove(&self.key);
            }
        }
    }
}

impl Default for KeyLocks {
    fn default() -> Self {
        Self {
            shards: (0..64).map(|_| Default::default()).collect(),
        }
    }
}

impl KeyLocks {
    fn shard(
        &self,
        key: &(Uuid, String),
    ) -> std::sync::MutexGuard<'_, HashMap<(Uuid, String), LockSlot>> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut hasher);
        let shard = &self.shards[hasher.finish() as usize % self.shards.len()];
        shard.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for and takes the lock of (bucket, key).
    pub async fn lock(&self, bucket: Uuid, key: &str) -> KeyGuard<'_> {
        let key = (bucket, key.to_string());
        let mutex = {
            let mut shard = self.shard(&key);
            let slot = shard.entry(key.clone()).or_insert_with(|| LockSlot {
                mutex: Default::default(),
                users: 0,
            });
            slot.users += 1;
            slot.mutex.clone()
        };
        let user = LockUser { locks: self, key };
        KeyGuard {
            _guard: mutex.lock_owned().await,
            _user: user,
        }
    }

    /// Keys with a holder or waiter (for tests).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Stores a stamped record in the local index and releases what it superseded. Below the
/// data dir's free-space reserve only records that add no data are stored (see
/// [`admit_record`]).
pub async fn store_local(
    state: &Arc<NodeState>,
    record: pb::ObjectRecord,
) -> Result<StoreOutcome, Status> {
    admit_record(state, &record)?;
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
    drop_refs(state, &entries).await;
}

/// Disk-full admission of a record: tombstones, delete markers and purges are always
/// stored (they are how space is freed); a record that carries or announces data (an
/// `uploading` announcement, a complete version: inline body, blocks, copy or multipart
/// result) is refused below the free-space reserve unless this node already holds its
/// version — a tag edit, or the flip of an upload it accepted before it filled up.
fn admit_record(state: &NodeState, record: &pb::ObjectRecord) -> Result<(), Status> {
    if matches!(record.state(), RecordState::Tombstone | RecordState::Purged) {
        return Ok(());
    }
    state.disk.admit_unless(record.encoded_len() as u64, || {
        let (Ok(bucket), Some(version)) = (
            Uuid::from_slice(&record.bucket_id),
            record.version.as_ref().and_then(VersionKey::from_pb),
        ) else {
            return Ok(false);
        };
        let held = state
            .index
            .selected(&bucket, &record.key, VersionSelector::Id(version))
            .map_err(index_status)?;
        Ok(held.is_some())
    })
}

/// Drops block references on every replica of each block (this node's locally).
/// Failures are logged; the refs then stay until repair.
pub async fn drop_refs(state: &Arc<NodeState>, entries: &[pb::BlockRefEntry]) {
    if entries.is_empty() {
        return;
    }
    let placement = state.placement();
    let local = |refs: Vec<pb::BlockRefEntry>| {
        let state = state.clone();
        async move { drop_refs_local(&state, &refs).await }
    };
    state
        .peers
        .drop_refs_everywhere(&placement, entries, Some(state.id), local)
        .await;
}

/// Lifecycle expiry of a key's current version: writes a tombstone (a delete marker in a
/// versioned bucket) through this node as coordinator, on condition that the current version
/// still has `current`'s ETag, so an object overwritten since the rule matched is left
/// alone. Answers whether the version was expired.
pub async fn expire_current(
    state: &Arc<NodeState>,
    bucket: &Bucket,
    current: &pb::ObjectRecord,
) -> Result<bool, Status> {
    let (versioned, null_version) = bucket.record_versioning();
    let tombstone = pb::ObjectRecord {
        bucket_id: current.bucket_id.clone(),
        key: current.key.clone(),
        state: RecordState::Tombstone as i32,
        versioned,
        null_version,
        ..Default::default()
    };
    let condition = pb::WriteCondition {
        test: Some(pb::write_condition::Test::IfMatchEtag(current.etag.clone())),
    };
    match coordinate_if(state, tombstone, Some(condition)).await {
        Ok(_) => Ok(true),
        Err(e)
            if matches!(
                e.code(),
                tonic::Code::FailedPrecondition | tonic::Code::NotFound
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use pb::write_condition::Test;

    fn record(state: RecordState, etag: &str, hlc: u64) -> pb::ObjectRecord {
        pb::ObjectRecord {
            state: state as i32,
            etag: etag.into(),
            version: Some(
                VersionKey {
                    hlc,
                    node_id: [1; 16],
                    uuid: [2; 16],
                }
                .to_pb(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn conditions() {
        let none = Test::IfNoneMatchAny(true);
        let live = record(RecordState::Complete, "\"abc\"", 10);
        let gone = record(RecordState::Tombstone, "", 10);
        assert!(check_condition(&none, None, None).is_ok());
        assert!(check_condition(&none, Some(&gone), None).is_ok());
        let e = check_condition(&none, Some(&live), None).unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition);
        assert!(e.message().starts_with(CONDITION_FAILED));

        for etag in ["abc", "\"abc\"", "*"] {
            let m = Test::IfMatchEtag(etag.into());
            assert!(check_condition(&m, Some(&live), None).is_ok(), "{etag}");
        }
        let wrong = Test::IfMatchEtag("\"abd\"".into());
        let e = check_condition(&wrong, Some(&live), None).unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition);
        let any = Test::IfMatchEtag("*".into());
        assert_eq!(
            check_condition(&any, None, None).unwrap_err().code(),
            tonic::Code::NotFound
        );
        assert_eq!(
            check_condition(&any, Some(&gone), None).unwrap_err().code(),
            tonic::Code::NotFound
        );

        // A record stamped before the visible version would hide behind it.
        let older = record(RecordState::Uploading, "", 5).version;
        let newer = record(RecordState::Uploading, "", 50).version;
        let e = check_condition(&any, Some(&live), older.as_ref()).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Aborted);
        assert!(e.message().starts_with(CONDITION_CONFLICT));
        assert!(check_condition(&any, Some(&live), newer.as_ref()).is_ok());
        assert_eq!(
            check_condition(&none, Some(&gone), older.as_ref())
                .unwrap_err()
                .code(),
            tonic::Code::Aborted
        );
    }

    #[tokio::test]
    async fn key_locks_serialize_and_clean_up() {
        let locks = Arc::new(KeyLocks::default());
        let bucket = Uuid::new_v4();
        let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (locks, counter) = (locks.clone(), counter.clone());
            tasks.push(tokio::spawn(async move {
                let _g = locks.lock(bucket, "k").await;
                let seen = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::task::yield_now().await;
                // Nobody else got in while we held the lock.
                assert_eq!(counter.load(std::sync::atomic::Ordering::SeqCst), seen + 1);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert!(locks.is_empty());

        // A cancelled wait leaves no entry behind either.
        let held = locks.lock(bucket, "k").await;
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            locks.lock(bucket, "k"),
        )
        .await;
        assert!(waiting.is_err());
        drop(held);
        assert!(locks.is_empty());
        let _other = locks.lock(bucket, "other").await;
        assert_eq!(locks.len(), 1);
    }
}

//! The node's ordered object index and block-reference table, in redb.
//!
//! Writes go through one writer thread that batches every request waiting at the time into a
//! single durable transaction (group commit): concurrent PUTs share one fsync.

use std::path::Path;
use std::sync::Arc;

use cairn_proto::ids::record_freshness;
use cairn_proto::pb::{self, RecordState};
use cairn_proto::{BlockId, VersionKey};
use prost::Message;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::keys;

/// Object records: `bucket ‖ escaped key ‖ terminator ‖ version` → encoded `ObjectRecord`.
const OBJECTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("objects");
/// Block references: `block id ‖ encoded BlockOwner` → unix ms when taken.
const REFS: TableDefinition<&[u8], i64> = TableDefinition::new("block_refs");
/// Blocks that lost their last reference: block id → unix ms since when.
const ORPHANS: TableDefinition<&[u8], i64> = TableDefinition::new("block_orphans");

/// Memory redb may use to cache index pages (its default is 1 GiB, which a large index with
/// inline bodies would fill as resident memory); the kernel's page cache still holds the
/// file beyond it.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Index errors.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index storage: {0}")]
    Storage(#[from] redb::Error),
    #[error("corrupt index entry: {0}")]
    Corrupt(String),
    #[error("index writer stopped")]
    Closed,
}

impl From<redb::TransactionError> for IndexError {
    fn from(e: redb::TransactionError) -> Self {
        IndexError::Storage(e.into())
    }
}
impl From<redb::TableError> for IndexError {
    fn from(e: redb::TableError) -> Self {
        IndexError::Storage(e.into())
    }
}
impl From<redb::StorageError> for IndexError {
    fn from(e: redb::StorageError) -> Self {
        IndexError::Storage(e.into())
    }
}
impl From<redb::CommitError> for IndexError {
    fn from(e: redb::CommitError) -> Self {
        IndexError::Storage(e.into())
    }
}
impl From<redb::DatabaseError> for IndexError {
    fn from(e: redb::DatabaseError) -> Self {
        IndexError::Storage(e.into())
    }
}

/// A block and the owners (encoded `BlockOwner`s) of its references.
pub type BlockOwners = (BlockId, Vec<Vec<u8>>);

/// One block reference held by this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldRef {
    pub block: BlockId,
    /// The encoded `BlockOwner`.
    pub owner: Vec<u8>,
    /// Unix ms when this node took (or last re-took) the reference.
    pub taken_ms: i64,
}

impl HeldRef {
    /// Its key in the reference table (`block id ‖ owner`): a cursor for [`Index::scan_refs`].
    pub fn table_key(&self) -> Vec<u8> {
        let mut k = self.block.0.to_vec();
        k.extend_from_slice(&self.owner);
        k
    }
}

/// One change to the index, applied inside a group-committed transaction.
// Ops live only until their batch commits: boxing the record would cost an allocation per write.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Op {
    /// Stores a record version, applying the supersede rules of [`StoreOutcome`].
    StoreRecord(pb::ObjectRecord),
    /// Removes one record version.
    DeleteRecord {
        bucket: Uuid,
        key: String,
        version: VersionKey,
    },
    /// Takes a reference on a block.
    AddRef { block: BlockId, owner: Vec<u8> },
    /// Drops a reference; a block left without any becomes an orphan.
    DropRef { block: BlockId, owner: Vec<u8> },
    /// Forgets an orphan whose file was deleted (if it is still unreferenced).
    ForgetOrphan { block: BlockId },
}

/// What storing a record did.
#[derive(Debug, Default, Clone)]
pub struct StoreOutcome {
    /// False if a newer visible version already existed (the record was not kept).
    pub stored: bool,
    /// The newest visible record before this write.
    pub previous: Option<pb::ObjectRecord>,
    /// Records removed by this write (superseded versions, or the record itself when stale):
    /// their block references must be dropped.
    pub garbage: Vec<pb::ObjectRecord>,
}

/// Per-op results, in op order.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum OpResult {
    Stored(StoreOutcome),
    Done,
}

struct Batch {
    ops: Vec<Op>,
    reply: oneshot::Sender<Result<Vec<OpResult>, String>>,
}

/// The object index of one node.
#[derive(Clone)]
pub struct Index {
    db: Arc<Database>,
    writer: mpsc::UnboundedSender<Batch>,
}

use cairn_proto::versions::{VersionSelector, supersedes};
pub use cairn_proto::versions::{is_purged, is_visible};

/// The newest visible record of a key on this node, and the versions of the key purged here
/// that are newer than it (see `GetRecordResponse`).
#[derive(Debug, Default, Clone)]
pub struct Latest {
    pub record: Option<pb::ObjectRecord>,
    pub purged: Vec<pb::ObjectRecord>,
}

impl Latest {
    /// The purged versions, as the wire carries them.
    pub fn purged_versions(&self) -> Vec<pb::Version> {
        self.purged
            .iter()
            .filter_map(|r| r.version.clone())
            .collect()
    }
}

/// The version of a record (records in the index always carry one).
pub use cairn_proto::versions::version_key as version_of;

/// The bucket uuid of a record.
pub fn bucket_of(r: &pb::ObjectRecord) -> Uuid {
    Uuid::from_slice(&r.bucket_id).unwrap_or_default()
}

fn decode(raw: &[u8]) -> Result<pb::ObjectRecord, IndexError> {
    pb::ObjectRecord::decode(raw).map_err(|e| IndexError::Corrupt(e.to_string()))
}

fn bad_key() -> IndexError {
    IndexError::Corrupt("bad record key".into())
}

impl Index {
    /// Opens (creating) the index database and starts its writer thread.
    pub fn open(path: &Path) -> Result<Self, IndexError> {
        let db = Arc::new(
            redb::Builder::new()
                .set_cache_size(CACHE_BYTES)
                .create(path)?,
        );
        {
            let txn = db.begin_write()?;
            txn.open_table(OBJECTS)?;
            txn.open_table(REFS)?;
            txn.open_table(ORPHANS)?;
            txn.commit()?;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let writer_db = db.clone();
        std::thread::Builder::new()
            .name("index-writer".into())
            .spawn(move || writer_loop(writer_db, rx))
            .map_err(|e| IndexError::Corrupt(format!("cannot start writer: {e}")))?;
        Ok(Self { db, writer: tx })
    }

    /// Applies ops atomically and durably (shared fsync with concurrent callers).
    pub async fn apply(&self, ops: Vec<Op>) -> Result<Vec<OpResult>, IndexError> {
        let (reply, rx) = oneshot::channel();
        self.writer
            .send(Batch { ops, reply })
            .map_err(|_| IndexError::Closed)?;
        rx.await
            .map_err(|_| IndexError::Closed)?
            .map_err(IndexError::Corrupt)
    }

    /// Stores one record; see [`StoreOutcome`].
    pub async fn store(&self, record: pb::ObjectRecord) -> Result<StoreOutcome, IndexError> {
        match self.apply(vec![Op::StoreRecord(record)]).await?.pop() {
            Some(OpResult::Stored(outcome)) => Ok(outcome),
            _ => Err(IndexError::Corrupt("store returned no outcome".into())),
        }
    }

    /// All versions of a key, oldest first.
    pub fn versions(&self, bucket: &Uuid, key: &str) -> Result<Vec<pb::ObjectRecord>, IndexError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(OBJECTS)?;
        let prefix = keys::key_prefix(bucket, key);
        let mut out = Vec::new();
        for entry in table.range(prefix.as_slice()..keys::after_key(bucket, key).as_slice())? {
            let (_, v) = entry?;
            out.push(decode(v.value())?);
        }
        Ok(out)
    }

    /// The newest visible (complete or tombstone) record of a key: versions are read newest
    /// first, and only until the first visible one.
    pub fn newest_visible(
        &self,
        bucket: &Uuid,
        key: &str,
    ) -> Result<Option<pb::ObjectRecord>, IndexError> {
        Ok(self.latest(bucket, key)?.record)
    }

    /// The newest visible record of a key and the purged versions newer than it.
    pub fn latest(&self, bucket: &Uuid, key: &str) -> Result<Latest, IndexError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(OBJECTS)?;
        let prefix = keys::key_prefix(bucket, key);
        let range = table.range(prefix.as_slice()..keys::after_key(bucket, key).as_slice())?;
        let mut latest = Latest::default();
        for entry in range.rev() {
            let record = decode(entry?.1.value())?;
            if is_visible(&record) {
                latest.record = Some(record);
                break;
            }
            if is_purged(&record) {
                latest.purged.push(record);
            }
        }
        Ok(latest)
    }

    /// The version of a key that `selector` names, visible or purged (the newest such for
    /// the null version).
    pub fn selected(
        &self,
        bucket: &Uuid,
        key: &str,
        selector: VersionSelector,
    ) -> Result<Option<pb::ObjectRecord>, IndexError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(OBJECTS)?;
        if let VersionSelector::Id(version) = selector {
            let raw = keys::record_key(bucket, key, &version);
            return table
                .get(raw.as_slice())?
                .map(|v| decode(v.value()))
                .transpose()
                .map(|r| r.filter(|r| is_visible(r) || is_purged(r)));
        }
        let prefix = keys::key_prefix(bucket, key);
        let range = table.range(prefix.as_slice()..keys::after_key(bucket, key).as_slice())?;
        for entry in range.rev() {
            let record = decode(entry?.1.value())?;
            if (is_visible(&record) || is_purged(&record)) && selector.selects(&record) {
                return Ok(Some(record));
            }
        }
        Ok(None)
    }

    /// Exactly this version of a key, in any state (`uploading` included).
    pub fn exact_version(
        &self,
        bucket: &Uuid,
        key: &str,
        version: &VersionKey,
    ) -> Result<Option<pb::ObjectRecord>, IndexError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(OBJECTS)?;
        let raw = keys::record_key(bucket, key, version);
        table
            .get(raw.as_slice())?
            .map(|v| decode(v.value()))
            .transpose()
    }

    /// The newest stamped version of a key in any state (for the coordinator's clock), read
    /// from the last index key of the key's versions without decoding any record.
    pub fn newest_version(
        &self,
        bucket: &Uuid,
        key: &str,
    ) -> Result<Option<VersionKey>, IndexError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(OBJECTS)?;
        let prefix = keys::key_prefix(bucket, key);
        let last = table
            .range(prefix.as_slice()..keys::after_key(bucket, key).as_slice())?
            .next_back()
            .transpose()?;
        last.map(|(k, _)| keys::record_key_version(k.value()).ok_or_else(bad_key))
            .transpose()
    }

    /// Lists a bucket range: for each key after `start_after` starting with `prefix`, its
    /// newest visible record (tombstones included). With a delimiter, keys under a common
    /// prefix are skipped once a live entry for that prefix has been returned. Returns the
    /// records and whether `limit` cut the answer.
    pub fn list(&self, req: &ListQuery) -> Result<(Vec<pb::ObjectRecord>, bool), IndexError> {
        if req.all_versions {
            return self.list_versions(req);
        }
        let txn = self.db.begin_read()?;
        let table = txn.open_table(OBJECTS)?;
        let bucket = &req.bucket;
        let end = keys::string_prefix_end(bucket, &req.prefix);
        let mut start = keys::string_prefix_start(bucket, &req.prefix);
        if !req.start_after.is_empty() {
            start = start.max(keys::after_key(bucket, &req.start_after));
        }
        let mut out: Vec<pb::ObjectRecord> = Vec::with_capacity(req.limit.min(1024));
        let mut keys_out = 0;
        'scan: loop {
            if start >= end {
                break;
            }
            // Versions of one key are adjacent, oldest first, and share the index key's head:
            // keep the newest visible one (and the purges after it) until the head changes.
            let mut head: Vec<u8> = Vec::new();
            let mut latest = Latest::default();
            for entry in table.range(start.as_slice()..end.as_slice())? {
                let (k, v) = entry?;
                let next_head = keys::record_key_head(k.value()).ok_or_else(bad_key)?;
                if next_head != head.as_slice() {
                    let done = std::mem::take(&mut latest);
                    if done.record.is_some() || !done.purged.is_empty() {
                        if keys_out == req.limit {
                            return Ok((out, true));
                        }
                        keys_out += 1;
                        if let Some(cp) = req.emit(done, &mut out) {
                            start = keys::string_prefix_end(bucket, &cp);
                            continue 'scan;
                        }
                    }
                    head.clear();
                    head.extend_from_slice(next_head);
                }
                let record = decode(v.value())?;
                if is_visible(&record) {
                    latest.record = Some(record);
                    latest.purged.clear();
                } else if is_purged(&record) {
                    latest.purged.push(summary_of(&record));
                }
            }
            if latest.record.is_some() || !latest.purged.is_empty() {
                if keys_out == req.limit {
                    return Ok((out, true));
                }
                req.emit(latest, &mut out);
            }
            break;
        }
        Ok((out, false))
    }

    /// [`Self::list`] of every version: per key newest first, visible versions and purged
    /// ones (so a reader merging replicas drops what some replica purged), `limit` counting
    /// visible versions.
    fn list_versions(&self, req: &ListQuery) -> Result<(Vec<pb::ObjectRecord>, bool), IndexError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(OBJECTS)?;
        let bucket = &req.bucket;
        let end = keys::string_prefix_end(bucket, &req.prefix);
        let mut start = keys::string_prefix_start(bucket, &req.prefix);
        let mut first_key_below: Option<(&str, VersionKey)> = None;
        if !req.start_after.is_empty() {
            match req.after_version {
                Some(v) => {
                    start = start.max(keys::key_prefix(bucket, &req.start_after));
                    first_key_below = Some((&req.start_after, v));
                }
                None => start = start.max(keys::after_key(bucket, &req.start_after)),
            }
        }
        let (mut out, mut visible) = (Vec::new(), 0);
        let mut head: Vec<u8> = Vec::new();
        let mut versions: Vec<pb::ObjectRecord> = Vec::new();
        let flush = |versions: &mut Vec<pb::ObjectRecord>,
                     out: &mut Vec<pb::ObjectRecord>,
                     visible: &mut usize|
         -> bool {
            for record in versions.drain(..).rev() {
                if is_visible(&record) {
                    if *visible == req.limit {
                        return true;
                    }
                    *visible += 1;
                }
                out.push(req.shape(record));
            }
            false
        };
        for entry in table.range(start.as_slice()..end.as_slice())? {
            let (k, v) = entry?;
            let next_head = keys::record_key_head(k.value()).ok_or_else(bad_key)?;
            if next_head != head.as_slice() {
                if flush(&mut versions, &mut out, &mut visible) {
                    return Ok((out, true));
                }
                head.clear();
                head.extend_from_slice(next_head);
            }
            let record = decode(v.value())?;
            if let Some((key, below)) = first_key_below
                && record.key == key
                && version_of(&record) >= below
            {
                continue;
            }
            if is_visible(&record) {
                versions.push(record);
            } else if is_purged(&record) {
                versions.push(summary_of(&record));
            }
        }
        let cut = flush(&mut versions, &mut out, &mut visible);
        Ok((out, cut))
    }

    /// Number of references on a block.
    pub fn ref_count(&self, block: &BlockId) -> Result<usize, IndexError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(REFS)?;
        let mut end = block.0.to_vec();
        end.push(0xFF);
        Ok(table.range(&block.0[..]..end.as_slice())?.count())
    }

    /// Orphaned blocks unreferenced since before `cutoff_ms`.
    pub fn orphans_before(&self, cutoff_ms: i64, limit: usize) -> Result<Vec<BlockId>, IndexError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ORPHANS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, since) = entry?;
            if since.value() < cutoff_ms {
                if let Some(id) = BlockId::from_slice(k.value()) {
                    out.push(id);
                }
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Records in `state` stamped before `cutoff_ms` (abandoned writes, old tombstones).
    pub fn older_than(
        &self,
        state: RecordState,
        cutoff_ms: i64,
        limit: usize,
    ) -> Result<Vec<pb::ObjectRecord>, IndexError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(OBJECTS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (_, v) = entry?;
            let record = decode(v.value())?;
            if record.state() == state && version_of(&record).millis() < cutoff_ms {
                out.push(record);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Visits record versions in index order, starting strictly after the raw index key
    /// `after` (from the start when `None`), until `visit` returns false. One read
    /// transaction for the whole walk; blocking.
    pub fn scan(
        &self,
        after: Option<&[u8]>,
        mut visit: impl FnMut(&[u8], pb::ObjectRecord) -> bool,
    ) -> Result<(), IndexError> {
        self.walk(OBJECTS, after, |k, v| Ok(visit(k, decode(v)?)))
    }

    /// Visits the entries of `table` in key order, starting strictly after the key `after`
    /// (from the start when `None`), until `visit` returns false. One read transaction;
    /// blocking.
    fn walk<V: redb::Value + 'static>(
        &self,
        table: TableDefinition<&[u8], V>,
        after: Option<&[u8]>,
        mut visit: impl FnMut(&[u8], V::SelfType<'_>) -> Result<bool, IndexError>,
    ) -> Result<(), IndexError> {
        use std::ops::Bound;
        let txn = self.db.begin_read()?;
        let table = txn.open_table(table)?;
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        for entry in table.range::<&[u8]>((start, Bound::Unbounded))? {
            let (k, v) = entry?;
            if !visit(k.value(), v.value())? {
                break;
            }
        }
        Ok(())
    }

    /// The blocks with references after `after` (from the start when `None`), up to
    /// `limit` of them, each with its owners (encoded `BlockOwner`s). Blocking.
    pub fn referenced_blocks(
        &self,
        after: Option<&BlockId>,
        limit: usize,
    ) -> Result<Vec<BlockOwners>, IndexError> {
        use std::ops::Bound;
        let txn = self.db.begin_read()?;
        let table = txn.open_table(REFS)?;
        let mut end_of_after = after.map(|b| b.0.to_vec());
        if let Some(k) = end_of_after.as_mut() {
            k.push(0xFF);
        }
        let start = end_of_after
            .as_deref()
            .map_or(Bound::Unbounded, Bound::Excluded);
        let mut out: Vec<BlockOwners> = Vec::new();
        for entry in table.range::<&[u8]>((start, Bound::Unbounded))? {
            let (k, _) = entry?;
            let k = k.value();
            let Some(block) = k.get(..16).and_then(BlockId::from_slice) else {
                return Err(IndexError::Corrupt("short block reference key".into()));
            };
            let owner = k[16..].to_vec();
            if let Some((last, owners)) = out.last_mut()
                && *last == block
            {
                owners.push(owner);
            } else if out.len() == limit {
                break;
            } else {
                out.push((block, vec![owner]));
            }
        }
        Ok(out)
    }

    /// Visits block references in table order (by block, then owner), starting strictly
    /// after the table key `after` (see [`HeldRef::table_key`]; from the start when `None`),
    /// until `visit` returns false. One read transaction for the whole walk; blocking.
    pub fn scan_refs(
        &self,
        after: Option<&[u8]>,
        mut visit: impl FnMut(HeldRef) -> bool,
    ) -> Result<(), IndexError> {
        self.walk(REFS, after, |k, taken_ms| {
            let Some(block) = k.get(..16).and_then(BlockId::from_slice) else {
                return Err(IndexError::Corrupt("short block reference key".into()));
            };
            Ok(visit(HeldRef {
                block,
                owner: k[16..].to_vec(),
                taken_ms,
            }))
        })
    }

    /// Number of block references held.
    pub fn ref_total(&self) -> Result<u64, IndexError> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(REFS)?.len()?)
    }

    /// Whether `owner` (an encoded `BlockOwner`) holds a reference on `block`.
    pub fn has_ref(&self, block: &BlockId, owner: &[u8]) -> Result<bool, IndexError> {
        let txn = self.db.begin_read()?;
        let mut k = block.0.to_vec();
        k.extend_from_slice(owner);
        Ok(txn.open_table(REFS)?.get(k.as_slice())?.is_some())
    }

    /// Number of record versions held.
    pub fn record_count(&self) -> Result<u64, IndexError> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(OBJECTS)?.len()?)
    }
}

/// A listing request on one node.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub bucket: Uuid,
    pub prefix: String,
    pub start_after: String,
    pub delimiter: String,
    pub limit: usize,
    pub headers_only: bool,
    /// Every version rather than the newest per key.
    pub all_versions: bool,
    /// With `all_versions`: start at `start_after`'s versions older than this.
    pub after_version: Option<VersionKey>,
}

/// A record reduced to what identifies its version (bucket, key, version, state, flags).
pub fn summary_of(record: &pb::ObjectRecord) -> pb::ObjectRecord {
    pb::ObjectRecord {
        bucket_id: record.bucket_id.clone(),
        key: record.key.clone(),
        version: record.version.clone(),
        state: record.state,
        versioned: record.versioned,
        null_version: record.null_version,
        tags_stamp: record.tags_stamp.clone(),
        ..Default::default()
    }
}

impl ListQuery {
    /// The common prefix to skip past after returning `record`, if any.
    fn delimiter_skip(&self, record: &pb::ObjectRecord) -> Option<String> {
        if self.delimiter.is_empty() || record.state() != RecordState::Complete {
            return None;
        }
        let key = &record.key;
        let rest = key.get(self.prefix.len()..)?;
        rest.find(&self.delimiter)
            .map(|i| key[..self.prefix.len() + i + self.delimiter.len()].to_string())
    }

    /// Appends one key's answer (purges newer than its newest visible record, then that
    /// record) and returns the common prefix to skip past, if any.
    fn emit(&self, latest: Latest, out: &mut Vec<pb::ObjectRecord>) -> Option<String> {
        out.extend(latest.purged);
        let record = latest.record?;
        let skip = self.delimiter_skip(&record);
        out.push(self.shape(record));
        skip
    }

    fn shape(&self, mut record: pb::ObjectRecord) -> pb::ObjectRecord {
        if self.headers_only {
            record.body = None;
            record.user_metadata.clear();
        }
        record
    }
}

fn writer_loop(db: Arc<Database>, mut rx: mpsc::UnboundedReceiver<Batch>) {
    while let Some(first) = rx.blocking_recv() {
        let mut batches = vec![first];
        while let Ok(more) = rx.try_recv() {
            batches.push(more);
        }
        match commit_batches(&db, &batches) {
            Ok(results) => {
                for (batch, result) in batches.into_iter().zip(results) {
                    let _ = batch.reply.send(Ok(result));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "index commit failed");
                for batch in batches {
                    let _ = batch.reply.send(Err(e.to_string()));
                }
            }
        }
    }
}

fn commit_batches(db: &Database, batches: &[Batch]) -> Result<Vec<Vec<OpResult>>, IndexError> {
    let txn = db.begin_write()?;
    let mut results = Vec::with_capacity(batches.len());
    {
        let mut objects = txn.open_table(OBJECTS)?;
        let mut refs = txn.open_table(REFS)?;
        let mut orphans = txn.open_table(ORPHANS)?;
        let now = cairn_proto::ids::now_ms();
        for batch in batches {
            let mut out = Vec::with_capacity(batch.ops.len());
            for op in &batch.ops {
                out.push(match op {
                    Op::StoreRecord(record) => {
                        OpResult::Stored(store_record(&mut objects, record)?)
                    }
                    Op::DeleteRecord {
                        bucket,
                        key,
                        version,
                    } => {
                        objects.remove(keys::record_key(bucket, key, version).as_slice())?;
                        OpResult::Done
                    }
                    Op::AddRef { block, owner } => {
                        let mut k = block.0.to_vec();
                        k.extend_from_slice(owner);
                        refs.insert(k.as_slice(), now)?;
                        orphans.remove(&block.0[..])?;
                        OpResult::Done
                    }
                    Op::DropRef { block, owner } => {
                        let mut k = block.0.to_vec();
                        k.extend_from_slice(owner);
                        refs.remove(k.as_slice())?;
                        let mut end = block.0.to_vec();
                        end.push(0xFF);
                        if refs.range(&block.0[..]..end.as_slice())?.next().is_none() {
                            orphans.insert(&block.0[..], now)?;
                        }
                        OpResult::Done
                    }
                    Op::ForgetOrphan { block } => {
                        orphans.remove(&block.0[..])?;
                        OpResult::Done
                    }
                });
            }
            results.push(out);
        }
    }
    txn.commit()?;
    Ok(results)
}

/// Stores `record` under the supersede rules (see `cairn_proto::versions`): a visible record
/// replaces the older visible versions it supersedes (they become garbage), unless a newer
/// visible version supersedes it, in which case the record itself is garbage. A purge
/// replaces its version in any state, and nothing re-stores a purged version. `uploading`
/// records are kept until they are flipped or expire. Re-storing the same version replaces
/// it unless [`replaces_same_version`] says the copy held is fresher.
fn store_record(
    objects: &mut redb::Table<&[u8], &[u8]>,
    record: &pb::ObjectRecord,
) -> Result<StoreOutcome, IndexError> {
    let bucket = bucket_of(record);
    let version = version_of(record);
    let mut existing = Vec::new();
    let prefix = keys::key_prefix(&bucket, &record.key);
    for entry in
        objects.range(prefix.as_slice()..keys::after_key(&bucket, &record.key).as_slice())?
    {
        let (_, v) = entry?;
        existing.push(decode(v.value())?);
    }
    let same = existing.iter().find(|r| version_of(r) == version);
    let previous = existing
        .iter()
        .filter(|r| is_visible(r) && version_of(r) != version)
        .max_by_key(|r| version_of(r))
        .cloned();
    let mut outcome = StoreOutcome {
        stored: true,
        previous,
        garbage: Vec::new(),
    };
    if same.is_some_and(is_purged) {
        outcome.stored = is_purged(record);
        if !is_purged(record) {
            outcome.garbage.push(record.clone());
        }
        return Ok(outcome);
    }
    if !is_purged(record) && same.is_some_and(|held| !replaces_same_version(held, record)) {
        outcome.stored = false;
        return Ok(outcome);
    }
    let own_key = keys::record_key(&bucket, &record.key, &version);
    if is_purged(record) {
        outcome.garbage.extend(same.cloned());
        objects.insert(
            own_key.as_slice(),
            summary_of(record).encode_to_vec().as_slice(),
        )?;
        return Ok(outcome);
    }
    if is_visible(record) {
        if existing
            .iter()
            .any(|r| is_visible(r) && supersedes(r, record))
        {
            // A newer version already won: this write is superseded on arrival.
            objects.remove(own_key.as_slice())?;
            outcome.stored = false;
            outcome.garbage.push(record.clone());
            return Ok(outcome);
        }
        for old in existing
            .iter()
            .filter(|r| is_visible(r) && supersedes(record, r))
        {
            objects.remove(keys::record_key(&bucket, &old.key, &version_of(old)).as_slice())?;
            outcome.garbage.push(old.clone());
        }
    }
    objects.insert(own_key.as_slice(), record.encode_to_vec().as_slice())?;
    Ok(outcome)
}

/// Whether `incoming` replaces `held`, a copy of the same version: a visible record is never
/// turned back into `uploading`, and never loses a newer tag edit to an older copy.
fn replaces_same_version(held: &pb::ObjectRecord, incoming: &pb::ObjectRecord) -> bool {
    (is_visible(incoming) || !is_visible(held))
        && record_freshness(incoming) >= record_freshness(held)
}

/// An empty index in a temp dir (kept while the dir lives) for tests.
#[cfg(test)]
pub(crate) fn test_index() -> (tempfile::TempDir, Index) {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("i.redb")).unwrap();
    (dir, index)
}

/// A bare record version for tests of the index and of code built on it.
#[cfg(test)]
pub(crate) fn test_record(
    bucket: Uuid,
    key: &str,
    hlc: u64,
    state: RecordState,
) -> pb::ObjectRecord {
    pb::ObjectRecord {
        bucket_id: bucket.as_bytes().to_vec(),
        key: key.into(),
        version: Some(
            VersionKey {
                hlc,
                ..Default::default()
            }
            .to_pb(),
        ),
        state: state as i32,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::test_record as rec;
    use super::*;

    #[tokio::test]
    async fn supersede_rules() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("i.redb")).unwrap();
        let b = Uuid::new_v4();
        index
            .store(rec(b, "k", 10, RecordState::Uploading))
            .await
            .unwrap();
        assert!(index.newest_visible(&b, "k").unwrap().is_none());
        let out = index
            .store(rec(b, "k", 10, RecordState::Complete))
            .await
            .unwrap();
        assert!(out.stored && out.previous.is_none() && out.garbage.is_empty());
        // Stale uploading re-store of a complete version is ignored.
        assert!(
            !index
                .store(rec(b, "k", 10, RecordState::Uploading))
                .await
                .unwrap()
                .stored
        );
        let out = index
            .store(rec(b, "k", 20, RecordState::Complete))
            .await
            .unwrap();
        assert_eq!(out.garbage.len(), 1);
        assert_eq!(version_of(&out.previous.unwrap()).hlc, 10);
        // An older write arriving late is garbage on arrival.
        let out = index
            .store(rec(b, "k", 15, RecordState::Complete))
            .await
            .unwrap();
        assert!(!out.stored && out.garbage.len() == 1);
        index
            .store(rec(b, "k", 30, RecordState::Tombstone))
            .await
            .unwrap();
        let newest = index.newest_visible(&b, "k").unwrap().unwrap();
        assert_eq!(newest.state(), RecordState::Tombstone);
        assert_eq!(index.versions(&b, "k").unwrap().len(), 1);
    }

    fn versioned(mut r: pb::ObjectRecord, null: bool) -> pb::ObjectRecord {
        r.versioned = true;
        r.null_version = null;
        r
    }

    #[tokio::test]
    async fn versioned_records_keep_older_versions_and_purges_stick() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("i.redb")).unwrap();
        let b = Uuid::new_v4();
        let stamp = |hlc| {
            VersionSelector::Id(VersionKey {
                hlc,
                ..Default::default()
            })
        };
        // An unversioned object, then versions while Enabled: all kept.
        index
            .store(rec(b, "k", 10, RecordState::Complete))
            .await
            .unwrap();
        for hlc in [20, 30] {
            let out = index
                .store(versioned(rec(b, "k", hlc, RecordState::Complete), false))
                .await
                .unwrap();
            assert!(out.stored && out.garbage.is_empty());
        }
        // A late older version is kept too (nothing supersedes it).
        let out = index
            .store(versioned(rec(b, "k", 25, RecordState::Complete), false))
            .await
            .unwrap();
        assert!(out.stored && out.garbage.is_empty());
        assert_eq!(index.versions(&b, "k").unwrap().len(), 4);
        // A Suspended write replaces only the null version (the unversioned one).
        let out = index
            .store(versioned(rec(b, "k", 40, RecordState::Complete), true))
            .await
            .unwrap();
        assert_eq!(out.garbage.len(), 1);
        assert_eq!(version_of(&out.garbage[0]).hlc, 10);
        let null = index
            .selected(&b, "k", VersionSelector::Null)
            .unwrap()
            .unwrap();
        assert_eq!(version_of(&null).hlc, 40);
        // Purging the newest version: reads fall back to the next one and report the purge.
        let mut purge = rec(b, "k", 40, RecordState::Purged);
        purge.versioned = true;
        let out = index.store(purge).await.unwrap();
        assert_eq!(out.garbage.len(), 1);
        let latest = index.latest(&b, "k").unwrap();
        assert_eq!(version_of(latest.record.as_ref().unwrap()).hlc, 30);
        assert_eq!(latest.purged.len(), 1);
        // A replica sending the purged version again cannot bring it back.
        let out = index
            .store(versioned(rec(b, "k", 40, RecordState::Complete), true))
            .await
            .unwrap();
        assert!(!out.stored && out.garbage.len() == 1);
        assert!(is_purged(
            &index.selected(&b, "k", stamp(40)).unwrap().unwrap()
        ));
        // Listings carry the purge before the newest visible version.
        let (listed, _) = index
            .list(&ListQuery {
                bucket: b,
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        let states: Vec<_> = listed
            .iter()
            .map(|r| (version_of(r).hlc, r.state()))
            .collect();
        assert_eq!(
            states,
            [(40, RecordState::Purged), (30, RecordState::Complete)]
        );
        // All versions, newest first, resuming inside the key.
        let all = ListQuery {
            bucket: b,
            limit: 10,
            all_versions: true,
            ..Default::default()
        };
        let hlcs = |q: &ListQuery| -> Vec<u64> {
            index
                .list(q)
                .unwrap()
                .0
                .iter()
                .map(|r| version_of(r).hlc)
                .collect()
        };
        assert_eq!(hlcs(&all), [40, 30, 25, 20]);
        let resumed = ListQuery {
            start_after: "k".into(),
            after_version: Some(VersionKey {
                hlc: 30,
                ..Default::default()
            }),
            ..all.clone()
        };
        assert_eq!(hlcs(&resumed), [25, 20]);
        let (page, cut) = index.list(&ListQuery { limit: 2, ..all }).unwrap();
        assert!(cut);
        assert_eq!(page.iter().filter(|r| is_visible(r)).count(), 2);
        // An unversioned write replaces every older version.
        let out = index
            .store(rec(b, "k", 50, RecordState::Complete))
            .await
            .unwrap();
        assert_eq!(out.garbage.len(), 3);
    }

    #[tokio::test]
    async fn newer_tag_edits_win_over_older_copies_of_a_version() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("i.redb")).unwrap();
        let b = Uuid::new_v4();
        let tagged = |stamp: Option<u64>, tag: &str| {
            let mut r = rec(b, "k", 10, RecordState::Complete);
            r.tags.insert("t".into(), tag.into());
            r.tags_stamp = stamp.map(|hlc| {
                VersionKey {
                    hlc,
                    ..Default::default()
                }
                .to_pb()
            });
            r
        };
        let tag_now = || {
            let r = index.newest_visible(&b, "k").unwrap().unwrap();
            r.tags.get("t").cloned().unwrap_or_default()
        };
        index.store(tagged(None, "written")).await.unwrap();
        assert!(index.store(tagged(Some(20), "edit2")).await.unwrap().stored);
        assert_eq!(tag_now(), "edit2");
        // An older edit, or the copy as first written, arriving late changes nothing.
        for late in [tagged(Some(15), "edit1"), tagged(None, "written")] {
            let out = index.store(late).await.unwrap();
            assert!(!out.stored && out.garbage.is_empty());
            assert_eq!(tag_now(), "edit2");
        }
        // Re-storing the same copy is idempotent; a newer edit replaces it.
        assert!(index.store(tagged(Some(20), "edit2")).await.unwrap().stored);
        assert!(index.store(tagged(Some(30), "edit3")).await.unwrap().stored);
        assert_eq!(tag_now(), "edit3");
        assert_eq!(index.versions(&b, "k").unwrap().len(), 1);
    }

    #[tokio::test]
    async fn list_with_prefix_delimiter_and_limit() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("i.redb")).unwrap();
        let b = Uuid::new_v4();
        for (i, k) in ["a/1", "a/2", "a/3", "b", "c/x", "d"].iter().enumerate() {
            index
                .store(rec(b, k, i as u64 + 1, RecordState::Complete))
                .await
                .unwrap();
        }
        index
            .store(rec(b, "b", 100, RecordState::Tombstone))
            .await
            .unwrap();
        index
            .store(rec(b, "e", 100, RecordState::Uploading))
            .await
            .unwrap();
        let names = |q: ListQuery| {
            let (r, t) = index.list(&q).unwrap();
            (r.iter().map(|r| r.key.clone()).collect::<Vec<_>>(), t)
        };
        let all = ListQuery {
            bucket: b,
            limit: 100,
            ..Default::default()
        };
        assert_eq!(names(all.clone()).0, ["a/1", "a/2", "a/3", "b", "c/x", "d"]);
        let delim = ListQuery {
            delimiter: "/".into(),
            ..all.clone()
        };
        assert_eq!(names(delim).0, ["a/1", "b", "c/x", "d"]);
        let page = ListQuery {
            limit: 2,
            start_after: "a/1".into(),
            ..all.clone()
        };
        assert_eq!(
            names(page),
            (vec!["a/2".to_string(), "a/3".to_string()], true)
        );
        let prefix = ListQuery {
            prefix: "a/".into(),
            start_after: "a/2".into(),
            ..all
        };
        assert_eq!(names(prefix), (vec!["a/3".to_string()], false));
    }

    #[tokio::test]
    async fn refs_and_orphans() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("i.redb")).unwrap();
        let block = BlockId::random();
        index
            .apply(vec![
                Op::AddRef {
                    block,
                    owner: b"x".to_vec(),
                },
                Op::AddRef {
                    block,
                    owner: b"y".to_vec(),
                },
            ])
            .await
            .unwrap();
        assert_eq!(index.ref_count(&block).unwrap(), 2);
        index
            .apply(vec![Op::DropRef {
                block,
                owner: b"x".to_vec(),
            }])
            .await
            .unwrap();
        assert!(index.orphans_before(i64::MAX, 10).unwrap().is_empty());
        index
            .apply(vec![Op::DropRef {
                block,
                owner: b"y".to_vec(),
            }])
            .await
            .unwrap();
        assert_eq!(index.orphans_before(i64::MAX, 10).unwrap(), vec![block]);
    }
}

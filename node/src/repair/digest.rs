//! The two index scans replicas are compared with: per-partition digests, and pages of record
//! summaries in given partitions. Both walk the index in key order and place each visible
//! record (complete or tombstone) by its object hash. Blocking: call from `spawn_blocking`.

use cairn_proto::ids::record_freshness;
use cairn_proto::pb;
use cairn_proto::ring::{Partition, find_partition, hash64, object_hash};
use tonic::Status;

use crate::store::index::{bucket_of, is_purged, is_visible, summary_of};
use crate::store::{Index, IndexError};

/// Most records one summaries page looks at, so a page over sparse partitions still returns
/// promptly (with a cursor to continue from).
const PAGE_SCAN_BUDGET: usize = 20_000;

/// The wire form of partitions.
pub fn to_ranges(parts: &[Partition]) -> Vec<pb::HashRange> {
    parts
        .iter()
        .map(|p| pb::HashRange {
            start: p.start,
            end: p.end,
        })
        .collect()
}

/// Partitions from their wire form; they must be sorted by end (as `to_ranges` sends them).
pub fn from_ranges(ranges: &[pb::HashRange]) -> Result<Vec<Partition>, Status> {
    if ranges.windows(2).any(|w| w[0].end >= w[1].end) {
        return Err(Status::invalid_argument("partitions must be sorted by end"));
    }
    Ok(ranges
        .iter()
        .map(|r| Partition {
            start: r.start,
            end: r.end,
        })
        .collect())
}

/// Which of `parts` a visible record falls in.
fn partition_of(parts: &[Partition], record: &pb::ObjectRecord) -> Option<usize> {
    if !is_visible(record) && !is_purged(record) {
        return None;
    }
    find_partition(parts, object_hash(&bucket_of(record), &record.key))
}

/// The identity of one record version: what two replicas must agree on (the stamp of its
/// last tag edit included, when it has one).
fn record_digest(record: &pb::ObjectRecord) -> u64 {
    let version = crate::store::index::version_of(record).to_bytes();
    let state = record.state.to_be_bytes();
    let mut parts: Vec<&[u8]> = vec![&record.bucket_id, record.key.as_bytes(), &version, &state];
    let edited = record_freshness(record).1.to_bytes();
    if record.tags_stamp.is_some() {
        parts.push(&edited);
    }
    hash64(&parts)
}

/// Digest and count of the visible records in each of `parts`.
pub fn digests(index: &Index, parts: &[Partition]) -> Result<Vec<pb::PartitionDigest>, IndexError> {
    let mut out = vec![pb::PartitionDigest::default(); parts.len()];
    index.scan(None, |_, record| {
        if let Some(i) = partition_of(parts, &record) {
            out[i].digest = out[i].digest.wrapping_add(record_digest(&record));
            out[i].count += 1;
        }
        true
    })?;
    Ok(out)
}

/// Up to `limit` summaries of the visible and purged records in `parts`, in index order after the cursor
/// `after` (empty = from the start), and the cursor to continue from (empty at the end).
pub fn summaries(
    index: &Index,
    parts: &[Partition],
    after: &[u8],
    limit: usize,
) -> Result<(Vec<pb::ObjectRecord>, Vec<u8>), IndexError> {
    let (mut out, mut next, mut looked) = (Vec::new(), Vec::new(), 0);
    index.scan((!after.is_empty()).then_some(after), |raw, record| {
        looked += 1;
        if partition_of(parts, &record).is_some() {
            out.push(summary_of(&record));
        }
        if out.len() >= limit || looked >= PAGE_SCAN_BUDGET {
            next = raw.to_vec();
            return false;
        }
        true
    })?;
    Ok((out, next))
}

#[cfg(test)]
mod tests {
    use cairn_proto::pb::RecordState;
    use uuid::Uuid;

    use super::*;
    use crate::store::index::test_record as rec;

    /// Two partitions splitting the ring in half.
    fn halves() -> Vec<Partition> {
        let mid = u64::MAX / 2;
        vec![
            Partition {
                start: u64::MAX,
                end: mid,
            },
            Partition {
                start: mid,
                end: u64::MAX,
            },
        ]
    }

    #[tokio::test]
    async fn digests_see_visible_records_and_summaries_page_through_them() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            Index::open(&dir.path().join("a.redb")).unwrap(),
            Index::open(&dir.path().join("b.redb")).unwrap(),
        );
        let bucket = Uuid::new_v4();
        for i in 0..50 {
            let r = rec(bucket, &format!("k{i}"), 10, RecordState::Complete);
            a.store(r.clone()).await.unwrap();
            b.store(r).await.unwrap();
        }
        // Invisible records do not count.
        a.store(rec(bucket, "up", 10, RecordState::Uploading))
            .await
            .unwrap();
        let parts = halves();
        assert_eq!(digests(&a, &parts).unwrap(), digests(&b, &parts).unwrap());
        let total: u64 = digests(&a, &parts).unwrap().iter().map(|d| d.count).sum();
        assert_eq!(total, 50);

        // A newer version (here a tombstone) changes exactly one partition's digest.
        b.store(rec(bucket, "k7", 20, RecordState::Tombstone))
            .await
            .unwrap();
        let (da, db) = (digests(&a, &parts).unwrap(), digests(&b, &parts).unwrap());
        let differing: Vec<usize> = (0..2).filter(|i| da[*i] != db[*i]).collect();
        assert_eq!(differing.len(), 1);
        assert_eq!(da[differing[0]].count, db[differing[0]].count);

        // Pages of 7 cover exactly the records of the differing partition.
        let wanted = &parts[differing[0]..=differing[0]];
        let (mut seen, mut after) = (Vec::new(), Vec::new());
        loop {
            let (page, next) = summaries(&b, wanted, &after, 7).unwrap();
            assert!(page.len() <= 7);
            assert!(page.iter().all(|r| r.body.is_none()));
            seen.extend(page);
            if next.is_empty() {
                break;
            }
            after = next;
        }
        assert_eq!(seen.len() as u64, db[differing[0]].count);
        let k7 = seen.iter().find(|r| r.key == "k7").expect("k7 summarized");
        assert_eq!(k7.state(), RecordState::Tombstone);
    }

    #[tokio::test]
    async fn a_tag_edit_changes_the_digest_and_shows_in_summaries() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            Index::open(&dir.path().join("a.redb")).unwrap(),
            Index::open(&dir.path().join("b.redb")).unwrap(),
        );
        let bucket = Uuid::new_v4();
        let r = rec(bucket, "k", 10, RecordState::Complete);
        a.store(r.clone()).await.unwrap();
        b.store(r.clone()).await.unwrap();
        let parts = halves();
        assert_eq!(digests(&a, &parts).unwrap(), digests(&b, &parts).unwrap());
        let mut edited = r;
        edited.tags.insert("t".into(), "v".into());
        edited.tags_stamp = Some(
            cairn_proto::VersionKey {
                hlc: 11,
                ..Default::default()
            }
            .to_pb(),
        );
        b.store(edited.clone()).await.unwrap();
        assert_ne!(digests(&a, &parts).unwrap(), digests(&b, &parts).unwrap());
        let (page, _) = summaries(&b, &parts, &[], 10).unwrap();
        assert_eq!(page[0].tags_stamp, edited.tags_stamp);
        a.store(edited).await.unwrap();
        assert_eq!(digests(&a, &parts).unwrap(), digests(&b, &parts).unwrap());
    }
}

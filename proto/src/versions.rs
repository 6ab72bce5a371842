//! Bucket versioning on object records: which versions a write replaces, S3 version ids, and
//! merging replicas' answers in the presence of versions deleted for good (`PURGED`).
//!
//! Records are keyed (bucket, key, version) in every bucket; versioning only decides which
//! older versions a new visible record replaces:
//! - unversioned (`versioned` unset): every older version;
//! - versioning Enabled: none — every version is kept until deleted by id;
//! - versioning Suspended (`null_version`): the previous null version only.

use crate::ids::VersionKey;
use crate::pb::{self, RecordState};

/// The S3 version id of the null version.
pub const NULL_VERSION_ID: &str = "null";

/// The version of a record (the default key when it carries none).
pub fn version_key(r: &pb::ObjectRecord) -> VersionKey {
    r.version
        .as_ref()
        .and_then(VersionKey::from_pb)
        .unwrap_or_default()
}

/// Whether a record is the null version of its key (S3 `versionId=null`).
pub fn is_null_version(r: &pb::ObjectRecord) -> bool {
    !r.versioned || r.null_version
}

/// Whether a record is visible to reads (complete or tombstone / delete marker).
pub fn is_visible(r: &pb::ObjectRecord) -> bool {
    matches!(r.state(), RecordState::Complete | RecordState::Tombstone)
}

/// Whether a record marks a version deleted for good.
pub fn is_purged(r: &pb::ObjectRecord) -> bool {
    r.state() == RecordState::Purged
}

/// Whether a record is a delete marker of a versioned bucket (kept, listed as a version).
pub fn is_delete_marker(r: &pb::ObjectRecord) -> bool {
    r.state() == RecordState::Tombstone && r.versioned
}

/// Whether the visible record `newer` replaces the visible record `older` of the same key.
pub fn supersedes(newer: &pb::ObjectRecord, older: &pb::ObjectRecord) -> bool {
    version_key(newer) > version_key(older)
        && (!newer.versioned || (is_null_version(newer) && is_null_version(older)))
}

/// The record that deletes `record`'s version for good (DELETE ?versionId=).
pub fn purge_of(record: &pb::ObjectRecord) -> pb::ObjectRecord {
    pb::ObjectRecord {
        bucket_id: record.bucket_id.clone(),
        key: record.key.clone(),
        version: record.version.clone(),
        state: RecordState::Purged as i32,
        versioned: record.versioned,
        null_version: record.null_version,
        ..Default::default()
    }
}

/// The S3 version id a record is shown with: "null" for null versions.
pub fn version_id(r: &pb::ObjectRecord) -> String {
    if is_null_version(r) {
        NULL_VERSION_ID.to_string()
    } else {
        version_key(r).to_version_id()
    }
}

/// The `x-amz-version-id` header value for a record, if its bucket has versioning
/// (unversioned buckets send none).
pub fn version_header(r: &pb::ObjectRecord) -> Option<String> {
    r.versioned.then(|| version_id(r))
}

/// A version asked for by an S3 client (`versionId=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionSelector {
    /// The null version.
    Null,
    /// One stamped version.
    Id(VersionKey),
}

impl VersionSelector {
    /// Parses a `versionId` value; `None` when it is not a version id Cairn could have made.
    pub fn parse(s: &str) -> Option<Self> {
        if s == NULL_VERSION_ID {
            Some(Self::Null)
        } else {
            VersionKey::from_version_id(s).map(Self::Id)
        }
    }

    /// Whether `r` is the version selected.
    pub fn selects(&self, r: &pb::ObjectRecord) -> bool {
        match self {
            Self::Null => is_null_version(r),
            Self::Id(v) => version_key(r) == *v && !is_null_version(r),
        }
    }
}

/// Merges replicas' answers for one key: the newest record that no replica reports as
/// purged. A replica that missed a purge still holds the purged version; any replica that
/// saw the purge reports it, and a read quorum always includes one.
#[derive(Debug, Default)]
pub struct NewestMerge {
    newest: Vec<pb::ObjectRecord>,
    purged: Vec<VersionKey>,
}

impl NewestMerge {
    /// Adds one replica's answer: its record (if any) and the versions it has purged.
    pub fn add(&mut self, record: Option<pb::ObjectRecord>, purged: &[pb::Version]) {
        self.newest.extend(record);
        self.purged
            .extend(purged.iter().filter_map(VersionKey::from_pb));
    }

    /// The versions some replica reported purged.
    pub fn purged(&self) -> &[VersionKey] {
        &self.purged
    }

    /// The winner so far: the freshest copy (version, then tag edits) not purged.
    pub fn newest(&self) -> Option<&pb::ObjectRecord> {
        self.newest
            .iter()
            .filter(|r| !self.purged.contains(&version_key(r)))
            .max_by_key(|r| crate::ids::record_freshness(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(hlc: u64, versioned: bool, null: bool) -> pb::ObjectRecord {
        pb::ObjectRecord {
            version: Some(
                VersionKey {
                    hlc,
                    ..Default::default()
                }
                .to_pb(),
            ),
            state: RecordState::Complete as i32,
            versioned,
            null_version: null,
            ..Default::default()
        }
    }

    #[test]
    fn supersede_by_versioning_mode() {
        let plain = |h| rec(h, false, false);
        let enabled = |h| rec(h, true, false);
        let suspended = |h| rec(h, true, true);
        assert!(supersedes(&plain(2), &plain(1)));
        assert!(supersedes(&plain(2), &enabled(1)));
        assert!(!supersedes(&plain(1), &plain(2)));
        assert!(!supersedes(&enabled(2), &plain(1)));
        assert!(!supersedes(&enabled(2), &enabled(1)));
        assert!(supersedes(&suspended(3), &plain(1)));
        assert!(supersedes(&suspended(3), &suspended(2)));
        assert!(!supersedes(&suspended(3), &enabled(2)));
    }

    #[test]
    fn version_ids_round_trip_and_null() {
        let r = rec(7, true, false);
        let id = version_id(&r);
        assert_eq!(
            VersionSelector::parse(&id),
            Some(VersionSelector::Id(version_key(&r)))
        );
        assert!(VersionSelector::parse(&id).unwrap().selects(&r));
        assert_eq!(version_id(&rec(7, false, false)), "null");
        assert_eq!(version_header(&rec(7, false, false)), None);
        assert_eq!(version_header(&rec(7, true, true)).as_deref(), Some("null"));
        assert!(VersionSelector::Null.selects(&rec(7, true, true)));
        assert!(!VersionSelector::Null.selects(&r));
        assert_eq!(VersionSelector::parse("zz"), None);
    }

    #[test]
    fn merge_drops_versions_any_replica_purged() {
        let (v2, v3) = (rec(2, true, false), rec(3, true, false));
        let mut m = NewestMerge::default();
        m.add(Some(v3.clone()), &[]);
        m.add(Some(v2.clone()), &[v3.version.clone().unwrap()]);
        assert_eq!(m.newest(), Some(&v2));
        let mut m = NewestMerge::default();
        m.add(Some(v2), &[]);
        m.add(Some(v3.clone()), &[]);
        assert_eq!(m.newest(), Some(&v3));
    }
}

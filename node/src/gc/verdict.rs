//! What the reference audit concludes about the owner of an old block reference from what
//! it could learn: pure decisions. A reference is dropped only on proof that its owner is
//! gone; anything unknown keeps it for a later pass.

use cairn_proto::VersionKey;
use cairn_proto::pb::{self, RecordState};
use uuid::Uuid;

/// What one replica of a key said about one object version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaAnswer {
    /// No answer (unreachable, an error, a timeout, a layout mismatch): it may hold it.
    Unknown,
    /// It holds no record of the version.
    Absent,
    /// It holds the version's purge: the version is deleted for good there.
    Purged,
    /// It holds the version: complete, `uploading`, or a tombstone / delete marker.
    Holds,
}

impl ReplicaAnswer {
    /// The answer of a replica that holds a record of the version in `state`, or none.
    pub fn from_state(state: Option<RecordState>) -> Self {
        match state {
            None => Self::Absent,
            Some(RecordState::Purged) => Self::Purged,
            Some(_) => Self::Holds,
        }
    }
}

/// Keep or drop a reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    Drop,
}

/// The verdict on a reference owned by an object version, from the answers of every replica
/// of its key in every active layout: drop only when there are answers, all of them, and
/// none holds the version (a purge counts as gone). A quorum is never enough: the replica
/// that did not answer may be the one holding the version.
pub fn object_verdict(answers: &[ReplicaAnswer]) -> Verdict {
    let gone = |a: &ReplicaAnswer| matches!(a, ReplicaAnswer::Absent | ReplicaAnswer::Purged);
    if !answers.is_empty() && answers.iter().all(gone) {
        Verdict::Drop
    } else {
        Verdict::Keep
    }
}

/// The verdict on a reference owned by a multipart part, from whether the replicated
/// metadata (read linearizably) still lists its upload — `None` when it could not be read.
/// A completed upload is removed from the metadata once the object holds its own references.
pub fn upload_verdict(upload_listed: Option<bool>) -> Verdict {
    match upload_listed {
        Some(false) => Verdict::Drop,
        Some(true) | None => Verdict::Keep,
    }
}

/// One object version owning references.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectVersion {
    pub bucket: Uuid,
    pub key: String,
    pub version: VersionKey,
}

/// Who owns a reference, as the audit looks it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// An object version.
    Object(ObjectVersion),
    /// A multipart upload (by upload id).
    Upload(String),
    /// Nothing the audit understands: always kept.
    Unknown,
}

impl Owner {
    /// Decodes an encoded `BlockOwner`. A part's owner id is `<upload>/<part>/<attempt>`
    /// (see `part_owner_id`); the audit asks about the upload.
    pub fn decode(raw: &[u8]) -> Self {
        use pb::block_owner::Owner as Wire;
        let owner = <pb::BlockOwner as prost::Message>::decode(raw)
            .ok()
            .and_then(|o| o.owner);
        match owner {
            Some(Wire::Object(o)) => {
                let parsed = Uuid::from_slice(&o.bucket_id)
                    .ok()
                    .zip(o.version.as_ref().and_then(VersionKey::from_pb));
                match parsed {
                    Some((bucket, version)) => Self::Object(ObjectVersion {
                        bucket,
                        key: o.key,
                        version,
                    }),
                    None => Self::Unknown,
                }
            }
            Some(Wire::UploadId(id)) if !id.is_empty() => {
                Self::Upload(id.split('/').next().unwrap_or_default().to_string())
            }
            _ => Self::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ReplicaAnswer::*;
    use super::*;
    use cairn_proto::meta::part_owner_id;
    use prost::Message;

    #[test]
    fn object_references_go_only_when_every_replica_answered_without_the_version() {
        assert_eq!(object_verdict(&[Absent, Absent, Absent]), Verdict::Drop);
        assert_eq!(object_verdict(&[Absent, Purged, Absent]), Verdict::Drop);
        assert_eq!(object_verdict(&[Purged, Purged, Purged]), Verdict::Drop);
        // One replica unreachable: it may hold the version.
        assert_eq!(object_verdict(&[Absent, Absent, Unknown]), Verdict::Keep);
        assert_eq!(object_verdict(&[Unknown, Unknown, Unknown]), Verdict::Keep);
        // Any replica holding it in any state (a lagging one that missed a purge too).
        assert_eq!(object_verdict(&[Absent, Holds, Absent]), Verdict::Keep);
        assert_eq!(object_verdict(&[Purged, Holds, Purged]), Verdict::Keep);
        // No replica to ask (no layout yet) proves nothing.
        assert_eq!(object_verdict(&[]), Verdict::Keep);
        // A transition: the old and new replica sets together (five nodes).
        assert_eq!(
            object_verdict(&[Absent, Absent, Absent, Absent, Unknown]),
            Verdict::Keep
        );
    }

    #[test]
    fn every_record_state_counts_as_held_except_a_purge() {
        assert_eq!(ReplicaAnswer::from_state(None), Absent);
        assert_eq!(ReplicaAnswer::from_state(Some(RecordState::Purged)), Purged);
        for state in [
            RecordState::Uploading,
            RecordState::Complete,
            RecordState::Tombstone,
            RecordState::Unspecified,
        ] {
            assert_eq!(ReplicaAnswer::from_state(Some(state)), Holds, "{state:?}");
        }
    }

    #[test]
    fn upload_references_go_once_the_upload_is_gone_from_the_metadata() {
        assert_eq!(upload_verdict(Some(false)), Verdict::Drop);
        assert_eq!(upload_verdict(Some(true)), Verdict::Keep);
        // Metadata unreadable (no Raft leader): keep.
        assert_eq!(upload_verdict(None), Verdict::Keep);
    }

    #[test]
    fn owners_decode_to_what_the_audit_asks_about() {
        let encode = |owner| pb::BlockOwner { owner: Some(owner) }.encode_to_vec();
        let part = part_owner_id("0193abcUPLOAD", 7, "attempt");
        assert_eq!(
            Owner::decode(&encode(pb::block_owner::Owner::UploadId(part))),
            Owner::Upload("0193abcUPLOAD".into())
        );
        let version = ObjectVersion {
            bucket: Uuid::from_u128(1),
            key: "k".into(),
            version: VersionKey {
                hlc: 42,
                node_id: [2; 16],
                uuid: [3; 16],
            },
        };
        let wire = pb::ObjectVersionRef {
            bucket_id: version.bucket.as_bytes().to_vec(),
            key: version.key.clone(),
            version: Some(version.version.to_pb()),
        };
        assert_eq!(
            Owner::decode(&encode(pb::block_owner::Owner::Object(wire.clone()))),
            Owner::Object(version)
        );
        let unversioned = pb::ObjectVersionRef {
            version: None,
            ..wire.clone()
        };
        let bad_bucket = pb::ObjectVersionRef {
            bucket_id: vec![1; 3],
            ..wire
        };
        for raw in [
            encode(pb::block_owner::Owner::Object(unversioned)),
            encode(pb::block_owner::Owner::Object(bad_bucket)),
            encode(pb::block_owner::Owner::UploadId(String::new())),
            pb::BlockOwner::default().encode_to_vec(),
            b"\xff\xff not protobuf".to_vec(),
        ] {
            assert_eq!(Owner::decode(&raw), Owner::Unknown);
        }
    }
}

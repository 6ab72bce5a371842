//! Multipart uploads in the replicated metadata: the upload (its key, the headers of the
//! future object) and its parts (size, ETag, checksums and the blocks holding the data).
//!
//! Part data lives in blocks owned by [`Part::owner_id`] (`<upload>/<part>/<attempt>`), so a
//! re-uploaded part never shares references with the attempt it replaces. The state machine
//! only records which attempt is current; whoever replaces or removes a part drops the block
//! references of the attempt that went away.
//!
//! A deleted bucket takes its in-progress uploads with it (as AWS): the gateway aborts them
//! (dropping their block references) before it deletes the bucket, and the state machine
//! forgets any that raced in.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{MetaError, MetaResult, Metadata};
use crate::pb;

/// Highest part number S3 allows.
pub const MAX_PART_NUMBER: u32 = 10_000;

/// An in-progress multipart upload.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Upload {
    /// Random, URL-safe upload id.
    pub id: String,
    pub bucket_id: Uuid,
    pub key: String,
    pub initiated_ms: i64,
    /// Access key id of the initiator.
    pub owner: String,
    /// Headers and metadata the completed object will carry.
    pub template: ObjectTemplate,
    /// Parts by number; a re-uploaded part replaces the earlier one.
    pub parts: BTreeMap<u32, Part>,
    /// Set in the copy `CompleteUpload` returns.
    pub completed: bool,
}

/// What CreateMultipartUpload said about the object to be.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ObjectTemplate {
    pub content_type: String,
    /// Stored standard headers (cache-control, content-disposition, ...).
    pub headers: BTreeMap<String, String>,
    /// x-amz-meta-* without the prefix.
    pub user_metadata: BTreeMap<String, String>,
    /// `x-amz-checksum-algorithm` (CRC32, CRC32C, SHA1, SHA256, CRC64NVME), if any.
    pub checksum_algorithm: Option<String>,
    /// `x-amz-checksum-type` (COMPOSITE or FULL_OBJECT), when an algorithm is set.
    pub checksum_type: Option<String>,
    /// Object tags (`x-amz-tagging`).
    pub tags: BTreeMap<String, String>,
}

/// One uploaded part.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Part {
    pub number: u32,
    /// Quoted MD5 of the part data, as S3 returns it.
    pub etag: String,
    pub size: u64,
    /// Checksums of the part data: algorithm name → base64 value.
    pub checksums: BTreeMap<String, String>,
    /// The blocks holding the part data, in order.
    pub blocks: Vec<PartBlock>,
    /// Random uuid of this upload attempt of the part.
    pub attempt: String,
    pub last_modified_ms: i64,
}

/// A block of a part.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct PartBlock {
    /// Block id, lower-case hex.
    pub id: String,
    pub size: u64,
}

impl Part {
    /// The block owner id (`BlockOwner.upload_id`) of this part attempt's blocks.
    pub fn owner_id(&self, upload_id: &str) -> String {
        part_owner_id(upload_id, self.number, &self.attempt)
    }
}

impl Part {
    /// The block references this part attempt holds (owner `<upload>/<part>/<attempt>`):
    /// what replacing or dropping the attempt releases.
    pub fn block_refs(&self, upload_id: &str) -> Vec<pb::BlockRefEntry> {
        let owner = pb::BlockOwner {
            owner: Some(pb::block_owner::Owner::UploadId(self.owner_id(upload_id))),
        };
        self.blocks
            .iter()
            .filter_map(|b| hex::decode(&b.id).ok())
            .map(|id| pb::BlockRefEntry {
                block_id: id,
                owner: Some(owner.clone()),
            })
            .collect()
    }
}

impl Upload {
    /// The block references of every current part: what aborting the upload releases.
    pub fn block_refs(&self) -> Vec<pb::BlockRefEntry> {
        self.parts
            .values()
            .flat_map(|p| p.block_refs(&self.id))
            .collect()
    }
}

/// The block owner id of the blocks of one attempt of one part: `<upload>/<part>/<attempt>`.
pub fn part_owner_id(upload_id: &str, number: u32, attempt: &str) -> String {
    format!("{upload_id}/{number}/{attempt}")
}

impl Metadata {
    pub(super) fn create_upload(&mut self, upload: &Upload) -> Result<MetaResult, MetaError> {
        if self.bucket_by_id(&upload.bucket_id).is_none() {
            return Err(MetaError::NoSuchBucket(upload.bucket_id.to_string()));
        }
        if upload.id.is_empty() || self.uploads.contains_key(&upload.id) {
            return Err(MetaError::Invalid(format!(
                "upload id {:?} is empty or taken",
                upload.id
            )));
        }
        let upload = Upload {
            parts: BTreeMap::new(),
            completed: false,
            ..upload.clone()
        };
        self.uploads.insert(upload.id.clone(), upload.clone());
        Ok(MetaResult::Upload(upload))
    }

    pub(super) fn put_part(
        &mut self,
        upload_id: &str,
        part: &Part,
    ) -> Result<MetaResult, MetaError> {
        if !(1..=MAX_PART_NUMBER).contains(&part.number) {
            return Err(MetaError::Invalid(format!(
                "part number {} out of range",
                part.number
            )));
        }
        let upload = self.live_upload(upload_id)?;
        Ok(MetaResult::Part(
            upload.parts.insert(part.number, part.clone()),
        ))
    }

    pub(super) fn complete_upload(&mut self, upload_id: &str) -> Result<MetaResult, MetaError> {
        self.live_upload(upload_id)?.completed = true;
        let upload = self
            .uploads
            .remove(upload_id)
            .ok_or_else(|| MetaError::NoSuchUpload(upload_id.into()))?;
        Ok(MetaResult::Upload(upload))
    }

    pub(super) fn abort_upload(&mut self, upload_id: &str) -> Result<MetaResult, MetaError> {
        self.live_upload(upload_id)?;
        let upload = self
            .uploads
            .remove(upload_id)
            .ok_or_else(|| MetaError::NoSuchUpload(upload_id.into()))?;
        Ok(MetaResult::Upload(upload))
    }

    /// Forgets the uploads of a bucket that is being deleted.
    pub(super) fn forget_uploads_of(&mut self, bucket_id: &Uuid) {
        self.uploads.retain(|_, u| u.bucket_id != *bucket_id);
    }

    fn live_upload(&mut self, upload_id: &str) -> Result<&mut Upload, MetaError> {
        self.uploads
            .get_mut(upload_id)
            .filter(|u| !u.completed)
            .ok_or_else(|| MetaError::NoSuchUpload(upload_id.into()))
    }

    /// The in-progress upload with this id, if any.
    pub fn upload(&self, upload_id: &str) -> Option<&Upload> {
        self.uploads.get(upload_id).filter(|u| !u.completed)
    }
}

#[cfg(test)]
mod tests {
    use super::super::MetaCommand;
    use super::*;

    fn with_bucket() -> (Metadata, Uuid) {
        let mut m = Metadata::default();
        let id = Uuid::new_v4();
        let created = m.apply(&MetaCommand::CreateBucket {
            id,
            name: "b".into(),
            owner: String::new(),
            region: String::new(),
            created_ms: 0,
        });
        assert!(matches!(created, MetaResult::Bucket(_)));
        (m, id)
    }

    fn upload(id: &str, bucket_id: Uuid) -> Upload {
        Upload {
            id: id.into(),
            bucket_id,
            key: "k".into(),
            initiated_ms: 5,
            owner: "a".into(),
            ..Default::default()
        }
    }

    fn part(number: u32, attempt: &str) -> Part {
        Part {
            number,
            etag: format!("\"{attempt}\""),
            size: 10,
            blocks: vec![PartBlock {
                id: format!("{attempt}00"),
                size: 10,
            }],
            attempt: attempt.into(),
            ..Default::default()
        }
    }

    fn no_such_upload(id: &str) -> MetaResult {
        MetaResult::Err(MetaError::NoSuchUpload(id.into()))
    }

    #[test]
    fn create_needs_a_bucket_and_a_fresh_id() {
        let (mut m, bucket) = with_bucket();
        let other = Uuid::new_v4();
        assert!(matches!(
            m.apply(&MetaCommand::CreateUpload {
                upload: upload("u1", other)
            }),
            MetaResult::Err(MetaError::NoSuchBucket(_))
        ));
        let mut u = upload("u1", bucket);
        u.parts.insert(1, part(1, "smuggled"));
        let MetaResult::Upload(created) = m.apply(&MetaCommand::CreateUpload { upload: u.clone() })
        else {
            panic!()
        };
        assert!(
            created.parts.is_empty(),
            "a new upload starts without parts"
        );
        assert_eq!(m.upload("u1"), Some(&created));
        assert!(matches!(
            m.apply(&MetaCommand::CreateUpload { upload: u }),
            MetaResult::Err(MetaError::Invalid(_))
        ));
        assert!(matches!(
            m.apply(&MetaCommand::CreateUpload {
                upload: upload("", bucket)
            }),
            MetaResult::Err(MetaError::Invalid(_))
        ));
    }

    #[test]
    fn put_part_replaces_and_returns_the_replaced_attempt() {
        let (mut m, bucket) = with_bucket();
        m.apply(&MetaCommand::CreateUpload {
            upload: upload("u", bucket),
        });
        let put = |m: &mut Metadata, p: Part| {
            m.apply(&MetaCommand::PutPart {
                upload_id: "u".into(),
                part: p,
            })
        };
        assert_eq!(put(&mut m, part(2, "a")), MetaResult::Part(None));
        assert_eq!(put(&mut m, part(1, "b")), MetaResult::Part(None));
        assert_eq!(
            put(&mut m, part(2, "c")),
            MetaResult::Part(Some(part(2, "a")))
        );
        let parts = &m.uploads["u"].parts;
        assert_eq!(parts.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(parts[&2].attempt, "c");
        assert_eq!(parts[&2].owner_id("u"), "u/2/c");
        for bad in [0, MAX_PART_NUMBER + 1] {
            assert!(
                matches!(
                    put(&mut m, part(bad, "x")),
                    MetaResult::Err(MetaError::Invalid(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(
            m.apply(&MetaCommand::PutPart {
                upload_id: "nope".into(),
                part: part(1, "x")
            }),
            no_such_upload("nope")
        );
    }

    #[test]
    fn complete_and_abort_remove_the_upload_once() {
        let (mut m, bucket) = with_bucket();
        for id in ["c", "a"] {
            m.apply(&MetaCommand::CreateUpload {
                upload: upload(id, bucket),
            });
            m.apply(&MetaCommand::PutPart {
                upload_id: id.into(),
                part: part(1, "x"),
            });
        }
        let MetaResult::Upload(done) = m.apply(&MetaCommand::CompleteUpload {
            upload_id: "c".into(),
        }) else {
            panic!()
        };
        assert!(done.completed);
        assert_eq!(done.parts[&1], part(1, "x"));
        assert!(m.upload("c").is_none());
        assert_eq!(
            m.apply(&MetaCommand::CompleteUpload {
                upload_id: "c".into()
            }),
            no_such_upload("c")
        );
        assert_eq!(
            m.apply(&MetaCommand::AbortUpload {
                upload_id: "c".into()
            }),
            no_such_upload("c")
        );
        assert_eq!(
            m.apply(&MetaCommand::PutPart {
                upload_id: "c".into(),
                part: part(2, "y")
            }),
            no_such_upload("c")
        );

        let MetaResult::Upload(aborted) = m.apply(&MetaCommand::AbortUpload {
            upload_id: "a".into(),
        }) else {
            panic!()
        };
        assert!(!aborted.completed);
        assert_eq!(aborted.parts.len(), 1);
        assert_eq!(
            m.apply(&MetaCommand::AbortUpload {
                upload_id: "a".into()
            }),
            no_such_upload("a")
        );
        assert_eq!(
            m.apply(&MetaCommand::CompleteUpload {
                upload_id: "a".into()
            }),
            no_such_upload("a")
        );
        assert!(m.uploads.is_empty());
    }

    #[test]
    fn deleting_the_bucket_forgets_its_uploads() {
        let (mut m, bucket) = with_bucket();
        m.apply(&MetaCommand::CreateUpload {
            upload: upload("u", bucket),
        });
        assert_eq!(
            m.apply(&MetaCommand::DeleteBucket {
                name: "b".into(),
                id: None
            }),
            MetaResult::Ok
        );
        assert!(m.uploads.is_empty());
    }

    #[test]
    fn uploads_survive_a_json_round_trip() {
        let (mut m, bucket) = with_bucket();
        let mut u = upload("u", bucket);
        u.template.checksum_algorithm = Some("CRC32".into());
        m.apply(&MetaCommand::CreateUpload { upload: u });
        let mut p = part(7, "z");
        p.checksums.insert("CRC32".into(), "DUoRhQ==".into());
        m.apply(&MetaCommand::PutPart {
            upload_id: "u".into(),
            part: p,
        });
        let json = serde_json::to_vec(&m).unwrap();
        let back: Metadata = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, m);
        // State written before uploads existed still loads.
        let old: Metadata = serde_json::from_str(r#"{"buckets":{},"keys":{}}"#).unwrap();
        assert!(old.uploads.is_empty());
    }
}

//! The replicated metadata held by the Raft group: buckets, access keys and the ring
//! layout (multipart uploads, CORS and website configuration slot in beside them).
//!
//! [`Metadata::apply`] is the deterministic state-machine transition every Raft member runs
//! for each committed [`MetaCommand`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

mod cors;
mod layout;
mod lifecycle;
mod upload;
mod website;

pub use cors::{CorsConfig, CorsRule};
pub use layout::{RebalanceControl, StagedLayout, StagedNode};
pub use lifecycle::{
    Expiration, FilterForm, InvalidLifecycle, InvalidLifecycleKind, LifecycleConfig,
    LifecycleFilter, LifecycleRule, MAX_LIFECYCLE_RULES, MAX_RULE_ID_LEN, NoncurrentExpiration,
};
pub use upload::{MAX_PART_NUMBER, ObjectTemplate, Part, PartBlock, Upload, part_owner_id};
pub use website::{
    Condition, InvalidKind, InvalidWebsite, Protocol, Redirect, RedirectAll, RoutingRule,
    WebsiteConfig,
};

/// The whole metadata state.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Metadata {
    /// Buckets by name.
    pub buckets: BTreeMap<String, Bucket>,
    /// Access keys by access key id.
    pub keys: BTreeMap<String, AccessKey>,
    pub layout: Layout,
    /// In-progress multipart uploads by upload id.
    #[serde(default)]
    pub uploads: BTreeMap<String, Upload>,
    /// Nodes that joined the cluster (in the ring or not), with address, zone and weight.
    #[serde(default)]
    pub nodes: BTreeMap<Uuid, LayoutNode>,
    /// Layout changes staged by `cairn layout add/remove`, committed by `layout apply`.
    #[serde(default)]
    pub staged: StagedLayout,
    /// Older layout versions still active while data moves to `layout` (oldest first;
    /// empty outside transitions). See [`Metadata::layout_synced`].
    #[serde(default)]
    pub layout_history: Vec<Layout>,
    /// Per node: the newest layout version for which it holds everything it should.
    #[serde(default)]
    pub layout_synced: BTreeMap<Uuid, u64>,
    /// Operator controls of transition data movement (pause, rate limit).
    #[serde(default)]
    pub rebalance: RebalanceControl,
}

/// A bucket. Object records are keyed by `id`, never by name.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Bucket {
    pub id: Uuid,
    pub name: String,
    pub created_ms: i64,
    /// Access key id of the creator (empty when created by an administrator).
    pub owner: String,
    pub region: String,
    /// CORS rules (PutBucketCors), if any.
    #[serde(default)]
    pub cors: Option<CorsConfig>,
    /// Static-website configuration; the website endpoint serves only buckets that have one.
    #[serde(default)]
    pub website: Option<WebsiteConfig>,
    /// Lifecycle rules (PutBucketLifecycleConfiguration), if any.
    #[serde(default)]
    pub lifecycle: Option<LifecycleConfig>,
    /// Versioning status (PutBucketVersioning); `None` until first enabled, after which a
    /// bucket can only be suspended, never unversioned again.
    #[serde(default)]
    pub versioning: Option<BucketVersioning>,
    /// Bucket tags (PutBucketTagging); empty when it has none.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// A bucket's versioning status, as S3 names it.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum BucketVersioning {
    Enabled,
    Suspended,
}

impl Bucket {
    /// The versioning flags of a record written into this bucket now: (`versioned`,
    /// `null_version`); see `ObjectRecord`.
    pub fn record_versioning(&self) -> (bool, bool) {
        match self.versioning {
            None => (false, false),
            Some(BucketVersioning::Enabled) => (true, false),
            Some(BucketVersioning::Suspended) => (true, true),
        }
    }
}

/// What a key may do in one bucket.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Rights {
    pub read: bool,
    pub write: bool,
    pub owner: bool,
}

impl Rights {
    pub const ALL: Rights = Rights {
        read: true,
        write: true,
        owner: true,
    };

    /// Adds the rights set in `other`.
    pub fn union(self, other: Rights) -> Rights {
        Rights {
            read: self.read || other.read,
            write: self.write || other.write,
            owner: self.owner || other.owner,
        }
    }

    /// Removes the rights set in `other`.
    pub fn minus(self, other: Rights) -> Rights {
        Rights {
            read: self.read && !other.read,
            write: self.write && !other.write,
            owner: self.owner && !other.owner,
        }
    }

    pub fn is_empty(&self) -> bool {
        !(self.read || self.write || self.owner)
    }
}

/// An S3 access key.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct AccessKey {
    pub id: String,
    pub secret: String,
    pub name: String,
    pub created_ms: i64,
    /// May create new buckets (and becomes their owner).
    pub allow_create_bucket: bool,
    /// Rights per bucket uuid.
    pub buckets: BTreeMap<Uuid, Rights>,
}

impl AccessKey {
    /// Rights of this key on a bucket.
    pub fn rights(&self, bucket: &Uuid) -> Rights {
        self.buckets.get(bucket).copied().unwrap_or_default()
    }
}

/// A storage node in the ring layout.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct LayoutNode {
    pub id: Uuid,
    /// gRPC address other processes reach the node at (`host:port`).
    pub addr: String,
    pub zone: String,
    pub weight: u32,
}

/// The ring layout: which nodes hold data, with how many replicas.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Layout {
    pub version: u64,
    pub replication: u32,
    pub nodes: Vec<LayoutNode>,
}

/// A change to the metadata, committed through Raft.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum MetaCommand {
    /// Creates a bucket; `owner` (if not empty) gets all rights on it.
    CreateBucket {
        id: Uuid,
        name: String,
        owner: String,
        region: String,
        created_ms: i64,
    },
    /// Deletes a bucket; when `id` is given, only if the name still maps to that bucket.
    DeleteBucket {
        name: String,
        id: Option<Uuid>,
    },
    CreateKey {
        key: AccessKey,
    },
    DeleteKey {
        id: String,
    },
    /// Grants (`allow`) or revokes rights of a key on a bucket (by name).
    SetRights {
        key_id: String,
        bucket: String,
        rights: Rights,
        allow: bool,
    },
    /// Sets whether a key may create buckets.
    SetCreateBucket {
        key_id: String,
        allow: bool,
    },
    /// Replaces the layout; `layout.version` must be the current version + 1.
    SetLayout {
        layout: Layout,
    },
    /// Node `node` holds every record it should under layout `version` (it pulled them from
    /// the older layouts' replicas); once every node of the layout did, the older layouts
    /// retire.
    LayoutSynced {
        node: Uuid,
        version: u64,
    },
    /// Records (or updates) a node that joined the cluster.
    RegisterNode {
        node: LayoutNode,
    },
    /// Stages adding/updating or removing one node of the layout.
    StageLayout {
        id: Uuid,
        change: StagedNode,
    },
    /// Drops every staged layout change.
    RevertLayout,
    /// Commits the staged changes (and `replication`, if given) as layout `version`, which
    /// must be the current version + 1; answers with the new layout.
    ApplyLayout {
        version: u64,
        replication: Option<u32>,
    },
    /// Pauses (`true`) or resumes the data movement of layout transitions.
    PauseRebalance {
        paused: bool,
    },
    /// Sets the cluster-wide rebalance rate limit in MiB/s (0 = unlimited); `None` leaves
    /// it to each node's `--rebalance-rate-mib`.
    SetRebalanceRate {
        rate_mib: Option<u32>,
    },
    /// Starts a multipart upload (its `parts` are ignored).
    CreateUpload {
        upload: Upload,
    },
    /// Adds a part, replacing one with the same number; answers with the replaced part
    /// (`MetaResult::Part`), whose blocks the caller releases.
    PutPart {
        upload_id: String,
        part: Part,
    },
    /// Marks the upload completed and removes it; answers with it (`MetaResult::Upload`).
    CompleteUpload {
        upload_id: String,
    },
    /// Removes the upload; answers with it so the caller can release its blocks.
    AbortUpload {
        upload_id: String,
    },
    /// Sets (`Some`) or removes (`None`) a bucket's CORS configuration; answers with the
    /// bucket.
    SetBucketCors {
        bucket: String,
        cors: Option<CorsConfig>,
    },
    /// Sets (`Some`) or removes (`None`) a bucket's website configuration; answers with the
    /// bucket. The configuration is validated before it is proposed, not here.
    SetBucketWebsite {
        bucket: String,
        website: Option<WebsiteConfig>,
    },
    /// Sets (`Some`) or removes (`None`) a bucket's lifecycle configuration; answers with the
    /// bucket. The configuration is validated before it is proposed, not here.
    SetBucketLifecycle {
        bucket: String,
        lifecycle: Option<LifecycleConfig>,
    },
    /// Sets a bucket's versioning status; answers with the bucket.
    SetBucketVersioning {
        bucket: String,
        status: BucketVersioning,
    },
    /// Replaces a bucket's tags (empty = removes them); answers with the bucket. The tags are
    /// validated before they are proposed, not here.
    SetBucketTags {
        bucket: String,
        tags: BTreeMap<String, String>,
    },
}

/// Why a command was refused. The gateway maps codes to S3 errors.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    #[error("bucket already exists")]
    BucketAlreadyExists,
    #[error("bucket already owned by you")]
    BucketAlreadyOwnedByYou,
    #[error("no such bucket: {0}")]
    NoSuchBucket(String),
    #[error("no such access key: {0}")]
    NoSuchKey(String),
    #[error("access key already exists: {0}")]
    KeyExists(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("metadata unavailable: {0}")]
    Unavailable(String),
    #[error("no such upload: {0}")]
    NoSuchUpload(String),
}

/// The answer to a committed command.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum MetaResult {
    Ok,
    Bucket(Bucket),
    Key(AccessKey),
    Layout(Layout),
    Upload(Upload),
    /// The part a `PutPart` replaced, if any.
    Part(Option<Part>),
    Err(MetaError),
}

impl MetaResult {
    /// Turns a refusal into an error.
    pub fn into_result(self) -> Result<MetaResult, MetaError> {
        match self {
            MetaResult::Err(e) => Err(e),
            ok => Ok(ok),
        }
    }
}

impl Metadata {
    /// Applies a committed command. Deterministic: every replica computes the same state.
    pub fn apply(&mut self, cmd: &MetaCommand) -> MetaResult {
        match self.try_apply(cmd) {
            Ok(r) => r,
            Err(e) => MetaResult::Err(e),
        }
    }

    fn try_apply(&mut self, cmd: &MetaCommand) -> Result<MetaResult, MetaError> {
        match cmd {
            MetaCommand::CreateBucket {
                id,
                name,
                owner,
                region,
                created_ms,
            } => {
                if let Some(existing) = self.buckets.get(name) {
                    return Err(if !owner.is_empty() && existing.owner == *owner {
                        MetaError::BucketAlreadyOwnedByYou
                    } else {
                        MetaError::BucketAlreadyExists
                    });
                }
                let bucket = Bucket {
                    id: *id,
                    name: name.clone(),
                    created_ms: *created_ms,
                    owner: owner.clone(),
                    region: region.clone(),
                    ..Default::default()
                };
                if let Some(key) = self.keys.get_mut(owner) {
                    key.buckets.insert(*id, Rights::ALL);
                }
                self.buckets.insert(name.clone(), bucket.clone());
                Ok(MetaResult::Bucket(bucket))
            }
            MetaCommand::DeleteBucket { name, id } => {
                let bucket = self
                    .buckets
                    .get(name)
                    .ok_or_else(|| MetaError::NoSuchBucket(name.clone()))?;
                if id.is_some_and(|id| id != bucket.id) {
                    return Err(MetaError::NoSuchBucket(name.clone()));
                }
                let bucket_id = bucket.id;
                self.buckets.remove(name);
                for key in self.keys.values_mut() {
                    key.buckets.remove(&bucket_id);
                }
                self.forget_uploads_of(&bucket_id);
                Ok(MetaResult::Ok)
            }
            MetaCommand::CreateKey { key } => {
                if key.id.is_empty() || key.secret.is_empty() {
                    return Err(MetaError::Invalid(
                        "key id and secret must not be empty".into(),
                    ));
                }
                if self.keys.contains_key(&key.id) {
                    return Err(MetaError::KeyExists(key.id.clone()));
                }
                self.keys.insert(key.id.clone(), key.clone());
                Ok(MetaResult::Key(key.clone()))
            }
            MetaCommand::DeleteKey { id } => {
                self.keys
                    .remove(id)
                    .ok_or_else(|| MetaError::NoSuchKey(id.clone()))?;
                Ok(MetaResult::Ok)
            }
            MetaCommand::SetRights {
                key_id,
                bucket,
                rights,
                allow,
            } => {
                let bucket_id = self
                    .buckets
                    .get(bucket)
                    .ok_or_else(|| MetaError::NoSuchBucket(bucket.clone()))?
                    .id;
                let key = self
                    .keys
                    .get_mut(key_id)
                    .ok_or_else(|| MetaError::NoSuchKey(key_id.clone()))?;
                let current = key.rights(&bucket_id);
                let next = if *allow {
                    current.union(*rights)
                } else {
                    current.minus(*rights)
                };
                if next.is_empty() {
                    key.buckets.remove(&bucket_id);
                } else {
                    key.buckets.insert(bucket_id, next);
                }
                Ok(MetaResult::Key(key.clone()))
            }
            MetaCommand::SetCreateBucket { key_id, allow } => {
                let key = self
                    .keys
                    .get_mut(key_id)
                    .ok_or_else(|| MetaError::NoSuchKey(key_id.clone()))?;
                key.allow_create_bucket = *allow;
                Ok(MetaResult::Key(key.clone()))
            }
            MetaCommand::SetLayout { layout } => {
                if layout.version != self.layout.version + 1 {
                    return Err(MetaError::Invalid(format!(
                        "layout version {} does not follow the current version {}",
                        layout.version, self.layout.version
                    )));
                }
                layout.check_replication()?;
                self.replace_layout(layout.clone());
                Ok(MetaResult::Layout(layout.clone()))
            }
            MetaCommand::LayoutSynced { node, version } => {
                let synced = self.layout_synced.entry(*node).or_default();
                *synced = (*synced).max(*version);
                self.retire_synced_layouts();
                Ok(MetaResult::Ok)
            }
            MetaCommand::RegisterNode { node } => {
                self.nodes.insert(node.id, node.clone());
                Ok(MetaResult::Ok)
            }
            MetaCommand::StageLayout { id, change } => self.stage_layout(*id, change),
            MetaCommand::RevertLayout => {
                self.staged = StagedLayout::default();
                Ok(MetaResult::Ok)
            }
            MetaCommand::ApplyLayout {
                version,
                replication,
            } => {
                let next = self.next_layout(*replication)?;
                if next.version != *version {
                    return Err(MetaError::Invalid(format!(
                        "the layout changed meanwhile (now version {}); review and apply again",
                        self.layout.version
                    )));
                }
                self.replace_layout(next.clone());
                self.staged = StagedLayout::default();
                Ok(MetaResult::Layout(next))
            }
            MetaCommand::PauseRebalance { paused } => {
                self.rebalance.paused = *paused;
                Ok(MetaResult::Ok)
            }
            MetaCommand::SetRebalanceRate { rate_mib } => {
                self.rebalance.rate_mib = *rate_mib;
                Ok(MetaResult::Ok)
            }
            MetaCommand::CreateUpload { upload } => self.create_upload(upload),
            MetaCommand::PutPart { upload_id, part } => self.put_part(upload_id, part),
            MetaCommand::CompleteUpload { upload_id } => self.complete_upload(upload_id),
            MetaCommand::AbortUpload { upload_id } => self.abort_upload(upload_id),
            MetaCommand::SetBucketCors { bucket, cors } => {
                self.update_bucket(bucket, |b| b.cors = cors.clone())
            }
            MetaCommand::SetBucketWebsite { bucket, website } => {
                self.update_bucket(bucket, |b| b.website = website.clone())
            }
            MetaCommand::SetBucketLifecycle { bucket, lifecycle } => {
                self.update_bucket(bucket, |b| b.lifecycle = lifecycle.clone())
            }
            MetaCommand::SetBucketVersioning { bucket, status } => {
                self.update_bucket(bucket, |b| b.versioning = Some(*status))
            }
            MetaCommand::SetBucketTags { bucket, tags } => {
                self.update_bucket(bucket, |b| b.tags = tags.clone())
            }
        }
    }

    /// Changes one setting of bucket `name`; answers with the bucket. Settings are
    /// validated before they are proposed, not here.
    fn update_bucket(
        &mut self,
        name: &str,
        change: impl FnOnce(&mut Bucket),
    ) -> Result<MetaResult, MetaError> {
        let bucket = self
            .buckets
            .get_mut(name)
            .ok_or_else(|| MetaError::NoSuchBucket(name.to_string()))?;
        change(bucket);
        Ok(MetaResult::Bucket(bucket.clone()))
    }

    /// The bucket called `name`, if any.
    pub fn bucket(&self, name: &str) -> Option<&Bucket> {
        self.buckets.get(name)
    }

    /// The bucket with this uuid, if any.
    pub fn bucket_by_id(&self, id: &Uuid) -> Option<&Bucket> {
        self.buckets.values().find(|b| b.id == *id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> AccessKey {
        AccessKey {
            id: id.into(),
            secret: "s".into(),
            allow_create_bucket: true,
            ..Default::default()
        }
    }

    #[test]
    fn create_bucket_grants_owner_and_detects_duplicates() {
        let mut m = Metadata::default();
        m.apply(&MetaCommand::CreateKey { key: key("a") });
        m.apply(&MetaCommand::CreateKey { key: key("b") });
        let create = |owner: &str| MetaCommand::CreateBucket {
            id: Uuid::new_v4(),
            name: "photos".into(),
            owner: owner.into(),
            region: "us-east-1".into(),
            created_ms: 1,
        };
        let MetaResult::Bucket(b) = m.apply(&create("a")) else {
            panic!()
        };
        assert_eq!(m.keys["a"].rights(&b.id), Rights::ALL);
        assert_eq!(
            m.apply(&create("a")),
            MetaResult::Err(MetaError::BucketAlreadyOwnedByYou)
        );
        assert_eq!(
            m.apply(&create("b")),
            MetaResult::Err(MetaError::BucketAlreadyExists)
        );
    }

    #[test]
    fn rights_are_granted_and_revoked_and_dropped_with_the_bucket() {
        let mut m = Metadata::default();
        m.apply(&MetaCommand::CreateKey { key: key("a") });
        m.apply(&MetaCommand::CreateBucket {
            id: Uuid::new_v4(),
            name: "x".into(),
            owner: String::new(),
            region: String::new(),
            created_ms: 0,
        });
        let id = m.buckets["x"].id;
        let read = Rights {
            read: true,
            ..Default::default()
        };
        m.apply(&MetaCommand::SetRights {
            key_id: "a".into(),
            bucket: "x".into(),
            rights: Rights::ALL,
            allow: true,
        });
        m.apply(&MetaCommand::SetRights {
            key_id: "a".into(),
            bucket: "x".into(),
            rights: read,
            allow: false,
        });
        assert_eq!(
            m.keys["a"].rights(&id),
            Rights {
                read: false,
                write: true,
                owner: true
            }
        );
        m.apply(&MetaCommand::DeleteBucket {
            name: "x".into(),
            id: None,
        });
        assert!(m.keys["a"].buckets.is_empty());
    }

    #[test]
    fn layout_refuses_more_replicas_than_nodes_and_stale_versions() {
        let mut m = Metadata::default();
        let node = LayoutNode {
            id: Uuid::new_v4(),
            addr: "a:1".into(),
            zone: "z".into(),
            weight: 1,
        };
        let bad = Layout {
            version: 1,
            replication: 3,
            nodes: vec![node.clone()],
        };
        assert!(matches!(
            m.apply(&MetaCommand::SetLayout { layout: bad }),
            MetaResult::Err(_)
        ));
        let good = Layout {
            version: 1,
            replication: 1,
            nodes: vec![node],
        };
        assert!(matches!(
            m.apply(&MetaCommand::SetLayout {
                layout: good.clone()
            }),
            MetaResult::Layout(_)
        ));
        assert!(matches!(
            m.apply(&MetaCommand::SetLayout { layout: good }),
            MetaResult::Err(_)
        ));
    }
}

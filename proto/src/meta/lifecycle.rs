//! A bucket's lifecycle configuration (PutBucketLifecycleConfiguration): rules that expire
//! current versions, noncurrent versions and expired delete markers, and abort incomplete
//! multipart uploads, each for the objects its filter selects.
//!
//! As with websites, the semantic checks ([`LifecycleConfig::validate`], S3's messages) run
//! at the edges before a configuration is committed, never in [`super::Metadata::apply`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Most rules one configuration may hold (as S3).
pub const MAX_LIFECYCLE_RULES: usize = 1000;
/// Longest rule id S3 accepts.
pub const MAX_RULE_ID_LEN: usize = 255;
/// Largest `NewerNoncurrentVersions` S3 accepts.
pub const MAX_NEWER_NONCURRENT_VERSIONS: u32 = 100;

/// The rules of a bucket, in the order given.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct LifecycleConfig {
    pub rules: Vec<LifecycleRule>,
}

/// One `<Rule>`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct LifecycleRule {
    /// Unique within the configuration, at most [`MAX_RULE_ID_LEN`] characters.
    pub id: String,
    /// `Status`: only enabled rules act.
    pub enabled: bool,
    pub filter: LifecycleFilter,
    pub expiration: Option<Expiration>,
    pub noncurrent_expiration: Option<NoncurrentExpiration>,
    /// `AbortIncompleteMultipartUpload/DaysAfterInitiation`.
    pub abort_incomplete_upload_days: Option<u32>,
}

/// Which objects a rule applies to: every condition given must hold.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct LifecycleFilter {
    /// Key prefix (empty = every key).
    pub prefix: String,
    /// Tags the object must carry, each with this value.
    pub tags: BTreeMap<String, String>,
    /// The object must be larger than this many bytes.
    pub size_greater_than: Option<u64>,
    /// The object must be smaller than this many bytes.
    pub size_less_than: Option<u64>,
    /// How the filter was written, so GetBucketLifecycleConfiguration answers in kind.
    pub form: FilterForm,
}

/// The XML shape a filter came in.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum FilterForm {
    /// `<Filter>` with at most one condition (or none).
    #[default]
    Filter,
    /// `<Filter><And>...</And></Filter>`.
    And,
    /// The legacy top-level `<Prefix>` of the rule.
    LegacyPrefix,
}

/// `<Expiration>` of current versions.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Expiration {
    /// Days after the object was written.
    pub days: Option<u32>,
    /// A midnight (UTC) from which on matching objects expire, in unix milliseconds.
    pub date_ms: Option<i64>,
    /// Removes delete markers left without any other version.
    pub expired_object_delete_marker: Option<bool>,
}

/// `<NoncurrentVersionExpiration>`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct NoncurrentExpiration {
    /// Days after a version became noncurrent.
    pub noncurrent_days: u32,
    /// How many of the newest noncurrent versions are kept whatever their age.
    pub newer_noncurrent_versions: Option<u32>,
}

/// Which S3 error a refused configuration gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidLifecycleKind {
    /// `InvalidArgument`.
    Argument,
    /// `InvalidRequest`.
    Request,
    /// `MalformedXML`.
    Malformed,
}

/// Why a lifecycle configuration is refused, with S3's message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidLifecycle {
    pub kind: InvalidLifecycleKind,
    pub message: String,
}

fn argument(message: impl Into<String>) -> InvalidLifecycle {
    InvalidLifecycle {
        kind: InvalidLifecycleKind::Argument,
        message: message.into(),
    }
}

fn request(message: impl Into<String>) -> InvalidLifecycle {
    InvalidLifecycle {
        kind: InvalidLifecycleKind::Request,
        message: message.into(),
    }
}

fn malformed() -> InvalidLifecycle {
    InvalidLifecycle {
        kind: InvalidLifecycleKind::Malformed,
        message: "The XML you provided was not well-formed or did not validate against our \
                  published schema"
            .into(),
    }
}

/// Milliseconds in a UTC day.
const DAY_MS: i64 = 86_400_000;

impl LifecycleConfig {
    /// Applies S3's checks, with S3's error codes and messages.
    pub fn validate(&self) -> Result<(), InvalidLifecycle> {
        if self.rules.is_empty() || self.rules.len() > MAX_LIFECYCLE_RULES {
            return Err(malformed());
        }
        let mut ids = std::collections::BTreeSet::new();
        for rule in &self.rules {
            rule.validate()?;
            if !ids.insert(rule.id.as_str()) {
                return Err(argument(
                    "Rule ID must be unique. Found same ID for more than one rule",
                ));
            }
        }
        Ok(())
    }

    /// The enabled rules.
    pub fn enabled_rules(&self) -> impl Iterator<Item = &LifecycleRule> {
        self.rules.iter().filter(|r| r.enabled)
    }
}

impl LifecycleRule {
    fn validate(&self) -> Result<(), InvalidLifecycle> {
        if self.id.chars().count() > MAX_RULE_ID_LEN {
            return Err(argument("ID length should not exceed allowed limit of 255"));
        }
        if self.expiration.is_none()
            && self.noncurrent_expiration.is_none()
            && self.abort_incomplete_upload_days.is_none()
        {
            return Err(request(
                "At least one action needs to be specified in a rule",
            ));
        }
        let f = &self.filter;
        if let (Some(gt), Some(lt)) = (f.size_greater_than, f.size_less_than)
            && gt >= lt
        {
            return Err(argument(
                "ObjectSizeGreaterThan must be less than ObjectSizeLessThan",
            ));
        }
        if let Some(e) = &self.expiration {
            let marker = e.expired_object_delete_marker.is_some();
            match (e.days, e.date_ms, marker) {
                (None, None, false) => return Err(malformed()),
                (Some(_), Some(_), _) | (Some(_), _, true) | (_, Some(_), true) => {
                    return Err(malformed());
                }
                _ => {}
            }
            if e.days == Some(0) {
                return Err(argument(
                    "'Days' for Expiration action must be a positive integer",
                ));
            }
            if e.date_ms.is_some_and(|d| d.rem_euclid(DAY_MS) != 0) {
                return Err(argument("'Date' must be at midnight GMT"));
            }
            if marker && !f.tags.is_empty() {
                return Err(request(
                    "Delete marker expiration cannot be specified with a tag-based filter",
                ));
            }
        }
        if let Some(n) = &self.noncurrent_expiration {
            if n.noncurrent_days == 0 {
                return Err(argument(
                    "'NoncurrentDays' for NoncurrentVersionExpiration action must be a positive \
                     integer",
                ));
            }
            if n.newer_noncurrent_versions
                .is_some_and(|v| v == 0 || v > MAX_NEWER_NONCURRENT_VERSIONS)
            {
                return Err(argument(
                    "'NewerNoncurrentVersions' for NoncurrentVersionExpiration action must be a \
                     positive integer up to 100",
                ));
            }
        }
        if let Some(days) = self.abort_incomplete_upload_days {
            if days == 0 {
                return Err(argument(
                    "'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a \
                     positive integer",
                ));
            }
            if !f.tags.is_empty() {
                return Err(request(
                    "Tag-based filter cannot be used with AbortIncompleteMultipartUpload action",
                ));
            }
        }
        Ok(())
    }
}

impl LifecycleFilter {
    /// Whether an object (key, size, tags) is selected.
    pub fn matches(&self, key: &str, size: u64, tags: &BTreeMap<String, String>) -> bool {
        key.starts_with(&self.prefix)
            && self.tags.iter().all(|(k, v)| tags.get(k) == Some(v))
            && self.size_greater_than.is_none_or(|gt| size > gt)
            && self.size_less_than.is_none_or(|lt| size < lt)
    }

    /// Whether a multipart upload of `key` is selected (uploads have no tags nor size yet).
    pub fn matches_upload(&self, key: &str) -> bool {
        key.starts_with(&self.prefix)
            && self.tags.is_empty()
            && self.size_greater_than.is_none()
            && self.size_less_than.is_none()
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::meta::{MetaCommand, MetaError, MetaResult, Metadata};

    fn rule(id: &str) -> LifecycleRule {
        LifecycleRule {
            id: id.into(),
            enabled: true,
            expiration: Some(Expiration {
                days: Some(1),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn config(rules: Vec<LifecycleRule>) -> LifecycleConfig {
        LifecycleConfig { rules }
    }

    #[track_caller]
    fn refused(r: LifecycleRule) -> (InvalidLifecycleKind, String) {
        let e = config(vec![r]).validate().unwrap_err();
        (e.kind, e.message)
    }

    #[test]
    fn set_and_delete_lifecycle() {
        let mut m = Metadata::default();
        m.apply(&MetaCommand::CreateBucket {
            id: Uuid::new_v4(),
            name: "b".into(),
            owner: String::new(),
            region: String::new(),
            created_ms: 0,
        });
        let set = |lifecycle| MetaCommand::SetBucketLifecycle {
            bucket: "b".into(),
            lifecycle,
        };
        let c = config(vec![rule("r")]);
        assert!(
            matches!(m.apply(&set(Some(c.clone()))), MetaResult::Bucket(b) if b.lifecycle == Some(c.clone()))
        );
        m.apply(&set(None));
        assert_eq!(m.buckets["b"].lifecycle, None);
        assert_eq!(
            m.apply(&MetaCommand::SetBucketLifecycle {
                bucket: "nope".into(),
                lifecycle: None
            }),
            MetaResult::Err(MetaError::NoSuchBucket("nope".into()))
        );
    }

    #[test]
    fn validation_follows_s3() {
        use InvalidLifecycleKind::*;
        assert!(config(vec![rule("a"), rule("b")]).validate().is_ok());
        assert_eq!(config(vec![]).validate().unwrap_err().kind, Malformed);
        let e = config(vec![rule("a"), rule("a")]).validate().unwrap_err();
        assert_eq!((e.kind, e.message.contains("unique")), (Argument, true));
        assert_eq!(refused(rule(&"x".repeat(256))).0, Argument);
        assert!(config(vec![rule(&"x".repeat(255))]).validate().is_ok());

        let none = LifecycleRule {
            expiration: None,
            ..rule("n")
        };
        assert_eq!(refused(none.clone()).0, Request);
        let exp = |e: Expiration| LifecycleRule {
            expiration: Some(e),
            ..rule("e")
        };
        assert_eq!(refused(exp(Expiration::default())).0, Malformed);
        let days0 = exp(Expiration {
            days: Some(0),
            ..Default::default()
        });
        assert_eq!(refused(days0).0, Argument);
        let both = exp(Expiration {
            days: Some(1),
            date_ms: Some(0),
            ..Default::default()
        });
        assert_eq!(refused(both).0, Malformed);
        let not_midnight = exp(Expiration {
            date_ms: Some(DAY_MS + 1),
            ..Default::default()
        });
        assert!(refused(not_midnight).1.contains("midnight"));
        let marker_with_days = exp(Expiration {
            days: Some(1),
            expired_object_delete_marker: Some(true),
            ..Default::default()
        });
        assert_eq!(refused(marker_with_days).0, Malformed);
        let mut marker_tags = exp(Expiration {
            expired_object_delete_marker: Some(true),
            ..Default::default()
        });
        marker_tags.filter.tags.insert("k".into(), "v".into());
        assert_eq!(refused(marker_tags).0, Request);

        let noncurrent = |days, newer| LifecycleRule {
            noncurrent_expiration: Some(NoncurrentExpiration {
                noncurrent_days: days,
                newer_noncurrent_versions: newer,
            }),
            ..none.clone()
        };
        assert!(config(vec![noncurrent(1, Some(100))]).validate().is_ok());
        assert_eq!(refused(noncurrent(0, None)).0, Argument);
        assert_eq!(refused(noncurrent(1, Some(0))).0, Argument);
        assert_eq!(refused(noncurrent(1, Some(101))).0, Argument);

        let abort = |days| LifecycleRule {
            abort_incomplete_upload_days: Some(days),
            ..none.clone()
        };
        assert!(config(vec![abort(1)]).validate().is_ok());
        assert_eq!(refused(abort(0)).0, Argument);
        let mut abort_tags = abort(1);
        abort_tags.filter.tags.insert("k".into(), "v".into());
        assert_eq!(refused(abort_tags).0, Request);

        let mut sizes = rule("s");
        sizes.filter.size_greater_than = Some(10);
        sizes.filter.size_less_than = Some(10);
        assert_eq!(refused(sizes).0, Argument);
    }

    #[test]
    fn filters_match_prefix_tags_and_size() {
        let mut f = LifecycleFilter {
            prefix: "tmp/".into(),
            ..Default::default()
        };
        let none = BTreeMap::new();
        assert!(f.matches("tmp/a", 5, &none));
        assert!(!f.matches("tm", 5, &none));
        assert!(f.matches_upload("tmp/x"));
        f.tags.insert("class".into(), "scratch".into());
        assert!(!f.matches("tmp/a", 5, &none));
        assert!(!f.matches_upload("tmp/x"));
        let mut tags = BTreeMap::from([("class".to_string(), "scratch".to_string())]);
        assert!(f.matches("tmp/a", 5, &tags));
        tags.insert("class".into(), "keep".into());
        assert!(!f.matches("tmp/a", 5, &tags));
        let sized = LifecycleFilter {
            size_greater_than: Some(10),
            size_less_than: Some(20),
            ..Default::default()
        };
        assert!(!sized.matches("k", 10, &none));
        assert!(sized.matches("k", 11, &none));
        assert!(!sized.matches("k", 20, &none));
    }

    #[test]
    fn buckets_stored_before_lifecycle_existed_still_load() {
        let old = r#"{"id":"00000000-0000-0000-0000-000000000001","name":"b","created_ms":1}"#;
        let b: crate::meta::Bucket = serde_json::from_str(old).unwrap();
        assert_eq!(b.lifecycle, None);
    }
}

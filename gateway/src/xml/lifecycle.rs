//! `<LifecycleConfiguration>`: the PutBucketLifecycleConfiguration request body and the
//! GetBucketLifecycleConfiguration response, and their mapping to the stored
//! [`LifecycleConfig`].
//!
//! Mapping checks what S3's schema checks (a status other than `Enabled` / `Disabled`, a
//! number that is not one, a filter with two conditions outside `<And>`, both `<Filter>` and
//! `<Prefix>`) and answers `MalformedXML`; the semantic checks are
//! [`LifecycleConfig::validate`]'s. Storage-class transitions are refused as not implemented
//! (Cairn has one storage class).

use std::collections::BTreeMap;

use cairn_proto::meta::{
    Expiration, FilterForm, LifecycleConfig, LifecycleFilter, LifecycleRule, NoncurrentExpiration,
};
use serde::{Deserialize, Serialize};

use super::{Xmlns, s3_timestamp};
use crate::error::S3Error;

/// PutBucketLifecycleConfiguration body / GetBucketLifecycleConfiguration response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename = "LifecycleConfiguration")]
pub struct LifecycleConfiguration {
    /// Namespace attribute.
    #[serde(rename = "@xmlns", default)]
    pub xmlns: Xmlns,
    #[serde(rename = "Rule", default)]
    pub rules: Vec<LifecycleRuleXml>,
}

/// One `<Rule>`, elements in S3's order. Numbers and dates are kept as text so that a bad
/// value is reported as S3 does rather than as a parse failure of the whole document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LifecycleRuleXml {
    #[serde(rename = "ID", skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    /// The legacy rule-level prefix.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub filter: Option<FilterXml>,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expiration: Option<ExpirationXml>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub noncurrent_version_expiration: Option<NoncurrentVersionExpirationXml>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub abort_incomplete_multipart_upload: Option<AbortIncompleteXml>,
    /// Present only to be refused (never rendered).
    #[serde(skip_serializing, default)]
    pub transition: Vec<Ignored>,
    /// Present only to be refused (never rendered).
    #[serde(skip_serializing, default)]
    pub noncurrent_version_transition: Vec<Ignored>,
}

/// An element whose content is not looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Ignored {}

/// `<Filter>`: at most one condition, or several inside `<And>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FilterXml {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tag: Option<TagXml>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub object_size_greater_than: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub object_size_less_than: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub and: Option<AndXml>,
}

/// `<And>`: every condition must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AndXml {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub prefix: Option<String>,
    #[serde(rename = "Tag", default)]
    pub tags: Vec<TagXml>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub object_size_greater_than: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub object_size_less_than: Option<String>,
}

/// `<Tag><Key/><Value/></Tag>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagXml {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

/// `<Expiration>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExpirationXml {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub days: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expired_object_delete_marker: Option<String>,
}

/// `<NoncurrentVersionExpiration>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NoncurrentVersionExpirationXml {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub noncurrent_days: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub newer_noncurrent_versions: Option<String>,
}

/// `<AbortIncompleteMultipartUpload>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AbortIncompleteXml {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub days_after_initiation: Option<String>,
}

/// A number element: anything but a (possibly negative) integer is malformed; a negative one
/// is S3's `InvalidArgument` for the field, reported by validation as zero would be.
fn number<T: std::str::FromStr + Default>(value: Option<&str>) -> Result<Option<T>, S3Error> {
    let Some(v) = value.map(str::trim) else {
        return Ok(None);
    };
    if let Ok(n) = v.parse::<T>() {
        return Ok(Some(n));
    }
    match v.parse::<i64>() {
        Ok(n) if n < 0 => Ok(Some(T::default())),
        _ => Err(S3Error::MalformedXML),
    }
}

/// An ISO 8601 date-time (`2026-01-01T00:00:00Z`, or a bare date) as unix milliseconds.
fn date(value: &str) -> Result<i64, S3Error> {
    let v = value.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Ok(t.timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
        .ok_or(S3Error::MalformedXML)
}

fn tags(list: Vec<TagXml>) -> Result<BTreeMap<String, String>, S3Error> {
    let mut out = BTreeMap::new();
    for t in list {
        if out.insert(t.key, t.value).is_some() {
            return Err(S3Error::InvalidArgument(
                "Duplicate Tag Keys are not allowed.".into(),
            ));
        }
    }
    Ok(out)
}

impl LifecycleConfiguration {
    /// The configuration this document describes (not yet validated). Rules without an
    /// `<ID>` get a random one, as S3 gives them.
    pub fn into_config(self) -> Result<LifecycleConfig, S3Error> {
        Ok(LifecycleConfig {
            rules: self
                .rules
                .into_iter()
                .map(LifecycleRuleXml::into_rule)
                .collect::<Result<_, _>>()?,
        })
    }
}

impl LifecycleRuleXml {
    fn into_rule(self) -> Result<LifecycleRule, S3Error> {
        if !self.transition.is_empty() || !self.noncurrent_version_transition.is_empty() {
            return Err(S3Error::NotImplemented(
                "storage class transitions (Cairn has one storage class)".into(),
            ));
        }
        let enabled = match self.status.as_str() {
            "Enabled" => true,
            "Disabled" => false,
            _ => return Err(S3Error::MalformedXML),
        };
        let filter = match (self.prefix, self.filter) {
            (Some(_), Some(_)) => return Err(S3Error::MalformedXML),
            (Some(prefix), None) => LifecycleFilter {
                prefix,
                form: FilterForm::LegacyPrefix,
                ..Default::default()
            },
            (None, Some(f)) => f.into_filter()?,
            (None, None) => LifecycleFilter::default(),
        };
        let expiration = self
            .expiration
            .map(|e| {
                Ok::<_, S3Error>(Expiration {
                    days: number(e.days.as_deref())?,
                    date_ms: e.date.as_deref().map(date).transpose()?,
                    expired_object_delete_marker: e
                        .expired_object_delete_marker
                        .map(|m| match m.trim() {
                            "true" => Ok(true),
                            "false" => Ok(false),
                            _ => Err(S3Error::MalformedXML),
                        })
                        .transpose()?,
                })
            })
            .transpose()?;
        let noncurrent_expiration = self
            .noncurrent_version_expiration
            .map(|n| {
                Ok::<_, S3Error>(NoncurrentExpiration {
                    noncurrent_days: number(n.noncurrent_days.as_deref())?
                        .ok_or(S3Error::MalformedXML)?,
                    newer_noncurrent_versions: number(n.newer_noncurrent_versions.as_deref())?,
                })
            })
            .transpose()?;
        let abort_incomplete_upload_days = self
            .abort_incomplete_multipart_upload
            .map(|a| number(a.days_after_initiation.as_deref())?.ok_or(S3Error::MalformedXML))
            .transpose()?;
        Ok(LifecycleRule {
            id: self
                .id
                .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()),
            enabled,
            filter,
            expiration,
            noncurrent_expiration,
            abort_incomplete_upload_days,
        })
    }
}

impl FilterXml {
    fn into_filter(self) -> Result<LifecycleFilter, S3Error> {
        let given = [
            self.prefix.is_some(),
            self.tag.is_some(),
            self.object_size_greater_than.is_some(),
            self.object_size_less_than.is_some(),
            self.and.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(S3Error::MalformedXML);
        }
        if let Some(and) = self.and {
            return Ok(LifecycleFilter {
                prefix: and.prefix.unwrap_or_default(),
                tags: tags(and.tags)?,
                size_greater_than: number(and.object_size_greater_than.as_deref())?,
                size_less_than: number(and.object_size_less_than.as_deref())?,
                form: FilterForm::And,
            });
        }
        Ok(LifecycleFilter {
            prefix: self.prefix.unwrap_or_default(),
            tags: tags(self.tag.into_iter().collect())?,
            size_greater_than: number(self.object_size_greater_than.as_deref())?,
            size_less_than: number(self.object_size_less_than.as_deref())?,
            form: FilterForm::Filter,
        })
    }
}

fn tag_list(tags: &BTreeMap<String, String>) -> Vec<TagXml> {
    tags.iter()
        .map(|(k, v)| TagXml {
            key: k.clone(),
            value: v.clone(),
        })
        .collect()
}

impl From<&LifecycleFilter> for FilterXml {
    fn from(f: &LifecycleFilter) -> Self {
        let size = |s: Option<u64>| s.map(|n| n.to_string());
        if f.form == FilterForm::And {
            return FilterXml {
                and: Some(AndXml {
                    prefix: Some(f.prefix.clone()).filter(|p| !p.is_empty()),
                    tags: tag_list(&f.tags),
                    object_size_greater_than: size(f.size_greater_than),
                    object_size_less_than: size(f.size_less_than),
                }),
                ..Default::default()
            };
        }
        let tag = tag_list(&f.tags).into_iter().next();
        let sizes = (size(f.size_greater_than), size(f.size_less_than));
        FilterXml {
            // A filter that selects everything renders as `<Filter><Prefix></Prefix>`, as S3.
            prefix: (!f.prefix.is_empty() || (tag.is_none() && sizes == (None, None)))
                .then(|| f.prefix.clone()),
            tag,
            object_size_greater_than: sizes.0,
            object_size_less_than: sizes.1,
            and: None,
        }
    }
}

impl From<&LifecycleConfig> for LifecycleConfiguration {
    fn from(c: &LifecycleConfig) -> Self {
        let rules = c
            .rules
            .iter()
            .map(|r| {
                let legacy = r.filter.form == FilterForm::LegacyPrefix;
                LifecycleRuleXml {
                    id: Some(r.id.clone()),
                    prefix: legacy.then(|| r.filter.prefix.clone()),
                    filter: (!legacy).then(|| FilterXml::from(&r.filter)),
                    status: if r.enabled { "Enabled" } else { "Disabled" }.into(),
                    expiration: r.expiration.as_ref().map(|e| ExpirationXml {
                        date: e.date_ms.map(s3_timestamp),
                        days: e.days.map(|d| d.to_string()),
                        expired_object_delete_marker: e
                            .expired_object_delete_marker
                            .map(|m| m.to_string()),
                    }),
                    noncurrent_version_expiration: r.noncurrent_expiration.as_ref().map(|n| {
                        NoncurrentVersionExpirationXml {
                            noncurrent_days: Some(n.noncurrent_days.to_string()),
                            newer_noncurrent_versions: n
                                .newer_noncurrent_versions
                                .map(|v| v.to_string()),
                        }
                    }),
                    abort_incomplete_multipart_upload: r.abort_incomplete_upload_days.map(|d| {
                        AbortIncompleteXml {
                            days_after_initiation: Some(d.to_string()),
                        }
                    }),
                    transition: Vec::new(),
                    noncurrent_version_transition: Vec::new(),
                }
            })
            .collect();
        LifecycleConfiguration {
            xmlns: Xmlns,
            rules,
        }
    }
}

//! ListObjects (V1), ListObjectsV2 and ListObjectVersions: pages of the merged node listings
//! with prefix roll-up by delimiter, done here after the merge. ListObjects shows each key's
//! latest version unless it is a delete marker; ListObjectVersions every version and delete
//! marker, per key newest first.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as TOKEN;
use cairn_proto::VersionKey;
use cairn_proto::meta::Bucket;
use cairn_proto::pb::{self, ListRequest, RecordState};
use cairn_proto::versions::{VersionSelector, is_delete_marker, version_id, version_key};
use http::{Response, StatusCode};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::versioning::parse_version_id;
use super::{S3, S3Request, owner_of, xml_response};
use crate::body::ResponseBody;
use crate::error::{S3Error, S3Result};
use crate::xml::{
    self, CommonPrefix, DeleteMarkerEntry, ListBucketResult, ListBucketResultV2,
    ListVersionsResult, ObjectInfo, ObjectVersion, Xmlns,
};

/// Largest page S3 returns.
const MAX_KEYS: u32 = 1000;

/// Characters escaped by `encoding-type=url` (S3 keeps `/` and the unreserved set).
const URL_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// What a listing asks for.
struct ListParams {
    prefix: String,
    delimiter: String,
    /// Return entries strictly after this key or common prefix.
    after: String,
    max_keys: u32,
}

/// One page of a listing.
#[derive(Default)]
struct ListOutcome {
    contents: Vec<pb::ObjectRecord>,
    common_prefixes: Vec<String>,
    truncated: bool,
    /// The last key or common prefix returned.
    last: Option<String>,
}

/// The common prefix `key` rolls up into, if any.
fn common_prefix(key: &str, prefix: &str, delimiter: &str) -> Option<String> {
    if delimiter.is_empty() {
        return None;
    }
    let rest = key.get(prefix.len()..)?;
    rest.find(delimiter)
        .map(|i| key[..prefix.len() + i + delimiter.len()].to_string())
}

/// The smallest string greater than every key starting with `prefix`.
fn past_prefix(prefix: &str) -> String {
    format!("{prefix}{}", char::MAX)
}

async fn list_page(s3: &S3, bucket: &Bucket, params: &ListParams) -> S3Result<ListOutcome> {
    let mut out = ListOutcome::default();
    if params.max_keys == 0 {
        return Ok(out);
    }
    let mut cursor = params.after.clone();
    loop {
        let returned = (out.contents.len() + out.common_prefixes.len()) as u32;
        let page = s3
            .cluster
            .list(ListRequest {
                bucket_id: bucket.id.as_bytes().to_vec(),
                prefix: params.prefix.clone(),
                start_after: cursor.clone(),
                limit: (params.max_keys - returned + 1).clamp(2, MAX_KEYS + 1),
                delimiter: params.delimiter.clone(),
                headers_only: true,
                ..Default::default()
            })
            .await?;
        for record in page.records {
            if record.key <= cursor {
                continue;
            }
            cursor = record.key.clone();
            if record.state() != RecordState::Complete {
                continue;
            }
            let entry = common_prefix(&record.key, &params.prefix, &params.delimiter);
            if let Some(cp) = &entry
                && (*cp <= params.after || out.common_prefixes.last() == Some(cp))
            {
                continue;
            }
            if (out.contents.len() + out.common_prefixes.len()) as u32 == params.max_keys {
                out.truncated = true;
                return Ok(out);
            }
            match entry {
                Some(cp) => {
                    cursor = past_prefix(&cp);
                    out.last = Some(cp.clone());
                    out.common_prefixes.push(cp);
                }
                None => {
                    out.last = Some(record.key.clone());
                    out.contents.push(record);
                }
            }
        }
        if page.complete {
            return Ok(out);
        }
    }
}

fn max_keys(req: &S3Request) -> S3Result<u32> {
    match req.query.get("max-keys") {
        None => Ok(MAX_KEYS),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(|n| n.min(MAX_KEYS as i64) as u32)
            .ok_or_else(|| {
                S3Error::InvalidArgument("max-keys must be a non-negative integer".into())
            }),
    }
}

/// Applies `encoding-type=url` to a returned string.
struct Encoder(bool);

impl Encoder {
    fn from(req: &S3Request) -> S3Result<Self> {
        match req.query.get("encoding-type") {
            None => Ok(Encoder(false)),
            Some(t) if t.eq_ignore_ascii_case("url") => Ok(Encoder(true)),
            Some(_) => Err(S3Error::InvalidArgument(
                "Invalid Encoding Method specified in Request".into(),
            )),
        }
    }

    fn apply(&self, s: &str) -> String {
        if self.0 {
            utf8_percent_encode(s, URL_ENCODE).to_string()
        } else {
            s.to_string()
        }
    }

    fn kind(&self) -> Option<String> {
        self.0.then(|| "url".to_string())
    }
}

/// Common prefixes as `<CommonPrefixes>` elements.
fn common_prefixes(prefixes: &[String], enc: &Encoder) -> Vec<CommonPrefix> {
    prefixes
        .iter()
        .map(|p| CommonPrefix {
            prefix: enc.apply(p),
        })
        .collect()
}

fn object_info(record: &pb::ObjectRecord, enc: &Encoder, owner: Option<xml::Owner>) -> ObjectInfo {
    ObjectInfo {
        key: enc.apply(&record.key),
        last_modified: xml::s3_timestamp(record.last_modified_ms),
        etag: record.etag.clone(),
        size: record.size,
        owner,
        storage_class: "STANDARD".into(),
    }
}

/// The bucket's owner (the requester for a bucket made by an administrator).
pub(super) fn bucket_owner(bucket: &Bucket, req: &S3Request) -> xml::Owner {
    owner_of(if bucket.owner.is_empty() {
        &req.access_key.id
    } else {
        &bucket.owner
    })
}

pub async fn list_objects_v1(s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    let bucket = req.bucket()?;
    let enc = Encoder::from(&req)?;
    let params = ListParams {
        prefix: req.query.get("prefix").unwrap_or("").to_string(),
        delimiter: req.query.get("delimiter").unwrap_or("").to_string(),
        after: req.query.get("marker").unwrap_or("").to_string(),
        max_keys: max_keys(&req)?,
    };
    let page = list_page(s3, bucket, &params).await?;
    let owner = bucket_owner(bucket, &req);
    let result = ListBucketResult {
        xmlns: Xmlns,
        name: bucket.name.clone(),
        prefix: enc.apply(&params.prefix),
        marker: enc.apply(&params.after),
        next_marker: page
            .last
            .as_deref()
            .filter(|_| page.truncated)
            .map(|m| enc.apply(m)),
        max_keys: params.max_keys,
        delimiter: (!params.delimiter.is_empty()).then(|| enc.apply(&params.delimiter)),
        encoding_type: enc.kind(),
        is_truncated: page.truncated,
        contents: page
            .contents
            .iter()
            .map(|r| object_info(r, &enc, Some(owner.clone())))
            .collect(),
        common_prefixes: common_prefixes(&page.common_prefixes, &enc),
    };
    xml_response(StatusCode::OK, xml::to_xml(&result))
}

pub async fn list_objects_v2(s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    let bucket = req.bucket()?;
    let enc = Encoder::from(&req)?;
    let token = req.query.get("continuation-token");
    let token_key = match token {
        Some(t) => Some(
            TOKEN
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    S3Error::InvalidArgument("The continuation token provided is incorrect".into())
                })?,
        ),
        None => None,
    };
    let start_after = req.query.get("start-after").unwrap_or("").to_string();
    let params = ListParams {
        prefix: req.query.get("prefix").unwrap_or("").to_string(),
        delimiter: req.query.get("delimiter").unwrap_or("").to_string(),
        after: token_key.unwrap_or_else(|| start_after.clone()),
        max_keys: max_keys(&req)?,
    };
    let page = list_page(s3, bucket, &params).await?;
    let owner = req
        .query
        .get("fetch-owner")
        .is_some_and(|v| v == "true")
        .then(|| bucket_owner(bucket, &req));
    let result = ListBucketResultV2 {
        xmlns: Xmlns,
        name: bucket.name.clone(),
        prefix: enc.apply(&params.prefix),
        start_after: (!start_after.is_empty()).then(|| enc.apply(&start_after)),
        continuation_token: token.map(str::to_string),
        next_continuation_token: page
            .last
            .as_deref()
            .filter(|_| page.truncated)
            .map(|m| TOKEN.encode(m)),
        key_count: (page.contents.len() + page.common_prefixes.len()) as u32,
        max_keys: params.max_keys,
        delimiter: (!params.delimiter.is_empty()).then(|| enc.apply(&params.delimiter)),
        encoding_type: enc.kind(),
        is_truncated: page.truncated,
        contents: page
            .contents
            .iter()
            .map(|r| object_info(r, &enc, owner.clone()))
            .collect(),
        common_prefixes: common_prefixes(&page.common_prefixes, &enc),
    };
    xml_response(StatusCode::OK, xml::to_xml(&result))
}

/// One page of ListObjectVersions.
#[derive(Default)]
struct VersionsOutcome {
    /// Versions and delete markers, each with whether it is its key's latest.
    entries: Vec<(pb::ObjectRecord, bool)>,
    common_prefixes: Vec<String>,
    truncated: bool,
    /// Where the next page starts: the last key or common prefix, and the last version id.
    next: Option<(String, Option<String>)>,
}

/// Where a versions listing resumes: after `key` entirely, or inside it after `version`.
#[derive(Clone)]
struct VersionCursor {
    key: String,
    version: Option<VersionKey>,
}

impl VersionCursor {
    /// Whether a merged entry lies at or before the cursor (already returned).
    fn passed(&self, key: &str, version: VersionKey) -> bool {
        key < self.key.as_str() || (key == self.key && self.version.is_none_or(|v| version >= v))
    }
}

async fn list_versions_page(
    s3: &S3,
    bucket: &Bucket,
    params: &ListParams,
    start: VersionCursor,
) -> S3Result<VersionsOutcome> {
    let mut out = VersionsOutcome::default();
    if params.max_keys == 0 {
        return Ok(out);
    }
    // Starting inside a key, its first entry is not its latest version.
    let mut latest_seen = start.version.map(|_| start.key.clone());
    let mut cursor = start;
    loop {
        let returned = (out.entries.len() + out.common_prefixes.len()) as u32;
        let page = s3
            .cluster
            .list(ListRequest {
                bucket_id: bucket.id.as_bytes().to_vec(),
                prefix: params.prefix.clone(),
                start_after: cursor.key.clone(),
                after_version: cursor.version.map(|v| v.to_pb()),
                limit: (params.max_keys - returned + 1).clamp(2, MAX_KEYS + 1),
                headers_only: true,
                all_versions: true,
                ..Default::default()
            })
            .await?;
        for record in page.records {
            let version = version_key(&record);
            if cursor.passed(&record.key, version) {
                continue;
            }
            cursor = VersionCursor {
                key: record.key.clone(),
                version: Some(version),
            };
            let is_latest = latest_seen.as_deref() != Some(record.key.as_str());
            latest_seen = Some(record.key.clone());
            if record.state() != RecordState::Complete && !is_delete_marker(&record) {
                continue;
            }
            let entry = common_prefix(&record.key, &params.prefix, &params.delimiter);
            if let Some(cp) = &entry
                && (*cp <= params.after || out.common_prefixes.last() == Some(cp))
            {
                continue;
            }
            if (out.entries.len() + out.common_prefixes.len()) as u32 == params.max_keys {
                out.truncated = true;
                return Ok(out);
            }
            match entry {
                Some(cp) => {
                    cursor = VersionCursor {
                        key: past_prefix(&cp),
                        version: None,
                    };
                    out.next = Some((cp.clone(), None));
                    out.common_prefixes.push(cp);
                }
                None => {
                    out.next = Some((record.key.clone(), Some(version_id(&record))));
                    out.entries.push((record, is_latest));
                }
            }
        }
        if page.complete {
            return Ok(out);
        }
    }
}

pub async fn list_object_versions(s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    let bucket = req.bucket()?;
    let enc = Encoder::from(&req)?;
    let key_marker = req.query.get("key-marker").unwrap_or("").to_string();
    let version_id_marker = req.query.get("version-id-marker").unwrap_or("");
    if !version_id_marker.is_empty() && key_marker.is_empty() {
        return Err(S3Error::InvalidArgument(
            "A version-id marker cannot be specified without a key marker.".into(),
        ));
    }
    let params = ListParams {
        prefix: req.query.get("prefix").unwrap_or("").to_string(),
        delimiter: req.query.get("delimiter").unwrap_or("").to_string(),
        after: key_marker.clone(),
        max_keys: max_keys(&req)?,
    };
    let start = VersionCursor {
        key: key_marker.clone(),
        version: match parse_version_id(Some(version_id_marker).filter(|v| !v.is_empty()))? {
            None => None,
            Some(VersionSelector::Id(v)) => Some(v),
            // The null version's place among the key's versions is its stamp.
            Some(VersionSelector::Null) => s3
                .cluster
                .get_record(&bucket.id, &key_marker, Some(VersionSelector::Null))
                .await?
                .map(|r| version_key(&r)),
        },
    };
    let page = list_versions_page(s3, bucket, &params, start).await?;
    let owner = bucket_owner(bucket, &req);
    let next = page.next.as_ref().filter(|_| page.truncated);
    let mut result = ListVersionsResult {
        xmlns: Xmlns,
        name: bucket.name.clone(),
        prefix: enc.apply(&params.prefix),
        key_marker: enc.apply(&key_marker),
        version_id_marker: version_id_marker.to_string(),
        next_key_marker: next.map(|(k, _)| enc.apply(k)),
        next_version_id_marker: next.and_then(|(_, v)| v.clone()),
        max_keys: params.max_keys,
        delimiter: (!params.delimiter.is_empty()).then(|| enc.apply(&params.delimiter)),
        encoding_type: enc.kind(),
        is_truncated: page.truncated,
        common_prefixes: common_prefixes(&page.common_prefixes, &enc),
        ..Default::default()
    };
    for (r, is_latest) in &page.entries {
        if is_delete_marker(r) {
            result.delete_markers.push(DeleteMarkerEntry {
                key: enc.apply(&r.key),
                version_id: version_id(r),
                is_latest: *is_latest,
                last_modified: xml::s3_timestamp(r.last_modified_ms),
                owner: owner.clone(),
            });
        } else {
            result.versions.push(ObjectVersion {
                key: enc.apply(&r.key),
                version_id: version_id(r),
                is_latest: *is_latest,
                last_modified: xml::s3_timestamp(r.last_modified_ms),
                etag: r.etag.clone(),
                size: r.size,
                storage_class: "STANDARD".into(),
                owner: owner.clone(),
            });
        }
    }
    xml_response(StatusCode::OK, xml::to_xml(&result))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_prefixes() {
        assert_eq!(common_prefix("a/b/c", "", "/").as_deref(), Some("a/"));
        assert_eq!(common_prefix("a/b/c", "a/", "/").as_deref(), Some("a/b/"));
        assert_eq!(common_prefix("a/b", "a/", "/"), None);
        assert_eq!(common_prefix("abc", "", ""), None);
        assert!(past_prefix("a/").as_str() > "a/\u{FFFF}zzz");
    }
}

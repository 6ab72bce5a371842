//! ListObjects (V1), ListObjectsV2 and ListObjectVersions: pages of the merged node listings
//! with prefix roll-up by delimiter, done here after the merge. ListObjects shows each key's
//! latest version unless it is a delete marker; ListObjectVersions every version and delete
//! marker, per key newest first.

use std::cmp::Ordering;

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
    ListVersionsResult, ObjectInfo, ObjectVersion, VersionEntry, Xmlns,
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

/// One page of a listing: entries and rolled-up common prefixes, each in listing order.
struct Page<E> {
    entries: Vec<E>,
    common_prefixes: Vec<String>,
    truncated: bool,
    /// Whether the last item returned is the last common prefix (else the last entry).
    last_is_prefix: bool,
}

/// The item a truncated page ends with: the next page starts after it.
enum Last<'a, E> {
    Prefix(&'a str),
    Entry(&'a E),
}

impl<E> Page<E> {
    fn new() -> Self {
        Self {
            entries: Vec::new(),
            common_prefixes: Vec::new(),
            truncated: false,
            last_is_prefix: false,
        }
    }

    fn len(&self) -> u32 {
        (self.entries.len() + self.common_prefixes.len()) as u32
    }

    /// The last item returned, when the page is truncated.
    fn next_marker(&self) -> Option<Last<'_, E>> {
        if !self.truncated {
            None
        } else if self.last_is_prefix {
            self.common_prefixes.last().map(|p| Last::Prefix(p))
        } else {
            self.entries.last().map(Last::Entry)
        }
    }
}

/// What differs between the listings [`list_page`] walks: how to ask the cluster for records,
/// where a record stands in listing order, and what the page lists for it.
trait Walk {
    /// A place in listing order; records at or before the cursor were already seen.
    type Pos: Ord;
    /// What the page lists for a record.
    type Entry;
    /// The request for records after `from`; [`list_page`] sets bucket, prefix and limit.
    fn request(&self, params: &ListParams, from: &Self::Pos) -> ListRequest;
    /// Where `record` stands.
    fn position(record: &pb::ObjectRecord) -> Self::Pos;
    /// The place after every record of `key`.
    fn after_key(key: String) -> Self::Pos;
    /// The entry for the next unseen record (called once per record, in order), or `None` to
    /// leave the record out.
    fn entry(&mut self, record: pb::ObjectRecord) -> Option<Self::Entry>;
}

/// One page of `walk`'s listing from `start`: records past the cursor, rolled up into common
/// prefixes by delimiter (each prefix once, none at or before the marker), up to max-keys.
async fn list_page<W: Walk>(
    s3: &S3,
    bucket: &Bucket,
    params: &ListParams,
    mut walk: W,
    start: W::Pos,
) -> S3Result<Page<W::Entry>> {
    let mut out = Page::new();
    if params.max_keys == 0 {
        return Ok(out);
    }
    let mut cursor = start;
    loop {
        let page = s3
            .cluster
            .list(ListRequest {
                bucket_id: bucket.id.as_bytes().to_vec(),
                prefix: params.prefix.clone(),
                limit: (params.max_keys - out.len() + 1).clamp(2, MAX_KEYS + 1),
                headers_only: true,
                ..walk.request(params, &cursor)
            })
            .await?;
        for record in page.records {
            let position = W::position(&record);
            if position <= cursor {
                continue;
            }
            cursor = position;
            let rolled_up = common_prefix(&record.key, &params.prefix, &params.delimiter);
            let Some(entry) = walk.entry(record) else {
                continue;
            };
            if let Some(cp) = &rolled_up
                && (*cp <= params.after || out.common_prefixes.last() == Some(cp))
            {
                continue;
            }
            if out.len() == params.max_keys {
                out.truncated = true;
                return Ok(out);
            }
            out.last_is_prefix = rolled_up.is_some();
            match rolled_up {
                Some(cp) => {
                    cursor = W::after_key(past_prefix(&cp));
                    out.common_prefixes.push(cp);
                }
                None => out.entries.push(entry),
            }
        }
        if page.complete {
            return Ok(out);
        }
    }
}

/// ListObjects: each key's latest version, positioned by key.
struct Objects;

impl Walk for Objects {
    type Pos = String;
    type Entry = pb::ObjectRecord;

    fn request(&self, params: &ListParams, from: &String) -> ListRequest {
        ListRequest {
            start_after: from.clone(),
            delimiter: params.delimiter.clone(),
            ..Default::default()
        }
    }

    fn position(record: &pb::ObjectRecord) -> String {
        record.key.clone()
    }

    fn after_key(key: String) -> String {
        key
    }

    fn entry(&mut self, record: pb::ObjectRecord) -> Option<pb::ObjectRecord> {
        (record.state() == RecordState::Complete).then_some(record)
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

/// The key or common prefix a truncated ListObjects page ends with.
fn object_marker<'a>(last: Last<'a, pb::ObjectRecord>) -> &'a str {
    match last {
        Last::Prefix(p) => p,
        Last::Entry(r) => &r.key,
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
    let start = params.after.clone();
    let page = list_page(s3, bucket, &params, Objects, start).await?;
    let owner = bucket_owner(bucket, &req);
    let result = ListBucketResult {
        xmlns: Xmlns,
        name: bucket.name.clone(),
        prefix: enc.apply(&params.prefix),
        marker: enc.apply(&params.after),
        next_marker: page.next_marker().map(|m| enc.apply(object_marker(m))),
        max_keys: params.max_keys,
        delimiter: (!params.delimiter.is_empty()).then(|| enc.apply(&params.delimiter)),
        encoding_type: enc.kind(),
        is_truncated: page.truncated,
        contents: page
            .entries
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
    let start = params.after.clone();
    let page = list_page(s3, bucket, &params, Objects, start).await?;
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
        next_continuation_token: page.next_marker().map(|m| TOKEN.encode(object_marker(m))),
        key_count: page.len(),
        max_keys: params.max_keys,
        delimiter: (!params.delimiter.is_empty()).then(|| enc.apply(&params.delimiter)),
        encoding_type: enc.kind(),
        is_truncated: page.truncated,
        contents: page
            .entries
            .iter()
            .map(|r| object_info(r, &enc, owner.clone()))
            .collect(),
        common_prefixes: common_prefixes(&page.common_prefixes, &enc),
    };
    xml_response(StatusCode::OK, xml::to_xml(&result))
}

/// Where a versions listing stands: inside `key` at `version`, or after `key` entirely.
#[derive(Clone, PartialEq, Eq)]
struct VersionCursor {
    key: String,
    version: Option<VersionKey>,
}

/// Listing order: by key, then a key's versions newest first, then the place after them all.
impl Ord for VersionCursor {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key
            .cmp(&other.key)
            .then_with(|| match (self.version, other.version) {
                (Some(a), Some(b)) => b.cmp(&a),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            })
    }
}

impl PartialOrd for VersionCursor {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// ListObjectVersions: every version and delete marker, each with whether it is its key's
/// latest.
struct Versions {
    /// The key of the last record seen: the next record of the same key is not its latest.
    latest_seen: Option<String>,
}

impl Walk for Versions {
    type Pos = VersionCursor;
    type Entry = (pb::ObjectRecord, bool);

    fn request(&self, _params: &ListParams, from: &VersionCursor) -> ListRequest {
        ListRequest {
            start_after: from.key.clone(),
            after_version: from.version.map(|v| v.to_pb()),
            all_versions: true,
            ..Default::default()
        }
    }

    fn position(record: &pb::ObjectRecord) -> VersionCursor {
        VersionCursor {
            key: record.key.clone(),
            version: Some(version_key(record)),
        }
    }

    fn after_key(key: String) -> VersionCursor {
        VersionCursor { key, version: None }
    }

    fn entry(&mut self, record: pb::ObjectRecord) -> Option<(pb::ObjectRecord, bool)> {
        let is_latest = self.latest_seen.as_deref() != Some(record.key.as_str());
        self.latest_seen = Some(record.key.clone());
        (record.state() == RecordState::Complete || is_delete_marker(&record))
            .then_some((record, is_latest))
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
    // Starting inside a key, its first entry is not its latest version.
    let walk = Versions {
        latest_seen: start.version.map(|_| start.key.clone()),
    };
    let page = list_page(s3, bucket, &params, walk, start).await?;
    let owner = bucket_owner(bucket, &req);
    let next = page.next_marker().map(|last| match last {
        Last::Prefix(p) => (p, None),
        Last::Entry((r, _)) => (r.key.as_str(), Some(version_id(r))),
    });
    let entry = |(r, is_latest): &(pb::ObjectRecord, bool)| {
        let (key, version_id, is_latest) = (enc.apply(&r.key), version_id(r), *is_latest);
        let last_modified = xml::s3_timestamp(r.last_modified_ms);
        if is_delete_marker(r) {
            VersionEntry::DeleteMarker(DeleteMarkerEntry {
                key,
                version_id,
                is_latest,
                last_modified,
                owner: owner.clone(),
            })
        } else {
            VersionEntry::Version(ObjectVersion {
                key,
                version_id,
                is_latest,
                last_modified,
                etag: r.etag.clone(),
                size: r.size,
                storage_class: "STANDARD".into(),
                owner: owner.clone(),
            })
        }
    };
    let result = ListVersionsResult {
        xmlns: Xmlns,
        name: bucket.name.clone(),
        prefix: enc.apply(&params.prefix),
        key_marker: enc.apply(&key_marker),
        version_id_marker: version_id_marker.to_string(),
        next_key_marker: next.as_ref().map(|(k, _)| enc.apply(k)),
        next_version_id_marker: next.and_then(|(_, v)| v),
        max_keys: params.max_keys,
        delimiter: (!params.delimiter.is_empty()).then(|| enc.apply(&params.delimiter)),
        encoding_type: enc.kind(),
        is_truncated: page.truncated,
        entries: page.entries.iter().map(entry).collect(),
        common_prefixes: common_prefixes(&page.common_prefixes, &enc),
    };
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

    #[test]
    fn version_cursor_order() {
        let at = |key: &str, hlc: Option<u64>| VersionCursor {
            key: key.into(),
            version: hlc.map(|hlc| VersionKey {
                hlc,
                ..Default::default()
            }),
        };
        // Listing order: by key, each key's versions newest first, then after the key.
        let order = [
            at("", None),
            at("a", Some(9)),
            at("a", Some(5)),
            at("a", None),
            at("b", Some(9)),
            at("b", None),
        ];
        for (i, x) in order.iter().enumerate() {
            for (j, y) in order.iter().enumerate() {
                assert_eq!(x.cmp(y), i.cmp(&j), "{i} {j}");
            }
        }
        // A record is already listed when at or before the cursor: inside a key, the versions
        // newer than or equal to the cursor's; after a key, all of its versions.
        assert!(at("a", Some(9)) <= at("a", Some(5)));
        assert!(at("a", Some(5)) <= at("a", Some(5)));
        assert!(at("a", Some(4)) > at("a", Some(5)));
        assert!(at("a", Some(1)) <= at("a", None));
        assert!(at("b", Some(1)) > at("a", None));
    }
}

//! Object operations: PutObject, GetObject / HeadObject (Range, conditional requests), and the record ↔ HTTP header mapping they share with CopyObject.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_proto::ids::object_owner;
use cairn_proto::meta::Bucket;
use cairn_proto::pb::{self, RecordState, object_record::Body};
use http::{HeaderMap, Response, StatusCode, header};

use super::versioning::{new_record, readable_version, requested_version, with_version_id};
use super::writer::{BlockCutter, owned_refs, release, write_blocks};
use super::{S3, S3Request, header_value};
use crate::body::{self, ResponseBody};
use crate::checksum::{self, BodyDigests, BodyHasher};
use crate::error::{S3Error, S3Result};

/// Largest object a single PUT may create (as AWS).
pub const MAX_PUT_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// Stored standard headers, returned as sent.
const STORED_HEADERS: &[&str] = &[
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
    "x-amz-website-redirect-location",
];

/// Default content type, as AWS.
const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";

/// A record for `key` carrying the object metadata (and `x-amz-tagging` tags) of the request
/// headers.
pub fn record_from_headers(
    bucket: &Bucket,
    key: &str,
    headers: &HeaderMap,
) -> S3Result<pb::ObjectRecord> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut stored = BTreeMap::new();
    for name in STORED_HEADERS {
        if let Some(value) = text(name) {
            stored.insert(name.to_string(), value);
        }
    }
    // aws-chunked is transfer framing, not a property of the object.
    if let Some(enc) = stored.get("content-encoding") {
        let rest: Vec<&str> = enc
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty() && *e != "aws-chunked")
            .collect();
        if rest.is_empty() {
            stored.remove("content-encoding");
        } else {
            stored.insert("content-encoding".into(), rest.join(","));
        }
    }
    let mut user_metadata = BTreeMap::new();
    let mut metadata_size = 0;
    for (name, value) in headers {
        if let Some(meta) = name.as_str().strip_prefix("x-amz-meta-") {
            let value = value
                .to_str()
                .map_err(|_| S3Error::InvalidArgument(format!("bad value of {name}")))?;
            metadata_size += meta.len() + value.len();
            user_metadata.insert(meta.to_string(), value.to_string());
        }
    }
    if metadata_size > 2048 {
        return Err(S3Error::InvalidArgument(
            "Your metadata headers exceed the maximum allowed metadata size".into(),
        ));
    }
    Ok(pb::ObjectRecord {
        content_type: text("content-type").unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_string()),
        headers: stored,
        user_metadata,
        tags: super::tagging::from_header(headers)?.unwrap_or_default(),
        ..new_record(bucket, key)
    })
}

/// The body length the client declared (decoded length for aws-chunked bodies), checked
/// against `max`; a body without any length is refused.
pub fn declared_length(req: &S3Request, max: u64) -> S3Result<Option<u64>> {
    let declared = req
        .header("x-amz-decoded-content-length")
        .or_else(|| req.header("content-length"))
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| S3Error::InvalidArgument("bad Content-Length".into()))
        })
        .transpose()?;
    match declared {
        None if req.header("transfer-encoding").is_none() => Err(S3Error::MissingContentLength),
        Some(n) if n > max => Err(S3Error::EntityTooLarge),
        _ => Ok(declared),
    }
}

/// The conditional-write headers of a PutObject, CompleteMultipartUpload or CopyObject
/// (`If-None-Match: *`, `If-Match: "<etag>"`), checked atomically at the key's coordinator.
pub fn write_condition(headers: &HeaderMap) -> S3Result<Option<pb::WriteCondition>> {
    use pb::write_condition::Test;
    let get = |name: &str| {
        headers
            .get(name)
            .map(|v| v.to_str().map(str::trim))
            .transpose()
            .map_err(|_| S3Error::InvalidArgument(format!("bad value of {name}")))
    };
    let test = match (get("if-none-match")?, get("if-match")?) {
        (None, None) => return Ok(None),
        (Some("*"), None) => Test::IfNoneMatchAny(true),
        (None, Some(etag)) if !etag.is_empty() => Test::IfMatchEtag(etag.to_string()),
        _ => {
            return Err(S3Error::NotImplemented(
                "conditional writes other than If-None-Match: * or one If-Match ETag".into(),
            ));
        }
    };
    Ok(Some(pb::WriteCondition { test: Some(test) }))
}

/// Gives back the references a never-visible version took on its blocks (after a refused
/// flip or a bad body).
pub(super) fn release_unpublished(s3: &S3, record: &pb::ObjectRecord) {
    if let (Some(Body::Blocks(list)), Some(version)) = (&record.body, &record.version) {
        release(
            &s3.cluster,
            owned_refs(
                &object_owner(&record.bucket_id, &record.key, version),
                &list.blocks,
            ),
        );
    }
}

/// Flips a record to its final state at the coordinator under a write condition. A refused
/// condition wrote nothing, so the references the record's version took are given back.
pub async fn publish(
    s3: &S3,
    record: pb::ObjectRecord,
    condition: Option<pb::WriteCondition>,
) -> S3Result<pb::ObjectRecord> {
    if condition.is_none() {
        return s3
            .cluster
            .coordinate(record)
            .await?
            .record
            .ok_or_else(no_record);
    }
    match s3.cluster.coordinate_if(record.clone(), condition).await {
        Ok(resp) => resp.record.ok_or_else(no_record),
        Err(
            e @ (S3Error::PreconditionFailed
            | S3Error::ConditionalRequestConflict
            | S3Error::NoSuchKey),
        ) => {
            release_unpublished(s3, &record);
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// Writes `record` as `uploading` at its key's coordinator and takes the stamped version:
/// blocks can then be referenced by that version before anything becomes visible. A write
/// condition is checked here too, so a doomed conditional write fails before its body moves.
pub async fn announce_uploading(
    s3: &S3,
    record: &mut pb::ObjectRecord,
    condition: &Option<pb::WriteCondition>,
) -> S3Result<pb::Version> {
    record.state = RecordState::Uploading as i32;
    let uploading = s3
        .cluster
        .coordinate_if(record.clone(), condition.clone())
        .await?
        .record
        .ok_or_else(no_record)?;
    record.version = uploading.version.clone();
    record.version.clone().ok_or_else(no_record)
}

/// Reads a whole body into `record`: inline when small, else as blocks referenced by an
/// `uploading` version announced at the key's coordinator. A body whose `declared` length is
/// too large to inline is announced while its first block arrives (the two overlap); a
/// smaller one is read first. On failure no block reference is left behind (an announced
/// `uploading` record expires like any other abandoned write). The caller then checks the
/// body, [`mark_complete`]s the record and [`publish`]es it (or calls
/// [`release_unpublished`]).
pub async fn store_body(
    s3: &S3,
    record: &mut pb::ObjectRecord,
    cutter: &mut BlockCutter,
    declared: Option<u64>,
    condition: &Option<pb::WriteCondition>,
) -> S3Result<()> {
    let (first, announced) = if declared.is_some_and(|d| d > s3.config.inline_max as u64) {
        let (first, announced) = tokio::join!(
            cutter.next_block(),
            announce_uploading(s3, record, condition)
        );
        (first, Some(announced))
    } else {
        (cutter.next_block().await, None)
    };
    let first = first?.unwrap_or_default();
    let inline = announced.is_none() && cutter.finished() && first.len() <= s3.config.inline_max;
    if inline {
        record.body = Some(Body::InlineData(first.into_bytes()));
        return Ok(());
    }
    // Announce the write first: blocks reference this version, and nothing becomes visible
    // before the record flips to complete.
    let announced = match announced {
        Some(announced) => announced,
        None => announce_uploading(s3, record, condition).await,
    };
    // Refused before the body was read (a failed write condition): the unread rest is
    // drained in the background (see `body::incoming_stream`).
    let version = announced?;
    let owner = object_owner(&record.bucket_id, &record.key, &version);
    let blocks = write_blocks(&s3.cluster, cutter, &owner, Some(first)).await?;
    record.body = Some(Body::Blocks(pb::BlockList { blocks }));
    Ok(())
}

/// Marks a record whose body has been stored and checked as complete, with its size, ETag
/// and checksum.
pub fn mark_complete(record: &mut pb::ObjectRecord, size: u64, digests: &BodyDigests) {
    record.state = RecordState::Complete as i32;
    record.size = size;
    record.etag = format!("\"{}\"", hex::encode(digests.md5));
    if let Some((algorithm, value)) = &digests.checksum {
        record.checksums = vec![pb::Checksum {
            algorithm: algorithm.name().into(),
            value: value.clone(),
            kind: "FULL_OBJECT".into(),
        }];
    }
}

pub async fn put_object(s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    let bucket = req.bucket()?.clone();
    let key = req.key()?.to_string();
    let declared = declared_length(&req, MAX_PUT_SIZE)?;
    let condition = write_condition(&req.headers)?;
    let mut record = record_from_headers(&bucket, &key, &req.headers)?;
    let requested = checksum::requested_checksum(&req.headers)?;
    let content_md5 = req.header("content-md5").map(str::to_string);
    let trailers = req.trailers.clone();
    let hasher = BodyHasher::new(false, requested.as_ref().map(|r| r.algorithm));
    let mut cutter = BlockCutter::new(req.body, s3.config.block_size, hasher, MAX_PUT_SIZE);
    store_body(s3, &mut record, &mut cutter, declared, &condition).await?;
    let size = cutter.total();
    let digests = cutter.digests();
    let trailer_headers = trailers.get();
    let trailer_value = requested.as_ref().and_then(|r| {
        trailer_headers
            .as_ref()?
            .get(r.algorithm.header_name())?
            .to_str()
            .ok()
            .map(str::to_string)
    });
    let checked = if declared.is_some_and(|d| d != size) {
        Err(S3Error::InvalidRequest(
            "IncompleteBody: the body length does not match Content-Length".into(),
        ))
    } else {
        checksum::verify(
            &digests,
            content_md5.as_deref(),
            requested.as_ref(),
            trailer_value.as_deref(),
        )
    };
    if let Err(e) = checked {
        // The version never becomes visible: give its blocks back now.
        release_unpublished(s3, &record);
        return Err(e);
    }

    mark_complete(&mut record, size, &digests);
    let stored = publish(s3, record, condition).await?;
    let mut resp = with_version_id(Response::builder(), &stored)?
        .status(StatusCode::OK)
        .header(header::ETAG, header_value(&stored.etag)?);
    for c in &stored.checksums {
        resp = resp.header(
            format!("x-amz-checksum-{}", c.algorithm.to_lowercase()),
            header_value(&c.value)?,
        );
    }
    resp.body(body::empty())
        .map_err(|e| S3Error::InternalError(e.to_string()))
}

/// The coordinator answered without a record (a node bug).
pub fn no_record() -> S3Error {
    S3Error::InternalError("the coordinator returned no record".into())
}

/// An HTTP date (Last-Modified) of unix milliseconds.
pub(super) fn http_date(ms: i64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64))
}

/// Whether an If-Match / If-None-Match list names this ETag.
fn etag_matches(list: &str, etag: &str) -> bool {
    let bare = etag.trim_matches('"');
    list.split(',')
        .map(|t| t.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|t| t == "*" || t == bare)
}

/// Evaluates conditional request headers against the object (RFC 7232 order, as S3).
pub fn check_conditions(
    headers: &HeaderMap,
    record: &pb::ObjectRecord,
    prefix: &str,
) -> S3Result<()> {
    let get = |name: &str| {
        headers
            .get(format!("{prefix}{name}"))
            .and_then(|v| v.to_str().ok())
    };
    let modified = UNIX_EPOCH + Duration::from_secs((record.last_modified_ms.max(0) / 1000) as u64);
    let since = |v: &str| httpdate::parse_http_date(v).ok();
    let if_match = get("if-match");
    if let Some(list) = if_match {
        if !etag_matches(list, &record.etag) {
            return Err(S3Error::PreconditionFailed);
        }
    } else if let Some(t) = get("if-unmodified-since").and_then(since)
        && modified > t
    {
        return Err(S3Error::PreconditionFailed);
    }
    let not_modified = if prefix.is_empty() {
        S3Error::NotModified
    } else {
        S3Error::PreconditionFailed
    };
    if let Some(list) = get("if-none-match") {
        if etag_matches(list, &record.etag) {
            return Err(not_modified);
        }
    } else if let Some(t) = get("if-modified-since").and_then(since)
        && modified <= t
        && t <= SystemTime::now()
    {
        return Err(not_modified);
    }
    Ok(())
}

/// Parses a `Range: bytes=...` header against an object size. `Ok(None)` = whole object
/// (no header, or one S3 ignores); unsatisfiable ranges are InvalidRange.
pub fn parse_range(value: Option<&str>, size: u64) -> S3Result<Option<(u64, u64)>> {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let range = match (a.parse::<u64>().ok(), b.parse::<u64>().ok()) {
        (Some(_), None) if !b.is_empty() => return Ok(None),
        (Some(start), Some(end)) if end < start => return Ok(None),
        (Some(start), end) => {
            if start >= size {
                return Err(S3Error::RangeNotSatisfiable { size });
            }
            (start, end.unwrap_or(u64::MAX).min(size - 1))
        }
        (None, Some(suffix)) if a.is_empty() => {
            if suffix == 0 || size == 0 {
                return Err(S3Error::RangeNotSatisfiable { size });
            }
            (size.saturating_sub(suffix), size - 1)
        }
        _ => return Ok(None),
    };
    Ok(Some(range))
}

/// Adds the object's stored headers to a response.
pub fn object_headers(
    mut resp: http::response::Builder,
    record: &pb::ObjectRecord,
    query: &super::router::Query,
) -> S3Result<http::response::Builder> {
    let overridden = |name: &str| query.get(&format!("response-{name}"));
    resp = resp
        .header(header::ETAG, header_value(&record.etag)?)
        .header(
            header::LAST_MODIFIED,
            header_value(&http_date(record.last_modified_ms))?,
        )
        .header(header::ACCEPT_RANGES, "bytes")
        .header(
            header::CONTENT_TYPE,
            header_value(overridden("content-type").unwrap_or(&record.content_type))?,
        );
    if let Some(count) = super::tagging::count_header(record) {
        resp = resp.header("x-amz-tagging-count", count);
    }
    for (name, value) in &record.headers {
        if overridden(name).is_none() {
            resp = resp.header(name.as_str(), header_value(value)?);
        }
    }
    for name in [
        "content-language",
        "expires",
        "cache-control",
        "content-disposition",
        "content-encoding",
    ] {
        if let Some(v) = overridden(name) {
            resp = resp.header(name, header_value(v)?);
        }
    }
    for (name, value) in &record.user_metadata {
        resp = resp.header(format!("x-amz-meta-{name}"), header_value(value)?);
    }
    with_version_id(resp, record)
}

pub async fn get_object(
    s3: &S3,
    req: S3Request,
    with_body: bool,
) -> S3Result<Response<ResponseBody>> {
    let selector = requested_version(&req)?;
    let record = readable_version(s3, req.bucket()?, req.key()?, selector).await?;
    serve_object(s3, &record, &req.headers, &req.query, with_body)
}

/// Answers a GET (`with_body`) or HEAD of a complete object: conditional headers, `Range` or
/// `?partNumber`, `response-*` overrides, checksums on request; the body is streamed from its
/// blocks. Shared by GetObject / HeadObject and the website endpoint.
pub fn serve_object(
    s3: &S3,
    record: &pb::ObjectRecord,
    headers: &HeaderMap,
    query: &super::router::Query,
    with_body: bool,
) -> S3Result<Response<ResponseBody>> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    check_conditions(headers, record, "")?;
    let size = record.size;
    // `?partNumber=N` serves one part of a multipart object (part 1 = all of any other).
    let part_number = query
        .get("partNumber")
        .map(super::multipart::parse_part_number)
        .transpose()?;
    let range = match part_number {
        Some(_) if header("range").is_some() => {
            return Err(S3Error::InvalidRequest(
                "Cannot specify both Range header and partNumber query parameter".into(),
            ));
        }
        Some(n) => super::multipart::part_range(record, n)?,
        None => parse_range(header("range"), size)?,
    };
    let (start, end) = range.unwrap_or((0, size.saturating_sub(1)));
    let empty_part = part_number.is_some() && range.is_none();
    let length = if size == 0 || empty_part {
        0
    } else {
        end - start + 1
    };

    let mut resp =
        object_headers(Response::builder(), record, query)?.header(header::CONTENT_LENGTH, length);
    if part_number.is_some() {
        resp = resp.status(StatusCode::PARTIAL_CONTENT);
        if !record.parts.is_empty() {
            resp = resp.header("x-amz-mp-parts-count", record.parts.len());
        }
    }
    if range.is_some() {
        resp = resp
            .status(StatusCode::PARTIAL_CONTENT)
            .header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}"));
    }
    if header("x-amz-checksum-mode").is_some_and(|m| m.eq_ignore_ascii_case("enabled"))
        && range.is_none()
    {
        for c in &record.checksums {
            resp = resp.header(
                format!("x-amz-checksum-{}", c.algorithm.to_lowercase()),
                header_value(&c.value)?,
            );
        }
    }
    let body = match (&record.body, with_body && length > 0) {
        (_, false) => body::empty(),
        (Some(Body::InlineData(data)), true) => {
            body::full(data.slice(start as usize..=end as usize))
        }
        (Some(Body::Blocks(list)), true) => {
            body::streamed(s3.cluster.block_reader(list.blocks.clone(), start, end + 1))
        }
        (None, true) => {
            return Err(S3Error::InternalError(
                "object record without a body".into(),
            ));
        }
    };
    resp.body(body)
        .map_err(|e| S3Error::InternalError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(Some("bytes=0-9"), 100).unwrap(), Some((0, 9)));
        assert_eq!(parse_range(Some("bytes=90-"), 100).unwrap(), Some((90, 99)));
        assert_eq!(
            parse_range(Some("bytes=90-500"), 100).unwrap(),
            Some((90, 99))
        );
        assert_eq!(parse_range(Some("bytes=-10"), 100).unwrap(), Some((90, 99)));
        assert_eq!(parse_range(Some("bytes=-500"), 100).unwrap(), Some((0, 99)));
        assert!(matches!(
            parse_range(Some("bytes=100-"), 100),
            Err(S3Error::RangeNotSatisfiable { size: 100 })
        ));
        assert!(matches!(
            parse_range(Some("bytes=-0"), 100),
            Err(S3Error::RangeNotSatisfiable { size: 100 })
        ));
        assert_eq!(parse_range(Some("bytes=5-2"), 100).unwrap(), None);
        assert_eq!(parse_range(Some("items=0-1"), 100).unwrap(), None);
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100).unwrap(), None);
        assert_eq!(parse_range(Some("bytes=a-b"), 100).unwrap(), None);
        assert_eq!(parse_range(None, 100).unwrap(), None);
    }

    #[test]
    fn etag_lists() {
        assert!(etag_matches("\"abc\"", "\"abc\""));
        assert!(etag_matches("x, \"abc\"", "\"abc\""));
        assert!(etag_matches("*", "\"abc\""));
        assert!(!etag_matches("\"abd\"", "\"abc\""));
    }
}

//! Multipart uploads: CreateMultipartUpload, UploadPart, UploadPartCopy,
//! CompleteMultipartUpload, AbortMultipartUpload, ListMultipartUploads and ListParts.
//!
//! The upload and its parts live in the Raft metadata ([`Upload`]); part data lives in blocks
//! owned by `<upload>/<part>/<attempt>`, so a re-uploaded part never shares references with
//! the attempt it replaces. Whoever makes an attempt obsolete (a replacing UploadPart, Abort,
//! Complete) drops its block references; blocks are only ever freed through references.
//!
//! Complete assembles the object without copying bytes: it announces the new version
//! (`uploading`, carrying the block list so an interrupted Complete is reclaimed when the
//! record expires), takes references on every part block for that version, flips the record
//! to `complete`, removes the upload from Raft and finally drops the upload's references.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE_NO_PAD};
use bytes::Bytes;
use cairn_proto::ids::{now_ms, object_owner};
use cairn_proto::meta::{
    Bucket, MAX_PART_NUMBER, MetaCommand, MetaError, MetaResult, ObjectTemplate, Part, PartBlock,
    Upload, part_owner_id,
};
use cairn_proto::pb::{self, RecordState, object_record::Body};
use futures::TryStreamExt;
use http::{Response, StatusCode, header};
use md5::{Digest, Md5};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use uuid::Uuid;

use super::copy::read_copy_source;
use super::object::{
    announce_uploading, declared_length, publish, record_from_headers, write_condition,
};
use super::router::Query;
use super::versioning::new_record;
use super::writer::{BlockCutter, owned_refs, release, write_blocks};
use super::{S3, S3Request, empty_response, header_value, owner_of, xml_response};
use crate::body::{self, BodyStream, ResponseBody};
use crate::checksum::{self, BodyHasher, ChecksumAlgorithm, RequestedChecksum};
use crate::error::{S3Error, S3Result};
use crate::xml::{
    self, CommonPrefix, CompleteMultipartUploadResult, CopyPartResult,
    InitiateMultipartUploadResult, ListMultipartUploadsResult, ListPartsResult, PartInfo,
    UploadInfo, Xmlns,
};

/// Smallest size of every part but the last (as AWS).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// Largest part (as AWS).
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// Largest page of ListParts / ListMultipartUploads.
const MAX_LIST: u32 = 1000;
/// Largest CompleteMultipartUpload document accepted (10 000 parts with checksums fit).
const MAX_COMPLETE_BODY: usize = 8 * 1024 * 1024;
/// Characters escaped by `encoding-type=url` (S3 keeps `/` and the unreserved set).
const URL_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// How an upload's object checksum is formed from its parts' checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumKind {
    /// The checksum of the concatenated part checksums, suffixed `-N`.
    Composite,
    /// The checksum of the whole object (CRCs only: combined from the part CRCs).
    FullObject,
}

impl ChecksumKind {
    fn name(self) -> &'static str {
        match self {
            ChecksumKind::Composite => "COMPOSITE",
            ChecksumKind::FullObject => "FULL_OBJECT",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "COMPOSITE" => Some(ChecksumKind::Composite),
            "FULL_OBJECT" => Some(ChecksumKind::FullObject),
            _ => None,
        }
    }
}

/// The checksum settings of CreateMultipartUpload (`x-amz-checksum-algorithm`,
/// `x-amz-checksum-type`), validated as AWS does.
pub fn checksum_settings(
    algorithm: Option<&str>,
    kind: Option<&str>,
) -> S3Result<Option<(ChecksumAlgorithm, ChecksumKind)>> {
    let algorithm = algorithm
        .map(|a| {
            ChecksumAlgorithm::from_name(a.trim()).ok_or_else(|| {
                S3Error::InvalidRequest(
                    "Checksum algorithm provided is unsupported. Please try again with any of the \
                     valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]"
                        .into(),
                )
            })
        })
        .transpose()?;
    let kind = kind
        .map(|k| {
            ChecksumKind::from_name(k.trim()).ok_or_else(|| {
                S3Error::InvalidRequest("Value for x-amz-checksum-type header is invalid.".into())
            })
        })
        .transpose()?;
    let Some(algorithm) = algorithm else {
        return match kind {
            Some(_) => Err(S3Error::InvalidRequest(
                "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm \
                 header."
                    .into(),
            )),
            None => Ok(None),
        };
    };
    let is_crc = matches!(
        algorithm,
        ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c | ChecksumAlgorithm::Crc64Nvme
    );
    let kind = match kind {
        Some(kind) => kind,
        None if algorithm == ChecksumAlgorithm::Crc64Nvme => ChecksumKind::FullObject,
        None => ChecksumKind::Composite,
    };
    let valid = match kind {
        ChecksumKind::FullObject => is_crc,
        ChecksumKind::Composite => algorithm != ChecksumAlgorithm::Crc64Nvme,
    };
    if !valid {
        return Err(S3Error::InvalidRequest(format!(
            "The {} checksum type cannot be used with the {} checksum algorithm.",
            kind.name(),
            algorithm.name().to_lowercase()
        )));
    }
    Ok(Some((algorithm, kind)))
}

/// The checksum settings stored with an upload.
fn template_checksum(template: &ObjectTemplate) -> Option<(ChecksumAlgorithm, ChecksumKind)> {
    let algorithm = ChecksumAlgorithm::from_name(template.checksum_algorithm.as_deref()?)?;
    let kind = template
        .checksum_type
        .as_deref()
        .and_then(ChecksumKind::from_name)
        .unwrap_or(ChecksumKind::Composite);
    Some((algorithm, kind))
}

/// A fresh upload id: URL-safe, and sorting by id sorts by initiation time.
fn new_upload_id() -> String {
    let ms = now_ms().max(0) as u64 & 0xffff_ffff_ffff;
    format!(
        "{ms:012x}{}",
        URL_SAFE_NO_PAD.encode(rand::random::<[u8; 15]>())
    )
}

/// The `partNumber` parameter: 1..=10000.
pub fn parse_part_number(value: &str) -> S3Result<u32> {
    value
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_PART_NUMBER).contains(n))
        .ok_or_else(|| {
            S3Error::InvalidArgument(
                "Part number must be an integer between 1 and 10000, inclusive".into(),
            )
        })
}

fn upload_id_param(query: &Query) -> S3Result<&str> {
    query
        .get("uploadId")
        .filter(|id| !id.is_empty())
        .ok_or(S3Error::NoSuchUpload)
}

/// Maps a refused upload command to an S3 error.
fn meta_error(e: MetaError) -> S3Error {
    match e {
        MetaError::NoSuchUpload(_) => S3Error::NoSuchUpload,
        MetaError::NoSuchBucket(_) => S3Error::NoSuchBucket,
        MetaError::Unavailable(why) => S3Error::ServiceUnavailable(why),
        other => S3Error::InternalError(other.to_string()),
    }
}

/// Commits an upload command through Raft.
async fn meta(s3: &S3, cmd: &MetaCommand) -> S3Result<MetaResult> {
    match s3.cluster.meta_write(cmd).await? {
        Ok(MetaResult::Err(e)) | Err(e) => Err(meta_error(e)),
        Ok(result) => Ok(result),
    }
}

/// The in-progress upload `id` of `key` in `bucket`. A cache miss (or `fresh`) is confirmed
/// with a linearizable read, so an upload created through another gateway is found.
async fn find_upload(
    s3: &S3,
    bucket: &Bucket,
    key: &str,
    id: &str,
    fresh: bool,
) -> S3Result<Upload> {
    let matches = |u: &&Upload| u.bucket_id == bucket.id && u.key == key;
    if !fresh && let Some(upload) = s3.cluster.view().meta.upload(id).filter(matches) {
        return Ok(upload.clone());
    }
    let view = s3.cluster.refresh().await?;
    view.meta
        .upload(id)
        .filter(matches)
        .cloned()
        .ok_or(S3Error::NoSuchUpload)
}

fn to_part_blocks(blocks: &[pb::BlockPointer]) -> Vec<PartBlock> {
    blocks
        .iter()
        .map(|b| PartBlock {
            id: hex::encode(&b.id),
            size: b.size,
        })
        .collect()
}

fn to_pointers(blocks: &[PartBlock]) -> S3Result<Vec<pb::BlockPointer>> {
    blocks
        .iter()
        .map(|b| {
            Ok(pb::BlockPointer {
                id: hex::decode(&b.id)
                    .map_err(|_| S3Error::InternalError(format!("bad block id {:?}", b.id)))?,
                size: b.size,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// CreateMultipartUpload
// ---------------------------------------------------------------------------------------------

pub async fn create_upload(s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    let bucket = req.bucket()?.clone();
    let key = req.key()?.to_string();
    let record = record_from_headers(&bucket, &key, &req.headers)?;
    let checksum = checksum_settings(
        req.header("x-amz-checksum-algorithm"),
        req.header("x-amz-checksum-type"),
    )?;
    let upload = Upload {
        id: new_upload_id(),
        bucket_id: bucket.id,
        key: key.clone(),
        initiated_ms: now_ms(),
        owner: req.access_key.id.clone(),
        template: ObjectTemplate {
            content_type: record.content_type,
            headers: record.headers.into_iter().collect(),
            user_metadata: record.user_metadata.into_iter().collect(),
            checksum_algorithm: checksum.map(|(a, _)| a.name().to_string()),
            checksum_type: checksum.map(|(_, k)| k.name().to_string()),
            tags: record.tags,
        },
        ..Default::default()
    };
    meta(
        s3,
        &MetaCommand::CreateUpload {
            upload: upload.clone(),
        },
    )
    .await?;
    let result = InitiateMultipartUploadResult {
        xmlns: Xmlns,
        bucket: bucket.name.clone(),
        key,
        upload_id: upload.id,
    };
    let mut resp = xml_response(StatusCode::OK, xml::to_xml(&result))?;
    if let Some((algorithm, kind)) = checksum {
        let headers = resp.headers_mut();
        headers.insert("x-amz-checksum-algorithm", header_value(algorithm.name())?);
        headers.insert("x-amz-checksum-type", header_value(kind.name())?);
    }
    Ok(resp)
}

// ---------------------------------------------------------------------------------------------
// UploadPart / UploadPartCopy
// ---------------------------------------------------------------------------------------------

/// What a part body is checked against.
#[derive(Default)]
struct PartChecks {
    content_md5: Option<String>,
    requested: Option<RequestedChecksum>,
    trailers: Option<crate::auth::chunked::TrailerSlot>,
}

/// Streams a part body into new blocks owned by a fresh attempt, verifies it and records
/// the part in Raft (releasing the attempt it replaces). Nothing is buffered beyond a few
/// blocks; on any failure the blocks written so far are released.
async fn store_part(
    s3: &S3,
    upload: &Upload,
    number: u32,
    body: BodyStream,
    checks: PartChecks,
) -> S3Result<Part> {
    let upload_algorithm = template_checksum(&upload.template).map(|(a, _)| a);
    let algorithm = match (&checks.requested, upload_algorithm) {
        (Some(r), Some(a)) if r.algorithm != a => {
            return Err(S3Error::InvalidRequest(format!(
                "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
                a.name().to_lowercase(),
                r.algorithm.name().to_lowercase()
            )));
        }
        (Some(r), _) => Some(r.algorithm),
        (None, a) => a,
    };
    let attempt = Uuid::new_v4().simple().to_string();
    let owner = pb::BlockOwner {
        owner: Some(pb::block_owner::Owner::UploadId(part_owner_id(
            &upload.id, number, &attempt,
        ))),
    };
    let hasher = BodyHasher::new(false, algorithm);
    let mut cutter = BlockCutter::new(body, s3.config.block_size, hasher, MAX_PART_SIZE);
    let blocks = write_blocks(&s3.cluster, &mut cutter, &owner, None).await?;
    let size = cutter.total();
    let digests = cutter.digests();
    let trailer_value = checks.requested.as_ref().and_then(|r| {
        let trailers = checks.trailers.as_ref()?.get()?;
        trailers
            .get(r.algorithm.header_name())?
            .to_str()
            .ok()
            .map(str::to_string)
    });
    if let Err(e) = checksum::verify(
        &digests,
        checks.content_md5.as_deref(),
        checks.requested.as_ref(),
        trailer_value.as_deref(),
    ) {
        release(&s3.cluster, owned_refs(&owner, &blocks));
        return Err(e);
    }
    let part = Part {
        number,
        etag: format!("\"{}\"", hex::encode(digests.md5)),
        size,
        checksums: digests
            .checksum
            .iter()
            .map(|(a, v)| (a.name().to_string(), v.clone()))
            .collect(),
        blocks: to_part_blocks(&blocks),
        attempt,
        last_modified_ms: now_ms(),
    };
    record_part(s3, upload, part).await
}

/// Records a written part in Raft; releases the attempt it replaced, or its own blocks if
/// the upload is gone.
async fn record_part(s3: &S3, upload: &Upload, part: Part) -> S3Result<Part> {
    let cmd = MetaCommand::PutPart {
        upload_id: upload.id.clone(),
        part: part.clone(),
    };
    match meta(s3, &cmd).await {
        Ok(MetaResult::Part(Some(replaced))) => {
            release(&s3.cluster, replaced.block_refs(&upload.id))
        }
        Ok(_) => {}
        Err(e) => {
            release(&s3.cluster, part.block_refs(&upload.id));
            return Err(e);
        }
    }
    Ok(part)
}

fn part_headers(
    mut resp: http::response::Builder,
    part: &Part,
) -> S3Result<http::response::Builder> {
    resp = resp.header(header::ETAG, header_value(&part.etag)?);
    for (algorithm, value) in &part.checksums {
        resp = resp.header(
            format!("x-amz-checksum-{}", algorithm.to_lowercase()),
            header_value(value)?,
        );
    }
    Ok(resp)
}

pub async fn upload_part(s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    let bucket = req.bucket()?.clone();
    let key = req.key()?.to_string();
    let number = parse_part_number(req.query.get("partNumber").unwrap_or(""))?;
    let upload_id = upload_id_param(&req.query)?.to_string();
    let declared = declared_length(&req, MAX_PART_SIZE)?;
    let upload = find_upload(s3, &bucket, &key, &upload_id, false).await?;
    let checks = PartChecks {
        content_md5: req.header("content-md5").map(str::to_string),
        requested: checksum::requested_checksum(&req.headers)?,
        trailers: Some(req.trailers.clone()),
    };
    let part = store_part(s3, &upload, number, req.body, checks).await?;
    if declared.is_some_and(|d| d != part.size) {
        // The part is recorded but the client will not trust it; it is replaced or dropped
        // with the upload, like any other part.
        return Err(S3Error::InvalidRequest(
            "IncompleteBody: the body length does not match Content-Length".into(),
        ));
    }
    part_headers(Response::builder().status(StatusCode::OK), &part)?
        .body(body::empty())
        .map_err(|e| S3Error::InternalError(e.to_string()))
}

/// Parses `x-amz-copy-source-range: bytes=first-last` against the source size.
pub fn parse_copy_range(value: &str, size: u64) -> S3Result<(u64, u64)> {
    let invalid = || {
        S3Error::InvalidArgument(
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first \
             and last are the zero-based offsets of the first and last bytes to copy"
                .into(),
        )
    };
    let spec = value.trim().strip_prefix("bytes=").ok_or_else(invalid)?;
    let (a, b) = spec.split_once('-').ok_or_else(invalid)?;
    let first: u64 = a.trim().parse().map_err(|_| invalid())?;
    let last: u64 = b.trim().parse().map_err(|_| invalid())?;
    if last < first {
        return Err(invalid());
    }
    if last >= size {
        return Err(S3Error::InvalidRange);
    }
    Ok((first, last))
}

/// Whether an ETag is a plain MD5 (not a multipart ETag).
fn is_md5_etag(etag: &str) -> bool {
    let bare = etag.trim_matches('"');
    bare.len() == 32 && bare.bytes().all(|b| b.is_ascii_hexdigit())
}

pub async fn upload_part_copy(s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    let bucket = req.bucket()?.clone();
    let key = req.key()?.to_string();
    let number = parse_part_number(req.query.get("partNumber").unwrap_or(""))?;
    let upload_id = upload_id_param(&req.query)?.to_string();
    let upload = find_upload(s3, &bucket, &key, &upload_id, false).await?;
    let (_, source) = read_copy_source(s3, &req.headers, &req.access_key).await?;
    let range = req
        .header("x-amz-copy-source-range")
        .map(|r| parse_copy_range(r, source.size))
        .transpose()?;
    let (first, last_exclusive) = match range {
        Some((first, last)) => (first, last + 1),
        None => (0, source.size),
    };
    if last_exclusive - first > MAX_PART_SIZE {
        return Err(S3Error::InvalidRequest(
            "The specified copy source is larger than the maximum allowable size for a copy \
             source: 5368709120"
                .into(),
        ));
    }

    let upload_algorithm = template_checksum(&upload.template).map(|(a, _)| a);
    let source_checksum = |a: ChecksumAlgorithm| {
        source
            .checksums
            .iter()
            .find(|c| c.algorithm == a.name() && c.kind != "COMPOSITE" && !c.value.contains('-'))
    };
    let shareable = range.is_none()
        && is_md5_etag(&source.etag)
        && upload_algorithm.is_none_or(|a| source_checksum(a).is_some());
    let part = match (&source.body, shareable) {
        (Some(Body::Blocks(list)), true) => {
            // The whole source: share its blocks under a new part attempt.
            let attempt = Uuid::new_v4().simple().to_string();
            let part = Part {
                number,
                etag: source.etag.clone(),
                size: source.size,
                checksums: upload_algorithm
                    .and_then(source_checksum)
                    .map(|c| (c.algorithm.clone(), c.value.clone()))
                    .into_iter()
                    .collect(),
                blocks: to_part_blocks(&list.blocks),
                attempt,
                last_modified_ms: now_ms(),
            };
            let refs = part.block_refs(&upload.id);
            if let Err(e) = s3.cluster.add_refs(&refs).await {
                release(&s3.cluster, refs);
                return Err(e);
            }
            record_part(s3, &upload, part).await?
        }
        _ => {
            // A range (or a source whose part ETag or checksum must be computed): read it and
            // write new blocks.
            let data: BodyStream = match &source.body {
                Some(Body::InlineData(data)) => {
                    let slice: Bytes = data.slice(first as usize..last_exclusive as usize);
                    Box::pin(futures::stream::once(async move { Ok(slice) }))
                }
                Some(Body::Blocks(list)) => Box::pin(
                    s3.cluster
                        .block_reader(list.blocks.clone(), first, last_exclusive)
                        .map_err(|e| {
                            S3Error::InternalError(format!("reading the copy source: {e}"))
                        }),
                ),
                None if source.size == 0 => Box::pin(futures::stream::empty()),
                None => {
                    return Err(S3Error::InternalError(
                        "object record without a body".into(),
                    ));
                }
            };
            store_part(s3, &upload, number, data, PartChecks::default()).await?
        }
    };
    let result = CopyPartResult {
        xmlns: Xmlns,
        last_modified: xml::s3_timestamp(part.last_modified_ms),
        etag: part.etag.clone(),
    };
    let mut resp = xml_response(StatusCode::OK, xml::to_xml(&result))?;
    for (algorithm, value) in &part.checksums {
        resp.headers_mut().insert(
            http::HeaderName::from_bytes(
                format!("x-amz-checksum-{}", algorithm.to_lowercase()).as_bytes(),
            )
            .map_err(|e| S3Error::InternalError(e.to_string()))?,
            header_value(value)?,
        );
    }
    Ok(resp)
}

// ---------------------------------------------------------------------------------------------
// CompleteMultipartUpload
// ---------------------------------------------------------------------------------------------

/// The part ETag with its quotes removed.
fn bare_etag(etag: &str) -> &str {
    etag.trim().trim_matches('"')
}

/// Checks a Complete request against the upload: part numbers ascending, every part known
/// with a matching ETag (and checksum, when given), every part but the last at least
/// [`MIN_PART_SIZE`]. Returns the parts in order.
pub fn validate_completion<'a>(
    upload: &'a Upload,
    requested: &[xml::CompletedPart],
) -> S3Result<Vec<&'a Part>> {
    if requested.is_empty() {
        return Err(S3Error::MalformedXML);
    }
    let mut parts = Vec::with_capacity(requested.len());
    let mut previous = 0;
    for want in requested {
        if !(1..=MAX_PART_NUMBER).contains(&want.part_number) {
            return Err(S3Error::InvalidArgument(
                "Part number must be an integer between 1 and 10000, inclusive".into(),
            ));
        }
        if want.part_number <= previous {
            return Err(S3Error::InvalidPartOrder);
        }
        previous = want.part_number;
        let part = upload
            .parts
            .get(&want.part_number)
            .filter(|p| bare_etag(&p.etag) == bare_etag(&want.etag))
            .ok_or(S3Error::InvalidPart)?;
        let given = [
            (ChecksumAlgorithm::Crc32, &want.checksum_crc32),
            (ChecksumAlgorithm::Crc32c, &want.checksum_crc32c),
            (ChecksumAlgorithm::Crc64Nvme, &want.checksum_crc64nvme),
            (ChecksumAlgorithm::Sha1, &want.checksum_sha1),
            (ChecksumAlgorithm::Sha256, &want.checksum_sha256),
        ];
        for (algorithm, value) in given {
            if let (Some(value), Some(stored)) = (value, part.checksums.get(algorithm.name()))
                && value.trim() != stored
            {
                return Err(S3Error::InvalidPart);
            }
        }
        parts.push(part);
    }
    if let Some((_, init)) = parts.split_last()
        && init.iter().any(|p| p.size < MIN_PART_SIZE)
    {
        return Err(S3Error::EntityTooSmall);
    }
    Ok(parts)
}

/// The ETag of a multipart object: MD5 of the concatenated binary part MD5s, `-N`, quoted.
pub fn multipart_etag(parts: &[&Part]) -> String {
    let mut md5 = Md5::new();
    for part in parts {
        match hex::decode(bare_etag(&part.etag)) {
            Ok(raw) => md5.update(&raw),
            Err(_) => md5.update(bare_etag(&part.etag).as_bytes()),
        }
    }
    format!("\"{}-{}\"", hex::encode(md5.finalize()), parts.len())
}

fn crc_algorithm(algorithm: ChecksumAlgorithm) -> Option<crc_fast::CrcAlgorithm> {
    match algorithm {
        ChecksumAlgorithm::Crc32 => Some(crc_fast::CrcAlgorithm::Crc32IsoHdlc),
        ChecksumAlgorithm::Crc32c => Some(crc_fast::CrcAlgorithm::Crc32Iscsi),
        ChecksumAlgorithm::Crc64Nvme => Some(crc_fast::CrcAlgorithm::Crc64Nvme),
        ChecksumAlgorithm::Sha1 | ChecksumAlgorithm::Sha256 => None,
    }
}

/// The object checksum of a completed upload, from its parts' checksums: COMPOSITE =
/// checksum of the concatenated raw part checksums + `-N`; FULL_OBJECT = the part CRCs
/// combined into the CRC of the whole body. `None` if a part lacks the checksum.
pub fn object_checksum(
    algorithm: ChecksumAlgorithm,
    kind: ChecksumKind,
    parts: &[&Part],
) -> Option<pb::Checksum> {
    let raws: Vec<Vec<u8>> = parts
        .iter()
        .map(|p| {
            BASE64
                .decode(p.checksums.get(algorithm.name())?)
                .ok()
                .filter(|raw| raw.len() == algorithm.digest_len())
        })
        .collect::<Option<_>>()?;
    let value = match kind {
        ChecksumKind::Composite => {
            let mut hasher = BodyHasher::new(false, Some(algorithm));
            for raw in &raws {
                hasher.update(raw);
            }
            format!("{}-{}", hasher.finish().checksum?.1, parts.len())
        }
        ChecksumKind::FullObject => {
            let crc = crc_algorithm(algorithm)?;
            let mut combined: Option<u64> = None;
            for (raw, part) in raws.iter().zip(parts) {
                let value = raw.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b));
                combined = Some(match combined {
                    None => value,
                    Some(c) => crc_fast::checksum_combine(crc, c, value, part.size),
                });
            }
            let be = combined?.to_be_bytes();
            BASE64.encode(&be[be.len() - algorithm.digest_len()..])
        }
    };
    Some(pb::Checksum {
        algorithm: algorithm.name().to_string(),
        value,
        kind: kind.name().to_string(),
    })
}

pub async fn complete_upload(s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    let bucket = req.bucket()?.clone();
    let key = req.key()?.to_string();
    let upload_id = upload_id_param(&req.query)?.to_string();
    let condition = write_condition(&req.headers)?;
    let host = req.header("host").unwrap_or("localhost").to_string();
    let doc = body::collect_limited(req.body, MAX_COMPLETE_BODY).await?;
    let request: xml::CompleteMultipartUpload = xml::from_xml(&doc)?;
    let upload = find_upload(s3, &bucket, &key, &upload_id, true).await?;
    let parts = validate_completion(&upload, &request.parts)?;

    let template = &upload.template;
    let checksum = match template_checksum(template) {
        Some((algorithm, kind)) => {
            Some(object_checksum(algorithm, kind, &parts).ok_or_else(|| {
                S3Error::InvalidRequest(format!(
                    "The upload was created using a {} checksum. The complete request must include \
                     the checksum for each part. It was missing for part {} in the request.",
                    algorithm.name().to_lowercase(),
                    parts
                        .iter()
                        .find(|p| !p.checksums.contains_key(algorithm.name()))
                        .map_or(0, |p| p.number)
                ))
            })?)
        }
        None => None,
    };
    let mut blocks = Vec::new();
    for part in &parts {
        blocks.extend(to_pointers(&part.blocks)?);
    }
    let mut record = pb::ObjectRecord {
        content_type: template.content_type.clone(),
        headers: template.headers.clone().into_iter().collect(),
        user_metadata: template.user_metadata.clone().into_iter().collect(),
        tags: template.tags.clone(),
        // The uploading record carries the blocks, so that if this Complete dies before the
        // flip, the record's expiry releases the references taken below.
        body: Some(Body::Blocks(pb::BlockList { blocks })),
        ..new_record(&bucket, &key)
    };
    let version = announce_uploading(s3, &mut record, &condition).await?;
    let owner = object_owner(&record.bucket_id, &key, &version);
    let refs: Vec<pb::BlockRefEntry> = cairn_proto::ids::record_blocks(&record)
        .iter()
        .map(|b| pb::BlockRefEntry {
            block_id: b.id.clone(),
            owner: Some(owner.clone()),
        })
        .collect();
    s3.cluster.add_refs(&refs).await?;

    record.state = RecordState::Complete as i32;
    record.size = parts.iter().map(|p| p.size).sum();
    record.etag = multipart_etag(&parts);
    record.parts = parts
        .iter()
        .map(|p| pb::PartSummary {
            number: p.number,
            size: p.size,
            etag: p.etag.clone(),
        })
        .collect();
    record.checksums = checksum.into_iter().collect();
    let stored = publish(s3, record, condition).await?;

    // The object now holds its own references: forget the upload and release its parts (the
    // ones used and any left over).
    let mut obsolete: BTreeMap<String, Vec<pb::BlockRefEntry>> = BTreeMap::new();
    for part in &parts {
        obsolete.insert(part.owner_id(&upload.id), part.block_refs(&upload.id));
    }
    match meta(
        s3,
        &MetaCommand::CompleteUpload {
            upload_id: upload.id.clone(),
        },
    )
    .await
    {
        Ok(MetaResult::Upload(done)) => {
            for part in done.parts.values() {
                obsolete.insert(part.owner_id(&done.id), part.block_refs(&done.id));
            }
        }
        Ok(_) => {}
        // Completed or aborted concurrently: the object is written all the same, and
        // whoever removed the upload released its current parts.
        Err(S3Error::NoSuchUpload) => {}
        Err(e) => return Err(e),
    }
    release(&s3.cluster, obsolete.into_values().flatten().collect());

    let location = format!(
        "{}://{host}/{}/{}",
        s3.config.scheme(),
        bucket.name,
        utf8_percent_encode(&key, URL_ENCODE)
    );
    let result = CompleteMultipartUploadResult {
        xmlns: Xmlns,
        location,
        bucket: bucket.name.clone(),
        key,
        etag: stored.etag.clone(),
    };
    let mut resp = xml_response(StatusCode::OK, xml::to_xml(&result))?;
    for c in &stored.checksums {
        let name = format!("x-amz-checksum-{}", c.algorithm.to_lowercase());
        resp.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| S3Error::InternalError(e.to_string()))?,
            header_value(&c.value)?,
        );
        resp.headers_mut()
            .insert("x-amz-checksum-type", header_value(&c.kind)?);
    }
    if let Some(id) = cairn_proto::versions::version_header(&stored) {
        resp.headers_mut()
            .insert(crate::error::VERSION_ID_HEADER, header_value(&id)?);
    }
    Ok(resp)
}

// ---------------------------------------------------------------------------------------------
// AbortMultipartUpload
// ---------------------------------------------------------------------------------------------

/// Removes an upload from Raft and releases its parts' blocks.
async fn abort(s3: &S3, upload_id: &str) -> S3Result<()> {
    let cmd = MetaCommand::AbortUpload {
        upload_id: upload_id.to_string(),
    };
    if let MetaResult::Upload(aborted) = meta(s3, &cmd).await? {
        release(&s3.cluster, aborted.block_refs());
    }
    Ok(())
}

pub async fn abort_upload(s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    let bucket = req.bucket()?.clone();
    let key = req.key()?.to_string();
    let upload_id = upload_id_param(&req.query)?.to_string();
    let upload = find_upload(s3, &bucket, &key, &upload_id, false).await?;
    abort(s3, &upload.id).await?;
    empty_response(StatusCode::NO_CONTENT)
}

/// Aborts every in-progress upload of a bucket that is about to be deleted (AWS drops them
/// with the bucket). An upload created concurrently is still forgotten by the state machine
/// when the bucket goes, but its blocks are then only reclaimed by a node-side sweep.
pub async fn abort_bucket_uploads(s3: &S3, bucket: &Bucket) -> S3Result<()> {
    let view = s3.cluster.refresh().await?;
    for upload in view
        .meta
        .uploads
        .values()
        .filter(|u| u.bucket_id == bucket.id)
    {
        match abort(s3, &upload.id).await {
            Ok(()) | Err(S3Error::NoSuchUpload) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// ListParts
// ---------------------------------------------------------------------------------------------

/// Parses a numeric listing parameter (absent = `default`, capped at [`MAX_LIST`]).
fn list_limit(query: &Query, name: &str, default: u32) -> S3Result<u32> {
    match query.get(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(|n| n.min(i64::from(MAX_LIST)) as u32)
            .ok_or_else(|| {
                S3Error::InvalidArgument(format!(
                    "Provided {name} not an integer or within integer range"
                ))
            }),
    }
}

/// One page of parts: those numbered after `marker`, at most `max`; whether more follow.
pub fn parts_page(upload: &Upload, marker: u32, max: u32) -> (Vec<&Part>, bool) {
    let mut after = upload
        .parts
        .range(marker.saturating_add(1)..)
        .map(|(_, p)| p);
    let page: Vec<&Part> = after.by_ref().take(max as usize).collect();
    (page, after.next().is_some())
}

pub async fn list_parts(s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    let bucket = req.bucket()?.clone();
    let key = req.key()?.to_string();
    let upload_id = upload_id_param(&req.query)?.to_string();
    let max_parts = list_limit(&req.query, "max-parts", MAX_LIST)?;
    let marker = match req.query.get("part-number-marker") {
        None | Some("") => 0,
        Some(v) => v.trim().parse::<u32>().map_err(|_| {
            S3Error::InvalidArgument(
                "Provided part-number-marker not an integer or within integer range".into(),
            )
        })?,
    };
    // Every part uploaded before this request shows (through any gateway).
    let upload = find_upload(s3, &bucket, &key, &upload_id, true).await?;
    let (page, truncated) = parts_page(&upload, marker, max_parts);
    let result = ListPartsResult {
        xmlns: Xmlns,
        bucket: bucket.name.clone(),
        key,
        upload_id: upload.id.clone(),
        initiator: owner_of(&upload.owner),
        owner: owner_of(&upload.owner),
        storage_class: "STANDARD".into(),
        part_number_marker: marker,
        next_part_number_marker: if truncated {
            page.last().map(|p| p.number)
        } else {
            None
        },
        max_parts,
        is_truncated: truncated,
        parts: page
            .iter()
            .map(|p| PartInfo {
                part_number: p.number,
                last_modified: xml::s3_timestamp(p.last_modified_ms),
                etag: p.etag.clone(),
                size: p.size,
            })
            .collect(),
    };
    xml_response(StatusCode::OK, xml::to_xml(&result))
}

// ---------------------------------------------------------------------------------------------
// ListMultipartUploads
// ---------------------------------------------------------------------------------------------

/// What a ListMultipartUploads request asks for.
#[derive(Debug, Clone, Default)]
pub struct UploadListParams {
    pub prefix: String,
    pub delimiter: String,
    pub key_marker: String,
    pub upload_id_marker: String,
    pub max_uploads: u32,
}

/// One page of in-progress uploads.
#[derive(Debug, Default)]
pub struct UploadListPage<'a> {
    pub uploads: Vec<&'a Upload>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    pub next_key_marker: Option<String>,
    pub next_upload_id_marker: Option<String>,
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

/// Pages the uploads of one bucket, sorted by (key, upload id), as S3 does: after
/// (key-marker, upload-id-marker), with prefix roll-up by delimiter; a common prefix counts
/// as one entry.
pub fn list_uploads_page<'a>(
    uploads: impl IntoIterator<Item = &'a Upload>,
    p: &UploadListParams,
) -> UploadListPage<'a> {
    let mut sorted: Vec<&Upload> = uploads
        .into_iter()
        .filter(|u| !u.completed && u.key.starts_with(&p.prefix))
        .collect();
    sorted.sort_by(|a, b| (&a.key, &a.id).cmp(&(&b.key, &b.id)));
    let mut page = UploadListPage::default();
    let mut last: Option<(String, Option<String>)> = None;
    for upload in sorted {
        if !p.key_marker.is_empty() {
            let after = if p.upload_id_marker.is_empty() {
                upload.key > p.key_marker
            } else {
                (&upload.key, &upload.id) > (&p.key_marker, &p.upload_id_marker)
            };
            if !after {
                continue;
            }
        }
        let rolled = common_prefix(&upload.key, &p.prefix, &p.delimiter);
        if let Some(cp) = &rolled
            && (*cp == p.key_marker || page.common_prefixes.last() == Some(cp))
        {
            continue;
        }
        if (page.uploads.len() + page.common_prefixes.len()) as u32 >= p.max_uploads {
            page.truncated = true;
            break;
        }
        match rolled {
            Some(cp) => {
                last = Some((cp.clone(), None));
                page.common_prefixes.push(cp);
            }
            None => {
                last = Some((upload.key.clone(), Some(upload.id.clone())));
                page.uploads.push(upload);
            }
        }
    }
    if page.truncated
        && let Some((key, id)) = last
    {
        page.next_key_marker = Some(key);
        page.next_upload_id_marker = id;
    }
    page
}

pub async fn list_uploads(s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    let bucket = req.bucket()?.clone();
    let encode = match req.query.get("encoding-type") {
        None => false,
        Some(t) if t.eq_ignore_ascii_case("url") => true,
        Some(_) => {
            return Err(S3Error::InvalidArgument(
                "Invalid Encoding Method specified in Request".into(),
            ));
        }
    };
    let text = |name: &str| req.query.get(name).unwrap_or("").to_string();
    let params = UploadListParams {
        prefix: text("prefix"),
        delimiter: text("delimiter"),
        key_marker: text("key-marker"),
        upload_id_marker: text("upload-id-marker"),
        max_uploads: list_limit(&req.query, "max-uploads", MAX_LIST)?,
    };
    // Every upload created or finished before this request shows (through any gateway).
    let view = s3.cluster.refresh().await?;
    let page = list_uploads_page(
        view.meta
            .uploads
            .values()
            .filter(|u| u.bucket_id == bucket.id),
        &params,
    );
    let enc = |s: &str| {
        if encode {
            utf8_percent_encode(s, URL_ENCODE).to_string()
        } else {
            s.to_string()
        }
    };
    let non_empty = |s: &str| (!s.is_empty()).then(|| enc(s));
    let result = ListMultipartUploadsResult {
        xmlns: Xmlns,
        bucket: bucket.name.clone(),
        key_marker: enc(&params.key_marker),
        upload_id_marker: params.upload_id_marker.clone(),
        next_key_marker: page.next_key_marker.as_deref().map(enc),
        next_upload_id_marker: page.next_upload_id_marker.clone(),
        delimiter: non_empty(&params.delimiter),
        prefix: non_empty(&params.prefix),
        encoding_type: encode.then(|| "url".to_string()),
        max_uploads: params.max_uploads,
        is_truncated: page.truncated,
        uploads: page
            .uploads
            .iter()
            .map(|u| UploadInfo {
                key: enc(&u.key),
                upload_id: u.id.clone(),
                initiator: owner_of(&u.owner),
                owner: owner_of(&u.owner),
                storage_class: "STANDARD".into(),
                initiated: xml::s3_timestamp(u.initiated_ms),
            })
            .collect(),
        common_prefixes: page
            .common_prefixes
            .iter()
            .map(|p| CommonPrefix { prefix: enc(p) })
            .collect(),
    };
    xml_response(StatusCode::OK, xml::to_xml(&result))
}

// ---------------------------------------------------------------------------------------------
// GetObject / HeadObject ?partNumber=
// ---------------------------------------------------------------------------------------------

/// The inclusive byte range of part `number` of an object: from the record's part sizes,
/// or the whole object for part 1 of an object not uploaded in parts. `None` for an empty
/// part (nothing to send).
pub fn part_range(record: &pb::ObjectRecord, number: u32) -> S3Result<Option<(u64, u64)>> {
    let (start, size) = if record.parts.is_empty() {
        if number != 1 {
            return Err(S3Error::InvalidPartNumber);
        }
        (0, record.size)
    } else {
        let mut offset = 0;
        let mut found = None;
        for part in &record.parts {
            if part.number == number {
                found = Some((offset, part.size));
                break;
            }
            offset += part.size;
        }
        found.ok_or(S3Error::InvalidPartNumber)?
    };
    Ok((size > 0).then(|| (start, start + size - 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(number: u32, data: &[u8], algorithm: Option<ChecksumAlgorithm>) -> Part {
        let mut hasher = BodyHasher::new(false, algorithm);
        hasher.update(data);
        let d = hasher.finish();
        Part {
            number,
            etag: format!("\"{}\"", hex::encode(d.md5)),
            size: data.len() as u64,
            checksums: d
                .checksum
                .into_iter()
                .map(|(a, v)| (a.name().to_string(), v))
                .collect(),
            attempt: format!("a{number}"),
            ..Default::default()
        }
    }

    fn upload_with(parts: Vec<Part>) -> Upload {
        Upload {
            id: "u".into(),
            key: "k".into(),
            parts: parts.into_iter().map(|p| (p.number, p)).collect(),
            ..Default::default()
        }
    }

    fn completed(number: u32, etag: &str) -> xml::CompletedPart {
        xml::CompletedPart {
            part_number: number,
            etag: etag.into(),
            ..Default::default()
        }
    }

    #[test]
    fn multipart_etag_is_md5_of_binary_md5s() {
        // Two parts "a" and "b": md5(md5("a") ‖ md5("b")), computed independently.
        let a = part(1, b"a", None);
        let b = part(2, b"b", None);
        let mut expected = Md5::new();
        expected.update(Md5::digest(b"a"));
        expected.update(Md5::digest(b"b"));
        assert_eq!(
            multipart_etag(&[&a, &b]),
            format!("\"{}-2\"", hex::encode(expected.finalize()))
        );
        // The value S3 gives for one part "hello world".
        let hw = part(1, b"hello world", None);
        assert_eq!(
            multipart_etag(&[&hw]),
            format!(
                "\"{}-1\"",
                hex::encode(Md5::digest(
                    hex::decode("5eb63bbbe01eeed093cb22bb8f5acdc3").unwrap()
                ))
            )
        );
    }

    #[test]
    fn completion_checks_order_etags_and_sizes() {
        let big = vec![7u8; MIN_PART_SIZE as usize];
        let upload = upload_with(vec![
            part(1, &big, None),
            part(2, b"small", None),
            part(3, b"tail", None),
        ]);
        let etag = |n: u32| upload.parts[&n].etag.clone();
        let code = |r: S3Result<Vec<&Part>>| r.unwrap_err().code();

        let ok = validate_completion(&upload, &[completed(1, &etag(1)), completed(3, &etag(3))])
            .unwrap();
        assert_eq!(ok.iter().map(|p| p.number).collect::<Vec<_>>(), vec![1, 3]);
        // ETags are accepted without quotes.
        assert!(validate_completion(&upload, &[completed(1, etag(1).trim_matches('"'))]).is_ok());

        assert_eq!(code(validate_completion(&upload, &[])), "MalformedXML");
        assert_eq!(
            code(validate_completion(
                &upload,
                &[completed(3, &etag(3)), completed(1, &etag(1))]
            )),
            "InvalidPartOrder"
        );
        assert_eq!(
            code(validate_completion(
                &upload,
                &[completed(1, &etag(1)), completed(1, &etag(1))]
            )),
            "InvalidPartOrder"
        );
        assert_eq!(
            code(validate_completion(&upload, &[completed(4, &etag(3))])),
            "InvalidPart"
        );
        assert_eq!(
            code(validate_completion(&upload, &[completed(1, &etag(3))])),
            "InvalidPart"
        );
        assert_eq!(
            code(validate_completion(
                &upload,
                &[completed(2, &etag(2)), completed(3, &etag(3))]
            )),
            "EntityTooSmall"
        );
        assert_eq!(
            code(validate_completion(&upload, &[completed(0, &etag(1))])),
            "InvalidArgument"
        );
    }

    #[test]
    fn completion_compares_given_checksums() {
        let upload = upload_with(vec![part(
            1,
            b"hello world",
            Some(ChecksumAlgorithm::Crc32),
        )]);
        let etag = upload.parts[&1].etag.clone();
        let mut good = completed(1, &etag);
        good.checksum_crc32 = Some("DUoRhQ==".into());
        assert!(validate_completion(&upload, &[good.clone()]).is_ok());
        good.checksum_crc32 = Some("AAAAAA==".into());
        assert_eq!(
            validate_completion(&upload, &[good]).unwrap_err().code(),
            "InvalidPart"
        );
    }

    #[test]
    fn object_checksums_from_parts() {
        let data: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
        let pieces = [&data[..1000], &data[1000..2999], &data[2999..]];
        for algorithm in [
            ChecksumAlgorithm::Crc32,
            ChecksumAlgorithm::Crc32c,
            ChecksumAlgorithm::Crc64Nvme,
        ] {
            let parts: Vec<Part> = pieces
                .iter()
                .enumerate()
                .map(|(i, d)| part(i as u32 + 1, d, Some(algorithm)))
                .collect();
            let refs: Vec<&Part> = parts.iter().collect();
            let full = object_checksum(algorithm, ChecksumKind::FullObject, &refs).unwrap();
            let mut whole = BodyHasher::new(false, Some(algorithm));
            whole.update(&data);
            assert_eq!(
                full.value,
                whole.finish().checksum.unwrap().1,
                "{algorithm:?}"
            );
            assert_eq!(full.kind, "FULL_OBJECT");
        }
        // COMPOSITE: the checksum of the concatenated raw part checksums, "-N".
        let parts: Vec<Part> = pieces
            .iter()
            .enumerate()
            .map(|(i, d)| part(i as u32 + 1, d, Some(ChecksumAlgorithm::Sha256)))
            .collect();
        let refs: Vec<&Part> = parts.iter().collect();
        let composite =
            object_checksum(ChecksumAlgorithm::Sha256, ChecksumKind::Composite, &refs).unwrap();
        let mut concat = Vec::new();
        for p in &parts {
            concat.extend(BASE64.decode(&p.checksums["SHA256"]).unwrap());
        }
        let expected = BASE64.encode(sha2::Sha256::digest(&concat));
        assert_eq!(composite.value, format!("{expected}-3"));
        // A part without the checksum: none.
        let plain = part(1, b"x", None);
        assert!(
            object_checksum(ChecksumAlgorithm::Crc32, ChecksumKind::Composite, &[&plain]).is_none()
        );
        // SHA cannot be combined into a full-object checksum.
        assert!(
            object_checksum(ChecksumAlgorithm::Sha256, ChecksumKind::FullObject, &refs).is_none()
        );
    }

    #[test]
    fn checksum_settings_follow_aws_rules() {
        use ChecksumAlgorithm::*;
        use ChecksumKind::*;
        assert_eq!(checksum_settings(None, None).unwrap(), None);
        assert_eq!(
            checksum_settings(Some("crc32"), None).unwrap(),
            Some((Crc32, Composite))
        );
        assert_eq!(
            checksum_settings(Some("CRC64NVME"), None).unwrap(),
            Some((Crc64Nvme, FullObject))
        );
        assert_eq!(
            checksum_settings(Some("CRC32C"), Some("FULL_OBJECT")).unwrap(),
            Some((Crc32c, FullObject))
        );
        assert_eq!(
            checksum_settings(Some("SHA1"), Some("COMPOSITE")).unwrap(),
            Some((Sha1, Composite))
        );
        for (a, k) in [
            (Some("CRC64NVME"), Some("COMPOSITE")),
            (Some("SHA256"), Some("FULL_OBJECT")),
            (None, Some("COMPOSITE")),
            (Some("MD5"), None),
            (Some("CRC32"), Some("PARTIAL")),
        ] {
            assert_eq!(
                checksum_settings(a, k).unwrap_err().code(),
                "InvalidRequest",
                "{a:?} {k:?}"
            );
        }
    }

    #[test]
    fn copy_ranges() {
        assert_eq!(parse_copy_range("bytes=0-9", 100).unwrap(), (0, 9));
        assert_eq!(parse_copy_range("bytes=99-99", 100).unwrap(), (99, 99));
        for bad in [
            "bytes=5-",
            "bytes=-5",
            "bytes=9-0",
            "0-9",
            "bytes=a-b",
            "bytes=0-1,3-4",
        ] {
            assert_eq!(
                parse_copy_range(bad, 100).unwrap_err().code(),
                "InvalidArgument",
                "{bad}"
            );
        }
        assert_eq!(
            parse_copy_range("bytes=50-100", 100).unwrap_err().code(),
            "InvalidRange"
        );
    }

    #[test]
    fn part_numbers() {
        assert_eq!(parse_part_number("1").unwrap(), 1);
        assert_eq!(parse_part_number("10000").unwrap(), 10000);
        for bad in ["0", "10001", "-1", "x", ""] {
            assert_eq!(
                parse_part_number(bad).unwrap_err().code(),
                "InvalidArgument",
                "{bad}"
            );
        }
    }

    #[test]
    fn upload_ids_are_url_safe_and_sort_by_time() {
        let a = new_upload_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_upload_id();
        assert!(a < b);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_ne!(a, b);
    }

    #[test]
    fn parts_pages() {
        let upload = upload_with((1..=5).map(|n| part(n * 2, b"x", None)).collect());
        let numbers = |(page, more): (Vec<&Part>, bool)| {
            (page.iter().map(|p| p.number).collect::<Vec<_>>(), more)
        };
        assert_eq!(numbers(parts_page(&upload, 0, 2)), (vec![2, 4], true));
        assert_eq!(numbers(parts_page(&upload, 4, 2)), (vec![6, 8], true));
        assert_eq!(numbers(parts_page(&upload, 8, 2)), (vec![10], false));
        assert_eq!(
            numbers(parts_page(&upload, 5, 1000)),
            (vec![6, 8, 10], false)
        );
        assert_eq!(numbers(parts_page(&upload, 10, 2)), (vec![], false));
        assert_eq!(numbers(parts_page(&upload, u32::MAX, 2)), (vec![], false));
    }

    fn uploads(entries: &[(&str, &str)]) -> Vec<Upload> {
        entries
            .iter()
            .map(|(key, id)| Upload {
                id: id.to_string(),
                key: key.to_string(),
                ..Default::default()
            })
            .collect()
    }

    fn ids(page: &UploadListPage<'_>) -> Vec<String> {
        page.uploads
            .iter()
            .map(|u| format!("{}:{}", u.key, u.id))
            .collect()
    }

    #[test]
    fn upload_listing_pages_by_key_then_id() {
        let all = uploads(&[("b", "2"), ("a", "1"), ("b", "1"), ("c", "9"), ("a", "3")]);
        let mut params = UploadListParams {
            max_uploads: 2,
            ..Default::default()
        };
        let mut seen = Vec::new();
        loop {
            let page = list_uploads_page(&all, &params);
            seen.extend(ids(&page));
            if !page.truncated {
                break;
            }
            params.key_marker = page.next_key_marker.clone().unwrap();
            params.upload_id_marker = page.next_upload_id_marker.clone().unwrap();
        }
        assert_eq!(seen, vec!["a:1", "a:3", "b:1", "b:2", "c:9"]);

        // key-marker alone skips every upload of that key.
        let page = list_uploads_page(
            &all,
            &UploadListParams {
                key_marker: "a".into(),
                max_uploads: 10,
                ..Default::default()
            },
        );
        assert_eq!(ids(&page), vec!["b:1", "b:2", "c:9"]);
        // upload-id-marker without key-marker is ignored.
        let page = list_uploads_page(
            &all,
            &UploadListParams {
                upload_id_marker: "2".into(),
                max_uploads: 10,
                ..Default::default()
            },
        );
        assert_eq!(page.uploads.len(), 5);
        let page = list_uploads_page(&all, &UploadListParams::default());
        assert!(page.uploads.is_empty() && page.truncated);
    }

    #[test]
    fn upload_listing_rolls_up_prefixes() {
        let all = uploads(&[
            ("logs/2024/a", "1"),
            ("logs/2024/b", "1"),
            ("logs/2025/a", "1"),
            ("logs/top", "1"),
            ("other", "1"),
        ]);
        let params = UploadListParams {
            prefix: "logs/".into(),
            delimiter: "/".into(),
            max_uploads: 1000,
            ..Default::default()
        };
        let page = list_uploads_page(&all, &params);
        assert_eq!(page.common_prefixes, vec!["logs/2024/", "logs/2025/"]);
        assert_eq!(ids(&page), vec!["logs/top:1"]);
        assert!(!page.truncated);

        // Paging one entry at a time visits each prefix once.
        let mut params = UploadListParams {
            max_uploads: 1,
            ..params
        };
        let mut seen = Vec::new();
        loop {
            let page = list_uploads_page(&all, &params);
            seen.extend(page.common_prefixes.iter().cloned());
            seen.extend(ids(&page));
            if !page.truncated {
                break;
            }
            params.key_marker = page.next_key_marker.clone().unwrap();
            params.upload_id_marker = page.next_upload_id_marker.clone().unwrap_or_default();
        }
        assert_eq!(seen, vec!["logs/2024/", "logs/2025/", "logs/top:1"]);
    }

    #[test]
    fn part_ranges() {
        let mut record = pb::ObjectRecord {
            size: 25,
            ..Default::default()
        };
        assert_eq!(part_range(&record, 1).unwrap(), Some((0, 24)));
        assert_eq!(
            part_range(&record, 2).unwrap_err().code(),
            "InvalidPartNumber"
        );
        record.parts = [(1, 10), (2, 10), (3, 5)]
            .iter()
            .map(|&(number, size)| pb::PartSummary {
                number,
                size,
                etag: String::new(),
            })
            .collect();
        assert_eq!(part_range(&record, 1).unwrap(), Some((0, 9)));
        assert_eq!(part_range(&record, 2).unwrap(), Some((10, 19)));
        assert_eq!(part_range(&record, 3).unwrap(), Some((20, 24)));
        assert_eq!(
            part_range(&record, 4).unwrap_err().code(),
            "InvalidPartNumber"
        );
        assert_eq!(part_range(&pb::ObjectRecord::default(), 1).unwrap(), None);
    }
}

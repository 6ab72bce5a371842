//! Bucket versioning: Put/GetBucketVersioning, `versionId` on GET / HEAD / DELETE, delete
//! markers, and the `x-amz-version-id` header. The retention rules themselves live with the
//! records (`cairn_proto::versions`): this module only stamps each new record with its
//! bucket's versioning status and names versions for clients.

use cairn_proto::meta::{Bucket, BucketVersioning, MetaCommand};
use cairn_proto::pb::{self, RecordState};
use cairn_proto::versions::{self, VersionSelector, is_delete_marker, version_header};
use http::{Response, StatusCode};

use super::bucket::meta_error;
use super::{S3, S3Request, empty_response, header_value, xml_response};
use crate::body::{self, ResponseBody};
use crate::error::{DELETE_MARKER_HEADER, S3Error, S3Result, VERSION_ID_HEADER};
use crate::xml::{self, VersioningConfiguration, Xmlns};

/// Largest PutBucketVersioning body accepted.
const MAX_BODY: usize = 64 * 1024;

/// A new record of `key` in `bucket`, stamped with the bucket's versioning status.
pub fn new_record(bucket: &Bucket, key: &str) -> pb::ObjectRecord {
    let (versioned, null_version) = bucket.record_versioning();
    pb::ObjectRecord {
        bucket_id: bucket.id.as_bytes().to_vec(),
        key: key.to_string(),
        versioned,
        null_version,
        ..Default::default()
    }
}

/// A delete of `key` as DeleteObject without a version id makes it: a tombstone in an
/// unversioned bucket, a delete marker otherwise.
pub fn tombstone(bucket: &Bucket, key: &str) -> pb::ObjectRecord {
    pb::ObjectRecord {
        state: RecordState::Tombstone as i32,
        ..new_record(bucket, key)
    }
}

/// The `versionId` a request names, if any (`InvalidArgument` when Cairn cannot have made it).
pub fn requested_version(req: &S3Request) -> S3Result<Option<VersionSelector>> {
    parse_version_id(req.query.get("versionId"))
}

/// Parses an optional version id.
pub fn parse_version_id(id: Option<&str>) -> S3Result<Option<VersionSelector>> {
    id.map(|id| {
        VersionSelector::parse(id)
            .ok_or_else(|| S3Error::InvalidArgument("Invalid version id specified".into()))
    })
    .transpose()
}

/// Adds `x-amz-version-id` for a record of a versioned bucket.
pub fn with_version_id(
    resp: http::response::Builder,
    record: &pb::ObjectRecord,
) -> S3Result<http::response::Builder> {
    Ok(match version_header(record) {
        Some(id) => resp.header(VERSION_ID_HEADER, header_value(&id)?),
        None => resp,
    })
}

/// The complete object a GET / HEAD (or a copy source) names: the latest version, or the one
/// `versionId` selects. Delete markers answer as S3 does: 404 with `x-amz-delete-marker` when
/// latest, 405 when asked for by id.
pub async fn readable_version(
    s3: &S3,
    bucket: &Bucket,
    key: &str,
    selector: Option<VersionSelector>,
) -> S3Result<pb::ObjectRecord> {
    let record = s3.cluster.get_record(&bucket.id, key, selector).await?;
    match (record, selector) {
        (Some(r), _) if r.state() == RecordState::Complete => Ok(r),
        (Some(r), None) if is_delete_marker(&r) => Err(S3Error::NoSuchKeyDeleteMarker {
            version_id: version_header(&r),
        }),
        (Some(r), Some(_)) if is_delete_marker(&r) => Err(S3Error::DeleteMarkerNotAllowed {
            version_id: versions::version_id(&r),
            last_modified: super::object::http_date(r.last_modified_ms),
        }),
        (_, Some(_)) => Err(S3Error::NoSuchVersion),
        (_, None) => Err(S3Error::NoSuchKey),
    }
}

/// What a delete did, for the response.
pub struct Deleted {
    /// The version id deleted or created (versioned buckets only).
    pub version_id: Option<String>,
    /// Whether a delete marker was created or deleted.
    pub delete_marker: bool,
}

/// Deletes `key` as DeleteObject does: without a version, a tombstone or delete marker;
/// with one, that version for good (deleting a version that does not exist succeeds).
pub async fn delete_version(
    s3: &S3,
    bucket: &Bucket,
    key: &str,
    selector: Option<VersionSelector>,
) -> S3Result<Deleted> {
    let Some(selector) = selector else {
        let stored = s3.cluster.coordinate(tombstone(bucket, key)).await?;
        let marker = stored.record.as_ref().is_some_and(is_delete_marker);
        return Ok(Deleted {
            version_id: stored.record.as_ref().and_then(version_header),
            delete_marker: marker,
        });
    };
    let shown = match selector {
        VersionSelector::Null => versions::NULL_VERSION_ID.to_string(),
        VersionSelector::Id(v) => v.to_version_id(),
    };
    let Some(target) = s3
        .cluster
        .get_record(&bucket.id, key, Some(selector))
        .await?
    else {
        return Ok(Deleted {
            version_id: Some(shown),
            delete_marker: false,
        });
    };
    s3.cluster.coordinate(versions::purge_of(&target)).await?;
    Ok(Deleted {
        version_id: Some(shown),
        delete_marker: is_delete_marker(&target),
    })
}

pub async fn delete_object(s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    let selector = requested_version(&req)?;
    let deleted = delete_version(s3, req.bucket()?, req.key()?, selector).await?;
    let mut resp = Response::builder().status(StatusCode::NO_CONTENT);
    if let Some(id) = &deleted.version_id {
        resp = resp.header(VERSION_ID_HEADER, header_value(id)?);
    }
    if deleted.delete_marker {
        resp = resp.header(DELETE_MARKER_HEADER, "true");
    }
    resp.body(body::empty())
        .map_err(|e| S3Error::InternalError(e.to_string()))
}

pub async fn get_versioning(_s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    let status = req.bucket()?.versioning.map(|s| match s {
        BucketVersioning::Enabled => "Enabled".to_string(),
        BucketVersioning::Suspended => "Suspended".to_string(),
    });
    xml_response(
        StatusCode::OK,
        xml::to_xml(&VersioningConfiguration {
            xmlns: Xmlns,
            status,
            ..Default::default()
        }),
    )
}

pub async fn put_versioning(s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    let bucket = req.bucket()?.clone();
    let body = body::collect_limited(req.body, MAX_BODY).await?;
    let doc: VersioningConfiguration = xml::from_xml(&body)?;
    if doc.mfa_delete.as_deref() == Some("Enabled") {
        return Err(S3Error::NotImplemented("MFA delete".into()));
    }
    let status = match doc.status.as_deref() {
        Some("Enabled") => BucketVersioning::Enabled,
        Some("Suspended") => BucketVersioning::Suspended,
        // No status: nothing to change (as S3).
        None => return empty_response(StatusCode::OK),
        Some(_) => return Err(S3Error::MalformedXML),
    };
    let cmd = MetaCommand::SetBucketVersioning {
        bucket: bucket.name.clone(),
        status,
    };
    s3.cluster.meta_write(&cmd).await?.map_err(meta_error)?;
    empty_response(StatusCode::OK)
}

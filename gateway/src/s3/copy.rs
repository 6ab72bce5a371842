//! CopyObject: a new object version that shares the source's blocks (by taking references
//! on them), so no body bytes are copied.

use cairn_proto::ids::object_owner;
use cairn_proto::pb::{self, RecordState, object_record::Body};
use http::{HeaderMap, Response, StatusCode};

use cairn_proto::meta::{AccessKey, Bucket};
use cairn_proto::versions::{VersionSelector, version_header};

use super::object::{
    announce_uploading, check_conditions, publish, record_from_headers, write_condition,
};
use super::router::Access;
use super::tagging;
use super::versioning::{new_record, parse_version_id, readable_version};
use super::{S3, S3Request, check_rights, header_value, xml_response};
use crate::body::ResponseBody;
use crate::error::{S3Error, S3Result, VERSION_ID_HEADER};
use crate::xml::{self, CopyObjectResult, Xmlns};

/// A parsed `x-amz-copy-source`.
#[derive(Debug, PartialEq)]
pub struct CopySource {
    pub bucket: String,
    pub key: String,
    pub version: Option<VersionSelector>,
}

/// Parses `x-amz-copy-source` (`[/]bucket/key[?versionId=..]`, URL-encoded).
pub fn parse_copy_source(value: &str) -> S3Result<CopySource> {
    let invalid = || S3Error::InvalidArgument("Invalid copy source object key".into());
    let (path, query) = value.split_once('?').unwrap_or((value, ""));
    let version_id = query.split('&').find_map(|p| p.strip_prefix("versionId="));
    let version = parse_version_id(version_id)?;
    let path = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| invalid())?;
    let path = path.strip_prefix('/').unwrap_or(&path);
    let (bucket, key) = path.split_once('/').ok_or_else(invalid)?;
    if bucket.is_empty() || key.is_empty() {
        return Err(invalid());
    }
    Ok(CopySource {
        bucket: bucket.to_string(),
        key: key.to_string(),
        version,
    })
}

/// The source object of a CopyObject / UploadPartCopy: its bucket (which the requester must
/// be allowed to read) and the version named, with the `x-amz-copy-source-if-*` conditions
/// checked.
pub async fn read_copy_source(
    s3: &S3,
    headers: &HeaderMap,
    access_key: &AccessKey,
) -> S3Result<(Bucket, pb::ObjectRecord)> {
    let header = headers
        .get("x-amz-copy-source")
        .and_then(|v| v.to_str().ok());
    let named = parse_copy_source(header.unwrap_or(""))?;
    let bucket = s3.find_bucket(&named.bucket).await?;
    check_rights(access_key, &bucket, Access::Read)?;
    let source = readable_version(s3, &bucket, &named.key, named.version).await?;
    check_conditions(headers, &source, "x-amz-copy-source-")?;
    Ok((bucket, source))
}

pub async fn copy_object(s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    let bucket = req.bucket()?.clone();
    let key = req.key()?.to_string();
    let condition = write_condition(&req.headers)?;
    let (source_bucket, source) = read_copy_source(s3, &req.headers, &req.access_key).await?;
    let source_key = source.key.clone();

    let replace = match req.header("x-amz-metadata-directive").unwrap_or("COPY") {
        "COPY" => false,
        "REPLACE" => true,
        _ => {
            return Err(S3Error::InvalidArgument(
                "Unknown metadata directive.".into(),
            ));
        }
    };
    if !replace && source_bucket.id == bucket.id && source_key == key {
        return Err(S3Error::InvalidRequest(
            "This copy request is illegal because it is trying to copy an object to itself without changing the \
             object's metadata, storage class, website redirect location or encryption attributes."
                .into(),
        ));
    }
    let mut record = if replace {
        record_from_headers(&bucket, &key, &req.headers)?
    } else {
        pb::ObjectRecord {
            content_type: source.content_type.clone(),
            headers: source.headers.clone(),
            user_metadata: source.user_metadata.clone(),
            ..new_record(&bucket, &key)
        }
    };
    record.tags = match req.header("x-amz-tagging-directive").unwrap_or("COPY") {
        "COPY" => source.tags.clone(),
        "REPLACE" => tagging::from_header(&req.headers)?.unwrap_or_default(),
        _ => {
            return Err(S3Error::InvalidArgument(
                "Unknown tagging directive.".into(),
            ));
        }
    };
    record.size = source.size;
    record.etag = source.etag.clone();
    record.checksums = source.checksums.clone();
    record.parts = source.parts.clone();
    if let Some(Body::Blocks(list)) = &source.body {
        // Take references on the source blocks under the new version before it is visible.
        // The uploading record carries the blocks, so its expiry releases these references
        // if the copy dies before the flip.
        record.body = source.body.clone();
        let version = announce_uploading(s3, &mut record, &condition).await?;
        let owner = object_owner(&record.bucket_id, &key, &version);
        let refs: Vec<pb::BlockRefEntry> = list
            .blocks
            .iter()
            .map(|b| pb::BlockRefEntry {
                block_id: b.id.clone(),
                owner: Some(owner.clone()),
            })
            .collect();
        s3.cluster.add_refs(&refs).await?;
    }
    record.body = source.body.clone();
    record.state = RecordState::Complete as i32;
    let stored = publish(s3, record, condition).await?;
    let result = CopyObjectResult {
        xmlns: Xmlns,
        last_modified: xml::s3_timestamp(stored.last_modified_ms),
        etag: stored.etag.clone(),
    };
    let mut resp = xml_response(StatusCode::OK, xml::to_xml(&result))?;
    let headers = resp.headers_mut();
    if let Some(id) = version_header(&source) {
        headers.insert("x-amz-copy-source-version-id", header_value(&id)?);
    }
    if let Some(id) = version_header(&stored) {
        headers.insert(VERSION_ID_HEADER, header_value(&id)?);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_sources() {
        let parsed = |v: &str| parse_copy_source(v).map(|c| (c.bucket, c.key, c.version.is_some()));
        assert_eq!(
            parsed("/b/k%20x").unwrap(),
            ("b".into(), "k x".into(), false)
        );
        assert_eq!(
            parsed("b/dir/k").unwrap(),
            ("b".into(), "dir/k".into(), false)
        );
        assert_eq!(
            parsed("b/%E2%9C%93+").unwrap(),
            ("b".into(), "✓+".into(), false)
        );
        assert!(parsed("b").is_err());
        assert!(parsed("/b/").is_err());
        assert_eq!(
            parse_copy_source("b/k?versionId=null").unwrap().version,
            Some(VersionSelector::Null)
        );
        assert!(matches!(
            parse_copy_source("b/k?versionId=3"),
            Err(S3Error::InvalidArgument(_))
        ));
    }
}

//! CopyObject: a new object version that shares the source's blocks (by taking references
//! on them), so no body bytes are copied.

use cairn_proto::ids::object_owner;
use cairn_proto::pb::{self, RecordState, object_record::Body};
use http::{Response, StatusCode};

use super::object::{
    announce_uploading, check_conditions, publish, record_from_headers, visible_object,
    write_condition,
};
use super::router::Access;
use super::tagging;
use super::{S3, S3Request, check_rights, header_value, xml_response};
use crate::body::ResponseBody;
use crate::error::{S3Error, S3Result};
use crate::xml::{self, CopyObjectResult, Xmlns};

/// Parses `x-amz-copy-source` (`[/]bucket/key[?versionId=..]`, URL-encoded).
pub fn parse_copy_source(value: &str) -> S3Result<(String, String)> {
    let invalid = || S3Error::InvalidArgument("Invalid copy source object key".into());
    let (path, query) = value.split_once('?').unwrap_or((value, ""));
    if query.split('&').any(|p| p.starts_with("versionId=")) {
        return Err(S3Error::NotImplemented("copying a specific version".into()));
    }
    let path = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| invalid())?;
    let path = path.strip_prefix('/').unwrap_or(&path);
    let (bucket, key) = path.split_once('/').ok_or_else(invalid)?;
    if bucket.is_empty() || key.is_empty() {
        return Err(invalid());
    }
    Ok((bucket.to_string(), key.to_string()))
}

pub async fn copy_object(s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    let bucket = req.bucket()?.clone();
    let key = req.key()?.to_string();
    let condition = write_condition(&req.headers)?;
    let (source_bucket, source_key) =
        parse_copy_source(req.header("x-amz-copy-source").unwrap_or(""))?;
    let source_bucket = s3.find_bucket(&source_bucket).await?;
    check_rights(&req.access_key, &source_bucket, Access::Read)?;
    let source = visible_object(s3, &source_bucket, &source_key).await?;
    check_conditions(&req.headers, &source, "x-amz-copy-source-")?;

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
            bucket_id: bucket.id.as_bytes().to_vec(),
            key: key.clone(),
            content_type: source.content_type.clone(),
            headers: source.headers.clone(),
            user_metadata: source.user_metadata.clone(),
            ..Default::default()
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
    resp.headers_mut()
        .insert("x-amz-copy-source-version-id", header_value("null")?);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_sources() {
        assert_eq!(
            parse_copy_source("/b/k%20x").unwrap(),
            ("b".into(), "k x".into())
        );
        assert_eq!(
            parse_copy_source("b/dir/k").unwrap(),
            ("b".into(), "dir/k".into())
        );
        assert_eq!(
            parse_copy_source("b/%E2%9C%93+").unwrap(),
            ("b".into(), "✓+".into())
        );
        assert!(parse_copy_source("b").is_err());
        assert!(parse_copy_source("/b/").is_err());
        assert!(matches!(
            parse_copy_source("b/k?versionId=3"),
            Err(S3Error::NotImplemented(_))
        ));
    }
}

//! Bucket operations: ListBuckets, CreateBucket, DeleteBucket, HeadBucket,
//! GetBucketLocation, GetBucketPolicy.

use cairn_proto::ids::now_ms;
use cairn_proto::meta::{MetaCommand, MetaError, MetaResult};
use cairn_proto::pb::ListRequest;
use http::{Response, StatusCode};
use uuid::Uuid;

use super::{S3, S3Request, empty_response, header_value, owner_of, xml_response};
use crate::body::{self, ResponseBody};
use crate::error::{S3Error, S3Result};
use crate::xml::{self, BucketInfo, ListAllMyBucketsResult, LocationConstraint, Xmlns};

/// Whether `name` is a valid S3 bucket name (AWS general-purpose bucket rules).
pub fn valid_bucket_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let edge_ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    (3..=63).contains(&bytes.len())
        && bytes.iter().all(|&b| edge_ok(b) || b == b'.' || b == b'-')
        && edge_ok(bytes[0])
        && edge_ok(bytes[bytes.len() - 1])
        && !name.contains("..")
        && !name.contains(".-")
        && !name.contains("-.")
        && name.parse::<std::net::Ipv4Addr>().is_err()
        && !["xn--", "sthree-", "amzn-s3-demo-"]
            .iter()
            .any(|p| name.starts_with(p))
        && !["-s3alias", "--ol-s3", ".mrap", "--x-s3"]
            .iter()
            .any(|s| name.ends_with(s))
}

pub async fn list_buckets(s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    let view = s3.cluster.view();
    let key = &req.access_key;
    let buckets = view
        .meta
        .buckets
        .values()
        .filter(|b| !key.rights(&b.id).is_empty())
        .map(|b| BucketInfo {
            name: b.name.clone(),
            creation_date: xml::s3_timestamp(b.created_ms),
            bucket_region: Some(b.region.clone()),
        })
        .collect();
    let result = ListAllMyBucketsResult {
        xmlns: Xmlns,
        owner: owner_of(&key.id),
        buckets,
        ..Default::default()
    };
    xml_response(StatusCode::OK, xml::to_xml(&result))
}

pub async fn create_bucket(s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    let name = req.bucket_name.clone().unwrap_or_default();
    if !valid_bucket_name(&name) {
        return Err(S3Error::InvalidBucketName);
    }
    let body = body::collect_limited(req.body, 64 * 1024).await?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        let config: xml::CreateBucketConfiguration = xml::from_xml(&body)?;
        if let Some(location) = config.location_constraint.filter(|l| !l.is_empty())
            && location != s3.config.region
        {
            return Err(S3Error::InvalidArgument(format!(
                "The specified location-constraint '{location}' is not valid for this endpoint (region {})",
                s3.config.region
            )));
        }
    }
    if !req.access_key.allow_create_bucket {
        return Err(S3Error::AccessDenied);
    }
    let cmd = MetaCommand::CreateBucket {
        id: Uuid::new_v4(),
        name: name.clone(),
        owner: req.access_key.id.clone(),
        region: s3.config.region.clone(),
        created_ms: now_ms(),
    };
    match s3.cluster.meta_write(&cmd).await? {
        Ok(_) => {}
        Err(MetaError::BucketAlreadyOwnedByYou) => return Err(S3Error::BucketAlreadyOwnedByYou),
        Err(MetaError::BucketAlreadyExists) => return Err(S3Error::BucketAlreadyExists),
        Err(e) => return Err(meta_error(e)),
    }
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::LOCATION, header_value(&format!("/{name}"))?)
        .body(body::empty())
        .map_err(|e| S3Error::InternalError(e.to_string()))
}

/// Maps a refused metadata command to an S3 error.
pub fn meta_error(e: MetaError) -> S3Error {
    match e {
        MetaError::NoSuchBucket(_) => S3Error::NoSuchBucket,
        MetaError::BucketAlreadyExists => S3Error::BucketAlreadyExists,
        MetaError::BucketAlreadyOwnedByYou => S3Error::BucketAlreadyOwnedByYou,
        MetaError::Unavailable(why) => S3Error::ServiceUnavailable(why),
        other => S3Error::InternalError(other.to_string()),
    }
}

pub async fn delete_bucket(s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    let bucket = req.bucket()?;
    let page = s3
        .cluster
        .list(ListRequest {
            bucket_id: bucket.id.as_bytes().to_vec(),
            limit: 100,
            headers_only: true,
            ..Default::default()
        })
        .await?;
    if page
        .records
        .iter()
        .any(|r| r.state() == cairn_proto::pb::RecordState::Complete)
        || !page.complete
    {
        return Err(S3Error::BucketNotEmpty);
    }
    // In-progress multipart uploads go with the bucket (as AWS); their blocks are released.
    super::multipart::abort_bucket_uploads(s3, bucket).await?;
    let cmd = MetaCommand::DeleteBucket {
        name: bucket.name.clone(),
        id: Some(bucket.id),
    };
    match s3.cluster.meta_write(&cmd).await? {
        Ok(MetaResult::Err(e)) | Err(e) => Err(meta_error(e)),
        Ok(_) => empty_response(StatusCode::NO_CONTENT),
    }
}

pub async fn head_bucket(_s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    let bucket = req.bucket()?;
    Response::builder()
        .status(StatusCode::OK)
        .header("x-amz-bucket-region", header_value(&bucket.region)?)
        .body(body::empty())
        .map_err(|e| S3Error::InternalError(e.to_string()))
}

pub async fn get_location(_s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    xml_response(
        StatusCode::OK,
        xml::to_xml(&LocationConstraint::for_region(&req.bucket()?.region)),
    )
}

/// GetBucketPolicy: bucket policies are not supported, so there never is one.
pub async fn get_policy(_s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    req.bucket()?;
    Err(S3Error::NoSuchBucketPolicy)
}

#[cfg(test)]
mod tests {
    use super::valid_bucket_name;

    #[test]
    fn bucket_names() {
        for ok in ["abc", "my-bucket.v2", "a1b", &"a".repeat(63)] {
            assert!(valid_bucket_name(ok), "{ok}");
        }
        for bad in [
            "ab",
            "UPPER",
            "-bad",
            "bad-",
            "a..b",
            &"a".repeat(64),
            "192.168.1.1",
            "a_b",
            "xn--abc",
            "a.-b",
        ] {
            assert!(!valid_bucket_name(bad), "{bad}");
        }
    }
}

//! PutBucketCors, GetBucketCors, DeleteBucketCors (`?cors`) and the preflight `OPTIONS` of
//! the S3 endpoint. Matching and the CORS headers of responses live in [`crate::cors`].

use cairn_proto::meta::{Bucket, CorsConfig, MetaCommand};
use http::{HeaderMap, Response, StatusCode};

use super::bucket::meta_error;
use super::{S3, S3Request, empty_response, read_checked_body, xml_response};
use crate::body::{self, ResponseBody};
use crate::error::{S3Error, S3Result};
use crate::xml::{self, CorsConfiguration};

/// Largest PutBucketCors body accepted (100 rules fit easily).
const MAX_BODY: usize = 256 * 1024;

pub async fn put_bucket_cors(s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    let bucket = req.bucket()?.clone();
    let body = read_checked_body(req, MAX_BODY).await?;
    let config: CorsConfig = xml::from_xml::<CorsConfiguration>(&body)?.into();
    crate::cors::validate(&config)?;
    set_cors(s3, &bucket, Some(config)).await?;
    empty_response(StatusCode::OK)
}

pub async fn get_bucket_cors(_s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    let config = req
        .bucket()?
        .cors
        .as_ref()
        .ok_or(S3Error::NoSuchCORSConfiguration)?;
    xml_response(
        StatusCode::OK,
        xml::to_xml(&CorsConfiguration::from(config)),
    )
}

pub async fn delete_bucket_cors(s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    set_cors(s3, req.bucket()?, None).await?;
    empty_response(StatusCode::NO_CONTENT)
}

async fn set_cors(s3: &S3, bucket: &Bucket, cors: Option<CorsConfig>) -> S3Result<()> {
    let cmd = MetaCommand::SetBucketCors {
        bucket: bucket.name.clone(),
        cors,
    };
    s3.cluster.meta_write(&cmd).await?.map_err(meta_error)?;
    Ok(())
}

/// Answers a preflight `OPTIONS` (anonymous) for bucket `name` from its CORS configuration.
pub async fn preflight(
    s3: &S3,
    name: Option<&str>,
    headers: &HeaderMap,
) -> S3Result<Response<ResponseBody>> {
    let not_found = || S3Error::AccessForbidden("CORSResponse: Bucket not found".into());
    let bucket = match name {
        Some(name) => s3.find_bucket(name).await.map_err(|e| match e {
            S3Error::NoSuchBucket => not_found(),
            other => other,
        })?,
        None => return Err(not_found()),
    };
    let granted = crate::cors::preflight(bucket.cors.as_ref(), headers)?;
    let mut resp = Response::new(body::empty());
    *resp.headers_mut() = granted;
    resp.headers_mut()
        .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(0));
    Ok(resp)
}

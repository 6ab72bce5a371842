//! PutBucketCors, GetBucketCors, DeleteBucketCors (`?cors`) and the preflight `OPTIONS` of
//! the S3 endpoint. Matching and the CORS headers of responses live in [`crate::cors`].

use cairn_proto::meta::{CorsConfig, MetaCommand};
use http::{HeaderMap, Response};

use super::S3;
use super::bucket_config::BucketConfig;
use crate::body::{self, ResponseBody};
use crate::error::{S3Error, S3Result};
use crate::xml::{self, CorsConfiguration};

/// Largest PutBucketCors body accepted (100 rules fit easily).
const MAX_BODY: usize = 256 * 1024;

/// Parses and validates a PutBucketCors body.
fn parse_cors(body: &[u8]) -> S3Result<CorsConfig> {
    let config: CorsConfig = xml::from_xml::<CorsConfiguration>(body)?.into();
    crate::cors::validate(&config)?;
    Ok(config)
}

/// PutBucketCors, GetBucketCors, DeleteBucketCors.
pub static CORS: BucketConfig<CorsConfig> = BucketConfig {
    max_body: MAX_BODY,
    parse: parse_cors,
    render: |config| xml::to_xml(&CorsConfiguration::from(config)),
    stored: |bucket| bucket.cors.as_ref(),
    command: |bucket, cors| MetaCommand::SetBucketCors { bucket, cors },
    absent: || S3Error::NoSuchCORSConfiguration,
};

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

//! The S3 API: request context, authorization and dispatch to one handler per area.

mod acl;
mod bucket;
mod bucket_config;
mod copy;
pub mod cors;
mod delete;
mod lifecycle;
mod list;
mod multipart;
pub(crate) mod object;
pub mod post;
pub mod router;
pub mod tagging;
pub mod versioning;
mod website;
mod writer;

use std::sync::Arc;

use cairn_proto::meta::{AccessKey, Bucket};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};

use crate::body::{self, BodyStream, ResponseBody};
use crate::cluster::Cluster;
use crate::error::{S3Error, S3Result};
use router::{Access, Endpoint, Query};

/// Default of [`S3Config::inline_max`]. A body in blocks costs a block file per replica
/// (create, fsync, rename, directory fsync), a block reference and an extra `uploading`
/// record commit before the write can complete: several times the work of carrying up to a
/// few pages of bytes inside the record, which is written durably anyway.
pub const DEFAULT_INLINE_MAX: usize = 16 * 1024;

/// Settings of the S3 endpoint.
#[derive(Debug, Clone)]
pub struct S3Config {
    pub region: String,
    /// Virtual-hosted style root domain (`<bucket>.<root>`), if any.
    pub root_domain: Option<String>,
    /// Size of the blocks bodies are cut into.
    pub block_size: usize,
    /// Bodies up to this size are stored inline in the object record.
    pub inline_max: usize,
    /// Whether clients reach this endpoint over TLS (the scheme of `Location` URLs).
    pub tls: bool,
}

impl S3Config {
    /// `https` or `http`: how clients reach this endpoint.
    pub fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            root_domain: None,
            block_size: 1 << 20,
            inline_max: DEFAULT_INLINE_MAX,
            tls: false,
        }
    }
}

/// What every S3 handler shares.
pub struct S3 {
    pub cluster: Cluster,
    pub config: S3Config,
}

/// One authenticated, routed S3 request.
pub struct S3Request {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub query: Query,
    pub endpoint: Endpoint,
    pub bucket_name: Option<String>,
    pub key: Option<String>,
    /// The request body, already de-chunked and checked against its signed hash.
    pub body: BodyStream,
    /// Trailing headers of an aws-chunked body, available once `body` has ended.
    pub trailers: crate::auth::chunked::TrailerSlot,
    /// The authenticated access key.
    pub access_key: AccessKey,
    /// The bucket the request addresses, resolved and authorized.
    pub bucket: Option<Bucket>,
}

impl S3Request {
    /// The bucket of a bucket/object operation (resolved before dispatch).
    pub fn bucket(&self) -> S3Result<&Bucket> {
        self.bucket.as_ref().ok_or(S3Error::NoSuchBucket)
    }

    /// The object key of an object operation.
    pub fn key(&self) -> S3Result<&str> {
        self.key
            .as_deref()
            .ok_or_else(|| S3Error::InvalidRequest("object key missing".into()))
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl S3 {
    pub fn new(cluster: Cluster, config: S3Config) -> Arc<Self> {
        Arc::new(Self { cluster, config })
    }

    /// The access key with this id, confirming a cache miss with a linearizable read.
    pub async fn access_key(&self, id: &str) -> S3Result<Option<AccessKey>> {
        if let Some(k) = self.cluster.view().meta.keys.get(id) {
            return Ok(Some(k.clone()));
        }
        Ok(self.cluster.refresh().await?.meta.keys.get(id).cloned())
    }

    /// The bucket with this name, confirming a cache miss with a linearizable read.
    pub async fn find_bucket(&self, name: &str) -> S3Result<Bucket> {
        if let Some(b) = self.cluster.view().meta.bucket(name) {
            return Ok(b.clone());
        }
        self.cluster
            .refresh()
            .await?
            .meta
            .bucket(name)
            .cloned()
            .ok_or(S3Error::NoSuchBucket)
    }

    /// Resolves the addressed bucket and checks the key's rights on it.
    pub async fn authorize(
        &self,
        endpoint: Endpoint,
        key: &AccessKey,
        bucket: Option<&str>,
    ) -> S3Result<Option<Bucket>> {
        let access = endpoint.access();
        let Some(name) = bucket.filter(|_| access != Access::Service) else {
            return Ok(None);
        };
        let bucket = self.find_bucket(name).await?;
        if check_rights(key, &bucket, access).is_ok() {
            return Ok(Some(bucket));
        }
        // Rights granted moments ago (with a bucket made through another gateway) may not
        // have reached this gateway's view yet: confirm a refusal with a linearizable read.
        let view = self.cluster.refresh().await?;
        let fresh_key = view.meta.keys.get(&key.id).ok_or(S3Error::AccessDenied)?;
        let fresh_bucket = view.meta.bucket(name).ok_or(S3Error::NoSuchBucket)?;
        check_rights(fresh_key, fresh_bucket, access)?;
        Ok(Some(fresh_bucket.clone()))
    }

    /// Runs the handler of a routed, authorized request.
    pub async fn dispatch(&self, req: S3Request) -> S3Result<Response<ResponseBody>> {
        use Endpoint::*;
        match req.endpoint {
            ListBuckets => bucket::list_buckets(self, req).await,
            CreateBucket => bucket::create_bucket(self, req).await,
            DeleteBucket => bucket::delete_bucket(self, req).await,
            HeadBucket => bucket::head_bucket(self, req).await,
            GetBucketLocation => bucket::get_location(self, req).await,
            GetBucketAcl | GetObjectAcl => acl::get_acl(self, req).await,
            PutBucketAcl | PutObjectAcl => acl::put_acl(self, req).await,
            GetBucketCors => cors::CORS.get(&req),
            PutBucketCors => cors::CORS.put(self, req).await,
            DeleteBucketCors => cors::CORS.delete(self, req).await,
            GetBucketPolicy => bucket::get_policy(self, req).await,
            ListObjectVersions => list::list_object_versions(self, req).await,
            PostObject | CorsPreflight => Err(S3Error::InternalError(format!(
                "{} is served before authentication",
                req.endpoint.name()
            ))),
            GetBucketVersioning => versioning::get_versioning(self, req).await,
            PutBucketVersioning => versioning::put_versioning(self, req).await,
            GetBucketWebsite => website::WEBSITE.get(&req),
            PutBucketWebsite => website::WEBSITE.put(self, req).await,
            DeleteBucketWebsite => website::WEBSITE.delete(self, req).await,
            GetBucketLifecycle => lifecycle::LIFECYCLE.get(&req),
            PutBucketLifecycle => lifecycle::LIFECYCLE.put(self, req).await,
            DeleteBucketLifecycle => lifecycle::LIFECYCLE.delete(self, req).await,
            ListObjects => list::list_objects_v1(self, req).await,
            ListObjectsV2 => list::list_objects_v2(self, req).await,
            DeleteObjects => delete::delete_objects(self, req).await,
            PutObject => object::put_object(self, req).await,
            CopyObject => copy::copy_object(self, req).await,
            GetObject => object::get_object(self, req, true).await,
            HeadObject => object::get_object(self, req, false).await,
            DeleteObject => versioning::delete_object(self, req).await,
            CreateMultipartUpload => multipart::create_upload(self, req).await,
            UploadPart => multipart::upload_part(self, req).await,
            UploadPartCopy => multipart::upload_part_copy(self, req).await,
            CompleteMultipartUpload => multipart::complete_upload(self, req).await,
            AbortMultipartUpload => multipart::abort_upload(self, req).await,
            ListMultipartUploads => multipart::list_uploads(self, req).await,
            ListParts => multipart::list_parts(self, req).await,
            GetObjectTagging => tagging::get_object_tagging(self, req).await,
            PutObjectTagging => tagging::put_object_tagging(self, req).await,
            DeleteObjectTagging => tagging::delete_object_tagging(self, req).await,
            GetBucketTagging => tagging::get_bucket_tagging(self, req).await,
            PutBucketTagging => tagging::put_bucket_tagging(self, req).await,
            DeleteBucketTagging => tagging::delete_bucket_tagging(self, req).await,
        }
    }
}

/// Checks that `key` holds the right `access` needs on `bucket`.
pub fn check_rights(key: &AccessKey, bucket: &Bucket, access: Access) -> S3Result<()> {
    let rights = key.rights(&bucket.id);
    let allowed = match access {
        Access::Service => true,
        Access::Read => rights.read,
        Access::Write => rights.write,
        Access::Owner => rights.owner,
    };
    if allowed {
        Ok(())
    } else {
        Err(S3Error::AccessDenied)
    }
}

/// A response with an XML document body.
pub fn xml_response(status: StatusCode, xml: String) -> S3Result<Response<ResponseBody>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/xml")
        .header(http::header::CONTENT_LENGTH, xml.len())
        .body(body::full(xml))
        .map_err(|e| S3Error::InternalError(e.to_string()))
}

/// Reads a small request body (an XML document) up to `limit` bytes and checks it against
/// `Content-MD5` and the `x-amz-checksum-*` the client sent, if any.
pub async fn read_checked_body(req: S3Request, limit: usize) -> S3Result<bytes::Bytes> {
    let requested = crate::checksum::requested_checksum(&req.headers)?;
    let content_md5 = req.header("content-md5").map(str::to_string);
    let body = body::collect_limited(req.body, limit).await?;
    let mut hasher =
        crate::checksum::BodyHasher::new(false, requested.as_ref().map(|r| r.algorithm));
    hasher.update(&body);
    let trailer = requested.as_ref().and_then(|r| {
        let trailers = req.trailers.get()?;
        trailers
            .get(r.algorithm.header_name())?
            .to_str()
            .ok()
            .map(str::to_string)
    });
    crate::checksum::verify(
        &hasher.finish(),
        content_md5.as_deref(),
        requested.as_ref(),
        trailer.as_deref(),
    )?;
    Ok(body)
}

/// An empty response with a status.
pub fn empty_response(status: StatusCode) -> S3Result<Response<ResponseBody>> {
    Response::builder()
        .status(status)
        .body(body::empty())
        .map_err(|e| S3Error::InternalError(e.to_string()))
}

/// A header value from arbitrary text (invalid characters are an internal error).
pub fn header_value(s: &str) -> S3Result<HeaderValue> {
    HeaderValue::from_str(s)
        .map_err(|_| S3Error::InternalError(format!("cannot send header value {s:?}")))
}

/// The canonical owner shown in listings and ACLs.
pub fn owner_of(key_id: &str) -> crate::xml::Owner {
    crate::xml::Owner {
        id: key_id.to_string(),
        display_name: key_id.to_string(),
    }
}

//! Put / Get / Delete of a bucket configuration document kept in the bucket's metadata
//! (lifecycle, website, CORS). Each configuration states only what differs in a
//! [`BucketConfig`]: how a body is parsed and validated, how the stored configuration renders,
//! where it lives in the bucket, and the error Get answers when there is none.

use cairn_proto::meta::{Bucket, MetaCommand};
use http::{Response, StatusCode};

use super::bucket::meta_error;
use super::{S3, S3Request, empty_response, read_checked_body, xml_response};
use crate::body::ResponseBody;
use crate::error::{S3Error, S3Result};

/// One kind of bucket configuration and its three handlers.
pub struct BucketConfig<C: 'static> {
    /// Largest Put body accepted.
    pub max_body: usize,
    /// Parses and validates a Put body.
    pub parse: fn(&[u8]) -> S3Result<C>,
    /// Renders a stored configuration as the Get document.
    pub render: fn(&C) -> String,
    /// The bucket's configuration, if it has one.
    pub stored: fn(&Bucket) -> Option<&C>,
    /// The metadata command that sets (with `None`, removes) bucket `name`'s configuration.
    pub command: fn(String, Option<C>) -> MetaCommand,
    /// The error Get answers for a bucket without a configuration.
    pub absent: fn() -> S3Error,
}

impl<C> BucketConfig<C> {
    /// Put: read the body (bounded, checked against `Content-MD5` / `x-amz-checksum-*` when
    /// given), parse and validate it, store it.
    pub async fn put(&self, s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
        let name = req.bucket()?.name.clone();
        let body = read_checked_body(req, self.max_body).await?;
        let config = (self.parse)(&body)?;
        self.store(s3, name, Some(config)).await?;
        empty_response(StatusCode::OK)
    }

    /// Get: the stored configuration, or the "absent" error.
    pub fn get(&self, req: &S3Request) -> S3Result<Response<ResponseBody>> {
        let config = (self.stored)(req.bucket()?).ok_or_else(self.absent)?;
        xml_response(StatusCode::OK, (self.render)(config))
    }

    /// Delete: remove the configuration (whether or not there is one).
    pub async fn delete(&self, s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
        self.store(s3, req.bucket()?.name.clone(), None).await?;
        empty_response(StatusCode::NO_CONTENT)
    }

    /// Stores (or with `None` removes) the configuration of bucket `name` through Raft.
    async fn store(&self, s3: &S3, name: String, config: Option<C>) -> S3Result<()> {
        let cmd = (self.command)(name, config);
        s3.cluster.meta_write(&cmd).await?.map_err(meta_error)?;
        Ok(())
    }
}

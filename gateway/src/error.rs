//! One S3 error enum, one place that maps each variant to its AWS code and HTTP status, and
//! one renderer for the `<Error>` XML body.

use http::StatusCode;
use http::header::HeaderName;

/// `x-amz-version-id`.
pub const VERSION_ID_HEADER: HeaderName = HeaderName::from_static("x-amz-version-id");
/// `x-amz-delete-marker`.
pub const DELETE_MARKER_HEADER: HeaderName = HeaderName::from_static("x-amz-delete-marker");

/// Every error the S3 API returns. The variant name is the AWS error code.
#[derive(Debug, Clone, thiserror::Error)]
pub enum S3Error {
    #[error("Access Denied")]
    AccessDenied,
    /// AccessDenied with a specific message (a POST policy that refuses the upload).
    #[error("{0}")]
    AccessDeniedBecause(String),
    /// A CORS request (preflight) that no rule allows.
    #[error("{0}")]
    AccessForbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("The CORS configuration does not exist")]
    NoSuchCORSConfiguration,
    #[error("The bucket policy does not exist")]
    NoSuchBucketPolicy,
    #[error("The specified bucket does not have a website configuration")]
    NoSuchWebsiteConfiguration,
    #[error("The lifecycle configuration does not exist")]
    NoSuchLifecycleConfiguration,
    #[error("The TagSet does not exist")]
    NoSuchTagSet,
    /// A tag set S3 refuses (too many tags, too long, duplicate keys, ...).
    #[error("{0}")]
    InvalidTag(String),
    #[error("Invalid Policy: {0}")]
    InvalidPolicyDocument(String),
    #[error("The body of your POST request is not well-formed multipart/form-data.")]
    MalformedPOSTRequest,
    #[error("Your POST request fields preceding the upload file were too large.")]
    MaxPostPreDataLengthExceeded,
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your key and signing method."
    )]
    SignatureDoesNotMatch,
    #[error("The AWS Access Key Id you provided does not exist in our records.")]
    InvalidAccessKeyId,
    #[error("The difference between the request time and the current time is too large.")]
    RequestTimeTooSkewed,
    #[error("Request has expired")]
    ExpiredToken,
    #[error("{0}")]
    AuthorizationHeaderMalformed(String),
    #[error("The provided 'x-amz-content-sha256' header does not match what was computed.")]
    XAmzContentSHA256Mismatch,
    #[error("Missing required header for this request: {0}")]
    MissingSecurityHeader(String),
    #[error("The specified bucket does not exist")]
    NoSuchBucket,
    #[error("The specified key does not exist.")]
    NoSuchKey,
    /// The key's latest version is a delete marker (`x-amz-delete-marker` is set).
    #[error("The specified key does not exist.")]
    NoSuchKeyDeleteMarker { version_id: Option<String> },
    /// GET/HEAD of a delete marker by version id.
    #[error("The specified method is not allowed against this resource.")]
    DeleteMarkerNotAllowed {
        version_id: String,
        last_modified: String,
    },
    #[error("The specified version does not exist.")]
    NoSuchVersion,
    #[error(
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
    )]
    NoSuchUpload,
    #[error(
        "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."
    )]
    InvalidPart,
    #[error("The list of parts was not in ascending order. Parts must be ordered by part number.")]
    InvalidPartOrder,
    #[error("Your proposed upload is smaller than the minimum allowed object size.")]
    EntityTooSmall,
    #[error("The requested partnumber is not satisfiable")]
    InvalidPartNumber,
    #[error("The specified bucket is not valid.")]
    InvalidBucketName,
    #[error("The bucket you tried to delete is not empty")]
    BucketNotEmpty,
    #[error("The requested bucket name is not available.")]
    BucketAlreadyExists,
    #[error("Your previous request to create the named bucket succeeded and you already own it.")]
    BucketAlreadyOwnedByYou,
    #[error("The Content-MD5 you specified did not match what we received.")]
    BadDigest,
    #[error("The Content-MD5 you specified is not valid.")]
    InvalidDigest,
    #[error("{0}")]
    InvalidArgument(String),
    #[error(
        "The XML you provided was not well-formed or did not validate against our published schema."
    )]
    MalformedXML,
    #[error("The specified method is not allowed against this resource.")]
    MethodNotAllowed,
    #[error("The requested range is not satisfiable")]
    InvalidRange,
    /// InvalidRange of a GET: the answer names the object size (`Content-Range: bytes */N`).
    #[error("The requested range is not satisfiable")]
    RangeNotSatisfiable { size: u64 },
    #[error("At least one of the pre-conditions you specified did not hold")]
    PreconditionFailed,
    #[error("Not Modified")]
    NotModified,
    #[error(
        "A conflicting operation occurred. If using PutObject you can retry the request. If using multipart upload you should initiate another CreateMultipartUpload request and re-upload each part."
    )]
    ConditionalRequestConflict,
    #[error("Your proposed upload exceeds the maximum allowed object size.")]
    EntityTooLarge,
    #[error("You must provide the Content-Length HTTP header.")]
    MissingContentLength,
    #[error("{0}")]
    InvalidRequest(String),
    #[error("The specified key is too long.")]
    KeyTooLongError,
    #[error("Your request was too big.")]
    MaxMessageLengthExceeded,
    #[error("{0} is not implemented")]
    NotImplemented(String),
    #[error("Please reduce your request rate.")]
    SlowDown,
    #[error("{0}")]
    ServiceUnavailable(String),
    /// Storage nodes below their free-space reserve refused new data (HTTP 507, as MinIO's
    /// storage-full error): not a transient outage, so SDKs do not retry it; deletes still
    /// work.
    #[error("{0}")]
    InsufficientStorage(String),
    #[error("We encountered an internal error. Please try again.")]
    InternalError(String),
}

impl S3Error {
    /// The AWS error code (`<Code>`).
    pub fn code(&self) -> &'static str {
        match self {
            S3Error::AccessDenied | S3Error::AccessDeniedBecause(_) => "AccessDenied",
            S3Error::AccessForbidden(_) => "AccessForbidden",
            S3Error::BadRequest(_) => "BadRequest",
            S3Error::NoSuchCORSConfiguration => "NoSuchCORSConfiguration",
            S3Error::NoSuchBucketPolicy => "NoSuchBucketPolicy",
            S3Error::NoSuchWebsiteConfiguration => "NoSuchWebsiteConfiguration",
            S3Error::NoSuchLifecycleConfiguration => "NoSuchLifecycleConfiguration",
            S3Error::NoSuchTagSet => "NoSuchTagSet",
            S3Error::InvalidTag(_) => "InvalidTag",
            S3Error::InvalidPolicyDocument(_) => "InvalidPolicyDocument",
            S3Error::MalformedPOSTRequest => "MalformedPOSTRequest",
            S3Error::MaxPostPreDataLengthExceeded => "MaxPostPreDataLengthExceededError",
            S3Error::SignatureDoesNotMatch => "SignatureDoesNotMatch",
            S3Error::InvalidAccessKeyId => "InvalidAccessKeyId",
            S3Error::RequestTimeTooSkewed => "RequestTimeTooSkewed",
            S3Error::ExpiredToken => "AccessDenied",
            S3Error::AuthorizationHeaderMalformed(_) => "AuthorizationHeaderMalformed",
            S3Error::XAmzContentSHA256Mismatch => "XAmzContentSHA256Mismatch",
            S3Error::MissingSecurityHeader(_) => "MissingSecurityHeader",
            S3Error::NoSuchBucket => "NoSuchBucket",
            S3Error::NoSuchKey | S3Error::NoSuchKeyDeleteMarker { .. } => "NoSuchKey",
            S3Error::DeleteMarkerNotAllowed { .. } => "MethodNotAllowed",
            S3Error::NoSuchVersion => "NoSuchVersion",
            S3Error::NoSuchUpload => "NoSuchUpload",
            S3Error::InvalidPart => "InvalidPart",
            S3Error::InvalidPartOrder => "InvalidPartOrder",
            S3Error::EntityTooSmall => "EntityTooSmall",
            S3Error::InvalidPartNumber => "InvalidPartNumber",
            S3Error::InvalidBucketName => "InvalidBucketName",
            S3Error::BucketNotEmpty => "BucketNotEmpty",
            S3Error::BucketAlreadyExists => "BucketAlreadyExists",
            S3Error::BucketAlreadyOwnedByYou => "BucketAlreadyOwnedByYou",
            S3Error::BadDigest => "BadDigest",
            S3Error::InvalidDigest => "InvalidDigest",
            S3Error::InvalidArgument(_) => "InvalidArgument",
            S3Error::MalformedXML => "MalformedXML",
            S3Error::MethodNotAllowed => "MethodNotAllowed",
            S3Error::InvalidRange | S3Error::RangeNotSatisfiable { .. } => "InvalidRange",
            S3Error::PreconditionFailed => "PreconditionFailed",
            S3Error::NotModified => "NotModified",
            S3Error::ConditionalRequestConflict => "ConditionalRequestConflict",
            S3Error::EntityTooLarge => "EntityTooLarge",
            S3Error::MissingContentLength => "MissingContentLength",
            S3Error::InvalidRequest(_) => "InvalidRequest",
            S3Error::KeyTooLongError => "KeyTooLongError",
            S3Error::MaxMessageLengthExceeded => "MaxMessageLengthExceeded",
            S3Error::NotImplemented(_) => "NotImplemented",
            S3Error::SlowDown => "SlowDown",
            S3Error::ServiceUnavailable(_) => "ServiceUnavailable",
            S3Error::InsufficientStorage(_) => "InsufficientStorage",
            S3Error::InternalError(_) => "InternalError",
        }
    }

    /// The HTTP status AWS answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            S3Error::AccessDenied
            | S3Error::AccessDeniedBecause(_)
            | S3Error::AccessForbidden(_)
            | S3Error::SignatureDoesNotMatch
            | S3Error::InvalidAccessKeyId
            | S3Error::RequestTimeTooSkewed
            | S3Error::ExpiredToken => StatusCode::FORBIDDEN,
            S3Error::NoSuchBucket
            | S3Error::NoSuchKey
            | S3Error::NoSuchKeyDeleteMarker { .. }
            | S3Error::NoSuchVersion
            | S3Error::NoSuchUpload
            | S3Error::NoSuchCORSConfiguration
            | S3Error::NoSuchBucketPolicy
            | S3Error::NoSuchWebsiteConfiguration
            | S3Error::NoSuchLifecycleConfiguration
            | S3Error::NoSuchTagSet => StatusCode::NOT_FOUND,
            S3Error::BucketNotEmpty
            | S3Error::BucketAlreadyExists
            | S3Error::BucketAlreadyOwnedByYou
            | S3Error::ConditionalRequestConflict => StatusCode::CONFLICT,
            S3Error::MethodNotAllowed | S3Error::DeleteMarkerNotAllowed { .. } => {
                StatusCode::METHOD_NOT_ALLOWED
            }
            S3Error::InvalidRange
            | S3Error::RangeNotSatisfiable { .. }
            | S3Error::InvalidPartNumber => StatusCode::RANGE_NOT_SATISFIABLE,
            S3Error::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            S3Error::NotModified => StatusCode::NOT_MODIFIED,
            S3Error::MissingContentLength => StatusCode::LENGTH_REQUIRED,
            S3Error::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            S3Error::SlowDown | S3Error::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            S3Error::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            S3Error::InternalError(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// Headers the error response carries besides the XML body.
    pub fn headers(&self) -> Vec<(http::HeaderName, String)> {
        match self {
            S3Error::RangeNotSatisfiable { size } => {
                vec![(http::header::CONTENT_RANGE, format!("bytes */{size}"))]
            }
            S3Error::NoSuchKeyDeleteMarker { version_id } => {
                let mut h = vec![(DELETE_MARKER_HEADER, "true".to_string())];
                h.extend(version_id.clone().map(|v| (VERSION_ID_HEADER, v)));
                h
            }
            S3Error::DeleteMarkerNotAllowed {
                version_id,
                last_modified,
            } => vec![
                (DELETE_MARKER_HEADER, "true".to_string()),
                (VERSION_ID_HEADER, version_id.clone()),
                (http::header::LAST_MODIFIED, last_modified.clone()),
                (http::header::ALLOW, "DELETE".to_string()),
            ],
            _ => Vec::new(),
        }
    }

    /// The `<Message>` text.
    pub fn message(&self) -> String {
        self.to_string()
    }
}

impl From<tonic::Status> for S3Error {
    fn from(s: tonic::Status) -> Self {
        match s.code() {
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => {
                S3Error::ServiceUnavailable(format!("storage unavailable: {}", s.message()))
            }
            tonic::Code::ResourceExhausted if cairn_proto::is_storage_full(&s) => {
                S3Error::InsufficientStorage(s.message().to_string())
            }
            tonic::Code::ResourceExhausted => {
                S3Error::ServiceUnavailable(format!("resource exhausted: {}", s.message()))
            }
            tonic::Code::NotFound => S3Error::NoSuchKey,
            tonic::Code::FailedPrecondition
                if s.message().starts_with(cairn_proto::CONDITION_FAILED) =>
            {
                S3Error::PreconditionFailed
            }
            tonic::Code::Aborted if s.message().starts_with(cairn_proto::CONDITION_CONFLICT) => {
                S3Error::ConditionalRequestConflict
            }
            _ => S3Error::InternalError(s.to_string()),
        }
    }
}

impl From<std::io::Error> for S3Error {
    fn from(e: std::io::Error) -> Self {
        S3Error::InternalError(e.to_string())
    }
}

/// Result of an S3 operation.
pub type S3Result<T> = Result<T, S3Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_full_is_507_insufficient_storage() {
        let full = tonic::Status::resource_exhausted(format!(
            "{}: node n1 has 10 B free on its data dir, below its reserve of 1.0 GiB",
            cairn_proto::STORAGE_FULL
        ));
        let e = S3Error::from(full);
        assert_eq!(e.status(), StatusCode::INSUFFICIENT_STORAGE);
        assert_eq!(e.code(), "InsufficientStorage");
        assert!(e.message().contains("below its reserve"), "{}", e.message());
        // Other exhaustion (not the disk reserve) stays a retryable 503.
        let other = S3Error::from(tonic::Status::resource_exhausted("too many streams"));
        assert_eq!(other.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(other.code(), "ServiceUnavailable");
    }
}

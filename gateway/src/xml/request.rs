//! Request bodies the gateway parses with [`from_xml`](super::from_xml).
//!
//! Elements are matched by local name, so the S3 namespace (or none) is accepted; unknown
//! elements are ignored; fields may come in any order, but the items of one list (e.g. the
//! `<Object>`s of a `<Delete>`) must be contiguous: `<Object/><Quiet/><Object/>` is refused.

use serde::Deserialize;

/// CreateBucket request body (optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename = "CreateBucketConfiguration", rename_all = "PascalCase")]
pub struct CreateBucketConfiguration {
    /// Requested region; `None` (or empty) means us-east-1.
    #[serde(default)]
    pub location_constraint: Option<String>,
}

/// DeleteObjects request body. `<Quiet>` defaults to false.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename = "Delete", rename_all = "PascalCase")]
pub struct Delete {
    /// Quiet mode: report only errors.
    #[serde(default)]
    pub quiet: bool,
    /// The `<Object>` entries, in document order (possibly none: the handler decides).
    #[serde(rename = "Object", default)]
    pub objects: Vec<ObjectIdentifier>,
}

/// One `<Object>` of a DeleteObjects request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ObjectIdentifier {
    /// Object key (required).
    pub key: String,
    /// Specific version to delete.
    #[serde(default)]
    pub version_id: Option<String>,
}

/// CompleteMultipartUpload request body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename = "CompleteMultipartUpload")]
pub struct CompleteMultipartUpload {
    /// The `<Part>` entries in document order (the handler checks ascending order).
    #[serde(rename = "Part", default)]
    pub parts: Vec<CompletedPart>,
}

/// One `<Part>` of a CompleteMultipartUpload request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CompletedPart {
    /// Part number (1..=10000, validated by the handler).
    pub part_number: u32,
    /// Entity tag returned by UploadPart (clients send it quoted or not).
    #[serde(rename = "ETag")]
    pub etag: String,
    /// Base64 CRC32 of the part.
    #[serde(rename = "ChecksumCRC32", default)]
    pub checksum_crc32: Option<String>,
    /// Base64 CRC32C of the part.
    #[serde(rename = "ChecksumCRC32C", default)]
    pub checksum_crc32c: Option<String>,
    /// Base64 CRC64NVME of the part.
    #[serde(rename = "ChecksumCRC64NVME", default)]
    pub checksum_crc64nvme: Option<String>,
    /// Base64 SHA-1 of the part.
    #[serde(rename = "ChecksumSHA1", default)]
    pub checksum_sha1: Option<String>,
    /// Base64 SHA-256 of the part.
    #[serde(rename = "ChecksumSHA256", default)]
    pub checksum_sha256: Option<String>,
}

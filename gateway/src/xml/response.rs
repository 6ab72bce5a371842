//! Response bodies the gateway renders with [`to_xml`](super::to_xml), in S3's element order.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Xmlns, XsiXmlns};

/// Defines `$ser` (and optionally `$de`) for a `Vec` rendered as a wrapper element holding one
/// `<$tag>` per item: `<Buckets><Bucket/>..</Buckets>`.
macro_rules! wrapped_list {
    ($item:ty, $tag:literal, $ser:ident $(, $de:ident)?) => {
        fn $ser<S: Serializer>(items: &[$item], s: S) -> Result<S::Ok, S::Error> {
            #[derive(Serialize)]
            struct Wrapper<'a> {
                #[serde(rename = $tag)]
                items: &'a [$item],
            }
            Wrapper { items }.serialize(s)
        }

        $(
            fn $de<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<$item>, D::Error> {
                #[derive(Deserialize)]
                struct Wrapper {
                    #[serde(rename = $tag, default)]
                    items: Vec<$item>,
                }
                Wrapper::deserialize(d).map(|w| w.items)
            }
        )?
    };
}

wrapped_list!(BucketInfo, "Bucket", ser_buckets);
wrapped_list!(Grant, "Grant", ser_grants, de_grants);

/// `<Owner>` / `<Initiator>`: `<ID>` then `<DisplayName>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Canonical user id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Display name.
    #[serde(rename = "DisplayName", default)]
    pub display_name: String,
}

/// One `<CommonPrefixes><Prefix>..</Prefix></CommonPrefixes>` entry of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CommonPrefix {
    /// The rolled-up prefix (delimiter included).
    pub prefix: String,
}

// ---------------------------------------------------------------------------------------------
// Buckets
// ---------------------------------------------------------------------------------------------

/// ListBuckets response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename = "ListAllMyBucketsResult", rename_all = "PascalCase")]
pub struct ListAllMyBucketsResult {
    /// Namespace attribute.
    #[serde(rename = "@xmlns")]
    pub xmlns: Xmlns,
    /// Owner of the buckets.
    pub owner: Owner,
    /// Rendered as `<Buckets><Bucket>..</Bucket>..</Buckets>` (`<Buckets/>` when empty).
    #[serde(serialize_with = "ser_buckets")]
    pub buckets: Vec<BucketInfo>,
    /// Token for the next page, when truncated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continuation_token: Option<String>,
    /// Echo of the `prefix` request parameter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// One `<Bucket>` of a ListBuckets response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BucketInfo {
    /// Bucket name.
    pub name: String,
    /// Creation time, see [`s3_timestamp`](super::s3_timestamp).
    pub creation_date: String,
    /// Region of the bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket_region: Option<String>,
}

/// GetBucketLocation response: `<LocationConstraint xmlns=..>us-west-2</LocationConstraint>`,
/// empty text for us-east-1 (use [`LocationConstraint::for_region`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename = "LocationConstraint")]
pub struct LocationConstraint {
    /// Namespace attribute.
    #[serde(rename = "@xmlns")]
    pub xmlns: Xmlns,
    /// Region name; empty for us-east-1.
    #[serde(rename = "$text")]
    pub region: String,
}

impl LocationConstraint {
    /// The response for a bucket in `region`, mapping `us-east-1` to the empty element.
    pub fn for_region(region: &str) -> Self {
        let region = if region == "us-east-1" { "" } else { region };
        Self {
            xmlns: Xmlns,
            region: region.to_owned(),
        }
    }
}

/// GetBucketVersioning response and PutBucketVersioning request body. All `None` renders the
/// empty `<VersioningConfiguration xmlns=../>` of a bucket that was never versioned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename = "VersioningConfiguration", rename_all = "PascalCase")]
pub struct VersioningConfiguration {
    /// Namespace attribute.
    #[serde(rename = "@xmlns", default)]
    pub xmlns: Xmlns,
    /// `Enabled` or `Suspended`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status: Option<String>,
    /// `Enabled` or `Disabled`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mfa_delete: Option<String>,
}

/// GetBucketAcl / GetObjectAcl response (and PutBucketAcl body).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename = "AccessControlPolicy", rename_all = "PascalCase")]
pub struct AccessControlPolicy {
    /// Namespace attribute.
    #[serde(rename = "@xmlns", default)]
    pub xmlns: Xmlns,
    /// Resource owner.
    pub owner: Owner,
    /// Rendered as `<AccessControlList><Grant>..</Grant>..</AccessControlList>`.
    #[serde(serialize_with = "ser_grants", deserialize_with = "de_grants", default)]
    pub access_control_list: Vec<Grant>,
}

impl AccessControlPolicy {
    /// The canned `private` ACL: one `FULL_CONTROL` grant to `owner`.
    pub fn owner_full_control(owner: Owner) -> Self {
        let grant = Grant {
            grantee: Grantee::canonical_user(owner.clone()),
            permission: "FULL_CONTROL".to_owned(),
        };
        Self {
            xmlns: Xmlns,
            owner,
            access_control_list: vec![grant],
        }
    }
}

/// One `<Grant>`: `<Grantee>` then `<Permission>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Grant {
    /// Who is granted.
    pub grantee: Grantee,
    /// `FULL_CONTROL`, `WRITE`, `WRITE_ACP`, `READ` or `READ_ACP`.
    pub permission: String,
}

/// `<Grantee xmlns:xsi=.. xsi:type="CanonicalUser|Group|AmazonCustomerByEmail">`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grantee {
    /// `xmlns:xsi` attribute.
    #[serde(rename = "@xmlns:xsi", default)]
    pub xmlns_xsi: XsiXmlns,
    /// `xsi:type` attribute: `CanonicalUser`, `Group` or `AmazonCustomerByEmail`.
    #[serde(rename(serialize = "@xsi:type", deserialize = "@type"), default)]
    pub xsi_type: String,
    /// Canonical user id (CanonicalUser).
    #[serde(rename = "ID", skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    /// Display name (CanonicalUser).
    #[serde(
        rename = "DisplayName",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub display_name: Option<String>,
    /// Group URI (Group).
    #[serde(rename = "URI", skip_serializing_if = "Option::is_none", default)]
    pub uri: Option<String>,
    /// E-mail address (AmazonCustomerByEmail).
    #[serde(
        rename = "EmailAddress",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub email_address: Option<String>,
}

impl Grantee {
    /// A `CanonicalUser` grantee for `owner`.
    pub fn canonical_user(owner: Owner) -> Self {
        Self {
            xmlns_xsi: XsiXmlns,
            xsi_type: "CanonicalUser".to_owned(),
            id: Some(owner.id),
            display_name: Some(owner.display_name),
            uri: None,
            email_address: None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Listing objects
// ---------------------------------------------------------------------------------------------

/// ListObjects (V1) response, elements in S3's order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename = "ListBucketResult", rename_all = "PascalCase")]
pub struct ListBucketResult {
    /// Namespace attribute.
    #[serde(rename = "@xmlns")]
    pub xmlns: Xmlns,
    /// Bucket name.
    pub name: String,
    /// Echo of `prefix` (always present, possibly empty).
    pub prefix: String,
    /// Echo of `marker` (always present, possibly empty).
    pub marker: String,
    /// Next marker; S3 sends it only when truncated and a delimiter was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    /// Echo of `max-keys`.
    pub max_keys: u32,
    /// Echo of `delimiter`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// `url` when keys/prefixes/markers in this document are URL-encoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding_type: Option<String>,
    /// Whether more results exist.
    pub is_truncated: bool,
    /// One `<Contents>` per object.
    pub contents: Vec<ObjectInfo>,
    /// One `<CommonPrefixes>` per rolled-up prefix.
    pub common_prefixes: Vec<CommonPrefix>,
}

/// ListObjectsV2 response, elements in S3's order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename = "ListBucketResult", rename_all = "PascalCase")]
pub struct ListBucketResultV2 {
    /// Namespace attribute.
    #[serde(rename = "@xmlns")]
    pub xmlns: Xmlns,
    /// Bucket name.
    pub name: String,
    /// Echo of `prefix` (always present, possibly empty).
    pub prefix: String,
    /// Echo of `start-after`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_after: Option<String>,
    /// Echo of `continuation-token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continuation_token: Option<String>,
    /// Token for the next page, when truncated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_continuation_token: Option<String>,
    /// Number of `<Contents>` plus `<CommonPrefixes>` in this page.
    pub key_count: u32,
    /// Echo of `max-keys`.
    pub max_keys: u32,
    /// Echo of `delimiter`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// `url` when keys/prefixes/start-after in this document are URL-encoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding_type: Option<String>,
    /// Whether more results exist.
    pub is_truncated: bool,
    /// One `<Contents>` per object (set `owner` only for `fetch-owner=true`).
    pub contents: Vec<ObjectInfo>,
    /// One `<CommonPrefixes>` per rolled-up prefix.
    pub common_prefixes: Vec<CommonPrefix>,
}

/// One `<Contents>` entry: Key, LastModified, ETag, Size, Owner?, StorageClass (S3's order).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ObjectInfo {
    /// Object key.
    pub key: String,
    /// See [`s3_timestamp`](super::s3_timestamp).
    pub last_modified: String,
    /// Quoted entity tag, e.g. `"9b2cf535f27731c974343645a3985328"`.
    #[serde(rename = "ETag")]
    pub etag: String,
    /// Size in bytes.
    pub size: u64,
    /// Owner (V1 always; V2 only with `fetch-owner=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    /// E.g. `STANDARD`.
    pub storage_class: String,
}

// ---------------------------------------------------------------------------------------------
// Copy / delete
// ---------------------------------------------------------------------------------------------

/// CopyObject response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename = "CopyObjectResult", rename_all = "PascalCase")]
pub struct CopyObjectResult {
    /// Namespace attribute.
    #[serde(rename = "@xmlns")]
    pub xmlns: Xmlns,
    /// See [`s3_timestamp`](super::s3_timestamp).
    pub last_modified: String,
    /// Quoted entity tag of the new object.
    #[serde(rename = "ETag")]
    pub etag: String,
}

/// DeleteObjects response: all `<Deleted>` then all `<Error>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename = "DeleteResult")]
pub struct DeleteResult {
    /// Namespace attribute.
    #[serde(rename = "@xmlns")]
    pub xmlns: Xmlns,
    /// Successfully deleted objects (leave empty in quiet mode).
    #[serde(rename = "Deleted")]
    pub deleted: Vec<DeletedObject>,
    /// Objects that could not be deleted.
    #[serde(rename = "Error")]
    pub errors: Vec<DeleteError>,
}

/// One `<Deleted>` of a DeleteObjects response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeletedObject {
    /// Object key.
    pub key: String,
    /// Version that was deleted, if one was named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Whether a delete marker was created or deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_marker: Option<bool>,
    /// Version id of that delete marker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_marker_version_id: Option<String>,
}

/// One `<Error>` of a DeleteObjects response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteError {
    /// Object key.
    pub key: String,
    /// S3 error code, e.g. `AccessDenied`.
    pub code: String,
    /// Error message.
    pub message: String,
    /// Version named in the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Multipart upload
// ---------------------------------------------------------------------------------------------

/// CreateMultipartUpload response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename = "InitiateMultipartUploadResult", rename_all = "PascalCase")]
pub struct InitiateMultipartUploadResult {
    /// Namespace attribute.
    #[serde(rename = "@xmlns")]
    pub xmlns: Xmlns,
    /// Bucket name.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// New upload id.
    pub upload_id: String,
}

/// CompleteMultipartUpload response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename = "CompleteMultipartUploadResult", rename_all = "PascalCase")]
pub struct CompleteMultipartUploadResult {
    /// Namespace attribute.
    #[serde(rename = "@xmlns")]
    pub xmlns: Xmlns,
    /// URL of the object.
    pub location: String,
    /// Bucket name.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// Quoted multipart entity tag, e.g. `"3858f62230ac3c915f300c664312c11f-9"`.
    #[serde(rename = "ETag")]
    pub etag: String,
}

/// UploadPartCopy response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename = "CopyPartResult", rename_all = "PascalCase")]
pub struct CopyPartResult {
    /// Namespace attribute.
    #[serde(rename = "@xmlns")]
    pub xmlns: Xmlns,
    /// See [`s3_timestamp`](super::s3_timestamp).
    pub last_modified: String,
    /// Quoted entity tag of the new part.
    #[serde(rename = "ETag")]
    pub etag: String,
}

/// ListParts response, in the order of the AWS example.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename = "ListPartsResult", rename_all = "PascalCase")]
pub struct ListPartsResult {
    /// Namespace attribute.
    #[serde(rename = "@xmlns")]
    pub xmlns: Xmlns,
    /// Bucket name.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// Upload id.
    pub upload_id: String,
    /// Who initiated the upload.
    pub initiator: Owner,
    /// Owner of the future object.
    pub owner: Owner,
    /// E.g. `STANDARD`.
    pub storage_class: String,
    /// Echo of `part-number-marker` (0 when absent).
    pub part_number_marker: u32,
    /// Marker for the next page, when truncated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_part_number_marker: Option<u32>,
    /// Echo of `max-parts`.
    pub max_parts: u32,
    /// Whether more parts exist.
    pub is_truncated: bool,
    /// One `<Part>` per part.
    #[serde(rename = "Part")]
    pub parts: Vec<PartInfo>,
}

/// One `<Part>` of a ListParts response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PartInfo {
    /// Part number.
    pub part_number: u32,
    /// See [`s3_timestamp`](super::s3_timestamp).
    pub last_modified: String,
    /// Quoted entity tag.
    #[serde(rename = "ETag")]
    pub etag: String,
    /// Size in bytes.
    pub size: u64,
}

/// ListMultipartUploads response, in the order of the AWS examples.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename = "ListMultipartUploadsResult", rename_all = "PascalCase")]
pub struct ListMultipartUploadsResult {
    /// Namespace attribute.
    #[serde(rename = "@xmlns")]
    pub xmlns: Xmlns,
    /// Bucket name.
    pub bucket: String,
    /// Echo of `key-marker` (always present, possibly empty).
    pub key_marker: String,
    /// Echo of `upload-id-marker` (always present, possibly empty).
    pub upload_id_marker: String,
    /// Next key marker, when truncated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_key_marker: Option<String>,
    /// Next upload id marker, when truncated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_upload_id_marker: Option<String>,
    /// Echo of `delimiter`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// Echo of `prefix`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// `url` when keys/prefixes/markers in this document are URL-encoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding_type: Option<String>,
    /// Echo of `max-uploads`.
    pub max_uploads: u32,
    /// Whether more uploads exist.
    pub is_truncated: bool,
    /// One `<Upload>` per in-progress upload.
    #[serde(rename = "Upload")]
    pub uploads: Vec<UploadInfo>,
    /// One `<CommonPrefixes>` per rolled-up prefix.
    pub common_prefixes: Vec<CommonPrefix>,
}

/// One `<Upload>` of a ListMultipartUploads response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UploadInfo {
    /// Object key.
    pub key: String,
    /// Upload id.
    pub upload_id: String,
    /// Who initiated the upload.
    pub initiator: Owner,
    /// Owner of the future object.
    pub owner: Owner,
    /// E.g. `STANDARD`.
    pub storage_class: String,
    /// See [`s3_timestamp`](super::s3_timestamp).
    pub initiated: String,
}

// ---------------------------------------------------------------------------------------------
// Versions
// ---------------------------------------------------------------------------------------------

/// ListObjectVersions response, elements in S3's order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename = "ListVersionsResult", rename_all = "PascalCase")]
pub struct ListVersionsResult {
    /// Namespace attribute.
    #[serde(rename = "@xmlns")]
    pub xmlns: Xmlns,
    /// Bucket name.
    pub name: String,
    /// Echo of `prefix`.
    pub prefix: String,
    /// Echo of `key-marker`.
    pub key_marker: String,
    /// Echo of `version-id-marker`.
    pub version_id_marker: String,
    /// Where the next page starts, when truncated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_key_marker: Option<String>,
    /// Version id the next page starts after, when truncated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_version_id_marker: Option<String>,
    /// Echo of `max-keys`.
    pub max_keys: u32,
    /// Echo of `delimiter`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// `url` when keys and prefixes are URL-encoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding_type: Option<String>,
    /// Whether more results exist.
    pub is_truncated: bool,
    /// One `<Version>` or `<DeleteMarker>` per entry, in listing order (by key, then newest
    /// first), the two kinds interleaved as S3 sends them.
    #[serde(rename = "$value")]
    pub entries: Vec<VersionEntry>,
    /// One `<CommonPrefixes>` per rolled-up prefix.
    pub common_prefixes: Vec<CommonPrefix>,
}

/// One entry of a ListObjectVersions response: an object version or a delete marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum VersionEntry {
    /// `<Version>`.
    Version(ObjectVersion),
    /// `<DeleteMarker>`.
    DeleteMarker(DeleteMarkerEntry),
}

/// One `<DeleteMarker>` of a ListObjectVersions response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteMarkerEntry {
    /// Object key.
    pub key: String,
    /// Version id of the marker.
    pub version_id: String,
    /// Whether the marker is the key's current version.
    pub is_latest: bool,
    /// See [`s3_timestamp`](super::s3_timestamp).
    pub last_modified: String,
    /// Who made the marker.
    pub owner: Owner,
}

/// One `<Version>` of a ListObjectVersions response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ObjectVersion {
    /// Object key.
    pub key: String,
    /// Version id (`null` for an unversioned object).
    pub version_id: String,
    /// Whether this is the current version.
    pub is_latest: bool,
    /// See [`s3_timestamp`](super::s3_timestamp).
    pub last_modified: String,
    /// Quoted entity tag.
    #[serde(rename = "ETag")]
    pub etag: String,
    /// Size in bytes.
    pub size: u64,
    /// E.g. `STANDARD`.
    pub storage_class: String,
    /// Owner of the object.
    pub owner: Owner,
}

/// PostObject response for `success_action_status=201`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename = "PostResponse", rename_all = "PascalCase")]
pub struct PostResponse {
    /// URL of the new object.
    pub location: String,
    /// Bucket name.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// Quoted entity tag.
    #[serde(rename = "ETag")]
    pub etag: String,
}

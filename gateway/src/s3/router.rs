//! (method, bucket, key, query) → one [`Endpoint`]: every S3 operation the gateway serves is
//! visible here; anything else is `NotImplemented` (or `MethodNotAllowed`).

use http::Method;

use crate::error::S3Error;

/// Every S3 operation the gateway implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ListBuckets,
    CreateBucket,
    DeleteBucket,
    HeadBucket,
    GetBucketLocation,
    GetBucketAcl,
    GetBucketVersioning,
    PutBucketVersioning,
    GetBucketWebsite,
    PutBucketWebsite,
    DeleteBucketWebsite,
    GetBucketLifecycle,
    PutBucketLifecycle,
    DeleteBucketLifecycle,
    GetBucketCors,
    PutBucketCors,
    DeleteBucketCors,
    PutBucketAcl,
    GetBucketPolicy,
    ListObjectVersions,
    GetObjectAcl,
    PutObjectAcl,
    /// Browser upload with a POST policy (form fields carry the credentials).
    PostObject,
    /// A CORS preflight `OPTIONS` (anonymous).
    CorsPreflight,
    ListObjects,
    ListObjectsV2,
    DeleteObjects,
    PutObject,
    CopyObject,
    GetObject,
    HeadObject,
    DeleteObject,
    CreateMultipartUpload,
    UploadPart,
    UploadPartCopy,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    ListMultipartUploads,
    ListParts,
    GetObjectTagging,
    PutObjectTagging,
    DeleteObjectTagging,
    GetBucketTagging,
    PutBucketTagging,
    DeleteBucketTagging,
}

/// The right a key needs on the bucket for an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No bucket involved (ListBuckets, CreateBucket: checked by the handler).
    Service,
    Read,
    Write,
    Owner,
}

impl Endpoint {
    /// The bucket right this operation requires.
    pub fn access(self) -> Access {
        use Endpoint::*;
        match self {
            ListBuckets | CreateBucket => Access::Service,
            // Authorized by their handlers: the policy's key / no key at all.
            PostObject | CorsPreflight => Access::Service,
            ListObjectVersions => Access::Read,
            GetBucketCors | PutBucketCors | DeleteBucketCors | PutBucketAcl | GetBucketPolicy
            | GetObjectAcl | PutObjectAcl => Access::Owner,
            HeadBucket | GetBucketLocation | ListObjects | ListObjectsV2 | GetObject
            | HeadObject => Access::Read,
            ListMultipartUploads | ListParts => Access::Read,
            PutObject | CopyObject | DeleteObject | DeleteObjects => Access::Write,
            CreateMultipartUpload
            | UploadPart
            | UploadPartCopy
            | CompleteMultipartUpload
            | AbortMultipartUpload => Access::Write,
            DeleteBucket | GetBucketAcl | GetBucketVersioning | PutBucketVersioning => {
                Access::Owner
            }
            GetBucketWebsite | PutBucketWebsite | DeleteBucketWebsite => Access::Owner,
            GetBucketLifecycle | PutBucketLifecycle | DeleteBucketLifecycle => Access::Owner,
            GetObjectTagging => Access::Read,
            PutObjectTagging | DeleteObjectTagging => Access::Write,
            GetBucketTagging | PutBucketTagging | DeleteBucketTagging => Access::Owner,
        }
    }

    /// The operation name, for logs and metrics.
    pub fn name(self) -> &'static str {
        use Endpoint::*;
        match self {
            ListBuckets => "ListBuckets",
            CreateBucket => "CreateBucket",
            DeleteBucket => "DeleteBucket",
            HeadBucket => "HeadBucket",
            GetBucketLocation => "GetBucketLocation",
            GetBucketAcl => "GetBucketAcl",
            GetBucketVersioning => "GetBucketVersioning",
            PutBucketVersioning => "PutBucketVersioning",
            GetBucketWebsite => "GetBucketWebsite",
            PutBucketWebsite => "PutBucketWebsite",
            DeleteBucketWebsite => "DeleteBucketWebsite",
            GetBucketLifecycle => "GetBucketLifecycleConfiguration",
            PutBucketLifecycle => "PutBucketLifecycleConfiguration",
            DeleteBucketLifecycle => "DeleteBucketLifecycle",
            GetBucketCors => "GetBucketCors",
            PutBucketCors => "PutBucketCors",
            DeleteBucketCors => "DeleteBucketCors",
            PutBucketAcl => "PutBucketAcl",
            GetBucketPolicy => "GetBucketPolicy",
            ListObjectVersions => "ListObjectVersions",
            GetObjectAcl => "GetObjectAcl",
            PutObjectAcl => "PutObjectAcl",
            PostObject => "PostObject",
            CorsPreflight => "CorsPreflight",
            ListObjects => "ListObjects",
            ListObjectsV2 => "ListObjectsV2",
            DeleteObjects => "DeleteObjects",
            PutObject => "PutObject",
            CopyObject => "CopyObject",
            GetObject => "GetObject",
            HeadObject => "HeadObject",
            DeleteObject => "DeleteObject",
            CreateMultipartUpload => "CreateMultipartUpload",
            UploadPart => "UploadPart",
            UploadPartCopy => "UploadPartCopy",
            CompleteMultipartUpload => "CompleteMultipartUpload",
            AbortMultipartUpload => "AbortMultipartUpload",
            ListMultipartUploads => "ListMultipartUploads",
            ListParts => "ListParts",
            GetObjectTagging => "GetObjectTagging",
            PutObjectTagging => "PutObjectTagging",
            DeleteObjectTagging => "DeleteObjectTagging",
            GetBucketTagging => "GetBucketTagging",
            PutBucketTagging => "PutBucketTagging",
            DeleteBucketTagging => "DeleteBucketTagging",
        }
    }
}

/// Decoded query parameters, in request order.
#[derive(Debug, Default, Clone)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        Query(
            form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The value of a parameter (empty string for `?flag`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// Parameters that carry values for an operation rather than naming a sub-resource.
fn is_value_parameter(name: &str) -> bool {
    const VALUES: &[&str] = &[
        "prefix",
        "delimiter",
        "marker",
        "max-keys",
        "encoding-type",
        "list-type",
        "continuation-token",
        "start-after",
        "fetch-owner",
        "x-id",
        "key-marker",
        "upload-id-marker",
        "max-uploads",
        "part-number-marker",
        "versionId",
        "max-parts",
        "version-id-marker",
    ];
    VALUES.contains(&name)
        || name.starts_with("response-")
        || name.starts_with("X-Amz-")
        || name.starts_with("x-amz-")
}

/// Sub-resources the gateway serves (with the method that serves them).
const SERVED_SUBRESOURCES: &[&str] = &[
    "location",
    "acl",
    "versioning",
    "delete",
    "website",
    "lifecycle",
    "cors",
    "versions",
    "policy",
    "tagging",
];

/// Multipart parameters: `?uploads` (a sub-resource), `uploadId` and `partNumber`.
const MULTIPART_PARAMETERS: &[&str] = &["uploads", "uploadId", "partNumber"];

/// Routes a request. `bucket` and `key` come from the path (or the Host header).
pub fn route(
    method: &Method,
    bucket: Option<&str>,
    key: Option<&str>,
    query: &Query,
) -> Result<Endpoint, S3Error> {
    use Endpoint::*;
    if *method == Method::OPTIONS {
        // A preflight names the URL of the request to come, whatever it is.
        return Ok(CorsPreflight);
    }
    if let Some((name, _)) = query.0.iter().find(|(k, _)| {
        !is_value_parameter(k)
            && !SERVED_SUBRESOURCES.contains(&k.as_str())
            && !MULTIPART_PARAMETERS.contains(&k.as_str())
    }) {
        return Err(S3Error::NotImplemented(format!("the '{name}' parameter")));
    }
    let sub = |name: &str| query.has(name);
    let not_implemented = || {
        let what = query
            .0
            .first()
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| method.to_string());
        S3Error::NotImplemented(format!("{method} with '{what}'"))
    };
    let endpoint = match (bucket, key) {
        (None, _) => match *method {
            Method::GET => ListBuckets,
            _ => return Err(S3Error::MethodNotAllowed),
        },
        (Some(_), None) => match *method {
            Method::GET if sub("uploads") && !sub("uploadId") && !sub("partNumber") => {
                ListMultipartUploads
            }
            _ if MULTIPART_PARAMETERS.iter().any(|p| sub(p)) => return Err(not_implemented()),
            Method::GET if sub("location") => GetBucketLocation,
            Method::GET if sub("acl") => GetBucketAcl,
            Method::GET if sub("versioning") => GetBucketVersioning,
            Method::PUT if sub("versioning") => PutBucketVersioning,
            Method::GET if sub("website") => GetBucketWebsite,
            Method::PUT if sub("website") => PutBucketWebsite,
            Method::DELETE if sub("website") => DeleteBucketWebsite,
            Method::GET if sub("lifecycle") => GetBucketLifecycle,
            Method::PUT if sub("lifecycle") => PutBucketLifecycle,
            Method::DELETE if sub("lifecycle") => DeleteBucketLifecycle,
            Method::GET if sub("cors") => GetBucketCors,
            Method::PUT if sub("cors") => PutBucketCors,
            Method::DELETE if sub("cors") => DeleteBucketCors,
            Method::GET if sub("tagging") => GetBucketTagging,
            Method::PUT if sub("tagging") => PutBucketTagging,
            Method::DELETE if sub("tagging") => DeleteBucketTagging,
            Method::PUT if sub("acl") => PutBucketAcl,
            Method::GET if sub("policy") => GetBucketPolicy,
            Method::GET if sub("versions") => ListObjectVersions,
            Method::GET if sub("delete") => return Err(S3Error::MethodNotAllowed),
            Method::GET if query.get("list-type") == Some("2") => ListObjectsV2,
            Method::GET if query.get("list-type").is_some_and(|v| v != "2") => {
                return Err(S3Error::InvalidArgument("Invalid list-type".into()));
            }
            Method::GET => ListObjects,
            Method::HEAD => HeadBucket,
            Method::PUT
                if query
                    .0
                    .iter()
                    .any(|(k, _)| SERVED_SUBRESOURCES.contains(&k.as_str())) =>
            {
                return Err(not_implemented());
            }
            Method::PUT => CreateBucket,
            Method::DELETE
                if query
                    .0
                    .iter()
                    .any(|(k, _)| SERVED_SUBRESOURCES.contains(&k.as_str())) =>
            {
                return Err(not_implemented());
            }
            Method::DELETE => DeleteBucket,
            Method::POST if sub("delete") => DeleteObjects,
            Method::POST
                if query
                    .0
                    .iter()
                    .all(|(k, _)| !SERVED_SUBRESOURCES.contains(&k.as_str())) =>
            {
                PostObject
            }
            Method::POST => return Err(not_implemented()),
            _ => return Err(S3Error::MethodNotAllowed),
        },
        (Some(_), Some(_)) if sub("acl") && !MULTIPART_PARAMETERS.iter().any(|p| sub(p)) => {
            match *method {
                Method::GET => GetObjectAcl,
                Method::PUT => PutObjectAcl,
                _ => return Err(not_implemented()),
            }
        }
        (Some(_), Some(_)) if sub("tagging") && !MULTIPART_PARAMETERS.iter().any(|p| sub(p)) => {
            match *method {
                Method::GET => GetObjectTagging,
                Method::PUT => PutObjectTagging,
                Method::DELETE => DeleteObjectTagging,
                _ => return Err(not_implemented()),
            }
        }
        (Some(_), Some(_)) => {
            if query
                .0
                .iter()
                .any(|(k, _)| SERVED_SUBRESOURCES.contains(&k.as_str()))
            {
                return Err(not_implemented());
            }
            match *method {
                Method::POST if sub("uploads") && !sub("uploadId") => CreateMultipartUpload,
                Method::POST if sub("uploadId") && !sub("uploads") => CompleteMultipartUpload,
                Method::PUT if sub("uploadId") && sub("partNumber") => UploadPart,
                Method::PUT if sub("uploadId") || sub("partNumber") => {
                    return Err(S3Error::InvalidArgument(
                        "UploadPart needs both partNumber and uploadId".into(),
                    ));
                }
                Method::GET if sub("uploadId") => ListParts,
                Method::DELETE if sub("uploadId") => AbortMultipartUpload,
                _ if sub("uploads") || sub("uploadId") => return Err(not_implemented()),
                _ if sub("partNumber") && !matches!(*method, Method::GET | Method::HEAD) => {
                    return Err(not_implemented());
                }
                Method::GET => GetObject,
                Method::HEAD => HeadObject,
                Method::PUT => PutObject,
                Method::DELETE => DeleteObject,
                Method::POST => return Err(not_implemented()),
                _ => return Err(S3Error::MethodNotAllowed),
            }
        }
    };
    Ok(endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(
        method: Method,
        bucket: Option<&str>,
        key: Option<&str>,
        q: &str,
    ) -> Result<Endpoint, S3Error> {
        route(&method, bucket, key, &Query::parse(Some(q)))
    }

    #[test]
    fn routes_the_core_operations() {
        assert_eq!(
            r(Method::GET, None, None, "").unwrap(),
            Endpoint::ListBuckets
        );
        assert_eq!(
            r(Method::PUT, Some("b"), None, "").unwrap(),
            Endpoint::CreateBucket
        );
        assert_eq!(
            r(Method::GET, Some("b"), None, "list-type=2&prefix=a").unwrap(),
            Endpoint::ListObjectsV2
        );
        assert_eq!(
            r(Method::GET, Some("b"), None, "marker=x").unwrap(),
            Endpoint::ListObjects
        );
        assert_eq!(
            r(Method::GET, Some("b"), None, "location").unwrap(),
            Endpoint::GetBucketLocation
        );
        assert_eq!(
            r(Method::POST, Some("b"), None, "delete").unwrap(),
            Endpoint::DeleteObjects
        );
        assert_eq!(
            r(Method::GET, Some("b"), Some("k"), "response-content-type=a").unwrap(),
            Endpoint::GetObject
        );
        assert_eq!(
            r(Method::GET, Some("b"), Some("k"), "x-id=GetObject").unwrap(),
            Endpoint::GetObject
        );
        assert_eq!(
            r(Method::DELETE, Some("b"), Some("k"), "").unwrap(),
            Endpoint::DeleteObject
        );
    }

    #[test]
    fn routes_website_configuration() {
        let ok = |m: Method| r(m, Some("b"), None, "website").unwrap();
        assert_eq!(ok(Method::GET), Endpoint::GetBucketWebsite);
        assert_eq!(ok(Method::PUT), Endpoint::PutBucketWebsite);
        assert_eq!(ok(Method::DELETE), Endpoint::DeleteBucketWebsite);
        for e in [
            Endpoint::GetBucketWebsite,
            Endpoint::PutBucketWebsite,
            Endpoint::DeleteBucketWebsite,
        ] {
            assert_eq!(e.access(), Access::Owner);
        }
        // Never an object operation.
        assert!(matches!(
            r(Method::GET, Some("b"), Some("k"), "website"),
            Err(S3Error::NotImplemented(_))
        ));
    }

    #[test]
    fn routes_lifecycle_configuration() {
        let ok = |m: Method| r(m, Some("b"), None, "lifecycle").unwrap();
        assert_eq!(ok(Method::GET), Endpoint::GetBucketLifecycle);
        assert_eq!(ok(Method::PUT), Endpoint::PutBucketLifecycle);
        assert_eq!(ok(Method::DELETE), Endpoint::DeleteBucketLifecycle);
        assert_eq!(Endpoint::PutBucketLifecycle.access(), Access::Owner);
        assert!(matches!(
            r(Method::GET, Some("b"), Some("k"), "lifecycle"),
            Err(S3Error::NotImplemented(_))
        ));
    }

    #[test]
    fn unknown_subresources_are_not_implemented() {
        for q in ["torrent", "inventory", "replication"] {
            assert!(
                matches!(
                    r(Method::GET, Some("b"), None, q),
                    Err(S3Error::NotImplemented(_))
                ),
                "{q}"
            );
        }
        assert!(matches!(
            r(Method::GET, Some("b"), Some("k"), "cors"),
            Err(S3Error::NotImplemented(_))
        ));
        assert!(matches!(
            r(Method::PUT, Some("b"), None, "policy"),
            Err(S3Error::NotImplemented(_))
        ));
        assert!(matches!(
            r(Method::PATCH, Some("b"), Some("k"), ""),
            Err(S3Error::MethodNotAllowed)
        ));
    }

    #[test]
    fn routes_cors_acl_versions_policy_and_post() {
        let ok = |m: Method, key: Option<&str>, q: &str| r(m, Some("b"), key, q).unwrap();
        assert_eq!(ok(Method::GET, None, "cors"), Endpoint::GetBucketCors);
        assert_eq!(ok(Method::PUT, None, "cors"), Endpoint::PutBucketCors);
        assert_eq!(ok(Method::DELETE, None, "cors"), Endpoint::DeleteBucketCors);
        assert_eq!(ok(Method::GET, None, "acl"), Endpoint::GetBucketAcl);
        assert_eq!(ok(Method::PUT, None, "acl"), Endpoint::PutBucketAcl);
        assert_eq!(ok(Method::GET, Some("k"), "acl"), Endpoint::GetObjectAcl);
        assert_eq!(ok(Method::PUT, Some("k"), "acl"), Endpoint::PutObjectAcl);
        assert_eq!(ok(Method::GET, None, "policy"), Endpoint::GetBucketPolicy);
        assert_eq!(
            ok(
                Method::GET,
                None,
                "versions&prefix=a&key-marker=k&version-id-marker=null&max-keys=2"
            ),
            Endpoint::ListObjectVersions
        );
        assert_eq!(ok(Method::POST, None, ""), Endpoint::PostObject);
        for (key, q) in [
            (None, ""),
            (Some("k"), ""),
            (Some("k"), "uploadId=1&partNumber=2"),
        ] {
            assert_eq!(ok(Method::OPTIONS, key, q), Endpoint::CorsPreflight);
        }
        assert_eq!(
            r(Method::OPTIONS, None, None, "").unwrap(),
            Endpoint::CorsPreflight
        );
        assert!(matches!(
            r(Method::POST, Some("b"), None, "acl"),
            Err(S3Error::NotImplemented(_))
        ));
        assert!(matches!(
            r(Method::DELETE, Some("b"), Some("k"), "acl"),
            Err(S3Error::NotImplemented(_))
        ));
        assert_eq!(Endpoint::PutBucketCors.access(), Access::Owner);
        assert_eq!(Endpoint::ListObjectVersions.access(), Access::Read);
    }

    #[test]
    fn routes_tagging() {
        let ok = |m: Method, key: Option<&str>, q: &str| r(m, Some("b"), key, q).unwrap();
        assert_eq!(
            ok(Method::GET, Some("k"), "tagging"),
            Endpoint::GetObjectTagging
        );
        assert_eq!(
            ok(Method::PUT, Some("k"), "tagging"),
            Endpoint::PutObjectTagging
        );
        assert_eq!(
            ok(Method::DELETE, Some("k"), "tagging&versionId=null"),
            Endpoint::DeleteObjectTagging
        );
        assert_eq!(ok(Method::GET, None, "tagging"), Endpoint::GetBucketTagging);
        assert_eq!(ok(Method::PUT, None, "tagging"), Endpoint::PutBucketTagging);
        assert_eq!(
            ok(Method::DELETE, None, "tagging"),
            Endpoint::DeleteBucketTagging
        );
        assert_eq!(Endpoint::GetObjectTagging.access(), Access::Read);
        assert_eq!(Endpoint::PutObjectTagging.access(), Access::Write);
        assert_eq!(Endpoint::PutBucketTagging.access(), Access::Owner);
        // Never a bucket POST upload.
        for (m, key, q) in [
            (Method::POST, None, "tagging"),
            (Method::POST, Some("k"), "tagging"),
        ] {
            assert!(
                matches!(
                    r(m.clone(), Some("b"), key, q),
                    Err(S3Error::NotImplemented(_))
                ),
                "{m} {key:?} {q}"
            );
        }
    }

    #[test]
    fn routes_multipart_operations() {
        let ok = |m: Method, key: Option<&str>, q: &str| r(m, Some("b"), key, q).unwrap();
        assert_eq!(
            ok(Method::POST, Some("k"), "uploads"),
            Endpoint::CreateMultipartUpload
        );
        assert_eq!(
            ok(Method::POST, Some("k"), "uploads="),
            Endpoint::CreateMultipartUpload
        );
        assert_eq!(
            ok(Method::PUT, Some("k"), "partNumber=2&uploadId=x"),
            Endpoint::UploadPart
        );
        assert_eq!(
            ok(Method::POST, Some("k"), "uploadId=x"),
            Endpoint::CompleteMultipartUpload
        );
        assert_eq!(
            ok(Method::DELETE, Some("k"), "uploadId=x"),
            Endpoint::AbortMultipartUpload
        );
        assert_eq!(
            ok(
                Method::GET,
                Some("k"),
                "uploadId=x&max-parts=2&part-number-marker=1"
            ),
            Endpoint::ListParts
        );
        assert_eq!(
            ok(
                Method::GET,
                None,
                "uploads&prefix=a&key-marker=k&upload-id-marker=u&max-uploads=3"
            ),
            Endpoint::ListMultipartUploads
        );
        assert_eq!(
            ok(Method::GET, Some("k"), "partNumber=1"),
            Endpoint::GetObject
        );
        assert_eq!(
            ok(Method::HEAD, Some("k"), "partNumber=1"),
            Endpoint::HeadObject
        );
        assert!(matches!(
            r(Method::PUT, Some("b"), Some("k"), "partNumber=1"),
            Err(S3Error::InvalidArgument(_))
        ));
        assert!(matches!(
            r(Method::PUT, Some("b"), Some("k"), "uploadId=x"),
            Err(S3Error::InvalidArgument(_))
        ));
        // Never a bucket operation in disguise.
        for (m, q) in [
            (Method::DELETE, "uploadId=x"),
            (Method::PUT, "uploads"),
            (Method::POST, "uploads"),
            (Method::GET, "uploadId=x"),
        ] {
            assert!(
                matches!(
                    r(m.clone(), Some("b"), None, q),
                    Err(S3Error::NotImplemented(_))
                ),
                "{m} {q}"
            );
        }
        assert!(matches!(
            r(Method::GET, Some("b"), Some("k"), "uploads"),
            Err(S3Error::NotImplemented(_))
        ));
        assert!(matches!(
            r(Method::DELETE, Some("b"), Some("k"), "partNumber=1"),
            Err(S3Error::NotImplemented(_))
        ));
        assert_eq!(Endpoint::ListParts.access(), Access::Read);
        assert_eq!(Endpoint::ListMultipartUploads.access(), Access::Read);
        assert_eq!(Endpoint::UploadPartCopy.access(), Access::Write);
    }
}

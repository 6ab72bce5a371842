//! ACL stubs real SDKs call: GetBucketAcl / GetObjectAcl answer the owner's FULL_CONTROL;
//! PutBucketAcl / PutObjectAcl accept only what changes nothing (the canned `private` ACL,
//! or a body granting the owner FULL_CONTROL alone) and refuse grants as NotImplemented.

use http::{Response, StatusCode};

use super::list::bucket_owner;
use super::versioning::{readable_version, requested_version};
use super::{S3, S3Request, empty_response, read_checked_body, xml_response};
use crate::body::ResponseBody;
use crate::error::{S3Error, S3Result};
use crate::xml::{self, AccessControlPolicy};

/// Largest PutBucketAcl / PutObjectAcl body accepted.
const MAX_BODY: usize = 64 * 1024;

/// Headers that grant rights to others.
const GRANT_HEADERS: &[&str] = &[
    "x-amz-grant-read",
    "x-amz-grant-write",
    "x-amz-grant-read-acp",
    "x-amz-grant-write-acp",
    "x-amz-grant-full-control",
];

/// GetBucketAcl and GetObjectAcl (the object must exist).
pub async fn get_acl(s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    let bucket = req.bucket()?;
    if let Some(key) = &req.key {
        readable_version(s3, bucket, key, requested_version(&req)?).await?;
    }
    xml_response(
        StatusCode::OK,
        xml::to_xml(&AccessControlPolicy::owner_full_control(bucket_owner(
            bucket, &req,
        ))),
    )
}

/// PutBucketAcl and PutObjectAcl (the object must exist).
pub async fn put_acl(s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    let bucket = req.bucket()?.clone();
    if let Some(key) = &req.key {
        readable_version(s3, &bucket, key, requested_version(&req)?).await?;
    }
    if let Some(name) = GRANT_HEADERS.iter().find(|h| req.headers.contains_key(**h)) {
        return Err(S3Error::NotImplemented(format!("ACL grants ({name})")));
    }
    let owner = bucket_owner(&bucket, &req);
    match req.header("x-amz-acl").map(str::to_string) {
        Some(canned) if canned == "private" => {
            read_checked_body(req, MAX_BODY).await?;
        }
        Some(canned) => {
            return Err(S3Error::NotImplemented(format!(
                "the canned ACL '{canned}' (only 'private' is supported)"
            )));
        }
        None => {
            let body = read_checked_body(req, MAX_BODY).await?;
            let policy: AccessControlPolicy = xml::from_xml(&body)?;
            if !only_owner_full_control(&policy, &owner.id) {
                return Err(S3Error::NotImplemented(
                    "ACL grants other than FULL_CONTROL to the owner".into(),
                ));
            }
        }
    }
    empty_response(StatusCode::OK)
}

/// Whether `policy` is the `private` ACL: one FULL_CONTROL grant to the owner.
fn only_owner_full_control(policy: &AccessControlPolicy, owner_id: &str) -> bool {
    match policy.access_control_list.as_slice() {
        [grant] => {
            grant.permission == "FULL_CONTROL"
                && grant.grantee.id.as_deref() == Some(owner_id)
                && grant.grantee.uri.is_none()
                && grant.grantee.email_address.is_none()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{Grant, Grantee, Owner};

    fn owner(id: &str) -> Owner {
        Owner {
            id: id.into(),
            display_name: id.into(),
        }
    }

    #[test]
    fn only_the_private_acl_is_accepted() {
        let private = AccessControlPolicy::owner_full_control(owner("me"));
        assert!(only_owner_full_control(&private, "me"));
        assert!(!only_owner_full_control(&private, "someone-else"));
        let mut read = private.clone();
        read.access_control_list[0].permission = "READ".into();
        assert!(!only_owner_full_control(&read, "me"));
        let mut public = private.clone();
        public.access_control_list.push(Grant {
            grantee: Grantee {
                xsi_type: "Group".into(),
                uri: Some("http://acs.amazonaws.com/groups/global/AllUsers".into()),
                ..Default::default()
            },
            permission: "READ".into(),
        });
        assert!(!only_owner_full_control(&public, "me"));
        let mut empty = private;
        empty.access_control_list.clear();
        assert!(!only_owner_full_control(&empty, "me"));
    }

    #[test]
    fn parses_the_body_sdks_send() {
        let body = r#"<AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
            <Owner><ID>me</ID><DisplayName>me</DisplayName></Owner>
            <AccessControlList><Grant>
              <Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser">
                <ID>me</ID></Grantee>
              <Permission>FULL_CONTROL</Permission>
            </Grant></AccessControlList></AccessControlPolicy>"#;
        let policy: AccessControlPolicy = xml::from_xml(body.as_bytes()).unwrap();
        assert!(only_owner_full_control(&policy, "me"));
    }
}

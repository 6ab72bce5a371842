//! Tags: Put/Get/DeleteObjectTagging (`?tagging`, optionally `&versionId=`), Put/Get/
//! DeleteBucketTagging, and the tag sets other operations carry (`x-amz-tagging` on
//! PutObject, CopyObject and CreateMultipartUpload, the `tagging` field of a POST upload),
//! checked against S3's limits.
//!
//! Object tag edits go to the key's coordinator (`SetTags`), which applies them to one
//! version under the key's lock and stamps them, so a racing overwrite and a tag edit never
//! lose each other. Bucket tags live in the bucket's Raft metadata.

use std::collections::BTreeMap;

use cairn_proto::meta::{Bucket, MetaCommand};
use cairn_proto::pb;
use cairn_proto::versions::{VersionSelector, version_header, version_key};
use http::{HeaderMap, Response, StatusCode};

use super::bucket::meta_error;
use super::versioning::{readable_version, requested_version};
use super::{S3, S3Request, empty_response, header_value, read_checked_body, xml_response};
use crate::body::ResponseBody;
use crate::error::{S3Error, S3Result, VERSION_ID_HEADER};
use crate::xml::{self, Tagging};

/// A tag set: key → value.
pub type Tags = BTreeMap<String, String>;

/// Most tags an object may carry (as S3).
pub const MAX_OBJECT_TAGS: usize = 10;
/// Most tags a bucket may carry (as S3).
pub const MAX_BUCKET_TAGS: usize = 50;
/// Longest tag key, in Unicode characters.
const MAX_KEY_CHARS: usize = 128;
/// Longest tag value, in Unicode characters.
const MAX_VALUE_CHARS: usize = 256;
/// Largest tagging document accepted (50 tags of maximal length fit).
const MAX_BODY: usize = 128 * 1024;

/// Which limits a tag set is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagScope {
    Object,
    Bucket,
}

/// Checks tags (in the order sent) against S3's limits: count, key and value lengths, no
/// duplicate or empty keys, no `aws:` keys. Every violation is InvalidTag.
pub fn validate(pairs: Vec<(String, String)>, scope: TagScope) -> S3Result<Tags> {
    let invalid = |why: &str| Err(S3Error::InvalidTag(why.to_string()));
    match scope {
        TagScope::Object if pairs.len() > MAX_OBJECT_TAGS => {
            return invalid("Object tags cannot be greater than 10");
        }
        TagScope::Bucket if pairs.len() > MAX_BUCKET_TAGS => {
            return invalid("Bucket tag count cannot be greater than 50");
        }
        _ => {}
    }
    let mut tags = Tags::new();
    for (key, value) in pairs {
        if key.is_empty() {
            return invalid("The TagKey you have provided is invalid");
        }
        if key.chars().count() > MAX_KEY_CHARS {
            return invalid("The TagKey you have provided is too long, max 128");
        }
        if value.chars().count() > MAX_VALUE_CHARS {
            return invalid("The TagValue you have provided is too long, max 256");
        }
        if key.starts_with("aws:") {
            return invalid("Your TagKey cannot be prefixed with aws:");
        }
        if tags.insert(key, value).is_some() {
            return invalid("Cannot provide multiple Tags with the same key");
        }
    }
    Ok(tags)
}

/// The object tags of an `x-amz-tagging` header (a URL-encoded query string), if sent.
pub fn from_header(headers: &HeaderMap) -> S3Result<Option<Tags>> {
    let Some(value) = headers.get("x-amz-tagging") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| S3Error::InvalidArgument("bad value of x-amz-tagging".into()))?;
    let pairs = form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect();
    validate(pairs, TagScope::Object).map(Some)
}

/// The tags of a `<Tagging>` document (MalformedXML if it is not one).
pub fn from_document(body: &[u8], scope: TagScope) -> S3Result<Tags> {
    validate(xml::from_xml::<Tagging>(body)?.pairs(), scope)
}

/// The `x-amz-tagging-count` GET and HEAD answer with, when the object has tags.
pub fn count_header(record: &pb::ObjectRecord) -> Option<usize> {
    (!record.tags.is_empty()).then_some(record.tags.len())
}

/// The object version a tagging request names (`?versionId=`; none = the latest).
struct VersionTarget(Option<VersionSelector>);

impl VersionTarget {
    fn of(req: &S3Request) -> S3Result<Self> {
        requested_version(req).map(Self)
    }

    /// What a missing object answers.
    fn missing(&self) -> S3Error {
        match self.0 {
            Some(_) => S3Error::NoSuchVersion,
            None => S3Error::NoSuchKey,
        }
    }
}

/// A tagging answer, with `x-amz-version-id` of the version acted on.
fn tagging_response(
    status: StatusCode,
    record: &pb::ObjectRecord,
    body: Option<String>,
) -> S3Result<Response<ResponseBody>> {
    let mut resp = match body {
        Some(xml) => xml_response(status, xml)?,
        None => empty_response(status)?,
    };
    if let Some(id) = version_header(record) {
        resp.headers_mut()
            .insert(VERSION_ID_HEADER, header_value(&id)?);
    }
    Ok(resp)
}

pub async fn get_object_tagging(s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    let target = VersionTarget::of(&req)?;
    let record = readable_version(s3, req.bucket()?, req.key()?, target.0).await?;
    let body = xml::to_xml(&Tagging::of(&record.tags));
    tagging_response(StatusCode::OK, &record, Some(body))
}

pub async fn put_object_tagging(s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    let target = VersionTarget::of(&req)?;
    let (bucket, key) = (req.bucket()?.clone(), req.key()?.to_string());
    let body = read_checked_body(req, MAX_BODY).await?;
    let tags = from_document(&body, TagScope::Object)?;
    let record = set_object_tags(s3, &bucket, &key, &target, tags).await?;
    tagging_response(StatusCode::OK, &record, None)
}

pub async fn delete_object_tagging(s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    let target = VersionTarget::of(&req)?;
    let record = set_object_tags(s3, req.bucket()?, req.key()?, &target, Tags::new()).await?;
    tagging_response(StatusCode::NO_CONTENT, &record, None)
}

/// Replaces the tags of the version `target` names, through the key's coordinator.
async fn set_object_tags(
    s3: &S3,
    bucket: &Bucket,
    key: &str,
    target: &VersionTarget,
    tags: Tags,
) -> S3Result<pb::ObjectRecord> {
    let version = match target.0 {
        None => None,
        Some(VersionSelector::Id(v)) => Some(v),
        // The null version's stamp, to edit exactly it.
        Some(null) => Some(version_key(
            &readable_version(s3, bucket, key, Some(null)).await?,
        )),
    };
    match s3.cluster.set_tags(&bucket.id, key, version, tags).await {
        Err(S3Error::NoSuchKey) => Err(target.missing()),
        other => other,
    }
}

pub async fn get_bucket_tagging(_s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    let tags = &req.bucket()?.tags;
    if tags.is_empty() {
        return Err(S3Error::NoSuchTagSet);
    }
    xml_response(StatusCode::OK, xml::to_xml(&Tagging::of(tags)))
}

pub async fn put_bucket_tagging(s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    let bucket = req.bucket()?.clone();
    let body = read_checked_body(req, MAX_BODY).await?;
    let tags = from_document(&body, TagScope::Bucket)?;
    set_bucket_tags(s3, &bucket, tags).await?;
    empty_response(StatusCode::NO_CONTENT)
}

pub async fn delete_bucket_tagging(s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    set_bucket_tags(s3, req.bucket()?, Tags::new()).await?;
    empty_response(StatusCode::NO_CONTENT)
}

async fn set_bucket_tags(s3: &S3, bucket: &Bucket, tags: Tags) -> S3Result<()> {
    let cmd = MetaCommand::SetBucketTags {
        bucket: bucket.name.clone(),
        tags,
    };
    s3.cluster.meta_write(&cmd).await?.map_err(meta_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(n: usize) -> Vec<(String, String)> {
        (0..n).map(|i| (format!("k{i}"), format!("v{i}"))).collect()
    }

    fn invalid(r: S3Result<Tags>) -> bool {
        matches!(r, Err(S3Error::InvalidTag(_)))
    }

    #[test]
    fn limits() {
        assert_eq!(validate(pairs(10), TagScope::Object).unwrap().len(), 10);
        assert!(invalid(validate(pairs(11), TagScope::Object)));
        assert_eq!(validate(pairs(50), TagScope::Bucket).unwrap().len(), 50);
        assert!(invalid(validate(pairs(51), TagScope::Bucket)));
        // Lengths count characters, not bytes.
        let ok = vec![("é".repeat(128), "é".repeat(256))];
        assert!(validate(ok, TagScope::Object).is_ok());
        for bad in [
            vec![("k".repeat(129), String::new())],
            vec![("k".into(), "v".repeat(257))],
            vec![(String::new(), "v".into())],
            vec![("aws:x".into(), "v".into())],
            vec![("k".into(), "1".into()), ("k".into(), "2".into())],
        ] {
            assert!(invalid(validate(bad.clone(), TagScope::Object)), "{bad:?}");
        }
    }

    #[test]
    fn headers_and_documents() {
        let mut h = HeaderMap::new();
        assert_eq!(from_header(&h).unwrap(), None);
        h.insert("x-amz-tagging", "a=1&b=x%20y&c".parse().unwrap());
        let tags = from_header(&h).unwrap().unwrap();
        assert_eq!(tags["a"], "1");
        assert_eq!(tags["b"], "x y");
        assert_eq!(tags["c"], "");
        h.insert("x-amz-tagging", "a=1&a=2".parse().unwrap());
        assert!(matches!(from_header(&h), Err(S3Error::InvalidTag(_))));

        let doc = br#"<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet><Tag><Key>k</Key><Value>v</Value></Tag><Tag><Key>e</Key><Value></Value></Tag></TagSet></Tagging>"#;
        let tags = from_document(doc, TagScope::Object).unwrap();
        assert_eq!(tags.len(), 2);
        assert_eq!(tags["e"], "");
        let empty = b"<Tagging><TagSet/></Tagging>";
        assert!(from_document(empty, TagScope::Object).unwrap().is_empty());
        for bad in [&b"<Tagging><TagSet>"[..], b"<Other/>", b"<Tagging/>", b""] {
            assert!(
                matches!(
                    from_document(bad, TagScope::Object),
                    Err(S3Error::MalformedXML)
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // Rendered sorted by key, and parsed back the same.
        let xml = xml::to_xml(&Tagging::of(&tags));
        assert!(xml.contains("<TagSet><Tag><Key>e</Key>"), "{xml}");
        assert_eq!(
            from_document(xml.as_bytes(), TagScope::Object).unwrap(),
            tags
        );
    }
}

//! PostObject: browser uploads with an HTML form (`multipart/form-data`) signed by a SigV4
//! POST policy.
//!
//! The fields before `file` are read (small, bounded); the policy signature and conditions
//! are checked before a byte of the file is stored; the file part then streams straight into
//! the object writer, cut off as soon as it exceeds `content-length-range`. Fields after
//! `file` are ignored, as S3 does.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};

use super::object::{
    MAX_PUT_SIZE, mark_complete, publish, record_from_headers, release_unpublished, store_body,
};
use super::router::Access;
use super::tagging::{self, TagScope};
use super::writer::BlockCutter;
use super::{S3, check_rights, empty_response, header_value, xml_response};
use crate::auth::post_policy::{PostPolicy, PostSignature, missing_field};
use crate::body::{self, BodyStream, ResponseBody};
use crate::checksum::BodyHasher;
use crate::error::{S3Error, S3Result};
use crate::xml::{self, PostResponse};

/// Most bytes the fields before `file` may take together (as S3: 20 KB).
const MAX_FIELDS_SIZE: usize = 20 * 1024;

/// Form fields stored on the object as the headers of the same name.
const STORED_FIELDS: &[&str] = &[
    "content-type",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "expires",
    "x-amz-website-redirect-location",
];

/// A form read up to its file part.
struct Form {
    /// Fields before `file`, names lowercased (the first of duplicates wins).
    fields: BTreeMap<String, String>,
    /// The file's name in the form (`filename=`), for `${filename}`.
    file_name: String,
    /// The file's bytes, streamed.
    file: BodyStream,
    /// The rest of the form, read after the file so the client's request completes.
    rest: multer::Multipart<'static>,
}

/// Reads the fields up to the file part.
async fn read_form(headers: &HeaderMap, body: BodyStream) -> S3Result<Form> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // Bucket POST must be of the enclosure-type multipart/form-data (412 as S3).
    let boundary = multer::parse_boundary(content_type).map_err(|_| S3Error::PreconditionFailed)?;
    let mut multipart = multer::Multipart::new(body, boundary);
    let mut fields = BTreeMap::new();
    let mut size = 0;
    loop {
        let mut field = multipart
            .next_field()
            .await
            .map_err(|_| S3Error::MalformedPOSTRequest)?
            .ok_or_else(|| {
                S3Error::InvalidArgument(
                    "POST requires exactly one file upload per request.".into(),
                )
            })?;
        let name = field.name().unwrap_or_default().to_ascii_lowercase();
        if name == "file" {
            let file_name = field.file_name().unwrap_or_default().to_string();
            let file = Box::pin(field.map_err(|_| S3Error::MalformedPOSTRequest));
            return Ok(Form {
                fields,
                file_name,
                file,
                rest: multipart,
            });
        }
        let mut value = Vec::new();
        while let Some(chunk) = field
            .chunk()
            .await
            .map_err(|_| S3Error::MalformedPOSTRequest)?
        {
            size += chunk.len();
            if size + name.len() > MAX_FIELDS_SIZE {
                return Err(S3Error::MaxPostPreDataLengthExceeded);
            }
            value.extend_from_slice(&chunk);
        }
        size += name.len();
        let value = String::from_utf8(value)
            .map_err(|_| S3Error::InvalidArgument(format!("field {name} is not UTF-8")))?;
        fields.entry(name).or_insert(value);
    }
}

/// The object headers the form sets (stored fields and `x-amz-meta-*`).
fn object_headers(fields: &BTreeMap<String, String>) -> S3Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    for (name, value) in fields {
        if STORED_FIELDS.contains(&name.as_str()) || name.starts_with("x-amz-meta-") {
            let invalid = || S3Error::InvalidArgument(format!("invalid value of field {name}"));
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
            let value = HeaderValue::from_str(value).map_err(|_| invalid())?;
            headers.insert(name, value);
        }
    }
    Ok(headers)
}

/// Serves a PostObject to `bucket_name`: authenticates the policy, checks it, stores the file.
pub async fn post_object(
    s3: &S3,
    bucket_name: &str,
    headers: &HeaderMap,
    body: BodyStream,
) -> S3Result<Response<ResponseBody>> {
    let mut form = read_form(headers, body).await?;
    let bucket = s3.find_bucket(bucket_name).await?;
    if !form.fields.contains_key("policy") {
        // No anonymous uploads: every bucket is private.
        return Err(S3Error::AccessDenied);
    }
    let signature = PostSignature::from_fields(&form.fields, &s3.config.region)?;
    let access_key = s3
        .access_key(signature.access_key_id())
        .await?
        .ok_or(S3Error::InvalidAccessKeyId)?;
    let policy = PostPolicy::parse(signature.verify(&access_key.secret)?)?;
    check_rights(&access_key, &bucket, Access::Write)?;

    let key = form
        .fields
        .get("key")
        .ok_or_else(|| missing_field("key"))?
        .replace("${filename}", &form.file_name);
    if key.is_empty() {
        return Err(S3Error::InvalidArgument(
            "User key must have a length greater than 0.".into(),
        ));
    }
    if key.len() > 1024 {
        return Err(S3Error::KeyTooLongError);
    }
    form.fields.insert("key".into(), key.clone());
    form.fields.insert("bucket".into(), bucket.name.clone());
    let sizes = policy.check(&form.fields, chrono::Utc::now())?;

    let mut record = record_from_headers(&bucket, &key, &object_headers(&form.fields)?)?;
    if let Some(document) = form.fields.get("tagging") {
        record.tags = tagging::from_document(document.as_bytes(), TagScope::Object)?;
    }
    let max = (*sizes.end()).min(MAX_PUT_SIZE);
    let mut cutter = BlockCutter::new(
        form.file,
        s3.config.block_size,
        BodyHasher::new(false, None),
        max,
    );
    store_body(s3, &mut record, &mut cutter, None, &None).await?;
    let size = cutter.total();
    if size < *sizes.start() {
        release_unpublished(s3, &record);
        return Err(S3Error::EntityTooSmall);
    }
    mark_complete(&mut record, size, &cutter.digests());
    let stored = publish(s3, record, None).await?;
    // Fields after the file are ignored; read them so the client's request completes.
    while let Ok(Some(_)) = form.rest.next_field().await {}
    let mut resp = success(s3, headers, &form.fields, &bucket.name, &key, &stored.etag)?;
    if let Some(id) = cairn_proto::versions::version_header(&stored) {
        resp.headers_mut()
            .insert(crate::error::VERSION_ID_HEADER, header_value(&id)?);
    }
    Ok(resp)
}

/// The answer to a stored upload: a 303 to `success_action_redirect`, else the status of
/// `success_action_status` (201 with a `PostResponse` document, 200 empty), else 204.
fn success(
    s3: &S3,
    headers: &HeaderMap,
    fields: &BTreeMap<String, String>,
    bucket: &str,
    key: &str,
    etag: &str,
) -> S3Result<Response<ResponseBody>> {
    let location = object_url(s3, headers, bucket, key);
    let redirect = fields
        .get("success_action_redirect")
        .or_else(|| fields.get("redirect"))
        .filter(|r| r.starts_with("http://") || r.starts_with("https://"));
    if let Some(target) = redirect {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("bucket", bucket)
            .append_pair("key", key)
            .append_pair("etag", etag)
            .finish();
        let separator = if target.contains('?') { '&' } else { '?' };
        return Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(
                header::LOCATION,
                header_value(&format!("{target}{separator}{query}"))?,
            )
            .header(header::ETAG, header_value(etag)?)
            .body(body::empty())
            .map_err(|e| S3Error::InternalError(e.to_string()));
    }
    let status = fields.get("success_action_status").map(String::as_str);
    let mut resp = match status {
        Some("201") => {
            let doc = PostResponse {
                location: location.clone(),
                bucket: bucket.to_string(),
                key: key.to_string(),
                etag: etag.to_string(),
            };
            xml_response(StatusCode::CREATED, xml::to_xml(&doc))?
        }
        Some("200") => empty_response(StatusCode::OK)?,
        _ => empty_response(StatusCode::NO_CONTENT)?,
    };
    let h = resp.headers_mut();
    h.insert(header::ETAG, header_value(etag)?);
    h.insert(header::LOCATION, header_value(&location)?);
    Ok(resp)
}

/// The URL of the stored object, in the style (path or virtual-hosted) the request used.
fn object_url(s3: &S3, headers: &HeaderMap, bucket: &str, key: &str) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let key = percent_encoding::utf8_percent_encode(key, KEY_ENCODE);
    let vhost = s3.config.root_domain.as_ref().is_some_and(|root| {
        let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
        name.strip_suffix(root.as_str())
            .and_then(|b| b.strip_suffix('.'))
            .is_some_and(|b| b == bucket)
    });
    let scheme = s3.config.scheme();
    if vhost {
        format!("{scheme}://{host}/{key}")
    } else {
        format!("{scheme}://{host}/{bucket}/{key}")
    }
}

/// Characters escaped in the object URL (`/` and the unreserved set kept).
const KEY_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn form_body(parts: &[(&str, Option<&str>, &str)]) -> (HeaderMap, BodyStream) {
        let mut body = String::new();
        for (name, file, value) in parts {
            body.push_str("--XyZ\r\n");
            match file {
                Some(f) => body.push_str(&format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                     Content-Type: text/plain\r\n\r\n"
                )),
                None => body.push_str(&format!(
                    "Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                )),
            }
            body.push_str(value);
            body.push_str("\r\n");
        }
        body.push_str("--XyZ--\r\n");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("multipart/form-data; boundary=XyZ"),
        );
        // Arrives in small pieces, as over a network.
        let chunks: Vec<Result<Bytes, S3Error>> = body
            .as_bytes()
            .chunks(7)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        (headers, Box::pin(futures::stream::iter(chunks)))
    }

    #[tokio::test]
    async fn reads_fields_then_streams_the_file() {
        let (headers, body) = form_body(&[
            ("Key", None, "uploads/${filename}"),
            ("X-Amz-Meta-Color", None, "blue"),
            ("key", None, "ignored duplicate"),
            ("file", Some("a.txt"), "hello\r\nworld"),
            ("after", None, "ignored"),
        ]);
        let mut form = read_form(&headers, body).await.unwrap();
        assert_eq!(form.fields["key"], "uploads/${filename}");
        assert_eq!(form.fields["x-amz-meta-color"], "blue");
        assert!(!form.fields.contains_key("after"));
        assert_eq!(form.file_name, "a.txt");
        let file: Vec<Bytes> = form.file.try_collect().await.unwrap();
        assert_eq!(file.concat(), b"hello\r\nworld");
        while let Ok(Some(_)) = form.rest.next_field().await {}
    }

    #[tokio::test]
    async fn refuses_forms_without_a_file_or_too_many_fields() {
        let (headers, body) = form_body(&[("key", None, "k")]);
        assert!(matches!(
            read_form(&headers, body).await,
            Err(S3Error::InvalidArgument(m)) if m.contains("file")
        ));
        let big = "x".repeat(MAX_FIELDS_SIZE);
        let (headers, body) = form_body(&[("policy", None, &big), ("file", Some("f"), "")]);
        assert!(matches!(
            read_form(&headers, body).await,
            Err(S3Error::MaxPostPreDataLengthExceeded)
        ));
        let (_, body) = form_body(&[("file", Some("f"), "")]);
        let mut json = HeaderMap::new();
        json.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        assert!(matches!(
            read_form(&json, body).await,
            Err(S3Error::PreconditionFailed)
        ));
        let garbage: BodyStream = Box::pin(futures::stream::iter(vec![Ok(Bytes::from_static(
            b"not a multipart body",
        ))]));
        assert!(matches!(
            read_form(&headers, garbage).await,
            Err(S3Error::MalformedPOSTRequest | S3Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn stored_fields_become_object_headers() {
        let fields: BTreeMap<String, String> = [
            ("content-type", "image/png"),
            ("x-amz-meta-a", "1"),
            ("policy", "p"),
            ("success_action_status", "201"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let h = object_headers(&fields).unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h["content-type"], "image/png");
        assert_eq!(h["x-amz-meta-a"], "1");
    }
}

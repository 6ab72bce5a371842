//! Multipart uploads through aws-sdk-s3 in a few calls: start one, upload a part (Content-MD5
//! sent, ETag checked), name the parts in Complete, and the ETag S3 gives the result.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::complete_multipart_upload::{
    CompleteMultipartUploadError, CompleteMultipartUploadOutput,
};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use md5::{Digest, Md5};

use crate::data::{content_md5, quoted_md5};

/// CreateMultipartUpload of `key`; its upload id.
pub async fn create_upload(s3: &Client, bucket: &str, key: &str) -> String {
    s3.create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateMultipartUpload {key:?}: {e:?}"))
        .upload_id()
        .expect("upload id")
        .to_string()
}

/// UploadPart `number` with its Content-MD5; asserts the ETag is the part's MD5 and returns it.
pub async fn upload_part(
    s3: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    number: i32,
    data: &[u8],
) -> String {
    let out = s3
        .upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .part_number(number)
        .content_md5(content_md5(data))
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("UploadPart {number} of {key:?}: {e:?}"));
    let etag = out.e_tag().expect("part ETag").to_string();
    assert_eq!(etag, quoted_md5(data), "ETag of part {number}");
    etag
}

/// The Complete document naming `(part number, ETag)` pairs, in the order given.
pub fn completed_upload(parts: &[(i32, impl AsRef<str>)]) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .set_parts(Some(
            parts
                .iter()
                .map(|(n, etag)| {
                    CompletedPart::builder()
                        .part_number(*n)
                        .e_tag(etag.as_ref())
                        .build()
                })
                .collect(),
        ))
        .build()
}

/// CompleteMultipartUpload naming `parts`; the SDK's result, for tests of its errors.
pub async fn complete(
    s3: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    parts: &[(i32, impl AsRef<str>)],
) -> Result<CompleteMultipartUploadOutput, SdkError<CompleteMultipartUploadError, HttpResponse>> {
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(completed_upload(parts))
        .send()
        .await
}

/// Uploads `key` as a multipart upload of `parts` (numbered from 1) and completes it.
pub async fn upload_in_parts(
    s3: &Client,
    bucket: &str,
    key: &str,
    parts: &[&[u8]],
) -> CompleteMultipartUploadOutput {
    let upload_id = create_upload(s3, bucket, key).await;
    let mut etags = Vec::new();
    for (n, data) in (1..).zip(parts) {
        etags.push((n, upload_part(s3, bucket, key, &upload_id, n, data).await));
    }
    complete(s3, bucket, key, &upload_id, &etags)
        .await
        .unwrap_or_else(|e| panic!("CompleteMultipartUpload {key:?}: {e:?}"))
}

/// The ETag S3 gives a multipart object: the MD5 of the parts' binary MD5s, `-N`, quoted.
pub fn multipart_etag(parts: &[&[u8]]) -> String {
    let mut md5 = Md5::new();
    for p in parts {
        md5.update(Md5::digest(p));
    }
    format!("\"{}-{}\"", hex::encode(md5.finalize()), parts.len())
}

//! Bucket and whole-object calls through aws-sdk-s3 in one line each: what many tests do
//! around the behaviour they check. Each panics naming the call and key when it fails,
//! except [`try_get`], which returns the failure.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::operation::put_object::PutObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CommonPrefix, Object};

use crate::data::quoted_md5;
use crate::s3::{expect_s3_error, s3_failure, unique_bucket};

/// Creates a bucket `prefix-<random>`; returns its name.
pub async fn new_bucket(s3: &Client, prefix: &str) -> String {
    let bucket = unique_bucket(prefix);
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateBucket {bucket}: {e:?}"));
    bucket
}

/// [`new_bucket`] on a cluster that may just have elected its first leader: a 503 is retried
/// (up to `retries` times, 500 ms apart), as SDKs with retries enabled would; anything else
/// fails.
pub async fn new_bucket_retrying_503(s3: &Client, prefix: &str, retries: usize) -> String {
    let bucket = unique_bucket(prefix);
    for attempt in 0.. {
        match s3.create_bucket().bucket(&bucket).send().await {
            Ok(_) => break,
            Err(e) => {
                let failure = s3_failure(&e);
                assert!(
                    failure.status == Some(503) && attempt < retries,
                    "CreateBucket failed: {failure:?}"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    bucket
}

/// PUTs `data` (nothing else set).
pub async fn put_bytes(s3: &Client, bucket: &str, key: &str, data: &[u8]) -> PutObjectOutput {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutObject {bucket}/{key}: {e:?}"))
}

/// PUTs `data` and asserts the ETag is its MD5.
pub async fn put_checked(s3: &Client, bucket: &str, key: &str, data: &[u8]) {
    let out = put_bytes(s3, bucket, key, data).await;
    assert_eq!(out.e_tag(), Some(quoted_md5(data).as_str()), "PUT {key}");
}

/// A GET of `key`: its headers, and its body still to be read.
pub async fn get_object(s3: &Client, bucket: &str, key: &str) -> GetObjectOutput {
    let sent = s3.get_object().bucket(bucket).key(key).send().await;
    sent.unwrap_or_else(|e| panic!("GetObject {bucket}/{key}: {e:?}"))
}

/// A HEAD of `key`.
pub async fn head_object(s3: &Client, bucket: &str, key: &str) -> HeadObjectOutput {
    let sent = s3.head_object().bucket(bucket).key(key).send().await;
    sent.unwrap_or_else(|e| panic!("HeadObject {bucket}/{key}: {e:?}"))
}

/// The whole body of a GET.
pub async fn get_bytes(s3: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let body = get_object(s3, bucket, key).await.body.collect().await;
    body.unwrap_or_else(|e| panic!("body of GetObject {bucket}/{key}: {e:?}"))
        .to_vec()
}

/// DeleteObject of `key`.
pub async fn delete_object(s3: &Client, bucket: &str, key: &str) {
    let sent = s3.delete_object().bucket(bucket).key(key).send().await;
    sent.unwrap_or_else(|e| panic!("DeleteObject {bucket}/{key}: {e:?}"));
}

/// Asserts that a GET of `key` answers 404 NoSuchKey.
pub async fn expect_no_such_key(s3: &Client, bucket: &str, key: &str, what: &str) {
    let res = s3.get_object().bucket(bucket).key(key).send().await;
    expect_s3_error(what, res, 404, Some("NoSuchKey"));
}

/// GET: `Ok(Some(body))`, `Ok(None)` for 404 NoSuchKey, `Err` (the failure) otherwise.
pub async fn try_get(s3: &Client, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
    match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => {
            let body = out.body.collect().await.map_err(|e| format!("{e:?}"))?;
            Ok(Some(body.into_bytes().to_vec()))
        }
        Err(e) => {
            let f = s3_failure(&e);
            if f.status == Some(404) && f.code.as_deref() == Some("NoSuchKey") {
                Ok(None)
            } else {
                Err(format!("GET {key}: {}", f.detail))
            }
        }
    }
}

/// Every key of the bucket, in listing order (ListObjectsV2, following continuation tokens).
pub async fn list_keys(s3: &Client, bucket: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let request = s3.list_objects_v2().bucket(bucket);
        let sent = request.set_continuation_token(token).send().await;
        let page = sent.unwrap_or_else(|e| panic!("ListObjectsV2 {bucket}: {e:?}"));
        keys.extend(object_keys(page.contents()));
        token = page.next_continuation_token().map(str::to_string);
        if token.is_none() {
            return keys;
        }
    }
}

/// The keys of listed objects (each must have one).
pub fn object_keys(objects: &[Object]) -> Vec<String> {
    objects
        .iter()
        .map(|o| o.key().expect("a listed object has a Key").to_string())
        .collect()
}

/// The prefixes of listed common prefixes (each must have one).
pub fn prefix_names(prefixes: &[CommonPrefix]) -> Vec<String> {
    prefixes
        .iter()
        .map(|p| {
            p.prefix()
                .expect("a common prefix has a Prefix")
                .to_string()
        })
        .collect()
}

//! PostObject (browser uploads): forms signed by boto3's `generate_presigned_post`, posted as
//! multipart/form-data by reqwest. Success (metadata, content type, `${filename}`, 201 / 204
//! / 200 / 303), a file spanning several blocks, and every refusal (bad signature, expired
//! policy, failed condition, extra field, file outside `content-length-range`) answering the
//! S3 error and storing nothing.

use std::sync::OnceLock;

use aws_sdk_s3::Client;
use cluster_tests::post_form::{PostTarget, PresignedPost, boto3_presigned_post, post_form};
use cluster_tests::{
    Server, get_bytes, get_object, head_object, http_client, list_keys, md5_hex, new_bucket,
    quoted_md5, random_bytes,
};
use serde_json::json;

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(Server::start)
}

/// A path-style form for `bucket`/`key` from boto3.
fn form(
    bucket: &str,
    key: &str,
    fields: serde_json::Value,
    conditions: serde_json::Value,
    expires_in: i64,
) -> PresignedPost {
    let server = server();
    let endpoint = server.s3_url();
    let target = PostTarget {
        endpoint: &endpoint,
        style: "path",
        bucket,
        key,
    };
    boto3_presigned_post(server, target, &fields, &conditions, expires_in)
}

/// Asserts that the bucket holds no object at all.
async fn assert_empty(s3: &Client, bucket: &str, what: &str) {
    let keys = list_keys(s3, bucket).await;
    assert!(keys.is_empty(), "{what}: the bucket holds {keys:?}");
}

#[tokio::test]
async fn post_stores_the_file_with_its_fields() {
    let s3 = server().client();
    let bucket = new_bucket(&s3, "post").await;
    let http = http_client();

    // 201 with a PostResponse document; ${filename}; Content-Type and x-amz-meta-* stored;
    // a field after the file is ignored (and not an "extra input field").
    let created = form(
        &bucket,
        "docs/${filename}",
        json!({"Content-Type": "text/plain", "x-amz-meta-color": "blue",
               "success_action_status": "201"}),
        json!([{"Content-Type": "text/plain"}, {"x-amz-meta-color": "blue"},
               {"success_action_status": "201"}, ["content-length-range", 1, 1_048_576]]),
        600,
    );
    let resp = post_form(
        &http,
        &created,
        "hello.txt",
        b"hello post".to_vec(),
        &[("x-amz-meta-late", "ignored")],
    )
    .await;
    resp.expect("POST with success_action_status=201", 201, None);
    assert_eq!(resp.xml_field("Key").as_deref(), Some("docs/hello.txt"));
    assert_eq!(resp.xml_field("Bucket").as_deref(), Some(bucket.as_str()));
    let etag = quoted_md5(b"hello post");
    assert_eq!(resp.xml_field("ETag"), Some(etag.clone()));
    assert_eq!(resp.header("etag"), Some(etag.clone()));
    assert!(
        resp.header("location")
            .is_some_and(|l| l.ends_with(&format!("/{bucket}/docs/hello.txt"))),
        "Location: {:?}",
        resp.header("location")
    );
    let head = head_object(&s3, &bucket, "docs/hello.txt").await;
    assert_eq!(head.content_type(), Some("text/plain"));
    assert_eq!(head.e_tag(), Some(etag.as_str()));
    let meta = head.metadata().cloned().unwrap_or_default();
    assert_eq!(meta.get("color").map(String::as_str), Some("blue"));
    assert!(
        !meta.contains_key("late"),
        "fields after the file are ignored: {meta:?}"
    );
    let body = get_bytes(&s3, &bucket, "docs/hello.txt").await;
    assert_eq!(&body[..], b"hello post");

    // Default: 204, no body. A 3 MiB file spans several blocks and streams through.
    let big = random_bytes(3 << 20);
    let plain = form(&bucket, "big.bin", json!({}), json!([]), 600);
    let resp = post_form(&http, &plain, "big.bin", big.clone(), &[]).await;
    resp.expect("POST without success_action_status", 204, None);
    assert!(resp.body.is_empty());
    let got = get_object(&s3, &bucket, "big.bin").await;
    assert_eq!(got.content_length(), Some(big.len() as i64));
    let got = got.body.collect().await.unwrap().into_bytes();
    assert_eq!(md5_hex(&got), md5_hex(&big));

    // 200: empty body.
    let ok = form(
        &bucket,
        "ok.txt",
        json!({"success_action_status": "200"}),
        json!([{"success_action_status": "200"}]),
        600,
    );
    let resp = post_form(&http, &ok, "x", b"ok".to_vec(), &[]).await;
    resp.expect("POST with success_action_status=200", 200, None);

    // success_action_redirect: 303 to the URL with bucket, key and etag.
    let target = "http://example.invalid/done?from=test";
    let redirect = form(
        &bucket,
        "redirected.txt",
        json!({"success_action_redirect": target}),
        json!([{"success_action_redirect": target}]),
        600,
    );
    let no_follow = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = post_form(&no_follow, &redirect, "x", b"moved".to_vec(), &[]).await;
    resp.expect("POST with success_action_redirect", 303, None);
    let location = resp.header("location").unwrap_or_default();
    assert!(
        location.starts_with("http://example.invalid/done?from=test&bucket="),
        "{location}"
    );
    assert!(location.contains("key=redirected.txt"), "{location}");
    assert!(
        location.contains(&format!("etag=%22{}%22", md5_hex(b"moved"))),
        "{location}"
    );
    head_object(&s3, &bucket, "redirected.txt").await;
}

#[tokio::test]
async fn refused_posts_store_nothing() {
    let s3 = server().client();
    let bucket = new_bucket(&s3, "postno").await;
    let http = http_client();
    let limited = |min: u64, max: u64| {
        form(
            &bucket,
            "uploads/${filename}",
            json!({}),
            json!([["content-length-range", min, max]]),
            600,
        )
    };

    let mut bad_signature = limited(0, 1 << 20);
    let sig = bad_signature.get("x-amz-signature").unwrap().to_string();
    let flipped = if sig.ends_with('0') { "1" } else { "0" };
    bad_signature.set(
        "x-amz-signature",
        &format!("{}{flipped}", &sig[..sig.len() - 1]),
    );
    post_form(&http, &bad_signature, "a.txt", b"data".to_vec(), &[])
        .await
        .expect("wrong signature", 403, Some("SignatureDoesNotMatch"));

    let expired = form(&bucket, "uploads/${filename}", json!({}), json!([]), -60);
    let resp = post_form(&http, &expired, "a.txt", b"data".to_vec(), &[]).await;
    resp.expect("expired policy", 403, Some("AccessDenied"));
    assert_eq!(
        resp.xml_field("Message").as_deref(),
        Some("Invalid according to Policy: Policy expired.")
    );

    post_form(&http, &limited(1, 100), "a.txt", vec![b'x'; 1000], &[])
        .await
        .expect(
            "file above content-length-range",
            400,
            Some("EntityTooLarge"),
        );
    // Cut off mid-stream: the first block was already written when the limit was crossed.
    post_form(
        &http,
        &limited(1, 1 << 20),
        "b.bin",
        random_bytes(3 << 20),
        &[],
    )
    .await
    .expect(
        "3 MiB file above a 1 MiB range",
        400,
        Some("EntityTooLarge"),
    );
    post_form(&http, &limited(100, 1000), "c.txt", b"tiny".to_vec(), &[])
        .await
        .expect(
            "file below content-length-range",
            400,
            Some("EntityTooSmall"),
        );

    let mut outside = limited(0, 1 << 20);
    outside.set("key", "elsewhere/d.txt");
    let resp = post_form(&http, &outside, "d.txt", b"data".to_vec(), &[]).await;
    resp.expect("key outside the policy's prefix", 403, Some("AccessDenied"));
    let message = resp.xml_field("Message").unwrap_or_default();
    assert!(
        message.starts_with("Invalid according to Policy: Policy Condition failed:")
            && message.contains("$key"),
        "{message}"
    );

    let mut extra = limited(0, 1 << 20);
    extra.set("x-amz-meta-sneaky", "1");
    let resp = post_form(&http, &extra, "e.txt", b"data".to_vec(), &[]).await;
    resp.expect("field not in the policy", 403, Some("AccessDenied"));
    assert!(
        resp.text()
            .contains("Extra input fields: x-amz-meta-sneaky")
    );

    let mut anonymous = limited(0, 1 << 20);
    anonymous.fields.retain(|(name, _)| name != "policy");
    post_form(&http, &anonymous, "f.txt", b"data".to_vec(), &[])
        .await
        .expect("form without a policy", 403, Some("AccessDenied"));

    let resp = cluster_tests::raw_request(
        "POST",
        &format!("{}/{bucket}", server().s3_url()),
        &[("content-type", "application/json")],
        b"{}".to_vec(),
    )
    .await;
    resp.expect("POST that is not a form", 412, Some("PreconditionFailed"));

    assert_empty(&s3, &bucket, "after the refused POSTs").await;
    for key in ["a.txt", "b.bin", "c.txt", "d.txt", "e.txt", "f.txt"] {
        let head = s3
            .head_object()
            .bucket(&bucket)
            .key(format!("uploads/{key}"))
            .send()
            .await;
        assert!(head.is_err(), "uploads/{key} exists");
    }
}

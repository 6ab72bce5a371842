//! DeleteObjects: multi-key delete (verbose and quiet), absent keys, 1000-key limit, malformed
//! XML.

use aws_sdk_s3::Client;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use cluster_tests::data::content_md5;
use cluster_tests::{
    RawResponse, Server, expect_no_such_key, expect_s3_error, get_bytes, list_keys, new_bucket,
    put_bytes,
};
use futures::StreamExt;

fn server() -> &'static Server {
    Server::shared()
}

async fn bucket_with(s3: &Client, keys: &[String]) -> String {
    let bucket = new_bucket(s3, "delobjs").await;
    futures::stream::iter(keys.iter().enumerate())
        .for_each_concurrent(32, async |(i, key)| {
            // Every 10th object is large enough to live in blocks.
            let size = if i % 10 == 0 { 64 * 1024 } else { 16 };
            put_bytes(s3, &bucket, key, &vec![b'x'; size]).await;
        })
        .await;
    bucket
}

fn delete_of(keys: &[String], quiet: bool) -> Delete {
    Delete::builder()
        .set_objects(Some(
            keys.iter()
                .map(|k| ObjectIdentifier::builder().key(k).build().unwrap())
                .collect(),
        ))
        .quiet(quiet)
        .build()
        .unwrap()
}

/// A hand-made DeleteObjects request (`POST ?delete`) with `body` and its Content-MD5.
async fn post_delete(server: &Server, bucket: &str, body: &str) -> RawResponse {
    let md5 = content_md5(body.as_bytes());
    let headers = [("content-md5", md5.as_str())];
    let path = format!("/{bucket}?delete");
    server.signed("POST", &path, &headers, body.into()).await
}

#[tokio::test]
async fn delete_several_keys() {
    let s3 = server().client();
    let keys: Vec<String> = (0..12).map(|i| format!("obj/{i:02} name")).collect();
    let bucket = bucket_with(&s3, &keys).await;

    // Six existing keys and one that never existed: all reported as deleted.
    let mut targets: Vec<String> = keys[..6].to_vec();
    targets.push("never-existed".to_string());
    let out = s3
        .delete_objects()
        .bucket(&bucket)
        .delete(delete_of(&targets, false))
        .send()
        .await
        .unwrap();
    assert!(out.errors().is_empty(), "errors: {:?}", out.errors());
    let mut deleted: Vec<String> = out
        .deleted()
        .iter()
        .map(|d| d.key().unwrap().to_string())
        .collect();
    deleted.sort();
    let mut want = targets.clone();
    want.sort();
    assert_eq!(deleted, want, "Deleted entries");

    assert_eq!(list_keys(&s3, &bucket).await, keys[6..].to_vec());
    for k in &keys[..6] {
        let what = format!("GET {k:?} after DeleteObjects");
        expect_no_such_key(&s3, &bucket, k, &what).await;
    }
    assert_eq!(get_bytes(&s3, &bucket, &keys[6]).await.len(), 16);
}

#[tokio::test]
async fn quiet_mode_lists_only_errors() {
    let s3 = server().client();
    let keys: Vec<String> = (0..5).map(|i| format!("quiet-{i}")).collect();
    let bucket = bucket_with(&s3, &keys).await;
    let out = s3
        .delete_objects()
        .bucket(&bucket)
        .delete(delete_of(&keys[..4], true))
        .send()
        .await
        .unwrap();
    assert!(
        out.deleted().is_empty(),
        "quiet mode lists no Deleted: {:?}",
        out.deleted()
    );
    assert!(out.errors().is_empty(), "errors: {:?}", out.errors());
    assert_eq!(list_keys(&s3, &bucket).await, vec!["quiet-4".to_string()]);
}

#[tokio::test]
async fn thousand_keys_at_once_and_not_more() {
    let s3 = server().client();
    let keys: Vec<String> = (0..1001).map(|i| format!("k{i:04}")).collect();
    let bucket = bucket_with(&s3, &keys).await;

    expect_s3_error(
        "DeleteObjects with 1001 keys",
        s3.delete_objects()
            .bucket(&bucket)
            .delete(delete_of(&keys, false))
            .send()
            .await,
        400,
        Some("MalformedXML"),
    );
    assert_eq!(list_keys(&s3, &bucket).await.len(), 1001, "nothing deleted");

    let out = s3
        .delete_objects()
        .bucket(&bucket)
        .delete(delete_of(&keys[..1000], false))
        .send()
        .await
        .unwrap();
    assert_eq!(out.deleted().len(), 1000);
    assert!(out.errors().is_empty(), "errors: {:?}", out.errors());
    assert_eq!(list_keys(&s3, &bucket).await, vec!["k1000".to_string()]);
}

#[tokio::test]
async fn malformed_xml() {
    let server = server();
    let s3 = server.client();
    let bucket = bucket_with(&s3, &["keep".to_string()]).await;
    for body in [
        "<Delete><Object><Key>keep</Key></Object>".to_string(), // truncated
        "not xml at all".to_string(),
        "<Delete></Delete>".to_string(), // no Object
        "<Delete><Object><Key>keep</Key></Object></Wrong>".to_string(),
    ] {
        let resp = post_delete(server, &bucket, &body).await;
        resp.expect(
            &format!("DeleteObjects body {body:?}"),
            400,
            Some("MalformedXML"),
        );
    }
    assert_eq!(list_keys(&s3, &bucket).await, vec!["keep".to_string()]);

    // A well-formed hand-made request works (and checks the raw XML shape).
    let body = "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Object><Key>keep</Key></Object></Delete>";
    let resp = post_delete(server, &bucket, body).await;
    resp.expect("hand-made DeleteObjects", 200, None);
    assert!(
        resp.text().contains("<Deleted>") && resp.xml_field("Key").as_deref() == Some("keep"),
        "response: {}",
        resp.text()
    );
    assert!(list_keys(&s3, &bucket).await.is_empty());
}

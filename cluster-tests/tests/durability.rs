//! Acknowledged writes survive `kill -9`: restart on the same data dir and read them back.

use aws_sdk_s3::primitives::ByteStream;
use cluster_tests::{
    Server, delete_object, expect_no_such_key, get_bytes, get_object, list_keys, new_bucket,
    put_bytes, quoted_md5, random_bytes,
};

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let mut server = Server::start();
    let s3 = server.client();
    let bucket = new_bucket(&s3, "durable").await;

    let objects = [
        ("large", random_bytes(1024 * 1024 + 12345)),
        ("inline", random_bytes(200)),
        ("empty", Vec::new()),
        ("overwritten", random_bytes(64)),
        ("deleted", random_bytes(2 * 1024 * 1024)),
    ];
    for (key, data) in &objects {
        let out = s3
            .put_object()
            .bucket(&bucket)
            .key(*key)
            .content_type("application/x-durable")
            .metadata("kept", "yes")
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(out.e_tag(), Some(quoted_md5(data).as_str()));
    }
    let overwritten = random_bytes(1024 * 1024 + 1);
    put_bytes(&s3, &bucket, "overwritten", &overwritten).await;
    delete_object(&s3, &bucket, "deleted").await;
    // The very last acknowledged write, immediately followed by the kill.
    let last = random_bytes(3 * 1024 * 1024 + 3);
    put_bytes(&s3, &bucket, "last", &last).await;
    server.kill_9();
    drop(s3);

    server.restart();
    let s3 = server.client();
    s3.head_bucket().bucket(&bucket).send().await.unwrap();
    let mut expect: Vec<(&str, &[u8])> = vec![
        ("large", objects[0].1.as_slice()),
        ("inline", objects[1].1.as_slice()),
        ("empty", objects[2].1.as_slice()),
        ("overwritten", overwritten.as_slice()),
        ("last", last.as_slice()),
    ];
    for (key, data) in &expect {
        let got = get_object(&s3, &bucket, key).await;
        assert_eq!(
            got.e_tag(),
            Some(quoted_md5(data).as_str()),
            "ETag of {key:?} after restart"
        );
        if *key != "overwritten" && *key != "last" {
            assert_eq!(got.content_type(), Some("application/x-durable"), "{key:?}");
            assert_eq!(
                got.metadata()
                    .and_then(|m| m.get("kept"))
                    .map(String::as_str),
                Some("yes"),
                "{key:?}"
            );
        }
        let body = got.body.collect().await.unwrap().into_bytes();
        assert!(body == *data, "body of {key:?} differs after restart");
    }
    expect_no_such_key(&s3, &bucket, "deleted", "deleted object after restart").await;
    expect.sort_by_key(|(k, _)| *k);
    let listed = list_keys(&s3, &bucket).await;
    let want: Vec<&str> = expect.iter().map(|(k, _)| *k).collect();
    assert_eq!(listed, want, "listing after restart");

    // The restarted server takes writes, and the root key still works after a second restart.
    put_bytes(&s3, &bucket, "after", b"after restart").await;
    server.restart(); // graceful this time
    let s3 = server.client();
    assert_eq!(get_bytes(&s3, &bucket, "after").await, b"after restart");
}

#[tokio::test]
async fn keys_and_rights_survive_restart() {
    let mut server = Server::start();
    let bucket = new_bucket(&server.client(), "rights").await;
    let key = server.create_key("survivor");
    server.admin_ok(&[
        "key", "allow", &key.id, "--bucket", &bucket, "--read", "--write",
    ]);
    server.kill_9();
    server.restart();
    put_bytes(&server.client_for(&key), &bucket, "k", b"v").await;
    let list = server.admin_ok(&["key", "list"]);
    assert!(list.contains(&key.id), "key lost in restart:\n{list}");
}

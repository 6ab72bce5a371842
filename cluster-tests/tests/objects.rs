//! Single objects: PutObject / GetObject / HeadObject round trips across the inline/block
//! boundaries, Content-MD5, stored headers and user metadata, overwrite, DeleteObject, special
//! keys.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use cluster_tests::data::content_md5;
use cluster_tests::{Server, expect_s3_error, quoted_md5, random_bytes, unique_bucket};

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(Server::start)
}

async fn new_bucket(s3: &Client, prefix: &str) -> String {
    let bucket = unique_bucket(prefix);
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    bucket
}

async fn get_bytes(s3: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetObject {key:?}: {e:?}"));
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

#[tokio::test]
async fn round_trip_sizes() {
    let s3 = server().client();
    let bucket = new_bucket(&s3, "sizes").await;
    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;
    for size in [0, 1, 3 * KIB, 3 * KIB + 1, MIB, MIB + 1, 5 * MIB + 123] {
        let key = format!("obj-{size}");
        let data = random_bytes(size);
        let put = s3
            .put_object()
            .bucket(&bucket)
            .key(&key)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutObject {size} B: {e:?}"));
        let etag = quoted_md5(&data);
        assert_eq!(put.e_tag(), Some(etag.as_str()), "PUT ETag of {size} B");

        let head = s3
            .head_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("HeadObject {size} B: {e:?}"));
        assert_eq!(head.content_length(), Some(size as i64), "HEAD length");
        assert_eq!(head.e_tag(), Some(etag.as_str()), "HEAD ETag of {size} B");
        assert!(head.last_modified().is_some(), "HEAD Last-Modified");

        let get = s3
            .get_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetObject {size} B: {e:?}"));
        assert_eq!(get.content_length(), Some(size as i64), "GET length");
        assert_eq!(get.e_tag(), Some(etag.as_str()), "GET ETag of {size} B");
        let body = get.body.collect().await.unwrap().into_bytes();
        assert_eq!(body.len(), size, "GET body length of {size} B");
        assert!(
            body == data,
            "GET body of {size} B differs from what was put"
        );
    }
}

#[tokio::test]
async fn content_md5_is_checked() {
    let s3 = server().client();
    let bucket = new_bucket(&s3, "md5").await;
    for size in [10, 200 * 1024] {
        let data = random_bytes(size);
        let key = format!("md5-{size}");
        s3.put_object()
            .bucket(&bucket)
            .key(&key)
            .content_md5(content_md5(&data))
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("PUT with right Content-MD5 ({size} B): {e:?}"));
        let bad_key = format!("bad-md5-{size}");
        expect_s3_error(
            &format!("PUT with wrong Content-MD5 ({size} B)"),
            s3.put_object()
                .bucket(&bucket)
                .key(&bad_key)
                .content_md5(content_md5(b"something else"))
                .body(ByteStream::from(data.clone()))
                .send()
                .await,
            400,
            Some("BadDigest"),
        );
        expect_s3_error(
            "GET of a rejected PUT",
            s3.get_object().bucket(&bucket).key(&bad_key).send().await,
            404,
            Some("NoSuchKey"),
        );
    }
}

#[tokio::test]
async fn headers_and_metadata_are_stored() {
    let s3 = server().client();
    let bucket = new_bucket(&s3, "headers").await;
    let expires = DateTime::from(SystemTime::now() + Duration::from_secs(86400))
        .fmt(Format::HttpDate)
        .unwrap();
    // An inline object and a block object.
    for size in [100, 2 * 1024 * 1024 + 5] {
        let key = format!("meta-{size}");
        let data = random_bytes(size);
        s3.put_object()
            .bucket(&bucket)
            .key(&key)
            .content_type("text/x-cairn; charset=utf-8")
            .cache_control("max-age=3600, must-revalidate")
            .content_disposition("attachment; filename=\"report.txt\"")
            .content_encoding("gzip")
            .expires(DateTime::from_str(&expires, Format::HttpDate).unwrap())
            .metadata("color", "blue")
            .metadata("multi-word-key", "Some Value 42")
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();

        let head = s3
            .head_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
            .unwrap();
        let get = s3
            .get_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
            .unwrap();
        macro_rules! check {
            ($field:ident, $want:expr) => {
                assert_eq!(
                    head.$field(),
                    Some($want),
                    "HEAD {} of {size} B",
                    stringify!($field)
                );
                assert_eq!(
                    get.$field(),
                    Some($want),
                    "GET {} of {size} B",
                    stringify!($field)
                );
            };
        }
        check!(content_type, "text/x-cairn; charset=utf-8");
        check!(cache_control, "max-age=3600, must-revalidate");
        check!(content_disposition, "attachment; filename=\"report.txt\"");
        check!(content_encoding, "gzip");
        check!(expires_string, expires.as_str());
        for (what, meta) in [("HEAD", head.metadata()), ("GET", get.metadata())] {
            let meta = meta.unwrap_or_else(|| panic!("{what}: no x-amz-meta-*"));
            assert_eq!(
                meta.get("color").map(String::as_str),
                Some("blue"),
                "{what}"
            );
            assert_eq!(
                meta.get("multi-word-key").map(String::as_str),
                Some("Some Value 42"),
                "{what}"
            );
            assert_eq!(meta.len(), 2, "{what}: unexpected metadata {meta:?}");
        }
        let body = get.body.collect().await.unwrap().into_bytes();
        assert!(body == data, "body of {size} B");
    }

    // Without a Content-Type, the default is binary/octet-stream (or application/octet-stream).
    s3.put_object()
        .bucket(&bucket)
        .key("no-type")
        .body(ByteStream::from_static(b"abc"))
        .send()
        .await
        .unwrap();
    let head = s3
        .head_object()
        .bucket(&bucket)
        .key("no-type")
        .send()
        .await
        .unwrap();
    let ct = head.content_type().unwrap_or("");
    assert!(
        ct == "binary/octet-stream" || ct == "application/octet-stream",
        "default Content-Type {ct:?}"
    );
    assert!(
        head.metadata().is_none_or(|m| m.is_empty()),
        "metadata of a plain object: {:?}",
        head.metadata()
    );
}

#[tokio::test]
async fn overwrite_returns_new_content() {
    let s3 = server().client();
    let bucket = new_bucket(&s3, "overwrite").await;
    // block -> inline -> block -> empty, each read back after the overwrite.
    for (i, size) in [2 * 1024 * 1024 + 3, 50, 1024 * 1024 + 1, 0]
        .into_iter()
        .enumerate()
    {
        let data = random_bytes(size);
        s3.put_object()
            .bucket(&bucket)
            .key("same-key")
            .content_type(format!("type/v{i}"))
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        let got = s3
            .get_object()
            .bucket(&bucket)
            .key("same-key")
            .send()
            .await
            .unwrap();
        assert_eq!(got.e_tag(), Some(quoted_md5(&data).as_str()), "version {i}");
        let vi = format!("type/v{i}");
        assert_eq!(got.content_type(), Some(vi.as_str()));
        let body = got.body.collect().await.unwrap().into_bytes();
        assert!(body == data, "version {i} ({size} B) body differs");
    }
    let list = s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
    assert_eq!(
        list.contents().len(),
        1,
        "one key after overwrites: {list:?}"
    );
    assert_eq!(list.contents()[0].size(), Some(0));
}

#[tokio::test]
async fn delete_object_and_missing_keys() {
    let s3 = server().client();
    let bucket = new_bucket(&s3, "delete").await;
    for (key, size) in [("small", 10), ("large", 1024 * 1024 + 10)] {
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(ByteStream::from(random_bytes(size)))
            .send()
            .await
            .unwrap();
        s3.delete_object()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        expect_s3_error(
            "GET after delete",
            s3.get_object().bucket(&bucket).key(key).send().await,
            404,
            Some("NoSuchKey"),
        );
        expect_s3_error(
            "HEAD after delete",
            s3.head_object().bucket(&bucket).key(key).send().await,
            404,
            None,
        );
    }
    // Deleting a key that does not exist is a success (204), twice.
    for _ in 0..2 {
        let resp = server()
            .signed("DELETE", &format!("/{bucket}/never-existed"), &[], vec![])
            .await;
        resp.expect("DELETE of an absent key", 204, None);
    }
    expect_s3_error(
        "GET missing key",
        s3.get_object()
            .bucket(&bucket)
            .key("never-existed")
            .send()
            .await,
        404,
        Some("NoSuchKey"),
    );
    expect_s3_error(
        "GET in missing bucket",
        s3.get_object()
            .bucket(unique_bucket("missing"))
            .key("k")
            .send()
            .await,
        404,
        Some("NoSuchBucket"),
    );
    expect_s3_error(
        "PUT in missing bucket",
        s3.put_object()
            .bucket(unique_bucket("missing"))
            .key("k")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
        404,
        Some("NoSuchBucket"),
    );
    let list = s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
    assert!(list.contents().is_empty(), "bucket not empty: {list:?}");
}

#[tokio::test]
async fn special_keys_round_trip() {
    let s3 = server().client();
    let bucket = new_bucket(&s3, "keys").await;
    let mut keys = vec![
        "with space.txt",
        "ünïcödé/日本語/ファイル",
        "a+b+c",
        "100%",
        "percent%2Fencoded",
        "folder/",
        "nested/folder/",
        "query?x=1&y=2",
        "hash#frag",
        "semi;colon,comma=eq@at:colon",
        "tilde~star*paren(1)'quote'!",
        "dots/./../x",
        "emoji 🦀",
        "trailing space ",
    ];
    keys.sort();
    for (i, key) in keys.iter().enumerate() {
        let data = if key.ends_with('/') {
            Vec::new()
        } else {
            format!("body of {i}").into_bytes()
        };
        s3.put_object()
            .bucket(&bucket)
            .key(*key)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("PUT {key:?}: {e:?}"));
        assert_eq!(get_bytes(&s3, &bucket, key).await, data, "GET {key:?}");
        let head = s3
            .head_object()
            .bucket(&bucket)
            .key(*key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("HEAD {key:?}: {e:?}"));
        assert_eq!(head.content_length(), Some(data.len() as i64), "{key:?}");
    }
    let list = s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
    let listed: Vec<&str> = list.contents().iter().filter_map(|o| o.key()).collect();
    let mut want: Vec<&str> = keys.clone();
    want.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(listed, want, "listing of special keys");
    for key in &keys {
        s3.delete_object()
            .bucket(&bucket)
            .key(*key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DELETE {key:?}: {e:?}"));
        expect_s3_error(
            &format!("GET {key:?} after delete"),
            s3.get_object().bucket(&bucket).key(*key).send().await,
            404,
            Some("NoSuchKey"),
        );
    }
}

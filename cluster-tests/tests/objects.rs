//! Single objects: PutObject / GetObject / HeadObject round trips across the inline/block
//! boundaries, Content-MD5, stored headers and user metadata, overwrite, DeleteObject, special
//! keys.

use std::time::{Duration, SystemTime};

use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use cluster_tests::data::content_md5;
use cluster_tests::{
    Server, delete_object, expect_no_such_key, expect_s3_error, get_bytes, get_object, head_object,
    list_keys, new_bucket, put_bytes, quoted_md5, random_bytes, unique_bucket,
};

fn server() -> &'static Server {
    Server::shared()
}

#[tokio::test]
async fn round_trip_sizes() {
    let s3 = server().client();
    let bucket = new_bucket(&s3, "sizes").await;
    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;
    // Both sides of the inline limit (16 KiB) and of the block size.
    for size in [
        0,
        1,
        3 * KIB,
        16 * KIB,
        16 * KIB + 1,
        MIB,
        MIB + 1,
        5 * MIB + 123,
    ] {
        let key = format!("obj-{size}");
        let data = random_bytes(size);
        let put = put_bytes(&s3, &bucket, &key, &data).await;
        let etag = quoted_md5(&data);
        assert_eq!(put.e_tag(), Some(etag.as_str()), "PUT ETag of {size} B");

        let head = head_object(&s3, &bucket, &key).await;
        assert_eq!(head.content_length(), Some(size as i64), "HEAD length");
        assert_eq!(head.e_tag(), Some(etag.as_str()), "HEAD ETag of {size} B");
        assert!(head.last_modified().is_some(), "HEAD Last-Modified");

        let get = get_object(&s3, &bucket, &key).await;
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
        expect_no_such_key(&s3, &bucket, &bad_key, "GET of a rejected PUT").await;
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

        let head = head_object(&s3, &bucket, &key).await;
        let get = get_object(&s3, &bucket, &key).await;
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
    put_bytes(&s3, &bucket, "no-type", b"abc").await;
    let head = head_object(&s3, &bucket, "no-type").await;
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
        let got = get_object(&s3, &bucket, "same-key").await;
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
        put_bytes(&s3, &bucket, key, &random_bytes(size)).await;
        delete_object(&s3, &bucket, key).await;
        expect_no_such_key(&s3, &bucket, key, "GET after delete").await;
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
    expect_no_such_key(&s3, &bucket, "never-existed", "GET missing key").await;
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
        put_bytes(&s3, &bucket, key, &data).await;
        assert_eq!(get_bytes(&s3, &bucket, key).await, data, "GET {key:?}");
        let head = head_object(&s3, &bucket, key).await;
        assert_eq!(head.content_length(), Some(data.len() as i64), "{key:?}");
    }
    let listed = list_keys(&s3, &bucket).await;
    let mut want: Vec<&str> = keys.clone();
    want.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(listed, want, "listing of special keys");
    for key in &keys {
        delete_object(&s3, &bucket, key).await;
        let what = format!("GET {key:?} after delete");
        expect_no_such_key(&s3, &bucket, key, &what).await;
    }
}

/// Conditional writes on one server: `If-None-Match: *` creates only, `If-Match` replaces
/// only the named version, on inline and block-stored bodies, PutObject and CopyObject.
#[tokio::test]
async fn conditional_puts_and_copies() {
    let s3 = server().client();
    let bucket = new_bucket(&s3, "cond").await;
    put_bytes(&s3, &bucket, "target", b"target").await;
    for (key, size) in [("small", 100), ("large", 2 * 1024 * 1024 + 5)] {
        let (a, b) = (random_bytes(size), random_bytes(size));
        let put = |data: &[u8]| {
            s3.put_object()
                .bucket(&bucket)
                .key(key)
                .body(ByteStream::from(data.to_vec()))
        };
        expect_s3_error(
            "If-Match on a missing key",
            put(&a).if_match(quoted_md5(&a)).send().await,
            404,
            Some("NoSuchKey"),
        );
        let first = put(&a).if_none_match("*").send().await.unwrap();
        assert_eq!(first.e_tag(), Some(quoted_md5(&a).as_str()));
        expect_s3_error(
            "second If-None-Match: * PUT",
            put(&b).if_none_match("*").send().await,
            412,
            Some("PreconditionFailed"),
        );
        assert!(
            get_bytes(&s3, &bucket, key).await == a,
            "{key}: first PUT kept"
        );

        expect_s3_error(
            "If-Match with another ETag",
            put(&b).if_match(quoted_md5(&b)).send().await,
            412,
            Some("PreconditionFailed"),
        );
        put(&b).if_match(quoted_md5(&a)).send().await.unwrap();
        assert!(
            get_bytes(&s3, &bucket, key).await == b,
            "{key}: If-Match PUT"
        );
        // Unquoted and `*` forms of If-Match.
        put(&a)
            .if_match(quoted_md5(&b).trim_matches('"'))
            .send()
            .await
            .unwrap();
        put(&a).if_match("*").send().await.unwrap();

        // After a delete the key is free again for a create-only PUT.
        delete_object(&s3, &bucket, key).await;
        put(&b).if_none_match("*").send().await.unwrap();
        assert!(get_bytes(&s3, &bucket, key).await == b, "{key}: recreated");

        // CopyObject onto an existing key with If-None-Match: *.
        let source = format!("{bucket}/{key}");
        expect_s3_error(
            "CopyObject If-None-Match: * onto an existing key",
            s3.copy_object()
                .bucket(&bucket)
                .key("target")
                .copy_source(&source)
                .if_none_match("*")
                .send()
                .await,
            412,
            Some("PreconditionFailed"),
        );
        let copy = format!("{key}-copy");
        s3.copy_object()
            .bucket(&bucket)
            .key(&copy)
            .copy_source(&source)
            .if_none_match("*")
            .send()
            .await
            .unwrap();
        assert!(get_bytes(&s3, &bucket, &copy).await == b, "{key}: copied");
    }
    let out = server()
        .signed(
            "PUT",
            &format!("/{bucket}/etag-none-match"),
            &[("if-none-match", "\"abc\"")],
            b"x".to_vec(),
        )
        .await;
    out.expect(
        "If-None-Match with an ETag on PUT",
        501,
        Some("NotImplemented"),
    );
}

/// Every Range form on an inline and a multi-block object: `a-b`, `a-`, `-n`, ends past the
/// size, suffixes longer than the object, unsatisfiable starts (416 + `bytes */size`) and
/// malformed or multi-range headers (ignored: 200 with the whole object).
#[tokio::test]
async fn range_forms() {
    let server = server();
    let s3 = server.client();
    let bucket = new_bucket(&s3, "ranges").await;
    for (key, size) in [("inline", 1000usize), ("blocks", 2 * 1024 * 1024 + 12345)] {
        let data = random_bytes(size);
        put_bytes(&s3, &bucket, key, &data).await;
        let path = format!("/{bucket}/{key}");
        let get = |range: String| {
            let path = path.clone();
            async move {
                server
                    .signed("GET", &path, &[("range", range.as_str())], Vec::new())
                    .await
            }
        };
        let n = size as u64;
        let mid = n / 2;
        // (header, first byte, last byte) of satisfiable forms.
        let satisfiable = [
            ("bytes=0-9".to_string(), 0, 9),
            (
                format!("bytes={mid}-{}", mid + 1_048_576 / 2),
                mid,
                (mid + 524_288).min(n - 1),
            ),
            (
                "bytes=1048570-1048600".to_string(),
                1_048_570.min(n - 31),
                1_048_600.min(n - 1),
            ),
            (format!("bytes={}-", n - 10), n - 10, n - 1),
            (format!("bytes={mid}-{}", n + 1000), mid, n - 1),
            ("bytes=-100".to_string(), n - 100, n - 1),
            (format!("bytes=-{}", n + 5), 0, n - 1),
            (format!("bytes={}-{}", n - 1, n - 1), n - 1, n - 1),
        ];
        for (range, first, last) in satisfiable {
            if key == "inline" && range == "bytes=1048570-1048600" {
                continue;
            }
            let resp = get(range.clone()).await;
            resp.expect(&format!("{key} {range}"), 206, None);
            assert_eq!(
                resp.header("content-range"),
                Some(format!("bytes {first}-{last}/{n}")),
                "{key} {range}"
            );
            assert_eq!(
                resp.header("content-length"),
                Some((last - first + 1).to_string()),
                "{key} {range}"
            );
            assert!(
                resp.body[..] == data[first as usize..=last as usize],
                "{key} {range}: body"
            );
        }
        for range in [
            format!("bytes={n}-"),
            format!("bytes={n}-{}", n + 10),
            format!("bytes={}-", n + 1000),
            "bytes=-0".to_string(),
        ] {
            let resp = get(range.clone()).await;
            resp.expect(&format!("{key} {range}"), 416, Some("InvalidRange"));
            assert_eq!(
                resp.header("content-range"),
                Some(format!("bytes */{n}")),
                "{key} {range}"
            );
        }
        for range in [
            "bytes=5-2",
            "bytes=0-1,5-6",
            "bytes=a-b",
            "bytes=",
            "items=0-1",
            "bytes 0-1",
        ] {
            let resp = get(range.to_string()).await;
            resp.expect(&format!("{key} {range} (ignored)"), 200, None);
            assert!(resp.header("content-range").is_none(), "{key} {range}");
            assert!(resp.body[..] == data[..], "{key} {range}: whole body");
        }
        // The SDK's view of one form, with Accept-Ranges.
        let out = s3
            .get_object()
            .bucket(&bucket)
            .key(key)
            .range("bytes=-7")
            .send()
            .await
            .unwrap();
        assert_eq!(out.accept_ranges(), Some("bytes"));
        assert_eq!(
            out.content_range(),
            Some(format!("bytes {}-{}/{n}", n - 7, n - 1).as_str())
        );
        let tail = out.body.collect().await.unwrap().into_bytes();
        assert!(tail[..] == data[size - 7..]);
    }
}

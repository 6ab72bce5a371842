//! CopyObject: same bucket and across buckets, metadata directive COPY vs REPLACE, copy onto
//! itself, URL-encoded copy sources, and copies that outlive their source.

use std::collections::HashMap;

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::copy_object::builders::CopyObjectFluentBuilder;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::MetadataDirective;
use cluster_tests::{
    Server, delete_object, expect_s3_error, get_object, new_bucket, quoted_md5, random_bytes,
    unique_bucket, url_encode_key,
};

fn server() -> &'static Server {
    Server::shared()
}

async fn put(s3: &Client, bucket: &str, key: &str, data: &[u8]) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/x-original")
        .cache_control("no-cache")
        .metadata("origin", "source")
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {key:?}: {e:?}"));
}

fn source(bucket: &str, key: &str) -> String {
    format!("{bucket}/{}", url_encode_key(key))
}

/// CopyObject of `from` (bucket, key) to `bucket`/`key`, to be sent.
fn copy(s3: &Client, from: (&str, &str), bucket: &str, key: &str) -> CopyObjectFluentBuilder {
    s3.copy_object()
        .copy_source(source(from.0, from.1))
        .bucket(bucket)
        .key(key)
}

struct Got {
    body: Vec<u8>,
    etag: Option<String>,
    content_type: Option<String>,
    cache_control: Option<String>,
    metadata: HashMap<String, String>,
}

async fn get(s3: &Client, bucket: &str, key: &str) -> Got {
    let out = get_object(s3, bucket, key).await;
    Got {
        etag: out.e_tag().map(str::to_string),
        content_type: out.content_type().map(str::to_string),
        cache_control: out.cache_control().map(str::to_string),
        metadata: out.metadata().cloned().unwrap_or_default(),
        body: out.body.collect().await.unwrap().into_bytes().to_vec(),
    }
}

const SIZES: [usize; 2] = [100, 3 * 1024 * 1024 + 7];

#[tokio::test]
async fn copy_within_and_across_buckets() {
    let s3 = server().client();
    let src_bucket = new_bucket(&s3, "copysrc").await;
    let dst_bucket = new_bucket(&s3, "copydst").await;
    for size in SIZES {
        let data = random_bytes(size);
        let key = format!("src-{size}");
        put(&s3, &src_bucket, &key, &data).await;
        for (bucket, dst_key) in [
            (&src_bucket, format!("copy-{size}")),
            (&dst_bucket, format!("other/copy-{size}")),
        ] {
            let out = copy(&s3, (&src_bucket, &key), bucket, &dst_key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("copy {size} B to {bucket}/{dst_key}: {e:?}"));
            let result = out.copy_object_result().expect("CopyObjectResult");
            assert_eq!(result.e_tag(), Some(quoted_md5(&data).as_str()));
            assert!(result.last_modified().is_some());
            // Default directive is COPY: headers and metadata come along.
            let got = get(&s3, bucket, &dst_key).await;
            assert!(got.body == data, "copy of {size} B differs");
            assert_eq!(got.etag.as_deref(), Some(quoted_md5(&data).as_str()));
            assert_eq!(got.content_type.as_deref(), Some("application/x-original"));
            assert_eq!(got.cache_control.as_deref(), Some("no-cache"));
            assert_eq!(
                got.metadata.get("origin").map(String::as_str),
                Some("source")
            );
        }
    }
    expect_s3_error(
        "copy from a missing key",
        copy(&s3, (&src_bucket, "missing"), &dst_bucket, "x")
            .send()
            .await,
        404,
        Some("NoSuchKey"),
    );
    expect_s3_error(
        "copy from a missing bucket",
        copy(&s3, (&unique_bucket("missing"), "k"), &dst_bucket, "x")
            .send()
            .await,
        404,
        Some("NoSuchBucket"),
    );
    expect_s3_error(
        "copy into a missing bucket",
        copy(
            &s3,
            (&src_bucket, "src-100"),
            &unique_bucket("missing"),
            "x",
        )
        .send()
        .await,
        404,
        Some("NoSuchBucket"),
    );
}

#[tokio::test]
async fn metadata_directive_replace() {
    let s3 = server().client();
    let bucket = new_bucket(&s3, "replace").await;
    for size in SIZES {
        let data = random_bytes(size);
        let key = format!("src-{size}");
        put(&s3, &bucket, &key, &data).await;

        let dst = format!("replaced-{size}");
        copy(&s3, (&bucket, &key), &bucket, &dst)
            .metadata_directive(MetadataDirective::Replace)
            .content_type("text/x-new")
            .metadata("fresh", "yes")
            .send()
            .await
            .unwrap();
        let got = get(&s3, &bucket, &dst).await;
        assert!(got.body == data);
        assert_eq!(got.content_type.as_deref(), Some("text/x-new"));
        assert_eq!(
            got.cache_control, None,
            "REPLACE drops the old Cache-Control"
        );
        assert_eq!(
            got.metadata,
            HashMap::from([("fresh".to_string(), "yes".to_string())]),
            "REPLACE metadata"
        );

        // COPY directive ignores the metadata given with the request.
        let dst = format!("copied-{size}");
        copy(&s3, (&bucket, &key), &bucket, &dst)
            .metadata_directive(MetadataDirective::Copy)
            .metadata("ignored", "yes")
            .send()
            .await
            .unwrap();
        let got = get(&s3, &bucket, &dst).await;
        assert_eq!(
            got.metadata,
            HashMap::from([("origin".to_string(), "source".to_string())]),
            "COPY metadata"
        );
        assert_eq!(got.content_type.as_deref(), Some("application/x-original"));
    }
}

#[tokio::test]
async fn copy_onto_itself() {
    let s3 = server().client();
    let bucket = new_bucket(&s3, "self").await;
    for size in SIZES {
        let data = random_bytes(size);
        let key = format!("self-{size}");
        put(&s3, &bucket, &key, &data).await;

        // Without REPLACE, copying an object onto itself changes nothing and is refused.
        expect_s3_error(
            "copy onto itself without REPLACE",
            copy(&s3, (&bucket, &key), &bucket, &key).send().await,
            400,
            Some("InvalidRequest"),
        );

        copy(&s3, (&bucket, &key), &bucket, &key)
            .metadata_directive(MetadataDirective::Replace)
            .content_type("text/x-changed")
            .metadata("version", "2")
            .send()
            .await
            .unwrap();
        let got = get(&s3, &bucket, &key).await;
        assert!(got.body == data, "self-copy of {size} B changed the body");
        assert_eq!(got.etag.as_deref(), Some(quoted_md5(&data).as_str()));
        assert_eq!(got.content_type.as_deref(), Some("text/x-changed"));
        assert_eq!(
            got.metadata,
            HashMap::from([("version".to_string(), "2".to_string())])
        );
    }
}

#[tokio::test]
async fn copy_source_with_special_characters() {
    let s3 = server().client();
    let bucket = new_bucket(&s3, "special").await;
    for (i, key) in [
        "with space/and+plus",
        "ünïcödé 日本",
        "100% sure?&x=1#frag",
        "folder/",
    ]
    .iter()
    .enumerate()
    {
        let data = format!("special {i}").into_bytes();
        put(&s3, &bucket, key, &data).await;
        let dst = format!("{key}.copy");
        copy(&s3, (&bucket, key), &bucket, &dst)
            .send()
            .await
            .unwrap_or_else(|e| panic!("copy {key:?}: {e:?}"));
        assert_eq!(get(&s3, &bucket, &dst).await.body, data, "copy of {key:?}");
    }
    // A leading slash in x-amz-copy-source is accepted too.
    s3.copy_object()
        .copy_source(format!("/{}", source(&bucket, "with space/and+plus")))
        .bucket(&bucket)
        .key("leading-slash")
        .send()
        .await
        .unwrap();
    assert_eq!(
        get(&s3, &bucket, "leading-slash").await.body,
        b"special 0".to_vec()
    );
}

#[tokio::test]
async fn copy_survives_source_delete() {
    let s3 = server().client();
    let src_bucket = new_bucket(&s3, "gone").await;
    let dst_bucket = new_bucket(&s3, "stays").await;
    for size in SIZES {
        let data = random_bytes(size);
        let key = format!("src-{size}");
        put(&s3, &src_bucket, &key, &data).await;
        let same = format!("same-bucket-{size}");
        let other = format!("other-bucket-{size}");
        for (bucket, dst) in [(&src_bucket, &same), (&dst_bucket, &other)] {
            copy(&s3, (&src_bucket, &key), bucket, dst)
                .send()
                .await
                .unwrap();
        }
        delete_object(&s3, &src_bucket, &key).await;
        // Overwriting the source must not change the copies either.
        put(&s3, &src_bucket, &key, b"new source content").await;
        delete_object(&s3, &src_bucket, &key).await;
        for (bucket, dst) in [(&src_bucket, &same), (&dst_bucket, &other)] {
            let got = get(&s3, bucket, dst).await;
            assert!(
                got.body == data,
                "copy {bucket}/{dst} differs after its source was deleted"
            );
            assert_eq!(got.etag.as_deref(), Some(quoted_md5(&data).as_str()));
        }
    }
}

//! Every operation of the website/CORS/POST/stubs issue in both addressing styles, against one
//! server started with `--root-domain localhost`: path style through `127.0.0.1:PORT/bucket`,
//! virtual-hosted style through `bucket.localhost:PORT` (aws-sdk-s3 with
//! `force_path_style(false)`, presigned URLs, raw requests and boto3 POST forms). ListBuckets
//! is asked of the bare root domain.

use std::sync::OnceLock;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketCannedAcl, Permission};
use aws_sdk_s3::types::{BucketVersioningStatus, ObjectCannedAcl};
use cluster_tests::bucket_config::{cors_rule, put_cors, put_website_index};
use cluster_tests::post_form::{PostTarget, boto3_presigned_post, post_form};
use cluster_tests::vhost::{ROOT_DOMAIN, vhost_client, vhost_endpoint, vhost_http_client};
use cluster_tests::{
    Server, ServerOptions, expect_s3_error, get_bytes, head_object, http_client, raw_request_with,
    unique_bucket,
};
use serde_json::json;

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        Server::start_with(ServerOptions {
            extra_args: vec!["--root-domain".into(), ROOT_DOMAIN.into()],
            ..Default::default()
        })
    })
}

/// How one style reaches the server.
struct Style {
    name: &'static str,
    s3: Client,
    http: reqwest::Client,
    /// boto3 endpoint and addressing style.
    boto_endpoint: String,
    boto_style: &'static str,
    /// Buckets in the Host (`bucket.localhost`) rather than in the path.
    vhost: bool,
}

impl Style {
    /// URL of an object (or of the bucket for an empty key).
    fn url(&self, bucket: &str, key: &str) -> String {
        let port = server().addrs().s3.port();
        if self.vhost {
            format!("http://{bucket}.{ROOT_DOMAIN}:{port}/{key}")
        } else {
            format!("http://127.0.0.1:{port}/{bucket}/{key}")
        }
    }
}

fn path_style() -> Style {
    let server = server();
    Style {
        name: "path",
        s3: server.client(),
        http: http_client(),
        boto_endpoint: server.s3_url(),
        boto_style: "path",
        vhost: false,
    }
}

fn vhost_style(bucket: &str) -> Style {
    let server = server();
    Style {
        name: "vhost",
        s3: vhost_client(server, server.root_key()),
        http: vhost_http_client(server, &[bucket]),
        boto_endpoint: vhost_endpoint(server),
        boto_style: "virtual",
        vhost: true,
    }
}

/// Runs every operation of the issue through `style` on a fresh bucket.
async fn exercise(style: &Style, bucket: &str) {
    let what = |op: &str| format!("{} style: {op}", style.name);
    let s3 = &style.s3;
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    let listed = s3.list_buckets().send().await.unwrap();
    assert!(
        listed.buckets().iter().any(|b| b.name() == Some(bucket)),
        "{}",
        what("ListBuckets")
    );
    for key in ["a/1", "a/2", "b", "c"] {
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from_static(b"body"))
            .send()
            .await
            .unwrap();
    }

    // Presigned GET and PUT.
    let presign = PresigningConfig::expires_in(Duration::from_secs(300)).unwrap();
    let get = s3
        .get_object()
        .bucket(bucket)
        .key("b")
        .presigned(presign.clone())
        .await
        .unwrap();
    let resp = raw_request_with(&style.http, "GET", get.uri(), &[], Vec::new()).await;
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (200, "body"),
        "{}",
        what("presigned GET")
    );
    let put = s3
        .put_object()
        .bucket(bucket)
        .key("presigned")
        .presigned(presign)
        .await
        .unwrap();
    let body = b"via presigned PUT".to_vec();
    let resp = raw_request_with(&style.http, "PUT", put.uri(), &[], body).await;
    assert_eq!(resp.status, 200, "{}", what("presigned PUT"));

    // Website configuration.
    put_website_index(s3, bucket, "index.html").await;
    let site = s3.get_bucket_website().bucket(bucket).send().await.unwrap();
    assert_eq!(
        site.index_document().map(|d| d.suffix()),
        Some("index.html"),
        "{}",
        what("GetBucketWebsite")
    );
    s3.delete_bucket_website()
        .bucket(bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}: {e:?}", what("DeleteBucketWebsite")));
    let gone = s3.get_bucket_website().bucket(bucket).send().await;
    assert_eq!(
        gone.err()
            .and_then(|e| e.into_service_error().meta().code().map(str::to_string)),
        Some("NoSuchWebsiteConfiguration".to_string()),
        "{}",
        what("GetBucketWebsite after delete")
    );

    // CORS configuration, preflight and response headers.
    let rule = cors_rule(&["https://app.example"], &["GET", "PUT"], &[]);
    put_cors(s3, bucket, vec![rule]).await;
    let cors = s3.get_bucket_cors().bucket(bucket).send().await.unwrap();
    assert_eq!(cors.cors_rules().len(), 1, "{}", what("GetBucketCors"));
    let preflight = raw_request_with(
        &style.http,
        "OPTIONS",
        &style.url(bucket, "b"),
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "PUT"),
        ],
        Vec::new(),
    )
    .await;
    assert_eq!(preflight.status, 200, "{}", what("preflight"));
    assert_eq!(
        preflight.headers["access-control-allow-origin"],
        "https://app.example"
    );
    let get = s3
        .get_object()
        .bucket(bucket)
        .key("b")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let origin = [("origin", "https://app.example")];
    let resp = raw_request_with(&style.http, "GET", get.uri(), &origin, Vec::new()).await;
    assert_eq!(
        resp.headers["access-control-allow-origin"],
        "https://app.example",
        "{}",
        what("CORS on GET")
    );
    s3.delete_bucket_cors().bucket(bucket).send().await.unwrap();
    expect_s3_error(
        &what("GetBucketCors after delete"),
        s3.get_bucket_cors().bucket(bucket).send().await,
        404,
        Some("NoSuchCORSConfiguration"),
    );

    // PostObject.
    let form = boto3_presigned_post(
        server(),
        PostTarget {
            endpoint: &style.boto_endpoint,
            style: style.boto_style,
            bucket,
            key: "posted/${filename}",
        },
        &json!({"success_action_status": "201"}),
        &json!([{"success_action_status": "201"}]),
        300,
    );
    assert_eq!(
        form.url.trim_end_matches('/'),
        style.url(bucket, "").trim_end_matches('/')
    );
    let resp = post_form(&style.http, &form, "f.txt", b"posted".to_vec(), &[]).await;
    resp.expect(&what("PostObject"), 201, None);
    head_object(s3, bucket, "posted/f.txt").await;

    // ACL stubs.
    let acl = s3.get_bucket_acl().bucket(bucket).send().await.unwrap();
    let owner = acl
        .owner()
        .and_then(|o| o.id())
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        owner,
        server().root_key().id,
        "{}",
        what("GetBucketAcl owner")
    );
    assert_eq!(acl.grants().len(), 1);
    assert_eq!(acl.grants()[0].permission(), Some(&Permission::FullControl));
    let acl = s3
        .get_object_acl()
        .bucket(bucket)
        .key("b")
        .send()
        .await
        .unwrap();
    assert_eq!(acl.grants()[0].permission(), Some(&Permission::FullControl));
    expect_s3_error(
        &what("GetObjectAcl of a missing key"),
        s3.get_object_acl().bucket(bucket).key("nope").send().await,
        404,
        Some("NoSuchKey"),
    );
    s3.put_bucket_acl()
        .bucket(bucket)
        .acl(BucketCannedAcl::Private)
        .send()
        .await
        .unwrap();
    s3.put_object_acl()
        .bucket(bucket)
        .key("b")
        .acl(ObjectCannedAcl::Private)
        .send()
        .await
        .unwrap();
    let policy = s3.get_bucket_acl().bucket(bucket).send().await.unwrap();
    s3.put_bucket_acl()
        .bucket(bucket)
        .access_control_policy(
            aws_sdk_s3::types::AccessControlPolicy::builder()
                .set_grants(Some(policy.grants().to_vec()))
                .set_owner(policy.owner().cloned())
                .build(),
        )
        .send()
        .await
        .unwrap();
    expect_s3_error(
        &what("PutBucketAcl public-read"),
        s3.put_bucket_acl()
            .bucket(bucket)
            .acl(BucketCannedAcl::PublicRead)
            .send()
            .await,
        501,
        Some("NotImplemented"),
    );
    expect_s3_error(
        &what("PutObjectAcl with a grant"),
        s3.put_object_acl()
            .bucket(bucket)
            .key("b")
            .grant_read("uri=http://acs.amazonaws.com/groups/global/AllUsers")
            .send()
            .await,
        501,
        Some("NotImplemented"),
    );

    // Versioning, versions, policy.
    let versioning = s3
        .get_bucket_versioning()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    assert_ne!(
        versioning.status(),
        Some(&BucketVersioningStatus::Suspended)
    );
    assert_eq!(versioning.status(), None, "{}", what("GetBucketVersioning"));
    let mut keys = Vec::new();
    let mut prefixes = Vec::new();
    let mut marker: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = s3
            .list_object_versions()
            .bucket(bucket)
            .delimiter("/")
            .max_keys(2)
            .set_key_marker(marker.clone())
            .send()
            .await
            .unwrap();
        pages += 1;
        for v in page.versions() {
            assert_eq!(v.version_id(), Some("null"));
            assert_eq!(v.is_latest(), Some(true));
            assert_eq!(
                v.size(),
                Some(v.key().map_or(0, |k| if k == "presigned" {
                    17
                } else if k.starts_with("posted") {
                    6
                } else {
                    4
                }))
            );
            keys.push(v.key().unwrap_or_default().to_string());
        }
        prefixes.extend(
            page.common_prefixes()
                .iter()
                .filter_map(|p| p.prefix())
                .map(str::to_string),
        );
        if page.is_truncated() != Some(true) {
            break;
        }
        marker = page.next_key_marker().map(str::to_string);
        assert!(
            marker.is_some(),
            "{}",
            what("NextKeyMarker of a truncated page")
        );
    }
    assert_eq!(
        keys,
        ["b", "c", "presigned"],
        "{}",
        what("ListObjectVersions keys")
    );
    assert_eq!(
        prefixes,
        ["a/", "posted/"],
        "{}",
        what("ListObjectVersions prefixes")
    );
    assert_eq!(pages, 3, "{}", what("ListObjectVersions pages of 2"));
    let filtered = s3
        .list_object_versions()
        .bucket(bucket)
        .prefix("a/")
        .send()
        .await
        .unwrap();
    let filtered: Vec<_> = filtered.versions().iter().filter_map(|v| v.key()).collect();
    assert_eq!(filtered, ["a/1", "a/2"]);
    expect_s3_error(
        &what("GetBucketPolicy"),
        s3.get_bucket_policy().bucket(bucket).send().await,
        404,
        Some("NoSuchBucketPolicy"),
    );
}

#[tokio::test]
async fn path_style_operations() {
    let bucket = unique_bucket("path");
    exercise(&path_style(), &bucket).await;
}

#[tokio::test]
async fn vhost_style_operations() {
    let bucket = unique_bucket("vhost");
    let style = vhost_style(&bucket);
    exercise(&style, &bucket).await;
    // The objects are the same seen path style.
    let body = get_bytes(&path_style().s3, &bucket, "presigned").await;
    assert_eq!(&body[..], b"via presigned PUT");
    // ListBuckets of the bare root domain (no bucket in the Host).
    let root = format!("http://{ROOT_DOMAIN}:{}/", server().addrs().s3.port());
    let listing = raw_request_with(&style.http, "GET", &root, &[], Vec::new()).await;
    assert_eq!(
        listing.status,
        403,
        "anonymous ListBuckets on the root domain: {}",
        listing.text()
    );
    let names = style.s3.list_buckets().send().await.unwrap();
    assert!(
        names
            .buckets()
            .iter()
            .any(|b| b.name() == Some(bucket.as_str()))
    );
}

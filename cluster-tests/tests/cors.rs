//! CORS: PutBucketCors / GetBucketCors / DeleteBucketCors (round trip, AWS validation,
//! Content-MD5), preflight `OPTIONS` allowed and refused, and the `Access-Control-*` headers
//! of ordinary responses and errors, on the S3 and the website endpoint.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ErrorDocument, WebsiteConfiguration};
use cluster_tests::bucket_config::{
    cors_config as config, cors_rule as rule, index_document, put_cors,
};
use cluster_tests::data::content_md5;
use cluster_tests::{
    RawResponse, Server, expect_s3_error, new_bucket, put_bytes, raw_request, unique_bucket,
};

const SITE: &str = "https://site.example";

fn server() -> &'static Server {
    Server::shared()
}

/// A bucket with an object `k`, the `SITE` rule (PUT/GET, any header, exposing ETag) and a
/// `*` rule for GET.
async fn cors_bucket(s3: &Client) -> String {
    let bucket = new_bucket(s3, "cors").await;
    put_bytes(s3, &bucket, "k", b"cors body").await;
    let mut site = rule(&[SITE], &["PUT", "GET"], &["*"]);
    site.expose_headers = Some(vec!["ETag".into()]);
    site.max_age_seconds = Some(600);
    put_cors(s3, &bucket, vec![site, rule(&["*"], &["GET"], &[])]).await;
    bucket
}

fn header(resp: &RawResponse, name: &str) -> Option<String> {
    resp.header(name)
}

#[tokio::test]
async fn cors_configuration_round_trip_and_validation() {
    let server = server();
    let s3 = server.client();
    let bucket = new_bucket(&s3, "corscfg").await;
    expect_s3_error(
        "GetBucketCors before any configuration",
        s3.get_bucket_cors().bucket(&bucket).send().await,
        404,
        Some("NoSuchCORSConfiguration"),
    );

    let mut first = rule(&["https://*.example.com"], &["GET", "HEAD"], &["x-amz-*"]);
    first.id = Some("first".into());
    first.expose_headers = Some(vec!["ETag".into(), "x-amz-request-id".into()]);
    first.max_age_seconds = Some(3000);
    let second = rule(&["*"], &["PUT", "POST", "DELETE"], &[]);
    put_cors(&s3, &bucket, vec![first.clone(), second.clone()]).await;
    let got = s3.get_bucket_cors().bucket(&bucket).send().await.unwrap();
    assert_eq!(got.cors_rules(), &[first, second]);

    for (what, bad, code) in [
        (
            "unsupported method",
            rule(&["*"], &["PATCH"], &[]),
            "InvalidRequest",
        ),
        (
            "two wildcards in an origin",
            rule(&["https://*.*.example"], &["GET"], &[]),
            "InvalidRequest",
        ),
        (
            "two wildcards in a header",
            rule(&["*"], &["GET"], &["x-*-*"]),
            "InvalidRequest",
        ),
    ] {
        expect_s3_error(
            what,
            s3.put_bucket_cors()
                .bucket(&bucket)
                .cors_configuration(config(vec![bad]))
                .send()
                .await,
            400,
            Some(code),
        );
    }
    expect_s3_error(
        "101 rules",
        s3.put_bucket_cors()
            .bucket(&bucket)
            .cors_configuration(config(vec![rule(&["*"], &["GET"], &[]); 101]))
            .send()
            .await,
        400,
        None,
    );
    let url = |q: &str| format!("/{bucket}?{q}");
    let doc = b"<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod>\
                <AllowedOrigin>*</AllowedOrigin></CORSRule></CORSConfiguration>"
        .to_vec();
    server
        .signed(
            "PUT",
            &url("cors"),
            &[],
            b"<CORSConfiguration><CORSRule>".to_vec(),
        )
        .await
        .expect("truncated XML", 400, Some("MalformedXML"));
    server
        .signed(
            "PUT",
            &url("cors"),
            &[],
            b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin></CORSRule></CORSConfiguration>"
                .to_vec(),
        )
        .await
        .expect("rule without AllowedMethod", 400, Some("MalformedXML"));
    server
        .signed(
            "PUT",
            &url("cors"),
            &[("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==")],
            doc.clone(),
        )
        .await
        .expect("wrong Content-MD5", 400, Some("BadDigest"));
    // The rejected documents changed nothing.
    assert_eq!(
        s3.get_bucket_cors()
            .bucket(&bucket)
            .send()
            .await
            .unwrap()
            .cors_rules()
            .len(),
        2
    );
    let md5 = content_md5(&doc);
    server
        .signed("PUT", &url("cors"), &[("content-md5", &md5)], doc)
        .await
        .expect("PutBucketCors with the right Content-MD5", 200, None);

    s3.delete_bucket_cors()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    expect_s3_error(
        "GetBucketCors after DeleteBucketCors",
        s3.get_bucket_cors().bucket(&bucket).send().await,
        404,
        Some("NoSuchCORSConfiguration"),
    );
    // A key without owner rights on the bucket may not touch its CORS configuration.
    let other = server.create_key("cors-other");
    expect_s3_error(
        "PutBucketCors by another key",
        server
            .client_for(&other)
            .put_bucket_cors()
            .bucket(&bucket)
            .cors_configuration(config(vec![rule(&["*"], &["GET"], &[])]))
            .send()
            .await,
        403,
        Some("AccessDenied"),
    );
}

#[tokio::test]
async fn preflight_allowed_and_refused() {
    let server = server();
    let s3 = server.client();
    let bucket = cors_bucket(&s3).await;
    let options = |path: String, headers: Vec<(&'static str, &'static str)>| async move {
        raw_request(
            "OPTIONS",
            &format!("{}{path}", server.s3_url()),
            &headers,
            vec![],
        )
        .await
    };

    for path in [
        format!("/{bucket}/k"),
        format!("/{bucket}/new/key"),
        format!("/{bucket}"),
    ] {
        let resp = options(
            path.clone(),
            vec![
                ("origin", SITE),
                ("access-control-request-method", "PUT"),
                (
                    "access-control-request-headers",
                    "Content-Type, X-Amz-Meta-A",
                ),
            ],
        )
        .await;
        resp.expect(&format!("preflight PUT {path}"), 200, None);
        assert_eq!(
            header(&resp, "access-control-allow-origin").as_deref(),
            Some(SITE)
        );
        assert_eq!(
            header(&resp, "access-control-allow-methods").as_deref(),
            Some("PUT, GET")
        );
        assert_eq!(
            header(&resp, "access-control-allow-headers").as_deref(),
            Some("content-type, x-amz-meta-a")
        );
        assert_eq!(
            header(&resp, "access-control-expose-headers").as_deref(),
            Some("ETag")
        );
        assert_eq!(
            header(&resp, "access-control-max-age").as_deref(),
            Some("600")
        );
        assert_eq!(
            header(&resp, "access-control-allow-credentials").as_deref(),
            Some("true")
        );
        assert!(header(&resp, "vary").is_some_and(|v| v.contains("Origin")));
    }

    // Another origin may only GET, through the `*` rule.
    let resp = options(
        format!("/{bucket}/k"),
        vec![
            ("origin", "https://other.example"),
            ("access-control-request-method", "GET"),
        ],
    )
    .await;
    resp.expect("preflight GET from another origin", 200, None);
    assert_eq!(
        header(&resp, "access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert_eq!(header(&resp, "access-control-allow-credentials"), None);

    let resp = options(
        format!("/{bucket}/k"),
        vec![
            ("origin", "https://other.example"),
            ("access-control-request-method", "PUT"),
        ],
    )
    .await;
    resp.expect(
        "preflight PUT from another origin",
        403,
        Some("AccessForbidden"),
    );
    assert!(
        resp.xml_field("Message")
            .is_some_and(|m| m.starts_with("CORSResponse: This CORS request is not allowed")),
        "{}",
        resp.text()
    );
    assert_eq!(header(&resp, "access-control-allow-origin"), None);

    options(
        format!("/{bucket}/k"),
        vec![("access-control-request-method", "GET")],
    )
    .await
    .expect("preflight without Origin", 400, None);
    options(format!("/{bucket}/k"), vec![("origin", SITE)])
        .await
        .expect("preflight without Access-Control-Request-Method", 400, None);

    let plain = new_bucket(&s3, "nocors").await;
    options(
        format!("/{plain}/k"),
        vec![("origin", SITE), ("access-control-request-method", "GET")],
    )
    .await
    .expect(
        "preflight on a bucket without CORS",
        403,
        Some("AccessForbidden"),
    );
    options(
        format!("/{}/k", unique_bucket("missing")),
        vec![("origin", SITE), ("access-control-request-method", "GET")],
    )
    .await
    .expect(
        "preflight on a missing bucket",
        403,
        Some("AccessForbidden"),
    );
}

#[tokio::test]
async fn cors_headers_on_responses_and_errors() {
    let server = server();
    let s3 = server.client();
    let bucket = cors_bucket(&s3).await;

    // A browser GET of a presigned URL.
    let presigned = s3
        .get_object()
        .bucket(&bucket)
        .key("k")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let resp = raw_request("GET", presigned.uri(), &[("origin", SITE)], vec![]).await;
    resp.expect("presigned GET with Origin", 200, None);
    assert_eq!(&resp.body[..], b"cors body");
    assert_eq!(
        header(&resp, "access-control-allow-origin").as_deref(),
        Some(SITE)
    );
    assert_eq!(
        header(&resp, "access-control-expose-headers").as_deref(),
        Some("ETag")
    );
    assert!(header(&resp, "vary").is_some_and(|v| v.contains("Origin")));

    // Errors carry them too: a missing key, an anonymous request.
    let resp = server
        .signed(
            "GET",
            &format!("/{bucket}/missing"),
            &[("origin", SITE)],
            vec![],
        )
        .await;
    resp.expect("GET of a missing key with Origin", 404, Some("NoSuchKey"));
    assert_eq!(
        header(&resp, "access-control-allow-origin").as_deref(),
        Some(SITE)
    );
    let url = server.url(&format!("/{bucket}/k"));
    let resp = raw_request("GET", &url, &[("origin", "https://x.example")], vec![]).await;
    resp.expect("anonymous GET with Origin", 403, Some("AccessDenied"));
    assert_eq!(
        header(&resp, "access-control-allow-origin").as_deref(),
        Some("*")
    );

    // No rule for DELETE from another origin: no grant, but still Vary.
    let url = server.url(&format!("/{bucket}/k"));
    let resp = raw_request("DELETE", &url, &[("origin", "https://x.example")], vec![]).await;
    assert_eq!(header(&resp, "access-control-allow-origin"), None);
    assert!(header(&resp, "vary").is_some());
    // Without Origin, no grant either.
    let resp = server
        .signed("GET", &format!("/{bucket}/k"), &[], vec![])
        .await;
    resp.expect("GET without Origin", 200, None);
    assert_eq!(header(&resp, "access-control-allow-origin"), None);
}

#[tokio::test]
async fn website_endpoint_answers_cors() {
    let server = server();
    let s3 = server.client();
    let bucket = cors_bucket(&s3).await;
    s3.put_object()
        .bucket(&bucket)
        .key("index.html")
        .content_type("text/html")
        .body(ByteStream::from_static(b"<p>hi</p>"))
        .send()
        .await
        .unwrap();
    s3.put_bucket_website()
        .bucket(&bucket)
        .website_configuration(
            WebsiteConfiguration::builder()
                .index_document(index_document("index.html"))
                .error_document(ErrorDocument::builder().key("404.html").build().unwrap())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let web = format!("http://{}", server.addrs().web.expect("a website listener"));
    // A bucket named exactly like the Host is served (custom domain).
    let resp = raw_request(
        "GET",
        &format!("{web}/"),
        &[("host", &bucket), ("origin", SITE)],
        vec![],
    )
    .await;
    resp.expect("website GET with Origin", 200, None);
    assert_eq!(
        header(&resp, "access-control-allow-origin").as_deref(),
        Some(SITE)
    );
    let resp = raw_request(
        "GET",
        &format!("{web}/nothing-here"),
        &[("host", &bucket), ("origin", SITE)],
        vec![],
    )
    .await;
    resp.expect("website 404 with Origin", 404, None);
    assert_eq!(
        header(&resp, "access-control-allow-origin").as_deref(),
        Some(SITE)
    );
    let resp = raw_request(
        "OPTIONS",
        &format!("{web}/index.html"),
        &[
            ("host", &bucket),
            ("origin", SITE),
            ("access-control-request-method", "GET"),
        ],
        vec![],
    )
    .await;
    resp.expect("website preflight", 200, None);
    assert_eq!(
        header(&resp, "access-control-allow-methods").as_deref(),
        Some("PUT, GET")
    );
    raw_request(
        "OPTIONS",
        &format!("{web}/index.html"),
        &[
            ("host", &bucket),
            ("origin", "https://other.example"),
            ("access-control-request-method", "DELETE"),
        ],
        vec![],
    )
    .await
    .expect("website preflight refused", 403, None);
}

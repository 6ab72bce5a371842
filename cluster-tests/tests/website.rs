//! Static websites from buckets, end to end against a real `cairn server`: a site uploaded with
//! `aws s3 sync` and enabled with `aws s3 website` is served by the website endpoint (index
//! and nested index documents, redirect to the slash, error document with 404, HEAD, Range,
//! conditional GETs, redirects, HTML error pages) and rendered by headless Chromium with its
//! stylesheet and image; Put/Get/DeleteBucketWebsite through aws-sdk-s3; the SPA fallback
//! and `cairn bucket website`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::OnceLock;

use aws_sdk_s3::types::{
    Condition, ErrorDocument, Protocol, Redirect, RedirectAllRequestsTo, RoutingRule,
    WebsiteConfiguration,
};
use cluster_tests::bucket_config::index_document;
use cluster_tests::{
    AwsCli, RawResponse, Server, ServerOptions, dump_dom, expect_s3_error, map_host, new_bucket,
    put_bytes, raw_request_with, require_chromium, screenshot, unique_bucket,
};

/// `--web-root-domain` of the test server: `<bucket>.web.test` names `<bucket>`.
const ROOT: &str = "web.test";
/// Background colour the site's stylesheet sets (#3366cc).
const BLUE: [u8; 3] = [0x33, 0x66, 0xcc];
/// Colour of the site's logo image (#ff8800).
const ORANGE: [u8; 3] = [0xff, 0x88, 0x00];
/// Side of the square logo, in pixels.
const LOGO_SIDE: u32 = 64;

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        Server::start_with(ServerOptions {
            extra_args: vec!["--web-root-domain".into(), ROOT.into()],
            ..Default::default()
        })
    })
}

fn host_of(bucket: &str) -> String {
    format!("{bucket}.{ROOT}")
}

/// Plain HTTP against the website endpoint, choosing the `Host`; redirects are not followed.
struct Web {
    addr: SocketAddr,
    client: reqwest::Client,
}

impl Web {
    fn new(server: &Server) -> Web {
        Web {
            addr: server
                .addrs()
                .web
                .expect("the server runs a website listener"),
            client: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    async fn request(
        &self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> RawResponse {
        let url = format!("http://{}{path}", self.addr);
        let mut all = vec![("host", host)];
        all.extend_from_slice(headers);
        raw_request_with(&self.client, method, &url, &all, Vec::new()).await
    }

    async fn get(&self, host: &str, path: &str) -> RawResponse {
        self.request("GET", host, path, &[]).await
    }
}

/// Asserts an HTML answer with `status` whose body contains `needle`.
#[track_caller]
fn expect_html(resp: &RawResponse, what: &str, status: u16, needle: &str) {
    assert_eq!(resp.status, status, "{what}: {}", resp.text());
    let content_type = resp.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/html"),
        "{what}: content-type {content_type}"
    );
    assert!(
        resp.text().contains(needle),
        "{what}: body lacks {needle:?}:\n{}",
        resp.text()
    );
}

/// A `side`×`side` PNG of one colour.
fn png_square(side: u32, rgb: [u8; 3]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().unwrap();
    let data: Vec<u8> = (0..side * side).flat_map(|_| rgb).collect();
    writer.write_image_data(&data).unwrap();
    writer.finish().unwrap();
    out
}

const INDEX: &str = "<!DOCTYPE html>\n<html><head><title>Cairn site</title>\
    <link rel=\"stylesheet\" href=\"/style.css\"></head>\
    <body><h1>Welcome to the Cairn site</h1><img src=\"/img/logo.png\" alt=\"logo\"></body></html>\n";
const NO_CSS: &str = "<!DOCTYPE html>\n<html><head><title>No style</title></head>\
    <body><h1>Welcome to the Cairn site</h1></body></html>\n";
const STYLE: &str = "body { background-color: #3366cc; color: #ffffff; margin: 0; }\n\
    img { display: block; margin: 40px; }\n";
const DOCS_INDEX: &str = "<!DOCTYPE html>\n<html><body><h1>Documentation</h1></body></html>\n";
const NOT_FOUND: &str =
    "<!DOCTYPE html>\n<html><body><h1>Nothing here (custom 404)</h1></body></html>\n";

/// Writes the test site into `dir`: index.html, style.css, img/logo.png, docs/index.html,
/// nocss.html and 404.html.
fn write_site(dir: &Path) {
    std::fs::create_dir_all(dir.join("img")).unwrap();
    std::fs::create_dir_all(dir.join("docs")).unwrap();
    std::fs::write(dir.join("index.html"), INDEX).unwrap();
    std::fs::write(dir.join("nocss.html"), NO_CSS).unwrap();
    std::fs::write(dir.join("style.css"), STYLE).unwrap();
    std::fs::write(dir.join("img/logo.png"), png_square(LOGO_SIDE, ORANGE)).unwrap();
    std::fs::write(dir.join("docs/index.html"), DOCS_INDEX).unwrap();
    std::fs::write(dir.join("404.html"), NOT_FOUND).unwrap();
}

/// Creates a bucket, uploads the site with `aws s3 sync` and enables it with `aws s3 website`.
fn publish_site(server: &Server, prefix: &str) -> String {
    let aws = AwsCli::new(server);
    let bucket = unique_bucket(prefix);
    let url = format!("s3://{bucket}");
    let dir = tempfile::tempdir().unwrap();
    write_site(dir.path());
    aws.ok(&["s3", "mb", &url]);
    aws.ok(&["s3", "sync", dir.path().to_str().unwrap(), &url]);
    aws.ok(&[
        "s3",
        "website",
        &url,
        "--index-document",
        "index.html",
        "--error-document",
        "404.html",
    ]);
    bucket
}

#[tokio::test]
async fn static_site_is_served_by_host() {
    let server = server();
    let bucket = publish_site(server, "site");
    let host = host_of(&bucket);
    let web = Web::new(server);

    // Index documents, content types as stored by the CLI.
    let index = web.get(&host, "/").await;
    assert_eq!(index.status, 200, "{}", index.text());
    assert_eq!(index.text(), INDEX);
    assert_eq!(index.header("content-type").as_deref(), Some("text/html"));
    let etag = index.header("etag").expect("ETag");
    let last_modified = index.header("last-modified").expect("Last-Modified");
    let nested = web.get(&host, "/docs/").await;
    assert_eq!((nested.status, nested.text()), (200, DOCS_INDEX.into()));
    let css = web.get(&host, "/style.css").await;
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type").as_deref(), Some("text/css"));
    let logo = web.get(&host, "/img/logo.png").await;
    assert_eq!(logo.status, 200);
    assert_eq!(logo.header("content-type").as_deref(), Some("image/png"));
    assert_eq!(logo.body.as_ref(), png_square(LOGO_SIDE, ORANGE).as_slice());
    // The Host may carry a port and any case.
    let with_port = web.get(&format!("{}:9001", host.to_uppercase()), "/").await;
    assert_eq!(with_port.text(), INDEX);

    // A "directory" without its slash: 302 to it, only when its index document exists.
    let dir = web.get(&host, "/docs").await;
    assert_eq!(dir.status, 302, "{}", dir.text());
    assert_eq!(dir.header("location").as_deref(), Some("/docs/"));
    assert!(dir.body.is_empty());

    // Missing keys: the error document, with 404.
    for path in ["/missing.html", "/img", "/nodir/", "/docs/missing"] {
        let missing = web.get(&host, path).await;
        assert_eq!(missing.status, 404, "{path}");
        assert_eq!(missing.text(), NOT_FOUND, "{path}");
        assert_eq!(
            missing.header("content-type").as_deref(),
            Some("text/html"),
            "{path}"
        );
    }

    // HEAD: headers, no body.
    let head = web.request("HEAD", &host, "/", &[]).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some(INDEX.len().to_string()));
    assert!(head.body.is_empty());
    let head_missing = web.request("HEAD", &host, "/missing.html", &[]).await;
    assert_eq!(head_missing.status, 404);
    assert!(head_missing.body.is_empty());

    // Range and conditional requests, as GetObject.
    let range = web
        .request("GET", &host, "/index.html", &[("range", "bytes=0-14")])
        .await;
    assert_eq!(range.status, 206, "{}", range.text());
    assert_eq!(range.text(), &INDEX[..15]);
    assert_eq!(
        range.header("content-range"),
        Some(format!("bytes 0-14/{}", INDEX.len()))
    );
    let suffix = web
        .request("GET", &host, "/", &[("range", "bytes=-5")])
        .await;
    assert_eq!(
        (suffix.status, suffix.text()),
        (206, INDEX[INDEX.len() - 5..].into())
    );
    let unsatisfiable = web
        .request("GET", &host, "/", &[("range", "bytes=100000-")])
        .await;
    expect_html(&unsatisfiable, "range past the end", 416, "InvalidRange");
    let cached = web
        .request("GET", &host, "/", &[("if-none-match", &etag)])
        .await;
    assert_eq!(cached.status, 304);
    assert_eq!(cached.header("etag").as_deref(), Some(etag.as_str()));
    assert!(cached.body.is_empty());
    let changed = web
        .request("GET", &host, "/", &[("if-none-match", "\"other\"")])
        .await;
    assert_eq!(changed.status, 200);
    let since = web
        .request("GET", &host, "/", &[("if-modified-since", &last_modified)])
        .await;
    assert_eq!(since.status, 304);
    let failed = web
        .request("GET", &host, "/", &[("if-match", "\"other\"")])
        .await;
    expect_html(&failed, "If-Match mismatch", 412, "PreconditionFailed");

    // Only GET and HEAD, anonymous; query strings never list the bucket.
    for method in ["PUT", "POST", "DELETE"] {
        let refused = web.request(method, &host, "/index.html", &[]).await;
        expect_html(&refused, method, 405, "MethodNotAllowed");
    }
    let listing = web.get(&host, "/?list-type=2").await;
    assert_eq!(listing.text(), INDEX);
    assert!(
        !web.get(&host, "/?prefix=")
            .await
            .text()
            .contains("ListBucketResult")
    );
    assert_eq!(
        server
            .client()
            .get_object()
            .bucket(&bucket)
            .key("index.html")
            .send()
            .await
            .unwrap()
            .content_type(),
        Some("text/html")
    );
}

#[tokio::test]
async fn buckets_without_a_website_and_unknown_hosts_get_html_404() {
    let server = server();
    let web = Web::new(server);
    let s3 = server.client();
    let plain = new_bucket(&s3, "plain").await;
    put_bytes(&s3, &plain, "index.html", INDEX.as_bytes()).await;
    let resp = web.get(&host_of(&plain), "/").await;
    expect_html(
        &resp,
        "bucket without website",
        404,
        "NoSuchWebsiteConfiguration",
    );
    assert!(!resp.text().contains("Welcome"));
    let resp = web.get(&host_of("no-such-bucket-here"), "/").await;
    expect_html(&resp, "unknown bucket", 404, "NoSuchBucket");
    assert!(!resp.text().contains("<?xml"));
}

#[tokio::test]
async fn custom_domains_redirect_locations_and_routing_rules() {
    let server = server();
    let s3 = server.client();
    let web = Web::new(server);
    // A bucket named like the host it is served at.
    let domain = format!("www.{}.example", unique_bucket("custom"));
    s3.create_bucket().bucket(&domain).send().await.unwrap();
    let put = |key: &'static str, body: &'static str| {
        s3.put_object()
            .bucket(&domain)
            .key(key)
            .content_type("text/html")
            .body(body.as_bytes().to_vec().into())
            .send()
    };
    put("index.html", INDEX).await.unwrap();
    put("documents/a.html", DOCS_INDEX).await.unwrap();
    put("old/kept.html", "kept").await.unwrap();
    s3.put_object()
        .bucket(&domain)
        .key("moved.html")
        .website_redirect_location("/documents/a.html")
        .body(Vec::new().into())
        .send()
        .await
        .unwrap();
    let config = WebsiteConfiguration::builder()
        .index_document(index_document("index.html"))
        .routing_rules(
            RoutingRule::builder()
                .condition(Condition::builder().key_prefix_equals("docs/").build())
                .redirect(
                    Redirect::builder()
                        .replace_key_prefix_with("documents/")
                        .http_redirect_code("302")
                        .build(),
                )
                .build(),
        )
        .routing_rules(
            RoutingRule::builder()
                .condition(
                    Condition::builder()
                        .key_prefix_equals("old/")
                        .http_error_code_returned_equals("404")
                        .build(),
                )
                .redirect(
                    Redirect::builder()
                        .protocol(Protocol::Https)
                        .host_name("archive.example.org")
                        .replace_key_with("gone.html")
                        .build(),
                )
                .build(),
        )
        .build();
    s3.put_bucket_website()
        .bucket(&domain)
        .website_configuration(config)
        .send()
        .await
        .unwrap();

    assert_eq!(web.get(&domain, "/").await.text(), INDEX);
    // The object's redirect location: 301.
    let moved = web.get(&domain, "/moved.html").await;
    assert_eq!(moved.status, 301, "{}", moved.text());
    assert_eq!(
        moved.header("location").as_deref(),
        Some("/documents/a.html")
    );
    // A prefix rule applies before the object is read.
    let docs = web.get(&domain, "/docs/a.html").await;
    assert_eq!(docs.status, 302, "{}", docs.text());
    assert_eq!(
        docs.header("location"),
        Some(format!("http://{domain}/documents/a.html"))
    );
    // An error-code rule only when the key is missing; 301 by default.
    assert_eq!(web.get(&domain, "/old/kept.html").await.text(), "kept");
    let gone = web.get(&domain, "/old/lost.html").await;
    assert_eq!(gone.status, 301, "{}", gone.text());
    assert_eq!(
        gone.header("location").as_deref(),
        Some("https://archive.example.org/gone.html")
    );
    // Missing elsewhere, and no error document: S3's plain 404 page.
    let missing = web.get(&domain, "/nothing.html").await;
    expect_html(&missing, "no error document", 404, "NoSuchKey");
    assert!(missing.text().contains("nothing.html"));

    // RedirectAllRequestsTo keeps the path.
    let all = new_bucket(&s3, "redirect-all").await;
    s3.put_bucket_website()
        .bucket(&all)
        .website_configuration(
            WebsiteConfiguration::builder()
                .redirect_all_requests_to(
                    RedirectAllRequestsTo::builder()
                        .host_name("www.example.org")
                        .protocol(Protocol::Https)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let resp = web.get(&host_of(&all), "/a/b.html").await;
    assert_eq!(resp.status, 301);
    assert_eq!(
        resp.header("location").as_deref(),
        Some("https://www.example.org/a/b.html")
    );
}

#[tokio::test]
async fn website_configuration_api() {
    let server = server();
    let s3 = server.client();
    let web = Web::new(server);
    let bucket = new_bucket(&s3, "webapi").await;
    expect_s3_error(
        "GetBucketWebsite before any",
        s3.get_bucket_website().bucket(&bucket).send().await,
        404,
        Some("NoSuchWebsiteConfiguration"),
    );

    let rule = RoutingRule::builder()
        .condition(
            Condition::builder()
                .http_error_code_returned_equals("404")
                .build(),
        )
        .redirect(Redirect::builder().replace_key_with("index.html").build())
        .build();
    let config = WebsiteConfiguration::builder()
        .index_document(index_document("home.html"))
        .error_document(ErrorDocument::builder().key("err.html").build().unwrap())
        .routing_rules(rule)
        .build();
    s3.put_bucket_website()
        .bucket(&bucket)
        .website_configuration(config)
        .send()
        .await
        .unwrap();
    let got = s3
        .get_bucket_website()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(got.index_document().map(|d| d.suffix()), Some("home.html"));
    assert_eq!(got.error_document().map(|d| d.key()), Some("err.html"));
    let rules = got.routing_rules();
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0]
            .condition()
            .and_then(|c| c.http_error_code_returned_equals()),
        Some("404")
    );
    assert_eq!(
        rules[0].redirect().and_then(|r| r.replace_key_with()),
        Some("index.html")
    );
    // Served at once: the error-code rule redirects a missing key.
    let resp = web.get(&host_of(&bucket), "/nope").await;
    assert_eq!(resp.status, 301, "{}", resp.text());

    // Refused configurations leave the stored one alone.
    let invalid = [
        (
            WebsiteConfiguration::builder()
                .index_document(index_document("a/b.html"))
                .build(),
            "InvalidArgument",
        ),
        (
            WebsiteConfiguration::builder()
                .error_document(ErrorDocument::builder().key("e.html").build().unwrap())
                .build(),
            "InvalidArgument",
        ),
        (
            WebsiteConfiguration::builder()
                .index_document(index_document("i.html"))
                .redirect_all_requests_to(
                    RedirectAllRequestsTo::builder()
                        .host_name("example.org")
                        .build()
                        .unwrap(),
                )
                .build(),
            "InvalidArgument",
        ),
        (
            WebsiteConfiguration::builder()
                .index_document(index_document("i.html"))
                .routing_rules(
                    RoutingRule::builder()
                        .redirect(
                            Redirect::builder()
                                .replace_key_with("a")
                                .replace_key_prefix_with("b")
                                .build(),
                        )
                        .build(),
                )
                .build(),
            "InvalidRequest",
        ),
        (
            WebsiteConfiguration::builder()
                .index_document(index_document("i.html"))
                .routing_rules(
                    RoutingRule::builder()
                        .redirect(Redirect::builder().http_redirect_code("300").build())
                        .build(),
                )
                .build(),
            "InvalidRequest",
        ),
    ];
    for (config, code) in invalid {
        expect_s3_error(
            &format!("PutBucketWebsite {config:?}"),
            s3.put_bucket_website()
                .bucket(&bucket)
                .website_configuration(config)
                .send()
                .await,
            400,
            Some(code),
        );
    }
    for body in [
        "<WebsiteConfiguration><IndexDocument>",
        "<WebsiteConfiguration><IndexDocument></IndexDocument></WebsiteConfiguration>",
        "<NotAWebsite/>",
    ] {
        let resp = server
            .signed(
                "PUT",
                &format!("/{bucket}?website"),
                &[],
                body.as_bytes().to_vec(),
            )
            .await;
        resp.expect(body, 400, Some("MalformedXML"));
    }
    // A valid document whose Content-MD5 does not match the body.
    server
        .signed(
            "PUT",
            &format!("/{bucket}?website"),
            &[("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==")],
            b"<WebsiteConfiguration><IndexDocument><Suffix>x.html</Suffix></IndexDocument></WebsiteConfiguration>"
                .to_vec(),
        )
        .await
        .expect("wrong Content-MD5", 400, Some("BadDigest"));
    let still = s3
        .get_bucket_website()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(
        still.index_document().map(|d| d.suffix()),
        Some("home.html")
    );

    // Only the bucket's owner may read or change it.
    let other = server.create_key("website-stranger");
    let stranger = server.client_for(&other);
    expect_s3_error(
        "GetBucketWebsite by a stranger",
        stranger.get_bucket_website().bucket(&bucket).send().await,
        403,
        Some("AccessDenied"),
    );
    expect_s3_error(
        "DeleteBucketWebsite by a stranger",
        stranger
            .delete_bucket_website()
            .bucket(&bucket)
            .send()
            .await,
        403,
        Some("AccessDenied"),
    );

    s3.delete_bucket_website()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    expect_s3_error(
        "GetBucketWebsite after delete",
        s3.get_bucket_website().bucket(&bucket).send().await,
        404,
        Some("NoSuchWebsiteConfiguration"),
    );
    let resp = web.get(&host_of(&bucket), "/").await;
    expect_html(
        &resp,
        "after DeleteBucketWebsite",
        404,
        "NoSuchWebsiteConfiguration",
    );
    expect_s3_error(
        "GetBucketWebsite of a missing bucket",
        s3.get_bucket_website()
            .bucket("no-such-bucket-web")
            .send()
            .await,
        404,
        Some("NoSuchBucket"),
    );
}

#[tokio::test]
async fn cairn_cli_enables_spa_fallback_and_disables() {
    let server = server();
    let s3 = server.client();
    let web = Web::new(server);
    let bucket = new_bucket(&s3, "spa").await;
    let app = "<!DOCTYPE html>\n<html><body><div id=\"app\">single-page app</div></body></html>\n";
    for (key, body, content_type) in [
        ("index.html", app, "text/html"),
        ("assets/app.js", "console.log('app')", "text/javascript"),
    ] {
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .content_type(content_type)
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .unwrap();
    }
    let host = host_of(&bucket);

    let out = server.admin_ok(&[
        "bucket",
        "website",
        &bucket,
        "--index",
        "index.html",
        "--spa-fallback",
        "index.html",
    ]);
    assert!(out.contains("website enabled"), "{out}");
    let got = s3
        .get_bucket_website()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(got.index_document().map(|d| d.suffix()), Some("index.html"));

    // Client-side routes get the app with 200; files that do not exist still 404.
    for route in ["/users/42", "/settings", "/deep/link/"] {
        let resp = web.get(&host, route).await;
        assert_eq!(
            (resp.status, resp.text()),
            (200, app.to_string()),
            "{route}"
        );
    }
    assert_eq!(
        web.get(&host, "/assets/app.js").await.text(),
        "console.log('app')"
    );
    let missing = web.get(&host, "/assets/missing.js").await;
    expect_html(&missing, "missing asset", 404, "NoSuchKey");

    // Refusals name the problem and change nothing.
    let bad = server.admin(&["bucket", "website", &bucket, "--index", "a/b.html"]);
    assert!(!bad.success(), "a suffix with a slash was accepted");
    assert!(bad.stderr.contains("not well formed"), "{}", bad.stderr);
    let none = server.admin(&[
        "bucket",
        "website",
        "no-such-bucket-cli",
        "--index",
        "i.html",
    ]);
    assert!(!none.success());
    assert!(none.stderr.contains("no such bucket"), "{}", none.stderr);
    assert!(!server.admin(&["bucket", "website", &bucket]).success());
    assert_eq!(web.get(&host, "/users/42").await.status, 200);

    let out = server.admin_ok(&["bucket", "website", &bucket, "--disable"]);
    assert!(out.contains("website disabled"), "{out}");
    let resp = web.get(&host, "/").await;
    expect_html(&resp, "after --disable", 404, "NoSuchWebsiteConfiguration");
    expect_s3_error(
        "GetBucketWebsite after --disable",
        s3.get_bucket_website().bucket(&bucket).send().await,
        404,
        Some("NoSuchWebsiteConfiguration"),
    );
}

/// Share of the screenshot's pixels within a small distance of `rgb`.
fn colour_share(png_path: &Path, rgb: [u8; 3]) -> f64 {
    let file = std::io::BufReader::new(std::fs::File::open(png_path).unwrap());
    let mut reader = png::Decoder::new(file).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().expect("PNG size")];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected screenshot colour type {other:?}"),
    };
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let pixels = &buf[..info.buffer_size()];
    let total = pixels.len() / channels;
    let close = pixels
        .chunks_exact(channels)
        .filter(|p| (0..3).all(|i| p[i].abs_diff(rgb[i]) <= 8))
        .count();
    close as f64 / total as f64
}

#[tokio::test]
async fn chromium_renders_the_site_with_its_css() {
    require_chromium();
    let server = server();
    let bucket = publish_site(server, "browser");
    let rules = map_host(&format!("*.{ROOT}"), server.addrs().web.unwrap());
    let url = |path: &str| format!("http://{}{path}", host_of(&bucket));

    let styled = screenshot(&url("/"), Some(&rules));
    let blue = colour_share(&styled, BLUE);
    assert!(
        blue > 0.5,
        "the page at / should have the stylesheet's #3366cc background: {:.1}% of {} is",
        blue * 100.0,
        styled.display()
    );
    let orange = colour_share(&styled, ORANGE);
    let logo = f64::from(LOGO_SIDE * LOGO_SIDE) / f64::from(800 * 600);
    assert!(
        orange > logo * 0.8,
        "the logo image should be drawn: {:.2}% orange (expected about {:.2}%) in {}",
        orange * 100.0,
        logo * 100.0,
        styled.display()
    );
    // The same page without the stylesheet has no blue: the colour comes from the CSS.
    let plain = screenshot(&url("/nocss.html"), Some(&rules));
    let share = colour_share(&plain, BLUE);
    assert!(
        share < 0.01,
        "nocss.html should not be blue: {:.1}% in {}",
        share * 100.0,
        plain.display()
    );

    // Navigation in the browser: the nested index and the custom error page.
    let docs = dump_dom(&url("/docs"), Some(&rules));
    assert!(docs.contains("Documentation"), "{docs}");
    let missing = dump_dom(&url("/no/such/page.html"), Some(&rules));
    assert!(missing.contains("Nothing here (custom 404)"), "{missing}");
}

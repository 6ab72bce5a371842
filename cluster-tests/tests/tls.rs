//! TLS on the S3 and website listeners: `cairn server --tls-cert --tls-key` with a certificate
//! from a test CA. aws-sdk-s3 trusting that CA talks HTTPS; a client that does not trust it,
//! and plain HTTP, get nothing; a key that does not fit the certificate stops the start.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use aws_smithy_http_client::tls;
use cluster_tests::multipart::upload_in_parts;
use cluster_tests::pki::TestPki;
use cluster_tests::raw_http::https_status_line;
use cluster_tests::{
    KeyPair, Profile, Server, ServerOptions, cairn_bin, get_bytes, http_client, md5_hex,
    new_bucket, put_bytes, random_bytes, run_with_timeout,
};

/// aws-sdk-s3 client for `https://127.0.0.1:PORT` trusting only `ca_pem` (or, with `None`,
/// only the default roots).
fn https_client(endpoint: &str, key: &KeyPair, ca_pem: Option<&str>) -> aws_sdk_s3::Client {
    let mut trust = tls::TrustStore::empty();
    match ca_pem {
        Some(pem) => trust = trust.with_pem_certificate(pem.as_bytes()),
        None => trust = tls::TrustStore::default(),
    }
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(
            tls::TlsContext::builder()
                .with_trust_store(trust)
                .build()
                .unwrap(),
        )
        .build_https();
    let conf =
        cluster_tests::s3::s3_config(endpoint, &key.id, &key.secret, Duration::from_secs(60))
            .force_path_style(true)
            .http_client(http)
            .build();
    aws_sdk_s3::Client::from_conf(conf)
}

#[tokio::test]
async fn s3_and_website_over_tls() {
    let pki = TestPki::new("cairn test CA");
    let path = |p: &Path| p.display().to_string();
    let server = Server::start_with(ServerOptions {
        extra_args: vec![
            "--tls-cert".into(),
            path(&pki.cert),
            "--tls-key".into(),
            path(&pki.key),
        ],
        ..Default::default()
    });
    let endpoint = format!("https://{}", server.addrs().s3);
    let s3 = https_client(&endpoint, server.root_key(), Some(&pki.ca_pem));
    let bucket = new_bucket(&s3, "tls").await;
    let data = random_bytes(3 * 1024 * 1024 + 17);
    put_bytes(&s3, &bucket, "secret/object", &data).await;
    let body = get_bytes(&s3, &bucket, "secret/object").await;
    assert_eq!(md5_hex(&body), md5_hex(&data));
    let listed = s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
    assert_eq!(listed.key_count(), Some(1));
    // URLs the endpoint hands out name the scheme it is reached by.
    let done = upload_in_parts(&s3, &bucket, "mp", &[b"one part"]).await;
    let location = done.location().unwrap_or_default();
    assert!(location.starts_with("https://"), "Location {location}");

    // A client that does not trust the test CA gets no answer.
    let untrusting = https_client(&endpoint, server.root_key(), None);
    let err = untrusting
        .list_buckets()
        .send()
        .await
        .expect_err("a client without the CA talked to the server");
    assert!(
        err.raw_response().is_none(),
        "an HTTP answer without a trusted certificate: {err:?}"
    );
    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = http_client()
        .get(format!("http://{}/", server.addrs().s3))
        .send()
        .await;
    assert!(
        plain.is_err(),
        "plain HTTP answered on the TLS port: {plain:?}"
    );

    // The website listener speaks TLS with the same certificate.
    let web = server.addrs().web.expect("website listener");
    let status = https_status_line(web, &pki.ca_pem, "nosuch.example").await;
    assert!(
        status.starts_with("HTTP/1.1 "),
        "website over TLS answered {status:?}"
    );
}

#[test]
fn a_key_that_does_not_fit_the_certificate_stops_the_start() {
    let pki = TestPki::new("cairn test CA");
    let mut cmd = Command::new(cairn_bin(Profile::Debug));
    cmd.args(["gateway", "--nodes", "127.0.0.1:1", "--tls-cert"])
        .arg(&pki.cert)
        .arg("--tls-key")
        .arg(&pki.other_key)
        .args([
            "--s3-listen",
            "127.0.0.1:0",
            "--web-listen",
            "off",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .env("CAIRN_CLUSTER_SECRET", "a-test-secret");
    let out = run_with_timeout(&mut cmd, Duration::from_secs(30)).unwrap();
    out.expect_start_refused("does not fit the certificate", "s3");
}

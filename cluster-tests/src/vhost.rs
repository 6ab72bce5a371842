//! Virtual-hosted-style clients. A server started with `--root-domain localhost` takes the
//! bucket from `Host: <bucket>.localhost`; glibc does not resolve `*.localhost` here, so the
//! clients resolve every name to loopback themselves (Chromium does so natively).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::dns::{DnsFuture, ResolveDns};

use crate::server::{KeyPair, Server};

/// The root domain the vhost tests give `--root-domain`.
pub const ROOT_DOMAIN: &str = "localhost";

/// Resolves every name to 127.0.0.1.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoopbackResolver;

impl ResolveDns for LoopbackResolver {
    fn resolve_dns<'a>(&'a self, _name: &'a str) -> DnsFuture<'a> {
        DnsFuture::ready(Ok(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]))
    }
}

/// `http://localhost:PORT`: the S3 endpoint under its root domain.
pub fn vhost_endpoint(server: &Server) -> String {
    format!("http://{ROOT_DOMAIN}:{}", server.addrs().s3.port())
}

/// aws-sdk-s3 client addressing buckets virtual-hosted style (`http://<bucket>.localhost:PORT`).
pub fn vhost_client(server: &Server, key: &KeyPair) -> aws_sdk_s3::Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .build_with_resolver(LoopbackResolver);
    let conf = crate::s3::s3_config(
        &vhost_endpoint(server),
        &key.id,
        &key.secret,
        Duration::from_secs(120),
    )
    .force_path_style(false)
    .http_client(http)
    .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// A reqwest client that sends `<bucket>.localhost` (and `localhost`) to the server.
pub fn vhost_http_client(server: &Server, buckets: &[&str]) -> reqwest::Client {
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), server.addrs().s3.port());
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .redirect(reqwest::redirect::Policy::none())
        .resolve(ROOT_DOMAIN, addr);
    for bucket in buckets {
        builder = builder.resolve(&format!("{bucket}.{ROOT_DOMAIN}"), addr);
    }
    builder.build().expect("build reqwest client")
}

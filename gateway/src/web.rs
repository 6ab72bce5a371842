//! The website endpoint: serves buckets that have a website configuration to anonymous
//! browsers, as S3 website hosting does.
//!
//! The bucket comes from the `Host` header: `<bucket>.<web-root-domain>`, or a bucket named
//! exactly like the host (custom domains). Only GET and HEAD are served. `/` and `dir/` serve
//! the index document, `dir` redirects (302) to `dir/` when `dir/<index>` exists, a missing
//! key serves the error document with status 404 (an HTML page when there is none), an
//! object's `x-amz-website-redirect-location` answers 301, and `RedirectAllRequestsTo` and
//! routing rules redirect. Cairn's SPA fallback serves a document with 200 for a missing
//! extension-less path. Objects are served by the S3 GetObject code path (conditional
//! requests, Range, streamed bodies); errors are HTML pages, never XML, and a bucket is
//! never listed.
//!
//! [`respond`] builds the whole answer to a request; [`handle`] only adds the headers every
//! response carries, so cross-cutting headers (CORS) wrap around [`respond`].

mod pages;
mod routing;

use std::sync::Arc;

use cairn_proto::meta::{Bucket, WebsiteConfig};
use cairn_proto::pb;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::body::{self, ResponseBody};
use crate::error::S3Error;
use crate::listener;
use crate::s3::S3;
use crate::s3::object::serve_object;
use crate::s3::router::Query;
use crate::s3::versioning::readable_version;
use pages::{Failure, error_page};
use routing::{Origin, find_rule, has_extension, path_key, redirect_all_location, url_path};

/// Object metadata that turns a website request for the object into a 301 to its value.
pub const REDIRECT_LOCATION: &str = "x-amz-website-redirect-location";

/// Index document of a configuration that has none (only `RedirectAllRequestsTo` ones, which
/// never read objects).
const DEFAULT_INDEX: &str = "index.html";

/// Shared state of the website endpoint.
pub struct Website {
    /// The S3 side whose object reads the website reuses.
    pub s3: Arc<S3>,
    /// `<bucket>.<root_domain>` hosts name `<bucket>`.
    pub root_domain: Option<String>,
}

impl Website {
    /// The bucket a request addresses (a cache miss is confirmed before NoSuchBucket).
    pub async fn bucket(&self, parts: &Parts) -> Result<Bucket, S3Error> {
        let host = request_host(parts).ok_or(S3Error::NoSuchBucket)?;
        let name = bucket_name(host, self.root_domain.as_deref());
        self.s3.find_bucket(&name).await
    }
}

/// The bucket name a `Host` header value designates (lower-cased, port and trailing dot
/// dropped): the labels before `root_domain`, or else the whole host (a custom domain).
pub fn bucket_name(host: &str, root_domain: Option<&str>) -> String {
    let host = host.trim().to_ascii_lowercase();
    // An IPv6 literal (`[::1]:9001`) names no bucket; keep it whole.
    let host = match host.rsplit_once(':') {
        Some((name, _)) if !host.starts_with('[') => name,
        _ => host.as_str(),
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    let vhost = root_domain.and_then(|root| {
        host.strip_suffix(root.trim_matches('.'))
            .and_then(|b| b.strip_suffix('.'))
            .filter(|b| !b.is_empty())
    });
    vhost.unwrap_or(host).to_string()
}

/// The `Host` header (or the authority of an HTTP/2 request).
fn request_host(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
}

/// Serves the website endpoint on `listener` (over TLS with `tls`) until `stop`, then drains (see
/// [`listener::serve`]).
pub async fn serve(
    site: Arc<Website>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
) {
    listener::serve("web", listener, tls, stop, move |req| {
        let site = site.clone();
        async move { handle(&site, req).await }
    })
    .await;
}

/// Serves one request; never fails (errors become HTML pages).
pub async fn handle(site: &Website, req: Request<Incoming>) -> Response<ResponseBody> {
    let request_id = format!("{:016X}", rand::random::<u64>());
    let span = tracing::info_span!("web", id = %request_id, method = %req.method(), path = %req.uri().path());
    async move {
        let (parts, _body) = req.into_parts();
        let mut response = if parts.method == Method::OPTIONS {
            cors_preflight(site, &parts, &request_id).await
        } else {
            let mut response = respond(site, &parts, &request_id).await;
            add_cors_headers(site, &parts, &mut response);
            response
        };
        let status = response.status();
        if status.is_server_error() {
            tracing::warn!(%status, "website request failed");
        } else {
            tracing::debug!(%status, "website request done");
        }
        let headers = response.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            headers.insert("x-amz-request-id", v);
        }
        headers.insert(header::SERVER, HeaderValue::from_static("Cairn"));
        response
    }
    .instrument(span)
    .await
}

/// Answers a CORS preflight `OPTIONS` from the addressed bucket's CORS configuration.
async fn cors_preflight(site: &Website, parts: &Parts, request_id: &str) -> Response<ResponseBody> {
    let granted = match site.bucket(parts).await {
        Ok(bucket) => crate::cors::preflight(bucket.cors.as_ref(), &parts.headers),
        Err(e) => Err(e),
    };
    match granted {
        Ok(headers) => {
            let mut resp = Response::new(body::empty());
            *resp.headers_mut() = headers;
            resp
        }
        Err(e) => Visit {
            s3: &site.s3,
            parts,
            request_id,
            with_body: true,
        }
        .error(&e, None),
    }
}

/// Adds the CORS headers the addressed bucket's configuration (as cached) grants.
fn add_cors_headers(site: &Website, parts: &Parts, response: &mut Response<ResponseBody>) {
    let Some(host) = request_host(parts) else {
        return;
    };
    let view = site.s3.cluster.view();
    let name = bucket_name(host, site.root_domain.as_deref());
    if let Some(bucket) = view.meta.bucket(&name) {
        crate::cors::add_response_headers(
            bucket.cors.as_ref(),
            &parts.method,
            parts.headers.get(header::ORIGIN),
            response.headers_mut(),
        );
    }
}

/// The website's whole answer to one request (status, headers, body), before the headers
/// every response carries.
pub async fn respond(site: &Website, parts: &Parts, request_id: &str) -> Response<ResponseBody> {
    let visit = Visit {
        s3: &site.s3,
        parts,
        request_id,
        with_body: parts.method != Method::HEAD,
    };
    if !matches!(parts.method, Method::GET | Method::HEAD) {
        let mut page = visit.error(&S3Error::MethodNotAllowed, None);
        page.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return page;
    }
    let bucket = match site.bucket(parts).await {
        Ok(bucket) => bucket,
        Err(e) => return visit.error(&e, None),
    };
    match &bucket.website {
        Some(config) => visit.site(&bucket, config).await,
        None => visit.error(&S3Error::NoSuchWebsiteConfiguration, None),
    }
}

/// One GET or HEAD of a website.
struct Visit<'a> {
    s3: &'a S3,
    parts: &'a Parts,
    request_id: &'a str,
    with_body: bool,
}

impl Visit<'_> {
    /// Scheme and host redirects keep: `X-Forwarded-Proto` (behind a TLS proxy) or http.
    fn origin(&self) -> Origin<'_> {
        let forwarded = self
            .parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .filter(|p| *p == "https");
        Origin {
            protocol: forwarded.unwrap_or("http"),
            host: request_host(self.parts).unwrap_or_default(),
        }
    }

    /// The answer for a bucket with a website configuration.
    async fn site(&self, bucket: &Bucket, config: &WebsiteConfig) -> Response<ResponseBody> {
        let origin = self.origin();
        if let Some(all) = &config.redirect_all {
            let location = redirect_all_location(all, self.parts.uri.path(), origin);
            return self.redirect(StatusCode::MOVED_PERMANENTLY, &location);
        }
        let Some(key) = path_key(self.parts.uri.path()) else {
            let e = S3Error::InvalidArgument("the request path is not valid UTF-8".into());
            return self.error(&e, None);
        };
        if key.len() > 1024 {
            return self.error(&S3Error::KeyTooLongError, None);
        }
        if let Some(rule) = find_rule(&config.routing_rules, &key, None) {
            return self.rule_redirect(rule, &key);
        }
        let index = config.index_document.as_deref().unwrap_or(DEFAULT_INDEX);
        let target = routing::with_index(&key, index);
        match self.read(bucket, &target).await {
            Ok(Some(record)) => return self.object(&record, None),
            Ok(None) => {}
            Err(e) => return self.error(&e, Some(&target)),
        }
        if !key.is_empty() && target == key {
            // `dir` names a "directory" when `dir/<index>` exists.
            match self.read(bucket, &format!("{key}/{index}")).await {
                Ok(Some(_)) => {
                    let location = format!("{}/", url_path(&key));
                    return self.redirect(StatusCode::FOUND, &location);
                }
                Ok(None) => {}
                Err(e) => return self.error(&e, Some(&target)),
            }
        }
        let not_found = StatusCode::NOT_FOUND.as_u16();
        if let Some(rule) = find_rule(&config.routing_rules, &key, Some(not_found)) {
            return self.rule_redirect(rule, &key);
        }
        if let Some(fallback) = config.spa_fallback.as_deref()
            && !has_extension(&key)
        {
            match self.read(bucket, fallback).await {
                Ok(Some(record)) => return self.object(&record, None),
                Ok(None) => {}
                Err(e) => return self.error(&e, Some(fallback)),
            }
        }
        self.not_found(bucket, config, &target).await
    }

    /// The complete object at `key`, if any.
    async fn read(&self, bucket: &Bucket, key: &str) -> Result<Option<pb::ObjectRecord>, S3Error> {
        match readable_version(self.s3, bucket, key, None).await {
            Ok(record) => Ok(Some(record)),
            Err(S3Error::NoSuchKey | S3Error::NoSuchKeyDeleteMarker { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Serves an object as GetObject / HeadObject do (with the request's conditional and
    /// Range headers), or with `status` and none of them (the error document); an object
    /// with a website redirect location answers 301 instead.
    fn object(
        &self,
        record: &pb::ObjectRecord,
        status: Option<StatusCode>,
    ) -> Response<ResponseBody> {
        if status.is_none()
            && let Some(location) = record.headers.get(REDIRECT_LOCATION)
        {
            return self.redirect(StatusCode::MOVED_PERMANENTLY, location);
        }
        let no_conditions = HeaderMap::new();
        let headers = if status.is_some() {
            &no_conditions
        } else {
            &self.parts.headers
        };
        match serve_object(self.s3, record, headers, &Query::default(), self.with_body) {
            Ok(mut resp) => {
                if let Some(status) = status {
                    *resp.status_mut() = status;
                }
                resp
            }
            Err(S3Error::NotModified) => not_modified(record),
            Err(e) => self.error(&e, Some(&record.key)),
        }
    }

    /// A missing key: the error document with status 404, or the plain 404 page.
    async fn not_found(
        &self,
        bucket: &Bucket,
        config: &WebsiteConfig,
        key: &str,
    ) -> Response<ResponseBody> {
        let missing = Failure {
            error: &S3Error::NoSuchKey,
            key: Some(key),
        };
        let Some(document) = config.error_document.as_deref() else {
            return self.page(missing, None);
        };
        let document_error = match self.read(bucket, document).await {
            Ok(Some(record)) => return self.object(&record, Some(StatusCode::NOT_FOUND)),
            Ok(None) => S3Error::NoSuchKey,
            Err(e) => e,
        };
        self.page(
            missing,
            Some(Failure {
                error: &document_error,
                key: Some(document),
            }),
        )
    }

    fn rule_redirect(
        &self,
        rule: &cairn_proto::meta::RoutingRule,
        key: &str,
    ) -> Response<ResponseBody> {
        let status =
            StatusCode::from_u16(rule.redirect.code()).unwrap_or(StatusCode::MOVED_PERMANENTLY);
        self.redirect(status, &routing::rule_location(rule, key, self.origin()))
    }

    /// An empty redirect response.
    fn redirect(&self, status: StatusCode, location: &str) -> Response<ResponseBody> {
        match HeaderValue::from_str(location) {
            Ok(location) => Response::builder()
                .status(status)
                .header(header::LOCATION, location)
                .header(header::CONTENT_LENGTH, 0)
                .body(body::empty())
                .unwrap_or_else(|_| Response::new(body::empty())),
            Err(_) => {
                let e =
                    S3Error::InternalError(format!("cannot send redirect location {location:?}"));
                self.error(&e, None)
            }
        }
    }

    /// The HTML page of an error.
    fn error(&self, error: &S3Error, key: Option<&str>) -> Response<ResponseBody> {
        self.page(Failure { error, key }, None)
    }

    fn page(&self, failure: Failure<'_>, document: Option<Failure<'_>>) -> Response<ResponseBody> {
        let status = failure.error.status();
        let mut builder = Response::builder().status(status);
        for (name, value) in failure.error.headers() {
            builder = builder.header(name, value);
        }
        let html = error_page(failure, document, self.request_id);
        builder = builder
            .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
            .header(header::CONTENT_LENGTH, html.len());
        let body = if self.with_body {
            body::full(html)
        } else {
            body::empty()
        };
        builder
            .body(body)
            .unwrap_or_else(|_| Response::new(body::empty()))
    }
}

/// 304 with the validators of the object the client already has.
fn not_modified(record: &pb::ObjectRecord) -> Response<ResponseBody> {
    let mut resp = Response::builder().status(StatusCode::NOT_MODIFIED);
    if let Ok(etag) = HeaderValue::from_str(&record.etag) {
        resp = resp.header(header::ETAG, etag);
    }
    resp.body(body::empty())
        .unwrap_or_else(|_| Response::new(body::empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_from_host() {
        let root = Some("web.test");
        assert_eq!(bucket_name("blog.web.test:9001", root), "blog");
        assert_eq!(bucket_name("Blog.Web.Test", root), "blog");
        assert_eq!(bucket_name("my.blog.web.test.", root), "my.blog");
        assert_eq!(bucket_name("www.example.com", root), "www.example.com");
        assert_eq!(bucket_name("www.example.com:80", root), "www.example.com");
        assert_eq!(bucket_name("web.test", root), "web.test");
        assert_eq!(bucket_name("xweb.test", root), "xweb.test");
        assert_eq!(bucket_name("[::1]:9001", root), "[::1]:9001");
        assert_eq!(bucket_name("blog.web.test:80", None), "blog.web.test");
    }
}

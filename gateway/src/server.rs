//! The S3 listener: request id, tracing span, path-style / virtual-hosted bucket
//! resolution, authentication, routing, dispatch, and the one place errors become XML.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::auth::chunked::{self, TrailerSlot};
use crate::auth::{self, Authenticated, PayloadCheck, RequestParts};
use crate::body::{self, BodyStream, ResponseBody};
use crate::cors;
use crate::error::S3Error;
use crate::listener;
use crate::metrics;
use crate::s3::cors as s3_cors;
use crate::s3::post;
use crate::s3::router::{self, Endpoint, Query};
use crate::s3::{S3, S3Request};
use crate::xml;

/// Serves the S3 API on `listener` (over TLS with `tls`) until `stop`, then drains (see [`listener::serve`]).
pub async fn serve(
    s3: Arc<S3>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
) {
    listener::serve("s3", listener, tls, stop, move |req| {
        let s3 = s3.clone();
        async move { handle(&s3, req).await }
    })
    .await;
}

/// Serves one request; never fails (errors become S3 XML responses).
pub async fn handle(s3: &S3, req: Request<Incoming>) -> Response<ResponseBody> {
    let request_id = format!("{:016X}", rand::random::<u64>());
    let span = tracing::info_span!("s3", id = %request_id, method = %req.method(), path = %req.uri().path());
    async move {
        let started = std::time::Instant::now();
        let bytes_in = metrics::declared_length(req.headers());
        let mut op = "Unknown";
        let method = req.method().clone();
        let resource = req.uri().path().to_string();
        let origin = req.headers().get(http::header::ORIGIN).cloned();
        let cors_bucket = bucket_and_key(s3, req.uri(), req.headers())
            .ok()
            .and_then(|(bucket, _)| bucket);
        let mut response = match process(s3, req, &mut op).await {
            Ok(resp) => resp,
            Err(e) => error_response(&e, &method, &resource, &request_id),
        };
        // CORS headers on every answer (errors included, as S3), except the preflight's own.
        let view = s3.cluster.view();
        if method != Method::OPTIONS
            && let Some(bucket) = cors_bucket.and_then(|name| view.meta.bucket(&name))
        {
            cors::add_response_headers(
                bucket.cors.as_ref(),
                &method,
                origin.as_ref(),
                response.headers_mut(),
            );
        }
        let status = response.status();
        if status.is_server_error() {
            tracing::warn!(%status, "request failed");
        } else {
            tracing::debug!(%status, "request done");
        }
        let headers = response.headers_mut();
        if let Ok(v) = request_id.parse() {
            headers.insert("x-amz-request-id", v);
        }
        headers.insert(
            http::header::SERVER,
            http::HeaderValue::from_static("Cairn"),
        );
        let bytes_out = metrics::declared_length(response.headers());
        metrics::record(op, status.as_u16(), started.elapsed(), bytes_in, bytes_out);
        response
    }
    .instrument(span)
    .await
}

/// Renders an error as the AWS `<Error>` document (no body for HEAD).
pub fn error_response(
    e: &S3Error,
    method: &Method,
    resource: &str,
    request_id: &str,
) -> Response<ResponseBody> {
    let status = e.status();
    let mut builder = Response::builder().status(status);
    for (name, value) in e.headers() {
        builder = builder.header(name, value);
    }
    if status == StatusCode::NOT_MODIFIED || *method == Method::HEAD {
        return builder
            .body(body::empty())
            .unwrap_or_else(|_| Response::new(body::empty()));
    }
    let doc = xml::error_xml(e.code(), &e.message(), resource, request_id, &[]);
    builder = builder
        .header(http::header::CONTENT_TYPE, "application/xml")
        .header(http::header::CONTENT_LENGTH, doc.len());
    builder
        .body(body::full(doc))
        .unwrap_or_else(|_| Response::new(body::empty()))
}

/// Splits the request into (bucket, key): virtual-hosted when the Host is
/// `<bucket>.<root domain>`, else path-style `/<bucket>/<key>`.
fn bucket_and_key(
    s3: &S3,
    uri: &http::Uri,
    headers: &HeaderMap,
) -> Result<(Option<String>, Option<String>), S3Error> {
    let path = percent_encoding::percent_decode_str(uri.path())
        .decode_utf8()
        .map_err(|_| S3Error::InvalidArgument("the request path is not valid UTF-8".into()))?;
    let path = path.strip_prefix('/').unwrap_or(&path);
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.host());
    let host = host.map(|h| h.rsplit_once(':').map_or(h, |(name, _)| name));
    let vhost_bucket = match (&s3.config.root_domain, host) {
        (Some(root), Some(host)) => host
            .strip_suffix(root.as_str())
            .and_then(|b| b.strip_suffix('.'))
            .filter(|b| !b.is_empty()),
        _ => None,
    };
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Ok(match vhost_bucket {
        Some(bucket) => (Some(bucket.to_string()), non_empty(path)),
        None => match path.split_once('/') {
            Some((bucket, key)) => (non_empty(bucket), non_empty(key)),
            None => (non_empty(path), None),
        },
    })
}

/// Serves one request; `op` is set to the operation's name as soon as it is routed.
async fn process(
    s3: &S3,
    req: Request<Incoming>,
    op: &mut &'static str,
) -> Result<Response<ResponseBody>, S3Error> {
    if !s3.cluster.fresh() {
        // A stale cache might still hold revoked keys or policies: fail closed.
        return Err(S3Error::ServiceUnavailable(
            "the gateway has lost contact with the cluster metadata".into(),
        ));
    }
    let (parts, incoming) = req.into_parts();
    let (bucket_name, key) = bucket_and_key(s3, &parts.uri, &parts.headers)?;
    if key.as_ref().is_some_and(|k| k.len() > 1024) {
        return Err(S3Error::KeyTooLongError);
    }
    let query = Query::parse(parts.uri.query());
    let routed = router::route(
        &parts.method,
        bucket_name.as_deref(),
        key.as_deref(),
        &query,
    );
    if let Ok(endpoint) = &routed {
        *op = endpoint.name();
    }
    // Served without SigV4: a preflight is anonymous, a POST form carries its own signature.
    match (&routed, &bucket_name) {
        (Ok(Endpoint::CorsPreflight), _) => {
            return s3_cors::preflight(s3, bucket_name.as_deref(), &parts.headers).await;
        }
        (Ok(Endpoint::PostObject), Some(name)) => {
            let body = body::incoming_stream(incoming);
            return post::post_object(s3, name, &parts.headers, body).await;
        }
        _ => {}
    }
    let auth = authenticate(s3, &parts.method, &parts.uri, &parts.headers).await?;
    let mut endpoint = routed?;
    if endpoint == router::Endpoint::PutObject && parts.headers.contains_key("x-amz-copy-source") {
        endpoint = router::Endpoint::CopyObject;
    }
    if endpoint == router::Endpoint::UploadPart && parts.headers.contains_key("x-amz-copy-source") {
        endpoint = router::Endpoint::UploadPartCopy;
    }
    *op = endpoint.name();
    let access_key = s3
        .access_key(&auth.access_key_id)
        .await?
        .ok_or(S3Error::InvalidAccessKeyId)?;
    let bucket = s3
        .authorize(endpoint, &access_key, bucket_name.as_deref())
        .await?;
    let (body, trailers) = request_body(incoming, &parts.headers, auth.payload)?;
    tracing::debug!(op = endpoint.name(), "dispatch");
    s3.dispatch(S3Request {
        method: parts.method,
        uri: parts.uri,
        headers: parts.headers,
        query,
        endpoint,
        bucket_name,
        key,
        body,
        trailers,
        access_key,
        bucket,
    })
    .await
}

/// Authenticates with SigV4 (header or presigned); unknown keys are confirmed with a
/// linearizable metadata read before `InvalidAccessKeyId`. Anonymous requests are refused.
async fn authenticate(
    s3: &S3,
    method: &Method,
    uri: &http::Uri,
    headers: &HeaderMap,
) -> Result<Authenticated, S3Error> {
    let parts = RequestParts {
        method,
        uri,
        headers,
    };
    let attempt = |view: &crate::cluster::MetaView| {
        auth::authenticate(&parts, &s3.config.region, chrono::Utc::now(), |id| {
            view.meta.keys.get(id).map(|k| k.secret.clone())
        })
    };
    let result = match attempt(&s3.cluster.view()) {
        Err(S3Error::InvalidAccessKeyId) => attempt(&s3.cluster.refresh().await?),
        other => other,
    };
    result?.ok_or(S3Error::AccessDenied)
}

/// The request body as the handlers see it: de-chunked (aws-chunked, signatures verified)
/// and checked against the signed payload hash.
fn request_body(
    incoming: Incoming,
    headers: &HeaderMap,
    payload: PayloadCheck,
) -> Result<(BodyStream, TrailerSlot), S3Error> {
    let raw = body::incoming_stream(incoming);
    let decoded_length = headers
        .get("x-amz-decoded-content-length")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| S3Error::InvalidArgument("bad x-amz-decoded-content-length".into()))
        })
        .transpose()?;
    Ok(match payload {
        PayloadCheck::Unsigned => (raw, TrailerSlot::default()),
        PayloadCheck::Sha256(expected) => (verify_sha256(raw, expected), TrailerSlot::default()),
        PayloadCheck::StreamingSigned(ctx) => chunked::decode(raw, Some(ctx), decoded_length),
        PayloadCheck::StreamingUnsigned => chunked::decode(raw, None, decoded_length),
    })
}

/// Passes the body through, failing at its end if its SHA-256 differs from the signed one
/// (handlers make nothing visible before the body has ended cleanly).
fn verify_sha256(body: BodyStream, expected: [u8; 32]) -> BodyStream {
    let mut hasher = Some(Sha256::new());
    let checked = body
        .map(Some)
        .chain(futures::stream::once(async { None }))
        .filter_map(move |item| {
            let out = match item {
                Some(Ok(chunk)) => {
                    if let Some(h) = hasher.as_mut() {
                        h.update(&chunk);
                    }
                    Some(Ok::<Bytes, S3Error>(chunk))
                }
                Some(Err(e)) => Some(Err(e)),
                None => {
                    let actual: [u8; 32] = hasher
                        .take()
                        .map(|h| h.finalize().into())
                        .unwrap_or_default();
                    auth::verify_payload_sha256(&expected, &actual)
                        .err()
                        .map(Err)
                }
            };
            async move { out }
        });
    Box::pin(checked)
}

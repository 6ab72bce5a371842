//! Serving HTTP connections on a listener (the S3 and website endpoints), plain or over TLS,
//! until told to stop, then draining: the listener closes (new connections are refused), idle
//! keep-alive connections close, answers in flight carry `Connection: close` and finish.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use http::{HeaderValue, Request, Response, Version};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::body::ResponseBody;

/// Pause after a failed accept (out of file descriptors and the like) instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections on `listener` (TLS first when `tls` is given) and answers each request
/// with `handler`, HTTP/1.1 or HTTP/2, until `stop` is cancelled; then closes the listener and
/// returns once every connection has finished its requests in flight.
pub async fn serve<H, F>(
    name: &'static str,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
    handler: H,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    let connections = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        // Taken before the task starts, so a drain that begins now still waits for it.
        let watcher = connections.watcher();
        let (handler, stop, tls) = (handler.clone(), stop.clone(), tls.clone());
        tokio::spawn(async move {
            let ended = match tls {
                None => serve_connection(stream, watcher, stop, handler).await,
                Some(tls) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                        Ok(Ok(stream)) => serve_connection(stream, watcher, stop, handler).await,
                        Ok(Err(e)) => Err(format!("TLS handshake failed: {e}")),
                        Err(_) => Err(format!("no TLS handshake within {HANDSHAKE_TIMEOUT:?}")),
                    }
                }
            };
            if let Err(e) = ended {
                tracing::debug!(listener = name, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let open = connections.count();
    if open > 0 {
        tracing::info!(listener = name, connections = open, "draining connections");
    }
    connections.shutdown().await;
    tracing::debug!(listener = name, "drained");
}

/// Serves one connection until the client closes it or, once `stop` is cancelled, its
/// requests in flight are answered.
async fn serve_connection<I, H, F>(
    io: I,
    watcher: Watcher,
    stop: CancellationToken,
    handler: H,
) -> Result<(), String>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    let service = service_fn(move |req: Request<Incoming>| {
        let (handler, stop) = (handler.clone(), stop.clone());
        async move {
            let version = req.version();
            let mut response = handler(req).await;
            if stop.is_cancelled() {
                close_after(version, &mut response);
            }
            Ok::<_, Infallible>(response)
        }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(io), service);
    watcher.watch(conn).await.map_err(|e| e.to_string())
}

/// Tells an HTTP/1 client not to send more requests on this connection (HTTP/2 has GOAWAY).
fn close_after(version: Version, response: &mut Response<ResponseBody>) {
    if version < Version::HTTP_2 {
        response
            .headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
}

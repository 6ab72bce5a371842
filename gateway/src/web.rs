//! The website endpoint. Buckets get website configurations with the static-website
//! issue; until then no bucket is a website and every request answers 404.

use std::convert::Infallible;
use std::sync::Arc;

use http::{Response, StatusCode};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::body::{self, ResponseBody};
use crate::cluster::Cluster;

/// Shared state of the website endpoint.
pub struct Website {
    pub cluster: Cluster,
    pub root_domain: Option<String>,
}

/// Accepts website connections forever.
pub async fn serve(site: Arc<Website>, listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let site = site.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_req| {
                let _site = site.clone();
                async move { Ok::<_, Infallible>(not_a_website()) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn not_a_website() -> Response<ResponseBody> {
    let page = "<html><head><title>404 Not Found</title></head><body><h1>404 Not Found</h1>\
                <ul><li>Code: NoSuchWebsiteConfiguration</li></ul></body></html>";
    Response::builder()
        .status(StatusCode::NOT_FOUND)
        .header(http::header::CONTENT_TYPE, "text/html; charset=utf-8")
        .body(body::full(page))
        .unwrap_or_else(|_| Response::new(body::empty()))
}

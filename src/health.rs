//! The health and metrics listener every role runs: `GET /livez` (process alive), `GET
//! /readyz` (the role can serve) and `GET /metrics` (Prometheus text format).

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// What a role tells the health listener.
pub struct Probe {
    /// Role name, a label of `cairn_up`.
    pub role: &'static str,
    /// Whether the role can serve requests now.
    pub ready: Box<dyn Fn() -> bool + Send + Sync>,
    /// Appends role-specific metrics (Prometheus text format) to the buffer.
    pub metrics: Box<dyn Fn(&mut Metrics) + Send + Sync>,
}

/// One labelled series of a histogram.
pub struct HistogramSeries {
    /// `key="value"` list (values already escaped), may be empty.
    pub labels: String,
    /// Cumulative `(le, count)` buckets, `+Inf` (`f64::INFINITY`) last.
    pub buckets: Vec<(f64, u64)>,
    pub sum: f64,
    pub count: u64,
}

/// A Prometheus text-format buffer.
#[derive(Default)]
pub struct Metrics(String);

impl Metrics {
    /// One sample of a metric, with its HELP and TYPE lines.
    pub fn metric(&mut self, name: &str, kind: &str, help: &str, labels: &str, value: f64) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{labels}}} {value}");
        }
    }

    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.metric(name, "gauge", help, "", value);
    }

    /// A counter without labels (`name` ends in `_total`).
    pub fn counter(&mut self, name: &str, help: &str, value: f64) {
        self.metric(name, "counter", help, "", value);
    }

    /// A metric with several labelled samples: HELP and TYPE once, then one line each.
    /// Labels are `key="value"` lists (values already escaped). Nothing for no samples.
    pub fn family(&mut self, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
        if samples.is_empty() {
            return;
        }
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(self.0, "{name}{{{labels}}} {value}");
        }
    }

    /// A histogram family: HELP and TYPE once, then buckets, sum and count per series.
    pub fn histogram(&mut self, name: &str, help: &str, series: &[HistogramSeries]) {
        if series.is_empty() {
            return;
        }
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} histogram");
        for h in series {
            let (labels, sep) = (&h.labels, if h.labels.is_empty() { "" } else { "," });
            for (le, n) in &h.buckets {
                let le = if le.is_infinite() {
                    "+Inf".to_string()
                } else {
                    le.to_string()
                };
                let _ = writeln!(self.0, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {n}");
            }
            let _ = writeln!(self.0, "{name}_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(self.0, "{name}_count{{{labels}}} {}", h.count);
        }
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

struct Shared {
    probe: Probe,
    started: Instant,
    start_unix: f64,
}

/// Binds `listen`, prints `listening http=ADDR` and serves in the background.
pub async fn serve(listen: &str, probe: Probe) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen} (http): {e}"))?;
    let addr = listener.local_addr()?;
    println!("listening http={addr}");
    let start_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let shared = Arc::new(Shared {
        probe,
        started: Instant::now(),
        start_unix,
    });
    tokio::spawn(accept_loop(listener, shared));
    Ok(addr)
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "health listener accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(&shared, &req)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "health connection");
            }
        });
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn handle(shared: &Shared, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            PLAIN,
            "method not allowed\n".into(),
        );
    }
    match req.uri().path() {
        "/livez" => text(StatusCode::OK, PLAIN, "ok\n".into()),
        "/readyz" => {
            if (shared.probe.ready)() {
                text(StatusCode::OK, PLAIN, "ok\n".into())
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, PLAIN, "not ready\n".into())
            }
        }
        "/metrics" => text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            render_metrics(shared),
        ),
        _ => text(StatusCode::NOT_FOUND, PLAIN, "not found\n".into()),
    }
}

fn render_metrics(shared: &Shared) -> String {
    let mut m = Metrics::default();
    let role = shared.probe.role;
    let version = env!("CARGO_PKG_VERSION");
    m.metric(
        "cairn_up",
        "gauge",
        "1 while the process runs.",
        &format!("role=\"{role}\",version=\"{version}\""),
        1.0,
    );
    m.gauge(
        "cairn_ready",
        "1 when the role can serve requests (as /readyz).",
        if (shared.probe.ready)() { 1.0 } else { 0.0 },
    );
    m.gauge(
        "process_start_time_seconds",
        "Start time of the process since the unix epoch in seconds.",
        shared.start_unix,
    );
    m.gauge(
        "cairn_uptime_seconds",
        "Seconds since the process started.",
        shared.started.elapsed().as_secs_f64(),
    );
    if let Some(rss) = resident_memory_bytes() {
        m.gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            rss as f64,
        );
    }
    (shared.probe.metrics)(&mut m);
    m.into_string()
}

/// Resident set size from `/proc/self/status` (Linux only).
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line["VmRSS:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_histograms_have_one_header() {
        let mut m = Metrics::default();
        m.family(
            "cairn_r_total",
            "counter",
            "R.",
            &[("op=\"A\"".into(), 1.0), ("op=\"B\"".into(), 2.0)],
        );
        m.histogram(
            "cairn_l_seconds",
            "L.",
            &[HistogramSeries {
                labels: "op=\"A\"".into(),
                buckets: vec![(0.5, 1), (f64::INFINITY, 2)],
                sum: 1.5,
                count: 2,
            }],
        );
        m.family("cairn_none", "gauge", "Nothing.", &[]);
        assert_eq!(
            m.into_string(),
            "# HELP cairn_r_total R.\n# TYPE cairn_r_total counter\n\
             cairn_r_total{op=\"A\"} 1\ncairn_r_total{op=\"B\"} 2\n\
             # HELP cairn_l_seconds L.\n# TYPE cairn_l_seconds histogram\n\
             cairn_l_seconds_bucket{op=\"A\",le=\"0.5\"} 1\n\
             cairn_l_seconds_bucket{op=\"A\",le=\"+Inf\"} 2\n\
             cairn_l_seconds_sum{op=\"A\"} 1.5\ncairn_l_seconds_count{op=\"A\"} 2\n"
        );
    }

    #[test]
    fn metrics_render_in_text_format() {
        let mut m = Metrics::default();
        m.gauge("cairn_x", "An x.", 3.0);
        m.metric("cairn_y", "counter", "A y.", "a=\"b\"", 1.5);
        assert_eq!(
            m.into_string(),
            "# HELP cairn_x An x.\n# TYPE cairn_x gauge\ncairn_x 3\n\
             # HELP cairn_y A y.\n# TYPE cairn_y counter\ncairn_y{a=\"b\"} 1.5\n"
        );
    }
}

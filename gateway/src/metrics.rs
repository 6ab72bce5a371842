//! Request metrics of the S3 endpoint, process-wide: requests by operation and status,
//! latency histograms by operation (time to the response head) and body bytes in and out
//! (from `Content-Length` / `x-amz-decoded-content-length`). Rendered by the health listener.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::HeaderMap;

/// Upper bounds (seconds) of the latency histogram buckets; `+Inf` is implied.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// One operation's latency histogram: per-bucket (not cumulative) counts, sum and count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Counts per bucket of [`LATENCY_BUCKETS`], then one for `+Inf`.
    pub buckets: [u64; LATENCY_BUCKETS.len() + 1],
    pub sum_seconds: f64,
    pub count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let i = LATENCY_BUCKETS
            .iter()
            .position(|le| seconds <= *le)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i] += 1;
        self.sum_seconds += seconds;
        self.count += 1;
    }

    /// `(le, cumulative count)` per bucket, `+Inf` last (`f64::INFINITY`).
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let bounds = LATENCY_BUCKETS.iter().copied().chain([f64::INFINITY]);
        let mut total = 0;
        bounds
            .zip(self.buckets)
            .map(|(le, n)| {
                total += n;
                (le, total)
            })
            .collect()
    }
}

/// A copy of the counters.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// `(operation, status) -> requests`.
    pub requests: BTreeMap<(&'static str, u16), u64>,
    pub latency: BTreeMap<&'static str, Histogram>,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

struct Inner {
    requests: BTreeMap<(&'static str, u16), u64>,
    latency: BTreeMap<&'static str, Histogram>,
}

static INNER: Mutex<Inner> = Mutex::new(Inner {
    requests: BTreeMap::new(),
    latency: BTreeMap::new(),
});
static BYTES_IN: AtomicU64 = AtomicU64::new(0);
static BYTES_OUT: AtomicU64 = AtomicU64::new(0);

/// The body length a request or response declares.
pub fn declared_length(headers: &HeaderMap) -> u64 {
    ["x-amz-decoded-content-length", "content-length"]
        .iter()
        .find_map(|h| headers.get(*h)?.to_str().ok()?.trim().parse().ok())
        .unwrap_or(0)
}

/// Records one answered request.
pub fn record(op: &'static str, status: u16, elapsed: Duration, bytes_in: u64, bytes_out: u64) {
    BYTES_IN.fetch_add(bytes_in, Ordering::Relaxed);
    BYTES_OUT.fetch_add(bytes_out, Ordering::Relaxed);
    let mut inner = INNER.lock().unwrap_or_else(|e| e.into_inner());
    *inner.requests.entry((op, status)).or_default() += 1;
    inner
        .latency
        .entry(op)
        .or_default()
        .observe(elapsed.as_secs_f64());
}

/// The counters so far.
pub fn snapshot() -> Snapshot {
    let inner = INNER.lock().unwrap_or_else(|e| e.into_inner());
    Snapshot {
        requests: inner.requests.clone(),
        latency: inner.latency.clone(),
        bytes_in: BYTES_IN.load(Ordering::Relaxed),
        bytes_out: BYTES_OUT.load(Ordering::Relaxed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut h = Histogram::default();
        for s in [0.0005, 0.003, 0.003, 20.0] {
            h.observe(s);
        }
        let c = h.cumulative();
        assert_eq!(c[0], (0.001, 1));
        assert_eq!(c[2], (0.005, 3));
        assert_eq!(c.last(), Some(&(f64::INFINITY, 4)));
        assert_eq!(h.count, 4);
        assert!((h.sum_seconds - 20.0065).abs() < 1e-9);
    }

    #[test]
    fn declared_length_prefers_the_decoded_length() {
        let mut h = HeaderMap::new();
        assert_eq!(declared_length(&h), 0);
        h.insert("content-length", "100".parse().unwrap());
        assert_eq!(declared_length(&h), 100);
        h.insert("x-amz-decoded-content-length", "64".parse().unwrap());
        assert_eq!(declared_length(&h), 64);
    }
}

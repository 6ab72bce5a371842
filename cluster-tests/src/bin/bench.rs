//! Throughput benchmark: `cargo run --release -p cluster-tests --bin bench -- [--quick]`.
//!
//! Without `--endpoint` it starts a release `cairn server` on loopback. Every phase is bounded
//! in time and count. Also measures the raw disk (files + fsync per object) as a baseline and
//! prints cairn/raw ratios.

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use clap::Parser;
use cluster_tests::data::shared_byte_stream;
use cluster_tests::{Profile, Server, ServerOptions, random_bytes, s3_client};
use futures::StreamExt;
use tokio::sync::Mutex;

#[derive(Parser, Debug)]
#[command(about = "Cairn S3 throughput benchmark (loopback only)")]
struct Args {
    /// S3 endpoint of a running cairn (default: start a release `cairn server`).
    #[arg(long)]
    endpoint: Option<String>,
    #[arg(long, requires = "endpoint")]
    access_key: Option<String>,
    #[arg(long, requires = "endpoint")]
    secret_key: Option<String>,
    /// Short phases (about 1.5 s each) and fewer objects.
    #[arg(long)]
    quick: bool,
    /// Use a debug build of cairn when starting one (default: release).
    #[arg(long)]
    debug: bool,
}

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

struct Limits {
    phase: Duration,
    small_ops: u64,
    mib_ops: u64,
    big_ops: u64,
    list_keys: u64,
}

/// Result of one phase.
struct Phase {
    name: String,
    ops: u64,
    bytes: u64,
    secs: f64,
    lat_ms: Vec<f64>,
}

impl Phase {
    fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.secs
    }
    fn mib_per_sec(&self) -> f64 {
        self.bytes as f64 / MIB as f64 / self.secs
    }
    fn pct(&self, p: f64) -> f64 {
        if self.lat_ms.is_empty() {
            return f64::NAN;
        }
        let mut v = self.lat_ms.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        v[((v.len() - 1) as f64 * p).round() as usize]
    }
}

/// Runs `op(i)` with `concurrency` in flight until `max_ops` or `limit` elapsed; each op
/// returns the bytes it moved.
async fn run_phase<F, Fut>(
    name: &str,
    concurrency: usize,
    max_ops: u64,
    limit: Duration,
    op: F,
) -> Result<Phase>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<u64>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let lat = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let deadline = start + limit;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (op, next, bytes, lat) = (op.clone(), next.clone(), bytes.clone(), lat.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            let mut done = 0u64;
            loop {
                if Instant::now() >= deadline {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= max_ops {
                    break;
                }
                let t = Instant::now();
                let n = op(i).await?;
                mine.push(t.elapsed().as_secs_f64() * 1000.0);
                bytes.fetch_add(n, Ordering::Relaxed);
                done += 1;
            }
            lat.lock().await.extend(mine);
            anyhow::Ok(done)
        }));
    }
    let mut ops = 0;
    for t in tasks {
        ops += t.await??;
    }
    let secs = start.elapsed().as_secs_f64();
    let lat_ms = std::mem::take(&mut *lat.lock().await);
    Ok(Phase {
        name: name.to_string(),
        ops,
        bytes: bytes.load(Ordering::Relaxed),
        secs,
        lat_ms,
    })
}

fn print_header() {
    println!(
        "{:<34} {:>8} {:>10} {:>7} {:>11} {:>10} {:>8} {:>8}",
        "phase", "ops", "MiB", "secs", "ops/s", "MiB/s", "p50 ms", "p99 ms"
    );
}

fn print_phase(p: &Phase) {
    println!(
        "{:<34} {:>8} {:>10.1} {:>7.2} {:>11.1} {:>10.1} {:>8.2} {:>8.2}",
        p.name,
        p.ops,
        p.bytes as f64 / MIB as f64,
        p.secs,
        p.ops_per_sec(),
        p.mib_per_sec(),
        p.pct(0.5),
        p.pct(0.99)
    );
    let _ = std::io::stdout().flush();
}

/// Raw disk baseline: each object is a file written, fsynced, renamed into place, with the
/// directory fsynced (what a durable store must at least do).
async fn raw_phase(
    name: &str,
    dir: PathBuf,
    data: Bytes,
    concurrency: usize,
    max_ops: u64,
    limit: Duration,
) -> Result<Phase> {
    run_phase(name, concurrency, max_ops, limit, move |i| {
        let dir = dir.clone();
        let data = data.clone();
        async move {
            tokio::task::spawn_blocking(move || -> Result<u64> {
                let tmp = dir.join(format!("{i}.tmp"));
                let dst = dir.join(format!("{i}.obj"));
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(&data)?;
                f.sync_all()?;
                std::fs::rename(&tmp, &dst)?;
                std::fs::File::open(&dir)?.sync_all()?;
                Ok(data.len() as u64)
            })
            .await?
        }
    })
    .await
}

#[allow(clippy::too_many_arguments)]
async fn put_phase(
    s3: &Client,
    name: &str,
    bucket: &str,
    prefix: &str,
    data: Bytes,
    streaming: bool,
    concurrency: usize,
    max_ops: u64,
    limit: Duration,
) -> Result<Phase> {
    let (s3, bucket, prefix) = (s3.clone(), bucket.to_string(), prefix.to_string());
    run_phase(name, concurrency, max_ops, limit, move |i| {
        let (s3, bucket, data) = (s3.clone(), bucket.clone(), data.clone());
        let key = format!("{prefix}/{i:08}");
        async move {
            let len = data.len() as u64;
            let body = if streaming {
                shared_byte_stream(data)
            } else {
                ByteStream::from(data)
            };
            s3.put_object()
                .bucket(&bucket)
                .key(&key)
                .body(body)
                .send()
                .await
                .with_context(|| format!("PUT {key}"))?;
            Ok(len)
        }
    })
    .await
}

async fn get_phase(
    s3: &Client,
    name: &str,
    bucket: &str,
    prefix: &str,
    count: u64,
    concurrency: usize,
    limit: Duration,
) -> Result<Phase> {
    if count == 0 {
        bail!("{name}: nothing to read");
    }
    let (s3, bucket, prefix) = (s3.clone(), bucket.to_string(), prefix.to_string());
    run_phase(name, concurrency, u64::MAX, limit, move |i| {
        let (s3, bucket) = (s3.clone(), bucket.clone());
        let key = format!("{prefix}/{:08}", i % count);
        async move {
            let out = s3
                .get_object()
                .bucket(&bucket)
                .key(&key)
                .send()
                .await
                .with_context(|| format!("GET {key}"))?;
            let mut body = out.body;
            let mut n = 0u64;
            while let Some(chunk) = body.try_next().await? {
                n += chunk.len() as u64;
            }
            Ok(n)
        }
    })
    .await
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let limits = if args.quick {
        Limits {
            phase: Duration::from_millis(1500),
            small_ops: 5_000,
            mib_ops: 200,
            big_ops: 4,
            list_keys: 2_000,
        }
    } else {
        Limits {
            phase: Duration::from_secs(5),
            small_ops: 50_000,
            mib_ops: 2_000,
            big_ops: 16,
            list_keys: 10_000,
        }
    };

    let server;
    let s3 = match &args.endpoint {
        Some(endpoint) => {
            server = None;
            s3_client(
                endpoint,
                args.access_key.as_deref().context("--access-key")?,
                args.secret_key.as_deref().context("--secret-key")?,
            )
        }
        None => {
            let profile = if args.debug {
                Profile::Debug
            } else {
                Profile::Release
            };
            let s = Server::start_with(ServerOptions {
                profile,
                ..Default::default()
            });
            println!("started cairn server ({profile:?}) at {}", s.s3_url());
            let c = s.client();
            server = Some(s);
            c
        }
    };

    let bucket = format!("bench-{:08x}", rand::random::<u32>());
    s3.create_bucket().bucket(&bucket).send().await?;
    let small = Bytes::from(random_bytes(4 * KIB));
    let mib = Bytes::from(random_bytes(MIB));
    let big = Bytes::from(random_bytes(64 * MIB));
    let mut phases = Vec::new();
    print_header();

    let p = put_phase(
        &s3,
        "PUT 4 KiB (32 in flight)",
        &bucket,
        "small",
        small.clone(),
        false,
        32,
        limits.small_ops,
        limits.phase,
    )
    .await?;
    print_phase(&p);
    let small_count = p.ops;
    phases.push(p);

    let p = get_phase(
        &s3,
        "GET 4 KiB (32 in flight)",
        &bucket,
        "small",
        small_count,
        32,
        limits.phase,
    )
    .await?;
    print_phase(&p);
    phases.push(p);

    let p = put_phase(
        &s3,
        "PUT 1 MiB (8 in flight)",
        &bucket,
        "mib",
        mib.clone(),
        true,
        8,
        limits.mib_ops,
        limits.phase,
    )
    .await?;
    print_phase(&p);
    phases.push(p);

    let p = put_phase(
        &s3,
        "PUT 64 MiB (4 in flight)",
        &bucket,
        "big",
        big.clone(),
        true,
        4,
        limits.big_ops,
        limits.phase * 3,
    )
    .await?;
    print_phase(&p);
    let big_count = p.ops;
    phases.push(p);

    let p = get_phase(
        &s3,
        "GET 64 MiB (4 in flight)",
        &bucket,
        "big",
        big_count,
        4,
        limits.phase * 2,
    )
    .await?;
    print_phase(&p);
    phases.push(p);

    // Listing: a bucket of `list_keys` empty objects, listed in pages of 1000.
    let list_bucket = format!("{bucket}-list");
    s3.create_bucket().bucket(&list_bucket).send().await?;
    let fill = Instant::now();
    let results: Vec<Result<()>> = futures::stream::iter(0..limits.list_keys)
        .map(|i| {
            let (s3, b) = (s3.clone(), list_bucket.clone());
            async move {
                s3.put_object()
                    .bucket(&b)
                    .key(format!("dir{:02}/key-{i:08}", i % 10))
                    .body(ByteStream::from_static(b""))
                    .send()
                    .await?;
                Ok(())
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<_>>>()?;
    println!(
        "(filled {} keys for listing in {:.1} s)",
        limits.list_keys,
        fill.elapsed().as_secs_f64()
    );
    let expected = limits.list_keys;
    let (s3l, lb) = (s3.clone(), list_bucket.clone());
    let p = run_phase(
        "LIST all keys, pages of 1000 (1)",
        1,
        u64::MAX,
        limits.phase,
        move |_| {
            let (s3, b) = (s3l.clone(), lb.clone());
            async move {
                let mut token = None;
                let mut n = 0u64;
                loop {
                    let page = s3
                        .list_objects_v2()
                        .bucket(&b)
                        .max_keys(1000)
                        .set_continuation_token(token)
                        .send()
                        .await?;
                    n += page.contents().len() as u64;
                    token = page.next_continuation_token().map(str::to_string);
                    if token.is_none() {
                        break;
                    }
                }
                if n != expected {
                    bail!("listed {n} keys, expected {expected}");
                }
                Ok(n)
            }
        },
    )
    .await?;
    // "bytes" of this phase are keys: report keys/s.
    println!(
        "{:<34} {:>8} {:>10} {:>7.2} {:>11.1} {:>10} {:>8.2} {:>8.2}   ({:.0} keys/s)",
        p.name,
        p.ops,
        "-",
        p.secs,
        p.ops_per_sec(),
        "-",
        p.pct(0.5),
        p.pct(0.99),
        p.bytes as f64 / p.secs
    );
    phases.push(p);

    // Raw disk baseline, in the same file system as the server's data dir when we run it.
    let base = match &server {
        Some(s) => s.data_dir().parent().map(|p| p.to_path_buf()),
        None => None,
    };
    let raw_dir = match base {
        Some(b) => tempfile::tempdir_in(b)?,
        None => tempfile::tempdir()?,
    };
    let d1 = raw_dir.path().join("small");
    let d2 = raw_dir.path().join("big");
    std::fs::create_dir_all(&d1)?;
    std::fs::create_dir_all(&d2)?;
    let raw_small = raw_phase(
        "raw fsync 4 KiB (32 in flight)",
        d1,
        small.clone(),
        32,
        limits.small_ops,
        limits.phase,
    )
    .await?;
    print_phase(&raw_small);
    let raw_big = raw_phase(
        "raw fsync 64 MiB (4 in flight)",
        d2,
        big.clone(),
        4,
        limits.big_ops,
        limits.phase * 3,
    )
    .await?;
    print_phase(&raw_big);
    drop(raw_dir);

    println!();
    let put_small = &phases[0];
    let put_big = &phases[3];
    println!(
        "cairn/raw  PUT 4 KiB:  {:.3}  ({:.0} vs {:.0} ops/s)",
        put_small.ops_per_sec() / raw_small.ops_per_sec(),
        put_small.ops_per_sec(),
        raw_small.ops_per_sec()
    );
    println!(
        "cairn/raw  PUT 64 MiB: {:.3}  ({:.1} vs {:.1} MiB/s)",
        put_big.mib_per_sec() / raw_big.mib_per_sec(),
        put_big.mib_per_sec(),
        raw_big.mib_per_sec()
    );
    if let Some(s) = &server {
        println!(
            "server peak RSS (VmHWM): {:.1} MiB",
            s.peak_rss_bytes() as f64 / MIB as f64
        );
    }
    Ok(())
}

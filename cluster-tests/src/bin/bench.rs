//! Throughput benchmark: `cargo run --release -p cluster-tests --bin bench -- [--quick]`.
//!
//! Without `--endpoint` it starts a release `cairn server` on loopback. Every phase is bounded
//! in time and count. Also measures the raw disk (files + fsync per object) as a baseline and
//! prints cairn/raw ratios.
//!
//! `--seaweedfs` also starts SeaweedFS (`weed mini` from `PATH`) on free ports in a temp dir
//! and runs every phase against cairn and weed back to back with the same client settings
//! (alternating per phase, `--rounds` times), then prints a comparison table with the
//! cairn/weed ratio per phase. `--phases` picks a subset of the phases. The page cache is
//! flushed (`sync`) before every phase, so write-back left by one server is not paid by the
//! next. The `srv cpu` column is the CPU time the server process used during the phase.

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
use cluster_tests::{
    Profile, Server, ServerOptions, Weed, random_bytes, s3_client, weed_available,
};
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
    /// Phases to run, comma separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "put4k,get4k,put1m,put64m,get64m,list,raw"
    )]
    phases: Vec<PhaseId>,
    /// Also start SeaweedFS (`weed mini`) and compare cairn with it phase by phase.
    #[arg(long)]
    seaweedfs: bool,
    /// The `weed` binary for `--seaweedfs`.
    #[arg(long, default_value = "weed")]
    weed_bin: String,
    /// Runs of every phase per server (alternating servers); the table shows the median.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=9))]
    rounds: u32,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum PhaseId {
    Put4k,
    Get4k,
    Put1m,
    Put64m,
    Get64m,
    List,
    Raw,
}

impl PhaseId {
    fn title(self) -> &'static str {
        match self {
            PhaseId::Put4k => "PUT 4 KiB (32 in flight)",
            PhaseId::Get4k => "GET 4 KiB (32 in flight)",
            PhaseId::Put1m => "PUT 1 MiB (8 in flight)",
            PhaseId::Put64m => "PUT 64 MiB (4 in flight)",
            PhaseId::Get64m => "GET 64 MiB (4 in flight)",
            PhaseId::List => "LIST all keys, pages of 1000 (1)",
            PhaseId::Raw => "raw fsync",
        }
    }

    /// The figure compared between servers, and its unit.
    fn metric(self, p: &Phase) -> (f64, &'static str) {
        match self {
            PhaseId::Put4k | PhaseId::Get4k => (p.ops_per_sec(), "ops/s"),
            PhaseId::List => (p.bytes as f64 / p.secs, "keys/s"),
            _ => (p.mib_per_sec(), "MiB/s"),
        }
    }
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
    /// CPU seconds the server process used during the phase (if we know its pid).
    server_cpu: Option<f64>,
    /// CPU seconds this benchmark process used during the phase.
    client_cpu: f64,
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
        server_cpu: None,
        client_cpu: 0.0,
    })
}

fn print_header() {
    println!(
        "{:<6} {:<34} {:>8} {:>10} {:>7} {:>11} {:>10} {:>8} {:>8} {:>8} {:>8}",
        "server",
        "phase",
        "ops",
        "MiB",
        "secs",
        "ops/s",
        "MiB/s",
        "p50 ms",
        "p99 ms",
        "srv cpu",
        "cli cpu"
    );
}

fn print_phase(target: &str, p: &Phase) {
    let (mib, mib_s) = if p.name.starts_with("LIST") {
        // "bytes" of the listing phase are keys.
        (
            "-".to_string(),
            format!("{:.0} k/s", p.bytes as f64 / p.secs),
        )
    } else {
        (
            format!("{:.1}", p.bytes as f64 / MIB as f64),
            format!("{:.1}", p.mib_per_sec()),
        )
    };
    let cpu = |c: Option<f64>| match c {
        Some(c) => format!("{:.0}%", 100.0 * c / p.secs),
        None => "-".into(),
    };
    println!(
        "{:<6} {:<34} {:>8} {:>10} {:>7.2} {:>11.1} {:>10} {:>8.2} {:>8.2} {:>8} {:>8}",
        target,
        p.name,
        p.ops,
        mib,
        p.secs,
        p.ops_per_sec(),
        mib_s,
        p.pct(0.5),
        p.pct(0.99),
        cpu(p.server_cpu),
        cpu(Some(p.client_cpu)),
    );
    let _ = std::io::stdout().flush();
}

/// User + system CPU seconds so far of process `pid` (`None` if it cannot be read).
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / hz)
}

/// Flushes dirty pages of every file system, so the next phase does not pay for write-back
/// left by the previous one (a server that does not fsync leaves plenty).
async fn flush_page_cache() {
    // SAFETY: sync(2) has no preconditions.
    let _ = tokio::task::spawn_blocking(|| unsafe { libc::sync() }).await;
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
    first: u64,
    data: Bytes,
    streaming: bool,
    concurrency: usize,
    max_ops: u64,
    limit: Duration,
) -> Result<Phase> {
    let (s3, bucket, prefix) = (s3.clone(), bucket.to_string(), prefix.to_string());
    run_phase(name, concurrency, max_ops, limit, move |i| {
        let (s3, bucket, data) = (s3.clone(), bucket.clone(), data.clone());
        let key = format!("{prefix}/{:08}", first + i);
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

/// A server under test and what the phases left in it.
struct Target {
    name: &'static str,
    s3: Client,
    pid: Option<u32>,
    bucket: String,
    /// Objects written so far under each prefix (keys 0..n).
    small: u64,
    big: u64,
    mib: u64,
    list_bucket: Option<String>,
    list_keys: u64,
}

impl Target {
    async fn new(name: &'static str, s3: Client, pid: Option<u32>) -> Result<Self> {
        let bucket = format!("bench-{:08x}", rand::random::<u32>());
        s3.create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .with_context(|| format!("{name}: create bucket"))?;
        Ok(Self {
            name,
            s3,
            pid,
            bucket,
            small: 0,
            big: 0,
            mib: 0,
            list_bucket: None,
            list_keys: 0,
        })
    }
}

/// Test bodies, shared by every server.
struct Bodies {
    small: Bytes,
    mib: Bytes,
    big: Bytes,
}

/// Runs one phase against one server (writing what a read phase needs first).
async fn run_on(
    target: &mut Target,
    id: PhaseId,
    bodies: &Bodies,
    limits: &Limits,
) -> Result<Phase> {
    let (s3, bucket) = (target.s3.clone(), target.bucket.clone());
    // Read phases need objects: write a few (unmeasured) when no write phase ran.
    if id == PhaseId::Get4k && target.small == 0 {
        let p = put_phase(
            &s3,
            "fill",
            &bucket,
            "small",
            0,
            bodies.small.clone(),
            false,
            32,
            2_000,
            limits.phase,
        )
        .await?;
        target.small = p.ops;
    }
    if id == PhaseId::Get64m && target.big == 0 {
        let p = put_phase(
            &s3,
            "fill",
            &bucket,
            "big",
            0,
            bodies.big.clone(),
            true,
            4,
            4,
            limits.phase * 3,
        )
        .await?;
        target.big = p.ops;
    }
    if id == PhaseId::List && target.list_bucket.is_none() {
        let list_bucket = format!("{bucket}-list");
        s3.create_bucket().bucket(&list_bucket).send().await?;
        // Bounded in time too, so a slow server does not stall the benchmark: the listing
        // then expects the keys that were written.
        let (s3f, lbf) = (s3.clone(), list_bucket.clone());
        let fill = run_phase("fill", 64, limits.list_keys, limits.phase * 6, move |i| {
            let (s3, b) = (s3f.clone(), lbf.clone());
            async move {
                s3.put_object()
                    .bucket(&b)
                    .key(format!("dir{:02}/key-{i:08}", i % 10))
                    .body(ByteStream::from_static(b""))
                    .send()
                    .await?;
                Ok(0)
            }
        })
        .await?;
        println!(
            "{:<6} (filled {} keys for listing in {:.1} s)",
            target.name, fill.ops, fill.secs
        );
        target.list_keys = fill.ops;
        target.list_bucket = Some(list_bucket);
    }
    flush_page_cache().await;
    let pid = target.pid;
    let server_cpu = move || pid.and_then(cpu_secs);
    let (server0, client0) = (server_cpu(), cpu_secs(std::process::id()));
    let mut p = match id {
        PhaseId::Put4k => {
            let p = put_phase(
                &s3,
                id.title(),
                &bucket,
                "small",
                target.small,
                bodies.small.clone(),
                false,
                32,
                limits.small_ops,
                limits.phase,
            )
            .await?;
            target.small += p.ops;
            p
        }
        PhaseId::Get4k => {
            get_phase(
                &s3,
                id.title(),
                &bucket,
                "small",
                target.small,
                32,
                limits.phase,
            )
            .await?
        }
        PhaseId::Put1m => {
            let p = put_phase(
                &s3,
                id.title(),
                &bucket,
                "mib",
                target.mib,
                bodies.mib.clone(),
                true,
                8,
                limits.mib_ops,
                limits.phase,
            )
            .await?;
            target.mib += p.ops;
            p
        }
        PhaseId::Put64m => {
            let p = put_phase(
                &s3,
                id.title(),
                &bucket,
                "big",
                target.big,
                bodies.big.clone(),
                true,
                4,
                limits.big_ops,
                limits.phase * 3,
            )
            .await?;
            target.big += p.ops;
            p
        }
        PhaseId::Get64m => {
            get_phase(
                &s3,
                id.title(),
                &bucket,
                "big",
                target.big,
                4,
                limits.phase * 2,
            )
            .await?
        }
        PhaseId::List => {
            let expected = target.list_keys;
            let (s3l, lb) = (s3.clone(), target.list_bucket.clone().unwrap_or_default());
            run_phase(id.title(), 1, u64::MAX, limits.phase, move |_| {
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
            })
            .await?
        }
        PhaseId::Raw => bail!("the raw phase has no server"),
    };
    p.server_cpu = server0.zip(server_cpu()).map(|(a, b)| b - a);
    p.client_cpu = client0
        .zip(cpu_secs(std::process::id()))
        .map(|(a, b)| b - a)
        .unwrap_or(0.0);
    print_phase(target.name, &p);
    Ok(p)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// What the phases of one kind measured on every server.
struct Row {
    id: PhaseId,
    /// Per server: every round.
    runs: Vec<Vec<Phase>>,
}

fn print_comparison(names: &[&str], rows: &[Row]) {
    println!();
    println!(
        "{:<34} {:>7} {:>12} {:>12} {:>10} {:>9} {:>9}",
        "phase (median of rounds)",
        "unit",
        names[0],
        names[1],
        format!("{}/{}", names[0], names[1]),
        format!("{} cpu", names[0]),
        format!("{} cpu", names[1]),
    );
    for row in rows {
        let unit = row.id.metric(&row.runs[0][0]).1;
        let value = |i: usize| median(row.runs[i].iter().map(|p| row.id.metric(p).0).collect());
        let cpu = |i: usize| {
            let v: Vec<f64> = row.runs[i]
                .iter()
                .filter_map(|p| p.server_cpu.map(|c| 100.0 * c / p.secs))
                .collect();
            if v.is_empty() {
                "-".to_string()
            } else {
                format!("{:.0}%", median(v))
            }
        };
        let (a, b) = (value(0), value(1));
        let ratio = a / b;
        let mark = if ratio >= 1.2 { "  >=1.2x" } else { "" };
        println!(
            "{:<34} {:>7} {:>12.1} {:>12.1} {:>10.2} {:>9} {:>9}{mark}",
            row.id.title(),
            unit,
            a,
            b,
            ratio,
            cpu(0),
            cpu(1),
        );
    }
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
    let cairn = match &args.endpoint {
        Some(endpoint) => {
            server = None;
            let s3 = s3_client(
                endpoint,
                args.access_key.as_deref().context("--access-key")?,
                args.secret_key.as_deref().context("--secret-key")?,
            );
            Target::new("cairn", s3, None).await?
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
            let target = Target::new("cairn", s.client(), Some(s.pid())).await?;
            server = Some(s);
            target
        }
    };
    let mut targets = vec![cairn];
    let mut weed = None;
    if args.seaweedfs {
        if weed_available(&args.weed_bin) {
            let started = Instant::now();
            let w = Weed::start(&args.weed_bin).await?;
            println!(
                "started weed mini at {} in {:.1} s",
                w.s3_url(),
                started.elapsed().as_secs_f64()
            );
            targets.push(Target::new("weed", w.client(), Some(w.pid())).await?);
            weed = Some(w);
        } else {
            println!(
                "--seaweedfs: `{}` is not on PATH, measuring cairn only",
                args.weed_bin
            );
        }
    }

    let bodies = Bodies {
        small: Bytes::from(random_bytes(4 * KIB)),
        mib: Bytes::from(random_bytes(MIB)),
        big: Bytes::from(random_bytes(64 * MIB)),
    };
    let mut rows: Vec<Row> = Vec::new();
    print_header();
    for &id in &args.phases {
        if id == PhaseId::Raw || rows.iter().any(|r| r.id == id) {
            continue;
        }
        let mut runs: Vec<Vec<Phase>> = targets.iter().map(|_| Vec::new()).collect();
        for _ in 0..args.rounds {
            for (i, target) in targets.iter_mut().enumerate() {
                runs[i].push(run_on(target, id, &bodies, &limits).await?);
            }
        }
        rows.push(Row { id, runs });
    }

    let cairn_phase = |id: PhaseId| rows.iter().find(|r| r.id == id).map(|r| &r.runs[0][0]);
    if args.phases.contains(&PhaseId::Raw) {
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
        flush_page_cache().await;
        let raw_small = raw_phase(
            "raw fsync 4 KiB (32 in flight)",
            d1,
            bodies.small.clone(),
            32,
            limits.small_ops,
            limits.phase,
        )
        .await?;
        print_phase("disk", &raw_small);
        flush_page_cache().await;
        let raw_big = raw_phase(
            "raw fsync 64 MiB (4 in flight)",
            d2,
            bodies.big.clone(),
            4,
            limits.big_ops,
            limits.phase * 3,
        )
        .await?;
        print_phase("disk", &raw_big);
        drop(raw_dir);

        println!();
        if let Some(put_small) = cairn_phase(PhaseId::Put4k) {
            println!(
                "cairn/raw  PUT 4 KiB:  {:.3}  ({:.0} vs {:.0} ops/s)",
                put_small.ops_per_sec() / raw_small.ops_per_sec(),
                put_small.ops_per_sec(),
                raw_small.ops_per_sec()
            );
        }
        if let Some(put_big) = cairn_phase(PhaseId::Put64m) {
            println!(
                "cairn/raw  PUT 64 MiB: {:.3}  ({:.1} vs {:.1} MiB/s)",
                put_big.mib_per_sec() / raw_big.mib_per_sec(),
                put_big.mib_per_sec(),
                raw_big.mib_per_sec()
            );
        }
    }
    if targets.len() == 2 && !rows.is_empty() {
        let names: Vec<&str> = targets.iter().map(|t| t.name).collect();
        print_comparison(&names, &rows);
    }
    if let Some(s) = &server {
        println!(
            "cairn server peak RSS (VmHWM): {:.1} MiB",
            s.peak_rss_bytes() as f64 / MIB as f64
        );
    }
    drop(weed);
    Ok(())
}

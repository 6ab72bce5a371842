//! Scratch load tool (not part of the repo): PUT 4 KiB and LIST phases against an endpoint,
//! reporting throughput and the server's CPU seconds per operation (from /proc/PID/stat).
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use cluster_tests::{random_bytes, s3_client};
use futures::StreamExt;

fn cpu_secs(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ut: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let st: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    (ut + st) / 100.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let endpoint = &args[1];
    let pid: u32 = args[2].parse()?;
    let what = args.get(3).map(String::as_str).unwrap_or("put,list");
    let secs: u64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(5);
    let s3 = s3_client(endpoint, "benchkey", "benchsecret");
    let bucket = format!("perf-{:08x}", rand::random::<u32>());
    s3.create_bucket().bucket(&bucket).send().await?;
    let small = Bytes::from(random_bytes(4096));
    if what.contains("put") {
        let n = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs(secs);
        let c0 = cpu_secs(pid);
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let (s3, b, n, data) = (s3.clone(), bucket.clone(), n.clone(), small.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    let i = n.fetch_add(1, Ordering::Relaxed);
                    s3.put_object()
                        .bucket(&b)
                        .key(format!("small/{i:08}"))
                        .body(ByteStream::from(data.clone()))
                        .send()
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await?;
        }
        let el = t0.elapsed().as_secs_f64();
        let ops = n.load(Ordering::Relaxed) as f64;
        let cpu = cpu_secs(pid) - c0;
        println!(
            "PUT4K {:.0} ops/s  server cpu {:.1} us/op ({:.2} cores)",
            ops / el,
            cpu / ops * 1e6,
            cpu / el
        );
    }
    if what.contains("list") {
        let lb = format!("{bucket}-list");
        s3.create_bucket().bucket(&lb).send().await?;
        futures::stream::iter(0..10_000u64)
            .map(|i| {
                let (s3, b) = (s3.clone(), lb.clone());
                async move {
                    s3.put_object()
                        .bucket(&b)
                        .key(format!("dir{:02}/key-{i:08}", i % 10))
                        .body(ByteStream::from_static(b""))
                        .send()
                        .await
                        .unwrap();
                }
            })
            .buffer_unordered(64)
            .collect::<Vec<_>>()
            .await;
        let deadline = Instant::now() + Duration::from_secs(secs);
        let c0 = cpu_secs(pid);
        let t0 = Instant::now();
        let mut keys = 0u64;
        while Instant::now() < deadline {
            let mut token = None;
            loop {
                let page = s3
                    .list_objects_v2()
                    .bucket(&lb)
                    .max_keys(1000)
                    .set_continuation_token(token)
                    .send()
                    .await?;
                keys += page.contents().len() as u64;
                token = page.next_continuation_token().map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
        }
        let el = t0.elapsed().as_secs_f64();
        let cpu = cpu_secs(pid) - c0;
        println!(
            "LIST {:.0} keys/s  server cpu {:.1} us/key ({:.2} cores)",
            keys as f64 / el,
            cpu / keys as f64 * 1e6,
            cpu / el
        );
    }
    Ok(())
}

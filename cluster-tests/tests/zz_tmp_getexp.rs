use std::time::Instant;
use bytes::Bytes;
use cluster_tests::{Server, random_bytes, data::{shared_byte_stream, stream_md5}};

#[tokio::test(flavor = "multi_thread")]
async fn exp() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("exp").send().await.unwrap();
    let big = Bytes::from(random_bytes(64 << 20));
    let n: usize = std::env::var("N").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    let t = Instant::now();
    let puts: Vec<_> = (0..n).map(|i| { let s3 = s3.clone(); let b = big.clone(); tokio::spawn(async move {
        s3.put_object().bucket("exp").key(format!("o{i}")).body(shared_byte_stream(b)).send().await.unwrap(); }) }).collect();
    for p in puts { p.await.unwrap(); }
    println!("put {n}x64MiB: {:.2}s", t.elapsed().as_secs_f64());
    let pid = server.pid();
    let cpu = || { let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap(); let f: Vec<&str> = s.rsplit(')').next().unwrap().split_whitespace().collect(); f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap() };
    let c0 = cpu();
    let sl: u64 = std::env::var("SLEEP").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    tokio::time::sleep(std::time::Duration::from_secs(sl)).await;
    println!("server cpu ticks during sleep {sl}s: {}", cpu() - c0);
    for round in 0..3 {
        let c0 = cpu();
        let t = Instant::now();
        let gets: Vec<_> = (0..4).map(|i| { let s3 = s3.clone(); tokio::spawn(async move {
            let t = Instant::now();
            let o = s3.get_object().bucket("exp").key(format!("o{}", i % n)).send().await.unwrap();
            let ttfb = t.elapsed().as_secs_f64();
            let (len, _) = stream_md5(o.body).await.unwrap();
            (ttfb, t.elapsed().as_secs_f64(), len) }) }).collect();
        for g in gets { let r = g.await.unwrap(); println!("round {round}: ttfb {:.2}s total {:.2}s len {}", r.0, r.1, r.2); }
        println!("round {round} wall {:.2}s server cpu ticks {}", t.elapsed().as_secs_f64(), cpu() - c0);
    }
    let t = Instant::now();
    let o = s3.get_object().bucket("exp").key("o0").send().await.unwrap();
    stream_md5(o.body).await.unwrap();
    println!("single GET {:.2}s", t.elapsed().as_secs_f64());
}

//! Scaling out with real processes: two nodes join a 3-node cluster that holds data, under a
//! continuous read/write workload through two gateways. The layout transition moves the data
//! (new owners pull it, writes go to both layouts meanwhile) with no failed client request,
//! and afterwards the new nodes hold replicas the cluster relies on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use cluster_tests::{Cluster, ClusterOptions, quoted_md5, random_bytes, s3_failure, unique_bucket};

/// Objects written before the new nodes join.
const OBJECTS: usize = 240;

fn body_for(i: usize) -> Vec<u8> {
    match i % 8 {
        0 => random_bytes(1024 * 1024 + 17), // two blocks
        1 | 2 => random_bytes(200 * 1024),   // one block
        _ => random_bytes(700 + i),          // inline
    }
}

async fn get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| format!("GET {key}: {:?}", s3_failure(&e)))?;
    let body = out.body.collect().await.map_err(|e| format!("{e:?}"))?;
    Ok(body.into_bytes().to_vec())
}

/// Counts of the background workload; any failure is recorded with its message.
#[derive(Default)]
struct Workload {
    stop: AtomicBool,
    ops: AtomicUsize,
    failures: std::sync::Mutex<Vec<String>>,
}

impl Workload {
    fn fail(&self, what: String) {
        self.failures.lock().unwrap().push(what);
    }
}

/// Reads the preloaded objects and writes fresh ones until told to stop; returns the keys
/// and bodies it wrote.
async fn workload(
    s3: aws_sdk_s3::Client,
    bucket: String,
    client: usize,
    preloaded: Arc<Vec<Vec<u8>>>,
    w: Arc<Workload>,
) -> Vec<(String, Vec<u8>)> {
    let mut written = Vec::new();
    let mut n = 0usize;
    while !w.stop.load(Ordering::Relaxed) {
        n += 1;
        let i = (n * 7 + client * 31) % preloaded.len();
        match get(&s3, &bucket, &format!("obj-{i:04}")).await {
            Ok(body) if body == preloaded[i] => {}
            Ok(_) => w.fail(format!("obj-{i:04} read back different bytes")),
            Err(e) => w.fail(e),
        }
        let key = format!("live-{client}-{n:05}");
        let body = body_for(n + client);
        match s3
            .put_object()
            .bucket(&bucket)
            .key(&key)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
        {
            Ok(out) if out.e_tag() == Some(quoted_md5(&body).as_str()) => written.push((key, body)),
            Ok(out) => w.fail(format!("PUT {key}: ETag {:?}", out.e_tag())),
            Err(e) => w.fail(format!("PUT {key}: {:?}", s3_failure(&e))),
        }
        w.ops.fetch_add(2, Ordering::Relaxed);
    }
    written
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_join_a_cluster_with_data_under_load_and_take_their_share() {
    let opts = ClusterOptions {
        nodes: 3,
        node_env: vec![("CAIRN_ANTI_ENTROPY_SECS".into(), "2".into())],
        ..Default::default()
    };
    let mut c = Cluster::start_with(opts);
    let second = c.spawn_gateway();
    let gateways = [c.client(), c.client_via(&second)];
    let bucket = unique_bucket("scale");
    gateways[0]
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let preloaded: Arc<Vec<Vec<u8>>> = Arc::new((0..OBJECTS).map(body_for).collect());
    futures::future::join_all((0..4).map(|part| {
        let (s3, bucket, bodies) = (gateways[0].clone(), bucket.clone(), preloaded.clone());
        async move {
            for i in (part..OBJECTS).step_by(4) {
                s3.put_object()
                    .bucket(&bucket)
                    .key(format!("obj-{i:04}"))
                    .body(ByteStream::from(bodies[i].clone()))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("preload obj-{i:04}: {e:?}"));
            }
        }
    }))
    .await;

    let w = Arc::new(Workload::default());
    let clients: Vec<_> = (0..4)
        .map(|i| {
            tokio::spawn(workload(
                gateways[i % 2].clone(),
                bucket.clone(),
                i,
                preloaded.clone(),
                w.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Two nodes join with --auto-layout, one after the other: each starts a transition.
    let started = Instant::now();
    let mut joined = Vec::new();
    for _ in 0..2 {
        let i = c.spawn_joining_node(&["--auto-layout"], None);
        c.nodes[i]
            .wait_ready()
            .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
        joined.push(i);
    }
    let show = c.admin_ok(0, &["layout", "show"]);
    assert!(show.contains("5 node(s)"), "{show}");
    let mut last_show;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        last_show = c.admin_ok(0, &["layout", "show"]);
        if last_show.contains("transition: none") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the transition did not finish:\n{last_show}\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "transition finished {:?} after the first join:\n{last_show}",
        started.elapsed()
    );
    // Keep the workload going on the new layout for a moment, then stop it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    w.stop.store(true, Ordering::Relaxed);
    let mut written = Vec::new();
    for client in clients {
        written.extend(client.await.unwrap());
    }
    let failures = w.failures.lock().unwrap().clone();
    eprintln!(
        "{} workload requests, {} failed",
        w.ops.load(Ordering::Relaxed),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "client requests failed during the scale-out: {:#?}",
        &failures[..failures.len().min(10)]
    );

    // Everything is readable on the new layout, and the new nodes hold their replicas.
    for i in 0..OBJECTS {
        let body = get(&gateways[1], &bucket, &format!("obj-{i:04}"))
            .await
            .unwrap();
        assert!(body == preloaded[i], "obj-{i:04}");
    }
    for (key, body) in &written {
        assert!(
            get(&gateways[0], &bucket, key).await.unwrap() == *body,
            "{key}"
        );
    }
    let status = c.admin_ok(joined[0], &["status"]);
    eprintln!("{status}");
    for i in &joined {
        let id = c.node_id(*i);
        let records: u64 = status
            .lines()
            .find(|l| l.starts_with(&id))
            .and_then(|l| l.split("up, ").nth(1))
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(records > 0, "new node {id} holds no records:\n{status}");
    }
    // One original node dies: the 5-node ring with R=3 still has a quorum for every key.
    c.nodes[0].kill_9();
    for i in (0..OBJECTS).step_by(3) {
        let body = get(&gateways[1], &bucket, &format!("obj-{i:04}"))
            .await
            .unwrap();
        assert!(body == preloaded[i], "obj-{i:04} after a node died");
    }
}

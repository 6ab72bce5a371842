//! Operator controls of layout transitions on real processes: the rate limit paces the data a
//! transition moves (and `cairn layout watch` follows it, exiting only once it retired),
//! `layout pause` stops the movement until `layout resume`, `layout set-weight` changes a
//! node's share, and `layout remove --wait` drains a node so it can be stopped.

use std::time::{Duration, Instant};

use cairn_proto::pb::RebalanceStatus;
use cluster_tests::{
    Cluster, NodeProbe, get_bytes, new_bucket, put_bytes, random_bytes, status_records,
};

const MIB: u64 = 1 << 20;

/// A 3-node cluster (replication 3) with fast anti-entropy passes, and a bucket.
async fn cluster() -> (Cluster, aws_sdk_s3::Client, String) {
    let c = Cluster::start_with_env(3, &[("CAIRN_ANTI_ENTROPY_SECS", "1")]);
    let s3 = c.client();
    let bucket = new_bucket(&s3, "rebal").await;
    (c, s3, bucket)
}

/// Writes `n` objects of `size` bytes (`obj-NNN`); returns their bodies.
async fn preload(s3: &aws_sdk_s3::Client, bucket: &str, n: usize, size: usize) -> Vec<Vec<u8>> {
    let bodies: Vec<Vec<u8>> = (0..n).map(|_| random_bytes(size)).collect();
    futures::future::join_all(bodies.iter().enumerate().map(|(i, body)| async move {
        put_bytes(s3, bucket, &format!("obj-{i:03}"), body).await;
    }))
    .await;
    bodies
}

async fn read_all(s3: &aws_sdk_s3::Client, bucket: &str, bodies: &[Vec<u8>]) {
    for (i, body) in bodies.iter().enumerate() {
        let got = get_bytes(s3, bucket, &format!("obj-{i:03}")).await;
        assert!(got == *body, "obj-{i:03} read back different bytes");
    }
}

/// Starts a fourth node, waits until it joined and stages it into the ring; returns it.
fn add_node(c: &mut Cluster) -> usize {
    let i = c.spawn_joining_node(&[], None);
    c.nodes[i]
        .wait_ready()
        .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
    c.admin_ok(0, &["layout", "add", &c.node_id(i)]);
    i
}

/// Node `i`'s rebalance status, through the admin API.
async fn rebalance(c: &Cluster, i: usize) -> RebalanceStatus {
    let status = NodeProbe::new(c, i).status().await;
    status
        .rebalance
        .expect("a node reports its rebalance status")
}

/// Bytes moved for the current transition, summed over `nodes`.
async fn bytes_moved(c: &Cluster, nodes: &[usize]) -> u64 {
    let mut sum = 0;
    for i in nodes {
        sum += rebalance(c, *i).await.bytes_moved;
    }
    sum
}

fn transition_active(c: &Cluster) -> bool {
    !c.admin_ok(0, &["layout", "show"])
        .contains("transition: none")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_rate_limit_paces_a_transition_and_watch_exits_once_it_retired() {
    let (mut c, s3, bucket) = cluster().await;
    let bodies = preload(&s3, &bucket, 24, MIB as usize).await;
    let rate = c.admin_ok(0, &["layout", "rate", "2"]);
    assert!(rate.contains("2 MiB/s per node"), "{rate}");

    let new = add_node(&mut c);
    let started = Instant::now();
    c.admin_ok(0, &["layout", "apply"]);
    let watch = c.admin(1, &["layout", "watch", "--interval", "1"]);
    let elapsed = started.elapsed();
    // Checked the moment it exited: it must not have reported done early.
    let show = c.admin_ok(0, &["layout", "show"]);
    assert!(
        watch.success(),
        "watch failed: {}\n{}",
        watch.status_text(),
        watch.stderr
    );
    assert!(
        show.contains("transition: none"),
        "watch exited during the transition:\n{}\n{show}",
        watch.stdout
    );
    eprintln!("watch output:\n{}", watch.stdout);
    let progress: Vec<&str> = watch
        .stdout
        .lines()
        .filter(|l| l.starts_with("layout v2: ") && l.contains("node(s) synced"))
        .collect();
    assert!(
        progress.iter().any(|l| l.contains(" MiB at ")),
        "no progress line with bytes moved and a rate:\n{}",
        watch.stdout
    );
    let last = watch.stdout.lines().last().unwrap_or("");
    assert!(last.contains("no transition active"), "{last}");

    // Each node moved at most 2 MiB/s (plus one second's burst): a lower bound on the time.
    let nodes = [0, 1, 2, new];
    let mut per_node = Vec::new();
    for i in nodes {
        per_node.push(rebalance(&c, i).await.bytes_moved);
    }
    let total: u64 = per_node.iter().sum();
    eprintln!(
        "moved {:.1} MiB in {elapsed:?}; per node {per_node:?}",
        total as f64 / MIB as f64
    );
    // The new node needs its share (3 of 4 replicas) of the 24 MiB of blocks.
    assert!(total >= 12 * MIB, "only {total} bytes moved");
    for (i, bytes) in nodes.iter().zip(&per_node) {
        let floor = (bytes.saturating_sub(2 * MIB)) as f64 / (2 * MIB) as f64;
        assert!(
            elapsed.as_secs_f64() >= floor * 0.9,
            "node {i} moved {bytes} bytes in {elapsed:?}: faster than 2 MiB/s"
        );
    }
    let metrics = cluster_tests::http_client()
        .get(format!("http://{}/metrics", c.nodes[new].addr("http")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for gauge in [
        "cairn_rebalance_bytes_moved ",
        "cairn_rebalance_objects_moved ",
        "cairn_rebalance_paused 0",
        "cairn_rebalance_rate_limit_bytes 2097152",
    ] {
        assert!(metrics.contains(gauge), "no {gauge:?} in /metrics");
    }
    read_all(&s3, &bucket, &bodies).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pause_stops_the_data_movement_until_resume() {
    let (mut c, s3, bucket) = cluster().await;
    let bodies = preload(&s3, &bucket, 16, MIB as usize).await;
    c.admin_ok(0, &["layout", "rate", "1"]);
    let new = add_node(&mut c);
    let nodes = [0, 1, 2, new];
    c.admin_ok(0, &["layout", "apply"]);
    // Once data moves, pause.
    let deadline = Instant::now() + Duration::from_secs(30);
    while bytes_moved(&c, &nodes).await == 0 {
        assert!(Instant::now() < deadline, "no data moved\n{}", c.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let paused = c.admin_ok(0, &["layout", "pause"]);
    assert!(paused.contains("paused"), "{paused}");
    // Within seconds the counters stand still (a copy in flight may still land).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = bytes_moved(&c, &nodes).await;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = bytes_moved(&c, &nodes).await;
        if now == last {
            break;
        }
        assert!(Instant::now() < deadline, "data still moves after pause");
        last = now;
    }
    // And stay still, with the transition not retiring; clients are served meanwhile.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        bytes_moved(&c, &nodes).await,
        last,
        "data moved while paused"
    );
    let show = c.admin_ok(0, &["layout", "show"]);
    assert!(show.contains("still syncing"), "{show}");
    assert!(show.contains("rebalance: PAUSED"), "{show}");
    read_all(&s3, &bucket, &bodies[..4]).await;
    let total_before = bytes_moved(&c, &nodes).await;
    eprintln!("paused after {:.1} MiB", total_before as f64 / MIB as f64);

    c.admin_ok(0, &["layout", "resume"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while transition_active(&c) {
        assert!(
            Instant::now() < deadline,
            "the transition did not finish after resume\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(bytes_moved(&c, &nodes).await > total_before);
    read_all(&s3, &bucket, &bodies).await;
}

/// Record counts of `nodes` from `cairn status`, once they hold `total` records together
/// and stopped changing (old owners dropped what they no longer replicate).
fn settled_records(c: &Cluster, nodes: &[usize], total: u64) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = Vec::new();
    loop {
        let status = c.admin_ok(0, &["status"]);
        let counts: Vec<u64> = nodes
            .iter()
            .map(|i| status_records(&status, &c.node_id(*i)).unwrap_or(u64::MAX))
            .collect();
        if counts.iter().sum::<u64>() == total && counts == last {
            return counts;
        }
        assert!(
            Instant::now() < deadline,
            "records per node {counts:?} do not settle at {total}:\n{status}"
        );
        last = counts;
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn set_weight_changes_a_share_and_remove_wait_drains_a_node() {
    let (mut c, s3, bucket) = cluster().await;
    const OBJECTS: usize = 400;
    let bodies = preload(&s3, &bucket, OBJECTS, 200).await;
    // One replica each, node 0 with twice the weight.
    let n0 = c.node_id(0);
    let out = c.admin_ok(0, &["layout", "set-weight", &n0, "2"]);
    assert!(out.contains("weight 2"), "{out}");
    let out = c.admin_ok(0, &["layout", "set-zone", &c.node_id(2), "far"]);
    assert!(out.contains("zone far"), "{out}");
    c.admin_ok(0, &["layout", "apply", "--replication", "1"]);
    let watch = c.admin(0, &["layout", "watch", "--interval", "1"]);
    assert!(watch.success(), "{}", watch.stderr);
    let show = c.admin_ok(0, &["layout", "show"]);
    assert!(show.contains("transition: none"), "{show}");
    let row = show
        .lines()
        .find(|l| l.starts_with(&c.node_id(2)))
        .unwrap_or("");
    assert!(row.contains(" far "), "{show}");

    let counts = settled_records(&c, &[0, 1, 2], OBJECTS as u64);
    eprintln!("records per node with weights 2:1:1 → {counts:?}");
    let ratio = counts[0] as f64 / ((counts[1] + counts[2]) as f64 / 2.0);
    assert!(
        (1.4..=2.8).contains(&ratio),
        "weight 2 holds {ratio:.2}× the records of weight 1: {counts:?}"
    );
    read_all(&s3, &bucket, &bodies).await;

    // Drain node 2: the command returns once nothing it holds is needed; then it can go.
    let out = c.admin(0, &["layout", "remove", &c.node_id(2), "--wait"]);
    assert!(out.success(), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("can be stopped"), "{}", out.stdout);
    let show = c.admin_ok(0, &["layout", "show"]);
    let (ring, rest) = show.split_once("transition: ").unwrap_or_default();
    assert!(rest.starts_with("none"), "{show}");
    assert!(
        ring.contains("2 node(s)") && !ring.contains(&c.node_id(2)),
        "{show}"
    );
    c.nodes[2].kill_9();
    read_all(&s3, &bucket, &bodies).await;
}

//! Multi-node membership with real processes: `--bootstrap-expect`, quorum reads and writes
//! through a gateway while a node is down, rejoin after restart, leader failover, nodes
//! joining (with and without the cluster secret), layout rules and voter replacement.

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use cluster_tests::{Cluster, ClusterOptions, quoted_md5, random_bytes, unique_bucket};

async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, data: &[u8]) {
    let out = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {key}: {e:?}"));
    assert_eq!(out.e_tag(), Some(quoted_md5(data).as_str()));
}

async fn get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {key}: {e:?}"));
    out.body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

async fn list(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let out = s3
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("LIST {bucket}: {e:?}"));
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect()
}

/// Waits until `cond` holds, checking every 250 ms; panics with `what` after `limit`.
fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
    start.elapsed()
}

/// The status table row of a node id, if `cairn status` lists it.
fn status_row(status: &str, id: &str) -> Option<String> {
    status
        .lines()
        .find(|l| l.starts_with(id))
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_survive_a_lost_node_a_restart_and_a_leader_failover() {
    let mut c = Cluster::start(3);
    for i in 0..3 {
        let show = c.admin_ok(i, &["layout", "show"]);
        assert!(
            show.starts_with("layout version 1, replication 3, 3 node(s)"),
            "node {i}:\n{show}"
        );
    }
    let s3 = c.client();
    let bucket = unique_bucket("quorum");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let small = random_bytes(300);
    let large = random_bytes(3 * 1024 * 1024 + 5);
    put(&s3, &bucket, "small", &small).await;
    put(&s3, &bucket, "large", &large).await;

    // A follower dies: quorum 2 of 3 keeps reads, writes and listings going.
    let leader = c.leader(0).expect("a leader");
    let victim = (leader + 1) % 3;
    let victim_id = c.node_id(victim);
    c.nodes[victim].kill_9();
    assert_eq!(get(&s3, &bucket, "small").await, small);
    assert_eq!(get(&s3, &bucket, "large").await, large);
    let small2 = random_bytes(100);
    let large2 = random_bytes(2 * 1024 * 1024 + 7);
    put(&s3, &bucket, "small2", &small2).await;
    put(&s3, &bucket, "large2", &large2).await;
    assert_eq!(
        list(&s3, &bucket).await,
        ["large", "large2", "small", "small2"]
    );

    // It comes back under its own id.
    c.restart_node(victim);
    assert_eq!(c.node_id(victim), victim_id);
    let status = c.admin_ok(victim, &["status"]);
    assert!(
        status.contains(&format!("node:          {victim_id}")),
        "{status}"
    );
    let row = status_row(&c.admin_ok(leader, &["status"]), &victim_id).expect("victim listed");
    assert!(row.contains("voter") && row.contains("up"), "{row}");

    // The leader dies: a new one takes over and metadata writes work again within seconds.
    let leader = c.leader(victim).expect("a leader");
    c.nodes[leader].kill_9();
    let started = Instant::now();
    let fresh = unique_bucket("failover");
    loop {
        match s3.create_bucket().bucket(&fresh).send().await {
            Ok(_) => break,
            Err(e) => {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "CreateBucket after leader loss: {e:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    eprintln!(
        "CreateBucket worked again {:?} after the leader was killed",
        started.elapsed()
    );
    let survivor = (0..3).find(|i| *i != leader).expect("survivor");
    assert!(c.leader(survivor).is_some_and(|l| l != leader));
    assert_eq!(get(&s3, &bucket, "small2").await, small2);
    assert_eq!(get(&s3, &bucket, "large2").await, large2);
    assert_eq!(get(&s3, &bucket, "large").await, large);
    assert_eq!(
        list(&s3, &bucket).await,
        ["large", "large2", "small", "small2"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_join_with_the_secret_only_and_dead_voters_are_replaced() {
    let opts = ClusterOptions {
        nodes: 3,
        node_env: vec![("CAIRN_VOTER_TIMEOUT_SECS".into(), "3".into())],
        ..Default::default()
    };
    let mut c = Cluster::start_with(opts);

    // A fourth node joins while the cluster holds no data: with --auto-layout it enters the
    // ring; in Raft it is a learner (three voters are enough).
    let four = c.spawn_joining_node(&["--auto-layout"], None);
    c.nodes[four]
        .wait_ready()
        .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
    let four_id = c.node_id(four);
    let row = status_row(&c.admin_ok(0, &["status"]), &four_id).expect("4th node in status");
    assert!(row.contains("learner") && row.contains("up"), "{row}");
    let show = c.admin_ok(0, &["layout", "show"]);
    assert!(
        show.starts_with("layout version 2, replication 3, 4 node(s)"),
        "{show}"
    );

    // Without the cluster secret nothing joins.
    let outsider = c.spawn_joining_node(&[], Some("not-the-cluster-secret"));
    std::thread::sleep(Duration::from_secs(4));
    assert!(!c.nodes[outsider].is_ready());
    let outsider_id = c.node_id(outsider);
    assert!(!outsider_id.is_empty());
    assert_eq!(status_row(&c.admin_ok(0, &["status"]), &outsider_id), None);
    assert!(
        c.nodes[outsider].log_contains("cluster secret"),
        "{}",
        c.nodes[outsider].log_tail()
    );
    c.nodes[outsider].kill_9();

    // Layout rules: no more replicas than nodes; no ring change once data exists.
    let out = c.admin(1, &["layout", "apply", "--replication", "5"]);
    assert!(
        !out.success() && out.stderr.contains("replication factor 5"),
        "{}",
        out.stderr
    );
    let s3 = c.client();
    let bucket = unique_bucket("layout");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    put(&s3, &bucket, "k", b"data").await;
    c.admin_ok(1, &["layout", "remove", &four_id]);
    let out = c.admin(1, &["layout", "apply"]);
    assert!(
        !out.success() && out.stderr.contains("holds data"),
        "{}",
        out.stderr
    );
    c.admin_ok(1, &["layout", "revert"]);

    // A voter that stays down is replaced by the healthy learner.
    let leader = c.leader(0).expect("a leader");
    let victim = (0..3).find(|i| *i != leader).expect("a follower");
    c.nodes[victim].kill_9();
    let took = wait_until(
        Duration::from_secs(30),
        "the learner becomes a voter",
        || {
            let status = c.admin_ok(leader, &["status"]);
            status_row(&status, &four_id).is_some_and(|r| r.contains("voter"))
        },
    );
    eprintln!("voter replaced {took:?} after the kill");
    let fresh = unique_bucket("after");
    s3.create_bucket().bucket(&fresh).send().await.unwrap();
    assert_eq!(get(&s3, &bucket, "k").await, b"data");
}

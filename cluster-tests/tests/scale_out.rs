//! Scaling out with real processes: two nodes join a 3-node cluster holding 5000 objects
//! (inline, one and two blocks, multipart), under a continuous read/write workload through
//! two gateways. The layout transition moves the data (new owners pull it, writes go to both
//! layouts meanwhile) with no failed client request; afterwards every node holds its fifth of
//! the block bytes and the cluster relies on the new nodes' replicas.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use cairn_proto::client::Peers;
use cairn_proto::pb::{RefsRequest, StoreRequest};
use cluster_tests::multipart::{self, create_upload, upload_part};
use cluster_tests::{Cluster, dir_bytes, put_bytes, quoted_md5, random_bytes, s3_failure, try_get};

/// Objects written before the new nodes join.
const OBJECTS: usize = 5000;
/// Multipart objects among them (two 5 MiB parts and a small one each).
const MULTIPART: usize = 2;

fn body_for(i: usize) -> Vec<u8> {
    if i % 100 == 1 {
        random_bytes(1024 * 1024 + 17) // two blocks
    } else if i.is_multiple_of(20) {
        random_bytes(256 * 1024) // one block
    } else {
        random_bytes(300 + i % 2000) // inline
    }
}

/// A multipart upload with its parts uploaded, not completed yet.
struct OpenUpload {
    key: String,
    id: String,
    /// (part number, ETag)
    parts: Vec<(i32, String)>,
    body: Vec<u8>,
}

/// Starts an upload of `key` and uploads two 5 MiB parts and a small one.
async fn upload_parts(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> OpenUpload {
    let mut open = OpenUpload {
        key: key.to_string(),
        id: create_upload(s3, bucket, key).await,
        parts: Vec::new(),
        body: Vec::new(),
    };
    for (n, size) in [(1, 5 << 20), (2, 5 << 20), (3, 1000)] {
        let data = random_bytes(size);
        let etag = upload_part(s3, bucket, key, &open.id, n, &data).await;
        open.parts.push((n, etag));
        open.body.extend(data);
    }
    open
}

/// Completes an upload; returns the object's body.
async fn complete(s3: &aws_sdk_s3::Client, bucket: &str, open: OpenUpload) -> Vec<u8> {
    multipart::complete(s3, bucket, &open.key, &open.id, &open.parts)
        .await
        .unwrap_or_else(|e| panic!("complete {}: {:?}", open.key, s3_failure(&e)));
    open.body
}

/// The body of `key`; a missing key is an error too.
async fn get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
    try_get(s3, bucket, key)
        .await?
        .ok_or_else(|| format!("GET {key}: 404 NoSuchKey"))
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

/// Waits (up to 2 minutes) until node `i` reports no layout transition; returns the
/// `layout show` output.
async fn wait_for_no_transition(c: &Cluster, i: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let show = c.admin_ok(i, &["layout", "show"]);
        if show.contains("transition: none") {
            return show;
        }
        assert!(
            Instant::now() < deadline,
            "the transition did not finish:\n{show}\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_join_a_cluster_with_data_under_load_and_take_their_share() {
    let mut c = Cluster::start_with_env(3, &[("CAIRN_ANTI_ENTROPY_SECS", "2")]);
    let (_second, gateways, bucket) = c.two_gateways_and_bucket("scale").await;
    let mut bodies: Vec<Vec<u8>> = (0..OBJECTS - MULTIPART).map(body_for).collect();
    for i in OBJECTS - MULTIPART..OBJECTS {
        let open = upload_parts(&gateways[0], &bucket, &format!("obj-{i:04}")).await;
        bodies.push(complete(&gateways[0], &bucket, open).await);
    }
    let preloaded = Arc::new(bodies);
    let started = Instant::now();
    futures::future::join_all((0..8).map(|part| {
        let (s3, bucket, bodies) = (
            gateways[part % 2].clone(),
            bucket.clone(),
            preloaded.clone(),
        );
        async move {
            for i in (part..OBJECTS - MULTIPART).step_by(8) {
                put_bytes(&s3, &bucket, &format!("obj-{i:04}"), &bodies[i]).await;
            }
        }
    }))
    .await;
    eprintln!("{OBJECTS} objects written in {:?}", started.elapsed());

    // An upload whose parts are written before the change and completed after it.
    let spanning = upload_parts(&gateways[1], &bucket, "spanning").await;

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
    let last_show = wait_for_no_transition(&c, 0).await;
    eprintln!(
        "transition finished {:?} after the first join:\n{last_show}",
        started.elapsed()
    );
    // A sender still on the first layout cannot write: nodes refuse its writes (a gateway
    // then refreshes and retries), so nothing lands on the old owners only.
    let peers = Peers::new(c.cluster_secret()).unwrap();
    let stale = 1;
    let res = peers
        .objects(&c.rpc(joined[0]))
        .unwrap()
        .store(StoreRequest {
            record: Some(Default::default()),
            layout_version: stale,
        })
        .await;
    let refused = res.expect_err("a write from layout 1 must be refused");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused}");
    assert!(refused.message().starts_with("stale layout"), "{refused}");
    let res = peers
        .blocks(&c.rpc(1))
        .unwrap()
        .add_refs(RefsRequest {
            refs: Vec::new(),
            layout_version: stale,
        })
        .await;
    assert_eq!(
        res.expect_err("refs from layout 1 must be refused").code(),
        tonic::Code::FailedPrecondition
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

    // Each node ends with a fifth of the block bytes, once the old owners dropped the
    // copies they no longer replicate.
    let nodes: Vec<usize> = (0..3).chain(joined.iter().copied()).collect();
    let balanced = Instant::now() + Duration::from_secs(90);
    let mut last_total = 0;
    loop {
        let bytes: Vec<u64> = nodes
            .iter()
            .map(|i| dir_bytes(&c.data_dir(*i).join("blocks")))
            .collect();
        let total: u64 = bytes.iter().sum();
        let shares = bytes
            .iter()
            .map(|b| *b as f64 / total as f64)
            .collect::<Vec<f64>>();
        // Settled: no copies dropped since the last look.
        let settled = total == last_total;
        last_total = total;
        if settled && shares.iter().all(|s| (s - 0.2).abs() <= 0.05) {
            eprintln!("block bytes per node: {bytes:?} (total {total}); shares {shares:.3?}");
            break;
        }
        assert!(
            Instant::now() < balanced,
            "block bytes per node {bytes:?}: shares {shares:.3?} not 20% ± 5%\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
    }

    let spanning_body = complete(&gateways[0], &bucket, spanning).await;
    assert!(get(&gateways[1], &bucket, "spanning").await.unwrap() == spanning_body);

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
    // Scale in: node 0 is removed while holding data. A node of the new layout is killed
    // mid-transition and restarted; the transition still completes.
    let removed = c.node_id(0);
    c.admin_ok(1, &["layout", "remove", &removed]);
    c.admin_ok(1, &["layout", "apply"]);
    c.nodes[joined[0]].kill_9();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        c.admin_ok(1, &["layout", "show"]).contains("still syncing"),
        "the transition cannot finish while a node of the new layout is down"
    );
    c.restart_node(joined[0]);
    let started = Instant::now();
    wait_for_no_transition(&c, 1).await;
    eprintln!(
        "node removed: transition finished {:?} after the killed node's restart",
        started.elapsed()
    );
    // Out of the ring, it hands its Raft vote to a node inside it (if it leads, it keeps
    // leading without a vote until it stops).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = c.admin_ok(1, &["status"]);
        let row = |id: &str| status.lines().find(|l| l.starts_with(id)).unwrap_or("");
        let voting_inside = status
            .lines()
            .filter(|l| !l.starts_with(&removed))
            .filter(|l| l.contains(" voter ") || l.contains(" leader "))
            .count();
        let handed_over = row(&removed).contains(" learner ")
            || (row(&removed).contains(" leader ") && voting_inside == 3);
        if handed_over {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 0 still holds a vote:\n{status}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The drained node can go, and then any one further node: everything is still there.
    c.nodes[0].kill_9();
    c.nodes[2].kill_9();
    for i in (0..OBJECTS).step_by(4) {
        let body = get(&gateways[1], &bucket, &format!("obj-{i:04}"))
            .await
            .unwrap();
        assert!(
            body == preloaded[i],
            "obj-{i:04} with the removed node and another gone"
        );
    }
    for (key, body) in written.iter().step_by(4) {
        assert!(
            get(&gateways[1], &bucket, key).await.unwrap() == *body,
            "{key}"
        );
    }
}

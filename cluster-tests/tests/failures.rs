//! A 3-node cluster under failure, with real processes: a mixed workload from many clients
//! while the Raft leader and then a follower are killed, two of three nodes down, listings
//! of 10k keys after deletes a node missed, a node kept down past the tombstone grace, a
//! wiped data dir, and callers without the cluster secret.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use cairn_proto::client::Peers;
use cairn_proto::meta::LayoutNode;
use cairn_proto::pb::admin_service_client::AdminServiceClient;
use cairn_proto::pb::block_service_client::BlockServiceClient;
use cairn_proto::pb::{GetBlockRequest, GetRecordRequest, MetaReadRequest, StatusRequest};
use cairn_proto::secret::WRONG_NODE;
use cluster_tests::{
    Cluster, delete_object, expect_s3_error, new_bucket, put_checked, quoted_md5, random_bytes,
    s3_failure, status_records, status_row, try_get, unique_bucket, wait_until,
};
use tonic::Code;

/// All keys of a bucket (ListObjectsV2, pages of `page`), optionally under a delimiter:
/// (keys, common prefixes).
async fn list_all(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: Option<&str>,
    delimiter: Option<&str>,
    page: i32,
) -> Result<(Vec<String>, Vec<String>), String> {
    let (mut keys, mut prefixes) = (Vec::new(), Vec::new());
    let mut token: Option<String> = None;
    loop {
        let out = s3
            .list_objects_v2()
            .bucket(bucket)
            .set_prefix(prefix.map(str::to_string))
            .set_delimiter(delimiter.map(str::to_string))
            .max_keys(page)
            .set_continuation_token(token.clone())
            .send()
            .await
            .map_err(|e| format!("{:?}", s3_failure(&e)))?;
        let n = out.contents().len() + out.common_prefixes().len();
        if n > page as usize {
            return Err(format!("page of {n} entries for max-keys {page}"));
        }
        keys.extend(
            out.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
        prefixes.extend(
            out.common_prefixes()
                .iter()
                .filter_map(|p| p.prefix().map(str::to_string)),
        );
        match out.next_continuation_token() {
            Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => return Ok((keys, prefixes)),
        }
    }
}

/// What a key may hold: exactly the last acknowledged write, plus the writes after it that
/// failed (a failed write may or may not have taken effect). `None` is "absent".
#[derive(Clone, Debug, Default)]
struct Possible(Vec<Option<Vec<u8>>>);

impl Possible {
    fn acknowledged(value: Option<Vec<u8>>) -> Self {
        Possible(vec![value])
    }

    fn failed(&mut self, value: Option<Vec<u8>>) {
        self.0.push(value);
    }

    fn allows(&self, got: &Option<Vec<u8>>) -> bool {
        self.0.contains(got)
    }

    fn allows_present(&self, present: bool) -> bool {
        self.0.iter().any(|v| v.is_some() == present)
    }
}

/// Counters of the mixed workload.
#[derive(Default)]
struct Tally {
    done: AtomicUsize,
    failed: AtomicUsize,
}

/// Keys each workload client owns (no two clients write the same key, so each client
/// knows what its keys may hold).
const KEYS_PER_CLIENT: usize = 12;
const CLIENTS: usize = 8;
const OPS_PER_CLIENT: usize = 260;

fn body_of_size(op: usize) -> Vec<u8> {
    let size = match op % 10 {
        0 => 1024 * 1024 + 333, // two blocks
        1 | 2 => 200 * 1024,    // one block
        _ => 100 + op % 5000,   // inline
    };
    random_bytes(size)
}

/// One client of the workload: random PUT/GET/DELETE/LIST on its own keys, checking every
/// answer against what may be there. Returns what its keys may hold at the end.
async fn workload_client(
    s3: aws_sdk_s3::Client,
    bucket: String,
    client: usize,
    tally: Arc<Tally>,
) -> BTreeMap<String, Possible> {
    let keys: Vec<String> = (0..KEYS_PER_CLIENT)
        .map(|k| format!("c{client}/k{k:02}"))
        .collect();
    let mut model: BTreeMap<String, Possible> = keys
        .iter()
        .map(|k| (k.clone(), Possible::acknowledged(None)))
        .collect();
    for op in 0..OPS_PER_CLIENT {
        let key = &keys[rand::random::<u32>() as usize % keys.len()];
        let ok = match rand::random::<u32>() % 20 {
            0..=7 => {
                let body = body_of_size(op);
                let res = s3
                    .put_object()
                    .bucket(&bucket)
                    .key(key)
                    .body(ByteStream::from(body.clone()))
                    .send()
                    .await;
                match res {
                    Ok(out) => {
                        assert_eq!(out.e_tag(), Some(quoted_md5(&body).as_str()), "{key}");
                        model.insert(key.clone(), Possible::acknowledged(Some(body)));
                        true
                    }
                    Err(_) => {
                        model.get_mut(key).unwrap().failed(Some(body));
                        false
                    }
                }
            }
            8..=13 => match try_get(&s3, &bucket, key).await {
                Ok(got) => {
                    assert!(
                        model[key].allows(&got),
                        "GET {key} returned {} bytes that were never acknowledged (or a \
                         deleted/overwritten version)",
                        got.as_ref().map_or(0, Vec::len)
                    );
                    true
                }
                Err(_) => false,
            },
            14..=16 => match s3.delete_object().bucket(&bucket).key(key).send().await {
                Ok(_) => {
                    model.insert(key.clone(), Possible::acknowledged(None));
                    true
                }
                Err(_) => {
                    model.get_mut(key).unwrap().failed(None);
                    false
                }
            },
            _ => {
                let prefix = format!("c{client}/");
                match list_all(&s3, &bucket, Some(&prefix), None, 1000).await {
                    Ok((listed, _)) => {
                        let listed: BTreeSet<&String> = listed.iter().collect();
                        for (k, possible) in &model {
                            assert!(
                                possible.allows_present(listed.contains(k)),
                                "LIST shows {k} {} against the acknowledged writes",
                                if listed.contains(k) {
                                    "present"
                                } else {
                                    "absent"
                                }
                            );
                        }
                        true
                    }
                    Err(_) => false,
                }
            }
        };
        tally.done.fetch_add(1, Ordering::Relaxed);
        if !ok {
            tally.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
    model
}

/// Waits (polling) until the workload has done `ops` operations.
async fn wait_ops(tally: &Tally, ops: usize) {
    while tally.done.load(Ordering::Relaxed) < ops {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Time until CreateBucket succeeds again (the Raft group has a working leader).
async fn until_create_bucket_works(s3: &aws_sdk_s3::Client, limit: Duration) -> Duration {
    let started = Instant::now();
    let name = unique_bucket("after-failover");
    loop {
        match s3.create_bucket().bucket(&name).send().await {
            Ok(_) => return started.elapsed(),
            Err(e) => {
                assert!(
                    started.elapsed() < limit,
                    "CreateBucket still failing {limit:?} after the leader was killed: {:?}",
                    s3_failure(&e)
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Checks that every key of `model` reads back as one of its allowed values.
async fn verify_all(s3: &aws_sdk_s3::Client, bucket: &str, model: &BTreeMap<String, Possible>) {
    for (key, possible) in model {
        let got = try_get(s3, bucket, key)
            .await
            .unwrap_or_else(|e| panic!("GET {key}: {e}"));
        assert!(
            possible.allows(&got),
            "{key}: read {} bytes, not the last acknowledged state",
            got.as_ref().map_or(0, Vec::len)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mixed_workload_loses_nothing_when_the_leader_and_then_a_follower_die() {
    let mut c = Cluster::start_with_env(3, &[("CAIRN_ANTI_ENTROPY_SECS", "2")]);
    let (_second, gateways, bucket) = c.two_gateways_and_bucket("chaos").await;

    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            tokio::spawn(workload_client(
                gateways[i % 2].clone(),
                bucket.clone(),
                i,
                tally.clone(),
            ))
        })
        .collect();
    let total = CLIENTS * OPS_PER_CLIENT;

    // The Raft leader dies a fifth of the way in; metadata writes resume within 5 s.
    wait_ops(&tally, total / 5).await;
    let leader = c.leader(0).expect("a leader");
    c.nodes[leader].kill_9();
    let recovered = until_create_bucket_works(&gateways[1], Duration::from_secs(5)).await;
    eprintln!("leader killed: CreateBucket works again after {recovered:?}");
    wait_ops(&tally, 2 * total / 5).await;
    c.restart_node(leader);

    // Then a follower dies.
    wait_ops(&tally, 3 * total / 5).await;
    let follower = (0..3)
        .find(|i| *i != leader && c.leader(*i) != Some(*i))
        .expect("a follower");
    c.nodes[follower].kill_9();
    wait_ops(&tally, 4 * total / 5).await;
    c.restart_node(follower);

    let mut model = BTreeMap::new();
    for client in clients {
        model.extend(client.await.expect("workload client"));
    }
    let (done, failed) = (
        tally.done.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
    eprintln!("workload: {done} operations, {failed} failed while nodes were down");
    assert_eq!(done, total);
    assert!(
        failed * 10 < total,
        "{failed} of {total} operations failed: one dead node must not stop the cluster"
    );
    verify_all(&gateways[0], &bucket, &model).await;

    // Anti-entropy gives the two restarted nodes their copies back; then the third node
    // dies and everything is still there.
    let ids = [c.node_id(0), c.node_id(1), c.node_id(2)];
    let restarted = [leader, follower];
    let survivor = (0..3).find(|i| !restarted.contains(i)).unwrap();
    wait_until(
        Duration::from_secs(60),
        "the restarted nodes are refilled",
        || {
            let status = c.admin_ok(survivor, &["status"]);
            let records = |i: usize| {
                status
                    .lines()
                    .find(|l| l.starts_with(&ids[i]))
                    .and_then(|l| l.split("up, ").nth(1))
                    .and_then(|s| s.split(' ').next())
                    .and_then(|n| n.parse::<u64>().ok())
            };
            let want = records(survivor);
            want.is_some() && restarted.iter().all(|i| records(*i) >= want)
        },
    );
    c.nodes[survivor].kill_9();
    verify_all(&gateways[1], &bucket, &model).await;
    let (listed, _) = list_all(&gateways[1], &bucket, None, None, 1000)
        .await
        .unwrap();
    for (key, possible) in &model {
        assert!(
            possible.allows_present(listed.contains(key)),
            "{key} listed wrongly"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_down_fail_writes_cleanly_and_keep_what_was_acknowledged() {
    let mut c = Cluster::start(3);
    let s3 = c.client();
    let bucket = new_bucket(&s3, "majority").await;
    let before: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| {
            let size = if i % 5 == 0 { 1024 * 1024 + 9 } else { 700 };
            (format!("before-{i:02}"), random_bytes(size))
        })
        .collect();
    for (key, body) in &before {
        put_checked(&s3, &bucket, key, body).await;
    }

    let leader = c.leader(0).expect("a leader");
    let down: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    for i in &down {
        c.nodes[*i].kill_9();
    }
    // At once (quorum lost) and later (the gateway's metadata went stale): 503, nothing
    // stored.
    let attempts = [
        ("small-now", random_bytes(500)),
        ("large-now", random_bytes(2 * 1024 * 1024 + 1)),
    ];
    for (key, body) in &attempts {
        let res = s3
            .put_object()
            .bucket(&bucket)
            .key(*key)
            .body(ByteStream::from(body.clone()))
            .send()
            .await;
        expect_s3_error(key, res, 503, Some("ServiceUnavailable"));
    }
    // Nodes stop vouching for their metadata 2 s after losing the quorum; gateways fail
    // closed 6 s after the last word.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let res = s3
        .put_object()
        .bucket(&bucket)
        .key("small-later")
        .body(ByteStream::from_static(b"late"))
        .send()
        .await;
    let f = expect_s3_error(
        "PUT with a stale gateway",
        res,
        503,
        Some("ServiceUnavailable"),
    );
    assert!(
        f.message
            .as_deref()
            .is_some_and(|m| m.contains("lost contact")),
        "{f:?}"
    );
    let res = s3
        .get_object()
        .bucket(&bucket)
        .key("before-01")
        .send()
        .await;
    expect_s3_error(
        "GET with a stale gateway",
        res,
        503,
        Some("ServiceUnavailable"),
    );

    // One node comes back: everything acknowledged is there, nothing partial appears.
    c.restart_node(down[0]);
    wait_until(
        Duration::from_secs(20),
        "the gateway is ready again",
        || c.gateway.is_ready(),
    );
    for (key, body) in &before {
        let got = try_get(&s3, &bucket, key).await.unwrap();
        assert_eq!(got.as_deref(), Some(body.as_slice()), "{key}");
    }
    for (key, body) in &attempts {
        match try_get(&s3, &bucket, key).await.unwrap() {
            None => {}
            Some(got) => assert_eq!(got, *body, "{key}: a refused write is visible partially"),
        }
    }
    let (listed, _) = list_all(&s3, &bucket, None, None, 1000).await.unwrap();
    for key in &listed {
        let got = try_get(&s3, &bucket, key).await.unwrap();
        assert!(got.is_some(), "{key} is listed but cannot be read");
    }
    assert!(!listed.iter().any(|k| k == "small-later"));
    put_checked(&s3, &bucket, "after", b"writes work again").await;
}

/// 10k keys: a third at the top level, the rest under `d<n>/s<m>/`.
fn listing_key(i: usize) -> String {
    if i.is_multiple_of(3) {
        format!("top-{i:05}")
    } else {
        format!("d{}/s{}/k-{i:05}", i % 7, i % 4)
    }
}

/// The common prefixes and keys a delimiter listing of `keys` under `prefix` must show.
fn rolled_up(keys: &BTreeSet<String>, prefix: &str) -> (Vec<String>, Vec<String>) {
    let mut direct = Vec::new();
    let mut prefixes = BTreeSet::new();
    for key in keys.iter().filter(|k| k.starts_with(prefix)) {
        match key[prefix.len()..].find('/') {
            Some(at) => {
                prefixes.insert(key[..prefix.len() + at + 1].to_string());
            }
            None => direct.push(key.clone()),
        }
    }
    (direct, prefixes.into_iter().collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listing_10k_keys_stays_exact_after_deletes_a_node_missed() {
    let mut c = Cluster::start(3);
    let s3 = c.client();
    let bucket = new_bucket(&s3, "list10k").await;
    let mut keys: BTreeSet<String> = (0..10_000).map(listing_key).collect();
    let all: Vec<String> = keys.iter().cloned().collect();
    let started = Instant::now();
    futures::future::join_all(all.chunks(all.len() / 16 + 1).map(|chunk| {
        let s3 = s3.clone();
        let bucket = bucket.clone();
        async move {
            for key in chunk {
                put_checked(&s3, &bucket, key, key.as_bytes()).await;
            }
        }
    }))
    .await;
    eprintln!("10k PUTs in {:?}", started.elapsed());

    // A node is down while 1k keys are deleted (half one by one, half with DeleteObjects).
    let victim = (c.leader(0).expect("a leader") + 1) % 3;
    c.nodes[victim].kill_9();
    let doomed: Vec<String> = all.iter().step_by(10).cloned().collect();
    assert_eq!(doomed.len(), 1000);
    for key in &doomed[..500] {
        delete_object(&s3, &bucket, key).await;
    }
    let objects: Vec<ObjectIdentifier> = doomed[500..]
        .iter()
        .map(|k| ObjectIdentifier::builder().key(k).build().unwrap())
        .collect();
    let out = s3
        .delete_objects()
        .bucket(&bucket)
        .delete(
            Delete::builder()
                .set_objects(Some(objects))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(out.deleted().len(), 500);
    assert!(out.errors().is_empty(), "{:?}", out.errors());
    for key in &doomed {
        keys.remove(key);
    }
    c.restart_node(victim);

    let expected: Vec<String> = keys.iter().cloned().collect();
    for page in [1000, 7, 1] {
        let started = Instant::now();
        let (listed, prefixes) = list_all(&s3, &bucket, None, None, page).await.unwrap();
        assert!(prefixes.is_empty());
        assert_eq!(listed.len(), expected.len(), "page size {page}");
        assert!(listed == expected, "page size {page}: the listing differs");
        eprintln!(
            "{} keys in pages of {page}: {:?}",
            listed.len(),
            started.elapsed()
        );

        for prefix in ["", "d3/"] {
            let (direct, common) = rolled_up(&keys, prefix);
            let got = list_all(&s3, &bucket, Some(prefix), Some("/"), page)
                .await
                .unwrap();
            assert_eq!(got.1, common, "prefixes under {prefix:?}, page size {page}");
            assert!(got.0 == direct, "keys under {prefix:?}, page size {page}");
        }
    }
    // ListObjects v1 agrees.
    let mut v1 = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let out = s3
            .list_objects()
            .bucket(&bucket)
            .set_marker(marker.clone())
            .send()
            .await
            .unwrap();
        v1.extend(
            out.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
        if out.is_truncated() != Some(true) {
            break;
        }
        marker = v1.last().cloned();
    }
    assert!(v1 == expected, "ListObjects v1 differs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_down_past_the_tombstone_grace_comes_back_empty_and_resurrects_nothing() {
    let mut c = Cluster::start_with_env(
        3,
        &[
            ("CAIRN_TOMBSTONE_GRACE_SECS", "4"),
            ("CAIRN_GC_INTERVAL_SECS", "1"),
            ("CAIRN_ANTI_ENTROPY_SECS", "2"),
        ],
    );
    let s3 = c.client();
    let bucket = new_bucket(&s3, "grace").await;
    let bodies: Vec<Vec<u8>> = (0..20)
        .map(|i| random_bytes(if i % 4 == 0 { 300 * 1024 } else { 900 }))
        .collect();
    for (i, body) in bodies.iter().enumerate() {
        put_checked(&s3, &bucket, &format!("k{i:02}"), body).await;
    }

    let victim = (c.leader(0).expect("a leader") + 1) % 3;
    c.nodes[victim].kill_9();
    for i in (0..20).step_by(2) {
        s3.delete_object()
            .bucket(&bucket)
            .key(format!("k{i:02}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("DELETE k{i:02}: {:?}", s3_failure(&e)));
    }
    // Past the grace: the victim comes back empty and is refilled; once it answers, the
    // tombstones settle and are collected everywhere.
    std::thread::sleep(Duration::from_secs(6));
    c.restart_node(victim);
    assert!(
        c.nodes[victim].log_contains("offline longer than the tombstone grace"),
        "{}",
        c.nodes[victim].log_tail()
    );
    let ids: Vec<String> = (0..3).map(|i| c.node_id(i)).collect();
    let took = wait_until(
        Duration::from_secs(60),
        "every node holds exactly the 10 live objects",
        || {
            let status = c.admin_ok(victim, &["status"]);
            ids.iter().all(|id| status_records(&status, id) == Some(10))
        },
    );
    eprintln!("refilled and tombstones collected {took:?} after the restart");

    // Another node dies: the refilled victim serves the live keys; deleted ones stay gone.
    let other = (victim + 1) % 3;
    c.nodes[other].kill_9();
    for (i, body) in bodies.iter().enumerate() {
        let got = try_get(&s3, &bucket, &format!("k{i:02}")).await.unwrap();
        let want = (i % 2 == 1).then_some(body.as_slice());
        assert_eq!(got.as_deref(), want, "k{i:02}");
    }
    let (listed, _) = list_all(&s3, &bucket, None, None, 1000).await.unwrap();
    let want: Vec<String> = (1..20).step_by(2).map(|i| format!("k{i:02}")).collect();
    assert_eq!(listed, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_comes_back_under_a_new_identity_and_is_refilled() {
    let mut c = Cluster::start(3);
    let s3 = c.client();
    let bucket = new_bucket(&s3, "wiped").await;
    put_checked(&s3, &bucket, "k", b"kept").await;

    // A follower other than node 0 (node 0 bootstrapped the cluster; the others join it).
    let leader = c.leader(0).expect("a leader");
    let victim = (1..3).find(|i| *i != leader).unwrap();
    let old_id = c.node_id(victim);
    c.nodes[victim].kill_9();
    std::fs::remove_dir_all(c.data_dir(victim)).unwrap();
    std::fs::create_dir_all(c.data_dir(victim)).unwrap();
    c.restart_node(victim);
    let new_id = c.node_id(victim);
    assert!(!new_id.is_empty() && new_id != old_id);
    let status = c.admin_ok(leader, &["status"]);
    let row = |id: &str| {
        status
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{id} not in status:\n{status}"))
            .to_string()
    };
    assert!(row(&new_id).contains("up"), "{status}");
    assert!(
        row(&old_id).contains(&format!("down (its address now serves node {new_id})")),
        "the old identity must not come back:\n{status}"
    );
    assert_eq!(
        try_get(&s3, &bucket, "k").await.unwrap().as_deref(),
        Some(&b"kept"[..])
    );

    // The operator replaces the dead identity with the new one; the transition refills it.
    c.admin_ok(leader, &["layout", "remove", "--force", &old_id]);
    c.admin_ok(leader, &["layout", "add", &new_id]);
    c.admin_ok(leader, &["layout", "apply"]);
    wait_until(Duration::from_secs(60), "the transition finishes", || {
        c.admin_ok(leader, &["layout", "show"])
            .contains("transition: none")
    });
    let status = c.admin_ok(leader, &["status"]);
    assert!(
        status_records(&status, &new_id).is_some_and(|n| n >= 1),
        "the new node holds nothing:\n{status}"
    );
    // The dead identity was a Raft voter: out of the ring, its vote goes to the new node.
    wait_until(
        Duration::from_secs(20),
        "the new node becomes a voter",
        || {
            let status = c.admin_ok(leader, &["status"]);
            status_row(&status, &new_id)
                .is_some_and(|r| r.contains(" voter ") || r.contains(" leader "))
        },
    );
    let other = (0..3).find(|i| *i != victim && *i != leader).unwrap();
    c.nodes[other].kill_9();
    assert_eq!(
        try_get(&s3, &bucket, "k").await.unwrap().as_deref(),
        Some(&b"kept"[..])
    );
}

fn get_block() -> GetBlockRequest {
    GetBlockRequest {
        id: vec![0; 16],
        offset: 0,
        length: 0,
        layout_version: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_answers_a_caller_without_the_cluster_secret() {
    let c = Cluster::start(1);
    let s3 = c.client();
    let bucket = new_bucket(&s3, "secret").await;
    put_checked(&s3, &bucket, "k", &random_bytes(300 * 1024)).await;

    let addr = c.rpc(0);
    // No secret at all: plain tonic clients.
    let url = format!("http://{addr}");
    let res = BlockServiceClient::connect(url.clone())
        .await
        .unwrap()
        .get_block(get_block())
        .await;
    assert_eq!(res.err().map(|s| s.code()), Some(Code::Unauthenticated));
    let res = AdminServiceClient::connect(url.clone())
        .await
        .unwrap()
        .status(StatusRequest {})
        .await;
    assert_eq!(res.err().map(|s| s.code()), Some(Code::Unauthenticated));
    // A wrong secret.
    let peers = Peers::new("not-the-cluster-secret").expect("peers");
    let res = peers.blocks(&addr).unwrap().get_block(get_block()).await;
    assert_eq!(res.err().map(|s| s.code()), Some(Code::Unauthenticated));
    let res = peers.admin(&addr).unwrap().status(StatusRequest {}).await;
    assert_eq!(res.err().map(|s| s.code()), Some(Code::Unauthenticated));
    let res = peers
        .meta(&addr)
        .unwrap()
        .read(MetaReadRequest::default())
        .await;
    assert_eq!(res.err().map(|s| s.code()), Some(Code::Unauthenticated));
    let res = peers
        .objects(&addr)
        .unwrap()
        .get(GetRecordRequest {
            bucket_id: vec![0; 16],
            key: "k".into(),
            layout_version: 0,
            ..Default::default()
        })
        .await;
    assert_eq!(res.err().map(|s| s.code()), Some(Code::Unauthenticated));
    // The right secret gets answers (the refusals above were about the secret).
    let peers = Peers::new(c.cluster_secret()).expect("peers");
    let status = peers.admin(&addr).unwrap().status(StatusRequest {}).await;
    assert!(status.is_ok(), "{status:?}");

    // The admin CLI with a wrong secret is refused too.
    let out = std::process::Command::new(cluster_tests::cairn_bin(cluster_tests::Profile::Debug))
        .args(["status", "--node", &addr])
        .env("CAIRN_CLUSTER_SECRET", "wrong-secret")
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_back_on_an_empty_volume_does_not_answer_for_the_node_it_replaced() {
    let mut c = Cluster::start(3);
    let s3 = c.client();
    let bucket = new_bucket(&s3, "reused-addr").await;
    let body = random_bytes(2 * 1024 * 1024 + 3);
    put_checked(&s3, &bucket, "k", &body).await;

    // Node 2 comes back at the same address on an empty data dir: a new node.
    let old = LayoutNode {
        id: c.node_id(2).parse().unwrap(),
        addr: c.rpc(2),
        ..Default::default()
    };
    c.nodes[2].kill_9();
    std::fs::remove_dir_all(c.data_dir(2)).unwrap();
    c.restart_node(2);
    let new = LayoutNode {
        id: c.node_id(2).parse().unwrap(),
        ..old.clone()
    };
    assert_ne!(new.id, old.id, "an empty data dir is a new node");

    // Calls meant for the old node are refused by the new one, as if the old one were down;
    // calls for the new one, or for whoever answers at the address, are served.
    let peers = Peers::new(c.cluster_secret()).unwrap();
    let get = || GetRecordRequest {
        bucket_id: vec![0; 16],
        key: "k".into(),
        layout_version: 0,
        ..Default::default()
    };
    let refused = peers
        .objects_on(&old)
        .unwrap()
        .get(get())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().starts_with(WRONG_NODE), "{refused:?}");
    let refused = peers
        .blocks_on(&old)
        .unwrap()
        .get_block(get_block())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    let answer = peers.objects_on(&new).unwrap().get(get()).await;
    assert!(answer.is_ok(), "{answer:?}");
    let answer = peers.objects(&old.addr).unwrap().get(get()).await;
    assert!(answer.is_ok(), "{answer:?}");

    // The object stays readable and writable with the old node's place taken by nobody.
    assert_eq!(
        try_get(&s3, &bucket, "k").await.unwrap().as_deref(),
        Some(&body[..])
    );
    put_checked(&s3, &bucket, "after", b"written with one replica gone").await;
}

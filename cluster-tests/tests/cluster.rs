//! Multi-node membership with real processes: `--bootstrap-expect`, quorum reads and writes
//! through a gateway while a node is down, rejoin after restart, leader failover, nodes
//! joining (with and without the cluster secret), layout rules and voter replacement.

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use cluster_tests::{
    Cluster, ClusterOptions, list_keys, put_checked, quoted_md5, random_bytes, status_row,
    unique_bucket, wait_until,
};

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
    put_checked(&s3, &bucket, "small", &small).await;
    put_checked(&s3, &bucket, "large", &large).await;

    // A follower dies: quorum 2 of 3 keeps reads, writes and listings going.
    let leader = c.leader(0).expect("a leader");
    let victim = (leader + 1) % 3;
    let victim_id = c.node_id(victim);
    c.nodes[victim].kill_9();
    assert_eq!(get(&s3, &bucket, "small").await, small);
    assert_eq!(get(&s3, &bucket, "large").await, large);
    let small2 = random_bytes(100);
    let large2 = random_bytes(2 * 1024 * 1024 + 7);
    put_checked(&s3, &bucket, "small2", &small2).await;
    put_checked(&s3, &bucket, "large2", &large2).await;
    assert_eq!(
        list_keys(&s3, &bucket).await,
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
    let status = c.admin_ok(leader, &["status"]);
    let row = status_row(&status, &victim_id).expect("victim listed");
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
        list_keys(&s3, &bucket).await,
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
    let status = c.admin_ok(0, &["status"]);
    let row = status_row(&status, &four_id).expect("4th node in status");
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

    // Layout rules: no more replicas than nodes.
    let out = c.admin(1, &["layout", "apply", "--replication", "5"]);
    assert!(
        !out.success() && out.stderr.contains("replication factor 5"),
        "{}",
        out.stderr
    );
    let s3 = c.client();
    let bucket = unique_bucket("layout");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    put_checked(&s3, &bucket, "k", b"data").await;
    // With data, a ring change is a transition: the older layout stays active until every
    // node of the new one holds its share.
    c.admin_ok(1, &["layout", "remove", &four_id]);
    c.admin_ok(1, &["layout", "apply"]);
    wait_until(Duration::from_secs(60), "the transition finishes", || {
        c.admin_ok(1, &["layout", "show"])
            .contains("transition: none")
    });
    let show = c.admin_ok(0, &["layout", "show"]);
    assert!(
        show.starts_with("layout version 3, replication 3, 3 node(s)"),
        "{show}"
    );
    assert_eq!(get(&s3, &bucket, "k").await, b"data");

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

/// Outcome of a conditional PUT: Ok(ETag) or the HTTP status (and S3 code) it failed with.
async fn conditional_put(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    data: &[u8],
    if_none_match: Option<&str>,
    if_match: Option<&str>,
) -> Result<String, (u16, String)> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .set_if_none_match(if_none_match.map(str::to_string))
        .set_if_match(if_match.map(str::to_string))
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .map(|out| out.e_tag().unwrap_or_default().to_string())
        .map_err(|e| {
            let f = cluster_tests::s3_failure(&e);
            (f.status.unwrap_or(0), f.code.unwrap_or_default())
        })
}

/// Exactly one of two racing conditional writes won; the loser got 412 (or 409, a race AWS
/// also reports as ConditionalRequestConflict). Returns which one won (0 or 1).
fn one_winner(what: &str, results: [&Result<String, (u16, String)>; 2]) -> usize {
    let won: Vec<usize> = (0..2).filter(|i| results[*i].is_ok()).collect();
    assert_eq!(won.len(), 1, "{what}: exactly one succeeds: {results:?}");
    let lost = results[1 - won[0]].as_ref().unwrap_err();
    assert!(
        matches!(lost, (412, c) if c == "PreconditionFailed")
            || matches!(lost, (409, c) if c == "ConditionalRequestConflict"),
        "{what}: the loser gets 412: {results:?}"
    );
    won[0]
}

/// Two gateways race create-only (`If-None-Match: *`) PUTs of the same key on a 3-node
/// cluster, then `If-Match` PUTs naming the same ETag: every time exactly one wins and the
/// object holds its body. Inline and block-stored bodies alternate; 20 rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conditional_writes_race_through_two_gateways() {
    let mut c = Cluster::start(3);
    let (_second, gateways, bucket) = c.two_gateways_and_bucket("race").await;
    let (mut creates, mut updates) = ([0; 2], [0; 2]);
    for round in 0..20 {
        let key = format!("key-{round}");
        let size = if round % 2 == 0 {
            700
        } else {
            1024 * 1024 + 300
        };
        let bodies = [random_bytes(size), random_bytes(size)];
        let (a, b) = tokio::join!(
            conditional_put(&gateways[0], &bucket, &key, &bodies[0], Some("*"), None),
            conditional_put(&gateways[1], &bucket, &key, &bodies[1], Some("*"), None),
        );
        let w = one_winner(&format!("round {round} create"), [&a, &b]);
        creates[w] += 1;
        assert_eq!(get(&gateways[1 - w], &bucket, &key).await, bodies[w]);
        let etag = quoted_md5(&bodies[w]);

        let next = [random_bytes(size), random_bytes(size)];
        let (a, b) = tokio::join!(
            conditional_put(&gateways[0], &bucket, &key, &next[0], None, Some(&etag)),
            conditional_put(&gateways[1], &bucket, &key, &next[1], None, Some(&etag)),
        );
        let w = one_winner(&format!("round {round} If-Match"), [&a, &b]);
        updates[w] += 1;
        assert_eq!(get(&gateways[w], &bucket, &key).await, next[w]);
        // A stale ETag is refused, the current one accepted.
        let stale = conditional_put(
            &gateways[round % 2],
            &bucket,
            &key,
            &bodies[0],
            None,
            Some(&etag),
        )
        .await;
        assert!(
            matches!(stale, Err((412, _))),
            "round {round}: stale If-Match: {stale:?}"
        );
    }
    eprintln!("create-only winners per gateway {creates:?}, If-Match winners {updates:?}");
}

/// The foundation's S3 operations through one gateway of a 3-node cluster, each checked
/// through the other where it reads back.
async fn every_operation(via: &aws_sdk_s3::Client, check: &aws_sdk_s3::Client, bucket: &str) {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};

    via.create_bucket().bucket(bucket).send().await.unwrap();
    check.head_bucket().bucket(bucket).send().await.unwrap();
    let buckets = check.list_buckets().send().await.unwrap();
    assert!(buckets.buckets().iter().any(|b| b.name() == Some(bucket)));
    check
        .get_bucket_location()
        .bucket(bucket)
        .send()
        .await
        .unwrap();

    let small = random_bytes(2000);
    let large = random_bytes(2 * 1024 * 1024 + 3);
    put_checked(via, bucket, "dir/small", &small).await;
    put_checked(via, bucket, "dir/large", &large).await;
    let head = check
        .head_object()
        .bucket(bucket)
        .key("dir/large")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(large.len() as i64));
    let range = check
        .get_object()
        .bucket(bucket)
        .key("dir/large")
        .range("bytes=1048570-1048580")
        .send()
        .await
        .unwrap();
    let part = range.body.collect().await.unwrap().into_bytes();
    assert_eq!(&part[..], &large[1_048_570..=1_048_580]);

    via.copy_object()
        .bucket(bucket)
        .key("copy")
        .copy_source(format!("{bucket}/dir/large"))
        .send()
        .await
        .unwrap();
    assert_eq!(get(check, bucket, "copy").await, large);

    let up = via
        .create_multipart_upload()
        .bucket(bucket)
        .key("multi")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let (p1, p2) = (random_bytes(5 << 20), random_bytes(1000));
    let mut parts = Vec::new();
    for (n, data) in [(1, &p1), (2, &p2)] {
        let out = via
            .upload_part()
            .bucket(bucket)
            .key("multi")
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .set_e_tag(out.e_tag().map(str::to_string))
                .build(),
        );
    }
    let listed = check
        .list_parts()
        .bucket(bucket)
        .key("multi")
        .upload_id(id)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.parts().len(), 2);
    via.complete_multipart_upload()
        .bucket(bucket)
        .key("multi")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(get(check, bucket, "multi").await, [p1, p2].concat());
    let abandoned = via
        .create_multipart_upload()
        .bucket(bucket)
        .key("abandoned")
        .send()
        .await
        .unwrap();
    let uploads = check
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(uploads.uploads().len(), 1);
    via.abort_multipart_upload()
        .bucket(bucket)
        .key("abandoned")
        .upload_id(abandoned.upload_id().unwrap())
        .send()
        .await
        .unwrap();

    assert_eq!(
        list_keys(check, bucket).await,
        ["copy", "dir/large", "dir/small", "multi"]
    );
    let v1 = check
        .list_objects()
        .bucket(bucket)
        .delimiter("/")
        .send()
        .await
        .unwrap();
    assert_eq!(v1.contents().len(), 2);
    assert_eq!(v1.common_prefixes()[0].prefix(), Some("dir/"));

    via.delete_object()
        .bucket(bucket)
        .key("copy")
        .send()
        .await
        .unwrap();
    let gone: Vec<ObjectIdentifier> = ["dir/large", "dir/small", "multi"]
        .into_iter()
        .map(|k| ObjectIdentifier::builder().key(k).build().unwrap())
        .collect();
    let out = via
        .delete_objects()
        .bucket(bucket)
        .delete(Delete::builder().set_objects(Some(gone)).build().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(out.deleted().len(), 3);
    assert!(list_keys(check, bucket).await.is_empty());
    via.delete_bucket().bucket(bucket).send().await.unwrap();
    // The other gateway learns of the delete through its metadata stream (bucket deletion
    // is eventually consistent in S3 too): gone there within moments.
    let deleted = Instant::now();
    while check.head_bucket().bucket(bucket).send().await.is_ok() {
        assert!(
            deleted.elapsed() < Duration::from_secs(5),
            "{bucket} still there through the other gateway"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_works_through_either_of_two_gateways() {
    let mut c = Cluster::start(3);
    let second = c.spawn_gateway();
    let gateways = [c.client(), c.client_via(&second)];
    every_operation(&gateways[0], &gateways[1], &unique_bucket("via-first")).await;
    every_operation(&gateways[1], &gateways[0], &unique_bucket("via-second")).await;
}

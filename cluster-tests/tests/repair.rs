//! Anti-entropy with real processes: a node that was down while objects were written,
//! overwritten and deleted gets its replicas back (records, tombstones, blocks and their
//! references) without operator action, checked by asking that node directly over gRPC.
//! A node that lost its disk comes back as a new node and takes the dead one's place through
//! a layout transition (tests/failures.rs).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cairn_proto::ids::record_blocks;
use cairn_proto::pb::{self, RecordState};
use cluster_tests::{
    Cluster, NodeProbe, list_keys, new_bucket_retrying_503, put_checked, quoted_md5, random_bytes,
    try_get,
};
use futures::StreamExt;

/// Objects written while the node is down.
const OBJECTS: usize = 200;
/// Every this many objects, one spans two blocks (1 MiB blocks); the rest are inline.
const LARGE_EVERY: usize = 4;
/// Objects written before the outage, then half deleted and half overwritten during it.
const EARLIER: usize = 20;

/// What a key should hold at the end: a body, or nothing (deleted).
type Expected = BTreeMap<String, Option<Vec<u8>>>;

fn body_for(i: usize) -> Vec<u8> {
    if i.is_multiple_of(LARGE_EVERY) {
        random_bytes((1 << 20) + 1000 + i)
    } else {
        random_bytes(500 + i)
    }
}

/// `Ok` once the node holds the expected newest version of every key (a tombstone for a
/// deleted one) and every block of every object with its reference; else the first gap.
async fn holds(probe: &NodeProbe, bucket_id: &[u8], expected: &Expected) -> Result<(), String> {
    for (key, want) in expected {
        let record = probe.record(bucket_id, key).await?;
        let record = record.ok_or_else(|| format!("{key}: no record"))?;
        let Some(body) = want else {
            if record.state() != RecordState::Tombstone {
                return Err(format!("{key}: {:?}, not a tombstone", record.state()));
            }
            continue;
        };
        if record.state() != RecordState::Complete || record.etag != quoted_md5(body) {
            return Err(format!("{key}: {:?} {}", record.state(), record.etag));
        }
        if record_blocks(&record).is_empty() {
            let inline = match &record.body {
                Some(pb::object_record::Body::InlineData(d)) => d.to_vec(),
                _ => Vec::new(),
            };
            if inline != *body {
                return Err(format!("{key}: inline body differs"));
            }
            continue;
        }
        let mut data = Vec::new();
        for block in record_blocks(&record) {
            data.extend(probe.block(&block.id).await?);
        }
        if data != *body {
            return Err(format!("{key}: block bodies differ"));
        }
        if !probe.refs_complete(&record).await? {
            return Err(format!("{key}: a block reference is missing"));
        }
    }
    Ok(())
}

async fn put_all(s3: &aws_sdk_s3::Client, bucket: &str, objects: &[(String, Vec<u8>)]) {
    futures::stream::iter(objects)
        .for_each_concurrent(8, |(key, data)| put_checked(s3, bucket, key, data))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_gets_its_replicas_back() {
    let mut c = Cluster::start_with_env(3, &[("CAIRN_ANTI_ENTROPY_SECS", "2")]);
    let s3 = c.client();
    let bucket = new_bucket_retrying_503(&s3, "repair", 10).await;
    let mut expected = Expected::new();

    // Before the outage: objects the down node will hold stale copies of.
    let earlier: Vec<(String, Vec<u8>)> = (0..EARLIER)
        .map(|i| (format!("earlier/{i:03}"), body_for(i)))
        .collect();
    put_all(&s3, &bucket, &earlier).await;

    // A follower goes down; 200 objects are written, earlier ones deleted or overwritten,
    // and some of the new ones deleted again.
    let leader = c.leader(0).expect("a leader");
    let victim = (leader + 1) % 3;
    c.nodes[victim].kill_9();
    let fresh: Vec<(String, Vec<u8>)> = (0..OBJECTS)
        .map(|i| (format!("fresh/{i:03}"), body_for(i)))
        .collect();
    put_all(&s3, &bucket, &fresh).await;
    let overwritten: Vec<(String, Vec<u8>)> = earlier
        .iter()
        .enumerate()
        .skip(EARLIER / 2)
        .map(|(i, (k, _))| (k.clone(), body_for(i + 1)))
        .collect();
    put_all(&s3, &bucket, &overwritten).await;
    let deleted: Vec<&String> = earlier
        .iter()
        .take(EARLIER / 2)
        .chain(fresh.iter().filter(|(k, _)| k.ends_with('3')))
        .map(|(k, _)| k)
        .collect();
    for key in &deleted {
        s3.delete_object()
            .bucket(&bucket)
            .key(key.as_str())
            .send()
            .await
            .unwrap_or_else(|e| panic!("DELETE {key}: {e:?}"));
    }
    for (key, data) in fresh.iter().chain(&overwritten) {
        expected.insert(key.clone(), Some(data.clone()));
    }
    for key in &deleted {
        expected.insert((*key).clone(), None);
    }

    // The node comes back and, without anything reading through it, catches up.
    c.restart_node(victim);
    let probe = NodeProbe::new(&c, victim);
    let bucket_id = probe.bucket_id(&bucket).await;
    let started = Instant::now();
    loop {
        let Err(gap) = holds(&probe, &bucket_id, &expected).await else {
            break;
        };
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "node {victim} not repaired within 120 s; last gap: {gap}\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    eprintln!(
        "node {victim} repaired {:?} after its restart",
        started.elapsed()
    );
    let stats = probe.anti_entropy().await;
    assert!(stats.last_pass_ms > 0 && stats.passes > 0, "{stats:?}");
    let changed = OBJECTS + EARLIER;
    assert!(stats.records_pulled >= changed as u64, "{stats:?}");
    let mut copied = 0;
    for i in 0..3 {
        copied += NodeProbe::new(&c, i).anti_entropy().await.blocks_copied;
    }
    let large = fresh
        .iter()
        .chain(&overwritten)
        .filter(|(k, d)| d.len() > 1 << 20 && expected[k].is_some())
        .count();
    assert!(
        copied >= 2 * large as u64,
        "{copied} blocks copied, {large} large objects"
    );
    let status = c.admin_ok(victim, &["status"]);
    assert!(status.contains("anti-entropy:  last pass"), "{status}");

    // Another node dies: the repaired node and the third one serve everything.
    let other = (victim + 1) % 3;
    c.nodes[other].kill_9();
    for (key, want) in &expected {
        let got = try_get(&s3, &bucket, key)
            .await
            .unwrap_or_else(|e| panic!("GET {key} with node {other} down: {e}"));
        // `None`: 404 NoSuchKey.
        assert!(got == *want, "body of {key}");
    }
    let listed = list_keys(&s3, &bucket).await;
    let live: Vec<String> = expected
        .iter()
        .filter(|(_, v)| v.is_some())
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(listed, live);
}

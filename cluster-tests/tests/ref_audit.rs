//! The block reference audit, end to end against real processes. A gateway killed (-9) in
//! the middle of a PutObject body leaves block references on every replica that nothing
//! releases; on a 3-node cluster with a 4 s upload expiry the nodes' audit finds that no
//! replica holds the owning version any more, drops them, and the collector brings the block
//! directories back to their size before the PUT. Meanwhile the audit checks the references
//! of live data again and again and keeps them all: a complete object, an in-progress
//! multipart upload (completed afterwards) and a completed multipart object read back
//! intact.

use std::time::{Duration, Instant, SystemTime};

use aws_sdk_s3::Client;
use bytes::Bytes;
use cluster_tests::cluster::status_field;
use cluster_tests::multipart::{self, create_upload, upload_part};
use cluster_tests::{
    Cluster, NodeProbe, dir_bytes, http_client, new_bucket, put_checked, random_bytes,
    sign_headers_for_payload, try_get, wait_until,
};
use futures::StreamExt as _;

const MIB: usize = 1024 * 1024;
/// Blocks of live data on every node (R = 3 on 3 nodes): a 3 MiB object, a 7 MiB completed
/// multipart object and 6 MiB of parts of an open upload, in 1 MiB blocks.
const LIVE_BLOCKS: u64 = 3 + 7 + 6;

fn block_bytes(c: &Cluster) -> u64 {
    (0..c.nodes.len())
        .map(|i| dir_bytes(&c.data_dir(i).join("blocks")))
        .sum()
}

/// Block references held on all nodes together, and the audit's counters summed:
/// (held, checked, dropped).
async fn refs(probes: &[NodeProbe]) -> (u64, u64, u64) {
    let mut sum = (0, 0, 0);
    for probe in probes {
        let gc = probe.gc().await;
        sum.0 += gc.block_refs;
        sum.1 += gc.refs_checked;
        sum.2 += gc.refs_dropped;
    }
    sum
}

/// Polls `refs` until `done` holds; panics after `limit`, or at once when `broken` holds.
async fn wait_refs(
    probes: &[NodeProbe],
    limit: Duration,
    what: &str,
    mut done: impl FnMut((u64, u64, u64)) -> bool,
    broken: impl Fn((u64, u64, u64)) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let now = refs(probes).await;
        assert!(!broken(now), "{what}: {now:?}");
        if done(now) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{what}: not within {limit:?}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Starts a multipart upload of `key` and uploads `parts`; returns the upload id and the
/// parts' (number, ETag) pairs.
async fn upload_parts(
    s3: &Client,
    bucket: &str,
    key: &str,
    parts: &[Vec<u8>],
) -> (String, Vec<(i32, String)>) {
    let id = create_upload(s3, bucket, key).await;
    let mut etags = Vec::new();
    for (number, data) in (1..).zip(parts) {
        etags.push((
            number,
            upload_part(s3, bucket, key, &id, number, data).await,
        ));
    }
    (id, etags)
}

async fn complete(s3: &Client, bucket: &str, key: &str, upload: (String, Vec<(i32, String)>)) {
    multipart::complete(s3, bucket, key, &upload.0, &upload.1)
        .await
        .unwrap_or_else(|e| panic!("CompleteMultipartUpload {key}: {e:?}"));
}

/// Asserts that `key` reads back as `body`.
async fn read_back(s3: &Client, bucket: &str, key: &str, body: &[u8]) {
    let got = try_get(s3, bucket, key)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let got = got.unwrap_or_else(|| panic!("{key} is gone"));
    assert!(
        got == body,
        "{key}: {} bytes back, not the {} written",
        got.len(),
        body.len()
    );
}

/// Sends a PutObject of `key` declaring `declared` bytes (UNSIGNED-PAYLOAD) through the
/// gateway at `s3_addr`, sends `sent` of them and then nothing more: the request stays in
/// flight until the gateway goes away.
fn start_stalled_put(
    c: &Cluster,
    bucket: &str,
    key: &str,
    declared: usize,
    sent: usize,
) -> tokio::task::JoinHandle<()> {
    let url = format!("http://{}/{bucket}/{key}", c.gateway.addr("s3"));
    let (headers, _) = sign_headers_for_payload(
        "PUT",
        &url,
        &[],
        "UNSIGNED-PAYLOAD",
        c.root_key(),
        SystemTime::now(),
    );
    let data = Bytes::from(random_bytes(sent));
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..sent)
        .step_by(256 * 1024)
        .map(|at| Ok(data.slice(at..(at + 256 * 1024).min(sent))))
        .collect();
    let body = futures::stream::iter(chunks).chain(futures::stream::pending());
    let mut req = http_client()
        .put(&url)
        .header("content-length", declared.to_string());
    for (name, value) in &headers {
        req = req.header(name, value);
    }
    tokio::spawn(async move {
        let outcome = req.body(reqwest::Body::wrap_stream(body)).send().await;
        assert!(
            outcome.is_err(),
            "the stalled PUT got an answer: {outcome:?}"
        );
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_left_by_a_killed_gateway_are_dropped_and_live_ones_kept() {
    let env = [
        ("CAIRN_UPLOAD_EXPIRY_SECS", "4"),
        ("CAIRN_GC_INTERVAL_SECS", "1"),
        ("CAIRN_BLOCK_GRACE_SECS", "2"),
    ];
    let mut c = Cluster::start_with_env(3, &env);
    let probes = NodeProbe::each(&c);
    let s3 = c.client();
    let bucket = new_bucket(&s3, "ref-audit").await;

    // Live data: an object, a completed multipart object, an upload left open.
    let kept = random_bytes(3 * MIB);
    put_checked(&s3, &bucket, "kept", &kept).await;
    let done_parts = [random_bytes(5 * MIB), random_bytes(2 * MIB)];
    let done_upload = upload_parts(&s3, &bucket, "mpu/done", &done_parts).await;
    complete(&s3, &bucket, "mpu/done", done_upload).await;
    let open_parts = [random_bytes(5 * MIB), random_bytes(MIB)];
    let open_upload = upload_parts(&s3, &bucket, "mpu/open", &open_parts).await;
    // Once the completed upload's part references are released: one per block and node.
    let live_refs = 3 * LIVE_BLOCKS;
    wait_refs(
        &probes,
        Duration::from_secs(30),
        "references of live data only",
        |(held, ..)| held == live_refs,
        |_| false,
    )
    .await;
    let baseline = block_bytes(&c);
    assert!(baseline >= 3 * LIVE_BLOCKS * MIB as u64, "{baseline}");

    // An 8 MiB PUT that stops after 7 MiB: its first blocks are written (with references
    // on all three nodes), then the gateway dies.
    let stalled = start_stalled_put(&c, &bucket, "leaked", 8 * MIB, 7 * MIB);
    wait_refs(
        &probes,
        Duration::from_secs(30),
        "blocks of the stalled PUT written",
        |(held, ..)| held >= live_refs + 3 * 3,
        |_| false,
    )
    .await;
    c.gateway.kill_9();
    let killed = Instant::now();
    stalled.await.expect("the stalled PUT task");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (leaked_refs, ..) = refs(&probes).await;
    let leaked = block_bytes(&c);
    assert!(leaked_refs > live_refs, "{leaked_refs} references");
    assert!(
        leaked >= baseline + 3 * 3 * MIB as u64,
        "{leaked} vs {baseline}"
    );

    // The audit drops the leaked references (never a live one), the collector the blocks.
    wait_refs(
        &probes,
        Duration::from_secs(90),
        "leaked references dropped",
        |(held, ..)| held == live_refs,
        |(held, ..)| held < live_refs,
    )
    .await;
    let refs_back = killed.elapsed();
    tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(60), "leaked blocks freed", || {
            let now = block_bytes(&c);
            assert!(
                now >= baseline,
                "block bytes below the baseline: {now} < {baseline}"
            );
            now == baseline
        })
    });
    let bytes_back = killed.elapsed();
    // The audit dropped them: nothing else releases what a dead gateway took.
    let (_, checked, dropped) = refs(&probes).await;
    assert!(dropped >= leaked_refs - live_refs, "{dropped} dropped");
    // Live references are older than the expiry too: checked on every pass, and kept.
    wait_refs(
        &probes,
        Duration::from_secs(30),
        "live references audited and kept",
        |(_, now_checked, now_dropped)| now_checked - now_dropped >= checked - dropped + live_refs,
        |(held, ..)| held != live_refs,
    )
    .await;
    eprintln!(
        "block bytes on the 3 nodes: {baseline} before the PUT, {leaked} with its leak, \
         {baseline} again {bytes_back:?} after the kill; references: {live_refs} live, \
         {leaked_refs} with the leak, {live_refs} again {refs_back:?} after the kill"
    );

    // The live data reads back through a new gateway; the open upload completes.
    let gateway = c.spawn_gateway();
    let s3 = c.client_via(&gateway);
    read_back(&s3, &bucket, "kept", &kept).await;
    read_back(&s3, &bucket, "mpu/done", &done_parts.concat()).await;
    complete(&s3, &bucket, "mpu/open", open_upload).await;
    read_back(&s3, &bucket, "mpu/open", &open_parts.concat()).await;
    assert_eq!(try_get(&s3, &bucket, "leaked").await, Ok(None));
    let status = c.admin_ok(0, &["status"]);
    let gc = status_field(&status, "gc:");
    assert!(gc.contains("dropped") && !gc.contains("incomplete"), "{gc}");
}

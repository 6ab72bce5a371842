//! Disk-full admission with real processes, without filling a disk: a node started with
//! `CAIRN_DISK_RESERVE_BYTES` far above its free space (1 EiB) is "full". It refuses new data
//! — PutObject (inline and multi-block), UploadPart, CopyObject, CompleteMultipartUpload —
//! with `507 InsufficientStorage`, leaves no partial object, and keeps serving reads,
//! listings and deletes (tombstones, delete markers, purges). In a 3-node cluster one full
//! node is just one failed replica: writes reach their quorum (W=2) on the others. Restarted
//! without the knob, the node takes writes again and anti-entropy fills it in.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use cluster_tests::bucket_config::enable_versioning;
use cluster_tests::multipart::complete;
use cluster_tests::{
    Cluster, NodeProbe, S3Failure, Server, create_upload, delete_object, eventually,
    expect_s3_error, list_keys, new_bucket, put_bytes, put_checked, random_bytes, status_row,
    try_get,
};

const RESERVE_ENV: &str = "CAIRN_DISK_RESERVE_BYTES";
/// A reserve no test machine has free: the node is "full".
const EIB: u64 = 1 << 60;
const MIB: usize = 1 << 20;

/// The status and code every refused write answers with.
const FULL_STATUS: u16 = 507;
const FULL_CODE: &str = "InsufficientStorage";

/// Asserts the refusal names the reason.
#[track_caller]
fn assert_full(f: &S3Failure) {
    let message = f.message.as_deref().unwrap_or_default();
    assert!(
        message.contains("storage full") && message.contains("reserve"),
        "refusal should say the storage is full: {f:?}"
    );
}

/// The value of an unlabelled sample in Prometheus text.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

async fn metrics(http: std::net::SocketAddr) -> String {
    let url = format!("http://{http}/metrics");
    reqwest::get(&url)
        .await
        .and_then(|r| r.error_for_status())
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .text()
        .await
        .expect("metrics body")
}

async fn keys(s3: &aws_sdk_s3::Client, bucket: &str) -> BTreeSet<String> {
    list_keys(s3, bucket).await.into_iter().collect()
}

fn set(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

async fn get_ok(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, want: &[u8]) {
    let got = try_get(s3, bucket, key)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("GET {key}: 404"));
    assert!(got == want, "GET {key}: wrong body ({} bytes)", got.len());
}

async fn upload_part(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    number: i32,
    data: &[u8],
) -> Result<String, S3Failure> {
    s3.upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .part_number(number)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .map(|out| out.e_tag().unwrap_or_default().to_string())
        .map_err(|e| cluster_tests::s3_failure(&e))
}

/// PUTs `data` and asserts the refusal: 507 InsufficientStorage naming the reason.
async fn put_refused(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, data: &[u8], when: &str) {
    let res = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await;
    assert_full(&expect_s3_error(
        &format!("PutObject {key} ({} bytes) {when}", data.len()),
        res,
        FULL_STATUS,
        Some(FULL_CODE),
    ));
}

#[track_caller]
fn expect_full_part(what: &str, res: Result<String, S3Failure>) {
    match res {
        Ok(etag) => panic!("{what}: expected {FULL_STATUS} {FULL_CODE}, got ETag {etag}"),
        Err(f) => {
            assert_eq!(f.status, Some(FULL_STATUS), "{what}: {f:?}");
            assert_eq!(f.code.as_deref(), Some(FULL_CODE), "{what}: {f:?}");
            assert_full(&f);
        }
    }
}

#[tokio::test]
async fn full_server_refuses_new_data_and_keeps_reads_and_deletes() {
    let mut server = Server::start();
    let s3 = server.client();
    let bucket = new_bucket(&s3, "full").await;
    let versioned = new_bucket(&s3, "fullv").await;
    enable_versioning(&s3, &versioned).await;
    let small = random_bytes(100);
    let big = random_bytes(2 * MIB + 5);
    // Parts but the last have at least 5 MiB.
    let part = random_bytes(5 * MIB);
    for (key, data) in [
        ("small", &small),
        ("big", &big),
        ("doomed-small", &small),
        ("doomed-big", &big),
    ] {
        put_checked(&s3, &bucket, key, data).await;
    }
    let v1 = put_bytes(&s3, &versioned, "v", &small).await;
    let v1 = v1.version_id().expect("version id").to_string();
    // An upload with a part stored before the disk "filled up".
    let mp = create_upload(&s3, &bucket, "mp").await;
    let part1 = upload_part(&s3, &bucket, "mp", &mp, 1, &part)
        .await
        .expect("UploadPart before the reserve");

    server.set_env(RESERVE_ENV, Some(&EIB.to_string()));
    server.restart();
    let s3 = server.client();

    // New data is refused with 507 InsufficientStorage.
    for (key, data) in [("new-small", &small), ("new-big", &big)] {
        put_refused(&s3, &bucket, key, data, "while full").await;
    }
    expect_full_part(
        "UploadPart to an upload created before",
        upload_part(&s3, &bucket, "mp", &mp, 2, &part).await,
    );
    // Creating an upload is Raft metadata only; its parts are data.
    let mp2 = create_upload(&s3, &bucket, "mp2").await;
    expect_full_part(
        "UploadPart to an upload created while full",
        upload_part(&s3, &bucket, "mp2", &mp2, 1, &part).await,
    );
    for source in ["big", "small"] {
        let res = s3
            .copy_object()
            .bucket(&bucket)
            .key(format!("copy-{source}"))
            .copy_source(format!("{bucket}/{source}"))
            .send()
            .await;
        assert_full(&expect_s3_error(
            &format!("CopyObject from {source}"),
            res,
            FULL_STATUS,
            Some(FULL_CODE),
        ));
    }
    let res = complete(&s3, &bucket, "mp", &mp, &[(1, &part1)]).await;
    assert_full(&expect_s3_error(
        "CompleteMultipartUpload",
        res,
        FULL_STATUS,
        Some(FULL_CODE),
    ));

    // Nothing partial is visible; what was written before reads back.
    get_ok(&s3, &bucket, "small", &small).await;
    get_ok(&s3, &bucket, "big", &big).await;
    assert_eq!(
        keys(&s3, &bucket).await,
        set(&["big", "doomed-big", "doomed-small", "small"])
    );
    for key in [
        "new-small",
        "new-big",
        "copy-big",
        "copy-small",
        "mp",
        "mp2",
    ] {
        let res = s3.head_object().bucket(&bucket).key(key).send().await;
        expect_s3_error(&format!("HEAD {key}"), res, 404, None);
    }
    for (upload, key, want) in [(&mp, "mp", vec![1]), (&mp2, "mp2", vec![])] {
        let parts = s3
            .list_parts()
            .bucket(&bucket)
            .key(key)
            .upload_id(upload)
            .send()
            .await
            .unwrap();
        let numbers: Vec<i32> = parts
            .parts()
            .iter()
            .filter_map(|p| p.part_number())
            .collect();
        assert_eq!(numbers, want, "parts of {key}");
    }

    // Deletes keep working: tombstones, DeleteObjects, delete markers, purges, aborts.
    delete_object(&s3, &bucket, "doomed-small").await;
    s3.delete_objects()
        .bucket(&bucket)
        .delete(
            Delete::builder()
                .objects(
                    ObjectIdentifier::builder()
                        .key("doomed-big")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("DeleteObjects while full");
    assert_eq!(keys(&s3, &bucket).await, set(&["big", "small"]));
    assert_eq!(try_get(&s3, &bucket, "doomed-big").await, Ok(None));
    let marker = s3
        .delete_object()
        .bucket(&versioned)
        .key("v")
        .send()
        .await
        .expect("delete marker while full");
    assert_eq!(marker.delete_marker(), Some(true));
    let marker = marker.version_id().expect("marker version").to_string();
    for version in [&v1, &marker] {
        s3.delete_object()
            .bucket(&versioned)
            .key("v")
            .version_id(version)
            .send()
            .await
            .unwrap_or_else(|e| panic!("purge of {version} while full: {e:?}"));
    }
    let versions = s3
        .list_object_versions()
        .bucket(&versioned)
        .send()
        .await
        .unwrap();
    assert!(
        versions.versions().is_empty() && versions.delete_markers().is_empty(),
        "{versions:?}"
    );
    s3.abort_multipart_upload()
        .bucket(&bucket)
        .key("mp2")
        .upload_id(&mp2)
        .send()
        .await
        .expect("abort while full");

    // The node says why: metrics and `cairn status`.
    let m = metrics(server.addrs().http).await;
    assert_eq!(sample(&m, "cairn_data_writes_refusing"), Some(1.0), "{m}");
    assert_eq!(sample(&m, "cairn_data_reserve_bytes"), Some(EIB as f64));
    assert!(sample(&m, "cairn_data_writes_refused_total").unwrap_or(0.0) >= 7.0);
    assert!(sample(&m, "cairn_data_free_bytes").unwrap_or(0.0) > 0.0);
    let status = server.admin_ok(&["status"]);
    assert!(
        status.contains("disk:") && status.contains("REFUSING new data"),
        "{status}"
    );

    // Without the knob the default reserve applies and writes work again.
    server.set_env(RESERVE_ENV, None);
    server.restart();
    let s3 = server.client();
    put_checked(&s3, &bucket, "new-small", &small).await;
    put_checked(&s3, &bucket, "new-big", &big).await;
    s3.copy_object()
        .bucket(&bucket)
        .key("copy-big")
        .copy_source(format!("{bucket}/big"))
        .send()
        .await
        .expect("CopyObject after the restart");
    let part2 = upload_part(&s3, &bucket, "mp", &mp, 2, &part)
        .await
        .expect("UploadPart after the restart");
    complete(&s3, &bucket, "mp", &mp, &[(1, &part1), (2, &part2)])
        .await
        .expect("CompleteMultipartUpload after the restart");
    get_ok(&s3, &bucket, "new-big", &big).await;
    get_ok(&s3, &bucket, "copy-big", &big).await;
    get_ok(
        &s3,
        &bucket,
        "mp",
        &[part.as_slice(), part.as_slice()].concat(),
    )
    .await;
    let m = metrics(server.addrs().http).await;
    assert_eq!(sample(&m, "cairn_data_writes_refusing"), Some(0.0), "{m}");
    assert!(sample(&m, "cairn_data_reserve_bytes").unwrap_or(0.0) <= (1u64 << 30) as f64);
}

#[tokio::test]
async fn one_full_node_is_one_failed_replica() {
    let mut c = Cluster::start_with_env(3, &[("CAIRN_ANTI_ENTROPY_SECS", "2")]);
    let full = 2;
    c.nodes[full].set_env(RESERVE_ENV, Some(&EIB.to_string()));
    c.restart_node(full);

    let s3 = c.client();
    let bucket = new_bucket(&s3, "onefull").await;
    let small = random_bytes(100);
    let big = random_bytes(2 * MIB + 5);
    let part = random_bytes(MIB + 3);

    // Every write reaches its quorum on the two nodes with space.
    put_checked(&s3, &bucket, "small", &small).await;
    put_checked(&s3, &bucket, "big", &big).await;
    let mp = create_upload(&s3, &bucket, "mp").await;
    let part1 = upload_part(&s3, &bucket, "mp", &mp, 1, &part)
        .await
        .expect("UploadPart with one node full");
    complete(&s3, &bucket, "mp", &mp, &[(1, &part1)])
        .await
        .expect("CompleteMultipartUpload with one node full");
    s3.copy_object()
        .bucket(&bucket)
        .key("copy")
        .copy_source(format!("{bucket}/big"))
        .send()
        .await
        .expect("CopyObject with one node full");
    get_ok(&s3, &bucket, "small", &small).await;
    get_ok(&s3, &bucket, "big", &big).await;
    get_ok(&s3, &bucket, "mp", &part).await;
    get_ok(&s3, &bucket, "copy", &big).await;
    assert_eq!(
        keys(&s3, &bucket).await,
        set(&["big", "copy", "mp", "small"])
    );

    // The full node holds none of it; the others hold all of it.
    let probes = NodeProbe::each(&c);
    let bucket_id = probes[0].bucket_id(&bucket).await;
    for key in ["small", "big", "mp", "copy"] {
        for (i, probe) in probes.iter().enumerate() {
            let record = probe.record(&bucket_id, key).await.unwrap();
            if i == full {
                assert!(record.is_none(), "the full node stored {key}: {record:?}");
                continue;
            }
            let record = record.unwrap_or_else(|| panic!("node {i} lacks {key}"));
            assert!(
                probe.refs_complete(&record).await.unwrap(),
                "node {i}: {key}"
            );
        }
    }
    let disk = probes[full].status().await.disk.expect("disk status");
    assert!(
        disk.known && disk.refusing && disk.reserve_bytes == EIB,
        "{disk:?}"
    );
    assert!(disk.writes_refused > 0, "{disk:?}");
    let m = metrics(c.nodes[full].addr("http")).await;
    assert_eq!(sample(&m, "cairn_data_writes_refusing"), Some(1.0));
    let m = metrics(c.nodes[0].addr("http")).await;
    assert_eq!(sample(&m, "cairn_data_writes_refusing"), Some(0.0));
    let status = c.admin_ok(0, &["status"]);
    let row = status_row(&status, &c.node_id(full)).unwrap_or_default();
    assert!(row.contains("disk full"), "{status}");

    // With another node down the full one keeps the write quorum from being reached: the
    // client learns the cluster is full (507), not down. As for any write that failed its
    // quorum (see the failures test), the one replica that took it may make it visible
    // later, but only whole: a body in blocks never becomes visible (its `uploading`
    // announcement is what was refused).
    c.nodes[0].kill_9();
    for (key, data) in [("late-small", &small), ("late-big", &big)] {
        put_refused(&s3, &bucket, key, data, "with one node down and one full").await;
    }
    let res = s3
        .head_object()
        .bucket(&bucket)
        .key("late-big")
        .send()
        .await;
    expect_s3_error("HEAD of the refused multi-block PUT", res, 404, None);
    if let Some(got) = try_get(&s3, &bucket, "late-small").await.unwrap() {
        assert!(got == small, "a refused write is visible partially");
    }
    // Reads and deletes still reach their quorum.
    get_ok(&s3, &bucket, "big", &big).await;
    delete_object(&s3, &bucket, "small").await;
    let mut listed = keys(&s3, &bucket).await;
    listed.remove("late-small");
    assert_eq!(listed, set(&["big", "copy", "mp"]));

    // Without the knob the node takes writes again, and anti-entropy fills it in.
    c.nodes[full].set_env(RESERVE_ENV, None);
    c.restart_node(full);
    c.restart_node(0);
    put_checked(&s3, &bucket, "late-small", &small).await;
    put_checked(&s3, &bucket, "late-big", &big).await;
    get_ok(&s3, &bucket, "late-big", &big).await;
    for key in ["big", "mp", "copy"] {
        eventually(
            Duration::from_secs(60),
            &format!("anti-entropy gives the formerly full node {key}"),
            async || match probes[full].record(&bucket_id, key).await {
                Ok(Some(r)) => probes[full].refs_complete(&r).await.unwrap_or(false),
                _ => false,
            },
        )
        .await;
    }
    assert_eq!(
        keys(&s3, &bucket).await,
        set(&["big", "copy", "late-big", "late-small", "mp"])
    );
}

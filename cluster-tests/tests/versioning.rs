//! Bucket versioning on a 3-node cluster with real processes, driven by boto3: enable, put
//! three versions, read each by id, delete markers, deleting versions for good, copying an
//! old version, DeleteObjects with version ids, suspension and the null version — once on a
//! healthy cluster and once with a node killed in the middle of the sequence (then with the
//! node that missed the deletes back and another one down, until anti-entropy has brought it
//! the purges it missed).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cairn_proto::VersionKey;

use cluster_tests::{Cluster, NodeProbe, new_bucket, run_with_timeout};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/scripts/versioning_round_trip.py"
);

/// Runs one phase of the boto3 script against the cluster's gateway; panics with its output
/// (and the cluster's logs) when an assertion in it fails.
fn phase(c: &Cluster, bucket: &str, name: &str, state: &Path) {
    let mut cmd = Command::new("python3");
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env("AWS_ACCESS_KEY_ID", &c.root_key().id)
        .env("AWS_SECRET_ACCESS_KEY", &c.root_key().secret)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .arg(SCRIPT)
        .arg(format!("http://{}", c.gateway.addr("s3")))
        .arg(bucket)
        .arg(name)
        .arg(state);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(180)).expect("run python3");
    assert!(
        out.success() && out.stdout.contains(&format!("OK {name}")),
        "phase {name} on {bucket} failed (boto3 is installed by .ci/run):\n{}\n{}\n--- logs ---\n{}",
        out.stdout,
        out.stderr,
        c.logs()
    );
}

async fn create(c: &Cluster) -> String {
    new_bucket(&c.client(), "versions").await
}

#[tokio::test(flavor = "multi_thread")]
async fn boto3_round_trip_healthy_and_with_a_node_killed_midway() {
    let mut c = Cluster::start(3);
    let dir = tempfile::tempdir().unwrap();

    let healthy = create(&c).await;
    let healthy_state = dir.path().join("healthy.json");
    for name in ["write", "delete", "check"] {
        phase(&c, &healthy, name, &healthy_state);
    }

    let degraded = create(&c).await;
    let state = dir.path().join("degraded.json");
    let bucket_id = NodeProbe::new(&c, 0).bucket_id(&degraded).await;
    phase(&c, &degraded, "write", &state);
    c.nodes[2].kill_9();
    phase(&c, &degraded, "delete", &state);
    phase(&c, &degraded, "check", &state);
    // The node that missed the deletes comes back and another goes down: reads now need the
    // stale node's answer and must still not show what the other survivor purged.
    c.restart_node(2);
    c.nodes[1].kill_9();
    phase(&c, &degraded, "check", &state);
    // Anti-entropy then brings it the purges it missed: v2 of doc.txt is purged there too.
    let ids: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let v2 = VersionKey::from_version_id(ids["ids"][1].as_str().unwrap()).unwrap();
    let probe = NodeProbe::new(&c, 2);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = probe.answer(&bucket_id, "doc.txt", Some(v2.to_pb())).await;
        if answer
            .as_ref()
            .is_ok_and(|a| !a.purged.is_empty() && a.record.is_none())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the purge of v2 did not reach node 2: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    phase(&c, &healthy, "check", &healthy_state);
}

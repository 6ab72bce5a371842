//! `deploy/local-cluster.sh`: one command starts 3 nodes and 2 gateways, prints the endpoints
//! and the key; S3 works through both gateways; SIGTERM stops every process.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster_tests::{Profile, cairn_bin, put_checked, s3_client, try_get, workspace_root};

/// The value after `label` on the script's summary line that starts with it.
fn field(lines: &[String], label: &str) -> String {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(label))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{}", lines.join("\n")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_cluster_script_starts_serves_and_stops_everything() {
    let dir = tempfile::tempdir().unwrap();
    let base = 20_000 + (rand::random::<u16>() % 400) * 50;
    let mut script = Command::new("bash")
        .arg(workspace_root().join("deploy/local-cluster.sh"))
        .args(["-n", "3", "-g", "2", "-p", &base.to_string()])
        .arg("-d")
        .arg(dir.path())
        .arg("-b")
        .arg(cairn_bin(Profile::Debug))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run deploy/local-cluster.sh");

    // The summary ends with the `admin:` line.
    let mut lines = Vec::new();
    let mut out = BufReader::new(script.stdout.take().unwrap()).lines();
    for line in out.by_ref() {
        let line = line.unwrap();
        let last = line.starts_with("admin:");
        lines.push(line);
        if last {
            break;
        }
    }
    let endpoints: Vec<String> = field(&lines, "S3 endpoint(s):")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(endpoints.len(), 2, "{lines:?}");
    let (id, secret) = (
        field(&lines, "access key id:"),
        field(&lines, "secret access key:"),
    );

    let first = s3_client(&endpoints[0], &id, &secret);
    first.create_bucket().bucket("local").send().await.unwrap();
    put_checked(&first, "local", "k", b"through one gateway").await;
    let second = s3_client(&endpoints[1], &id, &secret);
    assert_eq!(
        try_get(&second, "local", "k").await.unwrap().as_deref(),
        Some(&b"through one gateway"[..])
    );

    let pid = script.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let started = Instant::now();
    loop {
        if let Some(status) = script.try_wait().unwrap() {
            eprintln!("script exited with {status} after {:?}", started.elapsed());
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the script did not stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Every process is gone: nothing answers on the gateways any more.
    let gone = s3_client(&endpoints[0], &id, &secret)
        .list_buckets()
        .send()
        .await;
    assert!(
        gone.is_err(),
        "a gateway still answers after the script stopped"
    );
}

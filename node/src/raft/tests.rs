use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cairn_proto::meta::{AccessKey, MetaCommand, MetaError, MetaResult};
use cairn_proto::pb::MetaReadRequest;
use cairn_proto::pb::meta_service_client::MetaServiceClient;
use cairn_proto::secret::AttachSecret;
use openraft::BasicNode;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Code;
use uuid::Uuid;

use super::{MetaRaft, meta_service};

const SECRET: &str = "test-cluster-secret";

async fn open(dir: &Path, id: Uuid, addr: &str) -> Arc<MetaRaft> {
    MetaRaft::open(
        dir,
        id,
        addr.to_string(),
        SECRET.to_string(),
        cairn_proto::tls::Dialer::plaintext(),
    )
    .await
    .expect("open raft")
}

fn create_key(id: &str) -> MetaCommand {
    MetaCommand::CreateKey {
        key: AccessKey {
            id: id.into(),
            secret: "secret".into(),
            allow_create_bucket: true,
            ..Default::default()
        },
    }
}

fn create_bucket(name: &str, owner: &str) -> MetaCommand {
    MetaCommand::CreateBucket {
        id: Uuid::new_v4(),
        name: name.into(),
        owner: owner.into(),
        region: "us-east-1".into(),
        created_ms: 1,
    }
}

/// Binds a free loopback port (so the node can advertise it before the server starts).
async fn listen() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    (listener, addr)
}

/// Serves `MetaService` for `raft` on `listener` in the background.
fn serve(raft: Arc<MetaRaft>, listener: TcpListener) {
    let server = tonic::transport::Server::builder()
        .add_service(meta_service(raft, SECRET))
        .serve_with_incoming(TcpListenerStream::new(listener));
    tokio::spawn(server);
}

#[tokio::test]
async fn bootstrap_write_and_read_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = Uuid::new_v4();
    let raft = open(dir.path(), id, "127.0.0.1:1").await;
    raft.bootstrap_single().await.expect("bootstrap");
    raft.bootstrap_single()
        .await
        .expect("bootstrap is idempotent");

    let status = raft.status();
    assert_eq!(status.role, "leader");
    assert_eq!(status.leader, id.to_string());
    assert!(status.term >= 1);

    assert!(matches!(
        raft.write(create_key("k1")).await,
        Ok(MetaResult::Key(_))
    ));
    let Ok(MetaResult::Bucket(bucket)) = raft.write(create_bucket("photos", "k1")).await else {
        panic!("bucket not created")
    };
    // A refusal by the state machine is an answer, not a transport error.
    assert_eq!(
        raft.write(create_bucket("photos", "k1")).await,
        Ok(MetaResult::Err(MetaError::BucketAlreadyOwnedByYou))
    );

    let (index, state) = raft.current();
    assert!(index >= 3);
    assert_eq!(state.buckets["photos"].id, bucket.id);
    assert!(state.keys["k1"].rights(&bucket.id).owner);

    let (read_index, read_state) = raft.read_linearizable().await.expect("linearizable read");
    assert!(read_index >= index);
    assert_eq!(*read_state, *state);
    raft.shutdown().await;
}

#[tokio::test]
async fn state_survives_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = Uuid::new_v4();

    let raft = open(dir.path(), id, "127.0.0.1:1").await;
    raft.bootstrap_single().await.expect("bootstrap");
    raft.write(create_key("k1")).await.expect("write key");
    raft.write(create_bucket("a", "k1"))
        .await
        .expect("write bucket");
    let (index, before) = raft.current();
    raft.shutdown().await;
    drop(raft);

    let raft = open(dir.path(), id, "127.0.0.1:1").await;
    // Recovered from disk before any election.
    let (reopened_index, after) = raft.current();
    assert_eq!(reopened_index, index);
    assert_eq!(*after, *before);

    raft.bootstrap_single().await.expect("re-elected");
    assert!(matches!(
        raft.write(create_bucket("b", "k1")).await,
        Ok(MetaResult::Bucket(_))
    ));
    let (_, state) = raft.read_linearizable().await.expect("read");
    assert!(state.buckets.contains_key("a") && state.buckets.contains_key("b"));
    raft.shutdown().await;
}

#[tokio::test]
async fn restart_after_snapshot_and_log_purge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = Uuid::new_v4();

    let raft = open(dir.path(), id, "127.0.0.1:1").await;
    raft.bootstrap_single().await.expect("bootstrap");
    for i in 0..5 {
        raft.write(create_key(&format!("k{i}")))
            .await
            .expect("write");
    }
    raft.raft
        .trigger()
        .snapshot()
        .await
        .expect("trigger snapshot");
    let metrics = raft
        .raft
        .wait(Some(Duration::from_secs(10)))
        .metrics(
            |m| m.snapshot.is_some() && m.snapshot == m.last_applied,
            "snapshot built",
        )
        .await
        .expect("snapshot");
    let snapshot_index = metrics
        .snapshot
        .as_ref()
        .map(|l| l.index)
        .expect("snapshot index");
    raft.raft
        .trigger()
        .purge_log(snapshot_index)
        .await
        .expect("purge");
    raft.raft
        .wait(Some(Duration::from_secs(10)))
        .metrics(
            |m| m.purged.as_ref().map(|l| l.index) == Some(snapshot_index),
            "log purged",
        )
        .await
        .expect("purged");
    raft.shutdown().await;
    drop(raft);

    let raft = open(dir.path(), id, "127.0.0.1:1").await;
    raft.bootstrap_single()
        .await
        .expect("re-elected after purge");
    assert_eq!(raft.current().1.keys.len(), 5);
    raft.write(create_key("k5"))
        .await
        .expect("write after purge");
    assert_eq!(
        raft.read_linearizable().await.expect("read").1.keys.len(),
        6
    );
    raft.shutdown().await;
}

#[tokio::test]
async fn subscribers_see_every_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let raft = open(dir.path(), Uuid::new_v4(), "127.0.0.1:1").await;
    raft.bootstrap_single().await.expect("bootstrap");

    let mut rx = raft.subscribe();
    let (start, _) = rx.borrow_and_update().clone();
    raft.write(create_key("k1")).await.expect("write");
    tokio::time::timeout(Duration::from_secs(5), rx.changed())
        .await
        .expect("notified")
        .expect("open channel");
    let (index, state) = rx.borrow_and_update().clone();
    assert!(index > start);
    assert!(state.keys.contains_key("k1"));

    raft.write(create_bucket("b", "k1")).await.expect("write");
    tokio::time::timeout(Duration::from_secs(5), rx.changed())
        .await
        .expect("notified")
        .expect("open channel");
    assert!(rx.borrow().1.buckets.contains_key("b"));
    raft.shutdown().await;
}

#[tokio::test]
async fn meta_service_requires_the_cluster_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (listener, addr) = listen().await;
    let raft = open(dir.path(), Uuid::new_v4(), &addr.to_string()).await;
    raft.bootstrap_single().await.expect("bootstrap");
    raft.write(create_key("k1")).await.expect("write");
    serve(raft.clone(), listener);

    let url = format!("http://{addr}");
    let mut anonymous = MetaServiceClient::connect(url.clone())
        .await
        .expect("connect");
    let refused = anonymous
        .read(MetaReadRequest::default())
        .await
        .expect_err("must be refused");
    assert_eq!(refused.code(), Code::Unauthenticated);
    let refused = anonymous
        .watch(MetaReadRequest::default())
        .await
        .expect_err("must be refused");
    assert_eq!(refused.code(), Code::Unauthenticated);

    let channel = tonic::transport::Endpoint::from_shared(url)
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let wrong = AttachSecret::new("not-the-secret").expect("ascii");
    let mut impostor = MetaServiceClient::with_interceptor(channel.clone(), wrong);
    let refused = impostor
        .read(MetaReadRequest::default())
        .await
        .expect_err("must be refused");
    assert_eq!(refused.code(), Code::Unauthenticated);

    let mut member =
        MetaServiceClient::with_interceptor(channel, AttachSecret::new(SECRET).expect("ascii"));
    let state = member
        .read(MetaReadRequest::default())
        .await
        .expect("authenticated read")
        .into_inner();
    let state: cairn_proto::meta::Metadata =
        serde_json::from_slice(&state.state).expect("state json");
    assert!(state.keys.contains_key("k1"));
    raft.shutdown().await;
}

/// Two members over real gRPC: a follower forwards writes and reads to the leader, and a
/// learner that joins after the log was purged catches up through InstallSnapshot.
#[tokio::test]
async fn followers_forward_and_learners_catch_up_by_snapshot() {
    let dirs = [(); 3].map(|_| tempfile::tempdir().expect("tempdir"));
    let mut nodes = Vec::new();
    for dir in &dirs {
        let (listener, addr) = listen().await;
        let raft = open(dir.path(), Uuid::new_v4(), &addr.to_string()).await;
        serve(raft.clone(), listener);
        nodes.push((raft, addr));
    }
    let (a, b, c) = (&nodes[0].0, &nodes[1].0, &nodes[2].0);
    a.bootstrap_single().await.expect("bootstrap");

    a.raft
        .add_learner(b.id, BasicNode::new(nodes[1].1.to_string()), true)
        .await
        .expect("add learner");
    a.raft
        .change_membership([a.id, b.id], false)
        .await
        .expect("promote");

    // Written through the follower, committed by the leader.
    assert!(matches!(
        b.write(create_key("k1")).await,
        Ok(MetaResult::Key(_))
    ));
    let (_, state) = b.read_linearizable().await.expect("forwarded read");
    assert!(state.keys.contains_key("k1"));
    assert_eq!(b.status().role, "follower");
    assert_eq!(b.status().leader, a.id.to_string());

    // Compact the leader's log, then add a learner: it can only catch up from the snapshot.
    a.raft.trigger().snapshot().await.expect("snapshot");
    let m = a
        .raft
        .wait(Some(Duration::from_secs(10)))
        .metrics(
            |m| m.snapshot.is_some() && m.snapshot == m.last_applied,
            "snapshot built",
        )
        .await
        .expect("snapshot");
    let upto = m.snapshot.as_ref().map(|l| l.index).expect("index");
    a.raft.trigger().purge_log(upto).await.expect("purge");
    a.raft
        .wait(Some(Duration::from_secs(10)))
        .metrics(
            |m| m.purged.as_ref().map(|l| l.index) == Some(upto),
            "purged",
        )
        .await
        .expect("purged");
    a.raft
        .add_learner(c.id, BasicNode::new(nodes[2].1.to_string()), true)
        .await
        .expect("add learner c");
    let mut rx = c.subscribe();
    tokio::time::timeout(
        Duration::from_secs(10),
        rx.wait_for(|(_, s)| s.keys.contains_key("k1")),
    )
    .await
    .expect("learner caught up")
    .expect("open channel");
    assert_eq!(c.status().role, "learner");
    c.raft
        .wait(Some(Duration::from_secs(10)))
        .metrics(
            |m| m.snapshot.is_some_and(|l| l.index >= upto),
            "learner installed the snapshot",
        )
        .await
        .expect("snapshot installed on the learner");

    for (raft, _) in &nodes {
        raft.shutdown().await;
    }
}

/// Environment variable that turns [`kill9_child`] into the writer process of [`kill9_keeps_acknowledged_writes`].
const KILL9_DIR: &str = "CAIRN_TEST_RAFT_KILL9_DIR";

/// Child half of the kill -9 test: writes keys forever, printing each acknowledged one.
/// A no-op unless started by the parent test.
#[tokio::test]
async fn kill9_child() {
    let Some(dir) = std::env::var_os(KILL9_DIR) else {
        return;
    };
    let id: Uuid = std::env::var("CAIRN_TEST_RAFT_KILL9_ID")
        .expect("id")
        .parse()
        .expect("uuid");
    let raft = open(Path::new(&dir), id, "127.0.0.1:1").await;
    raft.bootstrap_single().await.expect("bootstrap");
    for i in 0.. {
        raft.write(create_key(&format!("k{i}")))
            .await
            .expect("write");
        println!("acked {i}");
    }
}

/// After SIGKILL in the middle of a stream of writes, every acknowledged write is recovered.
#[tokio::test]
async fn kill9_keeps_acknowledged_writes() {
    use std::io::BufRead;

    let dir = tempfile::tempdir().expect("tempdir");
    let id = Uuid::new_v4();
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "raft::tests::kill9_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(KILL9_DIR, dir.path())
        .env("CAIRN_TEST_RAFT_KILL9_ID", id.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut last_acked = None;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.expect("read child output");
        if let Some(i) = line.strip_prefix("acked ") {
            last_acked = Some(i.parse::<usize>().expect("index"));
            if last_acked >= Some(50) {
                break;
            }
        }
    }
    child.kill().expect("kill -9");
    child.wait().expect("reap child");
    let last_acked = last_acked.expect("the child acknowledged writes");

    let raft = open(dir.path(), id, "127.0.0.1:1").await;
    // The restarted node re-applies its committed log entries on its own (the state itself is
    // persisted only with snapshots).
    let all_back = |state: &cairn_proto::Metadata| {
        (0..=last_acked).all(|i| state.keys.contains_key(&format!("k{i}")))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !all_back(&raft.current().1) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, state) = raft.current();
    for i in 0..=last_acked {
        assert!(
            state.keys.contains_key(&format!("k{i}")),
            "acknowledged key k{i} lost"
        );
    }
    raft.bootstrap_single().await.expect("re-elected");
    raft.write(create_key("after"))
        .await
        .expect("write after crash");
    raft.shutdown().await;
}

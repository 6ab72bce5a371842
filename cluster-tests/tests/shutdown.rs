//! Graceful shutdown: on SIGTERM `cairn server` turns `/readyz` false, refuses new
//! connections, closes idle keep-alive connections, lets the uploads in flight finish within
//! `--shutdown-grace-secs` (answering them with `Connection: close`) and exits 0. After a
//! restart on the same data dir every upload that got 200 reads back exactly, and nothing
//! that did not get 200 is visible.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use cluster_tests::multipart::{complete, create_upload, upload_part};
use cluster_tests::raw_http::http_get_status;
use cluster_tests::{
    Cluster, KeyPair, Server, ServerOptions, expect_s3_error, get_bytes, http_client, list_keys,
    md5_hex, new_bucket, put_bytes, random_bytes, sign_headers_for_payload, wait_until,
};
use futures::StreamExt as _;
use tokio::sync::oneshot;

/// `--shutdown-grace-secs` of the server under test.
const GRACE: Duration = Duration::from_secs(5);
/// Upper bound on stopping the Raft member after the drain (`SHUTDOWN_TIMEOUT` in roles.rs).
const RAFT_STOP: Duration = Duration::from_secs(5);
const MIB: usize = 1024 * 1024;

/// A PUT (object or part) whose body is sent in `pieces` pieces with `pause` before each;
/// `started` fires once two pieces are on the wire (the request is then in flight).
struct SlowPut {
    path_and_query: String,
    data: Bytes,
    pieces: usize,
    pause: Duration,
}

/// What a slow PUT got: the status and `Connection` header, or the transport error.
#[derive(Debug)]
enum Outcome {
    Answered {
        status: u16,
        connection: Option<String>,
        etag: Option<String>,
    },
    Failed(String),
}

impl Outcome {
    /// Asserts a 200 answer sent while draining (so with `Connection: close`); its ETag.
    #[track_caller]
    fn expect_drained_ok(self, what: &str) -> Option<String> {
        match self {
            Outcome::Answered {
                status: 200,
                connection,
                etag,
            } => {
                assert_eq!(
                    connection.as_deref(),
                    Some("close"),
                    "{what}: answered while draining without `Connection: close`"
                );
                etag
            }
            other => panic!("{what} was in flight at SIGTERM and did not finish: {other:?}"),
        }
    }

    /// Asserts the request was cut off (no answer) when the process exited.
    #[track_caller]
    fn expect_cut_off(self, what: &str) {
        match self {
            Outcome::Failed(e) => eprintln!("{what} cut off at exit: {e}"),
            other => panic!("{what} outlasted the grace yet got an answer: {other:?}"),
        }
    }
}

/// A PUT taking about 1.2 s: finishes within the grace.
fn short_put(path_and_query: String, data: &[u8]) -> SlowPut {
    SlowPut {
        path_and_query,
        data: Bytes::copy_from_slice(data),
        pieces: 12,
        pause: Duration::from_millis(100),
    }
}

/// A PUT taking about 40 s: outlasts the grace.
fn long_put(path_and_query: String, data: &[u8]) -> SlowPut {
    SlowPut {
        path_and_query,
        data: Bytes::copy_from_slice(data),
        pieces: 40,
        pause: Duration::from_secs(1),
    }
}

impl SlowPut {
    /// Sends the request (UNSIGNED-PAYLOAD, Content-Length declared).
    async fn send(self, server: &str, key: &KeyPair, started: oneshot::Sender<()>) -> Outcome {
        let url = format!("{server}{}", self.path_and_query);
        let (headers, _) =
            sign_headers_for_payload("PUT", &url, &[], "UNSIGNED-PAYLOAD", key, SystemTime::now());
        let piece = self.data.len().div_ceil(self.pieces);
        let chunks: Vec<Bytes> = (0..self.pieces)
            .map(|i| {
                let start = (i * piece).min(self.data.len());
                self.data
                    .slice(start..((i + 1) * piece).min(self.data.len()))
            })
            .collect();
        let pause = self.pause;
        let mut started = Some(started);
        let body = futures::stream::iter(chunks.into_iter().enumerate()).then(move |(i, c)| {
            if i == 2
                && let Some(tx) = started.take()
            {
                let _ = tx.send(());
            }
            async move {
                tokio::time::sleep(pause).await;
                Ok::<_, std::io::Error>(c)
            }
        });
        let mut req = http_client()
            .put(&url)
            .header("content-length", self.data.len().to_string());
        for (name, value) in &headers {
            req = req.header(name, value);
        }
        match req.body(reqwest::Body::wrap_stream(body)).send().await {
            Ok(resp) => {
                let header = |name: &str| {
                    resp.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                let (connection, etag) = (header("connection"), header("etag"));
                let status = resp.status().as_u16();
                let _ = resp.bytes().await;
                Outcome::Answered {
                    status,
                    connection,
                    etag,
                }
            }
            Err(e) => Outcome::Failed(format!("{e:?}")),
        }
    }
}

/// Starts a slow PUT to the S3 endpoint `url` in the background; returns once it is in
/// flight.
async fn start_put(url: &str, key: &KeyPair, put: SlowPut) -> tokio::task::JoinHandle<Outcome> {
    let (tx, rx) = oneshot::channel();
    let (url, key) = (url.to_string(), key.clone());
    let task = tokio::spawn(async move { put.send(&url, &key, tx).await });
    rx.await.expect("the slow PUT started sending its body");
    task
}

/// Whether a TCP connection to `addr` is refused.
fn refused(addr: SocketAddr) -> bool {
    matches!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

/// An HTTP/1.1 connection to the S3 port that has had one answer and stays open (idle
/// keep-alive).
fn idle_keep_alive(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect to S3");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_drains_uploads_in_flight_and_shows_no_partial_object() {
    let mut server = Server::start_with(ServerOptions {
        extra_args: vec!["--shutdown-grace-secs".into(), GRACE.as_secs().to_string()],
        ..Default::default()
    });
    let s3 = server.client();
    let bucket = new_bucket(&s3, "shutdown").await;
    let before = random_bytes(3 * MIB + 5);
    put_bytes(&s3, &bucket, "before", &before).await;

    // Multipart uploads: one whose second part is in flight (short), one whose only part is
    // in flight far beyond the grace.
    let mp_short = create_upload(&s3, &bucket, "mp-short").await;
    let part1 = random_bytes(5 * MIB);
    let part1_etag = upload_part(&s3, &bucket, "mp-short", &mp_short, 1, &part1).await;
    let mp_long = create_upload(&s3, &bucket, "mp-long").await;

    let idle = idle_keep_alive(server.addrs().s3);
    let (url, key) = (server.s3_url(), server.root_key().clone());
    let short_obj = random_bytes(2 * MIB + 7);
    let part2 = random_bytes(MIB + 3);
    let long_obj = random_bytes(2 * MIB);
    let long_part = random_bytes(5 * MIB);
    let uploads = [
        long_put(format!("/{bucket}/long"), &long_obj),
        long_put(
            format!("/{bucket}/mp-long?partNumber=1&uploadId={mp_long}"),
            &long_part,
        ),
        short_put(format!("/{bucket}/short"), &short_obj),
        short_put(
            format!("/{bucket}/mp-short?partNumber=2&uploadId={mp_short}"),
            &part2,
        ),
    ];
    let mut running = Vec::new();
    for put in uploads {
        running.push(start_put(&url, &key, put).await);
    }

    let signalled = Instant::now();
    server.terminate();
    let addrs = server.addrs();
    wait_until(
        Duration::from_secs(3),
        "/readyz answers 503 after SIGTERM",
        || http_get_status(addrs.http, "/readyz").ok() == Some(503),
    );
    wait_until(
        Duration::from_secs(3),
        "the S3 port refuses connections after SIGTERM",
        || refused(addrs.s3),
    );
    if let Some(web) = addrs.web {
        wait_until(
            Duration::from_secs(3),
            "the website port refuses connections after SIGTERM",
            || refused(web),
        );
    }
    // The idle keep-alive connection is closed by the server, not left to the grace.
    let mut idle = idle;
    let mut buf = [0u8; 1];
    assert!(
        matches!(idle.read(&mut buf), Ok(0) | Err(_)),
        "an idle keep-alive connection stays open while draining"
    );
    assert!(
        signalled.elapsed() < GRACE,
        "the idle keep-alive connection was only closed after {:?}",
        signalled.elapsed()
    );

    let [long, long_part, short, short_part] = <[_; 4]>::try_from(running).unwrap();
    short.await.unwrap().expect_drained_ok("PUT short");
    let part2_etag = short_part
        .await
        .unwrap()
        .expect_drained_ok("UploadPart 2")
        .expect("UploadPart 2 has an ETag");

    let status = server
        .wait_exit(GRACE + RAFT_STOP + Duration::from_secs(5))
        .expect("the server did not exit after the grace");
    let exited_after = signalled.elapsed();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(
        exited_after <= GRACE + RAFT_STOP,
        "exited {exited_after:?} after SIGTERM (grace {GRACE:?})"
    );
    eprintln!("exited 0 {exited_after:?} after SIGTERM (grace {GRACE:?})");
    long.await.unwrap().expect_cut_off("PUT long");
    long_part
        .await
        .unwrap()
        .expect_cut_off("UploadPart 1 of mp-long");

    // Restart on the same data dir: what got 200 is there, nothing else.
    server.restart();
    let s3 = server.client();
    for (key, data) in [("before", &before), ("short", &short_obj)] {
        let body = get_bytes(&s3, &bucket, key).await;
        assert_eq!(
            md5_hex(&body),
            md5_hex(data),
            "{key} reads back other bytes"
        );
    }
    for key in ["long", "mp-long", "mp-short"] {
        expect_s3_error(
            &format!("HEAD {key} after restart"),
            s3.head_object().bucket(&bucket).key(key).send().await,
            404,
            None,
        );
        expect_s3_error(
            &format!("GET {key} after restart"),
            s3.get_object().bucket(&bucket).key(key).send().await,
            404,
            Some("NoSuchKey"),
        );
    }
    let listed = list_keys(&s3, &bucket).await;
    assert_eq!(listed, ["before", "short"], "listing after restart");
    let long_parts = s3
        .list_parts()
        .bucket(&bucket)
        .key("mp-long")
        .upload_id(&mp_long)
        .send()
        .await
        .unwrap();
    assert!(
        long_parts.parts().is_empty(),
        "an interrupted part is listed: {:?}",
        long_parts.parts()
    );

    // The part that finished during the drain completes the upload with the right bytes.
    let parts = [(1, part1_etag), (2, part2_etag)];
    complete(&s3, &bucket, "mp-short", &mp_short, &parts)
        .await
        .unwrap();
    let body = get_bytes(&s3, &bucket, "mp-short").await;
    assert_eq!(md5_hex(&body), md5_hex(&[part1, part2].concat()));

    // Nothing in flight (the client's pooled connections are idle): exits at once.
    let signalled = Instant::now();
    server.terminate();
    let status = server
        .wait_exit(GRACE + RAFT_STOP)
        .expect("an idle server did not exit");
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(
        signalled.elapsed() < GRACE,
        "an idle server took {:?} to exit (grace {GRACE:?})",
        signalled.elapsed()
    );
    eprintln!(
        "idle server exited 0 {:?} after SIGTERM",
        signalled.elapsed()
    );
}

/// The default `--shutdown-grace-secs`.
const DEFAULT_GRACE: Duration = Duration::from_secs(25);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_drains_a_gateway_and_a_node_of_a_cluster() {
    let mut cluster = Cluster::start(3);
    let s3 = cluster.client();
    let bucket = new_bucket(&s3, "shutdown-cluster").await;

    // The gateway finishes the upload in flight, then exits without waiting out its grace.
    let data = random_bytes(2 * MIB + 1);
    let url = format!("http://{}", cluster.gateway.addr("s3"));
    let put = short_put(format!("/{bucket}/drained"), &data);
    let put = start_put(&url, cluster.root_key(), put).await;
    let signalled = Instant::now();
    cluster.gateway.terminate();
    let s3_addr = cluster.gateway.addr("s3");
    wait_until(
        Duration::from_secs(3),
        "the gateway's S3 port refuses connections after SIGTERM",
        || refused(s3_addr),
    );
    put.await
        .unwrap()
        .expect_drained_ok("PUT through the gateway");
    let status = cluster
        .gateway
        .wait_exit(DEFAULT_GRACE + RAFT_STOP)
        .expect("the gateway did not exit");
    assert!(
        status.success(),
        "gateway exit status after SIGTERM: {status}"
    );
    assert!(signalled.elapsed() < DEFAULT_GRACE);
    eprintln!("gateway exited 0 {:?} after SIGTERM", signalled.elapsed());

    let gateway = cluster.spawn_gateway();
    let s3 = cluster.client_via(&gateway);
    let read = async |s3: &aws_sdk_s3::Client| md5_hex(&get_bytes(s3, &bucket, "drained").await);
    assert_eq!(read(&s3).await, md5_hex(&data));

    // A node stops at once although peers hold connections to it and the gateway its
    // metadata watch stream (a gateway follows the first node of its `--nodes` first).
    let signalled = Instant::now();
    cluster.nodes[0].terminate();
    let status = cluster.nodes[0]
        .wait_exit(DEFAULT_GRACE + RAFT_STOP)
        .expect("the node did not exit");
    assert!(status.success(), "node exit status after SIGTERM: {status}");
    assert!(
        signalled.elapsed() < DEFAULT_GRACE,
        "the node waited out its grace: {:?}",
        signalled.elapsed()
    );
    eprintln!("node exited 0 {:?} after SIGTERM", signalled.elapsed());
    assert_eq!(read(&s3).await, md5_hex(&data));
}

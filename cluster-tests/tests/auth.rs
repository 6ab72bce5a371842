//! Authentication and authorization: bad signatures, unknown keys, anonymous requests,
//! presigned URLs, per-bucket rights of a second key (via the admin CLI), unknown
//! sub-resources.

use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::presigning::{PresignedRequest, PresigningConfig};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use cluster_tests::{
    KeyPair, RawResponse, S3Failure, Server, delete_object, eventually, expect_s3_error, get_bytes,
    list_keys, new_bucket, put_bytes, raw_request, s3_client, s3_failure, sign_headers,
    unique_bucket,
};

fn server() -> &'static Server {
    Server::shared()
}

async fn bucket_with_object(s3: &Client, key: &str, body: &[u8]) -> String {
    let bucket = new_bucket(s3, "auth").await;
    put_bytes(s3, &bucket, key, body).await;
    bucket
}

#[tokio::test]
async fn wrong_secret_is_signature_does_not_match() {
    let server = server();
    let bucket = bucket_with_object(&server.client(), "k", b"data").await;
    let bad = s3_client(
        &server.s3_url(),
        &server.root_key().id,
        "not-the-secret-at-all",
    );
    expect_s3_error(
        "ListBuckets with a wrong secret",
        bad.list_buckets().send().await,
        403,
        Some("SignatureDoesNotMatch"),
    );
    expect_s3_error(
        "GetObject with a wrong secret",
        bad.get_object().bucket(&bucket).key("k").send().await,
        403,
        Some("SignatureDoesNotMatch"),
    );
    expect_s3_error(
        "PutObject with a wrong secret",
        bad.put_object()
            .bucket(&bucket)
            .key("evil")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
        403,
        Some("SignatureDoesNotMatch"),
    );
    expect_s3_error(
        "the rejected PUT did not happen",
        server
            .client()
            .head_object()
            .bucket(&bucket)
            .key("evil")
            .send()
            .await,
        404,
        None,
    );
}

#[tokio::test]
async fn unknown_key_is_invalid_access_key_id() {
    let server = server();
    let bucket = bucket_with_object(&server.client(), "k", b"data").await;
    let unknown = s3_client(&server.s3_url(), "GKUNKNOWNUNKNOWN0000", "whatever-secret");
    expect_s3_error(
        "ListBuckets with an unknown key",
        unknown.list_buckets().send().await,
        403,
        Some("InvalidAccessKeyId"),
    );
    expect_s3_error(
        "GetObject with an unknown key",
        unknown.get_object().bucket(&bucket).key("k").send().await,
        403,
        Some("InvalidAccessKeyId"),
    );
}

#[tokio::test]
async fn anonymous_requests_are_denied() {
    let server = server();
    let bucket = bucket_with_object(&server.client(), "k", b"data").await;
    for (method, path) in [
        ("GET", "/".to_string()),
        ("GET", format!("/{bucket}")),
        ("GET", format!("/{bucket}?list-type=2")),
        ("GET", format!("/{bucket}/k")),
        ("HEAD", format!("/{bucket}/k")),
        ("PUT", format!("/{bucket}/anon")),
        ("DELETE", format!("/{bucket}/k")),
        ("PUT", format!("/{}", unique_bucket("anon"))),
    ] {
        let resp = raw_request(method, &server.url(&path), &[], b"x".to_vec()).await;
        let code = if method == "HEAD" {
            None
        } else {
            Some("AccessDenied")
        };
        resp.expect(&format!("anonymous {method} {path}"), 403, code);
    }
    // Nothing changed.
    assert_eq!(get_bytes(&server.client(), &bucket, "k").await, b"data");
}

async fn send_presigned(req: &PresignedRequest, body: Vec<u8>) -> RawResponse {
    let headers: Vec<(&str, &str)> = req.headers().collect();
    raw_request(req.method(), req.uri(), &headers, body).await
}

#[tokio::test]
async fn presigned_urls() {
    let server = server();
    let s3 = server.client();
    let bucket = bucket_with_object(&s3, "presigned get", b"presigned content").await;
    let hour = PresigningConfig::expires_in(Duration::from_secs(3600)).unwrap();

    let get = s3
        .get_object()
        .bucket(&bucket)
        .key("presigned get")
        .presigned(hour.clone())
        .await
        .unwrap();
    let resp = send_presigned(&get, vec![]).await;
    resp.expect("presigned GET", 200, None);
    assert_eq!(resp.body.as_ref(), b"presigned content");

    let put = s3
        .put_object()
        .bucket(&bucket)
        .key("presigned put")
        .presigned(hour.clone())
        .await
        .unwrap();
    let resp = send_presigned(&put, b"uploaded through a presigned URL".to_vec()).await;
    resp.expect("presigned PUT", 200, None);
    assert_eq!(
        get_bytes(&s3, &bucket, "presigned put").await,
        b"uploaded through a presigned URL"
    );

    // Signed for another key: the signature does not match.
    let tampered = get.uri().replace("presigned%20get", "presigned%20put");
    assert_ne!(tampered, get.uri(), "could not tamper with {}", get.uri());
    let resp = raw_request("GET", &tampered, &[], vec![]).await;
    resp.expect("tampered presigned GET", 403, Some("SignatureDoesNotMatch"));

    // Expired an hour ago.
    let expired = PresigningConfig::builder()
        .start_time(SystemTime::now() - Duration::from_secs(7200))
        .expires_in(Duration::from_secs(3600))
        .build()
        .unwrap();
    let old = s3
        .get_object()
        .bucket(&bucket)
        .key("presigned get")
        .presigned(expired.clone())
        .await
        .unwrap();
    send_presigned(&old, vec![])
        .await
        .expect("expired presigned GET", 403, Some("AccessDenied"));
    let old_put = s3
        .put_object()
        .bucket(&bucket)
        .key("expired put")
        .presigned(expired)
        .await
        .unwrap();
    send_presigned(&old_put, b"late".to_vec()).await.expect(
        "expired presigned PUT",
        403,
        Some("AccessDenied"),
    );
    expect_s3_error(
        "object of the expired PUT",
        s3.head_object()
            .bucket(&bucket)
            .key("expired put")
            .send()
            .await,
        404,
        None,
    );
}

/// Every operation of the rights test, run with one client; `tag` keeps keys apart.
async fn run_ops(
    s3: &Client,
    root: &Client,
    bucket: &str,
    tag: &str,
) -> Vec<(&'static str, Result<(), S3Failure>)> {
    fn r<T, E>(res: Result<T, aws_sdk_s3::error::SdkError<E>>) -> Result<(), S3Failure>
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        res.map(|_| ()).map_err(|e| s3_failure(&e))
    }
    // Victims for the delete operations, created by the owner.
    let victim = format!("victim-{tag}");
    let victim2 = format!("victim2-{tag}");
    for k in [&victim, &victim2] {
        put_bytes(root, bucket, k, b"v").await;
    }
    let mut out = Vec::new();
    out.push((
        "ListObjectsV2",
        r(s3.list_objects_v2().bucket(bucket).send().await),
    ));
    out.push((
        "ListObjects",
        r(s3.list_objects().bucket(bucket).send().await),
    ));
    out.push((
        "GetObject",
        r(s3.get_object().bucket(bucket).key("existing").send().await),
    ));
    out.push((
        "HeadObject",
        r(s3.head_object().bucket(bucket).key("existing").send().await),
    ));
    out.push((
        "HeadBucket",
        r(s3.head_bucket().bucket(bucket).send().await),
    ));
    out.push((
        "GetBucketLocation",
        r(s3.get_bucket_location().bucket(bucket).send().await),
    ));
    out.push((
        "PutObject",
        r(s3.put_object()
            .bucket(bucket)
            .key(format!("put-{tag}"))
            .body(ByteStream::from_static(b"p"))
            .send()
            .await),
    ));
    out.push((
        "DeleteObject",
        r(s3.delete_object().bucket(bucket).key(&victim).send().await),
    ));
    out.push((
        "CopyObject",
        r(s3.copy_object()
            .copy_source(format!("{bucket}/existing"))
            .bucket(bucket)
            .key(format!("copy-{tag}"))
            .send()
            .await),
    ));
    let del = s3
        .delete_objects()
        .bucket(bucket)
        .delete(
            Delete::builder()
                .objects(ObjectIdentifier::builder().key(&victim2).build().unwrap())
                .build()
                .unwrap(),
        )
        .send()
        .await;
    // S3 may refuse the whole request, or answer 200 with a per-key AccessDenied.
    let del = match del {
        Ok(o) if !o.errors().is_empty() => Err(S3Failure {
            status: Some(403),
            code: o.errors()[0].code().map(str::to_string),
            message: o.errors()[0].message().map(str::to_string),
            detail: format!("{o:?}"),
        }),
        other => r(other),
    };
    out.push(("DeleteObjects", del));

    // What the writes did, seen by the owner.
    let exists = |key: String| async move {
        root.head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .is_ok()
    };
    let effects = [
        ("PutObject", exists(format!("put-{tag}")).await),
        ("DeleteObject", !exists(victim.clone()).await),
        ("CopyObject", exists(format!("copy-{tag}")).await),
        ("DeleteObjects", !exists(victim2.clone()).await),
    ];
    for (name, happened) in effects {
        let entry = out.iter().find(|(n, _)| *n == name).unwrap();
        assert_eq!(
            entry.1.is_ok(),
            happened,
            "{name} with tag {tag}: answer {:?} but effect happened={happened}",
            entry.1
        );
    }
    out
}

const READS: [&str; 5] = [
    "ListObjectsV2",
    "ListObjects",
    "GetObject",
    "HeadObject",
    "HeadBucket",
];
const WRITES: [&str; 4] = ["PutObject", "DeleteObject", "CopyObject", "DeleteObjects"];

#[track_caller]
fn assert_allowed(ops: &[(&str, Result<(), S3Failure>)], names: &[&str], phase: &str) {
    for (name, res) in ops.iter().filter(|(n, _)| names.contains(n)) {
        assert!(
            res.is_ok(),
            "{phase}: {name} should be allowed, got {res:?}"
        );
    }
}

#[track_caller]
fn assert_denied(ops: &[(&str, Result<(), S3Failure>)], names: &[&str], phase: &str) {
    for (name, res) in ops.iter().filter(|(n, _)| names.contains(n)) {
        let f = match res {
            Ok(()) => panic!("{phase}: {name} should be denied but succeeded"),
            Err(f) => f,
        };
        assert_eq!(f.status, Some(403), "{phase}: {name}: {f:?}");
        if !name.starts_with("Head") {
            assert_eq!(
                f.code.as_deref(),
                Some("AccessDenied"),
                "{phase}: {name}: {f:?}"
            );
        }
    }
}

/// Rights changes go through Raft and a watch stream: give them a few seconds to apply.
async fn in_effect(what: &str, probe: impl AsyncFnMut() -> bool) {
    eventually(Duration::from_secs(10), what, probe).await;
}

/// Whether `s3` may write to `bucket` (a PUT of `probe`).
async fn may_write(s3: &Client, bucket: &str) -> bool {
    let put = s3.put_object().bucket(bucket).key("probe");
    put.body(ByteStream::from_static(b"p")).send().await.is_ok()
}

#[tokio::test]
async fn per_bucket_rights_of_a_second_key() {
    let server = server();
    let root = server.client();
    let bucket = bucket_with_object(&root, "existing", b"existing body").await;
    let key: KeyPair = server.create_key("second");
    assert_ne!(key.id, server.root_key().id);
    let other = server.client_for(&key);
    let all: Vec<&str> = READS
        .iter()
        .chain(WRITES.iter())
        .copied()
        .chain(["GetBucketLocation"])
        .collect();

    // 1. No rights at all.
    let ops = run_ops(&other, &root, &bucket, "none").await;
    assert_denied(&ops, &all, "no rights");
    expect_s3_error(
        "CreateBucket without the create-bucket right",
        other
            .create_bucket()
            .bucket(unique_bucket("nope"))
            .send()
            .await,
        403,
        Some("AccessDenied"),
    );
    let listed = other.list_buckets().send().await.unwrap();
    assert!(
        !listed
            .buckets()
            .iter()
            .any(|b| b.name() == Some(bucket.as_str())),
        "a key without rights sees the bucket in ListBuckets: {listed:?}"
    );

    // 2. Read only.
    server.admin_ok(&["key", "allow", &key.id, "--bucket", &bucket, "--read"]);
    in_effect("--read", async || {
        other.list_objects_v2().bucket(&bucket).send().await.is_ok()
    })
    .await;
    let ops = run_ops(&other, &root, &bucket, "read").await;
    assert_allowed(&ops, &READS, "read only");
    assert_denied(&ops, &WRITES, "read only");

    // 3. Read + write.
    server.admin_ok(&[
        "key", "allow", &key.id, "--bucket", &bucket, "--read", "--write",
    ]);
    in_effect("--write", async || may_write(&other, &bucket).await).await;
    let ops = run_ops(&other, &root, &bucket, "readwrite").await;
    assert_allowed(&ops, &all, "read+write");
    assert_eq!(
        get_bytes(&other, &bucket, "existing").await,
        b"existing body"
    );
    let listed = other.list_buckets().send().await.unwrap();
    assert!(
        listed
            .buckets()
            .iter()
            .any(|b| b.name() == Some(bucket.as_str())),
        "a key with rights should see the bucket in ListBuckets: {listed:?}"
    );
    // Deleting the bucket needs the owner right.
    expect_s3_error(
        "DeleteBucket without owner right",
        other.delete_bucket().bucket(&bucket).send().await,
        403,
        Some("AccessDenied"),
    );

    // 4. Write revoked again.
    server.admin_ok(&["key", "deny", &key.id, "--bucket", &bucket, "--write"]);
    in_effect("deny --write", async || !may_write(&other, &bucket).await).await;
    let ops = run_ops(&other, &root, &bucket, "revoked").await;
    assert_allowed(&ops, &READS, "write revoked");
    assert_denied(&ops, &WRITES, "write revoked");

    // 5. The create-bucket right; the creator owns its bucket.
    server.admin_ok(&["key", "allow", &key.id, "--create-bucket"]);
    let own = unique_bucket("own");
    in_effect("--create-bucket", async || {
        other.create_bucket().bucket(&own).send().await.is_ok()
    })
    .await;
    put_bytes(&other, &own, "mine", b"m").await;
    delete_object(&other, &own, "mine").await;
    other.delete_bucket().bucket(&own).send().await.unwrap();

    // 6. The owner right on the first bucket: bucket-level operations.
    server.admin_ok(&["key", "allow", &key.id, "--bucket", &bucket, "--owner"]);
    in_effect("--owner", async || {
        let location = other.get_bucket_location().bucket(&bucket);
        location.send().await.is_ok()
    })
    .await;
    for key in list_keys(&root, &bucket).await {
        delete_object(&root, &bucket, &key).await;
    }
    other.delete_bucket().bucket(&bucket).send().await.unwrap();
    expect_s3_error(
        "HeadBucket after the owner deleted it",
        root.head_bucket().bucket(&bucket).send().await,
        404,
        None,
    );
}

#[tokio::test]
async fn admin_cli_keys_and_buckets() {
    let server = server();
    let key = server.create_key("lifecycle");
    let list = server.admin_ok(&["key", "list"]);
    assert!(
        list.contains(&key.id),
        "`key list` lacks {}:\n{list}",
        key.id
    );
    assert!(
        !list.contains(&key.secret),
        "`key list` must not print secrets:\n{list}"
    );

    // A bucket made with the CLI is visible through S3; the CLI lists it.
    let bucket = unique_bucket("clibucket");
    server.admin_ok(&["bucket", "create", &bucket]);
    let list = server.admin_ok(&["bucket", "list"]);
    assert!(
        list.contains(&bucket),
        "`bucket list` lacks {bucket}:\n{list}"
    );
    server.admin_ok(&["key", "allow", &key.id, "--bucket", &bucket, "--read"]);
    let s3 = server.client_for(&key);
    in_effect("key sees the CLI bucket", async || {
        s3.list_objects_v2().bucket(&bucket).send().await.is_ok()
    })
    .await;

    let status = server.admin_ok(&["status"]);
    assert!(!status.trim().is_empty(), "`cairn status` printed nothing");

    // Deleting the key locks it out.
    server.admin_ok(&["key", "delete", &key.id]);
    in_effect("deleted key rejected", async || {
        match s3.list_objects_v2().bucket(&bucket).send().await {
            Err(e) => s3_failure(&e).code.as_deref() == Some("InvalidAccessKeyId"),
            Ok(_) => false,
        }
    })
    .await;
    let list = server.admin_ok(&["key", "list"]);
    assert!(!list.contains(&key.id), "deleted key still listed:\n{list}");

    server.admin_ok(&["bucket", "delete", &bucket]);
    let list = server.admin_ok(&["bucket", "list"]);
    assert!(
        !list.contains(&bucket),
        "deleted bucket still listed:\n{list}"
    );
    in_effect("bucket deleted", async || {
        server
            .client()
            .head_bucket()
            .bucket(&bucket)
            .send()
            .await
            .is_err()
    })
    .await;

    // Without the cluster secret the admin CLI is refused.
    let mut cmd =
        std::process::Command::new(cluster_tests::cairn_bin(cluster_tests::Profile::Debug));
    cmd.args(["key", "list", "--node", &server.addrs().rpc.to_string()])
        .env(
            "CAIRN_CLUSTER_SECRET",
            "wrong-secret-wrong-secret-wrong-secret",
        );
    let out = cluster_tests::run_with_timeout(&mut cmd, Duration::from_secs(60)).unwrap();
    assert!(
        !out.success(),
        "admin CLI with a wrong cluster secret succeeded:\n{}",
        out.stdout
    );
    assert!(!out.stdout.contains(&server.root_key().id));
}

#[tokio::test]
async fn unknown_subresources_are_not_implemented() {
    let server = server();
    let bucket = bucket_with_object(&server.client(), "obj", b"o").await;
    // Control: the hand-made signature is accepted.
    server
        .signed("GET", &format!("/{bucket}?list-type=2"), &[], vec![])
        .await
        .expect("hand-signed ListObjectsV2", 200, None);
    for path in [
        format!("/{bucket}?torrent"),
        format!("/{bucket}?inventory"),
        format!("/{bucket}?inventory&id=x"),
        format!("/{bucket}?analytics"),
        format!("/{bucket}/obj?torrent"),
    ] {
        let resp = server.signed("GET", &path, &[], vec![]).await;
        resp.expect(&format!("GET {path}"), 501, Some("NotImplemented"));
        assert!(
            resp.header("content-type")
                .is_some_and(|t| t.contains("xml")),
            "GET {path}: error is not XML: {:?}",
            resp.header("content-type")
        );
    }
}

#[tokio::test]
async fn signature_covers_time_and_payload() {
    let server = server();
    let bucket = bucket_with_object(&server.client(), "k", b"data").await;
    let url = format!("{}/{bucket}/tampered", server.s3_url());

    // The body does not match the signed x-amz-content-sha256.
    let signed = sign_headers(
        "PUT",
        &url,
        &[],
        b"the signed body",
        server.root_key(),
        SystemTime::now(),
    );
    let headers: Vec<(&str, &str)> = signed
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    raw_request("PUT", &url, &headers, b"another body!!!".to_vec())
        .await
        .expect(
            "PUT with a body that does not match its hash",
            400,
            Some("XAmzContentSHA256Mismatch"),
        );
    expect_s3_error(
        "object of the rejected PUT",
        server
            .client()
            .head_object()
            .bucket(&bucket)
            .key("tampered")
            .send()
            .await,
        404,
        None,
    );

    // Signed 20 minutes ago (S3 allows 15).
    let old = sign_headers(
        "GET",
        &format!("{}/{bucket}/k", server.s3_url()),
        &[],
        b"",
        server.root_key(),
        SystemTime::now() - Duration::from_secs(20 * 60),
    );
    let headers: Vec<(&str, &str)> = old.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    raw_request(
        "GET",
        &format!("{}/{bucket}/k", server.s3_url()),
        &headers,
        vec![],
    )
    .await
    .expect(
        "GET signed 20 minutes ago",
        403,
        Some("RequestTimeTooSkewed"),
    );

    // The same request signed now works (control).
    server
        .signed("GET", &format!("/{bucket}/k"), &[], vec![])
        .await
        .expect("GET signed now", 200, None);
}

// ---------------------------------------------------------------------------------------------
// aws-chunked bodies built by hand: a bad chunk signature, a wrong trailing checksum
// ---------------------------------------------------------------------------------------------

const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Three chunks across the 1 MiB block size (so blocks are written before a late failure).
fn chunk_bodies() -> Vec<Vec<u8>> {
    vec![
        cluster_tests::random_bytes(512 * 1024),
        cluster_tests::random_bytes(512 * 1024),
        cluster_tests::random_bytes(512 * 1024 + 100),
    ]
}

/// PUTs `chunks` as a `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` body. The signature of chunk
/// `tamper` (the final empty chunk is `chunks.len()`) is made with a wrong key.
async fn put_signed_chunks(
    server: &Server,
    bucket: &str,
    key: &str,
    chunks: &[Vec<u8>],
    tamper: Option<usize>,
) -> RawResponse {
    let url = format!("{}/{bucket}/{key}", server.s3_url());
    let decoded = chunks.iter().map(Vec::len).sum::<usize>().to_string();
    let headers = [
        ("content-encoding", "aws-chunked"),
        ("x-amz-decoded-content-length", decoded.as_str()),
    ];
    let keys = server.root_key();
    let (signed, seed) = cluster_tests::sign_headers_for_payload(
        "PUT",
        &url,
        &headers,
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        keys,
        SystemTime::now(),
    );
    let amz_date = signed
        .iter()
        .find(|(k, _)| k == "x-amz-date")
        .map(|(_, v)| v.clone())
        .expect("x-amz-date");
    let day = &amz_date[..8];
    let scope = format!("{day}/us-east-1/s3/aws4_request");
    let signing_key = |secret: &str| {
        let k = hmac_sha256(format!("AWS4{secret}").as_bytes(), day.as_bytes());
        let k = hmac_sha256(&k, b"us-east-1");
        let k = hmac_sha256(&k, b"s3");
        hmac_sha256(&k, b"aws4_request")
    };
    let (good, bad) = (signing_key(&keys.secret), signing_key("not-the-secret"));
    let mut previous = seed;
    let mut body = Vec::new();
    let empty = Vec::new();
    for (i, data) in chunks.iter().chain([&empty]).enumerate() {
        let sts = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n{previous}\n{EMPTY_SHA256}\n{}",
            sha256_hex(data)
        );
        let with = if tamper == Some(i) { &bad } else { &good };
        previous = hex::encode(hmac_sha256(with, sts.as_bytes()));
        body.extend_from_slice(
            format!("{:x};chunk-signature={previous}\r\n", data.len()).as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    all.extend(signed.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    raw_request("PUT", &url, &all, body).await
}

/// PUTs `data` as a `STREAMING-UNSIGNED-PAYLOAD-TRAILER` body (as botocore sends it) whose
/// trailer is `x-amz-checksum-crc32: crc32`.
async fn put_with_crc32_trailer(
    server: &Server,
    bucket: &str,
    key: &str,
    data: &[u8],
    crc32: &str,
) -> RawResponse {
    let url = format!("{}/{bucket}/{key}", server.s3_url());
    let decoded = data.len().to_string();
    let headers = [
        ("content-encoding", "aws-chunked"),
        ("x-amz-decoded-content-length", decoded.as_str()),
        ("x-amz-trailer", "x-amz-checksum-crc32"),
    ];
    let (signed, _) = cluster_tests::sign_headers_for_payload(
        "PUT",
        &url,
        &headers,
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        server.root_key(),
        SystemTime::now(),
    );
    let mut body = Vec::new();
    for chunk in data.chunks(64 * 1024) {
        body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(chunk);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("0\r\nx-amz-checksum-crc32:{crc32}\r\n\r\n").as_bytes());
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    all.extend(signed.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    raw_request("PUT", &url, &all, body).await
}

fn crc32_base64(data: &[u8]) -> String {
    aws_smithy_types::base64::encode(crc32fast::hash(data).to_be_bytes())
}

#[tokio::test]
async fn bad_chunk_signature_leaves_nothing_visible() {
    let server = server();
    let s3 = server.client();
    let bucket = bucket_with_object(&s3, "unrelated", b"x").await;
    let chunks = chunk_bodies();

    // A bad signature on a middle chunk, or on the final empty chunk once every byte has
    // arrived: 403 and no object.
    for tamper in [1, chunks.len()] {
        let key = format!("chunked-bad-{tamper}");
        put_signed_chunks(server, &bucket, &key, &chunks, Some(tamper))
            .await
            .expect(
                "aws-chunked PUT with a bad chunk signature",
                403,
                Some("SignatureDoesNotMatch"),
            );
        expect_s3_error(
            "HEAD after a refused chunked PUT",
            s3.head_object().bucket(&bucket).key(&key).send().await,
            404,
            None,
        );
    }

    // Correctly signed: stored byte for byte.
    let key = "chunked-good";
    put_signed_chunks(server, &bucket, key, &chunks, None)
        .await
        .expect("aws-chunked PUT, every chunk signed", 200, None);
    let whole = chunks.concat();
    let got = get_bytes(&s3, &bucket, key).await;
    assert!(got == whole, "the chunked body round-trips");

    // A bad overwrite leaves the previous version in place.
    let other = vec![chunks[1].clone(), chunks[0].clone(), chunks[2].clone()];
    put_signed_chunks(server, &bucket, key, &other, Some(2))
        .await
        .expect("bad chunked overwrite", 403, Some("SignatureDoesNotMatch"));
    let got = get_bytes(&s3, &bucket, key).await;
    assert!(got == whole, "the refused overwrite changed nothing");
}

#[tokio::test]
async fn wrong_trailing_checksum_is_bad_digest() {
    let server = server();
    let s3 = server.client();
    let bucket = bucket_with_object(&s3, "unrelated", b"x").await;
    let data = cluster_tests::random_bytes(1536 * 1024 + 7);
    let other = cluster_tests::random_bytes(data.len());

    put_with_crc32_trailer(server, &bucket, "fresh", &data, &crc32_base64(&other))
        .await
        .expect("wrong x-amz-checksum-crc32 trailer", 400, Some("BadDigest"));
    expect_s3_error(
        "HEAD after a BadDigest PUT",
        s3.head_object().bucket(&bucket).key("fresh").send().await,
        404,
        None,
    );

    let crc = crc32_base64(&data);
    put_with_crc32_trailer(server, &bucket, "fresh", &data, &crc)
        .await
        .expect("right x-amz-checksum-crc32 trailer", 200, None);
    let got = server
        .signed(
            "GET",
            &format!("/{bucket}/fresh"),
            &[("x-amz-checksum-mode", "ENABLED")],
            Vec::new(),
        )
        .await;
    got.expect("GET with checksum mode", 200, None);
    assert!(got.body == data, "the trailer-checked body round-trips");
    assert_eq!(got.header("x-amz-checksum-crc32"), Some(crc.clone()));

    // A wrong trailer on an overwrite leaves the object as it was.
    put_with_crc32_trailer(server, &bucket, "fresh", &other, &crc)
        .await
        .expect("wrong trailer on an overwrite", 400, Some("BadDigest"));
    let got = server
        .signed("GET", &format!("/{bucket}/fresh"), &[], Vec::new())
        .await;
    assert!(got.body == data, "the refused overwrite changed nothing");
}

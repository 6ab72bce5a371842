//! Object and bucket tagging on a 3-node cluster of real processes, through aws-sdk-s3, the
//! aws CLI, hand-signed requests and a browser-style POST: the tagging operations (with
//! `versionId`), `x-amz-tagging` on PutObject / CopyObject (tagging directive) /
//! CreateMultipartUpload / POST, `x-amz-tagging-count`, S3's limits and errors; overwrites
//! racing tag edits (every outcome a legal serialization); tags readable and editable with a
//! node down, and repaired onto it once it is back.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::put_object_tagging::builders::PutObjectTaggingFluentBuilder;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Tag, Tagging, TaggingDirective};
use cairn_proto::pb;
use cluster_tests::multipart::{complete, upload_part};
use cluster_tests::post_form::{PostTarget, boto3_presigned_post, post_form};
use cluster_tests::probe::{freshest_record, version_id};
use cluster_tests::{
    AwsCli, Cluster, NodeProbe, S3Target, eventually, expect_s3_error, get_object, http_client,
    new_bucket_retrying_503, random_bytes, s3_failure, signed_request,
};
use serde_json::json;

type Tags = BTreeMap<String, String>;

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn tagging(tags: &Tags) -> Tagging {
    let set = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build().unwrap())
        .collect();
    Tagging::builder().set_tag_set(Some(set)).build().unwrap()
}

/// Creates a bucket, retrying the 503 a cluster that just elected its first leader may give.
async fn create_bucket(s3: &Client, prefix: &str) -> String {
    new_bucket_retrying_503(s3, prefix, 20).await
}

async fn put(s3: &Client, bucket: &str, key: &str, body: &[u8], tagging: Option<&str>) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .set_tagging(tagging.map(str::to_string))
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {key}: {:?}", s3_failure(&e)));
}

async fn get_tags(s3: &Client, bucket: &str, key: &str, version: Option<&str>) -> Tags {
    let out = s3
        .get_object_tagging()
        .bucket(bucket)
        .key(key)
        .set_version_id(version.map(str::to_string))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetObjectTagging {key}: {:?}", s3_failure(&e)));
    out.tag_set()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

/// PutObjectTagging of `key` (its newest version unless the caller names one), to be sent.
fn tag_edit(s3: &Client, bucket: &str, key: &str, tags: &Tags) -> PutObjectTaggingFluentBuilder {
    s3.put_object_tagging()
        .bucket(bucket)
        .key(key)
        .tagging(tagging(tags))
}

async fn set_tags(s3: &Client, bucket: &str, key: &str, version: Option<&str>, tags: &Tags) {
    tag_edit(s3, bucket, key, tags)
        .set_version_id(version.map(str::to_string))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutObjectTagging {key}: {:?}", s3_failure(&e)));
}

/// Body and `x-amz-tagging-count` of a GET.
async fn get_body(s3: &Client, bucket: &str, key: &str) -> (Vec<u8>, Option<i32>) {
    let out = get_object(s3, bucket, key).await;
    let count = out.tag_count();
    (
        out.body.collect().await.unwrap().into_bytes().to_vec(),
        count,
    )
}

/// `x-amz-tagging-count` of a HEAD (signed by hand: the SDK's HeadObject does not model it).
async fn head_tag_count(c: &Cluster, bucket: &str, key: &str) -> Option<String> {
    let url = format!("{}/{bucket}/{key}", c.s3_url());
    let resp = signed_request("HEAD", &url, &[], Vec::new(), c.root_key()).await;
    resp.expect("HEAD", 200, None);
    resp.header("x-amz-tagging-count")
}

/// Node-side views of one bucket: a probe of each node and the bucket's id.
struct Replicas {
    probes: Vec<NodeProbe>,
    bucket_id: Vec<u8>,
}

impl Replicas {
    async fn of(c: &Cluster, bucket: &str) -> Self {
        let probes = NodeProbe::each(c);
        let bucket_id = probes[0].bucket_id(bucket).await;
        Self { probes, bucket_id }
    }

    /// Node `i`'s copy of its newest visible record (None if it has none or is down).
    async fn copy_on(&self, i: usize, key: &str) -> Option<pb::ObjectRecord> {
        let answer = self.probes[i].record(&self.bucket_id, key).await;
        answer.ok().flatten()
    }

    /// The S3 version id of the key's newest version (the freshest copy any node has).
    async fn version_id(&self, key: &str) -> String {
        let record = freshest_record(&self.probes, &self.bucket_id, key).await;
        version_id(&record.expect("some node holds the key"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tagging_operations_limits_and_uploads() {
    let c = Cluster::start(3);
    let s3 = c.client();
    let bucket = create_bucket(&s3, "tagging").await;

    // x-amz-tagging on PutObject; GET and HEAD count the tags.
    put(&s3, &bucket, "k", b"hello", Some("a=1&b=x%20y")).await;
    assert_eq!(
        get_tags(&s3, &bucket, "k", None).await,
        tags(&[("a", "1"), ("b", "x y")])
    );
    assert_eq!(
        get_body(&s3, &bucket, "k").await,
        (b"hello".to_vec(), Some(2))
    );
    assert_eq!(head_tag_count(&c, &bucket, "k").await.as_deref(), Some("2"));

    // Replace, then delete: an untagged object answers an empty TagSet and no count.
    let three = tags(&[("x", ""), ("y", "2"), ("z", "é".repeat(256).as_str())]);
    set_tags(&s3, &bucket, "k", None, &three).await;
    assert_eq!(get_tags(&s3, &bucket, "k", None).await, three);
    assert_eq!(get_body(&s3, &bucket, "k").await.1, Some(3));
    s3.delete_object_tagging()
        .bucket(&bucket)
        .key("k")
        .send()
        .await
        .unwrap();
    assert!(get_tags(&s3, &bucket, "k", None).await.is_empty());
    assert_eq!(get_body(&s3, &bucket, "k").await, (b"hello".to_vec(), None));
    assert_eq!(head_tag_count(&c, &bucket, "k").await, None);

    // Limits: InvalidTag, nothing changed.
    set_tags(&s3, &bucket, "k", None, &tags(&[("keep", "me")])).await;
    let eleven: Tags = (0..11).map(|i| (format!("k{i}"), "v".into())).collect();
    let too_long_key = tags(&[("k".repeat(129).as_str(), "v")]);
    let too_long_value = tags(&[("k", "v".repeat(257).as_str())]);
    let system = tags(&[("aws:x", "v")]);
    for (what, bad) in [
        ("11 tags", eleven.clone()),
        ("a 129-character key", too_long_key),
        ("a 257-character value", too_long_value),
        ("an aws: key", system),
    ] {
        let res = tag_edit(&s3, &bucket, "k", &bad).send().await;
        expect_s3_error(what, res, 400, Some("InvalidTag"));
    }
    let twice = Tagging::builder()
        .tag_set(Tag::builder().key("d").value("1").build().unwrap())
        .tag_set(Tag::builder().key("d").value("2").build().unwrap())
        .build()
        .unwrap();
    let res = s3
        .put_object_tagging()
        .bucket(&bucket)
        .key("k")
        .tagging(twice)
        .send()
        .await;
    expect_s3_error("duplicate keys", res, 400, Some("InvalidTag"));
    let url = format!("{}/{bucket}/k?tagging", c.s3_url());
    let resp = signed_request(
        "PUT",
        &url,
        &[],
        b"<Tagging><TagSet>".to_vec(),
        c.root_key(),
    )
    .await;
    resp.expect("truncated XML", 400, Some("MalformedXML"));
    let many = eleven
        .keys()
        .map(|k| format!("{k}=v"))
        .collect::<Vec<_>>()
        .join("&");
    let res = s3
        .put_object()
        .bucket(&bucket)
        .key("k")
        .tagging(many)
        .body(ByteStream::from_static(b"lost"))
        .send()
        .await;
    expect_s3_error("PUT with 11 tags", res, 400, Some("InvalidTag"));
    assert_eq!(
        get_tags(&s3, &bucket, "k", None).await,
        tags(&[("keep", "me")])
    );
    assert_eq!(get_body(&s3, &bucket, "k").await.0, b"hello");

    // Missing objects.
    let res = s3
        .get_object_tagging()
        .bucket(&bucket)
        .key("none")
        .send()
        .await;
    expect_s3_error(
        "GetObjectTagging of a missing key",
        res,
        404,
        Some("NoSuchKey"),
    );
    let res = tag_edit(&s3, &bucket, "none", &tags(&[("a", "b")]))
        .send()
        .await;
    expect_s3_error(
        "PutObjectTagging of a missing key",
        res,
        404,
        Some("NoSuchKey"),
    );

    // versionId: the exact version, "null", malformed ids, versions that are gone.
    let replicas = Replicas::of(&c, &bucket).await;
    let v1 = replicas.version_id("k").await;
    set_tags(&s3, &bucket, "k", Some(&v1), &tags(&[("v", "1")])).await;
    assert_eq!(
        get_tags(&s3, &bucket, "k", Some(&v1)).await,
        tags(&[("v", "1")])
    );
    assert_eq!(
        get_tags(&s3, &bucket, "k", Some("null")).await,
        tags(&[("v", "1")])
    );
    let res = s3
        .get_object_tagging()
        .bucket(&bucket)
        .key("k")
        .version_id("not-a-version")
        .send()
        .await;
    expect_s3_error("malformed versionId", res, 400, Some("InvalidArgument"));
    put(&s3, &bucket, "k", b"second", None).await;
    // Every replica drops the overwritten version (the last one a moment after the quorum).
    eventually(
        Duration::from_secs(30),
        "every node drops the old version",
        async || {
            for i in 0..3 {
                let copy = replicas.copy_on(i, "k").await;
                if copy.is_none_or(|r| r.tags.contains_key("v")) {
                    return false;
                }
            }
            true
        },
    )
    .await;
    let res = s3
        .get_object_tagging()
        .bucket(&bucket)
        .key("k")
        .version_id(&v1)
        .send()
        .await;
    expect_s3_error("an overwritten version", res, 404, Some("NoSuchVersion"));
    let res = tag_edit(&s3, &bucket, "k", &tags(&[("late", "edit")]))
        .version_id(&v1)
        .send()
        .await;
    expect_s3_error(
        "editing an overwritten version",
        res,
        404,
        Some("NoSuchVersion"),
    );
    // The overwrite carries its own (no) tags: none leaked from the old version.
    assert!(get_tags(&s3, &bucket, "k", None).await.is_empty());

    // CopyObject: tags copied by default, replaced with REPLACE, invalid directive refused.
    put(
        &s3,
        &bucket,
        "src",
        &random_bytes(300_000),
        Some("from=src"),
    )
    .await;
    let copy = |dst: &str| {
        s3.copy_object()
            .bucket(&bucket)
            .key(dst)
            .copy_source(format!("{bucket}/src"))
    };
    copy("copied").send().await.unwrap();
    assert_eq!(
        get_tags(&s3, &bucket, "copied", None).await,
        tags(&[("from", "src")])
    );
    copy("replaced")
        .tagging_directive(TaggingDirective::Replace)
        .tagging("new=1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        get_tags(&s3, &bucket, "replaced", None).await,
        tags(&[("new", "1")])
    );
    copy("cleared")
        .tagging_directive(TaggingDirective::Replace)
        .send()
        .await
        .unwrap();
    assert!(get_tags(&s3, &bucket, "cleared", None).await.is_empty());
    let url = format!("{}/{bucket}/bad", c.s3_url());
    let source = format!("/{bucket}/src");
    let resp = signed_request(
        "PUT",
        &url,
        &[
            ("x-amz-copy-source", &source),
            ("x-amz-tagging-directive", "MERGE"),
        ],
        Vec::new(),
        c.root_key(),
    )
    .await;
    resp.expect("unknown tagging directive", 400, Some("InvalidArgument"));

    // Multipart: the tags of CreateMultipartUpload land on the completed object.
    let upload = s3
        .create_multipart_upload()
        .bucket(&bucket)
        .key("mpu")
        .tagging("part=yes&n=2")
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap();
    let mut etags = Vec::new();
    for (n, body) in [(1, random_bytes(5 * 1024 * 1024)), (2, random_bytes(1000))] {
        etags.push((n, upload_part(&s3, &bucket, "mpu", id, n, &body).await));
    }
    complete(&s3, &bucket, "mpu", id, &etags).await.unwrap();
    assert_eq!(
        get_tags(&s3, &bucket, "mpu", None).await,
        tags(&[("n", "2"), ("part", "yes")])
    );
    assert_eq!(
        head_tag_count(&c, &bucket, "mpu").await.as_deref(),
        Some("2")
    );

    // POST upload: the `tagging` field is a Tagging document.
    let document =
        "<Tagging><TagSet><Tag><Key>via</Key><Value>post</Value></Tag></TagSet></Tagging>";
    let endpoint = c.s3_url();
    let target = PostTarget {
        endpoint: &endpoint,
        style: "path",
        bucket: &bucket,
        key: "posted",
    };
    let form = boto3_presigned_post(
        &c,
        target,
        &json!({ "tagging": document }),
        &json!([{ "tagging": document }]),
        600,
    );
    let resp = post_form(&http_client(), &form, "f.txt", b"posted".to_vec(), &[]).await;
    resp.expect("POST with tagging", 204, None);
    assert_eq!(
        get_tags(&s3, &bucket, "posted", None).await,
        tags(&[("via", "post")])
    );

    // Bucket tagging.
    let res = s3.get_bucket_tagging().bucket(&bucket).send().await;
    expect_s3_error("an untagged bucket", res, 404, Some("NoSuchTagSet"));
    let team = tags(&[("team", "storage"), ("cost", "42")]);
    s3.put_bucket_tagging()
        .bucket(&bucket)
        .tagging(tagging(&team))
        .send()
        .await
        .unwrap();
    let got: Tags = s3
        .get_bucket_tagging()
        .bucket(&bucket)
        .send()
        .await
        .unwrap()
        .tag_set()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    assert_eq!(got, team);
    let fifty_one: Tags = (0..51).map(|i| (format!("k{i}"), "v".into())).collect();
    let res = s3
        .put_bucket_tagging()
        .bucket(&bucket)
        .tagging(tagging(&fifty_one))
        .send()
        .await;
    expect_s3_error("51 bucket tags", res, 400, Some("InvalidTag"));
    s3.delete_bucket_tagging()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let res = s3.get_bucket_tagging().bucket(&bucket).send().await;
    expect_s3_error("after DeleteBucketTagging", res, 404, Some("NoSuchTagSet"));

    // Rights: reading tags takes read, editing them write, bucket tags owner.
    let key = c.create_key(0, "reader");
    let reader = c.client_for(&key);
    c.admin_ok(0, &["key", "allow", &key.id, "--bucket", &bucket, "--read"]);
    eventually(Duration::from_secs(10), "--read in effect", async || {
        let res = reader.get_object_tagging().bucket(&bucket).key("mpu");
        res.send().await.is_ok()
    })
    .await;
    let res = tag_edit(&reader, &bucket, "mpu", &tags(&[("by", "reader")]))
        .send()
        .await;
    expect_s3_error(
        "PutObjectTagging with read only",
        res,
        403,
        Some("AccessDenied"),
    );
    let res = reader
        .delete_object_tagging()
        .bucket(&bucket)
        .key("mpu")
        .send()
        .await;
    expect_s3_error(
        "DeleteObjectTagging with read only",
        res,
        403,
        Some("AccessDenied"),
    );
    let res = reader.get_bucket_tagging().bucket(&bucket).send().await;
    expect_s3_error(
        "GetBucketTagging without owner",
        res,
        403,
        Some("AccessDenied"),
    );
    assert_eq!(
        get_tags(&s3, &bucket, "mpu", None).await,
        tags(&[("n", "2"), ("part", "yes")])
    );

    // The aws CLI.
    let aws = AwsCli::new(&c);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), b"from the cli").unwrap();
    let path = file.path().to_str().unwrap();
    aws.ok(&[
        "s3api",
        "put-object",
        "--bucket",
        &bucket,
        "--key",
        "cli",
        "--body",
        path,
        "--tagging",
        "tool=aws&kind=cli",
    ]);
    let cli_tags = |key: &str| -> Tags {
        let out = aws.ok(&[
            "s3api",
            "get-object-tagging",
            "--bucket",
            &bucket,
            "--key",
            key,
        ]);
        let doc: serde_json::Value = serde_json::from_str(&out).expect("CLI JSON");
        doc["TagSet"]
            .as_array()
            .expect("TagSet")
            .iter()
            .map(|t| {
                (
                    t["Key"].as_str().unwrap().to_string(),
                    t["Value"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(cli_tags("cli"), tags(&[("kind", "cli"), ("tool", "aws")]));
    let cli_set_tags = |json: &str| {
        aws.run(&[
            "s3api",
            "put-object-tagging",
            "--bucket",
            &bucket,
            "--key",
            "cli",
            "--tagging",
            json,
        ])
    };
    cli_set_tags(r#"{"TagSet":[{"Key":"edited","Value":"by cli"}]}"#)
        .expect_ok("aws s3api put-object-tagging", || Some(c.logs()));
    assert_eq!(cli_tags("cli"), tags(&[("edited", "by cli")]));
    let eleven_json: Vec<_> = eleven
        .keys()
        .map(|k| json!({ "Key": k, "Value": "v" }))
        .collect();
    let eleven_json = json!({ "TagSet": eleven_json }).to_string();
    let out = cli_set_tags(&eleven_json);
    assert!(
        !out.success() && out.stderr.contains("InvalidTag"),
        "{}",
        out.stderr
    );
    aws.ok(&[
        "s3api",
        "delete-object-tagging",
        "--bucket",
        &bucket,
        "--key",
        "cli",
    ]);
    assert!(cli_tags("cli").is_empty());
    aws.ok(&[
        "s3api",
        "put-bucket-tagging",
        "--bucket",
        &bucket,
        "--tagging",
        r#"{"TagSet":[{"Key":"env","Value":"test"}]}"#,
    ]);
    let out = aws.ok(&["s3api", "get-bucket-tagging", "--bucket", &bucket]);
    assert!(out.contains("\"env\"") && out.contains("\"test\""), "{out}");
}

/// Overwrites racing tag edits of one key, through two gateways: each round starts a PUT of
/// a new version (carrying its own tags) together with tag edits of the newest version and of
/// the previous version (by version id). Afterwards the body must be the round's PUT (no
/// overwrite lost to a tag edit re-storing an older version) and the tags must be the PUT's
/// own or the newest-version edit's (serialized after the PUT) — never the tags the edit of
/// the previous version wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwrites_and_tag_edits_race_then_a_node_dies_and_returns() {
    let mut c = Cluster::start_with_env(3, &[("CAIRN_ANTI_ENTROPY_SECS", "2")]);
    let s3 = c.client();
    let bucket = create_bucket(&s3, "tagrace").await;
    let second = c.spawn_gateway();
    let other = c.client_via(&second);
    let replicas = Replicas::of(&c, &bucket).await;
    let key = "race";
    put(&s3, &bucket, key, b"round-0", Some("gen=0")).await;

    const ROUNDS: usize = 25;
    let (mut edit_won, mut put_won, mut old_edit_applied) = (0, 0, 0);
    for round in 1..=ROUNDS {
        let previous = replicas.version_id(key).await;
        let body = format!("round-{round}");
        let born = format!("gen={round}");
        let newest_edit = tags(&[("edit", &format!("newest-{round}"))]);
        let old_edit = tags(&[("edit", &format!("old-{round}"))]);
        let (_, newest, old) = tokio::join!(
            put(&s3, &bucket, key, body.as_bytes(), Some(&born)),
            tag_edit(&other, &bucket, key, &newest_edit).send(),
            tag_edit(&s3, &bucket, key, &old_edit)
                .version_id(&previous)
                .send(),
        );
        newest
            .unwrap_or_else(|e| panic!("round {round}: edit of the newest: {:?}", s3_failure(&e)));
        match old {
            Ok(_) => old_edit_applied += 1,
            Err(e) => {
                let f = s3_failure(&e);
                assert_eq!(
                    f.code.as_deref(),
                    Some("NoSuchVersion"),
                    "round {round}: {f:?}"
                );
            }
        }
        let mut seen = Vec::new();
        for client in [&s3, &other] {
            let (got, count) = get_body(client, &bucket, key).await;
            assert_eq!(
                String::from_utf8_lossy(&got),
                body,
                "round {round}: an acknowledged overwrite was lost"
            );
            let now = get_tags(client, &bucket, key, None).await;
            assert_eq!(count, Some(1), "round {round}");
            seen.push(now.clone());
            if now == newest_edit {
                edit_won += 1;
            } else {
                assert_eq!(
                    now,
                    tags(&[("gen", &round.to_string())]),
                    "round {round}: tags of no legal serialization"
                );
                put_won += 1;
            }
        }
        assert_eq!(seen[0], seen[1], "round {round}: the gateways disagree");
    }
    eprintln!(
        "{ROUNDS} rounds: newest-version edit after the PUT {} times, before it {} times; \
         previous-version edit applied (before the overwrite) {old_edit_applied} times",
        edit_won / 2,
        put_won / 2
    );

    // A node down: tags still readable and editable at quorum.
    let settled = tags(&[("settled", "yes")]);
    set_tags(&s3, &bucket, key, None, &settled).await;
    let leader = c.leader(0).expect("a leader");
    let down = (0..3).find(|i| *i != leader).unwrap();
    c.nodes[down].kill_9();
    assert_eq!(get_tags(&s3, &bucket, key, None).await, settled);
    let edited = tags(&[("while", "down")]);
    set_tags(&s3, &bucket, key, None, &edited).await;
    assert_eq!(get_tags(&other, &bucket, key, None).await, edited);
    assert_eq!(get_body(&s3, &bucket, key).await.1, Some(1));

    // Back up: repair brings the node's copy up to the edit it missed.
    c.restart_node(down);
    let took = eventually(
        Duration::from_secs(60),
        "the restarted node gets the tag edit",
        async || {
            let copy = replicas.copy_on(down, key).await;
            copy.is_some_and(|r| r.tags == edited)
        },
    )
    .await;
    eprintln!("the restarted node got the missed tag edit after {took:?}");
    let body = format!("round-{ROUNDS}");
    assert_eq!(get_body(&s3, &bucket, key).await.0, body.as_bytes());
}

//! Bucket lifecycle, end to end against real processes: Put/Get/DeleteBucketLifecycle-
//! Configuration through aws-sdk-s3 (round trip, S3's errors), and the nodes' lifecycle
//! worker on a 3-node cluster whose "day" lasts one second: an Expiration rule on `tmp/`
//! removes those objects and nothing else, a Date rule removes its objects at once, a
//! disabled rule and a tag-filtered rule leave theirs, and an abandoned multipart upload is
//! aborted and its blocks freed (block directories measured before and after); with a node
//! down, the keys it coordinated still expire. In a versioned bucket, NoncurrentVersion-
//! Expiration keeps the newest N noncurrent versions (and frees the others' blocks),
//! Expiration writes delete markers, and ExpiredObjectDeleteMarker removes lone markers.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::get_bucket_lifecycle_configuration::builders::GetBucketLifecycleConfigurationFluentBuilder;
use aws_sdk_s3::operation::put_bucket_lifecycle_configuration::builders::PutBucketLifecycleConfigurationFluentBuilder;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    ExpirationStatus, LifecycleRule, LifecycleRuleAndOperator, LifecycleRuleFilter,
};
use cluster_tests::bucket_config::enable_versioning;
use cluster_tests::lifecycle::{
    abort_after, abort_days, after_days, config, expire_days, lone_delete_markers,
    noncurrent_after, on_date, prefix_filter, rule, tag, tag_filter,
};
use cluster_tests::multipart::{create_upload, upload_part};
use cluster_tests::{
    Cluster, Server, delete_object, dir_bytes, expect_no_such_key, expect_s3_error, list_keys,
    new_bucket, put_bytes, put_checked, random_bytes, try_get, unique_bucket, wait_until,
};

const MIB: usize = 1024 * 1024;

/// PutBucketLifecycleConfiguration with `rules`, to be sent.
fn put_rules(
    s3: &Client,
    bucket: &str,
    rules: Vec<LifecycleRule>,
) -> PutBucketLifecycleConfigurationFluentBuilder {
    s3.put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(config(rules))
}

/// The keys of the bucket's multipart uploads in progress.
async fn open_uploads(s3: &Client, bucket: &str) -> Vec<String> {
    let out = s3.list_multipart_uploads().bucket(bucket).send().await;
    let out = out.unwrap_or_else(|e| panic!("ListMultipartUploads {bucket}: {e:?}"));
    out.uploads()
        .iter()
        .filter_map(|u| u.key().map(str::to_string))
        .collect()
}

/// GetBucketLifecycleConfiguration, to be sent.
fn get_rules(s3: &Client, bucket: &str) -> GetBucketLifecycleConfigurationFluentBuilder {
    s3.get_bucket_lifecycle_configuration().bucket(bucket)
}

/// Midnight UTC of 2020-01-01.
fn past_midnight() -> DateTime {
    DateTime::from_secs(1_577_836_800)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_configuration_round_trips_and_is_validated() {
    let server = Server::start();
    let s3 = server.client();
    let bucket = new_bucket(&s3, "lc-config").await;

    expect_s3_error(
        "GetBucketLifecycleConfiguration before any",
        get_rules(&s3, &bucket).send().await,
        404,
        Some("NoSuchLifecycleConfiguration"),
    );

    let logs_filter = LifecycleRuleFilter::builder()
        .and(
            LifecycleRuleAndOperator::builder()
                .prefix("logs/")
                .tags(tag("class", "scratch"))
                .tags(tag("team", "a"))
                .object_size_greater_than(1024)
                .build(),
        )
        .build();
    let rules = vec![
        expire_days("tmp", prefix_filter("tmp/"), 30),
        rule("tagged-logs", logs_filter)
            .status(ExpirationStatus::Disabled)
            .expiration(on_date(past_midnight()))
            .build()
            .unwrap(),
        rule("versions", prefix_filter(""))
            .noncurrent_version_expiration(noncurrent_after(7, 3))
            .expiration(lone_delete_markers())
            .build()
            .unwrap(),
        abort_days("uploads", prefix_filter("big/"), 2),
    ];
    put_rules(&s3, &bucket, rules.clone()).send().await.unwrap();
    let got = get_rules(&s3, &bucket).send().await.unwrap();
    assert_eq!(got.rules(), rules.as_slice());

    // Refused configurations leave the stored one alone.
    let zero_days = vec![expire_days("z", prefix_filter("a/"), 0)];
    let long_id = vec![expire_days(&"i".repeat(256), prefix_filter("a/"), 1)];
    let twice = vec![
        expire_days("same", prefix_filter("a/"), 1),
        expire_days("same", prefix_filter("b/"), 1),
    ];
    let not_midnight = vec![
        rule("d", prefix_filter(""))
            .expiration(on_date(DateTime::from_secs(1_577_836_800 + 3600)))
            .build()
            .unwrap(),
    ];
    let no_action = vec![rule("n", prefix_filter("")).build().unwrap()];
    let tagged_abort = vec![abort_days("t", tag_filter("k", "v"), 1)];
    let bad_status = vec![
        rule("s", prefix_filter(""))
            .status(ExpirationStatus::from("Sometimes"))
            .expiration(after_days(1))
            .build()
            .unwrap(),
    ];
    for (what, rules, code) in [
        ("Days 0", zero_days, "InvalidArgument"),
        ("ID of 256 characters", long_id, "InvalidArgument"),
        ("duplicate ids", twice, "InvalidArgument"),
        ("Date not at midnight", not_midnight, "InvalidArgument"),
        ("no action", no_action, "InvalidRequest"),
        ("abort with a tag filter", tagged_abort, "InvalidRequest"),
        ("unknown status", bad_status, "MalformedXML"),
    ] {
        expect_s3_error(
            what,
            put_rules(&s3, &bucket, rules).send().await,
            400,
            Some(code),
        );
    }
    let still = get_rules(&s3, &bucket).send().await.unwrap();
    assert_eq!(still.rules(), rules.as_slice());

    s3.delete_bucket_lifecycle()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    expect_s3_error(
        "GetBucketLifecycleConfiguration after delete",
        get_rules(&s3, &bucket).send().await,
        404,
        Some("NoSuchLifecycleConfiguration"),
    );
    let anywhere = vec![expire_days("x", prefix_filter(""), 1)];
    expect_s3_error(
        "PutBucketLifecycleConfiguration on a missing bucket",
        put_rules(&s3, &unique_bucket("lc-missing"), anywhere)
            .send()
            .await,
        404,
        Some("NoSuchBucket"),
    );
}

/// The lifecycle counters of node `i` from `cairn status`: (passes, expired, aborted).
fn lifecycle_counters(c: &Cluster, i: usize) -> (u64, u64, u64) {
    let status = c.admin_ok(i, &["status"]);
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("lifecycle:"))
        .unwrap_or_else(|| panic!("no lifecycle line in:\n{status}"))
        .trim()
        .to_string();
    if line == "no pass yet" {
        return (0, 0, 0);
    }
    let number_before = |what: &str| -> u64 {
        line.split([',', ';'])
            .find_map(|part| part.trim().strip_suffix(what))
            .and_then(|n| n.trim().rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no `{what}` in {line:?}"))
    };
    (
        number_before("pass(es)"),
        number_before("object(s) expired"),
        number_before("upload(s) aborted"),
    )
}

/// Over the three nodes: the fewest passes any made, objects expired, uploads aborted.
fn totals(c: &Cluster) -> (u64, u64, u64) {
    let all: Vec<_> = (0..3).map(|i| lifecycle_counters(c, i)).collect();
    (
        all.iter().map(|t| t.0).min().unwrap_or(0),
        all.iter().map(|t| t.1).sum(),
        all.iter().map(|t| t.2).sum(),
    )
}

/// Three nodes whose lifecycle "day" lasts a second, with passes and collection every second.
fn short_day_cluster() -> Cluster {
    Cluster::start_with_env(
        3,
        &[
            ("CAIRN_LIFECYCLE_DAY_SECS", "1"),
            ("CAIRN_LIFECYCLE_INTERVAL_SECS", "1"),
            ("CAIRN_GC_INTERVAL_SECS", "1"),
            ("CAIRN_BLOCK_GRACE_SECS", "1"),
        ],
    )
}

fn block_bytes(c: &Cluster) -> u64 {
    (0..3)
        .map(|i| dir_bytes(&c.data_dir(i).join("blocks")))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_rules_expire_objects_and_abort_uploads_with_a_short_day() {
    let mut c = short_day_cluster();
    let s3 = c.client();
    let bucket = new_bucket(&s3, "lc-worker").await;

    // Objects: small (inline) and large (blocks) under each prefix.
    let expiring = ["tmp/a", "tmp/b", "tmp/deep/c", "tmp/big"];
    let dated = ["dated/a", "dated/big"];
    let kept = ["tmpfile", "keep/a", "keep/big", "logs/a", "other/x"];
    let mut bodies = std::collections::BTreeMap::new();
    for key in expiring.iter().chain(&dated).chain(&kept) {
        let body = random_bytes(if key.ends_with("big") { 2 * MIB } else { 700 });
        put_checked(&s3, &bucket, key, &body).await;
        bodies.insert(key.to_string(), body);
    }

    // An abandoned upload under `mpu/` (6 MiB in two parts) and one elsewhere.
    let mut uploads = Vec::new();
    for (key, sizes) in [
        ("mpu/abandoned", vec![5 * MIB, MIB]),
        ("keep/upload", vec![MIB]),
    ] {
        let id = create_upload(&s3, &bucket, key).await;
        for (n, size) in (1..).zip(sizes) {
            upload_part(&s3, &bucket, key, &id, n, &random_bytes(size)).await;
        }
        uploads.push((key, id));
    }
    let before = block_bytes(&c);
    // Three replicas of the three 2 MiB objects and of the 7 MiB of parts.
    assert!(before >= (3 * (3 * 2 + 7) * MIB) as u64, "{before}");

    let rules = vec![
        expire_days("tmp", prefix_filter("tmp/"), 2),
        expire_days("scratch", tag_filter("class", "scratch"), 1),
        rule("dated", prefix_filter("dated/"))
            .expiration(on_date(past_midnight()))
            .build()
            .unwrap(),
        rule("keep-disabled", prefix_filter("keep/"))
            .status(ExpirationStatus::Disabled)
            .expiration(after_days(1))
            .abort_incomplete_multipart_upload(abort_after(1))
            .build()
            .unwrap(),
        abort_days("uploads", prefix_filter("mpu/"), 2),
    ];
    put_rules(&s3, &bucket, rules).send().await.unwrap();

    // Expired objects vanish from GET and from listings.
    let rt = tokio::runtime::Handle::current();
    let listed = || rt.block_on(list_keys(&s3, &bucket));
    let took = tokio::task::block_in_place(|| {
        wait_until(
            Duration::from_secs(60),
            "tmp/ and dated/ objects expire",
            || {
                let keys = listed();
                !keys
                    .iter()
                    .any(|k| k.starts_with("tmp/") || k.starts_with("dated/"))
            },
        )
    });
    eprintln!("expired within {took:?} of the configuration");
    for key in expiring.iter().chain(&dated) {
        assert_eq!(try_get(&s3, &bucket, key).await.unwrap(), None, "{key}");
    }

    // The abandoned upload is aborted; the other stays.
    tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(60), "mpu/ upload aborted", || {
            let open = rt.block_on(open_uploads(&s3, &bucket));
            !open.iter().any(|k| k == "mpu/abandoned")
        })
    });
    let (key, id) = &uploads[0];
    expect_s3_error(
        "UploadPart to the aborted upload",
        s3.upload_part()
            .bucket(&bucket)
            .key(*key)
            .upload_id(id)
            .part_number(3)
            .body(ByteStream::from(random_bytes(10)))
            .send()
            .await,
        404,
        Some("NoSuchUpload"),
    );

    // Several more passes on every node change nothing else.
    let (passes, _, _) = totals(&c);
    tokio::task::block_in_place(|| {
        wait_until(
            Duration::from_secs(30),
            "three more passes everywhere",
            || totals(&c).0 >= passes + 3,
        )
    });
    let keys = tokio::task::block_in_place(listed);
    let mut expected: Vec<String> = kept.iter().map(|k| k.to_string()).collect();
    expected.sort();
    assert_eq!(keys, expected);
    for key in &kept {
        assert_eq!(
            try_get(&s3, &bucket, key).await.unwrap().as_deref(),
            Some(bodies[*key].as_slice()),
            "{key}"
        );
    }
    assert_eq!(open_uploads(&s3, &bucket).await, vec!["keep/upload"]);

    // Each key was handled by one node: the counters add up exactly.
    let (_, expired, aborted) = totals(&c);
    assert_eq!(expired, (expiring.len() + dated.len()) as u64);
    assert_eq!(aborted, 1);
    let metrics = reqwest::get(format!("http://{}/metrics", c.nodes[0].addr("http")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("cairn_lifecycle_objects_expired_total"));
    assert!(metrics.contains("cairn_lifecycle_uploads_aborted_total"));

    // The blocks of the expired objects and of the aborted upload are freed: three
    // replicas of 2 MiB (tmp/big) + 2 MiB (dated/big) + 6 MiB (the upload's parts).
    let freed_at_least = (3 * (2 + 2 + 6) * MIB) as u64;
    tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(60), "blocks freed", || {
            block_bytes(&c) + freed_at_least <= before
        })
    });
    let after = block_bytes(&c);
    eprintln!("block bytes on the 3 nodes: {before} before, {after} after");

    // With a node down, the keys it coordinated are handled by the next replica.
    let victim = (c.leader(0).expect("a leader") + 1) % 3;
    c.nodes[victim].kill_9();
    let late: Vec<String> = (0..24).map(|i| format!("tmp/late-{i:02}")).collect();
    for key in &late {
        put_checked(&s3, &bucket, key, b"late").await;
    }
    tokio::task::block_in_place(|| {
        wait_until(
            Duration::from_secs(60),
            "tmp/ objects expire with a node down",
            || !listed().iter().any(|k| k.starts_with("tmp/")),
        )
    });
    let keys = tokio::task::block_in_place(listed);
    assert_eq!(keys, expected, "only tmp/ objects expire with a node down");
}

/// The version ids of `key`, newest first, and its delete markers (id, latest).
async fn versions_of(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> (Vec<String>, Vec<(String, bool)>) {
    let out = s3
        .list_object_versions()
        .bucket(bucket)
        .prefix(key)
        .send()
        .await
        .unwrap();
    let versions = out
        .versions()
        .iter()
        .filter(|v| v.key() == Some(key))
        .map(|v| v.version_id().unwrap_or_default().to_string())
        .collect();
    let markers = out
        .delete_markers()
        .iter()
        .filter(|m| m.key() == Some(key))
        .map(|m| {
            (
                m.version_id().unwrap_or_default().to_string(),
                m.is_latest() == Some(true),
            )
        })
        .collect();
    (versions, markers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versioned_buckets_keep_the_newest_noncurrent_versions_and_expire_to_markers() {
    let c = short_day_cluster();
    let s3 = c.client();
    let bucket = new_bucket(&s3, "lc-versions").await;
    enable_versioning(&s3, &bucket).await;
    let put = async |key: &str, body: Vec<u8>| {
        let out = put_bytes(&s3, &bucket, key, &body).await;
        out.version_id().unwrap().to_string()
    };
    // Six versions of doc/a (256 KiB each, in blocks), two of tmp/x, and a delete marker
    // left alone on gone/y.
    let mut doc = Vec::new();
    for _ in 0..6 {
        doc.push(put("doc/a", random_bytes(256 * 1024)).await);
    }
    let tmp: Vec<String> = vec![
        put("tmp/x", b"1".to_vec()).await,
        put("tmp/x", b"2".to_vec()).await,
    ];
    let gone = put("gone/y", b"y".to_vec()).await;
    delete_object(&s3, &bucket, "gone/y").await;
    s3.delete_object()
        .bucket(&bucket)
        .key("gone/y")
        .version_id(&gone)
        .send()
        .await
        .unwrap();
    assert_eq!(versions_of(&s3, &bucket, "gone/y").await.1.len(), 1);
    let before = block_bytes(&c);

    let keep_two = rule("noncurrent", prefix_filter("doc/"))
        .noncurrent_version_expiration(noncurrent_after(1, 2))
        .build()
        .unwrap();
    let markers = rule("markers", prefix_filter("gone/"))
        .expiration(lone_delete_markers())
        .build()
        .unwrap();
    let tmp_rule = expire_days("tmp", prefix_filter("tmp/"), 1);
    put_rules(&s3, &bucket, vec![keep_two, markers, tmp_rule])
        .send()
        .await
        .unwrap();

    // doc/a keeps its current version and the two newest noncurrent ones.
    let newest_three: Vec<String> = doc.iter().rev().take(3).cloned().collect();
    let settled = || async {
        versions_of(&s3, &bucket, "doc/a").await.0 == newest_three
            && versions_of(&s3, &bucket, "gone/y").await.1.is_empty()
            && versions_of(&s3, &bucket, "tmp/x").await.1.len() == 1
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !settled().await {
        assert!(
            std::time::Instant::now() < deadline,
            "lifecycle did not settle: doc/a {:?}, gone/y {:?}, tmp/x {:?}\n{}",
            versions_of(&s3, &bucket, "doc/a").await,
            versions_of(&s3, &bucket, "gone/y").await,
            versions_of(&s3, &bucket, "tmp/x").await,
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Expiring a current version in a versioned bucket makes a delete marker: tmp/x reads as
    // deleted, both its versions are kept.
    let (tmp_versions, tmp_markers) = versions_of(&s3, &bucket, "tmp/x").await;
    assert_eq!(tmp_versions, vec![tmp[1].clone(), tmp[0].clone()]);
    assert!(
        tmp_markers[0].1,
        "the marker is the latest version of tmp/x"
    );
    expect_no_such_key(&s3, &bucket, "tmp/x", "GET tmp/x").await;
    for id in &newest_three {
        let got = s3
            .get_object()
            .bucket(&bucket)
            .key("doc/a")
            .version_id(id)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET version {id} of doc/a: {e:?}"));
        let body = got.body.collect().await.unwrap().into_bytes();
        assert_eq!(body.len(), 256 * 1024, "version {id} of doc/a");
    }
    expect_s3_error(
        "GET an expired noncurrent version",
        s3.get_object()
            .bucket(&bucket)
            .key("doc/a")
            .version_id(&doc[0])
            .send()
            .await,
        404,
        Some("NoSuchVersion"),
    );
    // The three removed versions' blocks are freed on all three replicas.
    let freed_at_least = (3 * 3 * 256 * 1024) as u64;
    tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(60), "noncurrent blocks freed", || {
            block_bytes(&c) + freed_at_least <= before
        })
    });
    eprintln!(
        "block bytes on the 3 nodes: {before} before, {} after",
        block_bytes(&c)
    );
}

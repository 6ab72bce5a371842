//! Multipart uploads against a real server: Create / UploadPart / UploadPartCopy / Complete /
//! Abort / ListParts / ListMultipartUploads, the Complete error codes, GET ?partNumber=, and
//! the aws CLI's default multipart `s3 cp` up and down.

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::abort_multipart_upload::builders::AbortMultipartUploadFluentBuilder;
use aws_sdk_s3::operation::list_parts::builders::ListPartsFluentBuilder;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use cluster_tests::data::content_md5;
use cluster_tests::multipart::{
    complete, completed_upload, create_upload, multipart_etag, upload_part,
};
use cluster_tests::{
    AwsCli, Server, delete_object, expect_s3_error, get_bytes, get_object, head_object, md5_hex,
    new_bucket, put_bytes, quoted_md5, random_bytes,
};

const MIB: usize = 1024 * 1024;

fn server() -> &'static Server {
    Server::shared()
}

/// ListParts of an upload, to be sent.
fn list_parts(s3: &Client, bucket: &str, key: &str, upload_id: &str) -> ListPartsFluentBuilder {
    s3.list_parts().bucket(bucket).key(key).upload_id(upload_id)
}

/// AbortMultipartUpload of an upload, to be sent.
fn abort(
    s3: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> AbortMultipartUploadFluentBuilder {
    s3.abort_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
}

#[tokio::test]
async fn three_parts_complete_byte_identical_with_part_reads() {
    let s3 = server().client();
    let bucket = new_bucket(&s3, "mpu").await;
    let key = "dir/assembled.bin";
    let upload_id = s3
        .create_multipart_upload()
        .bucket(&bucket)
        .key(key)
        .content_type("application/x-assembled")
        .cache_control("max-age=60")
        .metadata("origin", "parts")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_string();
    assert!(
        upload_id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
        "upload id is URL-safe: {upload_id}"
    );
    let parts = [
        random_bytes(5 * MIB),
        random_bytes(5 * MIB),
        random_bytes(MIB + 3),
    ];
    let mut etags = Vec::new();
    for (i, data) in parts.iter().enumerate() {
        etags.push(upload_part(&s3, &bucket, key, &upload_id, i as i32 + 1, data).await);
    }
    // Not visible before Complete.
    expect_s3_error(
        "GET before Complete",
        s3.get_object().bucket(&bucket).key(key).send().await,
        404,
        Some("NoSuchKey"),
    );
    let listed: Vec<(String, String)> = s3
        .list_multipart_uploads()
        .bucket(&bucket)
        .send()
        .await
        .unwrap()
        .uploads()
        .iter()
        .map(|u| {
            (
                u.key().unwrap_or("").to_string(),
                u.upload_id().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(listed, vec![(key.to_string(), upload_id.clone())]);

    let done = complete(
        &s3,
        &bucket,
        key,
        &upload_id,
        &[(1, &etags[0]), (2, &etags[1]), (3, &etags[2])],
    )
    .await
    .unwrap_or_else(|e| panic!("CompleteMultipartUpload: {e:?}"));
    let expected_etag = multipart_etag(&[&parts[0], &parts[1], &parts[2]]);
    let etag = done.e_tag().unwrap().to_string();
    assert_eq!(etag, expected_etag, "multipart ETag");
    assert!(
        etag.len() == 2 + 32 + 2 && etag.ends_with("-3\""),
        "ETag format: {etag}"
    );
    assert_eq!(done.key(), Some(key));
    assert_eq!(done.bucket(), Some(bucket.as_str()));

    let whole: Vec<u8> = parts.concat();
    let got = get_object(&s3, &bucket, key).await;
    assert_eq!(got.e_tag(), Some(expected_etag.as_str()));
    assert_eq!(got.content_type(), Some("application/x-assembled"));
    assert_eq!(got.cache_control(), Some("max-age=60"));
    assert_eq!(
        got.metadata()
            .and_then(|m| m.get("origin"))
            .map(String::as_str),
        Some("parts")
    );
    let body = got.body.collect().await.unwrap().into_bytes();
    assert_eq!(body.len(), whole.len(), "size of the assembled object");
    assert_eq!(md5_hex(&body), md5_hex(&whole), "assembled content");

    // GET / HEAD ?partNumber= serve one part.
    let p2 = s3
        .get_object()
        .bucket(&bucket)
        .key(key)
        .part_number(2)
        .send()
        .await
        .unwrap();
    assert_eq!(p2.parts_count(), Some(3));
    assert_eq!(p2.content_length(), Some(5 * MIB as i64));
    assert_eq!(
        p2.content_range(),
        Some(format!("bytes {}-{}/{}", 5 * MIB, 10 * MIB - 1, whole.len()).as_str())
    );
    let p2 = p2.body.collect().await.unwrap().into_bytes();
    assert_eq!(md5_hex(&p2), md5_hex(&parts[1]), "part 2 content");
    let h3 = s3
        .head_object()
        .bucket(&bucket)
        .key(key)
        .part_number(3)
        .send()
        .await
        .unwrap();
    assert_eq!(h3.content_length(), Some(MIB as i64 + 3));
    assert_eq!(h3.parts_count(), Some(3));
    let bad = server()
        .signed(
            "GET",
            &format!("/{bucket}/{key}?partNumber=4"),
            &[],
            Vec::new(),
        )
        .await;
    bad.expect("GET partNumber=4 of 3", 416, Some("InvalidPartNumber"));

    // The upload is gone.
    expect_s3_error(
        "ListParts after Complete",
        list_parts(&s3, &bucket, key, &upload_id).send().await,
        404,
        Some("NoSuchUpload"),
    );
    expect_s3_error(
        "second Complete",
        complete(&s3, &bucket, key, &upload_id, &[(1, &etags[0])]).await,
        404,
        Some("NoSuchUpload"),
    );
    expect_s3_error(
        "Abort after Complete",
        abort(&s3, &bucket, key, &upload_id).send().await,
        404,
        Some("NoSuchUpload"),
    );

    // A plain object: partNumber=1 is the whole object, 2 does not exist.
    let small = random_bytes(1000);
    put_bytes(&s3, &bucket, "plain", &small).await;
    let one = s3
        .get_object()
        .bucket(&bucket)
        .key("plain")
        .part_number(1)
        .send()
        .await
        .unwrap();
    assert_eq!(
        one.body.collect().await.unwrap().into_bytes().to_vec(),
        small
    );
    expect_s3_error(
        "GET partNumber=2 of a plain object",
        s3.get_object()
            .bucket(&bucket)
            .key("plain")
            .part_number(2)
            .send()
            .await,
        416,
        None,
    );
}

#[tokio::test]
async fn reuploaded_part_replaces_the_old_one() {
    let s3 = server().client();
    let bucket = new_bucket(&s3, "mpu-redo").await;
    let key = "redo";
    let upload_id = create_upload(&s3, &bucket, key).await;
    let old = random_bytes(5 * MIB + 17);
    let new = random_bytes(5 * MIB + 5);
    let tail = random_bytes(1234);
    let old_etag = upload_part(&s3, &bucket, key, &upload_id, 1, &old).await;
    let tail_etag = upload_part(&s3, &bucket, key, &upload_id, 2, &tail).await;
    let new_etag = upload_part(&s3, &bucket, key, &upload_id, 1, &new).await;

    let parts = list_parts(&s3, &bucket, key, &upload_id)
        .send()
        .await
        .unwrap();
    let listed: Vec<(Option<i32>, Option<String>, Option<i64>)> = parts
        .parts()
        .iter()
        .map(|p| (p.part_number(), p.e_tag().map(str::to_string), p.size()))
        .collect();
    assert_eq!(
        listed,
        vec![
            (Some(1), Some(new_etag.clone()), Some(new.len() as i64)),
            (Some(2), Some(tail_etag.clone()), Some(tail.len() as i64)),
        ]
    );
    expect_s3_error(
        "Complete naming the replaced part",
        complete(
            &s3,
            &bucket,
            key,
            &upload_id,
            &[(1, &old_etag), (2, &tail_etag)],
        )
        .await,
        400,
        Some("InvalidPart"),
    );
    let done = complete(
        &s3,
        &bucket,
        key,
        &upload_id,
        &[(1, &new_etag), (2, &tail_etag)],
    )
    .await
    .unwrap();
    assert_eq!(done.e_tag(), Some(multipart_etag(&[&new, &tail]).as_str()));
    let got = get_bytes(&s3, &bucket, key).await;
    assert_eq!(md5_hex(&got), md5_hex(&[new, tail].concat()));
}

#[tokio::test]
async fn complete_and_upload_errors() {
    let s3 = server().client();
    let bucket = new_bucket(&s3, "mpu-err").await;
    let key = "errors";
    let upload_id = create_upload(&s3, &bucket, key).await;
    let small1 = random_bytes(100);
    let small2 = random_bytes(200);
    let e1 = upload_part(&s3, &bucket, key, &upload_id, 1, &small1).await;
    let e2 = upload_part(&s3, &bucket, key, &upload_id, 2, &small2).await;

    expect_s3_error(
        "non-last part under 5 MiB",
        complete(&s3, &bucket, key, &upload_id, &[(1, &e1), (2, &e2)]).await,
        400,
        Some("EntityTooSmall"),
    );
    expect_s3_error(
        "parts out of order",
        complete(&s3, &bucket, key, &upload_id, &[(2, &e2), (1, &e1)]).await,
        400,
        Some("InvalidPartOrder"),
    );
    expect_s3_error(
        "unknown part",
        complete(&s3, &bucket, key, &upload_id, &[(3, &e1)]).await,
        400,
        Some("InvalidPart"),
    );
    expect_s3_error(
        "wrong ETag",
        complete(&s3, &bucket, key, &upload_id, &[(1, &e2)]).await,
        400,
        Some("InvalidPart"),
    );
    expect_s3_error(
        "unknown upload",
        complete(&s3, &bucket, key, "nosuchupload", &[(1, &e1)]).await,
        404,
        Some("NoSuchUpload"),
    );
    expect_s3_error(
        "upload id of another key",
        complete(&s3, &bucket, "other-key", &upload_id, &[(1, &e1)]).await,
        404,
        Some("NoSuchUpload"),
    );

    let srv = server();
    let path = format!("/{bucket}/{key}?uploadId={upload_id}");
    srv.signed(
        "POST",
        &path,
        &[],
        b"<CompleteMultipartUpload><Part>".to_vec(),
    )
    .await
    .expect("truncated XML", 400, Some("MalformedXML"));
    srv.signed(
        "POST",
        &path,
        &[],
        b"<CompleteMultipartUpload></CompleteMultipartUpload>".to_vec(),
    )
    .await
    .expect("no parts", 400, Some("MalformedXML"));
    for n in ["0", "10001", "x"] {
        srv.signed(
            "PUT",
            &format!("/{bucket}/{key}?partNumber={n}&uploadId={upload_id}"),
            &[],
            b"data".to_vec(),
        )
        .await
        .expect(&format!("part number {n}"), 400, Some("InvalidArgument"));
    }
    srv.signed(
        "PUT",
        &format!("/{bucket}/{key}?partNumber=1&uploadId=nosuchupload"),
        &[],
        b"data".to_vec(),
    )
    .await
    .expect("UploadPart to an unknown upload", 404, Some("NoSuchUpload"));
    let bad_md5 = content_md5(b"something else");
    srv.signed(
        "PUT",
        &format!("/{bucket}/{key}?partNumber=3&uploadId={upload_id}"),
        &[("content-md5", &bad_md5)],
        b"data".to_vec(),
    )
    .await
    .expect("Content-MD5 mismatch", 400, Some("BadDigest"));

    // A single small part is a valid upload (only non-last parts have a minimum).
    let done = complete(&s3, &bucket, key, &upload_id, &[(2, &e2)])
        .await
        .unwrap();
    assert_eq!(done.e_tag(), Some(multipart_etag(&[&small2]).as_str()));
    assert_eq!(get_bytes(&s3, &bucket, key).await, small2);
}

#[tokio::test]
async fn abort_frees_the_upload_and_bucket_delete_drops_uploads() {
    let s3 = server().client();
    let bucket = new_bucket(&s3, "mpu-abort").await;
    let key = "aborted";
    let upload_id = create_upload(&s3, &bucket, key).await;
    upload_part(&s3, &bucket, key, &upload_id, 1, &random_bytes(2 * MIB)).await;
    abort(&s3, &bucket, key, &upload_id).send().await.unwrap();
    expect_s3_error(
        "ListParts after Abort",
        list_parts(&s3, &bucket, key, &upload_id).send().await,
        404,
        Some("NoSuchUpload"),
    );
    expect_s3_error(
        "UploadPart after Abort",
        s3.upload_part()
            .bucket(&bucket)
            .key(key)
            .upload_id(&upload_id)
            .part_number(2)
            .body(ByteStream::from_static(b"late"))
            .send()
            .await,
        404,
        Some("NoSuchUpload"),
    );
    expect_s3_error(
        "second Abort",
        abort(&s3, &bucket, key, &upload_id).send().await,
        404,
        Some("NoSuchUpload"),
    );
    let raw = server()
        .signed(
            "DELETE",
            &format!("/{bucket}/{key}?uploadId=whatever"),
            &[],
            Vec::new(),
        )
        .await;
    raw.expect("Abort of an unknown upload", 404, Some("NoSuchUpload"));

    // An in-progress upload does not keep its bucket alive.
    let pending = create_upload(&s3, &bucket, "pending").await;
    upload_part(&s3, &bucket, "pending", &pending, 1, b"x").await;
    s3.delete_bucket().bucket(&bucket).send().await.unwrap();
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let uploads = s3
        .list_multipart_uploads()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert!(
        uploads.uploads().is_empty(),
        "uploads of the deleted bucket"
    );
}

#[tokio::test]
async fn listing_uploads_and_parts_pages() {
    let s3 = server().client();
    let bucket = new_bucket(&s3, "mpu-list").await;
    let mut expected = Vec::new();
    for key in ["a/1", "a/2", "b", "b", "c"] {
        let id = create_upload(&s3, &bucket, key).await;
        expected.push((key.to_string(), id));
    }
    expected.sort();

    // Two at a time through (key-marker, upload-id-marker).
    let mut seen = Vec::new();
    let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
    for _ in 0..10 {
        let page = s3
            .list_multipart_uploads()
            .bucket(&bucket)
            .max_uploads(2)
            .set_key_marker(key_marker.clone())
            .set_upload_id_marker(id_marker.clone())
            .send()
            .await
            .unwrap();
        assert!(page.uploads().len() <= 2);
        assert_eq!(page.max_uploads(), Some(2));
        seen.extend(page.uploads().iter().map(|u| {
            (
                u.key().unwrap().to_string(),
                u.upload_id().unwrap().to_string(),
            )
        }));
        if page.is_truncated() != Some(true) {
            break;
        }
        key_marker = page.next_key_marker().map(str::to_string);
        id_marker = page.next_upload_id_marker().map(str::to_string);
    }
    assert_eq!(seen, expected, "paged uploads");

    let rolled = s3
        .list_multipart_uploads()
        .bucket(&bucket)
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let prefixes: Vec<&str> = rolled
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, vec!["a/"]);
    assert_eq!(rolled.uploads().len(), 3);
    let only_a = s3
        .list_multipart_uploads()
        .bucket(&bucket)
        .prefix("a/")
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = only_a.uploads().iter().filter_map(|u| u.key()).collect();
    assert_eq!(keys, vec!["a/1", "a/2"]);

    // ListParts, two at a time.
    let (key, id) = &expected[4];
    let mut datas = Vec::new();
    for n in 1..=5 {
        let data = random_bytes(100 + n);
        upload_part(&s3, &bucket, key, id, n as i32, &data).await;
        datas.push(data);
    }
    let mut numbers = Vec::new();
    let mut marker: Option<String> = None;
    for _ in 0..10 {
        let page = list_parts(&s3, &bucket, key, id)
            .max_parts(2)
            .set_part_number_marker(marker.clone())
            .send()
            .await
            .unwrap();
        for p in page.parts() {
            let n = p.part_number().unwrap();
            assert_eq!(p.size(), Some(100 + n as i64));
            assert_eq!(p.e_tag(), Some(quoted_md5(&datas[n as usize - 1]).as_str()));
            numbers.push(n);
        }
        if page.is_truncated() != Some(true) {
            break;
        }
        marker = page.next_part_number_marker().map(str::to_string);
    }
    assert_eq!(numbers, vec![1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn upload_part_copy_whole_and_ranged() {
    let s3 = server().client();
    let bucket = new_bucket(&s3, "mpu-copy").await;
    let source = random_bytes(6 * MIB + 11);
    let small = random_bytes(500);
    for (key, data) in [("src/big", &source), ("src/small", &small)] {
        put_bytes(&s3, &bucket, key, data).await;
    }
    let key = "copied";
    let upload_id = create_upload(&s3, &bucket, key).await;
    let copy = |number: i32, src: &str, range: Option<&str>| {
        s3.upload_part_copy()
            .bucket(&bucket)
            .key(key)
            .upload_id(&upload_id)
            .part_number(number)
            .copy_source(format!("{bucket}/{src}"))
            .set_copy_source_range(range.map(str::to_string))
            .send()
    };
    let whole = copy(1, "src/big", None).await.unwrap();
    let e1 = whole
        .copy_part_result()
        .unwrap()
        .e_tag()
        .unwrap()
        .to_string();
    assert_eq!(e1, quoted_md5(&source), "whole copy keeps the MD5 ETag");
    let (first, last) = (100usize, 100 + 5 * MIB);
    let ranged = copy(2, "src/big", Some(&format!("bytes={first}-{last}")))
        .await
        .unwrap();
    let e2 = ranged
        .copy_part_result()
        .unwrap()
        .e_tag()
        .unwrap()
        .to_string();
    assert_eq!(e2, quoted_md5(&source[first..=last]), "ranged copy ETag");
    let e3 = copy(3, "src/small", None)
        .await
        .unwrap()
        .copy_part_result()
        .unwrap()
        .e_tag()
        .unwrap()
        .to_string();
    assert_eq!(e3, quoted_md5(&small));

    expect_s3_error(
        "range beyond the source",
        copy(4, "src/big", Some("bytes=0-99999999")).await,
        416,
        Some("InvalidRange"),
    );
    expect_s3_error(
        "malformed range",
        copy(4, "src/big", Some("bytes=5")).await,
        400,
        Some("InvalidArgument"),
    );
    expect_s3_error(
        "missing source",
        copy(4, "src/none", None).await,
        404,
        Some("NoSuchKey"),
    );

    complete(
        &s3,
        &bucket,
        key,
        &upload_id,
        &[(1, &e1), (2, &e2), (3, &e3)],
    )
    .await
    .unwrap();
    // The copy holds its own references: deleting the source does not hurt it.
    delete_object(&s3, &bucket, "src/big").await;
    let got = get_bytes(&s3, &bucket, key).await;
    let expected = [&source[..], &source[first..=last], &small[..]].concat();
    assert_eq!(got.len(), expected.len());
    assert_eq!(md5_hex(&got), md5_hex(&expected), "copied content");
}

/// `aws s3 cp` of a 40 MiB file with the CLI's default settings (8 MiB multipart threshold
/// and chunks, default checksums), up and down, byte-identical.
#[tokio::test]
async fn aws_cli_default_multipart_cp() {
    let server = server();
    let aws = AwsCli::new(server);
    let s3 = server.client();
    let bucket = new_bucket(&s3, "mpu-cli").await;
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(40 * MIB);
    let up = dir.path().join("up.bin");
    let down = dir.path().join("down.bin");
    std::fs::write(&up, &data).unwrap();
    let object = format!("s3://{bucket}/big/forty.bin");
    aws.ok(&["s3", "cp", up.to_str().unwrap(), &object]);
    let head = head_object(&s3, &bucket, "big/forty.bin").await;
    let etag = head.e_tag().unwrap_or_default().to_string();
    assert!(
        etag.ends_with("-5\""),
        "uploaded in 5 parts of 8 MiB: ETag {etag}"
    );
    assert_eq!(head.content_length(), Some(data.len() as i64));
    aws.ok(&["s3", "cp", &object, down.to_str().unwrap()]);
    let got = std::fs::read(&down).unwrap();
    assert_eq!(got.len(), data.len(), "downloaded size");
    assert_eq!(md5_hex(&got), md5_hex(&data), "downloaded content");
    let listed = aws.ok(&["s3api", "list-multipart-uploads", "--bucket", &bucket]);
    assert!(
        !listed.contains("UploadId"),
        "no upload left behind:\n{listed}"
    );
}

/// Checksummed uploads: FULL_OBJECT CRC64NVME and COMPOSITE CRC32, computed by the SDK on each
/// part, named in Complete, and validated by the SDK on a checksum-mode GET.
#[tokio::test]
async fn checksummed_uploads_full_object_and_composite() {
    use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, ChecksumType};
    let s3 = server().client();
    let bucket = new_bucket(&s3, "mpu-sum").await;
    let parts = [random_bytes(5 * MIB), random_bytes(MIB + 7)];
    for (algorithm, kind) in [
        (ChecksumAlgorithm::Crc64Nvme, ChecksumType::FullObject),
        (ChecksumAlgorithm::Crc32, ChecksumType::Composite),
    ] {
        let key = format!("sum-{}", algorithm.as_str());
        let created = s3
            .create_multipart_upload()
            .bucket(&bucket)
            .key(&key)
            .checksum_algorithm(algorithm.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(created.checksum_algorithm(), Some(&algorithm));
        assert_eq!(created.checksum_type(), Some(&kind));
        let upload_id = created.upload_id().unwrap().to_string();
        let mut done = Vec::new();
        for (i, data) in parts.iter().enumerate() {
            let out = s3
                .upload_part()
                .bucket(&bucket)
                .key(&key)
                .upload_id(&upload_id)
                .part_number(i as i32 + 1)
                .checksum_algorithm(algorithm.clone())
                .body(ByteStream::from(data.clone()))
                .send()
                .await
                .unwrap_or_else(|e| panic!("UploadPart with {algorithm:?}: {e:?}"));
            let part = CompletedPart::builder()
                .part_number(i as i32 + 1)
                .e_tag(out.e_tag().unwrap())
                .set_checksum_crc64_nvme(out.checksum_crc64_nvme().map(str::to_string))
                .set_checksum_crc32(out.checksum_crc32().map(str::to_string));
            assert!(
                out.checksum_crc64_nvme().is_some() || out.checksum_crc32().is_some(),
                "part checksum returned"
            );
            done.push(part.build());
        }
        s3.complete_multipart_upload()
            .bucket(&bucket)
            .key(&key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(done))
                    .build(),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("Complete with {algorithm:?}: {e:?}"));
        let got = s3
            .get_object()
            .bucket(&bucket)
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        let stored = got
            .checksum_crc64_nvme()
            .or(got.checksum_crc32())
            .unwrap_or_default()
            .to_string();
        match kind {
            ChecksumType::Composite => assert!(stored.ends_with("-2"), "composite: {stored}"),
            _ => assert!(
                !stored.is_empty() && !stored.contains('-'),
                "full object: {stored}"
            ),
        }
        // The SDK validates a full-object checksum while reading the body.
        let body = got
            .body
            .collect()
            .await
            .unwrap_or_else(|e| panic!("GET body with {algorithm:?}: {e:?}"))
            .into_bytes();
        assert_eq!(md5_hex(&body), md5_hex(&parts.concat()));
    }
}

/// CompleteMultipartUpload with `If-None-Match: *` / `If-Match`: a refused Complete leaves
/// the upload in place, so it can be completed once the condition holds.
#[tokio::test]
async fn conditional_complete() {
    let s3 = server().client();
    let bucket = new_bucket(&s3, "mpu-cond").await;
    let key = "cond.bin";
    let old = random_bytes(1000);
    put_bytes(&s3, &bucket, key, &old).await;
    let data = random_bytes(2 * MIB + 3);
    let upload_id = create_upload(&s3, &bucket, key).await;
    let etag = upload_part(&s3, &bucket, key, &upload_id, 1, &data).await;
    let complete_if = |none_match: Option<&str>, if_match: Option<String>| {
        s3.complete_multipart_upload()
            .bucket(&bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(completed_upload(&[(1, &etag)]))
            .set_if_none_match(none_match.map(str::to_string))
            .set_if_match(if_match)
            .send()
    };
    expect_s3_error(
        "Complete with If-None-Match: * onto an existing key",
        complete_if(Some("*"), None).await,
        412,
        Some("PreconditionFailed"),
    );
    expect_s3_error(
        "Complete with a stale If-Match",
        complete_if(None, Some(quoted_md5(b"something else"))).await,
        412,
        Some("PreconditionFailed"),
    );
    assert!(
        get_bytes(&s3, &bucket, key).await == old,
        "object unchanged"
    );
    let parts = list_parts(&s3, &bucket, key, &upload_id)
        .send()
        .await
        .expect("the upload survives refused Completes");
    assert_eq!(parts.parts().len(), 1);
    let done = complete_if(None, Some(quoted_md5(&old))).await.unwrap();
    assert_eq!(done.e_tag(), Some(multipart_etag(&[&data]).as_str()));
    assert!(
        get_bytes(&s3, &bucket, key).await == data,
        "completed under If-Match"
    );

    // Create-only Complete on a fresh key.
    let fresh = "fresh.bin";
    let upload_id = create_upload(&s3, &bucket, fresh).await;
    let etag = upload_part(&s3, &bucket, fresh, &upload_id, 1, &data).await;
    s3.complete_multipart_upload()
        .bucket(&bucket)
        .key(fresh)
        .upload_id(&upload_id)
        .multipart_upload(completed_upload(&[(1, &etag)]))
        .if_none_match("*")
        .send()
        .await
        .unwrap();
    assert!(get_bytes(&s3, &bucket, fresh).await == data);
}

/// The server is killed (SIGKILL) and restarted between UploadPart and Complete: the upload
/// and its acknowledged parts survive, and Complete assembles them byte for byte.
#[tokio::test]
async fn upload_survives_a_restart_before_complete() {
    let mut server = Server::start();
    let s3 = server.client();
    let bucket = new_bucket(&s3, "mpu-restart").await;
    let key = "restart.bin";
    let parts = [random_bytes(5 * MIB), random_bytes(3 * MIB + 17)];
    let upload_id = create_upload(&s3, &bucket, key).await;
    let mut etags = Vec::new();
    for (i, data) in parts.iter().enumerate() {
        etags.push(upload_part(&s3, &bucket, key, &upload_id, i as i32 + 1, data).await);
    }
    server.kill_9();
    server.restart();
    let s3 = server.client();
    let listed = s3
        .list_multipart_uploads()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.uploads().len(), 1, "upload listed after restart");
    let named: Vec<(i32, &String)> = (1..).zip(&etags).collect();
    let done = complete(&s3, &bucket, key, &upload_id, &named)
        .await
        .unwrap_or_else(|e| panic!("Complete after restart: {e:?}\n{}", server.log_tail()));
    assert_eq!(
        done.e_tag(),
        Some(multipart_etag(&[&parts[0], &parts[1]]).as_str())
    );
    let got = get_bytes(&s3, &bucket, key).await;
    assert_eq!(got.len(), parts[0].len() + parts[1].len());
    assert_eq!(md5_hex(&got), md5_hex(&parts.concat()), "assembled content");
}

/// Two clients upload the same part number at once with different bodies (several blocks
/// each): the part Complete names is exactly one of them, never a mix, and the other ETag
/// is no longer a valid part.
#[tokio::test]
async fn concurrent_uploads_of_one_part_number() {
    let s3 = server().client();
    let other = server().client();
    let bucket = new_bucket(&s3, "mpu-race").await;
    for round in 0..4 {
        let key = format!("race-{round}.bin");
        let upload_id = create_upload(&s3, &bucket, &key).await;
        let a = random_bytes(3 * MIB + 1);
        let b = random_bytes(3 * MIB + 1);
        let (ea, eb) = tokio::join!(
            upload_part(&s3, &bucket, &key, &upload_id, 1, &a),
            upload_part(&other, &bucket, &key, &upload_id, 1, &b)
        );
        let listed = list_parts(&s3, &bucket, &key, &upload_id)
            .send()
            .await
            .unwrap();
        assert_eq!(listed.parts().len(), 1, "one part 1");
        let named = listed.parts()[0].e_tag().unwrap().to_string();
        let (winner, loser) = if named == ea { (&a, &eb) } else { (&b, &ea) };
        assert!(
            named == ea || named == eb,
            "listed ETag {named} is one of the bodies"
        );
        expect_s3_error(
            "Complete naming the replaced part",
            complete(&s3, &bucket, &key, &upload_id, &[(1, loser)]).await,
            400,
            Some("InvalidPart"),
        );
        complete(&s3, &bucket, &key, &upload_id, &[(1, &named)])
            .await
            .unwrap();
        let got = get_bytes(&s3, &bucket, &key).await;
        assert_eq!(
            md5_hex(&got),
            md5_hex(winner),
            "round {round}: exactly one body"
        );
    }
}

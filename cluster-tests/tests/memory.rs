//! A 1 GiB object goes through the server in bounded memory, both ways; so do four
//! concurrent 1 GiB multipart uploads. (Plus an ignored release-build measurement of
//! multipart vs single-PUT throughput.)

use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use cluster_tests::data::{Pattern, shared_byte_stream, stream_md5};
use cluster_tests::{Server, s3_client_with_timeout};
use md5::{Digest, Md5};

const GIB: u64 = 1024 * 1024 * 1024;
const RSS_LIMIT: u64 = 200 * 1024 * 1024;

#[tokio::test]
async fn one_gib_object_in_bounded_memory() {
    let server = Server::start();
    let key = server.root_key();
    let s3 = s3_client_with_timeout(
        &server.s3_url(),
        &key.id,
        &key.secret,
        Duration::from_secs(1200),
    );
    s3.create_bucket().bucket("memory").send().await.unwrap();
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let before = server.peak_rss_bytes();

    let seed = rand::random::<u64>();
    let expected_md5 = Pattern::new(seed, GIB).md5_hex();
    let t = Instant::now();
    let put = s3
        .put_object()
        .bucket("memory")
        .key("big")
        .content_length(GIB as i64)
        .body(Pattern::new(seed, GIB).into_byte_stream())
        .send()
        .await
        .unwrap();
    let put_secs = t.elapsed().as_secs_f64();
    assert_eq!(put.e_tag(), Some(format!("\"{expected_md5}\"").as_str()));
    let after_put = server.peak_rss_bytes();

    let t = Instant::now();
    let get = s3
        .get_object()
        .bucket("memory")
        .key("big")
        .send()
        .await
        .unwrap();
    assert_eq!(get.content_length(), Some(GIB as i64));
    let (len, md5) = stream_md5(get.body).await.unwrap();
    let get_secs = t.elapsed().as_secs_f64();
    let after_get = server.peak_rss_bytes();
    println!(
        "server peak RSS (VmHWM): at start {:.1} MiB, after 1 GiB PUT {:.1} MiB ({:.0} MiB/s), \
         after 1 GiB GET {:.1} MiB ({:.0} MiB/s)",
        mib(before),
        mib(after_put),
        1024.0 / put_secs,
        mib(after_get),
        1024.0 / get_secs
    );
    assert_eq!(len, GIB, "GET length");
    assert_eq!(md5, expected_md5, "GET body MD5");
    assert!(
        after_put < RSS_LIMIT,
        "server peak RSS {:.1} MiB after a 1 GiB PUT (limit {:.0} MiB)",
        mib(after_put),
        mib(RSS_LIMIT)
    );
    assert!(
        after_get < RSS_LIMIT,
        "server peak RSS {:.1} MiB after a 1 GiB GET (limit {:.0} MiB)",
        mib(after_get),
        mib(RSS_LIMIT)
    );
    s3.delete_object()
        .bucket("memory")
        .key("big")
        .send()
        .await
        .unwrap();
}

const MIB: u64 = 1024 * 1024;

fn mib(b: u64) -> f64 {
    b as f64 / MIB as f64
}

/// Uploads `size` bytes as a multipart upload of `body.len()` sized parts, `parallel` parts
/// at a time, every part streamed from the same `body` (shared, not copied). Checks each
/// part ETag and the final multipart ETag.
async fn multipart_upload(
    s3: &Client,
    bucket: &str,
    key: &str,
    body: &bytes::Bytes,
    size: u64,
    parallel: usize,
) {
    use futures::StreamExt;
    let upload_id = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_string();
    let part = body.len() as u64;
    let count = size.div_ceil(part);
    let len = |n: u64| part.min(size - (n - 1) * part);
    let md5_of = |n: u64| hex::encode(Md5::digest(&body[..len(n) as usize]));
    let (full_md5, last_md5) = (md5_of(1), md5_of(count));
    let etags: Vec<(i32, String)> = futures::stream::iter(1..=count)
        .map(|n| {
            let upload_id = upload_id.clone();
            async move {
                let out = s3
                    .upload_part()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .part_number(n as i32)
                    .content_length(len(n) as i64)
                    .body(shared_byte_stream(body.slice(..len(n) as usize)))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("UploadPart {n} of {key}: {e:?}"));
                (n as i32, out.e_tag().unwrap().to_string())
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    let mut etags = etags;
    etags.sort();
    let mut md5 = Md5::new();
    for (n, etag) in &etags {
        let want = if *n as u64 == count {
            &last_md5
        } else {
            &full_md5
        };
        assert_eq!(etag, &format!("\"{want}\""), "ETag of part {n} of {key}");
        md5.update(hex::decode(want).unwrap());
    }
    let parts = etags
        .iter()
        .map(|(n, e)| CompletedPart::builder().part_number(*n).e_tag(e).build())
        .collect();
    let done = s3
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("Complete {key}: {e:?}"));
    let expected = format!("\"{}-{count}\"", hex::encode(md5.finalize()));
    assert_eq!(done.e_tag(), Some(expected.as_str()), "ETag of {key}");
}

/// Four concurrent 1 GiB multipart uploads (16 MiB parts, two in flight per upload, streamed
/// from one shared 16 MiB buffer per upload) keep the server's peak RSS under 300 MiB.
#[tokio::test]
async fn four_concurrent_multipart_uploads_in_bounded_memory() {
    const LIMIT: u64 = 300 * MIB;
    let server = Server::start();
    let key = server.root_key();
    let s3 = s3_client_with_timeout(
        &server.s3_url(),
        &key.id,
        &key.secret,
        Duration::from_secs(1200),
    );
    s3.create_bucket()
        .bucket("mpu-memory")
        .send()
        .await
        .unwrap();
    let before = server.peak_rss_bytes();
    let bodies: Vec<bytes::Bytes> = (0..4)
        .map(|_| cluster_tests::random_bytes(16 * MIB as usize).into())
        .collect();
    let t = Instant::now();
    let uploads = bodies.iter().cloned().enumerate().map(|(i, body)| {
        let s3 = s3.clone();
        tokio::spawn(async move {
            let key = format!("big-{i}");
            multipart_upload(&s3, "mpu-memory", &key, &body, GIB, 2).await;
            let head = s3
                .head_object()
                .bucket("mpu-memory")
                .key(&key)
                .send()
                .await
                .unwrap();
            assert_eq!(head.content_length(), Some(GIB as i64));
        })
    });
    for upload in futures::future::join_all(uploads).await {
        upload.unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    let peak = server.peak_rss_bytes();
    println!(
        "server peak RSS (VmHWM): at start {:.1} MiB, after 4 concurrent 1 GiB multipart \
         uploads {:.1} MiB (limit {:.0} MiB); {:.0} MiB/s aggregate",
        mib(before),
        mib(peak),
        mib(LIMIT),
        4.0 * 1024.0 / secs
    );
    assert!(
        peak < LIMIT,
        "server peak RSS {:.1} MiB after 4 concurrent 1 GiB multipart uploads",
        mib(peak)
    );
    // A stretch across a part boundary reads back as the pattern.
    let out = s3
        .get_object()
        .bucket("mpu-memory")
        .key("big-2")
        .range(format!("bytes={}-{}", 16 * MIB - 10, 16 * MIB + 9))
        .send()
        .await
        .unwrap();
    let got = out.body.collect().await.unwrap().into_bytes();
    assert_eq!(&got[..10], &bodies[2][bodies[2].len() - 10..]);
    assert_eq!(&got[10..], &bodies[2][..10]);
}

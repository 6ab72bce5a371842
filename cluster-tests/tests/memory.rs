//! A 1 GiB object goes through the server in bounded memory, both ways.

use std::time::{Duration, Instant};

use cluster_tests::data::{Pattern, stream_md5};
use cluster_tests::{Server, s3_client_with_timeout};

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

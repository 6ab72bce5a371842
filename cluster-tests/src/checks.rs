//! Small checks the cluster tests share: writing and reading objects with their ETags
//! verified, waiting for a condition, and reading `cairn status` tables.

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;

use crate::data::quoted_md5;
use crate::s3::s3_failure;

/// PUTs `data` and asserts the ETag is its MD5; panics on failure.
pub async fn put_checked(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, data: &[u8]) {
    let out = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {key}: {e:?}"));
    assert_eq!(out.e_tag(), Some(quoted_md5(data).as_str()), "PUT {key}");
}

/// GET: `Ok(Some(body))`, `Ok(None)` for 404 NoSuchKey, `Err` (the failure) otherwise.
pub async fn try_get(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<Vec<u8>>, String> {
    match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => {
            let body = out.body.collect().await.map_err(|e| format!("{e:?}"))?;
            Ok(Some(body.into_bytes().to_vec()))
        }
        Err(e) => {
            let f = s3_failure(&e);
            if f.status == Some(404) && f.code.as_deref() == Some("NoSuchKey") {
                Ok(None)
            } else {
                Err(format!("GET {key}: {}", f.detail))
            }
        }
    }
}

/// The keys of the first ListObjectsV2 page of `bucket` (up to 1000); panics on failure.
pub async fn list_keys(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let out = s3
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("LIST {bucket}: {e:?}"));
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect()
}

/// Waits until `cond` holds, checking every 250 ms; panics with `what` after `limit`.
/// Returns how long it took.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
    start.elapsed()
}

/// The row of node `id` in a `cairn status` table, if listed.
pub fn status_row<'a>(status: &'a str, id: &str) -> Option<&'a str> {
    status.lines().find(|l| l.starts_with(id))
}

/// The object record count `cairn status` shows for an up node.
pub fn status_records(status: &str, id: &str) -> Option<u64> {
    status_row(status, id)?
        .split("up, ")
        .nth(1)?
        .split(' ')
        .next()?
        .parse()
        .ok()
}

/// Total size of the files under `dir` (recursively; 0 when it does not exist).
pub fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

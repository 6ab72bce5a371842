//! Small checks the cluster tests share: waiting for a condition (blocking or async),
//! reading `cairn status` tables, measuring a data dir.

use std::time::{Duration, Instant};

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

/// Waits until the async `cond` holds, checking every 100 ms; panics with `what` after
/// `limit`. Returns how long it took.
pub async fn eventually(
    limit: Duration,
    what: &str,
    mut cond: impl AsyncFnMut() -> bool,
) -> Duration {
    let start = Instant::now();
    while !cond().await {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
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

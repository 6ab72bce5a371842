//! The node's "last seen alive" mark on disk. Tombstones are collected once every replica
//! holds them and the tombstone grace has passed, so a node that was offline longer than the
//! grace may hold versions whose deletes the others have forgotten: it re-enters empty (its
//! object index and blocks are discarded) and anti-entropy refills it, so it can never
//! resurrect a delete.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_proto::ids::now_ms;

const FILE: &str = "last_seen_ms";

/// Where the mark of `data_dir` lives.
fn mark_path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// When the node in `data_dir` was last seen alive (unix ms), if it ever ran.
fn last_seen(data_dir: &Path) -> Option<i64> {
    std::fs::read_to_string(mark_path(data_dir))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// Records that the node is alive now (atomically replaced; no fsync needed: an older mark
/// after a crash can only make the node re-enter empty, never keep stale data).
pub fn mark_alive(data_dir: &Path) -> std::io::Result<()> {
    let tmp = data_dir.join(format!("{FILE}.tmp"));
    std::fs::write(&tmp, now_ms().to_string())?;
    std::fs::rename(tmp, mark_path(data_dir))
}

/// Called before the stores open: when the node was last alive longer than `grace` ago,
/// removes `stores` (the object index and block directory). Returns whether it did.
pub fn discard_if_stale(
    data_dir: &Path,
    grace: Duration,
    stores: &[PathBuf],
) -> anyhow::Result<bool> {
    let Some(seen) = last_seen(data_dir) else {
        return Ok(false);
    };
    let offline_ms = now_ms().saturating_sub(seen);
    if offline_ms <= grace.as_millis() as i64 {
        return Ok(false);
    }
    tracing::warn!(
        offline_secs = offline_ms / 1000,
        grace_secs = grace.as_secs(),
        "offline longer than the tombstone grace: discarding local objects, anti-entropy refills them"
    );
    for path in stores {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(path)?,
            Ok(_) => std::fs::remove_file(path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    std::fs::File::open(data_dir)?.sync_all()?;
    Ok(true)
}

/// Refreshes the mark forever, often enough that a running node never looks stale.
pub async fn run(data_dir: PathBuf, grace: Duration) {
    let every = (grace / 4).clamp(Duration::from_millis(250), Duration::from_secs(30));
    loop {
        let dir = data_dir.clone();
        match tokio::task::spawn_blocking(move || mark_alive(&dir)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot write the liveness mark"),
            Err(e) => tracing::warn!(error = %e, "liveness mark task failed"),
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_or_recent_node_keeps_its_data_and_a_stale_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join("index.redb");
        let blocks = dir.path().join("blocks");
        std::fs::write(&index, b"x").unwrap();
        std::fs::create_dir_all(blocks.join("ab")).unwrap();
        let stores = [index.clone(), blocks.clone()];
        let grace = Duration::from_secs(60);

        assert!(!discard_if_stale(dir.path(), grace, &stores).unwrap());
        mark_alive(dir.path()).unwrap();
        assert!(!discard_if_stale(dir.path(), grace, &stores).unwrap());
        assert!(index.exists() && blocks.exists());

        let old = now_ms() - 61_000;
        std::fs::write(mark_path(dir.path()), old.to_string()).unwrap();
        assert!(discard_if_stale(dir.path(), grace, &stores).unwrap());
        assert!(!index.exists() && !blocks.exists());
    }
}

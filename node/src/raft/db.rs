//! The redb database shared by the Raft log store and the state machine, and the small helpers
//! both use: writes run on the blocking pool and commit durably before they return.

use std::io;
use std::path::Path;
use std::sync::Arc;

use redb::{Database, Durability, ReadableDatabase, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Log entries by index (serde_json of the openraft entry).
pub(crate) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
/// Log-store metadata: vote, committed and purged log ids (serde_json).
pub(crate) const LOG_META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_log_meta");
/// State machine: the applied state and the last snapshot (serde_json).
pub(crate) const SM: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_sm");

/// Opens (or creates) `<dir>/raft.redb` with every table present.
pub(crate) fn open(dir: &Path) -> anyhow::Result<Arc<Database>> {
    std::fs::create_dir_all(dir)?;
    let db = Database::create(dir.join("raft.redb"))?;
    let tx = db.begin_write()?;
    tx.open_table(LOG)?;
    tx.open_table(LOG_META)?;
    tx.open_table(SM)?;
    tx.commit()?;
    Ok(Arc::new(db))
}

/// Turns any error into an `io::Error` (the error type of openraft's storage traits).
pub(crate) fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Runs `f` in one write transaction on the blocking pool and commits it. With
/// `durable`, the commit is fsynced before this returns (redb `Durability::Immediate`).
pub(crate) async fn write<F>(db: &Arc<Database>, durable: bool, f: F) -> io::Result<()>
where
    F: FnOnce(&WriteTransaction) -> Result<(), redb::Error> + Send + 'static,
{
    let db = db.clone();
    tokio::task::spawn_blocking(move || -> Result<(), redb::Error> {
        let mut tx = db.begin_write()?;
        let durability = if durable {
            Durability::Immediate
        } else {
            Durability::None
        };
        tx.set_durability(durability)?;
        f(&tx)?;
        tx.commit()?;
        Ok(())
    })
    .await
    .map_err(io_err)?
    .map_err(io_err)
}

/// Reads and decodes one serde_json value from a `&str`-keyed table.
pub(crate) fn get_json<T: DeserializeOwned>(
    db: &Database,
    table: TableDefinition<&str, &[u8]>,
    key: &str,
) -> io::Result<Option<T>> {
    let tx = db.begin_read().map_err(io_err)?;
    let table = tx.open_table(table).map_err(io_err)?;
    match table.get(key).map_err(io_err)? {
        Some(v) => Ok(Some(serde_json::from_slice(v.value()).map_err(io_err)?)),
        None => Ok(None),
    }
}

/// serde_json encoding mapped to `io::Error`.
pub(crate) fn to_json<T: Serialize + ?Sized>(v: &T) -> io::Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(io_err)
}

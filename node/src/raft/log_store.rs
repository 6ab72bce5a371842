//! Openraft log storage on redb: log entries, the vote, and the committed / purged log ids.
//!
//! Every append, truncation, purge and vote is committed with `Durability::Immediate`
//! (fsynced) before openraft is told it is done; only the committed id, an optimisation that
//! may lag, is written without an fsync (it becomes durable with the next durable commit).

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::OptionalSend;
use openraft::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use redb::{Database, ReadableDatabase, ReadableTable};

use super::TypeConfig;
use super::db::{self, LOG, LOG_META, get_json, io_err, to_json};

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

/// The Raft log on redb. Cheap to clone; clones share the database (and serve as log readers).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
}

impl LogStore {
    /// A log store on an opened database (tables already created).
    pub(crate) fn new(db: Arc<Database>) -> Self {
        Self { db }
    }

    fn last_entry_log_id(&self) -> io::Result<Option<LogIdOf<TypeConfig>>> {
        let tx = self.db.begin_read().map_err(io_err)?;
        let table = tx.open_table(LOG).map_err(io_err)?;
        match table.last().map_err(io_err)? {
            Some((_, v)) => {
                let entry: EntryOf<TypeConfig> =
                    serde_json::from_slice(v.value()).map_err(io_err)?;
                Ok(Some(entry.log_id))
            }
            None => Ok(None),
        }
    }

    async fn put_meta(&self, key: &'static str, value: Vec<u8>, durable: bool) -> io::Result<()> {
        db::write(&self.db, durable, move |tx| {
            tx.open_table(LOG_META)?.insert(key, value.as_slice())?;
            Ok(())
        })
        .await
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<EntryOf<TypeConfig>>, io::Error> {
        let bounds: (Bound<u64>, Bound<u64>) =
            (range.start_bound().cloned(), range.end_bound().cloned());
        let tx = self.db.begin_read().map_err(io_err)?;
        let table = tx.open_table(LOG).map_err(io_err)?;
        let mut entries = Vec::new();
        for row in table.range(bounds).map_err(io_err)? {
            let (_, v) = row.map_err(io_err)?;
            entries.push(serde_json::from_slice(v.value()).map_err(io_err)?);
        }
        Ok(entries)
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<TypeConfig>>, io::Error> {
        get_json(&self.db, LOG_META, VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged_log_id: Option<LogIdOf<TypeConfig>> =
            get_json(&self.db, LOG_META, LAST_PURGED)?;
        let last_log_id = self.last_entry_log_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<TypeConfig>) -> Result<(), io::Error> {
        self.put_meta(VOTE, to_json(vote)?, true).await
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogIdOf<TypeConfig>>,
    ) -> Result<(), io::Error> {
        // Not fsynced: a stale committed id only means re-applying a few entries on restart.
        self.put_meta(COMMITTED, to_json(&committed)?, false).await
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<TypeConfig>>, io::Error> {
        Ok(get_json::<Option<LogIdOf<TypeConfig>>>(&self.db, LOG_META, COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = EntryOf<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let rows = entries
            .into_iter()
            .map(|e| Ok((e.log_id.index, to_json(&e)?)))
            .collect::<io::Result<Vec<(u64, Vec<u8>)>>>()?;
        db::write(&self.db, true, move |tx| {
            let mut table = tx.open_table(LOG)?;
            for (index, bytes) in &rows {
                table.insert(index, bytes.as_slice())?;
            }
            Ok(())
        })
        .await?;
        // Durable now: only then may openraft count these entries as persisted.
        callback.io_completed(Ok(()));
        Ok(())
    }

    async fn truncate_after(
        &mut self,
        last_log_id: Option<LogIdOf<TypeConfig>>,
    ) -> Result<(), io::Error> {
        let start = match &last_log_id {
            Some(id) => Bound::Excluded(id.index),
            None => Bound::Unbounded,
        };
        db::write(&self.db, true, move |tx| {
            tx.open_table(LOG)?
                .retain_in::<u64, _>((start, Bound::Unbounded), |_, _| false)?;
            Ok(())
        })
        .await
    }

    async fn purge(&mut self, log_id: LogIdOf<TypeConfig>) -> Result<(), io::Error> {
        let purged = to_json(&log_id)?;
        let upto = log_id.index;
        db::write(&self.db, true, move |tx| {
            tx.open_table(LOG_META)?
                .insert(LAST_PURGED, purged.as_slice())?;
            tx.open_table(LOG)?
                .retain_in::<u64, _>(..=upto, |_, _| false)?;
            Ok(())
        })
        .await
    }
}

//! The Raft state machine: [`Metadata`] advanced by [`Metadata::apply`] for every committed
//! command, persisted in redb together with the last applied log id and the membership.
//!
//! Applying is in memory only: the log entries are durable (fsynced at a quorum) before they
//! are applied, so the state is persisted only with each snapshot (every
//! `SnapshotPolicy::LogsSinceLast` entries, see `MetaRaft::open`) and a restart re-applies the
//! entries after it. A write costs no full-state serialisation, however large the metadata
//! (open multipart uploads) grows. A snapshot is the serde_json of the [`Metadata`]; the last
//! one built or installed is kept in redb together with the applied state it was built from.

use std::io;
use std::sync::Arc;

use cairn_proto::meta::{MetaResult, Metadata};
use futures::{Stream, TryStreamExt};
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, StoredMembership};
use redb::{Database, ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::TypeConfig;
use super::command_log::CommandLog;
use super::db::{self, SM, get_json, io_err, to_json};

const APPLIED: &str = "applied";
const SNAPSHOT_META: &str = "snapshot_meta";
const SNAPSHOT_DATA: &str = "snapshot_data";

/// What a node has applied: `(applied log index, state)`; index 0 before anything was applied.
pub type Applied = (u64, Arc<Metadata>);

/// The persisted applied state (borrowed form, for writing without copying).
#[derive(Serialize)]
struct AppliedRef<'a> {
    last_applied: &'a Option<LogIdOf<TypeConfig>>,
    membership: &'a StoredMembershipOf<TypeConfig>,
    state: &'a Metadata,
}

/// The persisted applied state (owned form, for reading).
#[derive(Deserialize)]
struct AppliedOwned {
    last_applied: Option<LogIdOf<TypeConfig>>,
    membership: StoredMembershipOf<TypeConfig>,
    state: Metadata,
}

/// The metadata state machine (owned by openraft's state-machine task).
pub struct StateMachine {
    db: Arc<Database>,
    last_applied: Option<LogIdOf<TypeConfig>>,
    membership: StoredMembershipOf<TypeConfig>,
    state: Arc<Metadata>,
    /// Publishes `(applied index, state)` after every applied batch.
    tx: watch::Sender<Applied>,
    /// The commands just applied, for watch streams to send as deltas.
    commands: Arc<std::sync::Mutex<CommandLog>>,
}

/// The applied commands a state machine shares with its watch streams.
pub(crate) type SharedCommandLog = Arc<std::sync::Mutex<CommandLog>>;

impl StateMachine {
    /// Loads the applied state from the database (empty on first start) and returns the
    /// state machine, a receiver of its changes and the log of the commands it applies.
    pub(crate) fn open(
        db: Arc<Database>,
    ) -> io::Result<(Self, watch::Receiver<Applied>, SharedCommandLog)> {
        let loaded: Option<AppliedOwned> = get_json(&db, SM, APPLIED)?;
        let (last_applied, membership, state) = match loaded {
            Some(a) => (a.last_applied, a.membership, a.state),
            None => (None, StoredMembership::default(), Metadata::default()),
        };
        let state = Arc::new(state);
        let (tx, rx) = watch::channel((index_of(&last_applied), state.clone()));
        let commands = Arc::new(std::sync::Mutex::new(CommandLog::new(index_of(
            &last_applied,
        ))));
        Ok((
            Self {
                db,
                last_applied,
                membership,
                state,
                tx,
                commands: commands.clone(),
            },
            rx,
            commands,
        ))
    }

    /// Commits an installed snapshot durably, with the applied state it stands for.
    async fn persist(&self, meta: &SnapshotMetaOf<TypeConfig>, data: Vec<u8>) -> io::Result<()> {
        let applied = applied_json(&self.last_applied, &self.membership, &self.state)?;
        let meta = to_json(meta)?;
        db::write(&self.db, true, move |tx| {
            let mut table = tx.open_table(SM)?;
            table.insert(APPLIED, applied.as_slice())?;
            table.insert(SNAPSHOT_META, meta.as_slice())?;
            table.insert(SNAPSHOT_DATA, data.as_slice())?;
            Ok(())
        })
        .await
    }

    fn commands_log(&self) -> std::sync::MutexGuard<'_, CommandLog> {
        self.commands.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self) {
        self.tx
            .send_replace((index_of(&self.last_applied), self.state.clone()));
    }
}

/// The persisted form of an applied state.
fn applied_json(
    last_applied: &Option<LogIdOf<TypeConfig>>,
    membership: &StoredMembershipOf<TypeConfig>,
    state: &Metadata,
) -> io::Result<Vec<u8>> {
    to_json(&AppliedRef {
        last_applied,
        membership,
        state,
    })
}

fn index_of(log_id: &Option<LogIdOf<TypeConfig>>) -> u64 {
    log_id.as_ref().map(|l| l.index).unwrap_or(0)
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<TypeConfig>>, StoredMembershipOf<TypeConfig>), io::Error> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut answers = Vec::new();
        while let Some((entry, responder)) = entries.try_next().await? {
            let log_id = entry.log_id;
            let answer = match entry.payload {
                EntryPayload::Blank => MetaResult::Ok,
                EntryPayload::Normal(req) => {
                    self.commands_log().record(log_id.index, &req.0);
                    Arc::make_mut(&mut self.state).apply(&req.0)
                }
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(log_id), m);
                    MetaResult::Ok
                }
            };
            self.last_applied = Some(log_id);
            if let Some(r) = responder {
                answers.push((r, answer));
            }
        }
        // The entries are durable in the log: persisting waits for the next snapshot.
        self.publish();
        for (responder, answer) in answers {
            responder.send(answer);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            db: self.db.clone(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            state: self.state.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<TypeConfig>,
        snapshot: Self::SnapshotData,
    ) -> Result<(), io::Error> {
        let state: Metadata = serde_json::from_slice(&snapshot).map_err(io_err)?;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.state = Arc::new(state);
        self.commands_log().reset(index_of(&self.last_applied));
        // State and snapshot replaced in one transaction: a crash leaves either old or new.
        self.persist(meta, snapshot).await?;
        self.publish();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<TypeConfig, Vec<u8>>>, io::Error> {
        let tx = self.db.begin_read().map_err(io_err)?;
        let table = tx.open_table(SM).map_err(io_err)?;
        let (Some(meta), Some(data)) = (
            table.get(SNAPSHOT_META).map_err(io_err)?,
            table.get(SNAPSHOT_DATA).map_err(io_err)?,
        ) else {
            return Ok(None);
        };
        let meta: SnapshotMetaOf<TypeConfig> =
            serde_json::from_slice(meta.value()).map_err(io_err)?;
        Ok(Some(SnapshotOf::<TypeConfig, Vec<u8>> {
            meta,
            snapshot: data.value().to_vec(),
        }))
    }
}

/// Builds a snapshot from a consistent copy of the state taken when openraft asked for it.
pub struct SnapshotBuilder {
    db: Arc<Database>,
    last_applied: Option<LogIdOf<TypeConfig>>,
    membership: StoredMembershipOf<TypeConfig>,
    state: Arc<Metadata>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<TypeConfig, Vec<u8>>, io::Error> {
        let data = to_json(&*self.state)?;
        let meta = SnapshotMetaOf::<TypeConfig> {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
        };
        let meta_json = to_json(&meta)?;
        let applied = applied_json(&self.last_applied, &self.membership, &self.state)?;
        let stored_data = data.clone();
        let ours = self.last_applied;
        db::write(&self.db, true, move |tx| {
            let mut table = tx.open_table(SM)?;
            // An install may have stored a newer snapshot while this one was being built.
            let newer_exists = match table.get(SNAPSHOT_META)? {
                Some(v) => {
                    let existing: SnapshotMetaOf<TypeConfig> = serde_json::from_slice(v.value())
                        .map_err(|e| {
                            redb::Error::Corrupted(format!("stored snapshot meta: {e}"))
                        })?;
                    existing.last_log_id > ours
                }
                None => false,
            };
            // The applied state restarts from here: the log keeps every entry after the
            // newest snapshot, so replaying from it is always possible.
            if !newer_exists {
                table.insert(APPLIED, applied.as_slice())?;
                table.insert(SNAPSHOT_META, meta_json.as_slice())?;
                table.insert(SNAPSHOT_DATA, stored_data.as_slice())?;
            }
            Ok(())
        })
        .await?;
        Ok(SnapshotOf::<TypeConfig, Vec<u8>> {
            meta,
            snapshot: data,
        })
    }
}

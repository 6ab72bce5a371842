//! The commands of the most recently applied log entries, kept so that metadata watch
//! streams send a follower only what changed (its previous index plus the commands since)
//! instead of the whole state on every write.

use std::collections::VecDeque;

use cairn_proto::meta::MetaCommand;

/// How many applied commands are kept; a watcher further behind gets the full state.
const KEPT: usize = 4096;

/// Recently applied commands, as serde_json, by log index.
pub(crate) struct CommandLog {
    entries: VecDeque<(u64, Vec<u8>)>,
    /// Every command applied after this log index is in `entries`.
    complete_after: u64,
}

impl CommandLog {
    /// An empty log for a state machine that has applied up to `applied`.
    pub(crate) fn new(applied: u64) -> Self {
        Self {
            entries: VecDeque::new(),
            complete_after: applied,
        }
    }

    /// Notes the command of log entry `index` (applied in index order).
    pub(crate) fn record(&mut self, index: u64, cmd: &MetaCommand) {
        let json = serde_json::to_vec(cmd).expect("a metadata command serialises");
        self.entries.push_back((index, json));
        while self.entries.len() > KEPT {
            if let Some((dropped, _)) = self.entries.pop_front() {
                self.complete_after = dropped;
            }
        }
    }

    /// Forgets everything: the state jumped to log index `applied` (a snapshot install).
    pub(crate) fn reset(&mut self, applied: u64) {
        self.entries.clear();
        self.complete_after = applied;
    }

    /// The commands applied after `base` up to `upto`, in order, or `None` if some of them
    /// are no longer kept (or `base` is 0: a follower without a state gets the full one).
    pub(crate) fn between(&self, base: u64, upto: u64) -> Option<Vec<Vec<u8>>> {
        if base == 0 || base < self.complete_after || base > upto {
            return None;
        }
        Some(
            self.entries
                .iter()
                .filter(|(i, _)| *i > base && *i <= upto)
                .map(|(_, json)| json.clone())
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(name: &str) -> MetaCommand {
        MetaCommand::DeleteBucket {
            name: name.into(),
            id: None,
        }
    }

    #[test]
    fn deltas_cover_exactly_the_entries_after_the_base() {
        let mut log = CommandLog::new(10);
        log.record(12, &cmd("a"));
        log.record(13, &cmd("b"));
        log.record(15, &cmd("c"));
        let names = |v: Vec<Vec<u8>>| -> Vec<String> {
            v.iter()
                .map(|j| match serde_json::from_slice(j).unwrap() {
                    MetaCommand::DeleteBucket { name, .. } => name,
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        assert_eq!(names(log.between(10, 15).unwrap()), ["a", "b", "c"]);
        assert_eq!(names(log.between(12, 13).unwrap()), ["b"]);
        // Entries 11 and 14 were blank / membership: nothing to send, the index moves.
        assert_eq!(names(log.between(13, 14).unwrap()), Vec::<String>::new());
        assert!(log.between(9, 15).is_none(), "from before the log");
        assert!(log.between(0, 15).is_none(), "no base state");
        assert!(log.between(16, 15).is_none(), "base ahead");
        log.reset(20);
        assert!(log.between(15, 20).is_none());
        assert_eq!(log.between(20, 20).unwrap().len(), 0);
    }

    #[test]
    fn old_entries_fall_out_and_then_need_the_full_state() {
        let mut log = CommandLog::new(0);
        for i in 1..=(KEPT as u64 + 10) {
            log.record(i, &cmd("x"));
        }
        assert!(log.between(5, KEPT as u64 + 10).is_none());
        assert_eq!(log.between(10, KEPT as u64 + 10).unwrap().len(), KEPT);
    }
}

//! What the lifecycle rules ask for one key: a pure function of the rules, the key's
//! versions and the time, so it is tested without a cluster or waiting days.
//!
//! Ages count from when a version was written (current versions) or from when the next
//! newer version was written (noncurrent versions), in units of the configured day length,
//! and, as in S3, an action is due at the first midnight UTC (a multiple of the day length
//! since the epoch, so a shortened test day works the same way) after the days have passed.

use cairn_proto::meta::LifecycleRule;
use cairn_proto::pb::{self, RecordState};

use cairn_proto::versions::is_delete_marker;

use crate::store::index::{is_visible, version_of};

/// One thing to do to a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `Expiration` (Days or Date) of the current version: delete it (hide it behind a
    /// tombstone / delete marker).
    ExpireCurrent(pb::ObjectRecord),
    /// `NoncurrentVersionExpiration` of a noncurrent version, or `ExpiredObjectDeleteMarker`
    /// of a delete marker left alone: remove that version for good.
    RemoveVersion(pb::ObjectRecord),
}

/// When a version was written (unix ms).
fn written_ms(r: &pb::ObjectRecord) -> i64 {
    if r.last_modified_ms != 0 {
        return r.last_modified_ms;
    }
    version_of(r).millis()
}

/// Whether a rule of `days` days (of `day_ms`) counted from `since_ms` is due at `now_ms`:
/// S3 adds the days and rounds up to the next midnight UTC, here the next multiple of
/// `day_ms` since the epoch.
pub(crate) fn aged(since_ms: i64, days: u32, now_ms: i64, day_ms: i64) -> bool {
    let day_ms = day_ms.max(1);
    let passed = since_ms.saturating_add(i64::from(days).saturating_mul(day_ms));
    let due = passed
        .div_euclid(day_ms)
        .saturating_add(i64::from(passed.rem_euclid(day_ms) != 0))
        .saturating_mul(day_ms);
    due <= now_ms
}

/// The actions `rules` (enabled ones only are looked at) call for on one key, given its
/// versions oldest first in any state (`uploading` ones are ignored).
pub fn decide(
    rules: &[LifecycleRule],
    versions: &[pb::ObjectRecord],
    now_ms: i64,
    day_ms: i64,
) -> Vec<Action> {
    let visible: Vec<&pb::ObjectRecord> = versions.iter().filter(|r| is_visible(r)).collect();
    let Some((current, older)) = visible.split_last() else {
        return Vec::new();
    };
    let rules: Vec<&LifecycleRule> = rules.iter().filter(|r| r.enabled).collect();
    let selects =
        |rule: &LifecycleRule, r: &pb::ObjectRecord| rule.filter.matches(&r.key, r.size, &r.tags);
    let mut actions = Vec::new();

    match current.state() {
        RecordState::Complete => {
            let due = rules.iter().any(|rule| {
                rule.expiration.as_ref().is_some_and(|e| {
                    selects(rule, current)
                        && (e
                            .days
                            .is_some_and(|d| aged(written_ms(current), d, now_ms, day_ms))
                            || e.date_ms.is_some_and(|date| now_ms >= date))
                })
            });
            if due {
                actions.push(Action::ExpireCurrent((*current).clone()));
            }
        }
        _ if older.is_empty() && is_delete_marker(current) => {
            // A delete marker with no version behind it.
            let due = rules.iter().any(|rule| {
                rule.expiration
                    .as_ref()
                    .is_some_and(|e| e.expired_object_delete_marker == Some(true))
                    && current.key.starts_with(&rule.filter.prefix)
            });
            if due {
                actions.push(Action::RemoveVersion((*current).clone()));
            }
        }
        _ => {}
    }

    // Noncurrent versions, newest first: the i-th became noncurrent when the one above it
    // was written.
    for (i, idx) in (0..older.len()).rev().enumerate() {
        let version = older[idx];
        let since = written_ms(visible[idx + 1]);
        let due = rules.iter().any(|rule| {
            rule.noncurrent_expiration.as_ref().is_some_and(|n| {
                selects(rule, version)
                    && aged(since, n.noncurrent_days, now_ms, day_ms)
                    && n.newer_noncurrent_versions
                        .is_none_or(|keep| i >= keep as usize)
            })
        });
        if due {
            actions.push(Action::RemoveVersion(version.clone()));
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use cairn_proto::meta::{Expiration, LifecycleFilter, NoncurrentExpiration};

    use super::*;

    const DAY: i64 = 1000;

    fn version(key: &str, state: RecordState, written: i64) -> pb::ObjectRecord {
        pb::ObjectRecord {
            key: key.into(),
            state: state as i32,
            etag: format!("\"{written}\""),
            last_modified_ms: written,
            size: 10,
            ..Default::default()
        }
    }

    fn live(key: &str, written: i64) -> pb::ObjectRecord {
        version(key, RecordState::Complete, written)
    }

    fn rule(prefix: &str) -> LifecycleRule {
        LifecycleRule {
            id: "r".into(),
            enabled: true,
            filter: LifecycleFilter {
                prefix: prefix.into(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn expire_after(prefix: &str, days: u32) -> LifecycleRule {
        LifecycleRule {
            expiration: Some(Expiration {
                days: Some(days),
                ..Default::default()
            }),
            ..rule(prefix)
        }
    }

    #[test]
    fn days_are_due_at_the_next_midnight() {
        // Written at 0:00 + 250 ms: 2 days later is not midnight, so due at the one after.
        assert!(!aged(250, 2, 2 * DAY + 250, DAY));
        assert!(!aged(250, 2, 3 * DAY - 1, DAY));
        assert!(aged(250, 2, 3 * DAY, DAY));
        // Written exactly at midnight: due exactly `days` later.
        assert!(!aged(DAY, 1, 2 * DAY - 1, DAY));
        assert!(aged(DAY, 1, 2 * DAY, DAY));
        // Far-future or far-past times do not overflow.
        assert!(!aged(i64::MAX - 5, 3, i64::MAX - 1, DAY));
        assert!(aged(i64::MIN + 5, 3, 0, DAY));
    }

    #[test]
    fn current_versions_expire_after_their_days_under_the_prefix() {
        let rules = [expire_after("tmp/", 2)];
        let tmp = [live("tmp/a", 0)];
        assert!(decide(&rules, &tmp, 1999, DAY).is_empty());
        assert_eq!(
            decide(&rules, &tmp, 2000, DAY),
            vec![Action::ExpireCurrent(tmp[0].clone())]
        );
        assert!(decide(&rules, &[live("keep/a", 0)], 10_000, DAY).is_empty());
        // Already deleted, or still uploading: nothing to expire.
        let gone = [
            live("tmp/a", 0),
            version("tmp/a", RecordState::Tombstone, 5),
        ];
        assert!(decide(&rules, &gone, 10_000, DAY).is_empty());
        let uploading = [version("tmp/a", RecordState::Uploading, 0)];
        assert!(decide(&rules, &uploading, 10_000, DAY).is_empty());
        // A disabled rule does nothing.
        let off = [LifecycleRule {
            enabled: false,
            ..expire_after("tmp/", 2)
        }];
        assert!(decide(&off, &tmp, 10_000, DAY).is_empty());
    }

    #[test]
    fn dates_and_tags() {
        let dated = [LifecycleRule {
            expiration: Some(Expiration {
                date_ms: Some(5000),
                ..Default::default()
            }),
            ..rule("")
        }];
        let v = [live("k", 4900)];
        assert!(decide(&dated, &v, 4999, DAY).is_empty());
        assert_eq!(decide(&dated, &v, 5000, DAY).len(), 1);

        let mut tagged = expire_after("", 1);
        tagged.filter.tags = BTreeMap::from([("class".into(), "scratch".into())]);
        let mut scratch = live("k", 0);
        scratch.tags = tagged.filter.tags.clone();
        let rules = [tagged];
        assert_eq!(decide(&rules, &[scratch], DAY, DAY).len(), 1);
        assert!(decide(&rules, &[live("k", 0)], DAY, DAY).is_empty());
    }

    #[test]
    fn noncurrent_versions_age_from_their_successor_and_the_newest_n_stay() {
        let rules = [LifecycleRule {
            noncurrent_expiration: Some(NoncurrentExpiration {
                noncurrent_days: 1,
                newer_noncurrent_versions: Some(2),
            }),
            ..rule("")
        }];
        // Written at 0, 100, 1100, 2100, 5000 (current).
        let versions: Vec<_> = [0, 100, 1100, 2100, 5000].map(|t| live("k", t)).into();
        // At 3000: v0..v2 became noncurrent at 100, 1100, 2100: a day later rounded up to
        // midnight is 2000, 3000 and 4000; the two newest noncurrent (2100, 1100) stay
        // whatever their age.
        let actions = decide(&rules, &versions, 3000, DAY);
        assert_eq!(
            actions,
            vec![
                Action::RemoveVersion(versions[1].clone()),
                Action::RemoveVersion(versions[0].clone()),
            ]
        );
        // Earlier, v1 (noncurrent since 1100) is not due yet.
        assert_eq!(
            decide(&rules, &versions, 2999, DAY),
            vec![Action::RemoveVersion(versions[0].clone())]
        );
        // Without a count, every noncurrent version a day old goes; the current stays.
        let all = [LifecycleRule {
            noncurrent_expiration: Some(NoncurrentExpiration {
                noncurrent_days: 1,
                newer_noncurrent_versions: None,
            }),
            ..rule("")
        }];
        assert_eq!(decide(&all, &versions, 100_000, DAY).len(), 4);
        // A delete marker on top makes every object version noncurrent.
        let mut marked = versions.clone();
        marked.push(version("k", RecordState::Tombstone, 6000));
        assert_eq!(decide(&all, &marked, 100_000, DAY).len(), 5);
    }

    #[test]
    fn lone_delete_markers_expire_when_asked() {
        let rules = [LifecycleRule {
            expiration: Some(Expiration {
                expired_object_delete_marker: Some(true),
                ..Default::default()
            }),
            ..rule("logs/")
        }];
        let marker = |key: &str, written| pb::ObjectRecord {
            versioned: true,
            ..version(key, RecordState::Tombstone, written)
        };
        let alone = [marker("logs/a", 0)];
        assert_eq!(
            decide(&rules, &alone, 0, DAY),
            vec![Action::RemoveVersion(alone[0].clone())]
        );
        // An unversioned tombstone is no delete marker: the collector takes it.
        let tombstone = [version("logs/a", RecordState::Tombstone, 0)];
        assert!(decide(&rules, &tombstone, 0, DAY).is_empty());
        // Not while an older version remains behind it.
        let behind = [live("logs/a", 0), marker("logs/a", 1)];
        assert!(decide(&rules, &behind, 10_000, DAY).is_empty());
        let elsewhere = [marker("x", 0)];
        assert!(decide(&rules, &elsewhere, 0, DAY).is_empty());
    }
}

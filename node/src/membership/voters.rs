//! The leader's voter maintenance: keep [`VOTERS`] voters (fewer while the group is smaller),
//! promote healthy learners while voters are missing, and replace a voter that has been
//! unreachable longer than the voter timeout. New voters prefer zones no voter covers yet.
//! A replaced voter stays a learner, so it can serve again once it is back.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::Membership;
use crate::raft::{LocalError, Members};

/// Voters the leader keeps when there are enough members.
pub const VOTERS: usize = 3;
/// A member that acknowledged the leader within this is healthy.
const HEALTHY: Duration = Duration::from_secs(3);
/// Pause between two maintenance rounds.
const ROUND: Duration = Duration::from_secs(1);

/// Since when each unhealthy member has been seen unhealthy by this leader.
pub(super) struct Tracker {
    timeout: Duration,
    down_since: Mutex<HashMap<Uuid, Instant>>,
}

impl Tracker {
    pub(super) fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            down_since: Mutex::default(),
        }
    }

    /// For each member: healthy now (`None`), else how long it has been down: since its last
    /// acknowledgement, or since this leader first saw it unhealthy if that is longer known.
    fn observe(&self, acks: &BTreeMap<Uuid, Option<Duration>>) -> BTreeMap<Uuid, Option<Duration>> {
        let now = Instant::now();
        let mut down = self
            .down_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        down.retain(|id, _| acks.contains_key(id));
        acks.iter()
            .map(|(id, ack)| {
                if ack.is_some_and(|d| d < HEALTHY) {
                    down.remove(id);
                    (*id, None)
                } else {
                    let tracked = now - *down.entry(*id).or_insert(now);
                    (*id, Some(ack.map_or(tracked, |last| last.max(tracked))))
                }
            })
            .collect()
    }
}

/// The voter set the leader should move to, if it differs from the current one.
/// `down[id]`: `None` = healthy, else for how long the member has been unreachable (the
/// leader itself is absent from `down` and counts as healthy). `in_layout`: the nodes of the
/// active layouts; a voter outside them (removed from the ring, so about to be stopped) hands
/// its vote to a healthy learner inside them.
pub fn plan(
    members: &Members,
    down: &BTreeMap<Uuid, Option<Duration>>,
    zones: &BTreeMap<Uuid, String>,
    timeout: Duration,
    in_layout: &BTreeSet<Uuid>,
) -> Option<BTreeSet<Uuid>> {
    let healthy = |id: &Uuid| down.get(id).is_none_or(|d| d.is_none());
    let dead = |id: &Uuid| {
        down.get(id)
            .is_some_and(|d| d.is_some_and(|d| d >= timeout))
    };
    let want = VOTERS.min(members.nodes.len());
    let mut next = members.voters.clone();
    let mut candidates: Vec<Uuid> = members
        .nodes
        .keys()
        .filter(|id| !next.contains(id) && healthy(id))
        .copied()
        .collect();
    for gone in members.voters.iter().filter(|id| dead(id)) {
        next.remove(gone);
        match pick(&mut candidates, &next, zones) {
            Some(replacement) => {
                next.insert(replacement);
            }
            None => {
                next.insert(*gone);
            }
        }
    }
    let leaving: Vec<Uuid> = next
        .iter()
        .filter(|id| !in_layout.is_empty() && !in_layout.contains(id))
        .copied()
        .collect();
    for voter in leaving {
        let mut inside: Vec<Uuid> = candidates
            .iter()
            .filter(|c| in_layout.contains(c))
            .copied()
            .collect();
        next.remove(&voter);
        match pick(&mut inside, &next, zones) {
            Some(replacement) => {
                candidates.retain(|c| *c != replacement);
                next.insert(replacement);
            }
            None => {
                next.insert(voter);
            }
        }
    }
    while next.len() < want {
        let Some(extra) = pick(&mut candidates, &next, zones) else {
            break;
        };
        next.insert(extra);
    }
    (next != members.voters).then_some(next)
}

/// Takes the best candidate: one in a zone none of `voters` covers, else the first.
fn pick(
    candidates: &mut Vec<Uuid>,
    voters: &BTreeSet<Uuid>,
    zones: &BTreeMap<Uuid, String>,
) -> Option<Uuid> {
    let zone = |id: &Uuid| zones.get(id).map(String::as_str).unwrap_or("");
    let covered: BTreeSet<&str> = voters.iter().map(zone).collect();
    let at = candidates
        .iter()
        .position(|c| !covered.contains(zone(c)))
        .or((!candidates.is_empty()).then_some(0))?;
    Some(candidates.remove(at))
}

/// Up to [`VOTERS`] of the nodes (id → zone) to initialize a group with, spread over zones.
pub fn initial_voters(zones: &BTreeMap<Uuid, String>) -> BTreeSet<Uuid> {
    let mut candidates: Vec<Uuid> = zones.keys().copied().collect();
    let mut voters = BTreeSet::new();
    while voters.len() < VOTERS {
        let Some(id) = pick(&mut candidates, &voters, zones) else {
            break;
        };
        voters.insert(id);
    }
    voters
}

impl Membership {
    /// Leader task: adjusts the voters every [`ROUND`].
    pub(super) async fn maintain_voters(self: Arc<Self>) {
        loop {
            tokio::time::sleep(ROUND).await;
            if !self.state.raft.is_leader() {
                continue;
            }
            let _serial = self.changes.lock().await;
            if let Err(e) = self.rebalance_voters().await {
                tracing::warn!(error = %super::local_error(e), "could not adjust the voters");
            }
            if let Err(e) = self.finish_bootstrap().await {
                tracing::warn!(error = %e, "could not write the first layout");
            }
        }
    }

    /// Writes the first layout from the registered nodes if the node that bootstrapped the
    /// cluster (`--bootstrap-expect`) stopped before it did.
    async fn finish_bootstrap(&self) -> anyhow::Result<()> {
        let Some(expect) = self.config.bootstrap_expect.filter(|n| *n > 1) else {
            return Ok(());
        };
        let (_, meta) = self.state.raft.current();
        if !meta.layout.nodes.is_empty() || meta.nodes.len() < expect as usize {
            return Ok(());
        }
        self.first_layout(meta.nodes.values().cloned().collect())
            .await
    }

    /// One maintenance step; the caller holds `changes`.
    pub(super) async fn rebalance_voters(&self) -> Result<(), LocalError> {
        let raft = &self.state.raft;
        let members = raft.members();
        let down = self.voters.observe(&raft.last_acks());
        let (_, meta) = raft.current();
        let zones = meta
            .nodes
            .iter()
            .map(|(id, n)| (*id, n.zone.clone()))
            .collect();
        let in_layout = meta.placement().nodes().iter().map(|n| n.id).collect();
        let Some(next) = plan(&members, &down, &zones, self.voters.timeout, &in_layout) else {
            return Ok(());
        };
        tracing::info!(from = ?members.voters, to = ?next, "changing the metadata voters");
        raft.set_voters(next).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: u128) -> Uuid {
        Uuid::from_u128(i)
    }

    fn members(voters: &[u128], learners: &[u128]) -> Members {
        Members {
            voters: voters.iter().map(|i| id(*i)).collect(),
            nodes: voters
                .iter()
                .chain(learners)
                .map(|i| (id(*i), format!("n{i}:1")))
                .collect(),
        }
    }

    fn zones(spec: &[(u128, &str)]) -> BTreeMap<Uuid, String> {
        spec.iter().map(|(i, z)| (id(*i), z.to_string())).collect()
    }

    const T: Duration = Duration::from_secs(30);

    /// No layout yet: nobody is leaving it.
    fn none() -> BTreeSet<Uuid> {
        BTreeSet::new()
    }

    #[test]
    fn a_voter_removed_from_the_layout_hands_its_vote_to_a_learner_inside_it() {
        let m = members(&[1, 2, 3], &[4, 5]);
        let down = BTreeMap::from([(id(2), None), (id(3), None), (id(4), None), (id(5), None)]);
        let in_layout: BTreeSet<Uuid> = [2, 3, 5].into_iter().map(id).collect();
        let next = plan(&m, &down, &BTreeMap::new(), T, &in_layout).expect("hand over");
        assert_eq!(next, [2, 3, 5].into_iter().map(id).collect());
        let only_outside: BTreeSet<Uuid> = [2, 3].into_iter().map(id).collect();
        let m = members(&[1, 2, 3], &[4]);
        assert_eq!(
            plan(&m, &down, &BTreeMap::new(), T, &only_outside),
            None,
            "no learner inside the layout: the voter stays"
        );
    }

    #[test]
    fn learners_are_promoted_up_to_three_voters() {
        let m = members(&[1], &[2, 3, 4]);
        let down = BTreeMap::from([(id(2), None), (id(3), None), (id(4), None)]);
        let next = plan(&m, &down, &BTreeMap::new(), T, &none()).expect("promote");
        assert_eq!(next.len(), 3);
        assert!(next.contains(&id(1)));
        let full = members(&[1, 2, 3], &[4]);
        assert_eq!(plan(&full, &down, &BTreeMap::new(), T, &none()), None);
    }

    #[test]
    fn a_voter_down_past_the_timeout_is_replaced_preferring_a_new_zone() {
        let m = members(&[1, 2, 3], &[4, 5]);
        let z = zones(&[(1, "a"), (2, "b"), (3, "c"), (4, "b"), (5, "c")]);
        let mut down = BTreeMap::from([
            (id(2), None),
            (id(3), Some(T)),
            (id(4), None),
            (id(5), None),
        ]);
        let next = plan(&m, &down, &z, T, &none()).expect("replace");
        assert_eq!(
            next,
            BTreeSet::from([id(1), id(2), id(5)]),
            "zone c is uncovered after 3 left"
        );
        down.insert(id(3), Some(T / 2));
        assert_eq!(
            plan(&m, &down, &z, T, &none()),
            None,
            "not down long enough"
        );
    }

    #[test]
    fn a_dead_voter_stays_when_no_healthy_learner_can_replace_it() {
        let m = members(&[1, 2, 3], &[4]);
        let down = BTreeMap::from([(id(2), None), (id(3), Some(T * 2)), (id(4), Some(T * 2))]);
        assert_eq!(plan(&m, &down, &BTreeMap::new(), T, &none()), None);
    }

    #[test]
    fn initial_voters_spread_over_zones() {
        let nodes = zones(&[(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c")]);
        let voters = initial_voters(&nodes);
        let covered: BTreeSet<&str> = voters.iter().map(|v| nodes[v].as_str()).collect();
        assert_eq!(covered.len(), 3);
        assert_eq!(initial_voters(&zones(&[(1, "a"), (2, "a")])).len(), 2);
    }
}

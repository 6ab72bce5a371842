//! Layout changes in the replicated metadata: `cairn layout add/remove` stage per-node
//! changes, `cairn layout apply` commits them (with an optional new replication factor) as the
//! next layout version. Staged changes are deltas against the current layout, so a layout
//! written meanwhile (an address update, a node entering with `--auto-layout`) keeps them
//! meaningful.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Layout, LayoutNode, MetaError, MetaResult, Metadata};
use crate::ring::Placement;

/// One staged change of one node.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum StagedNode {
    /// Add the node to the ring, or change its zone or weight.
    Set(LayoutNode),
    /// Take the node out of the ring.
    Remove,
}

/// The changes waiting for `layout apply`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct StagedLayout {
    pub changes: BTreeMap<Uuid, StagedNode>,
}

/// Operator controls of the data a layout transition moves (`cairn layout pause|resume|rate`).
/// Client reads and writes are never paused or limited.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct RebalanceControl {
    /// Nodes move no transition data while set.
    pub paused: bool,
    /// Cluster-wide limit in MiB/s per node (0 = unlimited); `None`: each node's own
    /// `--rebalance-rate-mib`.
    pub rate_mib: Option<u32>,
}

impl StagedLayout {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

impl Layout {
    /// The node with this id, if it is in the layout.
    pub fn node(&self, id: &Uuid) -> Option<&LayoutNode> {
        self.nodes.iter().find(|n| n.id == *id)
    }

    /// Refuses a replication factor of 0 or above the node count.
    pub fn check_replication(&self) -> Result<(), MetaError> {
        if self.replication == 0 || self.replication as usize > self.nodes.len() {
            return Err(MetaError::Invalid(format!(
                "replication factor {} needs at least that many nodes (layout has {})",
                self.replication,
                self.nodes.len()
            )));
        }
        Ok(())
    }

    /// Whether `other` places data differently: nodes, zones, weights or replication differ
    /// (addresses and the version do not matter).
    pub fn ring_differs(&self, other: &Layout) -> bool {
        let key = |l: &Layout| {
            let mut nodes: Vec<_> = l
                .nodes
                .iter()
                .map(|n| (n.id, n.zone.clone(), n.weight))
                .collect();
            nodes.sort();
            (l.replication, nodes)
        };
        key(self) != key(other)
    }
}

impl Metadata {
    /// Makes `next` the current layout. When it places data differently, the current one
    /// stays active (in `layout_history`) until every node of `next` reports it synced; an
    /// address-only change is applied to the active older layouts too.
    pub(super) fn replace_layout(&mut self, next: Layout) {
        let previous = std::mem::replace(&mut self.layout, next);
        if previous.nodes.is_empty() {
            return;
        }
        if previous.ring_differs(&self.layout) {
            self.layout_history.push(previous);
        } else {
            for old in &mut self.layout_history {
                for node in &mut old.nodes {
                    if let Some(now) = self.layout.node(&node.id) {
                        node.addr = now.addr.clone();
                    }
                }
            }
        }
    }

    /// The nodes of the current layout that still have to pull their share of it (none
    /// outside transitions).
    pub fn nodes_syncing(&self) -> Vec<&LayoutNode> {
        if self.layout_history.is_empty() {
            return Vec::new();
        }
        let version = self.layout.version;
        self.layout
            .nodes
            .iter()
            .filter(|n| self.layout_synced.get(&n.id).is_none_or(|v| *v < version))
            .collect()
    }

    /// Retires the older layouts once every node of the current one has synced to it.
    pub(super) fn retire_synced_layouts(&mut self) {
        if !self.layout_history.is_empty() && self.nodes_syncing().is_empty() {
            self.layout_history.clear();
            let current: Vec<Uuid> = self.layout.nodes.iter().map(|n| n.id).collect();
            self.layout_synced.retain(|id, _| current.contains(id));
        }
    }

    /// Every active layout, oldest first (the current one last).
    pub fn active_layouts(&self) -> impl Iterator<Item = &Layout> {
        self.layout_history
            .iter()
            .chain(std::iter::once(&self.layout))
    }

    /// Where data lives under the active layouts.
    pub fn placement(&self) -> Placement {
        Placement::new(self.active_layouts())
    }

    /// Stages one change; a change that would leave the node as it is in the current layout
    /// cancels what was staged for it.
    pub(super) fn stage_layout(
        &mut self,
        id: Uuid,
        change: &StagedNode,
    ) -> Result<MetaResult, MetaError> {
        let current = self.layout.node(&id);
        match change {
            StagedNode::Set(node) => {
                if node.id != id || node.weight == 0 || node.addr.is_empty() {
                    return Err(MetaError::Invalid(
                        "a layout node needs its id, an address and a weight ≥ 1".into(),
                    ));
                }
                if current.is_some_and(|c| c.zone == node.zone && c.weight == node.weight) {
                    self.staged.changes.remove(&id);
                } else {
                    self.staged.changes.insert(id, change.clone());
                }
            }
            StagedNode::Remove => {
                if current.is_some() {
                    self.staged.changes.insert(id, StagedNode::Remove);
                } else if self.staged.changes.remove(&id).is_none() {
                    return Err(MetaError::Invalid(format!(
                        "node {id} is not in the layout"
                    )));
                }
            }
        }
        Ok(MetaResult::Ok)
    }

    /// The layout `layout apply` would commit: the current one with the staged changes and
    /// `replication` (default: unchanged, capped by the node count when nodes are removed).
    pub fn next_layout(&self, replication: Option<u32>) -> Result<Layout, MetaError> {
        let mut nodes = self.layout.nodes.clone();
        for (id, change) in &self.staged.changes {
            let at = nodes.iter().position(|n| n.id == *id);
            match (change, at) {
                (StagedNode::Set(node), Some(i)) => nodes[i] = node.clone(),
                (StagedNode::Set(node), None) => nodes.push(node.clone()),
                (StagedNode::Remove, Some(i)) => {
                    nodes.remove(i);
                }
                (StagedNode::Remove, None) => {}
            }
        }
        let next = Layout {
            version: self.layout.version + 1,
            replication: replication.unwrap_or(self.layout.replication),
            nodes,
        };
        if !next.ring_differs(&self.layout) {
            return Err(MetaError::Invalid("no layout changes staged".into()));
        }
        if next.nodes.is_empty() {
            return Err(MetaError::Invalid(
                "a layout needs at least one node".into(),
            ));
        }
        next.check_replication()?;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::MetaCommand;

    fn node(i: u128, zone: &str) -> LayoutNode {
        LayoutNode {
            id: Uuid::from_u128(i),
            addr: format!("n{i}:1"),
            zone: zone.into(),
            weight: 1,
        }
    }

    fn with_layout(nodes: Vec<LayoutNode>, replication: u32) -> Metadata {
        let mut m = Metadata::default();
        let layout = Layout {
            version: 1,
            replication,
            nodes,
        };
        assert!(matches!(
            m.apply(&MetaCommand::SetLayout { layout }),
            MetaResult::Layout(_)
        ));
        m
    }

    fn stage(m: &mut Metadata, id: u128, change: StagedNode) -> MetaResult {
        m.apply(&MetaCommand::StageLayout {
            id: Uuid::from_u128(id),
            change,
        })
    }

    #[test]
    fn staged_additions_apply_as_the_next_version() {
        let mut m = with_layout(vec![node(1, "a")], 1);
        stage(&mut m, 2, StagedNode::Set(node(2, "b")));
        stage(&mut m, 3, StagedNode::Set(node(3, "c")));
        let apply = MetaCommand::ApplyLayout {
            version: 2,
            replication: Some(3),
        };
        let MetaResult::Layout(l) = m.apply(&apply) else {
            panic!()
        };
        assert_eq!((l.version, l.replication, l.nodes.len()), (2, 3, 3));
        assert!(m.staged.is_empty());
        assert_eq!(m.layout, l);
    }

    #[test]
    fn apply_refuses_more_replicas_than_nodes_stale_versions_and_no_change() {
        let mut m = with_layout(vec![node(1, "a"), node(2, "b")], 2);
        let apply = |v, r| MetaCommand::ApplyLayout {
            version: v,
            replication: r,
        };
        assert!(matches!(
            m.apply(&apply(2, None)),
            MetaResult::Err(MetaError::Invalid(_))
        ));
        assert!(matches!(m.apply(&apply(2, Some(3))), MetaResult::Err(_)));
        stage(&mut m, 3, StagedNode::Set(node(3, "c")));
        assert!(matches!(m.apply(&apply(5, Some(3))), MetaResult::Err(_)));
        assert!(matches!(m.apply(&apply(2, Some(3))), MetaResult::Layout(_)));
    }

    #[test]
    fn removals_and_cancellations() {
        let mut m = with_layout(vec![node(1, "a"), node(2, "b")], 1);
        assert!(matches!(
            stage(&mut m, 9, StagedNode::Remove),
            MetaResult::Err(_)
        ));
        stage(&mut m, 3, StagedNode::Set(node(3, "c")));
        stage(&mut m, 3, StagedNode::Remove);
        assert!(m.staged.is_empty(), "removing a staged addition cancels it");
        stage(
            &mut m,
            2,
            StagedNode::Set(LayoutNode {
                weight: 2,
                ..node(2, "b")
            }),
        );
        stage(&mut m, 2, StagedNode::Set(node(2, "b")));
        assert!(
            m.staged.is_empty(),
            "setting a node back to its current state cancels"
        );
        stage(&mut m, 2, StagedNode::Remove);
        let next = m.next_layout(None).unwrap();
        assert_eq!(next.nodes, vec![node(1, "a")]);
        m.apply(&MetaCommand::RevertLayout);
        assert!(m.staged.is_empty());
    }

    #[test]
    fn a_ring_change_keeps_the_old_layout_until_every_new_node_synced() {
        let mut m = with_layout(vec![node(1, "a"), node(2, "b"), node(3, "c")], 3);
        assert!(m.nodes_syncing().is_empty());
        stage(&mut m, 4, StagedNode::Set(node(4, "d")));
        let apply = MetaCommand::ApplyLayout {
            version: 2,
            replication: None,
        };
        assert!(matches!(m.apply(&apply), MetaResult::Layout(_)));
        assert_eq!(m.layout_history.len(), 1);
        assert_eq!(m.placement().rings().len(), 2);
        assert_eq!(m.nodes_syncing().len(), 4);
        let synced = |m: &mut Metadata, i: u128, version: u64| {
            m.apply(&MetaCommand::LayoutSynced {
                node: Uuid::from_u128(i),
                version,
            })
        };
        for i in 1..=3 {
            synced(&mut m, i, 2);
        }
        synced(&mut m, 4, 1);
        assert_eq!(
            m.layout_history.len(),
            1,
            "node 4 synced an older version only"
        );
        synced(&mut m, 4, 2);
        assert!(m.layout_history.is_empty() && m.nodes_syncing().is_empty());
        assert!(!m.placement().in_transition());

        // An address change moves nothing: no transition.
        let mut moved = m.layout.clone();
        moved.version = 3;
        moved.nodes[0].addr = "elsewhere:1".into();
        m.apply(&MetaCommand::SetLayout { layout: moved });
        assert!(m.layout_history.is_empty());
    }

    #[test]
    fn rebalance_controls_are_replicated_settings() {
        let mut m = Metadata::default();
        m.apply(&MetaCommand::PauseRebalance { paused: true });
        m.apply(&MetaCommand::SetRebalanceRate { rate_mib: Some(5) });
        let want = RebalanceControl {
            paused: true,
            rate_mib: Some(5),
        };
        assert_eq!(m.rebalance, want);
        m.apply(&MetaCommand::PauseRebalance { paused: false });
        m.apply(&MetaCommand::SetRebalanceRate { rate_mib: None });
        assert_eq!(m.rebalance, RebalanceControl::default());
    }

    #[test]
    fn addresses_do_not_change_the_ring() {
        let a = Layout {
            version: 1,
            replication: 1,
            nodes: vec![node(1, "a")],
        };
        let mut b = a.clone();
        b.version = 2;
        b.nodes[0].addr = "elsewhere:1".into();
        assert!(!a.ring_differs(&b));
        b.nodes[0].weight = 2;
        assert!(a.ring_differs(&b));
    }
}

//! Layout changes from the nodes: address updates, nodes entering with `--auto-layout`, and
//! `layout apply`. A layout that places data differently starts a transition (see
//! `cairn_proto::Placement`): the older layouts stay active until every node has pulled what
//! the new one gives it, so no change strands data.

use cairn_proto::meta::{Layout, LayoutNode, MetaCommand, MetaResult};
use tonic::Status;

use crate::state::NodeState;

/// The layout with `node`'s new address, if the layout holds it under another address.
pub(super) fn with_address(layout: &Layout, node: &LayoutNode) -> Option<Layout> {
    let current = layout.node(&node.id)?;
    if current.addr == node.addr {
        return None;
    }
    let mut next = layout.clone();
    next.version += 1;
    for n in next.nodes.iter_mut().filter(|n| n.id == node.id) {
        n.addr = node.addr.clone();
    }
    Some(next)
}

/// The layout with `node` added (`--auto-layout`), if the cluster has a layout. Replication
/// grows with the node count up to `target`, never shrinks.
pub(super) async fn auto_add(
    state: &NodeState,
    node: &LayoutNode,
    target: u32,
) -> Result<Layout, String> {
    let current = state.raft.current().1.layout.clone();
    if current.nodes.is_empty() {
        return Err("the cluster has no layout yet".into());
    }
    let mut next = current.clone();
    next.version += 1;
    next.nodes.push(node.clone());
    let grown = target.min(next.nodes.len() as u32);
    next.replication = next.replication.max(grown);
    Ok(next)
}

/// `layout apply`: commits the staged changes (and replication factor) as the next version.
pub async fn apply(state: &NodeState, replication: Option<u32>) -> Result<Layout, Status> {
    let (_, meta) = state
        .raft
        .read_linearizable()
        .await
        .map_err(crate::raft::meta_status)?;
    let next = meta
        .next_layout(replication)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    let cmd = MetaCommand::ApplyLayout {
        version: next.version,
        replication,
    };
    match state
        .raft
        .write(cmd)
        .await
        .map_err(crate::raft::meta_status)?
    {
        MetaResult::Layout(layout) => Ok(layout),
        MetaResult::Err(e) => Err(Status::invalid_argument(e.to_string())),
        other => Err(Status::internal(format!("unexpected answer {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[test]
    fn address_updates_bump_the_version_only_when_needed() {
        let node = LayoutNode {
            id: Uuid::from_u128(1),
            addr: "a:1".into(),
            zone: "z".into(),
            weight: 1,
        };
        let layout = Layout {
            version: 4,
            replication: 1,
            nodes: vec![node.clone()],
        };
        assert_eq!(with_address(&layout, &node), None);
        let moved = LayoutNode {
            addr: "b:2".into(),
            ..node.clone()
        };
        let next = with_address(&layout, &moved).expect("changed");
        assert_eq!((next.version, next.nodes[0].addr.as_str()), (5, "b:2"));
        assert!(!next.ring_differs(&layout));
        let stranger = LayoutNode {
            id: Uuid::from_u128(2),
            ..moved
        };
        assert_eq!(with_address(&layout, &stranger), None);
    }
}

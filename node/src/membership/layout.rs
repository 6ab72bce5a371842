//! Ring changes before online rebalancing exists: a layout that places data differently is
//! committed only while no node of the current layout holds an object record (a node that
//! cannot be asked counts as holding some), so no layout change can strand data. Address
//! updates never move data and are always allowed.

use std::time::Duration;

use cairn_proto::meta::{Layout, LayoutNode, MetaCommand, MetaResult};
use cairn_proto::pb::StatusRequest;
use tonic::Status;

use crate::state::NodeState;

/// How long each node may take to report its record count.
const STATUS_TIMEOUT: Duration = Duration::from_secs(3);

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

/// `Err(why)` unless every node of the current layout answers that it holds no object record.
pub async fn check_no_data(state: &NodeState) -> Result<(), String> {
    let layout = state.raft.current().1.layout.clone();
    let counts = layout.nodes.iter().map(|node| async move {
        let count = if state.is_self(node) {
            state.index.record_count().map_err(|e| e.to_string())
        } else {
            let ask = async {
                let mut client = state
                    .peers
                    .admin(&node.addr)
                    .map_err(|e| e.message().to_string())?;
                let status = client
                    .status(StatusRequest {})
                    .await
                    .map_err(|e| e.message().to_string())?;
                Ok::<_, String>(status.into_inner().object_records)
            };
            tokio::time::timeout(STATUS_TIMEOUT, ask)
                .await
                .unwrap_or_else(|_| Err("no answer".into()))
        };
        (node, count)
    });
    for (node, count) in futures::future::join_all(counts).await {
        match count {
            Ok(0) => {}
            Ok(n) => {
                return Err(format!(
                    "the cluster holds data (node {} has {n} object records): changing the ring needs \
                     online rebalancing, which this version of Cairn does not have yet",
                    node.id
                ));
            }
            Err(e) => {
                return Err(format!(
                    "cannot confirm that node {} ({}) holds no data ({e}); the ring is only changed while \
                     every node of the layout reports no data",
                    node.id, node.addr
                ));
            }
        }
    }
    Ok(())
}

/// The layout with `node` added (`--auto-layout`), if the cluster has a layout and holds no
/// data. Replication grows with the node count up to `target`, never shrinks.
pub(super) async fn auto_add(
    state: &NodeState,
    node: &LayoutNode,
    target: u32,
) -> Result<Layout, String> {
    let current = state.raft.current().1.layout.clone();
    if current.nodes.is_empty() {
        return Err("the cluster has no layout yet".into());
    }
    check_no_data(state).await?;
    let mut next = current.clone();
    next.version += 1;
    next.nodes.push(node.clone());
    let grown = target.min(next.nodes.len() as u32);
    next.replication = next.replication.max(grown);
    Ok(next)
}

/// `layout apply`: commits the staged changes (and replication factor) as the next version,
/// unless the cluster holds data.
pub async fn apply(state: &NodeState, replication: Option<u32>) -> Result<Layout, Status> {
    let (_, meta) = state
        .raft
        .read_linearizable()
        .await
        .map_err(crate::raft::meta_status)?;
    let next = meta
        .next_layout(replication)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    check_no_data(state)
        .await
        .map_err(Status::failed_precondition)?;
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

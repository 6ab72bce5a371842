//! `cairn status` and `cairn layout ...`: the nodes of the cluster (ring layout, Raft
//! membership, registered zone and weight, up/down) and staged layout changes.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::bail;
use cairn_proto::meta::{LayoutNode, MetaCommand, Metadata, StagedNode};
use cairn_proto::pb::{ApplyLayoutRequest, StatusResponse};
use uuid::Uuid;

use super::{Admin, meta_error, print_table, rebalance, rpc_error};
use crate::cli::LayoutCommand;

/// How long `status` and `layout remove` wait for another node's status.
const PEER_STATUS_TIMEOUT: Duration = Duration::from_secs(2);
/// Raft voters the leader keeps (when there are that many members).
const RAFT_VOTERS: usize = 3;
/// How long `layout remove --wait` waits for the drained node to hand over its vote.
const VOTE_HANDOVER_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn layout(admin: &Admin, command: LayoutCommand) -> anyhow::Result<()> {
    match command {
        LayoutCommand::Show => layout_show(admin).await,
        LayoutCommand::Add {
            node_id,
            zone,
            weight,
        } => layout_add(admin, &node_id, zone, weight).await,
        LayoutCommand::Remove {
            node_id,
            force,
            wait,
        } => layout_remove(admin, &node_id, force, wait).await,
        LayoutCommand::SetWeight { node_id, weight } => {
            layout_set(admin, &node_id, None, Some(weight)).await
        }
        LayoutCommand::SetZone { node_id, zone } => {
            layout_set(admin, &node_id, Some(zone), None).await
        }
        LayoutCommand::Apply { replication } => layout_apply(admin, replication).await,
        LayoutCommand::Pause => rebalance::set_paused(admin, true).await,
        LayoutCommand::Resume => rebalance::set_paused(admin, false).await,
        LayoutCommand::Rate { limit } => rebalance::rate(admin, limit).await,
        LayoutCommand::Watch { interval } => {
            rebalance::follow(admin, Duration::from_secs(interval)).await?;
            Ok(())
        }
        LayoutCommand::Revert => {
            admin
                .write(&MetaCommand::RevertLayout)
                .await?
                .map_err(|e| meta_error(e, ""))?;
            out!("dropped the staged layout changes");
            Ok(())
        }
    }
}

/// One node as the cluster knows it: in the ring, in Raft, registered, or several of these.
#[derive(Default)]
struct NodeRow {
    ring: Option<LayoutNode>,
    registered: Option<LayoutNode>,
    /// Raft membership: `Some(voter)`.
    raft_voter: Option<bool>,
    raft_addr: Option<String>,
    staged: Option<StagedNode>,
}

impl NodeRow {
    fn addr(&self) -> &str {
        self.ring
            .as_ref()
            .map(|n| n.addr.as_str())
            .or(self.raft_addr.as_deref())
            .or(self.registered.as_ref().map(|n| n.addr.as_str()))
            .unwrap_or("")
    }

    /// Zone and weight: the ring's, else the registered ones.
    fn placement(&self) -> (String, String) {
        match self.ring.as_ref().or(self.registered.as_ref()) {
            Some(n) => (n.zone.clone(), n.weight.to_string()),
            None => ("-".into(), "-".into()),
        }
    }

    fn raft_role(&self, id: &Uuid, leader: &str) -> &'static str {
        match self.raft_voter {
            Some(_) if id.to_string() == leader => "leader",
            Some(true) => "voter",
            Some(false) => "learner",
            None => "-",
        }
    }

    fn ring_state(&self) -> &'static str {
        match (&self.ring, &self.staged) {
            (Some(_), Some(StagedNode::Remove)) => "yes (removal staged)",
            (Some(_), Some(StagedNode::Set(_))) => "yes (change staged)",
            (Some(_), None) => "yes",
            (None, Some(StagedNode::Set(_))) => "no (addition staged)",
            (None, _) => "no",
        }
    }
}

/// Every node known through the layout, the registry, the staged changes or the Raft
/// membership `local` reports.
fn known_nodes(meta: &Metadata, local: &StatusResponse) -> BTreeMap<Uuid, NodeRow> {
    let mut rows: BTreeMap<Uuid, NodeRow> = BTreeMap::new();
    for n in &meta.layout.nodes {
        rows.entry(n.id).or_default().ring = Some(n.clone());
    }
    for (id, n) in &meta.nodes {
        rows.entry(*id).or_default().registered = Some(n.clone());
    }
    for (id, change) in &meta.staged.changes {
        rows.entry(*id).or_default().staged = Some(change.clone());
    }
    for m in &local.members {
        if let Ok(id) = Uuid::parse_str(&m.node_id) {
            let row = rows.entry(id).or_default();
            row.raft_voter = Some(m.voter);
            row.raft_addr = Some(m.addr.clone());
        }
    }
    rows
}

/// The id among `ids` that equals `given` or is the only one starting with it.
fn resolve_id<'a>(given: &str, ids: impl Iterator<Item = &'a Uuid>) -> anyhow::Result<Uuid> {
    let given = given.trim().to_ascii_lowercase();
    let matches: Vec<Uuid> = ids
        .filter(|id| id.to_string().starts_with(&given))
        .copied()
        .collect();
    match matches.as_slice() {
        [id] => Ok(*id),
        [] => bail!("no node {given} in this cluster (see `cairn status`)"),
        _ => bail!("{given} matches several nodes; give more of the id"),
    }
}

/// When a node's last anti-entropy pass ended, e.g. `anti-entropy 4s ago`.
fn anti_entropy_age(s: &StatusResponse) -> String {
    match s.anti_entropy.as_ref().filter(|a| a.last_pass_ms > 0) {
        Some(a) => {
            let ago = (cairn_proto::ids::now_ms() - a.last_pass_ms).max(0) / 1000;
            format!("anti-entropy {ago}s ago")
        }
        None => "no anti-entropy pass yet".into(),
    }
}

/// The local node's anti-entropy line of `cairn status`.
fn anti_entropy_summary(s: &StatusResponse) -> String {
    let Some(a) = s.anti_entropy.as_ref().filter(|a| a.last_pass_ms > 0) else {
        return "no pass yet".into();
    };
    let mut line = format!(
        "last pass {} (took {} ms); since start: {} pass(es), {} record(s) pulled, {} block(s) \
         copied, {} reference(s) added",
        anti_entropy_age(s).trim_start_matches("anti-entropy "),
        a.last_pass_duration_ms,
        a.passes,
        a.records_pulled,
        a.blocks_copied,
        a.refs_added
    );
    if !a.last_error.is_empty() {
        line.push_str(&format!("; last pass incomplete: {}", a.last_error));
    }
    line
}

/// The local node's lifecycle line of `cairn status`.
fn lifecycle_summary(s: &StatusResponse) -> String {
    let Some(l) = s.lifecycle.as_ref().filter(|l| l.last_pass_ms > 0) else {
        return "no pass yet".into();
    };
    let ago = (cairn_proto::ids::now_ms() - l.last_pass_ms).max(0) / 1000;
    let mut line = format!(
        "last pass {ago}s ago; since start: {} pass(es), {} object(s) expired, {} version(s) \
         removed, {} upload(s) aborted",
        l.passes, l.objects_expired, l.versions_removed, l.uploads_aborted
    );
    if !l.last_error.is_empty() {
        line.push_str(&format!("; last pass failed: {}", l.last_error));
    }
    line
}

/// The local node's garbage collection line of `cairn status`.
fn gc_summary(s: &StatusResponse) -> String {
    let Some(g) = s.gc.as_ref().filter(|g| g.last_pass_ms > 0) else {
        return "no pass yet".into();
    };
    let ago = (cairn_proto::ids::now_ms() - g.last_pass_ms).max(0) / 1000;
    let mut line = format!(
        "last pass {ago}s ago; {} block reference(s) held; since start: {} pass(es), {} \
         block(s) deleted, {} old reference(s) audited, {} dropped",
        g.block_refs, g.passes, g.blocks_deleted, g.refs_checked, g.refs_dropped
    );
    if !g.last_error.is_empty() {
        line.push_str(&format!("; last pass incomplete: {}", g.last_error));
    }
    line
}

/// Free space of a node's data dir and whether it refuses new data.
fn disk_summary(s: &StatusResponse) -> String {
    use cairn_node::disk::human;
    let Some(d) = s.disk.as_ref().filter(|d| d.known) else {
        return "free space unknown (new data is admitted)".into();
    };
    let mut line = format!(
        "{} free of {}, reserve {}; {}",
        human(d.free_bytes),
        human(d.size_bytes),
        human(d.reserve_bytes),
        if d.refusing {
            "REFUSING new data (below the reserve; deletes still work)"
        } else {
            "accepting new data"
        }
    );
    if d.writes_refused > 0 {
        line.push_str(&format!(
            "; {} write(s) refused since start",
            d.writes_refused
        ));
    }
    line
}

pub async fn print_status(admin: &Admin) -> anyhow::Result<()> {
    let local = admin.status_of(&admin.node).await?;
    let leader = if local.raft_leader.is_empty() {
        "none"
    } else {
        local.raft_leader.as_str()
    };
    out!("node:          {}", local.node_id);
    out!("address:       {}", local.rpc_address);
    out!(
        "raft:          {} (term {}, leader {leader})",
        local.raft_role,
        local.raft_term
    );
    out!("applied index: {}", local.applied_index);
    out!("records:       {}", local.object_records);
    out!("anti-entropy:  {}", anti_entropy_summary(&local));
    out!("lifecycle:     {}", lifecycle_summary(&local));
    out!("gc:            {}", gc_summary(&local));
    out!("disk:          {}", disk_summary(&local));
    let meta = match admin.read().await {
        Ok((_, meta)) => meta,
        Err(e) => {
            out!(
                "layout:        version {} (cluster metadata unavailable: {e:#})",
                local.layout_version
            );
            return Ok(());
        }
    };
    let layout = &meta.layout;
    out!(
        "layout:        version {}, replication {}, {} node(s){}",
        layout.version,
        layout.replication,
        layout.nodes.len(),
        if meta.staged.is_empty() {
            String::new()
        } else {
            format!("; {} staged change(s)", meta.staged.changes.len())
        }
    );
    out!(
        "metadata:      {} bucket(s), {} key(s)",
        meta.buckets.len(),
        meta.keys.len()
    );
    out!("{}", transition_summary(&meta));
    out!("{}", rebalance::controls_summary(&meta));
    let nodes = known_nodes(&meta, &local);
    if nodes.is_empty() {
        return Ok(());
    }
    let probes = nodes.iter().map(|(id, row)| {
        let local = &local;
        async move {
            if id.to_string() == local.node_id {
                return Ok(local.clone());
            }
            match tokio::time::timeout(PEER_STATUS_TIMEOUT, admin.status_of(row.addr())).await {
                Ok(r) => r,
                Err(_) => Err(anyhow::anyhow!("no answer within {PEER_STATUS_TIMEOUT:?}")),
            }
        }
    });
    let answers = futures::future::join_all(probes).await;
    let mut rows = Vec::new();
    for ((id, row), answer) in nodes.iter().zip(answers) {
        let state = match answer {
            Ok(s) if s.node_id != id.to_string() => {
                format!("down (its address now serves node {})", s.node_id)
            }
            Ok(s) if s.rpc_address != row.addr() => {
                format!(
                    "up, {} records; now listens at {} (recorded address is stale)",
                    s.object_records, s.rpc_address
                )
            }
            Ok(s) => format!(
                "up, {} records, {}{}",
                s.object_records,
                anti_entropy_age(&s),
                if s.disk.as_ref().is_some_and(|d| d.refusing) {
                    ", disk full (refusing new data)"
                } else {
                    ""
                }
            ),
            Err(e) => format!("down ({e:#})"),
        };
        let (zone, weight) = row.placement();
        rows.push(vec![
            id.to_string(),
            row.addr().to_string(),
            zone,
            weight,
            row.ring_state().to_string(),
            row.raft_role(id, &local.raft_leader).to_string(),
            state,
        ]);
    }
    out!("");
    print_table(
        &["NODE", "ADDRESS", "ZONE", "WEIGHT", "RING", "RAFT", "STATE"],
        &rows,
    )?;
    Ok(())
}

/// One line on data movement: none, or which older versions are still active and which
/// nodes of the current layout have not pulled their data yet.
fn transition_summary(meta: &Metadata) -> String {
    if meta.layout_history.is_empty() {
        return "transition: none (data is where the layout puts it)".into();
    }
    let older: Vec<String> = meta
        .layout_history
        .iter()
        .map(|l| format!("v{}", l.version))
        .collect();
    let pending: Vec<String> = meta
        .nodes_syncing()
        .iter()
        .map(|n| n.id.to_string())
        .collect();
    format!(
        "transition: moving data from {} to v{}; {} of {} node(s) still syncing: {}",
        older.join(", "),
        meta.layout.version,
        pending.len(),
        meta.layout.nodes.len(),
        pending.join(", ")
    )
}

async fn layout_show(admin: &Admin) -> anyhow::Result<()> {
    let local = admin.status_of(&admin.node).await?;
    let (_, meta) = admin.read().await?;
    let layout = &meta.layout;
    out!(
        "layout version {}, replication {}, {} node(s)",
        layout.version,
        layout.replication,
        layout.nodes.len()
    );
    let rows: Vec<Vec<String>> = layout
        .nodes
        .iter()
        .map(|n| {
            vec![
                n.id.to_string(),
                n.addr.clone(),
                n.zone.clone(),
                n.weight.to_string(),
            ]
        })
        .collect();
    if !rows.is_empty() {
        print_table(&["NODE", "ADDRESS", "ZONE", "WEIGHT"], &rows)?;
    }
    out!("");
    out!("{}", transition_summary(&meta));
    out!("{}", rebalance::controls_summary(&meta));
    if !meta.staged.is_empty() {
        out!("");
        out!("staged changes (commit with `cairn layout apply`, drop with `cairn layout revert`):");
        for (id, change) in &meta.staged.changes {
            match change {
                StagedNode::Set(n) => out!("  set    {id}  zone {}  weight {}", n.zone, n.weight),
                StagedNode::Remove => out!("  remove {id}"),
            }
        }
        match meta.next_layout(None) {
            Ok(next) => out!(
                "next layout: version {}, replication {}, {} node(s)",
                next.version,
                next.replication,
                next.nodes.len()
            ),
            Err(e) => out!("cannot apply as staged: {e}"),
        }
    }
    let outside: Vec<Vec<String>> = known_nodes(&meta, &local)
        .iter()
        .filter(|(_, row)| row.ring.is_none() && row.raft_voter.is_some() && row.staged.is_none())
        .map(|(id, row)| {
            let (zone, weight) = row.placement();
            vec![id.to_string(), row.addr().to_string(), zone, weight]
        })
        .collect();
    if !outside.is_empty() {
        out!("");
        out!("joined nodes outside the ring (stage with `cairn layout add NODE_ID`):");
        print_table(&["NODE", "ADDRESS", "ZONE", "WEIGHT"], &outside)?;
    }
    Ok(())
}

async fn layout_add(
    admin: &Admin,
    given: &str,
    zone: Option<String>,
    weight: Option<u32>,
) -> anyhow::Result<()> {
    let local = admin.status_of(&admin.node).await?;
    let (_, meta) = admin.read().await?;
    let nodes = known_nodes(&meta, &local);
    let id = resolve_id(given, nodes.keys())?;
    let row = &nodes[&id];
    let Some(addr) = row.raft_addr.clone() else {
        bail!(
            "node {id} has not joined the cluster (start it with --join); only members enter the ring"
        );
    };
    let known = row.ring.as_ref().or(row.registered.as_ref());
    let node = LayoutNode {
        id,
        addr,
        zone: zone
            .or_else(|| known.map(|n| n.zone.clone()))
            .unwrap_or_else(|| "default".into()),
        weight: weight.or_else(|| known.map(|n| n.weight)).unwrap_or(1),
    };
    stage_set(admin, node).await
}

/// Stages `node` (in the ring with its zone and weight).
async fn stage_set(admin: &Admin, node: LayoutNode) -> anyhow::Result<()> {
    let (id, zone, weight) = (node.id, node.zone.clone(), node.weight);
    let cmd = MetaCommand::StageLayout {
        id,
        change: StagedNode::Set(node),
    };
    admin.write(&cmd).await?.map_err(|e| meta_error(e, ""))?;
    out!("staged: {id} in zone {zone} with weight {weight}; commit with `cairn layout apply`");
    Ok(())
}

/// `layout set-weight` / `set-zone`: stages a ring node (or a staged addition) with a new
/// zone or weight, keeping what else is staged for it.
async fn layout_set(
    admin: &Admin,
    given: &str,
    zone: Option<String>,
    weight: Option<u32>,
) -> anyhow::Result<()> {
    let (_, meta) = admin.read().await?;
    let staged = |id: &Uuid| match meta.staged.changes.get(id) {
        Some(StagedNode::Set(n)) => Some(n),
        _ => None,
    };
    let candidates = meta
        .layout
        .nodes
        .iter()
        .map(|n| &n.id)
        .chain(meta.staged.changes.keys().filter(|id| staged(id).is_some()));
    let id = resolve_id(given, candidates)?;
    let Some(base) = staged(&id).or(meta.layout.node(&id)) else {
        bail!("node {id} is not in the ring (stage it with `cairn layout add`)");
    };
    let mut node = base.clone();
    if let Some(zone) = zone {
        let zone = zone.trim();
        if zone.is_empty() {
            bail!("a zone needs a name");
        }
        node.zone = zone.to_string();
    }
    node.weight = weight.unwrap_or(node.weight);
    stage_set(admin, node).await
}

async fn layout_remove(admin: &Admin, given: &str, force: bool, wait: bool) -> anyhow::Result<()> {
    let (_, meta) = admin.read().await?;
    let leaving = |id: &Uuid| {
        meta.layout.node(id).is_none() && meta.layout_history.iter().any(|l| l.node(id).is_some())
    };
    let candidates = meta
        .layout
        .nodes
        .iter()
        .map(|n| &n.id)
        .chain(meta.staged.changes.keys())
        .chain(
            meta.layout_history
                .iter()
                .flat_map(|l| l.nodes.iter().map(|n| &n.id))
                .filter(|id| wait && leaving(id)),
        );
    let id = resolve_id(given, candidates)?;
    if wait && leaving(&id) {
        out!("node {id} is already leaving the ring; waiting for the transition");
        return drain(admin, id).await;
    }
    if wait && meta.staged.changes.keys().any(|other| *other != id) {
        bail!(
            "other layout changes are staged: `layout remove --wait` applies only the removal \
             (see `cairn layout show`; apply or revert them first)"
        );
    }
    if let Some(node) = meta.layout.node(&id)
        && !force
        && let Err(e) = tokio::time::timeout(PEER_STATUS_TIMEOUT, admin.status_of(&node.addr))
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer")))
    {
        bail!(
            "node {id} is down ({e:#}): a live node is drained before it leaves; remove a dead \
             node with --force (its data is then re-replicated from the other replicas)"
        );
    }
    let cmd = MetaCommand::StageLayout {
        id,
        change: StagedNode::Remove,
    };
    admin.write(&cmd).await?.map_err(|e| meta_error(e, ""))?;
    if !wait {
        out!("staged: remove {id}; commit with `cairn layout apply`");
        return Ok(());
    }
    out!("staged: remove {id}");
    layout_apply(admin, None).await?;
    drain(admin, id).await
}

/// Follows the transition until it retired: then `id` holds nothing the cluster needs.
/// Then waits (a bounded while) for it to hand its Raft vote to a learner in the ring, if
/// there is one, so stopping it keeps the quorum.
async fn drain(admin: &Admin, id: Uuid) -> anyhow::Result<()> {
    rebalance::follow(admin, Duration::from_secs(2)).await?;
    out!("node {id} is out of the ring and holds no data the cluster needs");
    let deadline = tokio::time::Instant::now() + VOTE_HANDOVER_TIMEOUT;
    let mut told = false;
    loop {
        let (_, meta) = admin.read().await?;
        let local = admin.status_of(&admin.node).await?;
        let in_ring = |m: &&cairn_proto::pb::RaftMember| {
            Uuid::parse_str(&m.node_id).is_ok_and(|m| meta.layout.node(&m).is_some())
        };
        let holds_vote = local
            .members
            .iter()
            .any(|m| m.voter && m.node_id == id.to_string());
        let voters_in = local.members.iter().filter(in_ring).filter(|m| m.voter);
        let learners_in = local.members.iter().filter(in_ring).filter(|m| !m.voter);
        if !holds_vote || learners_in.count() == 0 || voters_in.count() >= RAFT_VOTERS {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            out!(
                "warning: node {id} still holds a Raft vote after {VOTE_HANDOVER_TIMEOUT:?}; \
                 check `cairn status` before stopping it"
            );
            return Ok(());
        }
        if !told {
            out!("waiting for node {id} to hand its Raft vote to a node in the ring");
            told = true;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    out!("node {id} can be stopped");
    Ok(())
}

async fn layout_apply(admin: &Admin, replication: Option<u32>) -> anyhow::Result<()> {
    let addr = &admin.node;
    let mut client = admin.peers.admin(addr).map_err(|e| rpc_error(addr, e))?;
    let req = ApplyLayoutRequest {
        replication: replication.unwrap_or(0),
    };
    let version = match client.apply_layout(req).await {
        Ok(resp) => resp.into_inner().version,
        Err(e)
            if matches!(
                e.code(),
                tonic::Code::FailedPrecondition | tonic::Code::InvalidArgument
            ) =>
        {
            bail!("layout not applied: {}", e.message())
        }
        Err(e) => return Err(rpc_error(addr, e)),
    };
    let (_, meta) = admin.read().await?;
    let layout = &meta.layout;
    out!(
        "applied layout version {version}: replication {}, {} node(s)",
        layout.replication,
        layout.nodes.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_resolve_by_unique_prefix() {
        let a = Uuid::parse_str("aaaa0000-0000-0000-0000-000000000001").unwrap();
        let b = Uuid::parse_str("aaab0000-0000-0000-0000-000000000002").unwrap();
        let ids = [a, b];
        assert_eq!(resolve_id("aaaa", ids.iter()).unwrap(), a);
        assert_eq!(
            resolve_id(&b.to_string().to_uppercase(), ids.iter()).unwrap(),
            b
        );
        assert!(resolve_id("aaa", ids.iter()).is_err());
        assert!(resolve_id("ff", ids.iter()).is_err());
    }
}

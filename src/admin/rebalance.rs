//! `cairn layout pause | resume | rate | watch`: the operator's controls of the data a layout
//! transition moves, and its progress summed over every node taking part.

use std::collections::{BTreeMap, VecDeque};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use cairn_proto::meta::{LayoutNode, MetaCommand, Metadata};
use cairn_proto::pb::RebalanceStatus;
use uuid::Uuid;

use super::{Admin, meta_error};
use crate::cli::RateLimit;

/// How long one status or metadata request of `watch` may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The rate and ETA look at progress over about this long.
const RATE_WINDOW: Duration = Duration::from_secs(10);
const MIB: f64 = (1u64 << 20) as f64;

/// `layout pause` / `layout resume`.
pub async fn set_paused(admin: &Admin, paused: bool) -> anyhow::Result<()> {
    admin
        .write(&MetaCommand::PauseRebalance { paused })
        .await?
        .map_err(|e| meta_error(e, ""))?;
    if paused {
        out!(
            "rebalancing paused: nodes stop moving transition data between blocks (client requests go on); `cairn layout resume` continues"
        );
    } else {
        out!("rebalancing resumed");
    }
    Ok(())
}

/// `layout rate [LIMIT]`: sets the limit, then prints what is in effect.
pub async fn rate(admin: &Admin, limit: Option<RateLimit>) -> anyhow::Result<()> {
    if let Some(limit) = limit {
        let rate_mib = match limit {
            RateLimit::PerNode => None,
            RateLimit::MiB(n) => Some(n),
        };
        admin
            .write(&MetaCommand::SetRebalanceRate { rate_mib })
            .await?
            .map_err(|e| meta_error(e, ""))?;
    }
    let (_, meta) = admin.read().await?;
    out!("{}", controls_summary(&meta));
    Ok(())
}

/// One line on the controls: paused or not, and the rate limit.
pub fn controls_summary(meta: &Metadata) -> String {
    let state = if meta.rebalance.paused {
        "PAUSED (`cairn layout resume` continues)"
    } else {
        "running"
    };
    let limit = match meta.rebalance.rate_mib {
        None => "each node's --rebalance-rate-mib".to_string(),
        Some(0) => "unlimited".to_string(),
        Some(n) => format!("{n} MiB/s per node"),
    };
    format!("rebalance: {state}; rate limit: {limit}")
}

/// The nodes of every active layout (the ones moving data in a transition).
fn movers(meta: &Metadata) -> BTreeMap<Uuid, LayoutNode> {
    meta.active_layouts()
        .flat_map(|l| l.nodes.iter())
        .map(|n| (n.id, n.clone()))
        .collect()
}

/// Progress of a transition summed over the nodes that answered.
#[derive(Debug, Default, Clone, PartialEq)]
struct Totals {
    objects_moved: u64,
    blocks_moved: u64,
    bytes_moved: u64,
    /// Block bytes the syncing nodes still have to check, once all of them know it.
    bytes_left: Option<u64>,
    /// Syncing nodes that have not started their handoff (or did not answer).
    before_handoff: usize,
    bytes_checked: u64,
    answered: usize,
    asked: usize,
}

impl Totals {
    /// Sums the statuses of the nodes for the transition to layout `version`; `syncing`
    /// are the nodes that have not reported synced.
    fn sum(version: u64, statuses: &[(Uuid, Option<RebalanceStatus>)], syncing: &[Uuid]) -> Self {
        let mut t = Totals {
            asked: statuses.len(),
            bytes_left: Some(0),
            ..Default::default()
        };
        for (id, status) in statuses {
            let started = status
                .as_ref()
                .is_some_and(|s| s.layout_version == version && s.totals_known);
            if syncing.contains(id) && !started {
                t.bytes_left = None;
                t.before_handoff += 1;
            }
            let Some(s) = status else {
                continue;
            };
            t.answered += 1;
            if s.layout_version != version {
                // Nothing moved for this version yet.
                continue;
            }
            t.objects_moved += s.objects_moved;
            t.blocks_moved += s.blocks_moved;
            t.bytes_moved += s.bytes_moved;
            t.bytes_checked += s.bytes_checked;
            if syncing.contains(id)
                && let Some(left) = t.bytes_left
            {
                t.bytes_left = Some(left + s.bytes_total.saturating_sub(s.bytes_checked));
            }
        }
        t
    }
}

/// Asks each of `nodes` for its rebalance status (`None`: no answer).
async fn statuses(
    admin: &Admin,
    nodes: &BTreeMap<Uuid, LayoutNode>,
) -> Vec<(Uuid, Option<RebalanceStatus>)> {
    let asks = nodes.values().map(|n| async move {
        match tokio::time::timeout(REQUEST_TIMEOUT, admin.status_of(&n.addr)).await {
            Ok(Ok(s)) if s.node_id == n.id.to_string() => s.rebalance,
            _ => None,
        }
    });
    let answers = futures::future::join_all(asks).await;
    nodes.keys().copied().zip(answers).collect()
}

async fn read_meta(admin: &Admin) -> anyhow::Result<Metadata> {
    match tokio::time::timeout(REQUEST_TIMEOUT, admin.read()).await {
        Ok(r) => Ok(r?.1),
        Err(_) => anyhow::bail!("no answer within {REQUEST_TIMEOUT:?}"),
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB)
}

fn duration(secs: f64) -> String {
    let s = secs.ceil() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// Recent samples of (time, bytes moved, bytes checked), for rate and ETA.
#[derive(Default)]
struct Samples(VecDeque<(Instant, u64, u64)>);

impl Samples {
    fn push(&mut self, at: Instant, t: &Totals) {
        self.0.push_back((at, t.bytes_moved, t.bytes_checked));
        while self
            .0
            .front()
            .is_some_and(|(first, ..)| at.duration_since(*first) > RATE_WINDOW)
            && self.0.len() > 2
        {
            self.0.pop_front();
        }
    }

    /// Bytes per second moved and checked over the window.
    fn rates(&self) -> Option<(f64, f64)> {
        let (first, last) = (self.0.front()?, self.0.back()?);
        let secs = last.0.duration_since(first.0).as_secs_f64();
        (secs > 0.0).then(|| {
            (
                last.1.saturating_sub(first.1) as f64 / secs,
                last.2.saturating_sub(first.2) as f64 / secs,
            )
        })
    }
}

/// One progress line of a running transition.
fn progress_line(meta: &Metadata, t: &Totals, samples: &Samples) -> String {
    let nodes = meta.layout.nodes.len();
    let synced = nodes - meta.nodes_syncing().len();
    let mut line = format!(
        "layout v{}: {synced}/{nodes} node(s) synced; moved {} object(s), {} block(s), {}",
        meta.layout.version,
        t.objects_moved,
        t.blocks_moved,
        mib(t.bytes_moved)
    );
    let rates = samples.rates();
    if let Some((moved, _)) = rates {
        line.push_str(&format!(" at {:.1} MiB/s", moved / MIB));
    }
    if meta.rebalance.paused {
        line.push_str("; PAUSED");
    } else {
        match (t.bytes_left, rates) {
            (Some(0), _) => line.push_str("; handoffs checked, reporting"),
            (Some(left), Some((_, checking))) if checking > 0.0 => line.push_str(&format!(
                "; {} left to check, ETA {}",
                mib(left),
                duration(left as f64 / checking)
            )),
            (Some(left), _) => line.push_str(&format!("; {} left to check", mib(left))),
            (None, _) => line.push_str(&format!(
                "; {} node(s) still pulling before their handoff, ETA unknown",
                t.before_handoff
            )),
        }
    }
    if t.answered < t.asked {
        line.push_str(&format!(
            " ({} of {} node(s) not answering)",
            t.asked - t.answered,
            t.asked
        ));
    }
    line
}

/// Prints progress every `interval` until the metadata shows no transition; returns the
/// layout version then current. Never returns early: only the metadata decides.
pub async fn follow(admin: &Admin, interval: Duration) -> anyhow::Result<u64> {
    let tty = std::io::stdout().is_terminal();
    let mut samples = Samples::default();
    let mut version = None;
    // The nodes that took part, including those the transition removes.
    let mut nodes = BTreeMap::new();
    loop {
        let meta = match read_meta(admin).await {
            Ok(meta) => meta,
            Err(e) => {
                eprintln!("cluster metadata unavailable ({e:#}); trying again");
                tokio::time::sleep(interval).await;
                continue;
            }
        };
        if version.is_some_and(|v| v != meta.layout.version) {
            (samples, nodes) = Default::default();
        }
        let watched = version.replace(meta.layout.version).is_some();
        nodes.extend(movers(&meta));
        let statuses = statuses(admin, &nodes).await;
        let syncing: Vec<Uuid> = meta.nodes_syncing().iter().map(|n| n.id).collect();
        let totals = Totals::sum(meta.layout.version, &statuses, &syncing);
        if meta.layout_history.is_empty() {
            if tty && watched {
                out!("");
            }
            out!(
                "layout v{}: no transition active, data is where the layout puts it (the \
                 transition to v{} moved {} object(s), {} block(s), {})",
                meta.layout.version,
                meta.layout.version,
                totals.objects_moved,
                totals.blocks_moved,
                mib(totals.bytes_moved)
            );
            return Ok(meta.layout.version);
        }
        samples.push(Instant::now(), &totals);
        let line = progress_line(&meta, &totals, &samples);
        if tty {
            use std::io::Write as _;
            let mut stdout = std::io::stdout();
            write!(stdout, "\r\x1b[K{line}")?;
            stdout.flush()?;
        } else {
            out!("{line}");
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(version: u64, moved: u64, checked: u64, total: Option<u64>) -> RebalanceStatus {
        RebalanceStatus {
            layout_version: version,
            objects_moved: 1,
            bytes_moved: moved,
            totals_known: total.is_some(),
            bytes_checked: checked,
            bytes_total: total.unwrap_or(0),
            ..Default::default()
        }
    }

    #[test]
    fn totals_sum_the_current_version_and_know_what_is_left_only_when_every_syncing_node_does() {
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let statuses = vec![
            (a, Some(status(5, 100, 10, Some(50)))),
            (b, Some(status(4, 999, 0, None))),
            (c, Some(status(5, 20, 5, Some(5)))),
        ];
        let t = Totals::sum(5, &statuses, &[a]);
        assert_eq!(
            (t.objects_moved, t.bytes_moved, t.bytes_left),
            (2, 120, Some(40))
        );
        assert_eq!((t.answered, t.asked), (3, 3));
        let t = Totals::sum(5, &statuses, &[a, b]);
        assert_eq!(t.bytes_left, None, "b has not started on version 5");
        assert_eq!(t.before_handoff, 1);
        let t = Totals::sum(5, &[(a, None)], &[a]);
        assert_eq!((t.answered, t.bytes_left, t.before_handoff), (0, None, 1));
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(0.2), "1s");
        assert_eq!(duration(75.0), "1m15s");
        assert_eq!(duration(7300.0), "2h01m");
    }
}

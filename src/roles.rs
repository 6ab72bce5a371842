//! The long-running roles: `server` (node + gateway in one process), `node` and `gateway`.
//! Each prints one `listening NAME=ADDR` line per listener, serves `/livez`, `/readyz` and
//! `/metrics`, and exits 0 on SIGINT / SIGTERM.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use cairn_gateway::cluster::LocalNode;
use cairn_gateway::{GatewayConfig, RunningGateway};
use cairn_node::{MembershipConfig, NodeConfig, RunningNode};
use cairn_proto::tls::Dialer;

use crate::cli::{GatewayArgs, GatewayListenArgs, NodeArgs, ServerArgs};
use crate::creds::{self, KeyPair};
use crate::health::{self, HistogramSeries, Metrics, Probe};

/// How long stopping the Raft member may take before the process exits anyway.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Environment variable: seconds a Raft voter may stay unreachable before the leader
/// replaces it with a healthy learner (default 30).
const VOTER_TIMEOUT_ENV: &str = "CAIRN_VOTER_TIMEOUT_SECS";
/// Environment variable: seconds between anti-entropy passes (default 60).
const ANTI_ENTROPY_ENV: &str = "CAIRN_ANTI_ENTROPY_SECS";
/// Environment variable: seconds a tombstone is kept at least; a node offline longer than
/// this re-enters empty (default one day).
const TOMBSTONE_GRACE_ENV: &str = "CAIRN_TOMBSTONE_GRACE_SECS";
/// Environment variable: seconds between garbage-collection passes (default 30).
const GC_INTERVAL_ENV: &str = "CAIRN_GC_INTERVAL_SECS";
/// Environment variable: seconds a block stays after losing its last reference (default 600).
const BLOCK_GRACE_ENV: &str = "CAIRN_BLOCK_GRACE_SECS";
/// Environment variable: seconds after which an unfinished upload counts as abandoned: its
/// `uploading` record expires and the reference audit checks references this old
/// (default one day).
const UPLOAD_EXPIRY_ENV: &str = "CAIRN_UPLOAD_EXPIRY_SECS";
/// Environment variable: seconds in a lifecycle-rule "day" (default 86400; tests shorten it).
const LIFECYCLE_DAY_ENV: &str = "CAIRN_LIFECYCLE_DAY_SECS";
/// Environment variable: seconds between lifecycle passes (default 3600).
const LIFECYCLE_INTERVAL_ENV: &str = "CAIRN_LIFECYCLE_INTERVAL_SECS";

/// A duration in whole seconds (at least 1) from the environment variable `name`.
fn env_secs(name: &str, default: Duration) -> anyhow::Result<Duration> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => {
            let secs: u64 = v
                .trim()
                .parse()
                .with_context(|| format!("{name}={v:?} is not a number of seconds"))?;
            Ok(Duration::from_secs(secs.max(1)))
        }
        _ => Ok(default),
    }
}

fn voter_timeout() -> anyhow::Result<Duration> {
    env_secs(VOTER_TIMEOUT_ENV, Duration::from_secs(30))
}

fn anti_entropy() -> anyhow::Result<cairn_node::repair::AntiEntropyConfig> {
    let defaults = cairn_node::repair::AntiEntropyConfig::default();
    Ok(cairn_node::repair::AntiEntropyConfig {
        interval: env_secs(ANTI_ENTROPY_ENV, defaults.interval)?,
        ..defaults
    })
}

fn gc() -> anyhow::Result<cairn_node::gc::GcConfig> {
    let defaults = cairn_node::gc::GcConfig::default();
    Ok(cairn_node::gc::GcConfig {
        tombstone_grace: env_secs(TOMBSTONE_GRACE_ENV, defaults.tombstone_grace)?,
        interval: env_secs(GC_INTERVAL_ENV, defaults.interval)?,
        block_grace: env_secs(BLOCK_GRACE_ENV, defaults.block_grace)?,
        upload_expiry: env_secs(UPLOAD_EXPIRY_ENV, defaults.upload_expiry)?,
        ..defaults
    })
}

fn lifecycle() -> anyhow::Result<cairn_node::lifecycle::LifecycleTiming> {
    let defaults = cairn_node::lifecycle::LifecycleTiming::default();
    Ok(cairn_node::lifecycle::LifecycleTiming {
        day: env_secs(LIFECYCLE_DAY_ENV, defaults.day)?,
        interval: env_secs(LIFECYCLE_INTERVAL_ENV, defaults.interval)?,
    })
}

/// Whether the data dir has never held a node (its identity file is created on first start).
fn is_first_start(data_dir: &Path) -> bool {
    !data_dir.join("node_id").exists()
}

fn create_data_dir(data_dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))
}

/// The initial access key of a bootstrapping node: the one from the environment, else (for
/// `server`, when `generate`) a fresh one. Only on first start: a key deleted later is not
/// resurrected by a restart. Returns the key and whether it was generated here.
fn initial_key(first_start: bool, generate: bool) -> anyhow::Result<(Option<KeyPair>, bool)> {
    let from_env = creds::env_key()?;
    if !first_start {
        return Ok((None, false));
    }
    Ok(match from_env {
        Some(k) => (Some(k), false),
        None if generate => (Some(creds::new_key()), true),
        None => (None, false),
    })
}

/// Warns when the environment names a key the cluster does not have (keys from the
/// environment are only created on first start).
fn check_env_key(node: &RunningNode) {
    let Ok(Some(env)) = creds::env_key() else {
        return;
    };
    let (_, meta) = node.state.raft.current();
    match meta.keys.get(&env.id) {
        None => tracing::warn!(
            key = %env.id,
            "CAIRN_ACCESS_KEY_ID is not a key of this cluster: keys from the environment are \
             only created on a data dir's first start (use `cairn key create`)"
        ),
        Some(k) if k.secret != env.secret => tracing::warn!(
            key = %env.id,
            "CAIRN_SECRET_ACCESS_KEY differs from the stored secret of that key; the stored \
             one is in effect"
        ),
        Some(_) => {}
    }
}

fn gateway_config(
    g: &GatewayListenArgs,
    nodes: Vec<String>,
    secret: String,
    dialer: Dialer,
) -> GatewayConfig {
    GatewayConfig {
        nodes,
        s3_listen: g.s3_listen.clone(),
        web_listen: g.web_listen(),
        root_domain: g.root_domain.clone().filter(|d| !d.is_empty()),
        web_root_domain: g.web_root_domain.clone().filter(|d| !d.is_empty()),
        region: g.region.clone(),
        cluster_secret: secret,
        dialer,
        inline_max: g.inline_max as usize,
        local_node: None,
        tls: g.tls(),
    }
}

/// Prometheus samples of the S3 endpoint: requests, latency, body bytes.
fn gateway_metrics(m: &mut Metrics) {
    let snap = cairn_gateway::metrics::snapshot();
    let requests: Vec<(String, f64)> = snap
        .requests
        .iter()
        .map(|((op, status), n)| (format!("op=\"{op}\",status=\"{status}\""), *n as f64))
        .collect();
    m.family(
        "cairn_s3_requests_total",
        "counter",
        "S3 requests answered, by operation and HTTP status.",
        &requests,
    );
    let latency: Vec<_> = snap
        .latency
        .iter()
        .map(|(op, h)| HistogramSeries {
            labels: format!("op=\"{op}\""),
            buckets: h.cumulative(),
            sum: h.sum_seconds,
            count: h.count,
        })
        .collect();
    m.histogram(
        "cairn_s3_request_duration_seconds",
        "Time from receiving an S3 request to sending its response head, by operation.",
        &latency,
    );
    m.counter(
        "cairn_s3_received_bytes_total",
        "Request body bytes declared by S3 requests (Content-Length or decoded length).",
        snap.bytes_in as f64,
    );
    m.counter(
        "cairn_s3_sent_bytes_total",
        "Response body bytes declared by S3 responses (Content-Length).",
        snap.bytes_out as f64,
    );
}

/// Prometheus samples describing a running node.
fn node_metrics(node: &RunningNode, m: &mut Metrics) {
    let raft = node.state.raft.status();
    let (applied, meta) = node.state.raft.current();
    m.gauge(
        "cairn_raft_term",
        "Current Raft term of the metadata group.",
        raft.term as f64,
    );
    m.gauge(
        "cairn_raft_commit_index",
        "Last metadata log index this node knows to be committed.",
        raft.commit_index as f64,
    );
    m.gauge(
        "cairn_raft_last_log_index",
        "Last metadata log index in this node's log.",
        raft.last_log_index as f64,
    );
    if !raft.leader.is_empty() {
        m.metric(
            "cairn_raft_leader_info",
            "gauge",
            "1, labelled with the metadata leader this node follows.",
            &format!("leader=\"{}\"", raft.leader),
            1.0,
        );
    }
    m.gauge(
        "cairn_raft_applied_index",
        "Last metadata log index applied by this node.",
        applied as f64,
    );
    m.gauge(
        "cairn_raft_has_leader",
        "1 if this node knows a metadata leader.",
        f64::from(u8::from(!raft.leader.is_empty())),
    );
    m.gauge(
        "cairn_raft_is_leader",
        "1 if this node is the metadata leader.",
        f64::from(u8::from(raft.role == "leader")),
    );
    m.gauge(
        "cairn_layout_version",
        "Applied ring layout version.",
        meta.layout.version as f64,
    );
    m.gauge(
        "cairn_layout_nodes",
        "Nodes in the applied ring layout.",
        meta.layout.nodes.len() as f64,
    );
    m.gauge(
        "cairn_layout_transition_active",
        "1 while data moves from older layout versions to the current one.",
        f64::from(u8::from(!meta.layout_history.is_empty())),
    );
    m.gauge(
        "cairn_layout_nodes_syncing",
        "Nodes of the current layout that have not pulled their share yet.",
        meta.nodes_syncing().len() as f64,
    );
    m.gauge(
        "cairn_buckets",
        "Buckets in the metadata.",
        meta.buckets.len() as f64,
    );
    m.gauge(
        "cairn_access_keys",
        "Access keys in the metadata.",
        meta.keys.len() as f64,
    );
    if let Ok(n) = node.state.index.record_count() {
        m.gauge(
            "cairn_object_records",
            "Object version records held by this node.",
            n as f64,
        );
    }
    let disk = &node.state.disk;
    if let Some(space) = disk.space() {
        m.gauge(
            "cairn_data_size_bytes",
            "Size of the filesystem holding this node's data dir (block store and index).",
            space.size as f64,
        );
        m.gauge(
            "cairn_data_free_bytes",
            "Bytes available to this node on the filesystem of its data dir.",
            space.free as f64,
        );
        m.gauge(
            "cairn_data_used_bytes",
            "Bytes used on the filesystem of this node's data dir.",
            space.size.saturating_sub(space.free) as f64,
        );
        m.gauge(
            "cairn_data_reserve_bytes",
            "Free bytes this node keeps on its data dir's filesystem; below them it refuses new data.",
            space.reserve as f64,
        );
        m.gauge(
            "cairn_data_writes_refusing",
            "1 while the free space is below the reserve and new data writes are refused.",
            f64::from(u8::from(space.refusing())),
        );
    }
    m.counter(
        "cairn_data_writes_refused_total",
        "Data writes (blocks, object versions) refused below the free-space reserve.",
        disk.refused() as f64,
    );
    repair_metrics(&node.state.repair.snapshot(), m);
    rebalance_metrics(&node.state.repair.rebalance.snapshot(&meta), m);
    lifecycle_metrics(&node.state.lifecycle.snapshot(), m);
    gc_metrics(&node.state.gc.snapshot(&node.state.index), m);
}

/// What the collector of a node did, its reference audit included.
fn gc_metrics(gc: &cairn_proto::pb::GcStatus, m: &mut Metrics) {
    m.counter(
        "cairn_gc_passes_total",
        "Garbage collection passes completed.",
        gc.passes as f64,
    );
    m.counter(
        "cairn_gc_blocks_deleted_total",
        "Blocks deleted after the grace delay without a reference.",
        gc.blocks_deleted as f64,
    );
    m.counter(
        "cairn_gc_refs_checked_total",
        "Block references older than the upload expiry whose owner the audit looked up.",
        gc.refs_checked as f64,
    );
    m.counter(
        "cairn_gc_refs_dropped_total",
        "Block references the audit dropped because their owner is gone.",
        gc.refs_dropped as f64,
    );
    m.gauge(
        "cairn_gc_block_refs",
        "Block references this node holds.",
        gc.block_refs as f64,
    );
    last_pass_gauges(
        m,
        "cairn_gc",
        "garbage collection",
        gc.last_pass_ms,
        !gc.last_error.is_empty(),
        "ended with an error or left references unchecked",
    );
}

/// When a background worker's last pass ended (`PREFIX_last_pass_timestamp_seconds`) and
/// whether it failed (`PREFIX_last_pass_failed`, with what failing means).
fn last_pass_gauges(
    m: &mut Metrics,
    prefix: &str,
    worker: &str,
    last_pass_ms: i64,
    failed: bool,
    failing: &str,
) {
    m.gauge(
        &format!("{prefix}_last_pass_timestamp_seconds"),
        &format!("When the last {worker} pass ended (unix seconds; 0 = none yet)."),
        last_pass_ms as f64 / 1000.0,
    );
    m.gauge(
        &format!("{prefix}_last_pass_failed"),
        &format!("1 if the last {worker} pass {failing}."),
        f64::from(u8::from(failed)),
    );
}

/// What this node moved for the current (or last) layout transition.
fn rebalance_metrics(r: &cairn_proto::pb::RebalanceStatus, m: &mut Metrics) {
    m.gauge(
        "cairn_rebalance_layout_version",
        "Layout version of the transition the rebalance gauges count for.",
        r.layout_version as f64,
    );
    m.gauge(
        "cairn_rebalance_paused",
        "1 while the cluster metadata pauses transition data movement.",
        f64::from(u8::from(r.paused)),
    );
    m.gauge(
        "cairn_rebalance_rate_limit_bytes",
        "Limit on transition data movement in bytes per second (0 = unlimited).",
        r.rate_limit_bytes as f64,
    );
    m.gauge(
        "cairn_rebalance_objects_moved",
        "Object records this node pulled for the transition.",
        r.objects_moved as f64,
    );
    m.gauge(
        "cairn_rebalance_blocks_moved",
        "Blocks this node copied for the transition.",
        r.blocks_moved as f64,
    );
    m.gauge(
        "cairn_rebalance_bytes_moved",
        "Bytes of records and blocks this node moved for the transition.",
        r.bytes_moved as f64,
    );
    if r.totals_known {
        m.gauge(
            "cairn_rebalance_bytes_checked",
            "Block bytes of the records this node hands off that it checked so far.",
            r.bytes_checked as f64,
        );
        m.gauge(
            "cairn_rebalance_bytes_total",
            "Block bytes of the records this node hands off before it reports synced.",
            r.bytes_total as f64,
        );
    }
}

/// Lifecycle worker progress of a node (for the keys it coordinates).
fn lifecycle_metrics(l: &cairn_proto::pb::LifecycleStatus, m: &mut Metrics) {
    m.counter(
        "cairn_lifecycle_passes_total",
        "Lifecycle passes completed.",
        l.passes as f64,
    );
    m.counter(
        "cairn_lifecycle_objects_expired_total",
        "Objects deleted by lifecycle expiration rules.",
        l.objects_expired as f64,
    );
    m.counter(
        "cairn_lifecycle_versions_removed_total",
        "Noncurrent versions and lone delete markers removed by lifecycle rules.",
        l.versions_removed as f64,
    );
    m.counter(
        "cairn_lifecycle_uploads_aborted_total",
        "Incomplete multipart uploads aborted by lifecycle rules.",
        l.uploads_aborted as f64,
    );
    last_pass_gauges(
        m,
        "cairn_lifecycle",
        "lifecycle",
        l.last_pass_ms,
        !l.last_error.is_empty(),
        "ended with an error",
    );
}

/// Anti-entropy (replica repair) progress of a node.
fn repair_metrics(ae: &cairn_proto::pb::AntiEntropyStatus, m: &mut Metrics) {
    m.counter(
        "cairn_repair_passes_total",
        "Anti-entropy passes completed.",
        ae.passes as f64,
    );
    m.counter(
        "cairn_repair_records_pulled_total",
        "Object records copied from peers by anti-entropy.",
        ae.records_pulled as f64,
    );
    m.counter(
        "cairn_repair_blocks_copied_total",
        "Blocks copied from peers by anti-entropy.",
        ae.blocks_copied as f64,
    );
    m.counter(
        "cairn_repair_refs_added_total",
        "Block references added by anti-entropy.",
        ae.refs_added as f64,
    );
    last_pass_gauges(
        m,
        "cairn_repair",
        "anti-entropy",
        ae.last_pass_ms,
        !ae.last_error.is_empty(),
        "could not reach every peer",
    );
    m.gauge(
        "cairn_repair_last_pass_duration_seconds",
        "How long the last anti-entropy pass took.",
        ae.last_pass_duration_ms as f64 / 1000.0,
    );
}

/// Waits for SIGINT (ctrl-c) or SIGTERM.
async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("cannot handle SIGINT")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("cannot handle ctrl-c")?;
    tracing::info!("shutting down");
    Ok(())
}

/// Stops the node's Raft member (closing its log cleanly), bounded in time.
async fn stop_node(node: &RunningNode) {
    if tokio::time::timeout(SHUTDOWN_TIMEOUT, node.state.raft.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("metadata Raft did not stop within {SHUTDOWN_TIMEOUT:?}");
    }
}

/// After SIGTERM: drains the gateway (its listeners close, requests in flight finish), then
/// the node's gRPC server (its in-flight calls may serve the gateway's requests), then stops
/// the node's Raft member. Draining takes at most `grace` in all; what still runs then ends
/// with the process (an interrupted upload never becomes visible).
async fn drain(gateway: Option<&RunningGateway>, node: Option<&RunningNode>, grace: Duration) {
    let deadline = tokio::time::Instant::now() + grace;
    let left = || deadline.saturating_duration_since(tokio::time::Instant::now());
    if let Some(gateway) = gateway
        && !gateway.drain(left()).await
    {
        tracing::warn!("S3 requests still running after the {grace:?} shutdown grace");
    }
    if let Some(node) = node {
        if !node.drain_rpc(left()).await {
            tracing::warn!("gRPC calls still running after the {grace:?} shutdown grace");
        }
        stop_node(node).await;
    }
    tracing::info!("stopped");
}

/// `http(s)://HOST:PORT` clients can use for a bound address (loopback for a wildcard bind).
fn endpoint_url(addr: SocketAddr, tls: bool) -> String {
    let ip = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
        ip if ip.is_unspecified() => "[::1]".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{ip}:{}", addr.port())
}

/// The block `cairn server` prints when it created the first access key.
fn welcome(endpoint: &str, key: &KeyPair, region: &str) -> String {
    format!(
        "\n\
         Cairn is ready. A first access key was created (shown only this once):\n\
         \n\
         \x20 S3 endpoint:        {endpoint}\n\
         \x20 Access key id:      {id}\n\
         \x20 Secret access key:  {secret}\n\
         \x20 Region:             {region}\n\
         \n\
         Try it with the aws CLI:\n\
         \n\
         \x20 export AWS_ACCESS_KEY_ID={id} AWS_SECRET_ACCESS_KEY={secret} AWS_DEFAULT_REGION={region}\n\
         \x20 aws --endpoint-url {endpoint} s3 mb s3://my-bucket\n\
         \x20 aws --endpoint-url {endpoint} s3 cp ./some-file s3://my-bucket/\n\
         \x20 aws --endpoint-url {endpoint} s3 ls s3://my-bucket\n\
         \n\
         More keys: `cairn key create NAME`; status: `cairn status`.\n",
        id = key.id,
        secret = key.secret,
    )
}

pub async fn server(args: ServerArgs) -> anyhow::Result<()> {
    create_data_dir(&args.data_dir)?;
    let first_start = is_first_start(&args.data_dir);
    let (key, generated_key) = initial_key(first_start, true)?;
    let (secret, generated_secret) = creds::cluster_secret_or_generate(
        args.secret.cluster_secret_file.as_deref(),
        &args.data_dir,
        first_start,
    )?;
    if generated_secret {
        tracing::info!(
            path = %args.data_dir.join(creds::SECRET_FILE).display(),
            "generated a cluster secret"
        );
    }

    let dialer = args.grpc_tls.dialer()?;
    let node = cairn_node::start(NodeConfig {
        data_dir: args.data_dir.clone(),
        rpc_listen: args.rpc_listen.clone(),
        advertise_addr: None,
        membership: MembershipConfig {
            zone: "default".into(),
            weight: 1,
            replication: 1,
            initial_key: key.clone().map(|k| (k.id, k.secret)),
            voter_timeout: voter_timeout()?,
            ..Default::default()
        },
        cluster_secret: secret.clone(),
        grpc_identity: args.grpc_tls.identity(),
        dialer: dialer.clone(),
        gc: gc()?,
        anti_entropy: anti_entropy()?,
        lifecycle: lifecycle()?,
        disk_reserve: args.disk.disk_reserve_bytes,
    })
    .await?;
    let node = Arc::new(node);
    if !first_start {
        check_env_key(&node);
    }

    let mut config = gateway_config(&args.gateway, vec![node.state.addr.clone()], secret, dialer);
    config.local_node = Some(LocalNode {
        addr: node.state.addr.clone(),
        objects: cairn_node::rpc::object_service(node.state.clone()),
        blocks: cairn_node::local::block_node(node.state.clone()),
    });
    let gateway = match cairn_gateway::start(config).await {
        Ok(g) => Arc::new(g),
        Err(e) => {
            stop_node(&node).await;
            return Err(e);
        }
    };

    let (ready_node, ready_gw, metrics_node) = (node.clone(), gateway.clone(), node.clone());
    let probe = Probe {
        role: "server",
        ready: Box::new(move || ready_node.ready() && ready_gw.ready()),
        metrics: Box::new(move |m| {
            node_metrics(&metrics_node, m);
            gateway_metrics(m);
        }),
    };
    if let Err(e) = health::serve(&args.http_listen, probe).await {
        stop_node(&node).await;
        return Err(e);
    }

    if let (Some(key), true) = (&key, generated_key) {
        use std::io::Write as _;
        let text = welcome(
            &endpoint_url(gateway.s3_addr, gateway.tls),
            key,
            &args.gateway.region,
        );
        // A closed stdout must not stop the server.
        let _ = std::io::stdout().write_all(text.as_bytes());
        let _ = std::io::stdout().flush();
    }
    tracing::info!(s3 = %gateway.s3_addr, rpc = %node.rpc_addr, "cairn server started");

    let outcome = shutdown_signal().await;
    drain(Some(&gateway), Some(&node), args.shutdown.grace()).await;
    outcome
}

pub async fn node(args: NodeArgs) -> anyhow::Result<()> {
    create_data_dir(&args.data_dir)?;
    let expects_peers = args.bootstrap_expect.is_some_and(|n| n > 1);
    let bootstraps_alone = args.join.is_empty() && !expects_peers;
    let first_start = is_first_start(&args.data_dir);
    let (key, _) = initial_key(first_start, false)?;
    let secret_file = args.secret.cluster_secret_file.as_deref();
    let secret = if bootstraps_alone {
        let (secret, generated) =
            creds::cluster_secret_or_generate(secret_file, &args.data_dir, first_start)?;
        if generated {
            tracing::info!(
                path = %args.data_dir.join(creds::SECRET_FILE).display(),
                "generated a cluster secret: give it to every other process of this cluster"
            );
        }
        secret
    } else {
        creds::find_cluster_secret(secret_file, Some(&args.data_dir))?.ok_or_else(|| {
            anyhow::anyhow!(
                "a joining node needs the cluster secret: set {} or pass --cluster-secret-file",
                creds::SECRET_ENV
            )
        })?
    };

    let node = cairn_node::start(NodeConfig {
        data_dir: args.data_dir.clone(),
        rpc_listen: args.rpc_listen.clone(),
        advertise_addr: args.advertise_addr.clone().filter(|a| !a.is_empty()),
        membership: MembershipConfig {
            join: args
                .join
                .iter()
                .filter(|a| !a.is_empty())
                .cloned()
                .collect(),
            bootstrap_expect: args.bootstrap_expect,
            auto_layout: args.auto_layout,
            // An empty CAIRN_ZONE (e.g. a missing pod label through the downward API) means
            // the default zone.
            zone: match args.zone.trim() {
                "" => "default".to_string(),
                zone => zone.to_string(),
            },
            weight: args.weight,
            replication: args.replication,
            initial_key: key.map(|k| (k.id, k.secret)),
            voter_timeout: voter_timeout()?,
        },
        cluster_secret: secret,
        grpc_identity: args.grpc_tls.identity(),
        dialer: args.grpc_tls.dialer()?,
        gc: gc()?,
        anti_entropy: cairn_node::repair::AntiEntropyConfig {
            rebalance_rate_mib: args.rebalance_rate_mib,
            ..anti_entropy()?
        },
        lifecycle: lifecycle()?,
        disk_reserve: args.disk.disk_reserve_bytes,
    })
    .await?;
    let node = Arc::new(node);
    if !first_start {
        check_env_key(&node);
    }

    let (ready_node, metrics_node) = (node.clone(), node.clone());
    let probe = Probe {
        role: "node",
        ready: Box::new(move || ready_node.ready()),
        metrics: Box::new(move |m| node_metrics(&metrics_node, m)),
    };
    if let Err(e) = health::serve(&args.http_listen, probe).await {
        stop_node(&node).await;
        return Err(e);
    }

    let outcome = shutdown_signal().await;
    drain(None, Some(&node), args.shutdown.grace()).await;
    outcome
}

pub async fn gateway(args: GatewayArgs) -> anyhow::Result<()> {
    let secret = creds::find_cluster_secret(args.secret.cluster_secret_file.as_deref(), None)?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "a gateway needs the cluster secret: set {} or pass --cluster-secret-file",
                creds::SECRET_ENV
            )
        })?;
    let nodes: Vec<String> = args
        .nodes
        .iter()
        .filter(|a| !a.is_empty())
        .cloned()
        .collect();
    if nodes.is_empty() {
        bail!("--nodes needs at least one node address");
    }
    let dialer = Dialer::from_ca(args.grpc_tls_ca.as_deref())?;
    let gateway: Arc<RunningGateway> =
        Arc::new(cairn_gateway::start(gateway_config(&args.gateway, nodes, secret, dialer)).await?);

    let ready_gw = gateway.clone();
    let probe = Probe {
        role: "gateway",
        ready: Box::new(move || ready_gw.ready()),
        metrics: Box::new(gateway_metrics),
    };
    health::serve(&args.http_listen, probe).await?;
    let outcome = shutdown_signal().await;
    drain(Some(&gateway), None, args.shutdown.grace()).await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls_are_dialable() {
        let url = |s: &str| endpoint_url(s.parse().unwrap(), false);
        assert_eq!(url("0.0.0.0:9000"), "http://127.0.0.1:9000");
        assert_eq!(url("[::]:9000"), "http://[::1]:9000");
        assert_eq!(url("10.1.2.3:80"), "http://10.1.2.3:80");
        assert_eq!(url("[fe80::1]:9000"), "http://[fe80::1]:9000");
        let tls = endpoint_url("0.0.0.0:9000".parse().unwrap(), true);
        assert_eq!(tls, "https://127.0.0.1:9000");
    }

    #[test]
    fn welcome_names_endpoint_and_key() {
        let key = KeyPair {
            id: "GKABC".into(),
            secret: "s3cr3t".into(),
        };
        let text = welcome("http://127.0.0.1:9000", &key, "us-east-1");
        assert!(text.contains("http://127.0.0.1:9000"));
        assert!(text.contains("GKABC") && text.contains("s3cr3t"));
        assert!(text.contains("aws --endpoint-url http://127.0.0.1:9000 s3 mb"));
        assert!(!text.lines().any(|l| l.starts_with("listening ")));
    }
}

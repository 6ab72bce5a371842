//! Command-line definitions (clap derive). The flags are a contract (ARCHITECTURE.md, "Command
//! line"): every role and connection flag also reads `CAIRN_<FLAG>` from the environment.
//! Per-verb arguments of the admin commands (`--bucket`, `--read`, ...) deliberately have no
//! environment fallback, so a stray variable can never change what a grant or revoke does.

use std::path::PathBuf;

use cairn_proto::meta::{Rights, WebsiteConfig};
use cairn_proto::tls::{Dialer, GrpcIdentityFiles};
use clap::{ArgGroup, Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cairn",
    version,
    about = "Cairn: a distributed S3-compatible object store",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// All-in-one: a storage node and an S3 gateway in one process (one Raft voter, RF=1).
    Server(ServerArgs),
    /// A storage node: block store, object index and Raft member.
    Node(NodeArgs),
    /// A stateless S3 gateway (and website endpoint) in front of the nodes.
    Gateway(GatewayArgs),
    /// Status of a node, its Raft view and the cluster layout.
    Status(AdminArgs),
    /// The ring layout.
    Layout {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: LayoutCommand,
    },
    /// S3 access keys and their rights.
    Key {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Buckets.
    Bucket {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: BucketCommand,
    },
}

impl Command {
    /// Whether this runs a long-lived role (server, node, gateway) rather than an admin verb.
    pub fn is_role(&self) -> bool {
        matches!(
            self,
            Command::Server(_) | Command::Node(_) | Command::Gateway(_)
        )
    }
}

/// Where the cluster secret comes from when `CAIRN_CLUSTER_SECRET` is not set.
#[derive(Debug, Clone, Args)]
pub struct SecretArgs {
    /// File holding the cluster secret (used when CAIRN_CLUSTER_SECRET is not set).
    #[arg(long, env = "CAIRN_CLUSTER_SECRET_FILE", value_name = "FILE")]
    pub cluster_secret_file: Option<PathBuf>,
}

/// How a long-running role shuts down on SIGTERM / SIGINT.
#[derive(Debug, Clone, Args)]
pub struct ShutdownArgs {
    /// Seconds requests in flight may take to finish after SIGTERM before the process exits
    /// anyway (keep it below Kubernetes' terminationGracePeriodSeconds).
    #[arg(
        long,
        env = "CAIRN_SHUTDOWN_GRACE_SECS",
        default_value_t = 25,
        value_name = "SECS"
    )]
    pub shutdown_grace_secs: u64,
}

impl ShutdownArgs {
    pub fn grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.shutdown_grace_secs)
    }
}

/// The S3 and website side of a gateway (shared by `server` and `gateway`).
#[derive(Debug, Clone, Args)]
pub struct GatewayListenArgs {
    /// S3 API listen address (port 0 = any free port).
    #[arg(
        long,
        env = "CAIRN_S3_LISTEN",
        default_value = "0.0.0.0:9000",
        value_name = "ADDR"
    )]
    pub s3_listen: String,
    /// Website endpoint listen address ("off" disables it).
    #[arg(
        long,
        env = "CAIRN_WEB_LISTEN",
        default_value = "0.0.0.0:9001",
        value_name = "ADDR"
    )]
    pub web_listen: String,
    /// Domain for virtual-hosted-style requests (`<bucket>.<root-domain>`).
    #[arg(long, env = "CAIRN_ROOT_DOMAIN", value_name = "DOMAIN")]
    pub root_domain: Option<String>,
    /// Domain of the website endpoint (`<bucket>.<web-root-domain>`).
    #[arg(long, env = "CAIRN_WEB_ROOT_DOMAIN", value_name = "DOMAIN")]
    pub web_root_domain: Option<String>,
    /// Region the S3 endpoint reports and signs for.
    #[arg(long, env = "CAIRN_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Objects up to this many bytes live inline in their record (no block files).
    #[arg(
        long,
        env = "CAIRN_INLINE_MAX",
        default_value_t = cairn_gateway::s3::DEFAULT_INLINE_MAX as u32,
        value_name = "BYTES",
        value_parser = clap::value_parser!(u32).range(0..=1 << 20)
    )]
    pub inline_max: u32,
    /// PEM certificate chain: serve S3 and the website over HTTPS (needs --tls-key).
    #[arg(
        long,
        env = "CAIRN_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(
        long,
        env = "CAIRN_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
}

impl GatewayListenArgs {
    /// The certificate files of the S3 and website listeners, if TLS is on.
    pub fn tls(&self) -> Option<cairn_gateway::tls::TlsFiles> {
        let (cert, key) = (self.tls_cert.clone()?, self.tls_key.clone()?);
        Some(cairn_gateway::tls::TlsFiles { cert, key })
    }

    /// The website listen address, unless disabled.
    pub fn web_listen(&self) -> Option<String> {
        let v = self.web_listen.trim();
        match v.to_ascii_lowercase().as_str() {
            "" | "off" | "none" | "disabled" => None,
            _ => Some(v.to_string()),
        }
    }
}

/// TLS of a node's gRPC listener and of its connections to other nodes (`server`, `node`):
/// all on or all off.
#[derive(Debug, Clone, Args)]
pub struct GrpcTlsArgs {
    /// PEM certificate chain: serve node gRPC over TLS (needs --grpc-tls-key and
    /// --grpc-tls-ca). Its names must cover the host of --advertise-addr.
    #[arg(
        long,
        env = "CAIRN_GRPC_TLS_CERT",
        value_name = "FILE",
        requires_all = ["grpc_tls_key", "grpc_tls_ca"]
    )]
    pub grpc_tls_cert: Option<PathBuf>,
    /// PEM private key of --grpc-tls-cert.
    #[arg(
        long,
        env = "CAIRN_GRPC_TLS_KEY",
        value_name = "FILE",
        requires = "grpc_tls_cert"
    )]
    pub grpc_tls_key: Option<PathBuf>,
    /// PEM CA certificates that signed the nodes' gRPC certificates: other nodes are dialed
    /// over TLS trusting only these.
    #[arg(
        long,
        env = "CAIRN_GRPC_TLS_CA",
        value_name = "FILE",
        requires = "grpc_tls_cert"
    )]
    pub grpc_tls_ca: Option<PathBuf>,
}

impl GrpcTlsArgs {
    /// The listener's certificate files, if gRPC TLS is on.
    pub fn identity(&self) -> Option<GrpcIdentityFiles> {
        let (cert, key) = (self.grpc_tls_cert.clone()?, self.grpc_tls_key.clone()?);
        Some(GrpcIdentityFiles { cert, key })
    }

    /// How to dial other nodes.
    pub fn dialer(&self) -> anyhow::Result<Dialer> {
        Dialer::from_ca(self.grpc_tls_ca.as_deref())
    }
}

/// The free-space reserve of a node's data dir.
#[derive(Debug, Clone, Args)]
pub struct DiskArgs {
    /// Free bytes to keep on the data dir's filesystem: below them the node refuses new data
    /// (deletes still work); 0 turns the check off. Default: the smaller of 1 GiB and 2 % of
    /// the filesystem.
    #[arg(long, env = "CAIRN_DISK_RESERVE_BYTES", value_name = "BYTES")]
    pub disk_reserve_bytes: Option<u64>,
}

#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Data directory (blocks, object index, Raft log, node id, cluster secret).
    #[arg(
        long,
        env = "CAIRN_DATA_DIR",
        default_value = "./cairn-data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub gateway: GatewayListenArgs,
    /// Node gRPC listen address.
    #[arg(
        long,
        env = "CAIRN_RPC_LISTEN",
        default_value = "0.0.0.0:9002",
        value_name = "ADDR"
    )]
    pub rpc_listen: String,
    /// Health and metrics listen address (/livez, /readyz, /metrics).
    #[arg(
        long,
        env = "CAIRN_HTTP_LISTEN",
        default_value = "0.0.0.0:9003",
        value_name = "ADDR"
    )]
    pub http_listen: String,
    #[command(flatten)]
    pub disk: DiskArgs,
    #[command(flatten)]
    pub secret: SecretArgs,
    #[command(flatten)]
    pub grpc_tls: GrpcTlsArgs,
    #[command(flatten)]
    pub shutdown: ShutdownArgs,
}

#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// Data directory (blocks, object index, Raft log, node id).
    #[arg(long, env = "CAIRN_DATA_DIR", value_name = "DIR")]
    pub data_dir: PathBuf,
    /// gRPC listen address.
    #[arg(
        long,
        env = "CAIRN_RPC_LISTEN",
        default_value = "0.0.0.0:9002",
        value_name = "ADDR"
    )]
    pub rpc_listen: String,
    /// Address other processes reach this node at (default: the bound address).
    #[arg(long, env = "CAIRN_ADVERTISE_ADDR", value_name = "HOST:PORT")]
    pub advertise_addr: Option<String>,
    /// Health and metrics listen address (/livez, /readyz, /metrics).
    #[arg(
        long,
        env = "CAIRN_HTTP_LISTEN",
        default_value = "0.0.0.0:9003",
        value_name = "ADDR"
    )]
    pub http_listen: String,
    /// Nodes of the cluster to join (comma-separated `host:port`).
    #[arg(
        long,
        env = "CAIRN_JOIN",
        value_delimiter = ',',
        value_name = "ADDR,..."
    )]
    pub join: Vec<String>,
    /// Bootstrap a new cluster only once this many nodes have found each other.
    #[arg(long, env = "CAIRN_BOOTSTRAP_EXPECT", value_name = "N")]
    pub bootstrap_expect: Option<u32>,
    /// Add this node to the layout automatically once it has joined.
    #[arg(long, env = "CAIRN_AUTO_LAYOUT")]
    pub auto_layout: bool,
    /// Failure zone of this node (replicas prefer distinct zones).
    #[arg(long, env = "CAIRN_ZONE", default_value = "default")]
    pub zone: String,
    /// Relative capacity of this node in the ring.
    #[arg(long, env = "CAIRN_WEIGHT", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub weight: u32,
    /// Replication factor of the first layout when this node bootstraps a cluster.
    #[arg(long, env = "CAIRN_REPLICATION", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub replication: u32,
    /// Limit on the bytes this node moves for layout transitions, in MiB/s (0 = unlimited);
    /// `cairn layout rate` overrides it cluster-wide.
    #[arg(
        long,
        env = "CAIRN_REBALANCE_RATE_MIB",
        default_value_t = 0,
        value_name = "MIB"
    )]
    pub rebalance_rate_mib: u32,
    #[command(flatten)]
    pub disk: DiskArgs,
    #[command(flatten)]
    pub secret: SecretArgs,
    #[command(flatten)]
    pub grpc_tls: GrpcTlsArgs,
    #[command(flatten)]
    pub shutdown: ShutdownArgs,
}

#[derive(Debug, Clone, Args)]
pub struct GatewayArgs {
    /// Nodes to talk to (comma-separated `host:port`); more are learned from the layout.
    #[arg(
        long,
        env = "CAIRN_NODES",
        value_delimiter = ',',
        required = true,
        value_name = "ADDR,..."
    )]
    pub nodes: Vec<String>,
    #[command(flatten)]
    pub gateway: GatewayListenArgs,
    /// Health and metrics listen address (/livez, /readyz, /metrics).
    #[arg(
        long,
        env = "CAIRN_HTTP_LISTEN",
        default_value = "0.0.0.0:9003",
        value_name = "ADDR"
    )]
    pub http_listen: String,
    /// PEM CA certificates: dial the nodes over TLS trusting only these (when the nodes
    /// serve gRPC with --grpc-tls-cert).
    #[arg(long, env = "CAIRN_GRPC_TLS_CA", value_name = "FILE")]
    pub grpc_tls_ca: Option<PathBuf>,
    #[command(flatten)]
    pub secret: SecretArgs,
    #[command(flatten)]
    pub shutdown: ShutdownArgs,
}

/// How admin verbs reach the cluster. Global: accepted before or after the verb.
#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    /// gRPC address of any node.
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        env = "CAIRN_NODE",
        default_value = "127.0.0.1:9002",
        value_name = "ADDR"
    )]
    pub node: String,
    /// PEM CA certificates: dial the node over TLS trusting only these (when the nodes serve
    /// gRPC with --grpc-tls-cert).
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        env = "CAIRN_GRPC_TLS_CA",
        value_name = "FILE"
    )]
    pub grpc_tls_ca: Option<PathBuf>,
    /// File holding the cluster secret (used when CAIRN_CLUSTER_SECRET is not set).
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        env = "CAIRN_CLUSTER_SECRET_FILE",
        value_name = "FILE"
    )]
    pub cluster_secret_file: Option<PathBuf>,
    /// Data directory whose `cluster_secret` file is read when no other secret is given.
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        env = "CAIRN_DATA_DIR",
        default_value = "./cairn-data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,
}

/// Layout changes are staged, then committed together with `apply` as the next version.
#[derive(Debug, Subcommand)]
pub enum LayoutCommand {
    /// Print the layout, the staged changes and the joined nodes outside the ring.
    Show,
    /// Stage adding a joined node to the ring (or changing its zone or weight).
    Add {
        /// Node id (a unique prefix is enough).
        node_id: String,
        /// Failure zone (default: the zone the node joined with).
        #[arg(long)]
        zone: Option<String>,
        /// Relative capacity (default: the weight the node joined with).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        weight: Option<u32>,
    },
    /// Stage removing a node from the ring (with --wait: also apply, and drain it).
    Remove {
        /// Node id (a unique prefix is enough).
        node_id: String,
        /// Remove a node that is down (its data cannot be drained from it).
        #[arg(long)]
        force: bool,
        /// Apply the removal at once and wait, printing progress, until the transition
        /// retired: then the node holds nothing the cluster needs and can be stopped.
        #[arg(long)]
        wait: bool,
    },
    /// Stage a new weight (relative capacity) for a node of the ring.
    SetWeight {
        /// Node id (a unique prefix is enough).
        node_id: String,
        #[arg(value_parser = clap::value_parser!(u32).range(1..))]
        weight: u32,
    },
    /// Stage a new failure zone for a node of the ring.
    SetZone {
        /// Node id (a unique prefix is enough).
        node_id: String,
        zone: String,
    },
    /// Commit the staged changes (and replication factor) as the next layout version.
    Apply {
        /// New replication factor (at most the number of nodes in the layout).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        replication: Option<u32>,
    },
    /// Drop the staged changes.
    Revert,
    /// Pause the data movement of layout transitions (client requests go on).
    Pause,
    /// Resume the data movement of layout transitions.
    Resume,
    /// Show or set the cluster-wide limit on transition data movement per node.
    Rate {
        /// MiB/s (0 = unlimited), or `node` to use each node's --rebalance-rate-mib.
        #[arg(value_parser = parse_rate)]
        limit: Option<RateLimit>,
    },
    /// Follow the current transition until it retired: moved objects and bytes, rate, ETA.
    Watch {
        /// Seconds between progress lines.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
        interval: u64,
    },
}

impl LayoutCommand {
    /// Whether the verb runs until something happens in the cluster (no command timeout).
    pub fn waits(&self) -> bool {
        matches!(
            self,
            LayoutCommand::Watch { .. } | LayoutCommand::Remove { wait: true, .. }
        )
    }
}

/// The argument of `cairn layout rate`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateLimit {
    /// Each node's own `--rebalance-rate-mib`.
    PerNode,
    /// MiB/s for every node (0 = unlimited).
    MiB(u32),
}

fn parse_rate(s: &str) -> Result<RateLimit, String> {
    match s.trim() {
        "node" => Ok(RateLimit::PerNode),
        n => n
            .parse()
            .map(RateLimit::MiB)
            .map_err(|_| format!("{s:?} is neither a number of MiB/s nor `node`")),
    }
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an access key; prints `access_key_id=...` and `secret_access_key=...`.
    Create {
        /// A name to recognise the key by.
        name: String,
        /// Allow the key to create buckets.
        #[arg(long)]
        create_bucket: bool,
    },
    /// List access keys and their rights (never their secrets).
    List,
    /// Delete an access key.
    Delete {
        /// Access key id.
        id: String,
    },
    /// Grant rights on a bucket (no right flag = read, write and owner) or bucket creation.
    Allow(RightsArgs),
    /// Revoke rights on a bucket (no right flag = all of them) or bucket creation.
    Deny(RightsArgs),
}

#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("target").required(true).multiple(true)
    .args(["bucket", "create_bucket"])))]
pub struct RightsArgs {
    /// Access key id.
    pub id: String,
    /// Bucket name.
    #[arg(long)]
    pub bucket: Option<String>,
    /// Read objects and list the bucket.
    #[arg(long, requires = "bucket")]
    pub read: bool,
    /// Write and delete objects.
    #[arg(long, requires = "bucket")]
    pub write: bool,
    /// Administer the bucket (policies, CORS, website, deletion).
    #[arg(long, requires = "bucket")]
    pub owner: bool,
    /// The right to create buckets.
    #[arg(long)]
    pub create_bucket: bool,
}

impl RightsArgs {
    /// The bucket and the rights named on the command line (none named = all of them).
    pub fn bucket_rights(&self) -> Option<(&str, Rights)> {
        let bucket = self.bucket.as_deref()?;
        let named = Rights {
            read: self.read,
            write: self.write,
            owner: self.owner,
        };
        Some((bucket, if named.is_empty() { Rights::ALL } else { named }))
    }
}

#[derive(Debug, Subcommand)]
pub enum BucketCommand {
    /// Create a bucket (owned by no key: grant rights with `cairn key allow`); prints its id.
    Create {
        name: String,
        /// Region recorded on the bucket.
        #[arg(long, env = "CAIRN_REGION", default_value = "us-east-1")]
        region: String,
    },
    /// List buckets.
    List,
    /// Delete an empty bucket.
    Delete { name: String },
    /// Serve a bucket as a static website on the website endpoint (replacing its website
    /// configuration, as PutBucketWebsite does), or stop serving it with --disable.
    Website(WebsiteArgs),
}

#[derive(Debug, Clone, Args)]
pub struct WebsiteArgs {
    /// Bucket name.
    pub name: String,
    /// Index document served for `/` and `dir/` (e.g. index.html).
    #[arg(long, value_name = "SUFFIX", required_unless_present = "disable")]
    pub index: Option<String>,
    /// Document served with status 404 for missing keys (e.g. 404.html).
    #[arg(long, value_name = "KEY")]
    pub error: Option<String>,
    /// Document served with status 200 for missing paths without a file extension, so
    /// client-side routers of single-page apps work (e.g. index.html).
    #[arg(long, value_name = "KEY")]
    pub spa_fallback: Option<String>,
    /// Remove the bucket's website configuration.
    #[arg(long, conflicts_with_all = ["index", "error", "spa_fallback"])]
    pub disable: bool,
}

impl WebsiteArgs {
    /// The configuration to store; `None` for --disable.
    pub fn config(&self) -> Option<WebsiteConfig> {
        (!self.disable).then(|| WebsiteConfig {
            index_document: self.index.clone(),
            error_document: self.error.clone(),
            spa_fallback: self.spa_fallback.clone(),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("cairn").chain(args.iter().copied()))
    }

    fn rights_of(args: &[&str]) -> RightsArgs {
        match parse(args).unwrap().command {
            Command::Key {
                command: KeyCommand::Allow(r) | KeyCommand::Deny(r),
                ..
            } => r,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    fn website_of(args: &[&str]) -> Result<WebsiteArgs, clap::Error> {
        match parse(args)?.command {
            Command::Bucket {
                command: BucketCommand::Website(w),
                ..
            } => Ok(w),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn bucket_website_flags() {
        let w = website_of(&["bucket", "website", "b", "--index", "index.html"]).unwrap();
        let c = w.config().unwrap();
        assert_eq!(c.index_document.as_deref(), Some("index.html"));
        assert_eq!((c.error_document, c.spa_fallback), (None, None));
        let w = website_of(&[
            "bucket",
            "website",
            "b",
            "--index",
            "i.html",
            "--error",
            "404.html",
            "--spa-fallback",
            "app.html",
        ])
        .unwrap();
        let c = w.config().unwrap();
        assert_eq!(c.error_document.as_deref(), Some("404.html"));
        assert_eq!(c.spa_fallback.as_deref(), Some("app.html"));
        assert_eq!(
            website_of(&["bucket", "website", "b", "--disable"])
                .unwrap()
                .config(),
            None
        );
        assert!(website_of(&["bucket", "website", "b"]).is_err());
        assert!(website_of(&["bucket", "website", "b", "--disable", "--index", "i"]).is_err());
    }

    #[test]
    fn allow_without_right_flags_means_all_rights() {
        let r = rights_of(&["key", "allow", "GK1", "--bucket", "b"]);
        assert_eq!(r.bucket_rights(), Some(("b", Rights::ALL)));
        assert!(!r.create_bucket);
    }

    #[test]
    fn allow_with_some_right_flags_means_exactly_those() {
        let r = rights_of(&["key", "allow", "GK1", "--bucket", "b", "--read", "--write"]);
        let want = Rights {
            read: true,
            write: true,
            owner: false,
        };
        assert_eq!(r.bucket_rights(), Some(("b", want)));
        let r = rights_of(&["key", "deny", "GK1", "--bucket", "b", "--owner"]);
        let want = Rights {
            owner: true,
            ..Default::default()
        };
        assert_eq!(r.bucket_rights(), Some(("b", want)));
    }

    #[test]
    fn create_bucket_right_needs_no_bucket() {
        let r = rights_of(&["key", "allow", "GK1", "--create-bucket"]);
        assert!(r.create_bucket);
        assert_eq!(r.bucket_rights(), None);
        let r = rights_of(&["key", "deny", "GK1", "--create-bucket", "--bucket", "b"]);
        assert!(r.create_bucket);
        assert_eq!(r.bucket_rights(), Some(("b", Rights::ALL)));
    }

    #[test]
    fn allow_needs_a_target_and_right_flags_need_a_bucket() {
        assert!(parse(&["key", "allow", "GK1"]).is_err());
        assert!(parse(&["key", "allow", "GK1", "--read"]).is_err());
        assert!(parse(&["key", "allow", "GK1", "--create-bucket", "--read"]).is_err());
        assert!(parse(&["key", "allow", "--bucket", "b"]).is_err());
    }

    #[test]
    fn admin_connection_flags_are_accepted_after_the_verb() {
        let cli = parse(&["key", "create", "k", "--node", "10.0.0.1:9002"]).unwrap();
        let Command::Key { admin, command } = cli.command else {
            panic!()
        };
        assert_eq!(admin.node, "10.0.0.1:9002");
        assert!(matches!(
            command,
            KeyCommand::Create {
                create_bucket: false,
                ..
            }
        ));
        let cli = parse(&["status", "--node", "h:1"]).unwrap();
        let Command::Status(admin) = cli.command else {
            panic!()
        };
        assert_eq!(admin.node, "h:1");
        let cli = parse(&["--help"]);
        assert!(cli.is_err());
    }

    #[test]
    fn lists_split_on_commas() {
        let cli = parse(&["gateway", "--nodes", "a:1,b:2", "--nodes", "c:3"]).unwrap();
        let Command::Gateway(g) = cli.command else {
            panic!()
        };
        assert_eq!(g.nodes, ["a:1", "b:2", "c:3"]);
        assert!(parse(&["gateway"]).is_err(), "--nodes is required");
        let cli = parse(&[
            "node",
            "--data-dir",
            "d",
            "--join",
            "x:1,y:2",
            "--weight",
            "4",
        ])
        .unwrap();
        let Command::Node(n) = cli.command else {
            panic!()
        };
        assert_eq!(n.join, ["x:1", "y:2"]);
        assert_eq!((n.weight, n.replication), (4, 3));
        assert!(parse(&["node", "--data-dir", "d", "--weight", "0"]).is_err());
    }

    #[test]
    fn layout_verbs_parse() {
        let cli = parse(&["layout", "add", "abc", "--zone", "z1", "--weight", "2"]).unwrap();
        let Command::Layout { command, .. } = cli.command else {
            panic!()
        };
        assert!(matches!(
            command,
            LayoutCommand::Add { ref node_id, zone: Some(ref z), weight: Some(2) } if node_id == "abc" && z == "z1"
        ));
        let cli = parse(&["layout", "apply", "--replication", "3"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Layout {
                command: LayoutCommand::Apply {
                    replication: Some(3)
                },
                ..
            }
        ));
        assert!(parse(&["layout", "apply", "--replication", "0"]).is_err());
        assert!(parse(&["layout", "remove", "abc", "--force"]).is_ok());
        let cli = parse(&["layout", "remove", "abc", "--wait"]).unwrap();
        let Command::Layout { command, .. } = cli.command else {
            panic!()
        };
        assert!(command.waits());
        assert!(parse(&["layout", "set-weight", "abc", "2"]).is_ok());
        assert!(parse(&["layout", "set-weight", "abc", "0"]).is_err());
        assert!(parse(&["layout", "set-zone", "abc", "z9"]).is_ok());
        for (arg, want) in [
            ("5", Some(RateLimit::MiB(5))),
            ("0", Some(RateLimit::MiB(0))),
            ("node", Some(RateLimit::PerNode)),
        ] {
            let cli = parse(&["layout", "rate", arg]).unwrap();
            assert!(matches!(
                cli.command,
                Command::Layout { command: LayoutCommand::Rate { limit }, .. } if limit == want
            ));
        }
        assert!(parse(&["layout", "rate", "fast"]).is_err());
        assert!(parse(&["layout", "watch", "--interval", "1"]).is_ok());
    }

    #[test]
    fn server_defaults_follow_the_contract() {
        // Only meaningful without CAIRN_* overrides in the test environment.
        if std::env::vars().any(|(k, _)| k.starts_with("CAIRN_")) {
            return;
        }
        let Command::Server(s) = parse(&["server"]).unwrap().command else {
            panic!()
        };
        assert_eq!(s.data_dir, PathBuf::from("./cairn-data"));
        assert_eq!(s.gateway.s3_listen, "0.0.0.0:9000");
        assert_eq!(s.gateway.web_listen().as_deref(), Some("0.0.0.0:9001"));
        assert_eq!(s.rpc_listen, "0.0.0.0:9002");
        assert_eq!(s.http_listen, "0.0.0.0:9003");
        assert_eq!(s.gateway.region, "us-east-1");
        let Command::Server(s) = parse(&["server", "--web-listen", "off"]).unwrap().command else {
            panic!()
        };
        assert_eq!(s.gateway.web_listen(), None);
    }
}

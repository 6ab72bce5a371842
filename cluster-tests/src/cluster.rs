//! A multi-process cluster on loopback: N `cairn node` processes that bootstrap together
//! (`--bootstrap-expect N`) and one `cairn gateway`, sharing a cluster secret and a root key.
//! Every process listens on port 0 and reports its addresses on `listening NAME=ADDR` lines;
//! a restarted node gets the addresses of its previous run back.

use std::collections::HashMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::binary::{Profile, cairn_bin};
use crate::proc::{CmdOutput, run_with_timeout};
use crate::raw_http::http_get_status;
use crate::running::{LogTail, Running, relaunch};
use crate::server::{KeyPair, clear_cairn_env, set_env};

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const ADMIN_TIMEOUT: Duration = Duration::from_secs(60);

/// One `cairn` role process (node or gateway). SIGKILLed on drop.
pub struct Proc {
    label: String,
    bin: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log_path: PathBuf,
    proc: Running,
    listeners: HashMap<String, SocketAddr>,
}

impl Proc {
    /// Spawns `cairn ARGS` (with `CAIRN_*` from `env` only) logging to `log_path`, and waits
    /// for a `listening NAME=` line for each of `wanted`. `{NAME}` in an argument is replaced
    /// by the address of that listener in the previous run (or `127.0.0.1:0`).
    pub fn spawn(
        label: &str,
        bin: &Path,
        args: Vec<String>,
        env: Vec<(String, String)>,
        log_path: PathBuf,
        wanted: &[&str],
    ) -> Result<Proc, String> {
        let mut proc = Proc {
            label: label.to_string(),
            bin: bin.to_path_buf(),
            args,
            env,
            log_path,
            proc: Running::new(LogTail::default()),
            listeners: HashMap::new(),
        };
        proc.launch(wanted)?;
        Ok(proc)
    }

    fn launch(&mut self, wanted: &[&str]) -> Result<(), String> {
        let file = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .ok();
        self.proc.logs().set_file(file);
        let args: Vec<String> = self
            .args
            .iter()
            .map(
                |a| match a.strip_prefix('{').and_then(|a| a.strip_suffix('}')) {
                    Some(name) => self
                        .listeners
                        .get(name)
                        .map(|a| a.to_string())
                        .unwrap_or_else(|| "127.0.0.1:0".into()),
                    None => a.clone(),
                },
            )
            .collect();
        let mut cmd = Command::new(&self.bin);
        clear_cairn_env(&mut cmd);
        cmd.args(&args).envs(self.env.iter().map(|(k, v)| (k, v)));
        self.proc.logs().push(format!(
            "[harness] starting {} {}",
            self.label,
            args.join(" ")
        ));
        let rx = self
            .proc
            .spawn(cmd, None)
            .map_err(|e| format!("cannot spawn {:?}: {e}", self.bin))?;
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut seen = HashMap::new();
        while !wanted.iter().all(|n| seen.contains_key(*n)) {
            if let Some(status) = self.proc.exited() {
                return Err(format!(
                    "{} exited with {status} before listening",
                    self.label
                ));
            }
            if Instant::now() >= deadline {
                self.kill_9();
                return Err(format!(
                    "{} printed no listening lines for {wanted:?}",
                    self.label
                ));
            }
            if let Ok((name, addr)) = rx.recv_timeout(Duration::from_millis(100)) {
                seen.insert(name, addr);
            }
        }
        self.listeners = seen;
        Ok(())
    }

    /// The address of listener `name` (`rpc`, `http`, `s3`).
    pub fn addr(&self, name: &str) -> SocketAddr {
        self.listeners[name]
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        matches!(http_get_status(self.addr("http"), "/readyz"), Ok(200))
    }

    /// Waits until `/readyz` answers 200.
    pub fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        while !self.is_ready() {
            if let Some(status) = self.proc.exited() {
                return Err(format!("{} exited with {status} before ready", self.label));
            }
            if Instant::now() >= deadline {
                return Err(format!("{} not ready within {READY_TIMEOUT:?}", self.label));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    pub fn is_running(&mut self) -> bool {
        self.proc.is_running()
    }

    /// SIGKILL.
    pub fn kill_9(&mut self) {
        self.proc.kill_9();
    }

    /// Sends SIGTERM and returns at once (the process drains, then exits).
    pub fn terminate(&self) {
        self.proc.terminate();
    }

    /// Waits up to `limit` for the process to exit: its exit status, or `None` if it still
    /// runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        self.proc.wait_exit(limit)
    }

    /// Sets (`Some`) or removes (`None`) a variable of the process environment for its next
    /// restart.
    pub fn set_env(&mut self, key: &str, value: Option<&str>) {
        set_env(&mut self.env, key, value);
    }

    /// Starts the process again with the same arguments and listen addresses.
    pub fn restart(&mut self, wanted: &[&str]) -> Result<(), String> {
        self.kill_9();
        let logs = self.proc.logs().clone();
        relaunch(&logs, || self.launch(wanted))
    }

    /// The last lines the process printed.
    pub fn log_tail(&self) -> String {
        self.proc.logs().tail()
    }

    /// Whether any line printed so far (the whole log file) contains `needle`.
    pub fn log_contains(&self, needle: &str) -> bool {
        std::fs::read_to_string(&self.log_path).is_ok_and(|s| s.contains(needle))
    }
}

/// How to start a cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    pub nodes: usize,
    /// Extra environment of every node (e.g. `CAIRN_VOTER_TIMEOUT_SECS`).
    pub node_env: Vec<(String, String)>,
    /// Extra environment of the gateways and admin commands (e.g. `CAIRN_GRPC_TLS_CA`).
    pub client_env: Vec<(String, String)>,
    pub profile: Profile,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            nodes: 3,
            node_env: Vec::new(),
            client_env: Vec::new(),
            profile: Profile::Debug,
        }
    }
}

/// N nodes bootstrapped with `--bootstrap-expect N` plus one gateway.
pub struct Cluster {
    bin: PathBuf,
    root: Option<TempDir>,
    opts: ClusterOptions,
    secret: String,
    key: KeyPair,
    /// Nodes in start order; `None` once removed.
    pub nodes: Vec<Proc>,
    pub gateway: Proc,
}

const NODE_LISTENERS: &[&str] = &["rpc", "http"];

impl Cluster {
    /// Starts `n` nodes and a gateway; panics with the logs if they are not ready in time.
    pub fn start(n: usize) -> Cluster {
        Self::start_with(ClusterOptions {
            nodes: n,
            ..Default::default()
        })
    }

    /// Starts `n` nodes with extra environment `node_env` (e.g. a short anti-entropy
    /// interval) and a gateway.
    pub fn start_with_env(n: usize, node_env: &[(&str, &str)]) -> Cluster {
        Self::start_with(ClusterOptions {
            nodes: n,
            node_env: node_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        })
    }

    pub fn start_with(opts: ClusterOptions) -> Cluster {
        let bin = cairn_bin(opts.profile);
        let root = tempfile::Builder::new()
            .prefix("cairn-cluster-")
            .tempdir()
            .expect("temp dir");
        let key = KeyPair::random("GKTEST");
        let secret = hex::encode(rand::random::<[u8; 32]>());
        let expect = opts.nodes.to_string();
        let mut nodes: Vec<Proc> = Vec::new();
        for i in 0..opts.nodes {
            // The first node waits to be found; the others find it (and each other through it).
            let join: Vec<String> = nodes
                .first()
                .map(|n| n.addr("rpc").to_string())
                .into_iter()
                .collect();
            let extra = ["--bootstrap-expect".to_string(), expect.clone()];
            let node = spawn_node(
                &bin,
                root.path(),
                i,
                &join,
                &extra,
                &secret,
                &key,
                &opts.node_env,
            )
            .unwrap_or_else(|e| panic!("{e}"));
            nodes.push(node);
        }
        for node in &mut nodes {
            if let Err(e) = node.wait_ready() {
                let logs: Vec<String> = nodes
                    .iter()
                    .map(|n| format!("--- {} ---\n{}", n.label, n.log_tail()))
                    .collect();
                panic!("{e}\n{}", logs.join("\n"));
            }
        }
        let rpcs: Vec<String> = nodes.iter().map(|n| n.addr("rpc").to_string()).collect();
        let gateway = spawn_gateway(
            &bin,
            root.path(),
            "gateway",
            &rpcs,
            &secret,
            &opts.client_env,
        );
        Cluster {
            bin,
            root: Some(root),
            opts,
            secret,
            key,
            nodes,
            gateway,
        }
    }

    pub fn root_key(&self) -> &KeyPair {
        &self.key
    }

    pub fn cluster_secret(&self) -> &str {
        &self.secret
    }

    /// aws-sdk-s3 client through the gateway with the root key.
    pub fn client(&self) -> aws_sdk_s3::Client {
        gateway_client(&self.gateway, &self.key)
    }

    /// aws-sdk-s3 client through the gateway with another key.
    pub fn client_for(&self, key: &KeyPair) -> aws_sdk_s3::Client {
        gateway_client(&self.gateway, key)
    }

    /// Starts another gateway against the running nodes (for tests through two gateways);
    /// ready when returned, SIGKILLed when dropped.
    pub fn spawn_gateway(&mut self) -> Proc {
        let rpcs: Vec<String> = self
            .nodes
            .iter_mut()
            .filter_map(|n| n.is_running().then(|| n.addr("rpc").to_string()))
            .collect();
        let root = self.root.as_ref().expect("root").path();
        let n = (1..)
            .find(|n| !root.join(format!("gateway{n}.log")).exists())
            .expect("a free log name");
        let label = format!("gateway{n}");
        spawn_gateway(
            &self.bin,
            root,
            &label,
            &rpcs,
            &self.secret,
            &self.opts.client_env,
        )
    }

    /// Starts a second gateway and creates a fresh bucket (`prefix-<random>`): returns that
    /// gateway (keep it alive), a client through each gateway and the bucket name.
    pub async fn two_gateways_and_bucket(
        &mut self,
        prefix: &str,
    ) -> (Proc, [aws_sdk_s3::Client; 2], String) {
        let second = self.spawn_gateway();
        let clients = [self.client(), self.client_via(&second)];
        let bucket = crate::objects::new_bucket(&clients[0], prefix).await;
        (second, clients, bucket)
    }

    /// aws-sdk-s3 client through `gateway` with the root key.
    pub fn client_via(&self, gateway: &Proc) -> aws_sdk_s3::Client {
        gateway_client(gateway, &self.key)
    }

    /// gRPC address of node `i`.
    pub fn rpc(&self, i: usize) -> String {
        self.nodes[i].addr("rpc").to_string()
    }

    /// Starts another node that joins through the running nodes (not waiting for it).
    /// `secret` overrides the cluster secret (a process without it must not get in).
    pub fn spawn_joining_node(&mut self, extra_args: &[&str], secret: Option<&str>) -> usize {
        let mut join = Vec::new();
        for node in &mut self.nodes {
            if node.is_running() {
                join.push(node.addr("rpc").to_string());
            }
        }
        let i = self.nodes.len();
        let extra: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        let node = spawn_node(
            &self.bin,
            self.root.as_ref().expect("root").path(),
            i,
            &join,
            &extra,
            secret.unwrap_or(&self.secret),
            &self.key,
            &self.opts.node_env,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        self.nodes.push(node);
        i
    }

    /// Restarts node `i` on its data dir and addresses and waits until it is ready.
    pub fn restart_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.restart(NODE_LISTENERS)
            .unwrap_or_else(|e| panic!("{e}\n{}", node.log_tail()));
        node.wait_ready()
            .unwrap_or_else(|e| panic!("{e}\n{}", node.log_tail()));
    }

    /// Runs `cairn ARGS... --node RPC(i)` with the cluster secret.
    pub fn admin(&self, i: usize, args: &[&str]) -> CmdOutput {
        admin_command_with_env(
            &self.bin,
            &self.rpc(i),
            &self.secret,
            &self.opts.client_env,
            args,
        )
    }

    /// [`Cluster::admin`] that panics unless it exits 0; returns stdout.
    #[track_caller]
    pub fn admin_ok(&self, i: usize, args: &[&str]) -> String {
        self.admin(i, args)
            .expect_ok(&format!("cairn {}", args.join(" ")), || None)
    }

    /// `cairn key create NAME` through node `i` → the new key.
    #[track_caller]
    pub fn create_key(&self, i: usize, name: &str) -> KeyPair {
        KeyPair::parse_created(&self.admin_ok(i, &["key", "create", name]))
    }

    /// The uuid of node `i` (from its data dir).
    pub fn node_id(&self, i: usize) -> String {
        std::fs::read_to_string(self.data_dir(i).join("node_id"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// Index of the node that node `asked` sees as the Raft leader (from `cairn status`).
    pub fn leader(&self, asked: usize) -> Option<usize> {
        let status = self.admin_ok(asked, &["status"]);
        let raft = status_field(&status, "raft:");
        let leader = raft
            .rsplit("leader ")
            .next()?
            .trim_end_matches(')')
            .to_string();
        (0..self.nodes.len()).find(|i| self.node_id(*i) == leader)
    }

    /// Data dir of node `i`.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.root
            .as_ref()
            .expect("root")
            .path()
            .join(format!("node{i}"))
    }

    /// Everything the processes printed (for failure messages).
    pub fn logs(&self) -> String {
        let mut out: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("--- {} ---\n{}", n.label, n.log_tail()))
            .collect();
        out.push(format!("--- gateway ---\n{}", self.gateway.log_tail()));
        out.join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill_9();
        }
        self.gateway.kill_9();
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        if std::env::var_os("CAIRN_TEST_KEEP_DATA").is_some()
            && let Some(root) = self.root.take()
        {
            eprintln!("keeping {}", root.keep().display());
        }
    }
}

/// aws-sdk-s3 client through `gateway` with `key`.
fn gateway_client(gateway: &Proc, key: &KeyPair) -> aws_sdk_s3::Client {
    crate::s3::s3_client(
        &format!("http://{}", gateway.addr("s3")),
        &key.id,
        &key.secret,
    )
}

/// Runs the admin command `bin ARGS... --node NODE` with cluster secret `secret`.
pub fn admin_command(bin: &Path, node: &str, secret: &str, args: &[&str]) -> CmdOutput {
    admin_command_with_env(bin, node, secret, &[], args)
}

/// [`admin_command`] with extra environment `env`.
pub fn admin_command_with_env(
    bin: &Path,
    node: &str,
    secret: &str,
    env: &[(String, String)],
    args: &[&str],
) -> CmdOutput {
    let mut cmd = Command::new(bin);
    clear_cairn_env(&mut cmd);
    cmd.args(args)
        .arg("--node")
        .arg(node)
        .env("CAIRN_CLUSTER_SECRET", secret)
        .envs(env.iter().map(|(k, v)| (k, v)));
    run_with_timeout(&mut cmd, ADMIN_TIMEOUT).expect("run cairn admin command")
}

/// The value after `name` on the first line of `cairn status` output starting with it.
pub fn status_field(status: &str, name: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no `{name}` in status:\n{status}"))
}

/// Spawns `cairn gateway --nodes RPCS` (log `LABEL.log`) and waits until it is ready.
fn spawn_gateway(
    bin: &Path,
    root: &Path,
    label: &str,
    rpcs: &[String],
    secret: &str,
    extra_env: &[(String, String)],
) -> Proc {
    let args = [
        "gateway",
        "--nodes",
        &rpcs.join(","),
        "--s3-listen",
        "{s3}",
        "--web-listen",
        "off",
        "--http-listen",
        "{http}",
    ];
    let mut env = vec![("CAIRN_CLUSTER_SECRET".to_string(), secret.to_string())];
    env.extend_from_slice(extra_env);
    let mut gateway = Proc::spawn(
        label,
        bin,
        args.iter().map(|s| s.to_string()).collect(),
        env,
        root.join(format!("{label}.log")),
        &["s3", "http"],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    gateway
        .wait_ready()
        .unwrap_or_else(|e| panic!("{e}\n{}", gateway.log_tail()));
    gateway
}

/// Spawns `cairn node` number `i` (zone `z{i}`) and waits for its listening lines.
#[allow(clippy::too_many_arguments)]
fn spawn_node(
    bin: &Path,
    root: &Path,
    i: usize,
    join: &[String],
    extra: &[String],
    secret: &str,
    key: &KeyPair,
    env: &[(String, String)],
) -> Result<Proc, String> {
    let data_dir = root.join(format!("node{i}"));
    let mut args: Vec<String> = ["node", "--data-dir"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(data_dir.display().to_string());
    args.extend(
        ["--rpc-listen", "{rpc}", "--http-listen", "{http}", "--zone"]
            .iter()
            .map(|s| s.to_string()),
    );
    args.push(format!("z{i}"));
    if !join.is_empty() {
        args.push("--join".into());
        args.push(join.join(","));
    }
    args.extend(extra.iter().cloned());
    let mut env = env.to_vec();
    env.push(("CAIRN_CLUSTER_SECRET".into(), secret.into()));
    env.push(("CAIRN_ACCESS_KEY_ID".into(), key.id.clone()));
    env.push(("CAIRN_SECRET_ACCESS_KEY".into(), key.secret.clone()));
    Proc::spawn(
        &format!("node{i}"),
        bin,
        args,
        env,
        root.join(format!("node{i}.log")),
        NODE_LISTENERS,
    )
}

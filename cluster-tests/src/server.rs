//! One `cairn server` process (node + gateway) on loopback.

use std::collections::HashMap;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

use rand::Rng;
use tempfile::TempDir;

use crate::binary::{Profile, cairn_bin};
use crate::cluster::admin_command;
use crate::proc::CmdOutput;
use crate::raw_http::http_get_status;
use crate::running::{LogTail, Running, relaunch};
use crate::s3::{RawResponse, signed_request};

const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// An access key id and its secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPair {
    pub id: String,
    pub secret: String,
}

impl KeyPair {
    /// A fresh key: a 20-character id starting with `prefix`, a 40-character secret.
    pub fn random(prefix: &str) -> KeyPair {
        KeyPair {
            id: format!(
                "{prefix}{}",
                random_token(
                    20usize.saturating_sub(prefix.len()),
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                )
            ),
            secret: random_token(
                40,
                b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
            ),
        }
    }

    /// The key `cairn key create` printed (`access_key_id=` / `secret_access_key=` lines).
    #[track_caller]
    pub fn parse_created(out: &str) -> KeyPair {
        let field = |name: &str| {
            out.lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| panic!("`cairn key create` printed no `{name}` line:\n{out}"))
        };
        KeyPair {
            id: field("access_key_id="),
            secret: field("secret_access_key="),
        }
    }
}

/// How to start a server.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Which build of `cairn` to run (`CAIRN_BIN` overrides both).
    pub profile: Profile,
    /// Extra arguments after `cairn server ...`.
    pub extra_args: Vec<String>,
    /// Extra environment for the server process.
    pub env: Vec<(String, String)>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            profile: Profile::Debug,
            extra_args: Vec::new(),
            env: Vec::new(),
        }
    }
}

/// Listener addresses printed by the server (`listening NAME=ADDR`).
#[derive(Clone, Copy, Debug)]
pub struct Addrs {
    pub s3: SocketAddr,
    pub web: Option<SocketAddr>,
    pub rpc: SocketAddr,
    pub http: SocketAddr,
}

/// A running `cairn server` with its own temp data dir, root key and cluster secret.
/// Killed (SIGKILL) and its temp dir removed on drop.
pub struct Server {
    bin: PathBuf,
    opts: ServerOptions,
    root: Option<TempDir>,
    data_dir: PathBuf,
    proc: Running,
    addrs: Addrs,
    key: KeyPair,
    cluster_secret: String,
}

impl Server {
    /// Starts a debug-build server on a fresh temp data dir. Panics (with the server's log
    /// tail) if it is not ready within 30 s.
    pub fn start() -> Server {
        Self::start_with(ServerOptions::default())
    }

    /// One server for all the tests of a test binary that ask for it: started by the first,
    /// killed (and its temp dir removed) when the binary exits.
    pub fn shared() -> &'static Server {
        static SERVER: OnceLock<Server> = OnceLock::new();
        SERVER.get_or_init(Server::start)
    }

    pub fn start_with(opts: ServerOptions) -> Server {
        let bin = cairn_bin(opts.profile);
        let root = tempfile::Builder::new()
            .prefix("cairn-test-")
            .tempdir()
            .expect("create temp dir");
        let data_dir = root.path().join("data");
        std::fs::create_dir_all(&data_dir).expect("create data dir");
        let log = File::create(root.path().join("server.log")).ok();
        let mut server = Server {
            bin,
            opts,
            root: Some(root),
            data_dir,
            proc: Running::new(LogTail::new(log)),
            addrs: Addrs {
                s3: loopback0(),
                web: None,
                rpc: loopback0(),
                http: loopback0(),
            },
            key: KeyPair::random("GKTEST"),
            cluster_secret: hex::encode(rand::random::<[u8; 32]>()),
        };
        server.launch(false);
        server
    }

    /// `http://127.0.0.1:PORT` of the S3 endpoint.
    pub fn s3_url(&self) -> String {
        format!("http://{}", self.addrs.s3)
    }

    /// `http://127.0.0.1:PORT` of the health/metrics endpoint.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addrs.http)
    }

    pub fn addrs(&self) -> Addrs {
        self.addrs
    }

    /// The key given through `CAIRN_ACCESS_KEY_ID`/`CAIRN_SECRET_ACCESS_KEY` (may create
    /// buckets).
    pub fn root_key(&self) -> &KeyPair {
        &self.key
    }

    pub fn cluster_secret(&self) -> &str {
        &self.cluster_secret
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// aws-sdk-s3 client with the root key.
    pub fn client(&self) -> aws_sdk_s3::Client {
        crate::s3::s3_client(&self.s3_url(), &self.key.id, &self.key.secret)
    }

    /// aws-sdk-s3 client with another key.
    pub fn client_for(&self, key: &KeyPair) -> aws_sdk_s3::Client {
        crate::s3::s3_client(&self.s3_url(), &key.id, &key.secret)
    }

    /// `http://127.0.0.1:PORT/...` of `path_and_query` on the S3 endpoint (for hand-made
    /// requests, e.g. anonymous ones with [`crate::raw_request`]).
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.s3_url())
    }

    /// Sends a request signed with the root key; `path_and_query` is already URL-encoded.
    pub async fn signed(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> RawResponse {
        signed_request(method, &self.url(path_and_query), headers, body, &self.key).await
    }

    /// Runs the admin CLI: `cairn ARGS... --node RPC` with the cluster secret.
    pub fn admin(&self, args: &[&str]) -> CmdOutput {
        admin_command(
            &self.bin,
            &self.addrs.rpc.to_string(),
            &self.cluster_secret,
            args,
        )
    }

    /// Like [`Server::admin`] but panics unless it exits 0; returns stdout.
    #[track_caller]
    pub fn admin_ok(&self, args: &[&str]) -> String {
        self.admin(args)
            .expect_ok(&format!("cairn {}", args.join(" ")), || None)
    }

    /// `cairn key create NAME` → the new key.
    #[track_caller]
    pub fn create_key(&self, name: &str) -> KeyPair {
        KeyPair::parse_created(&self.admin_ok(&["key", "create", name]))
    }

    /// Process id of the running server.
    pub fn pid(&self) -> u32 {
        self.proc.pid().expect("server is not running")
    }

    /// Peak resident set size (VmHWM) of the server process, in bytes.
    pub fn peak_rss_bytes(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM:") * 1024
    }

    /// Current resident set size (VmRSS) of the server process, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        proc_status_kib(self.pid(), "VmRSS:") * 1024
    }

    /// The last lines the server printed (stdout and stderr).
    pub fn log_tail(&self) -> String {
        self.proc.logs().tail()
    }

    /// SIGKILL, no chance to flush anything.
    pub fn kill_9(&mut self) {
        self.proc.kill_9();
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub fn stop(&mut self) {
        self.proc.stop(Duration::from_secs(10));
    }

    /// Sends SIGTERM and returns at once (the server drains, then exits; see
    /// [`Server::wait_exit`]).
    pub fn terminate(&self) {
        self.proc.terminate();
    }

    /// Waits up to `limit` for the process to exit: its exit status, or `None` if it still
    /// runs. Once it has exited, [`Server::restart`] starts it again.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        self.proc.wait_exit(limit)
    }

    /// Sets (`Some`) or removes (`None`) a variable of the server's environment for its
    /// next [`Server::restart`].
    pub fn set_env(&mut self, key: &str, value: Option<&str>) {
        set_env(&mut self.opts.env, key, value);
    }

    /// Stops the server if it runs (SIGTERM) and starts it again on the same data dir and the
    /// same listen addresses.
    pub fn restart(&mut self) {
        self.stop();
        self.launch(true);
    }

    /// Starts the process and waits until it is ready. With `same_addrs` it listens on the
    /// addresses of the previous run, otherwise on fresh ports.
    fn launch(&mut self, same_addrs: bool) {
        let launched = if same_addrs {
            let logs = self.proc.logs().clone();
            relaunch(&logs, || self.try_launch(true))
        } else {
            self.try_launch(false)
        };
        if let Err(e) = launched {
            panic!(
                "cairn server did not become ready: {e}\ndata dir: {}\n--- server output (tail) ---\n{}",
                self.data_dir.display(),
                self.log_tail()
            );
        }
    }

    fn try_launch(&mut self, same_addrs: bool) -> Result<(), String> {
        let addr = |a: Option<SocketAddr>| match a {
            Some(a) if same_addrs => a.to_string(),
            _ => "127.0.0.1:0".to_string(),
        };
        let mut cmd = Command::new(&self.bin);
        clear_cairn_env(&mut cmd);
        cmd.arg("server")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--s3-listen")
            .arg(addr(Some(self.addrs.s3)))
            .arg("--web-listen")
            .arg(addr(self.addrs.web))
            .arg("--rpc-listen")
            .arg(addr(Some(self.addrs.rpc)))
            .arg("--http-listen")
            .arg(addr(Some(self.addrs.http)))
            .args(&self.opts.extra_args)
            .env("CAIRN_ACCESS_KEY_ID", &self.key.id)
            .env("CAIRN_SECRET_ACCESS_KEY", &self.key.secret)
            .env("CAIRN_CLUSTER_SECRET", &self.cluster_secret)
            .envs(self.opts.env.iter().map(|(k, v)| (k, v)));
        self.proc
            .logs()
            .push(format!("[harness] starting {:?}", cmd));
        let dir = self.root.as_ref().map(|r| r.path().to_path_buf());
        let rx = self
            .proc
            .spawn(cmd, dir)
            .map_err(|e| format!("cannot spawn {:?}: {e}", self.bin))?;

        let deadline = Instant::now() + READY_TIMEOUT;
        let mut seen: HashMap<String, SocketAddr> = HashMap::new();
        let fail = |this: &mut Server, why: String| {
            this.kill_9();
            Err(why)
        };
        // 1. the listener lines
        while !["s3", "rpc", "http"].iter().all(|n| seen.contains_key(*n)) {
            if let Some(status) = self.proc.exited() {
                return fail(
                    self,
                    format!("process exited with {status} before listening"),
                );
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return fail(
                    self,
                    format!(
                        "no `listening s3=/rpc=/http=` lines on stdout within {READY_TIMEOUT:?}"
                    ),
                );
            }
            match rx.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok((name, addr)) => {
                    seen.insert(name, addr);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        let http_addr = seen["http"];
        // 2. /readyz
        loop {
            if let Some(status) = self.proc.exited() {
                return fail(self, format!("process exited with {status} before ready"));
            }
            let last = match http_get_status(http_addr, "/readyz") {
                Ok(200) => break,
                Ok(code) => format!("GET /readyz -> {code}"),
                Err(e) => format!("GET /readyz -> {e}"),
            };
            if Instant::now() >= deadline {
                return fail(
                    self,
                    format!("not ready within {READY_TIMEOUT:?} (last: {last})"),
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        while let Ok((name, addr)) = rx.try_recv() {
            seen.insert(name, addr);
        }
        self.addrs = Addrs {
            s3: seen["s3"],
            web: seen.get("web").copied().or(self.addrs.web),
            rpc: seen["rpc"],
            http: http_addr,
        };
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill_9();
        if std::thread::panicking() {
            eprintln!(
                "--- cairn server output (tail), data dir {} ---\n{}",
                self.data_dir.display(),
                self.log_tail()
            );
        }
        if std::env::var_os("CAIRN_TEST_KEEP_DATA").is_some()
            && let Some(root) = self.root.take()
        {
            eprintln!("keeping {}", root.keep().display());
        }
    }
}

fn loopback0() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
}

pub(crate) fn random_token(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

/// Sets (`Some`) or removes (`None`) `key` in a process environment list.
pub(crate) fn set_env(env: &mut Vec<(String, String)>, key: &str, value: Option<&str>) {
    env.retain(|(k, _)| k != key);
    if let Some(value) = value {
        env.push((key.to_string(), value.to_string()));
    }
}

/// Inherited `CAIRN_*` variables would change the flags of the process under test.
pub(crate) fn clear_cairn_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CAIRN_") {
            cmd.env_remove(k);
        }
    }
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

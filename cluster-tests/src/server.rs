//! One `cairn server` process (node + gateway) on loopback.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use tempfile::TempDir;

use crate::binary::{Profile, cairn_bin};
use crate::proc::{
    CmdOutput, register_live, run_with_timeout, sigterm, spawn_tied, unregister_live, wait_exit,
};

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const ADMIN_TIMEOUT: Duration = Duration::from_secs(60);
const LOG_TAIL_LINES: usize = 200;

/// An access key id and its secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPair {
    pub id: String,
    pub secret: String,
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

pub(crate) type LogTail = Arc<Mutex<(VecDeque<String>, Option<File>)>>;

/// A running `cairn server` with its own temp data dir, root key and cluster secret.
/// Killed (SIGKILL) and its temp dir removed on drop.
pub struct Server {
    bin: PathBuf,
    opts: ServerOptions,
    root: Option<TempDir>,
    data_dir: PathBuf,
    child: Option<Child>,
    addrs: Addrs,
    key: KeyPair,
    cluster_secret: String,
    logs: LogTail,
}

impl Server {
    /// Starts a debug-build server on a fresh temp data dir. Panics (with the server's log
    /// tail) if it is not ready within 30 s.
    pub fn start() -> Server {
        Self::start_with(ServerOptions::default())
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
        let key = KeyPair {
            id: format!(
                "GKTEST{}",
                random_token(14, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
            ),
            secret: random_token(
                40,
                b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
            ),
        };
        let mut server = Server {
            bin,
            opts,
            root: Some(root),
            data_dir,
            child: None,
            addrs: Addrs {
                s3: loopback0(),
                web: None,
                rpc: loopback0(),
                http: loopback0(),
            },
            key,
            cluster_secret: hex::encode(rand::random::<[u8; 32]>()),
            logs: Arc::new(Mutex::new((VecDeque::new(), log))),
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

    /// Sends a request signed with the root key; `path_and_query` is already URL-encoded.
    pub async fn signed(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> crate::s3::RawResponse {
        crate::s3::signed_request(
            method,
            &format!("{}{}", self.s3_url(), path_and_query),
            headers,
            body,
            &self.key,
        )
        .await
    }

    /// Sends an anonymous request; `path_and_query` is already URL-encoded.
    pub async fn anonymous(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> crate::s3::RawResponse {
        crate::s3::raw_request(
            method,
            &format!("{}{}", self.s3_url(), path_and_query),
            headers,
            body,
        )
        .await
    }

    /// Runs the admin CLI: `cairn ARGS... --node RPC` with the cluster secret.
    pub fn admin(&self, args: &[&str]) -> CmdOutput {
        let mut cmd = Command::new(&self.bin);
        clear_cairn_env(&mut cmd);
        let rpc = self.addrs.rpc.to_string();
        cmd.args(args)
            .arg("--node")
            .arg(&rpc)
            .env("CAIRN_CLUSTER_SECRET", &self.cluster_secret);
        run_with_timeout(&mut cmd, ADMIN_TIMEOUT).expect("run cairn admin command")
    }

    /// Like [`Server::admin`] but panics unless it exits 0; returns stdout.
    #[track_caller]
    pub fn admin_ok(&self, args: &[&str]) -> String {
        let out = self.admin(args);
        assert!(
            out.success(),
            "`cairn {}` failed ({}):\nstdout:\n{}\nstderr:\n{}",
            args.join(" "),
            out.status_text(),
            out.stdout,
            out.stderr
        );
        out.stdout
    }

    /// `cairn key create NAME` → the new key (parsed from `access_key_id=`/`secret_access_key=`).
    #[track_caller]
    pub fn create_key(&self, name: &str) -> KeyPair {
        let out = self.admin_ok(&["key", "create", name]);
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

    /// Process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is not running").id()
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
        let logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        logs.0.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// SIGKILL, no chance to flush anything.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            unregister_live(child.id());
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unregister_live(child.id());
            // SAFETY: signalling our own child.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and returns at once (the server drains, then exits; see
    /// [`Server::wait_exit`]).
    pub fn terminate(&self) {
        sigterm(self.child.as_ref().expect("server is not running"));
    }

    /// Waits up to `limit` for the process to exit: its exit status, or `None` if it still
    /// runs. Once it has exited, [`Server::restart`] starts it again.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        wait_exit(&mut self.child, limit)
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
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_launch(same_addrs) {
                Ok(()) => return,
                // A port of the previous run may still be held for a moment.
                Err(e) if same_addrs && attempt < 5 => {
                    self.log(&format!("[harness] restart attempt {attempt} failed: {e}"));
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => panic!(
                    "cairn server did not become ready: {e}\ndata dir: {}\n--- server output (tail) ---\n{}",
                    self.data_dir.display(),
                    self.log_tail()
                ),
            }
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
            .envs(self.opts.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.log(&format!("[harness] starting {:?}", cmd));
        let mut child = spawn_tied(cmd).map_err(|e| format!("cannot spawn {:?}: {e}", self.bin))?;
        register_live(
            child.id(),
            self.root.as_ref().map(|r| r.path().to_path_buf()),
        );
        let (tx, rx) = mpsc::channel();
        pump(
            child.stdout.take().expect("stdout"),
            self.logs.clone(),
            Some(tx),
        );
        pump(
            child.stderr.take().expect("stderr"),
            self.logs.clone(),
            None,
        );
        self.child = Some(child);

        let deadline = Instant::now() + READY_TIMEOUT;
        let mut seen: HashMap<String, SocketAddr> = HashMap::new();
        let fail = |this: &mut Server, why: String| {
            this.kill_9();
            Err(why)
        };
        // 1. the listener lines
        while !["s3", "rpc", "http"].iter().all(|n| seen.contains_key(*n)) {
            if let Some(status) = self.exited() {
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
            if let Some(status) = self.exited() {
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

    fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            _ => None,
        }
    }

    fn log(&self, line: &str) {
        push_log(&self.logs, line.to_string());
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

/// Inherited `CAIRN_*` variables would change the flags of the process under test.
/// Sets (`Some`) or removes (`None`) `key` in a process environment list.
pub(crate) fn set_env(env: &mut Vec<(String, String)>, key: &str, value: Option<&str>) {
    env.retain(|(k, _)| k != key);
    if let Some(value) = value {
        env.push((key.to_string(), value.to_string()));
    }
}

pub(crate) fn clear_cairn_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CAIRN_") {
            cmd.env_remove(k);
        }
    }
}

pub(crate) fn push_log(logs: &LogTail, line: String) {
    let mut logs = logs.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(f) = logs.1.as_mut() {
        let _ = writeln!(f, "{line}");
    }
    if logs.0.len() >= LOG_TAIL_LINES {
        logs.0.pop_front();
    }
    logs.0.push_back(line);
}

/// Copies a pipe into the log tail; on stdout also reports `listening NAME=ADDR` lines.
pub(crate) fn pump(
    r: impl Read + Send + 'static,
    logs: LogTail,
    listeners: Option<mpsc::Sender<(String, SocketAddr)>>,
) {
    std::thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(&buf).trim_end().to_string();
            if let Some(tx) = &listeners
                && let Some(rest) = line.trim().strip_prefix("listening ")
                && let Some((name, addr)) = rest.split_once('=')
                && let Ok(mut addr) = addr.trim().parse::<SocketAddr>()
            {
                if addr.ip().is_unspecified() {
                    addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
                }
                let _ = tx.send((name.trim().to_string(), addr));
            }
            push_log(&logs, line);
        }
    });
}

/// Minimal blocking HTTP/1.1 GET returning the status code.
pub(crate) fn http_get_status(addr: SocketAddr, path: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))
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

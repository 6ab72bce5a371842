//! A SeaweedFS `weed mini` process (master, volume, filer and S3 in one process) on loopback,
//! for comparison benchmarks. Every port is picked free, the data lives in a temp dir, and
//! the process is killed (and the dir removed) on drop or when this process dies.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::running::{LogTail, Running};
use crate::server::KeyPair;

/// How long `weed mini` may take until its S3 API answers.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// A running `weed mini`.
pub struct Weed {
    /// Declared before `root`: the process is killed before its dir is removed.
    proc: Running,
    root: TempDir,
    s3: SocketAddr,
    key: KeyPair,
}

/// `n` distinct free loopback ports (all bound at once, then released).
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    Ok(listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<Vec<_>>>()?)
}

/// Whether `bin` (a name looked up in `PATH`, or a path) is an executable file.
pub fn weed_available(bin: &str) -> bool {
    let is_file = |p: &Path| p.is_file();
    if bin.contains('/') {
        return is_file(Path::new(bin));
    }
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| is_file(&dir.join(bin))))
        .unwrap_or(false)
}

impl Weed {
    /// Starts `bin mini` with fresh credentials and waits (at most 90 s) until its S3 API
    /// answers a signed ListBuckets.
    pub async fn start(bin: &str) -> Result<Weed> {
        let root = tempfile::Builder::new().prefix("weed-bench-").tempdir()?;
        let data = root.path().join("data");
        std::fs::create_dir_all(&data)?;
        let p = free_ports(10)?;
        let key = KeyPair::random("WEEDBENCH");
        let mut cmd = Command::new(bin);
        cmd.arg("mini")
            .arg(format!("-dir={}", data.display()))
            .args([
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-admin.ui=false",
                "-webdav=false",
                "-master.telemetry=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
            ])
            .arg(format!("-master.port={}", p[0]))
            .arg(format!("-master.port.grpc={}", p[1]))
            .arg(format!("-volume.port={}", p[2]))
            .arg(format!("-volume.port.grpc={}", p[3]))
            .arg(format!("-filer.port={}", p[4]))
            .arg(format!("-filer.port.grpc={}", p[5]))
            .arg(format!("-s3.port={}", p[6]))
            .arg(format!("-s3.port.grpc={}", p[7]))
            .arg(format!("-admin.port={}", p[8]))
            .arg(format!("-admin.port.grpc={}", p[9]))
            .current_dir(root.path())
            .env("AWS_ACCESS_KEY_ID", &key.id)
            .env("AWS_SECRET_ACCESS_KEY", &key.secret);
        let log = std::fs::File::create(root.path().join("weed.log")).ok();
        let mut proc = Running::new(LogTail::new(log));
        proc.spawn(cmd, Some(root.path().to_path_buf()))
            .with_context(|| format!("cannot start `{bin} mini`"))?;
        let mut weed = Weed {
            proc,
            root,
            s3: SocketAddr::from(([127, 0, 0, 1], p[6])),
            key,
        };
        weed.wait_ready().await?;
        Ok(weed)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let client = crate::s3::s3_client_with_timeout(
            &self.s3_url(),
            &self.key.id,
            &self.key.secret,
            Duration::from_secs(5),
        );
        loop {
            if let Some(status) = self.proc.exited() {
                bail!(
                    "weed mini exited with {status} before ready:\n{}",
                    self.log_tail()
                );
            }
            let last = match client.list_buckets().send().await {
                Ok(_) => return Ok(()),
                Err(e) => aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
            };
            if Instant::now() >= deadline {
                bail!(
                    "weed mini not ready within {READY_TIMEOUT:?} (last: {last}):\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `http://127.0.0.1:PORT` of the S3 API.
    pub fn s3_url(&self) -> String {
        format!("http://{}", self.s3)
    }

    pub fn key(&self) -> &KeyPair {
        &self.key
    }

    /// aws-sdk-s3 client with the configured credentials (same settings as for cairn).
    pub fn client(&self) -> aws_sdk_s3::Client {
        crate::s3::s3_client(&self.s3_url(), &self.key.id, &self.key.secret)
    }

    /// Process id of the running `weed`.
    pub fn pid(&self) -> u32 {
        self.proc.pid().unwrap_or(0)
    }

    /// Where its data lives.
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.root.path().join("data")
    }

    /// The last lines it printed.
    pub fn log_tail(&self) -> String {
        self.proc.logs().tail()
    }
}

//! The aws CLI (PyPI `awscli`; CI's `.ci/run` installs it) driven against a test server with
//! the server's root key, a private config (region us-east-1, the CLI's defaults otherwise)
//! and nothing from the environment that could redirect it.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::cluster::Cluster;
use crate::proc::{CmdOutput, run_with_timeout};
use crate::server::{KeyPair, Server};

/// Upper bound of one aws CLI command.
const AWS_TIMEOUT: Duration = Duration::from_secs(600);

/// A running S3 endpoint the aws CLI (or boto3) can be pointed at: a single server or a
/// cluster's gateway.
pub trait S3Target {
    /// `http://127.0.0.1:PORT` of the S3 endpoint.
    fn s3_url(&self) -> String;
    /// The key with every right.
    fn root_key(&self) -> &KeyPair;
    /// What the processes printed last (for failure messages).
    fn log_tail(&self) -> String;
}

impl S3Target for Server {
    fn s3_url(&self) -> String {
        Server::s3_url(self)
    }
    fn root_key(&self) -> &KeyPair {
        Server::root_key(self)
    }
    fn log_tail(&self) -> String {
        Server::log_tail(self)
    }
}

impl S3Target for Cluster {
    fn s3_url(&self) -> String {
        format!("http://{}", self.gateway.addr("s3"))
    }
    fn root_key(&self) -> &KeyPair {
        Cluster::root_key(self)
    }
    fn log_tail(&self) -> String {
        self.logs()
    }
}

/// Sets the target's root key in the `AWS_*` variables of `cmd` (for the aws CLI, boto3, ...)
/// and removes every other `AWS_*` variable.
pub fn aws_env(cmd: &mut Command, server: &(impl S3Target + ?Sized)) {
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("AWS_ACCESS_KEY_ID", &server.root_key().id)
        .env("AWS_SECRET_ACCESS_KEY", &server.root_key().secret)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("NO_PROXY", "*");
}

/// Whether `aws --version` runs.
pub fn aws_cli_present() -> bool {
    Command::new("aws")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The aws CLI pointed at one server or cluster (`--endpoint-url`, path style by default).
pub struct AwsCli<'a> {
    server: &'a dyn S3Target,
    dir: TempDir,
}

impl<'a> AwsCli<'a> {
    /// Panics with the install hint when the CLI is missing.
    #[track_caller]
    pub fn new(server: &'a dyn S3Target) -> Self {
        assert!(
            aws_cli_present(),
            "the aws CLI is not on PATH: run `python3 -m pip install awscli` (CI's .ci/run does)"
        );
        let dir = tempfile::tempdir().expect("create an aws config dir");
        std::fs::write(dir.path().join("config"), "[default]\nregion = us-east-1\n")
            .expect("write aws config");
        std::fs::write(dir.path().join("credentials"), "").expect("write aws credentials");
        Self { server, dir }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `aws ARGS... --endpoint-url S3`.
    pub fn run(&self, args: &[&str]) -> CmdOutput {
        let mut cmd = Command::new("aws");
        aws_env(&mut cmd, self.server);
        cmd.args(args)
            .arg("--endpoint-url")
            .arg(self.server.s3_url())
            .env("AWS_CONFIG_FILE", self.file("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", self.file("credentials"))
            .env("AWS_PAGER", "");
        run_with_timeout(&mut cmd, AWS_TIMEOUT).unwrap_or_else(|e| panic!("cannot run aws: {e}"))
    }

    /// Like [`AwsCli::run`] but panics (with the server's log tail) unless it exits 0;
    /// returns stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        self.run(args)
            .expect_ok(&format!("aws {}", args.join(" ")), || {
                Some(self.server.log_tail())
            })
    }
}

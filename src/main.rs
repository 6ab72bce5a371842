//! `cairn`: the one binary. Roles (`server`, `node`, `gateway`) and admin verbs (`status`,
//! `layout`, `key`, `bucket`) talking gRPC to a node. See ARCHITECTURE.md, "Command line".

mod admin;
mod cli;
mod creds;
mod health;
mod roles;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};

/// Log filter when RUST_LOG is not set: quiet the chatty dependencies.
const QUIET_DEPS: &str = "openraft=warn,h2=warn,tower=warn,hyper=warn,hyper_util=warn";

fn init_logging(role: bool) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => EnvFilter::new(v),
        // Admin verbs print their answer on stdout; only problems go to stderr.
        _ if role => EnvFilter::new(format!("info,{QUIET_DEPS}")),
        _ => EnvFilter::new(format!("warn,{QUIET_DEPS}")),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Server(args) => roles::server(args).await,
        Command::Node(args) => roles::node(args).await,
        Command::Gateway(args) => roles::gateway(args).await,
        Command::Status(admin) => admin::status(admin).await,
        Command::Layout { admin, command } => admin::layout(admin, command).await,
        Command::Key { admin, command } => admin::key(admin, command).await,
        Command::Bucket { admin, command } => admin::bucket(admin, command).await,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.command.is_role());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(cli.command));
    // Do not wait for stray blocking tasks (e.g. a store flush) longer than this.
    runtime.shutdown_timeout(Duration::from_secs(2));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // `cairn key list | head -1`: the reader left, nothing to report.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

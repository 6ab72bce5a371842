//! Locating (and building) the `cairn` binary under test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::proc::run_with_timeout;

/// Which cargo profile the binary is built with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Debug,
    Release,
}

/// The workspace root (parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cluster-tests lives inside the workspace")
        .to_path_buf()
}

/// Path of the `cairn` binary for `profile`: `$CAIRN_BIN` when set, otherwise the result of
/// `cargo build -p cairn --bin cairn [--release]`, run once per process and profile.
pub fn cairn_bin(profile: Profile) -> PathBuf {
    if let Some(path) = std::env::var_os("CAIRN_BIN") {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "CAIRN_BIN={} is not a file", path.display());
        return path;
    }
    static DEBUG: OnceLock<PathBuf> = OnceLock::new();
    static RELEASE: OnceLock<PathBuf> = OnceLock::new();
    let cell = match profile {
        Profile::Debug => &DEBUG,
        Profile::Release => &RELEASE,
    };
    cell.get_or_init(|| build(profile)).clone()
}

fn cargo() -> PathBuf {
    std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO")))
}

fn build(profile: Profile) -> PathBuf {
    let root = workspace_root();
    let mut cmd = Command::new(cargo());
    cmd.current_dir(&root).args([
        "build",
        "-p",
        "cairn",
        "--bin",
        "cairn",
        "--message-format=json-render-diagnostics",
    ]);
    if profile == Profile::Release {
        cmd.arg("--release");
    }
    eprintln!(
        "cluster-tests: building cairn ({profile:?}) in {}",
        root.display()
    );
    let out = run_with_timeout(&mut cmd, Duration::from_secs(3600))
        .unwrap_or_else(|e| panic!("cannot run cargo to build cairn: {e}"));
    if !out.success() {
        panic!(
            "`cargo build -p cairn --bin cairn` ({profile:?}) failed ({}):\n{}",
            out.status_text(),
            tail(&out.stderr, 8000)
        );
    }
    // The artifact message names the executable, whatever the target dir is.
    let mut exe = None;
    for line in out.stdout.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact"
            && msg["target"]["name"] == "cairn"
            && let Some(path) = msg["executable"].as_str()
        {
            exe = Some(PathBuf::from(path));
        }
    }
    let exe = exe.unwrap_or_else(|| {
        let dir = match profile {
            Profile::Debug => "debug",
            Profile::Release => "release",
        };
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        target.join(dir).join("cairn")
    });
    assert!(
        exe.is_file(),
        "cargo built cairn but {} does not exist",
        exe.display()
    );
    exe
}

/// Last `max` bytes of `s` (on a char boundary).
pub fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

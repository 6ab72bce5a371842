//! Headless Chromium (the Debian `chromium` package; CI's `.ci/run` installs it) for tests
//! that need a real browser: a page's screenshot, or its DOM after its scripts ran.
//!
//! Each run gets a fresh profile and no proxy. `host_rules` is passed as
//! `--host-resolver-rules`, so a page can be loaded by its real host name (and the server
//! sees that `Host`) while the connection goes to a loopback port, e.g.
//! [`map_host`]`("*.web.test", server.addrs().web.unwrap())` with the URL
//! `http://site.web.test/`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::binary::workspace_root;
use crate::proc::{CmdOutput, run_with_timeout};

/// The Chromium binary.
pub const CHROMIUM: &str = "chromium";
/// Upper bound of one browser run.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);
/// Window size of screenshots (CSS pixels; one screenshot pixel each).
pub const WINDOW: (u32, u32) = (800, 600);
/// How long (virtual time) a page's scripts may run before the DOM is dumped.
const SCRIPT_BUDGET_MS: u32 = 10_000;

/// Whether `chromium` can be run.
pub fn chromium_available() -> bool {
    Command::new(CHROMIUM)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Panics with the install hint unless `chromium` can be run.
#[track_caller]
pub fn require_chromium() {
    assert!(
        chromium_available(),
        "`chromium` is not on PATH: run `apt-get install -y chromium` (CI's .ci/run does)"
    );
}

/// A `--host-resolver-rules` rule sending every host matching `pattern` (e.g. `*.web.test`)
/// to `addr`.
pub fn map_host(pattern: &str, addr: SocketAddr) -> String {
    format!("MAP {pattern} {addr}")
}

/// Runs headless Chromium on `url` with `extra` arguments; panics (with its output) unless it
/// exits 0.
fn run(url: &str, host_rules: Option<&str>, extra: &[String]) -> CmdOutput {
    require_chromium();
    let profile = tempfile::Builder::new()
        .prefix("cairn-chromium-")
        .tempdir()
        .expect("create a chromium profile dir");
    let mut cmd = Command::new(CHROMIUM);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--no-proxy-server",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .arg(format!("--window-size={},{}", WINDOW.0, WINDOW.1));
    if let Some(rules) = host_rules {
        cmd.arg(format!("--host-resolver-rules={rules}"));
    }
    cmd.args(extra).arg(url);
    let out = run_with_timeout(&mut cmd, BROWSER_TIMEOUT)
        .unwrap_or_else(|e| panic!("cannot run {CHROMIUM}: {e}"));
    assert!(
        out.success(),
        "{CHROMIUM} on {url} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status_text(),
        out.stdout,
        out.stderr
    );
    out
}

/// Loads `url` in a [`WINDOW`]-sized window and saves a PNG screenshot once the page has
/// loaded (stylesheets and images included). The file is kept under `target/browser/` for
/// inspection; the path is returned.
pub fn screenshot(url: &str, host_rules: Option<&str>) -> PathBuf {
    let dir = workspace_root().join("target").join("browser");
    std::fs::create_dir_all(&dir).expect("create target/browser");
    let path = dir.join(format!(
        "shot-{}-{:08x}.png",
        std::process::id(),
        rand::random::<u32>()
    ));
    run(
        url,
        host_rules,
        &[format!("--screenshot={}", path.display())],
    );
    assert!(
        path.is_file(),
        "{CHROMIUM} wrote no screenshot of {url} at {}",
        path.display()
    );
    path
}

/// Loads `url`, lets its scripts run (fetches included) for up to 10 s of virtual time, and
/// returns the serialized DOM (`document.documentElement.outerHTML`).
pub fn dump_dom(url: &str, host_rules: Option<&str>) -> String {
    run(
        url,
        host_rules,
        &[
            "--dump-dom".to_string(),
            format!("--virtual-time-budget={SCRIPT_BUDGET_MS}"),
        ],
    )
    .stdout
}

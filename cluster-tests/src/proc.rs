//! Child processes: spawning servers that die with the test process, and running commands with
//! a timeout.

use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `cmd` so that it is killed when the test process goes away, even if a `Server` lives
/// in a `static` (never dropped) or the test process is itself killed.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked exits, so every server is forked by
/// one long-lived thread; an `atexit` hook also kills what is still registered and removes its
/// temp dir.
pub(crate) fn spawn_tied(mut cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("cairn-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawn the spawner thread");
        // SAFETY: registering a plain `extern "C" fn` with atexit.
        unsafe {
            libc::atexit(cleanup_at_exit);
        }
        Mutex::new(tx)
    });
    // SAFETY: the closure only calls async-signal-safe functions (prctl, getppid, kill).
    unsafe {
        let parent = libc::getpid();
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != parent {
                // The parent already died between fork and prctl.
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
            Ok(())
        });
    }
    let (reply_tx, reply_rx) = mpsc::channel();
    sender
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("spawner thread is gone"))?
}

/// Processes (and their temp dirs) to clean up at exit if still there.
static LIVE: Mutex<Vec<(u32, Option<PathBuf>)>> = Mutex::new(Vec::new());

pub(crate) fn register_live(pid: u32, dir: Option<PathBuf>) {
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((pid, dir));
}

pub(crate) fn unregister_live(pid: u32) {
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(p, _)| *p != pid);
}

extern "C" fn cleanup_at_exit() {
    let Ok(mut live) = LIVE.try_lock() else {
        return;
    };
    for (pid, dir) in live.drain(..) {
        // SAFETY: plain syscalls on a pid we spawned.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
            let mut status = 0;
            libc::waitpid(pid as libc::pid_t, &mut status, 0);
        }
        if let Some(dir) = dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Output of a finished command.
#[derive(Debug)]
pub struct CmdOutput {
    /// `None` when the command was killed for running past its timeout.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    pub fn status_text(&self) -> String {
        match self.status {
            Some(s) => s.to_string(),
            None => "killed after timeout".to_string(),
        }
    }

    /// Stdout, after asserting that `command` exited 0 (else a panic with both outputs and
    /// the log tail of the server it talked to, if `server_log` gives one).
    #[track_caller]
    pub fn expect_ok(self, command: &str, server_log: impl FnOnce() -> Option<String>) -> String {
        if !self.success() {
            let log = server_log()
                .map(|log| format!("\n--- server log tail ---\n{log}"))
                .unwrap_or_default();
            panic!(
                "`{command}` failed ({}):\nstdout:\n{}\nstderr:\n{}{log}",
                self.status_text(),
                self.stdout,
                self.stderr,
            );
        }
        self.stdout
    }

    /// Asserts that a role refused to start: it failed, said `why` on stderr and never
    /// printed `listening LISTENER=`.
    #[track_caller]
    pub fn expect_start_refused(&self, why: &str, listener: &str) {
        assert!(!self.success(), "started anyway: {}", self.stdout);
        assert!(self.stderr.contains(why), "unclear error: {}", self.stderr);
        assert!(
            !self.stdout.contains(&format!("listening {listener}=")),
            "listened before failing: {}",
            self.stdout
        );
    }
}

/// Runs `cmd` to completion (stdin closed, stdout/stderr captured); kills it after `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> io::Result<CmdOutput> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let out = reader(child.stdout.take().expect("piped stdout"));
    let err = reader(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(CmdOutput {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

fn reader(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

//! A long-running child process (a `cairn` role, `weed mini`) whose output is kept in a log
//! tail: spawning it, reading its `listening NAME=ADDR` lines, SIGTERM / SIGKILL and waiting
//! for its exit. Shared by [`crate::Server`], [`crate::Proc`] and [`crate::Weed`].

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use crate::proc::{register_live, spawn_tied, unregister_live};

const LOG_TAIL_LINES: usize = 200;

/// The last lines a process printed (stdout and stderr), each also appended to a log file.
#[derive(Clone, Default)]
pub(crate) struct LogTail(Arc<Mutex<(VecDeque<String>, Option<File>)>>);

impl LogTail {
    pub(crate) fn new(file: Option<File>) -> Self {
        Self(Arc::new(Mutex::new((VecDeque::new(), file))))
    }

    /// From now on, lines also go to `file`.
    pub(crate) fn set_file(&self, file: Option<File>) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).1 = file;
    }

    pub(crate) fn push(&self, line: String) {
        let mut logs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = logs.1.as_mut() {
            let _ = writeln!(f, "{line}");
        }
        if logs.0.len() >= LOG_TAIL_LINES {
            logs.0.pop_front();
        }
        logs.0.push_back(line);
    }

    /// The last lines, joined.
    pub(crate) fn tail(&self) -> String {
        let logs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        logs.0.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// `listening NAME=ADDR` lines of a process's stdout.
pub(crate) type Listeners = mpsc::Receiver<(String, SocketAddr)>;

/// A child spawned with [`spawn_tied`] (killed when this process goes away), its output in a
/// [`LogTail`]. SIGKILLed on drop.
pub(crate) struct Running {
    child: Option<Child>,
    logs: LogTail,
}

impl Running {
    /// Nothing running yet; the output of what [`Running::spawn`] starts goes to `logs`.
    pub(crate) fn new(logs: LogTail) -> Self {
        Self { child: None, logs }
    }

    /// Spawns `cmd` (stdin closed; `dir` is removed at exit if the process still runs then)
    /// and copies its stdout and stderr into the log tail.
    pub(crate) fn spawn(
        &mut self,
        mut cmd: Command,
        dir: Option<PathBuf>,
    ) -> io::Result<Listeners> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = spawn_tied(cmd)?;
        register_live(child.id(), dir);
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
        Ok(rx)
    }

    pub(crate) fn logs(&self) -> &LogTail {
        &self.logs
    }

    /// Process id, if one was spawned and not yet reaped.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The exit status, once the process has exited.
    pub(crate) fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            _ => None,
        }
    }

    pub(crate) fn is_running(&mut self) -> bool {
        self.child.is_some() && self.exited().is_none()
    }

    /// SIGKILL, no chance to flush anything.
    pub(crate) fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            unregister_live(child.id());
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and returns at once (the process drains, then exits).
    pub(crate) fn terminate(&self) {
        let child = self.child.as_ref().expect("the process is not running");
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
    }

    /// Waits up to `limit` for the process to exit: its exit status, or `None` if it still
    /// runs (or none was spawned).
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                unregister_live(child.id());
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then SIGKILL if it still runs after `grace`.
    pub(crate) fn stop(&mut self, grace: Duration) {
        if self.child.is_some() {
            self.terminate();
            if self.wait_exit(grace).is_none() {
                self.kill_9();
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// Runs `launch` until it succeeds, at most 5 times 500 ms apart (a port of the previous run
/// may still be held for a moment), logging each failure; the last error otherwise.
pub(crate) fn relaunch(
    logs: &LogTail,
    mut launch: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match launch() {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 5 => {
                logs.push(format!("[harness] restart attempt {attempt} failed: {e}"));
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Copies a pipe into the log tail; on stdout also reports `listening NAME=ADDR` lines.
fn pump(
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
            logs.push(line);
        }
    });
}

//! Disk-full admission: the free space of the filesystem holding the data dir, and the
//! reserve below which the node refuses *new data* (block writes, new object versions,
//! upload announcements) while deletes, tombstones, purges, reference drops, the collector
//! and Raft keep working — they are what frees space again.
//!
//! The reserve is `--disk-reserve-bytes` / `CAIRN_DISK_RESERVE_BYTES` when given (0 turns
//! the check off), else the smaller of 1 GiB and 2 % of the filesystem, so a small volume
//! is not over-penalised. statvfs is asked at most once a second; every admission point
//! calls [`DiskGuard::admit`].

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cairn_proto::STORAGE_FULL;
use cairn_proto::pb::DiskStatus;
use tonic::Status;

/// Upper bound of the default reserve.
pub const DEFAULT_RESERVE_MAX: u64 = 1 << 30;
/// Default reserve as a percentage of the filesystem size (when below the bound).
pub const DEFAULT_RESERVE_PERCENT: u64 = 2;
/// How long a statvfs answer is reused.
const CACHE_FOR: Duration = Duration::from_secs(1);

const ADMITTING: u8 = 0;
const REFUSING: u8 = 1;
const UNKNOWN: u8 = 2;

/// The reserve for a filesystem of `size` bytes: `configured` if set, else the smaller of
/// [`DEFAULT_RESERVE_MAX`] and [`DEFAULT_RESERVE_PERCENT`] % of the size.
pub fn reserve_for(size: u64, configured: Option<u64>) -> u64 {
    configured.unwrap_or_else(|| {
        let percent = (size as u128 * DEFAULT_RESERVE_PERCENT as u128 / 100) as u64;
        percent.min(DEFAULT_RESERVE_MAX)
    })
}

/// Whether writing `incoming` more bytes leaves at least `reserve` of `free` bytes.
pub fn admits(free: u64, reserve: u64, incoming: u64) -> bool {
    free.checked_sub(incoming)
        .is_some_and(|left| left >= reserve)
}

/// `(size, available)` bytes of the filesystem holding `path` (statvfs; available is what
/// an unprivileged process may still use).
pub fn filesystem_space(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt as _;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: a valid NUL-terminated path and a buffer statvfs fills on success.
    let st = unsafe {
        if libc::statvfs(c_path.as_ptr(), st.as_mut_ptr()) != 0 {
            return None;
        }
        st.assume_init()
    };
    let frsize = st.f_frsize as u64;
    Some((
        (st.f_blocks as u64).saturating_mul(frsize),
        (st.f_bavail as u64).saturating_mul(frsize),
    ))
}

/// One look at the data dir's filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    pub size: u64,
    pub free: u64,
    pub reserve: u64,
}

impl Space {
    /// Whether the free space is below the reserve (new data is refused).
    pub fn refusing(&self) -> bool {
        !admits(self.free, self.reserve, 0)
    }
}

/// The free-space check of one node's data dir.
pub struct DiskGuard {
    path: PathBuf,
    configured: Option<u64>,
    /// Who this node is, for refusal messages.
    label: String,
    cached: Mutex<Option<(Instant, Option<Space>)>>,
    /// The last state seen ([`ADMITTING`], [`REFUSING`] or [`UNKNOWN`]), to log changes.
    state: AtomicU8,
    refused: AtomicU64,
}

impl DiskGuard {
    /// A check of the filesystem holding `path` with the reserve `configured` (bytes) or the
    /// default; `label` names the node in refusals.
    pub fn new(path: impl Into<PathBuf>, configured: Option<u64>, label: String) -> Self {
        Self {
            path: path.into(),
            configured,
            label,
            cached: Mutex::new(None),
            state: AtomicU8::new(ADMITTING),
            refused: AtomicU64::new(0),
        }
    }

    /// The filesystem's space and the reserve, at most [`CACHE_FOR`] old; `None` when
    /// statvfs fails.
    pub fn space(&self) -> Option<Space> {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, space)) = *cached
            && at.elapsed() < CACHE_FOR
        {
            return space;
        }
        let space = filesystem_space(&self.path).map(|(size, free)| Space {
            size,
            free,
            reserve: reserve_for(size, self.configured),
        });
        *cached = Some((Instant::now(), space));
        drop(cached);
        self.note(space);
        space
    }

    /// Logs when the node starts or stops refusing, or cannot read the free space.
    fn note(&self, space: Option<Space>) {
        let now = match space {
            None => UNKNOWN,
            Some(s) if s.refusing() => REFUSING,
            Some(_) => ADMITTING,
        };
        if self.state.swap(now, Ordering::Relaxed) == now {
            return;
        }
        match space {
            None => tracing::warn!(
                path = %self.path.display(),
                "cannot read the free space of the data dir (statvfs); admitting writes"
            ),
            Some(s) if s.refusing() => tracing::warn!(
                free = s.free,
                reserve = s.reserve,
                "data dir below its free-space reserve: refusing new data"
            ),
            Some(s) => tracing::info!(
                free = s.free,
                reserve = s.reserve,
                "data dir above its free-space reserve: accepting new data"
            ),
        }
    }

    /// Admits `incoming` bytes of new data, or refuses them with `ResourceExhausted`
    /// ([`STORAGE_FULL`]) when they would leave less than the reserve free. Admits when the
    /// free space cannot be read.
    pub fn admit(&self, incoming: u64) -> Result<(), Status> {
        self.admit_unless(incoming, || Ok(false))
    }

    /// [`Self::admit`], except that a write `exempt` approves is admitted below the reserve
    /// too (`exempt` is only asked then).
    pub fn admit_unless(
        &self,
        incoming: u64,
        exempt: impl FnOnce() -> Result<bool, Status>,
    ) -> Result<(), Status> {
        let Some(space) = self.space() else {
            return Ok(());
        };
        if admits(space.free, space.reserve, incoming) || exempt()? {
            return Ok(());
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
        Err(Status::resource_exhausted(format!(
            "{STORAGE_FULL}: node {} has {} free on its data dir, below its reserve of {} \
             (new data is refused; deletes still work)",
            self.label,
            human(space.free),
            human(space.reserve),
        )))
    }

    /// Data writes refused since the node started.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// For `cairn status`.
    pub fn status(&self) -> DiskStatus {
        let space = self.space();
        DiskStatus {
            known: space.is_some(),
            size_bytes: space.map_or(0, |s| s.size),
            free_bytes: space.map_or(0, |s| s.free),
            reserve_bytes: space.map_or(0, |s| s.reserve),
            refusing: space.is_some_and(|s| s.refusing()),
            writes_refused: self.refused(),
        }
    }
}

/// Bytes for people (binary units, one decimal).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn default_reserve_is_the_smaller_of_1_gib_and_2_percent() {
        // 2 % of 10 GiB is 204.8 MiB: below the 1 GiB bound.
        assert_eq!(reserve_for(10 * GIB, None), 10 * GIB / 50);
        // 2 % of 50 GiB is exactly 1 GiB.
        assert_eq!(reserve_for(50 * GIB, None), GIB);
        // Large filesystems are capped at 1 GiB.
        assert_eq!(reserve_for(4096 * GIB, None), GIB);
        assert_eq!(reserve_for(u64::MAX, None), GIB);
        assert_eq!(reserve_for(0, None), 0);
        assert_eq!(reserve_for(99, None), 1);
    }

    #[test]
    fn configured_reserve_wins() {
        assert_eq!(reserve_for(10 * GIB, Some(5 * GIB)), 5 * GIB);
        assert_eq!(reserve_for(4096 * GIB, Some(0)), 0);
        assert_eq!(reserve_for(GIB, Some(u64::MAX)), u64::MAX);
    }

    #[test]
    fn admission_keeps_the_reserve_free() {
        assert!(admits(10, 5, 0));
        assert!(admits(10, 5, 5));
        assert!(!admits(10, 5, 6));
        assert!(admits(10, 10, 0));
        assert!(!admits(9, 10, 0));
        // More than is free never fits, even without a reserve.
        assert!(!admits(10, 0, 11));
        assert!(admits(0, 0, 0));
        assert!(!admits(u64::MAX, u64::MAX, 1));
        let space = Space {
            size: 100,
            free: 4,
            reserve: 5,
        };
        assert!(space.refusing());
        assert!(!Space { free: 5, ..space }.refusing());
    }

    #[test]
    fn guard_refuses_below_the_reserve_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let open = DiskGuard::new(dir.path(), Some(0), "a".into());
        assert!(open.admit(1).is_ok());
        assert_eq!(open.refused(), 0);
        let status = open.status();
        assert!(status.known && !status.refusing && status.size_bytes > 0);

        let full = DiskGuard::new(dir.path(), Some(u64::MAX), "n1 (127.0.0.1:1)".into());
        let e = full.admit(0).unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(cairn_proto::is_storage_full(&e), "{}", e.message());
        assert!(e.message().contains("n1 (127.0.0.1:1)"), "{}", e.message());
        assert!(full.admit(0).is_err());
        assert_eq!(full.refused(), 2);
        // An exempt write passes and is not counted; the exemption is asked only when full.
        assert!(full.admit_unless(1, || Ok(true)).is_ok());
        assert!(full.admit_unless(1, || Ok(false)).is_err());
        assert_eq!(full.refused(), 3);
        assert!(
            open.admit_unless(1, || panic!("asked above the reserve"))
                .is_ok()
        );
        let status = full.status();
        assert!(status.refusing);
        assert_eq!(status.reserve_bytes, u64::MAX);
        assert_eq!(status.writes_refused, 3);

        // An unreadable path admits (and reports nothing).
        let gone = DiskGuard::new(dir.path().join("missing"), Some(u64::MAX), "b".into());
        assert!(gone.admit(1).is_ok());
        assert!(!gone.status().known);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(GIB), "1.0 GiB");
        assert_eq!(human(u64::MAX), "16.0 EiB");
    }
}

//! cPanel's lock protocol for a data file (reference 2.7): a `<file>.lock` dot-lock made
//! with `link()`, then `flock(LOCK_EX)` on the data file itself. Whoever follows the same
//! protocol (WHM's own token writer, another converter) is excluded while we hold both.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::time::{Duration, Instant, SystemTime};

use camino::{Utf8Path, Utf8PathBuf};
use whmtoken_core::BackendError;

use crate::safe_fs::{guarded_flags, io_error};

/// cPanel breaks a dot-lock older than this even when its owner seems alive.
const STALE_AFTER: Duration = Duration::from_secs(300);
const MAX_LOCK_FILE: u64 = 4096;

/// One bound on all the waiting of one locked operation (its dot-lock and its flock), so
/// that `--lock-timeout` bounds the operation, not each wait in it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline {
    at: Instant,
    timeout: Duration,
}

impl Deadline {
    pub(crate) fn after(timeout: Duration) -> Self {
        Self {
            at: Instant::now() + timeout,
            timeout,
        }
    }

    fn expired(&self) -> bool {
        Instant::now() >= self.at
    }

    pub(crate) fn missed(&self, location: &Utf8Path) -> BackendError {
        BackendError::LockTimeout {
            location: location.to_string(),
            waited: self.timeout,
        }
    }
}

/// A held dot-lock; dropping it removes `<file>.lock`.
#[derive(Debug)]
pub(crate) struct DotLock {
    path: Utf8PathBuf,
}

impl DotLock {
    /// Takes `<target>.lock`, breaking it when stale, waiting until `deadline` while a live
    /// process holds it.
    pub(crate) fn acquire(target: &Utf8Path, deadline: Deadline) -> Result<Self, BackendError> {
        let path = Utf8PathBuf::from(format!("{target}.lock"));
        let temp = Utf8PathBuf::from(format!("{path}-{}", unique_suffix()));
        write_lock_contents(&temp)?;
        let taken = take_by_link(&temp, &path, deadline);
        let _ = fs::remove_file(&temp);
        taken.map(|()| Self { path })
    }
}

impl Drop for DotLock {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.path) {
            tracing::warn!(lock = %self.path, error = %e, "could not remove dot-lock");
        }
    }
}

fn write_lock_contents(temp: &Utf8Path) -> Result<(), BackendError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(guarded_flags())
        .open(temp)
        .map_err(|e| io_error(temp, e))?;
    file.write_all(lock_contents().as_bytes())
        .map_err(|e| io_error(temp, e))
}

fn take_by_link(temp: &Utf8Path, path: &Utf8Path, deadline: Deadline) -> Result<(), BackendError> {
    let mut pause = Duration::from_millis(2);
    loop {
        match fs::hard_link(temp, path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_error(path, e)),
        }
        if break_if_stale(path)? {
            continue;
        }
        if deadline.expired() {
            return Err(deadline.missed(path));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Removes the dot-lock at `path` when its owner is dead or it is older than cPanel's
/// limit. Returns whether the caller should try to take it again at once.
fn break_if_stale(path: &Utf8Path) -> Result<bool, BackendError> {
    let Some((inode, stale)) = inspect(path)? else {
        return Ok(true); // released meanwhile
    };
    if !stale {
        return Ok(false);
    }
    // Only remove the very lock that was judged stale, not one taken since.
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.ino() == inode => {
            tracing::warn!(lock = %path, "breaking a stale dot-lock");
            match fs::remove_file(path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
                Err(e) => Err(io_error(path, e)),
            }
        }
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(io_error(path, e)),
    }
}

/// (inode, whether it is stale) of the dot-lock, or `None` when it is gone.
fn inspect(path: &Utf8Path) -> Result<Option<(u64, bool)>, BackendError> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(guarded_flags())
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path, e)),
    };
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    let mut contents = String::new();
    let _ = io::Read::read_to_string(&mut io::Read::take(&file, MAX_LOCK_FILE), &mut contents);
    let owner_alive = contents
        .lines()
        .next()
        .and_then(|pid| pid.trim().parse::<i32>().ok())
        .and_then(rustix::process::Pid::from_raw)
        .map(|pid| rustix::process::test_kill_process(pid) != Err(rustix::io::Errno::SRCH));
    let age = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or_default();
    // A lock naming no readable pid is judged by its age alone.
    let stale = owner_alive == Some(false) || age > STALE_AFTER;
    Ok(Some((meta.ino(), stale)))
}

/// Waits for `flock(LOCK_EX)` on `file`, until `deadline`.
pub(crate) fn flock_exclusive(
    path: &Utf8Path,
    file: &File,
    deadline: Deadline,
) -> Result<(), BackendError> {
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(fs::TryLockError::WouldBlock) if !deadline.expired() => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(fs::TryLockError::WouldBlock) => return Err(deadline.missed(path)),
            Err(fs::TryLockError::Error(e)) => return Err(io_error(path, e)),
        }
    }
}

/// `<pid hex>-<time hex>-<counter hex>`, unique among this host's processes and threads.
pub(crate) fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "{:x}-{:x}-{:x}",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// `<pid>\n<program>\n`, what cPanel's dot-locks hold; the same for the whole process.
fn lock_contents() -> &'static str {
    static CONTENTS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CONTENTS.get_or_init(|| {
        let program = std::env::args_os()
            .next()
            .as_deref()
            .and_then(|p| std::path::Path::new(p).file_name())
            .map_or_else(
                || "whmtoken".to_owned(),
                |n| n.to_string_lossy().into_owned(),
            );
        format!("{}\n{program}\n", std::process::id())
    })
}

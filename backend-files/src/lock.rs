//! cPanel's lock protocol for a data file (reference 2.7): a `<file>.lock` dot-lock made
//! with `link()`, then `flock(LOCK_EX)` on the data file itself. Whoever follows the same
//! protocol (WHM's own token writer, another converter) is excluded while we hold both.
//!
//! cPanel writes a new temporary file for every dot-lock and links it into place. What such
//! a file holds (`<pid>\n<program>\n`) is the same for every lock one process takes, so a
//! [`LockSource`] writes it once per folder and links that one file to each `<file>.lock`:
//! the locks are the same to every reader, without creating and deleting an inode per lock
//! (on a busy folder that churn, and the folder lock it takes, cost more CPU than the
//! fsyncs). A source's contents are synced before it is first linked, so that a lock found
//! after a crash names its process.
//!
//! After a crash, a lock file can still be empty (another program's contents never reached
//! the disk). One found empty on two looks a moment apart is stale, and it is taken over as
//! cPanel's locker does: overwritten in place when its inode and mtime are still those
//! seen, never unlinked (which would let a third process in). A lock naming this very
//! process that none of its threads holds (one it failed to remove, on a file system gone
//! read-only) is its own, and is taken back without waiting.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use camino::{Utf8Path, Utf8PathBuf};
use whmtoken_core::BackendError;

use crate::safe_fs::{Checked, Made, Rules, guarded_flags, io_error, open_checked};

/// The start of a lock source's name: `whmtoken.lock-<suffix>` ([`unique_suffix`]).
pub(crate) const SOURCE_PREFIX: &str = "whmtoken.lock-";

/// cPanel breaks a dot-lock older than this even when its owner seems alive.
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(300);
const MAX_LOCK_FILE: u64 = 4096;
/// A lock's age is its source file's age: sources are replaced this often, so that a lock
/// never looks anywhere near [`STALE_AFTER`] to another process.
const RENEW_SOURCE_AFTER: Duration = Duration::from_secs(10);

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
        BackendError::Locked {
            location: location.to_string(),
            waited: self.timeout,
        }
    }
}

/// How long apart the two looks at an empty lock file are.
const EMPTY_LOOKS_APART: Duration = Duration::from_millis(50);

/// A held dot-lock; dropping it removes `<file>.lock`.
#[derive(Debug)]
pub(crate) struct DotLock {
    path: Utf8PathBuf,
    _claim: Claim,
}

/// The dot-locks this process's threads are taking or hold, by path as written (compared
/// as strings: every lock path is made the same way, and a path's component-wise
/// comparison costs more than the rest of a claim): a lock naming this process that is not
/// claimed here is one it failed to remove.
static CLAIMED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// A thread's claim on a dot-lock path, released when dropped.
#[derive(Debug)]
struct Claim(String);

impl Claim {
    fn take(path: &Utf8Path, deadline: Deadline) -> Result<Self, BackendError> {
        loop {
            if claimed().insert(path.as_str().to_owned()) {
                return Ok(Self(path.as_str().to_owned()));
            }
            if deadline.expired() {
                return Err(deadline.missed(path));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        claimed().remove(&self.0);
    }
}

fn claimed() -> std::sync::MutexGuard<'static, BTreeSet<String>> {
    CLAIMED.lock().unwrap_or_else(PoisonError::into_inner)
}

impl DotLock {
    /// Takes `<target>.lock` by linking `source`'s file to it, breaking the lock when stale,
    /// waiting until `deadline` while a live process holds it.
    pub(crate) fn acquire(
        target: &Utf8Path,
        source: &LockSource,
        deadline: Deadline,
    ) -> Result<Self, BackendError> {
        let path = Utf8PathBuf::from(format!("{target}.lock"));
        let claim = Claim::take(&path, deadline)?;
        take_by_link(source, &path, deadline)?;
        Ok(Self {
            path,
            _claim: claim,
        })
    }
}

/// A data file held under the whole protocol: its dot-lock taken, then the file opened and
/// checked ([`open_checked`]), flocked, and found still to be the file at its path. Dropping
/// it releases the flock, then the dot-lock.
#[derive(Debug)]
pub(crate) struct Locked {
    pub(crate) file: Checked,
    /// Whether this open made the file (empty, as cPanel makes it).
    pub(crate) created: bool,
    _dot_lock: DotLock,
}

impl Locked {
    /// Takes `path`'s dot-lock (from `source`) and flock, waiting until `deadline`, and
    /// opens the file for reading and writing, checked against `rules`. A missing file is
    /// made empty (mode 0600) when `create`, else it is `Ok(None)`.
    pub(crate) fn take(
        path: &Utf8Path,
        source: &LockSource,
        deadline: Deadline,
        rules: Rules,
        create: bool,
    ) -> Result<Option<Self>, BackendError> {
        let dot_lock = DotLock::acquire(path, source, deadline)?;
        loop {
            let Some((file, created)) = open_data(path, rules, create)? else {
                return Ok(None);
            };
            flock_exclusive(path, file.file(), deadline)?;
            let held = file.file().metadata().map_err(|e| io_error(path, e))?;
            // Replaced while we waited for the flock: the lock is on a file gone from `path`.
            if fs::symlink_metadata(path).is_ok_and(|now| now.ino() == held.ino()) {
                return Ok(Some(Self {
                    file: file.with_len(held.len()),
                    created,
                    _dot_lock: dot_lock,
                }));
            }
        }
    }
}

/// Opens the data file for reading and writing, making it when `create` and it is missing;
/// with whether it was made here (what a failed change leaves differs).
pub(crate) fn open_data(
    path: &Utf8Path,
    rules: Rules,
    create: bool,
) -> Result<Option<(Checked, bool)>, BackendError> {
    let existing = || open_checked(path, OpenOptions::new().read(true).write(true), rules);
    if !create {
        return Ok(existing()?.map(|file| (file, false)));
    }
    // Most files are there already: one open, rather than a refused creation first.
    if let Some(file) = existing()? {
        return Ok(Some((file, false)));
    }
    loop {
        let mut options = OpenOptions::new();
        options.read(true).write(true).create_new(true).mode(0o600);
        match open_checked(path, &mut options, rules) {
            Ok(Some(file)) => return Ok(Some((file, true))),
            // The folder is missing.
            Ok(None) => return Err(io_error(path, io::ErrorKind::NotFound.into())),
            Err(BackendError::Io { source, .. })
                if source.kind() == io::ErrorKind::AlreadyExists =>
            {
                // Removed between the two opens: make it again.
                if let Some(file) = existing()? {
                    return Ok(Some((file, false)));
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// This process's dot-lock contents in one folder, linked to every `<file>.lock` taken
/// there. The file is named `whmtoken.lock-<suffix>`, renewed every few seconds, and
/// removed once the source and every lock taken from it are done with it.
#[derive(Debug)]
pub(crate) struct LockSource {
    folder: Utf8PathBuf,
    current: Mutex<Option<Arc<SourceFile>>>,
}

#[derive(Debug)]
struct SourceFile {
    path: Utf8PathBuf,
    made: Instant,
}

impl LockSource {
    /// A source for locks on files in `folder`; nothing is written until the first lock.
    pub(crate) fn new(folder: Utf8PathBuf) -> Self {
        Self {
            folder,
            current: Mutex::new(None),
        }
    }

    /// The file to link, made or renewed when missing or no longer fresh.
    fn file(&self, renew: bool) -> Result<Arc<SourceFile>, BackendError> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(file) = current.as_ref()
            && !renew
            && file.made.elapsed() < RENEW_SOURCE_AFTER
        {
            return Ok(Arc::clone(file));
        }
        let path = self
            .folder
            .join(format!("{SOURCE_PREFIX}{}", unique_suffix()));
        let made = Instant::now();
        write_lock_contents(&path)?;
        let file = Arc::new(SourceFile { path, made });
        *current = Some(Arc::clone(&file));
        Ok(file)
    }
}

impl Drop for SourceFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

impl Drop for DotLock {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.path) {
            tracing::warn!(lock = %self.path, error = %e, "could not remove dot-lock");
        }
    }
}

/// Writes a new lock source; a file that could not be written whole (a full disk) is
/// removed, not left empty in the folder.
fn write_lock_contents(temp: &Utf8Path) -> Result<(), BackendError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(guarded_flags())
        .open(temp)
        .map_err(|e| io_error(temp, e))?;
    let made = Made::new(temp);
    file.write_all(lock_contents().as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(temp, e))?;
    made.keep();
    Ok(())
}

fn take_by_link(
    source: &LockSource,
    path: &Utf8Path,
    deadline: Deadline,
) -> Result<(), BackendError> {
    let mut pause = Duration::from_millis(2);
    let mut renew = false;
    let mut seen_empty = None;
    loop {
        let file = source.file(renew)?;
        match fs::hard_link(&file.path, path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            // The source file was removed behind our back: write a new one.
            Err(e) if e.kind() == io::ErrorKind::NotFound && !renew => {
                renew = true;
                continue;
            }
            Err(e) => return Err(io_error(path, e)),
        }
        renew = false;
        match inspect(path)? {
            Holder::Gone => continue,
            Holder::ThisProcess => {
                tracing::warn!(lock = %path, "taking back a dot-lock this process left");
                return Ok(());
            }
            Holder::Dead { inode } => {
                if remove_if_same(path, inode)? {
                    continue;
                }
            }
            Holder::Empty(look) if seen_empty == Some(look) => {
                if take_over_empty(path, look)? {
                    return Ok(());
                }
            }
            Holder::Empty(look) => {
                // Looked at again a moment later, within the deadline: a lock whose mtime
                // keeps changing is someone's, and is waited on like any other.
                seen_empty = Some(look);
                if deadline.expired() {
                    return Err(deadline.missed(path));
                }
                std::thread::sleep(EMPTY_LOOKS_APART);
                continue;
            }
            Holder::Live => {}
        }
        if deadline.expired() {
            return Err(deadline.missed(path));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Removes the stale dot-lock at `path`, only if it is still the very lock judged stale and
/// not one taken since. Returns whether the caller should try to take it again at once.
fn remove_if_same(path: &Utf8Path, inode: u64) -> Result<bool, BackendError> {
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

/// Writes this process's contents into the empty lock file at `path` when it is still the
/// file seen empty twice; returns whether the lock is now ours.
fn take_over_empty(path: &Utf8Path, seen: EmptyLook) -> Result<bool, BackendError> {
    let mut file = match OpenOptions::new()
        .write(true)
        .custom_flags(guarded_flags())
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_error(path, e)),
    };
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    if EmptyLook::of(&meta) != Some(seen) {
        return Ok(false);
    }
    tracing::warn!(lock = %path, "taking over an empty dot-lock left by a crash");
    file.write_all(lock_contents().as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(path, e))?;
    Ok(true)
}

/// Who holds a dot-lock, as far as its file tells.
#[derive(Debug, PartialEq, Eq)]
enum Holder {
    /// Released meanwhile.
    Gone,
    /// A live process, or one too young to judge.
    Live,
    /// A process that is gone, or a lock older than cPanel's limit.
    Dead { inode: u64 },
    /// This process, through no thread of it: a lock it failed to remove.
    ThisProcess,
    /// Nothing in it yet.
    Empty(EmptyLook),
}

/// An empty lock file as seen once: the same file is seen again only with the same inode
/// and mtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct EmptyLook {
    inode: u64,
    mtime: (i64, i64),
}

impl EmptyLook {
    fn of(meta: &fs::Metadata) -> Option<Self> {
        (meta.len() == 0).then(|| Self {
            inode: meta.ino(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
        })
    }
}

/// What the dot-lock at `path` tells of its holder. The caller has claimed `path`, so no
/// thread of this process holds it.
fn inspect(path: &Utf8Path) -> Result<Holder, BackendError> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(guarded_flags())
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Holder::Gone),
        Err(e) => return Err(io_error(path, e)),
    };
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    if let Some(look) = EmptyLook::of(&meta) {
        return Ok(Holder::Empty(look));
    }
    let mut contents = String::new();
    let _ = io::Read::read_to_string(&mut io::Read::take(&file, MAX_LOCK_FILE), &mut contents);
    let pid = contents
        .lines()
        .next()
        .and_then(|pid| pid.trim().parse::<i32>().ok())
        .filter(|pid| *pid > 0);
    if pid.is_some_and(|pid| u32::try_from(pid) == Ok(std::process::id())) {
        return Ok(Holder::ThisProcess);
    }
    let owner_alive = pid
        .and_then(rustix::process::Pid::from_raw)
        .map(|pid| rustix::process::test_kill_process(pid) != Err(rustix::io::Errno::SRCH));
    let age = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or_default();
    // A lock naming no readable pid is judged by its age alone.
    if owner_alive == Some(false) || age > STALE_AFTER {
        Ok(Holder::Dead { inode: meta.ino() })
    } else {
        Ok(Holder::Live)
    }
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
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    format!(
        "{:x}-{:x}-{:x}",
        // Asked once: the process never forks.
        *PID.get_or_init(std::process::id),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn folder() -> (tempfile::TempDir, Utf8PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = Utf8PathBuf::from_path_buf(dir.path().to_owned()).unwrap();
        (dir, path)
    }

    fn names(folder: &Utf8Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn locks_from_one_source_name_this_process_and_leave_nothing_behind() {
        let (_dir, folder) = folder();
        let source = LockSource::new(folder.clone());
        let deadline = Deadline::after(Duration::from_secs(5));
        let a = DotLock::acquire(&folder.join("a.json"), &source, deadline).unwrap();
        let b = DotLock::acquire(&folder.join("b.json"), &source, deadline).unwrap();
        for lock in ["a.json.lock", "b.json.lock"] {
            let path = folder.join(lock);
            let contents = fs::read_to_string(&path).unwrap();
            let pid = std::process::id().to_string();
            assert_eq!(contents.lines().next(), Some(pid.as_str()), "{lock}");
            assert_eq!(inspect(&path).unwrap(), Holder::ThisProcess, "{lock}");
        }

        let short = Deadline::after(Duration::from_millis(50));
        let held = DotLock::acquire(&folder.join("a.json"), &source, short).unwrap_err();
        assert!(
            matches!(held, BackendError::Locked { .. }),
            "a held lock is not taken twice: {held}"
        );

        drop((a, b));
        assert_eq!(names(&folder).len(), 1, "only the source file is left");
        drop(source);
        assert!(names(&folder).is_empty(), "{:?}", names(&folder));
    }

    #[test]
    fn a_source_file_removed_behind_its_back_is_written_again() {
        let (_dir, folder) = folder();
        let source = LockSource::new(folder.clone());
        let deadline = Deadline::after(Duration::from_secs(5));
        drop(DotLock::acquire(&folder.join("a.json"), &source, deadline).unwrap());
        for name in names(&folder) {
            fs::remove_file(folder.join(name)).unwrap();
        }
        let lock = DotLock::acquire(&folder.join("a.json"), &source, deadline).unwrap();
        let contents = fs::read_to_string(folder.join("a.json.lock")).unwrap();
        assert_eq!(contents, lock_contents());
        drop((lock, source));
        assert!(names(&folder).is_empty(), "{:?}", names(&folder));
    }

    #[test]
    fn a_dot_lock_naming_no_positive_pid_is_judged_by_its_age_alone() {
        let (_dir, folder) = folder();
        for contents in ["-1\nx\n", "0\nx\n", "-2147483648\n"] {
            let path = folder.join("a.json.lock");
            fs::write(&path, contents).unwrap();
            assert_eq!(
                inspect(&path).unwrap(),
                Holder::Live,
                "{contents:?}: a young lock is kept"
            );
        }
    }

    #[test]
    fn an_empty_lock_seen_twice_is_taken_over_in_place() {
        let (_dir, folder) = folder();
        let lock = folder.join("a.json.lock");
        fs::write(&lock, "").unwrap();
        let inode = fs::metadata(&lock).unwrap().ino();
        let source = LockSource::new(folder.clone());
        let deadline = Deadline::after(Duration::from_secs(5));
        let held = DotLock::acquire(&folder.join("a.json"), &source, deadline).unwrap();
        let meta = fs::metadata(&lock).unwrap();
        assert_eq!(meta.ino(), inode, "overwritten in place, not replaced");
        assert_eq!(fs::read_to_string(&lock).unwrap(), lock_contents());
        drop((held, source));
        assert!(names(&folder).is_empty(), "{:?}", names(&folder));
    }

    #[test]
    fn a_lock_this_process_left_behind_is_taken_back_at_once() {
        let (_dir, folder) = folder();
        fs::write(folder.join("a.json.lock"), lock_contents()).unwrap();
        let source = LockSource::new(folder.clone());
        let deadline = Deadline::after(Duration::from_millis(200));
        let held = DotLock::acquire(&folder.join("a.json"), &source, deadline).unwrap();
        drop((held, source));
        assert!(names(&folder).is_empty(), "{:?}", names(&folder));
    }
}

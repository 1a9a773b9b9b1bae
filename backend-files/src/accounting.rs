//! `var/cpanel/accounting.log`: one line appended per token written, under the same lock
//! protocol cPanel uses for it, the file kept at mode 0600.

use std::fs::{File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use whmtoken_core::BackendError;

use crate::lock::{Deadline, DotLock, LockSource, flock_exclusive};
use crate::safe_fs::{Expect, check, io_error, open_guarded};

/// The log, opened once per run and appended to under its locks. Threads of this process
/// queue on the mutex instead of polling the dot-lock.
#[derive(Debug)]
pub(crate) struct AccountingLog {
    path: Utf8PathBuf,
    locks: LockSource,
    open: Mutex<Option<File>>,
    /// Set once a wait for the log's locks timed out: the users after that fail at once
    /// instead of each waiting the whole timeout again.
    gave_up: AtomicBool,
}

impl AccountingLog {
    pub(crate) fn new(path: Utf8PathBuf) -> Self {
        let folder = path.parent().expect("the log is in a folder").to_owned();
        Self {
            path,
            locks: LockSource::new(folder),
            open: Mutex::new(None),
            gave_up: AtomicBool::new(false),
        }
    }

    pub(crate) fn append(&self, line: &str, timeout: Duration) -> Result<(), BackendError> {
        let path = &self.path;
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let deadline = Deadline::after(timeout);
        if self.gave_up.load(Ordering::Relaxed) {
            return Err(deadline.missed(&Utf8PathBuf::from(format!("{path}.lock"))));
        }
        let _dot_lock = DotLock::acquire(path, &self.locks, deadline)
            .inspect_err(|_| self.gave_up.store(true, Ordering::Relaxed))?;
        // Reopen when the log was rotated or removed since it was opened.
        let current = std::fs::symlink_metadata(path).ok().map(|m| m.ino());
        let held = open
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| m.ino());
        if current.is_none() || current != held {
            *open = Some(open_log(path)?);
        }
        let file = open.as_mut().expect("opened above");
        flock_exclusive(path, file, deadline)
            .inspect_err(|_| self.gave_up.store(true, Ordering::Relaxed))?;
        let written = file
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|e| io_error(path, e));
        let _ = file.unlock();
        written
    }
}

fn open_log(path: &Utf8Path) -> Result<File, BackendError> {
    let mut options = OpenOptions::new();
    options.append(true).create(true).mode(0o600);
    let file = open_guarded(path, &mut options)?
        .ok_or_else(|| io_error(path, std::io::ErrorKind::NotFound.into()))?;
    check(
        path,
        &file,
        Expect {
            owner: None,
            max_len: u64::MAX,
        },
    )?;
    file.set_permissions(Permissions::from_mode(0o600))
        .map_err(|e| io_error(path, e))?;
    Ok(file)
}

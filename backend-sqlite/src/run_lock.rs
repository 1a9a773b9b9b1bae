//! The run lock ([`Retirement::lock_runs`](whmtoken_core::Retirement::lock_runs)): an
//! exclusive `flock` on `<database>-runs.lock` beside the database, held for a whole retire
//! or restore run and lost with the process that held it.
//!
//! Not a transaction: a run's primitives each commit on their own (durable when they
//! return), so a transaction held for the run would hold every other writer off, the
//! converter included. Not a lock on the database file itself: closing any descriptor of
//! that file drops the POSIX locks SQLite holds on it. The lock file is opened without
//! following a symbolic link, and must be a regular file of this process's user (or
//! root's) that nobody else can write.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::time::{Duration, Instant};

use camino::Utf8PathBuf;
use rustix::fs::OFlags;
use whmtoken_core::BackendError;
use whmtoken_core::backend::describe_file_type;

use crate::error::Site;

/// Takes the run lock of the database at `site`, waiting up to `site.waited`.
pub(crate) fn take(site: &Site) -> Result<File, BackendError> {
    let path = Utf8PathBuf::from(format!("{}-runs.lock", site.path));
    let io_error = |source: io::Error| BackendError::Io {
        location: path.to_string(),
        source,
    };
    let flags = OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(i32::try_from(flags.bits()).expect("open flags fit in an int"))
        .open(&path)
        .map_err(|e| match e.raw_os_error() {
            Some(n) if n == rustix::io::Errno::LOOP.raw_os_error() => BackendError::Unsafe {
                location: path.to_string(),
                detail: "it is a symbolic link".to_owned(),
            },
            _ => io_error(e),
        })?;
    let meta = file.metadata().map_err(io_error)?;
    let me = rustix::process::geteuid().as_raw();
    let detail = if !meta.is_file() {
        Some(format!("it is {}", describe_file_type(&meta.file_type())))
    } else if meta.uid() != me && meta.uid() != 0 {
        Some(format!(
            "it is owned by uid {}, not by uid {me}",
            meta.uid()
        ))
    } else if meta.mode() & 0o022 != 0 {
        Some(format!(
            "others can write it (mode {:04o})",
            meta.mode() & 0o7777
        ))
    } else {
        None
    };
    if let Some(detail) = detail {
        return Err(BackendError::Unsafe {
            location: path.to_string(),
            detail,
        });
    }
    let deadline = Instant::now() + site.waited;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(BackendError::Locked {
                    location: path.to_string(),
                    waited: site.waited,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_error(e)),
        }
    }
}

//! `var/cpanel/accounting.log`: one line appended per token written, under the same lock
//! protocol cPanel uses for it, the file kept at mode 0600.
//!
//! Lines are queued in the users' order and written by a group commit ([`GroupSync`]):
//! whoever finds no write running takes every line queued so far, writes them whole in one
//! `write` on an `O_APPEND` descriptor under the log's locks (after a line feed when the
//! log's last byte is not one, so that a line torn by an earlier crash stays on its own),
//! and fdatasyncs the log, still under its flock; the others wait for it. A write or a
//! sync that fails is cut back to the log's length before it. A line is on disk before the
//! token it names becomes visible.

use std::fs::{File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use whmtoken_core::{AuditTurn, BackendError, Decision, UserName, error_chain};

use crate::crash::fault;
use crate::group_sync::{GroupSync, Ticket};
use crate::lock::{Deadline, DotLock, LockSource, flock_exclusive};
use crate::safe_fs::{Expect, check, io_error, open_guarded};

/// The log, opened once per run and appended to under its locks.
#[derive(Debug)]
pub(crate) struct AccountingLog {
    path: Utf8PathBuf,
    /// Who may own the log besides root: the tree's owner.
    owner: u32,
    locks: LockSource,
    /// Used by one commit at a time.
    open: Mutex<Option<File>>,
    /// Set once a wait for the log's locks timed out: the lines after that fail at once
    /// instead of each waiting the whole timeout again.
    gave_up: AtomicBool,
    lines: GroupSync<Vec<u8>, Arc<BackendError>>,
}

/// A line queued but not yet known to be on disk: [`AccountingLog::sync`] makes it so.
#[derive(Debug)]
pub(crate) struct Appended(Ticket);

/// An import's line, appended in its user's turn and not yet known to be on disk:
/// [`durable`](Self::durable) makes it so, before the token it names becomes visible.
#[derive(Debug)]
pub(crate) struct Pending<'a> {
    log: &'a AccountingLog,
    appended: Appended,
    timeout: Duration,
    turn: &'a AuditTurn<'a>,
}

impl Pending<'_> {
    /// Returns once the line is on disk; a failed commit tells the run itself
    /// ([`AccountingLog::sync`]).
    pub(crate) fn durable(self) -> Result<(), BackendError> {
        self.log.sync(self.appended, self.timeout, Some(self.turn))
    }
}

impl AccountingLog {
    pub(crate) fn new(path: Utf8PathBuf, owner: u32) -> Self {
        let folder = path.parent().expect("the log is in a folder").to_owned();
        Self {
            path,
            owner,
            locks: LockSource::new(folder),
            open: Mutex::new(None),
            gave_up: AtomicBool::new(false),
            lines: GroupSync::default(),
        }
    }

    /// Appends `line` and makes it durable.
    pub(crate) fn append_durably(&self, line: &str, timeout: Duration) -> Result<(), BackendError> {
        let appended = self.append(line);
        self.sync(appended, timeout, None)
    }

    /// In `turn`, appends the line that `decision` calls for (none for a key already
    /// present): what [`Backend::import`](whmtoken_core::Backend::import) writes for `user`,
    /// made durable with [`Pending::durable`], waiting at most `timeout` for the log's locks.
    pub(crate) fn record<'a>(
        &'a self,
        turn: &'a AuditTurn<'a>,
        user: &UserName,
        decision: &Decision,
        timeout: Duration,
    ) -> Result<Option<Pending<'a>>, BackendError> {
        let mut appended = None;
        turn.record(user, decision, &mut |event| {
            appended = Some(self.append(&event.accounting_line()));
            Ok(())
        })?;
        Ok(appended.map(|appended| Pending {
            log: self,
            appended,
            timeout,
            turn,
        }))
    }

    /// Queues `line` after the lines queued before it; [`sync`](Self::sync) writes it.
    pub(crate) fn append(&self, line: &str) -> Appended {
        Appended(self.lines.ticket(|batch| {
            batch.extend_from_slice(line.as_bytes());
            batch.push(b'\n');
        }))
    }

    /// Returns once `appended`'s line is written and on disk, waiting at most `timeout` for
    /// the log's locks; one write and one fdatasync serve every line queued meanwhile.
    ///
    /// Within a run (`turn`), a commit is refused once an earlier one of the run failed,
    /// and a failure is made known to the run before any later commit can start: after the
    /// log fails, no later line, and so no later token, is written.
    pub(crate) fn sync(
        &self,
        appended: Appended,
        timeout: Duration,
        turn: Option<&AuditTurn<'_>>,
    ) -> Result<(), BackendError> {
        self.lines
            .wait(appended.0, |batch| {
                if let Some(turn) = turn {
                    turn.check_run().map_err(Arc::new)?;
                }
                self.write_durably(&batch, timeout).map_err(|e| {
                    if let Some(turn) = turn {
                        let _ = turn.durable(Err(duplicate(&e)));
                    }
                    Arc::new(e)
                })
            })
            .map_err(|e| duplicate(&e))
    }

    /// Writes `lines` under the log's locks, then fdatasyncs the log.
    fn write_durably(&self, lines: &[u8], timeout: Duration) -> Result<(), BackendError> {
        let path = &self.path;
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let deadline = Deadline::after(timeout);
        if self.gave_up.load(Ordering::Relaxed) {
            return Err(deadline.missed(&Utf8PathBuf::from(format!("{path}.lock"))));
        }
        let dot_lock = DotLock::acquire(path, &self.locks, deadline)
            .inspect_err(|_| self.gave_up.store(true, Ordering::Relaxed))?;
        // Reopen when the log was rotated or removed since it was opened.
        let current = std::fs::symlink_metadata(path).ok().map(|m| m.ino());
        let held = open
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| m.ino());
        if current.is_none() || current != held {
            let file = open_log(path, self.owner, current.is_none())
                .map_err(|e| for_writing(e, "open for appending"))?;
            *open = Some(file);
        }
        let file = open.as_ref().expect("opened above");
        flock_exclusive(path, file, deadline)
            .inspect_err(|_| self.gave_up.store(true, Ordering::Relaxed))?;
        // Synced under the flock, so that a failed sync can be cut back too; the dot-lock
        // goes first, so that the sync makes its removal durable as well.
        let written = append_whole(file, lines);
        drop(dot_lock);
        let written = written
            .map_err(|e| for_writing(io_error(path, e), "write"))
            .and_then(|before| {
                fault("log-sync")
                    .and_then(|()| file.sync_data())
                    .map_err(|e| {
                        cut_back(file, before);
                        for_writing(io_error(path, e), "sync")
                    })
            });
        let _ = file.unlock();
        written
    }
}

/// The same failure again, for each line a failed commit carried.
fn duplicate(error: &BackendError) -> BackendError {
    match error {
        BackendError::Locked { location, waited } => BackendError::Locked {
            location: location.clone(),
            waited: *waited,
        },
        BackendError::Io { location, source } => BackendError::Io {
            location: location.clone(),
            source: std::io::Error::new(source.kind(), error_chain(source)),
        },
        BackendError::UnsafeToWrite { location, detail } => BackendError::UnsafeToWrite {
            location: location.clone(),
            detail: detail.clone(),
        },
        BackendError::AuditUnavailable { location, cause } => BackendError::AuditUnavailable {
            location: location.clone(),
            cause: cause.clone(),
        },
        other => BackendError::Other {
            backend: "files",
            source: error_chain(other).into(),
        },
    }
}

/// Writes `lines` in one `write`, after a line feed when the last byte is not one, and
/// returns the log's length before it. Under the flock nobody else appends: when the write
/// fails part way (a full disk), the log is cut back to where it was.
fn append_whole(file: &File, lines: &[u8]) -> std::io::Result<u64> {
    let before = file.metadata()?.len();
    let mut last = [b'\n'];
    if before > 0 {
        file.read_at(&mut last, before - 1)?;
    }
    let mut whole = Vec::with_capacity(lines.len() + 1);
    if last[0] != b'\n' {
        whole.push(b'\n');
    }
    whole.extend_from_slice(lines);
    let mut out = file;
    let result = match out.write(&whole) {
        Ok(n) if n == whole.len() => Ok(()),
        // Short: the rest, to learn why (or to finish, when it was only interrupted).
        Ok(n) => out.write_all(&whole[n..]),
        Err(e) => Err(e),
    };
    if result.is_err() {
        let _ = file.set_len(before);
    }
    result.map(|()| before)
}

/// After a failed sync, the lines just written are cut off (what the file system still
/// writes later must not leave a fragment of them, nor lines naming tokens that were not
/// stored), and the cut is flushed as far as the disk allows. An append-only log refuses
/// the cut: its lines stay.
fn cut_back(file: &File, before: u64) {
    if file.set_len(before).is_ok() {
        let _ = file.sync_data();
    }
}

/// The log is only ever written: a refusal says `refusing to write`, and a failure of the
/// system says what it failed to do (`…/accounting.log: cannot write: No space left on
/// device`), the system's error kept as the cause.
fn for_writing(error: BackendError, action: &'static str) -> BackendError {
    match error {
        BackendError::Unsafe { location, detail } => {
            BackendError::UnsafeToWrite { location, detail }
        }
        BackendError::Io { location, source } => BackendError::Io {
            location,
            source: std::io::Error::new(source.kind(), Failed { action, source }),
        },
        other => other,
    }
}

/// `cannot <action>`, caused by the system's error.
#[derive(Debug)]
struct Failed {
    action: &'static str,
    source: std::io::Error,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot {}", self.action)
    }
}

impl std::error::Error for Failed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Opens the log for appending, creating it when `missing`; a new log's folder entry is
/// made durable before any line is written to it.
fn open_log(path: &Utf8Path, owner: u32, missing: bool) -> Result<File, BackendError> {
    let mut options = OpenOptions::new();
    options.read(true).append(true).create(true).mode(0o600);
    let file = open_guarded(path, &mut options)?
        .ok_or_else(|| io_error(path, std::io::ErrorKind::NotFound.into()))?;
    check(
        path,
        &file,
        Expect {
            owner: Some(owner),
            max_len: u64::MAX,
            secret: false,
        },
    )?;
    // Made private when it is not; an append-only log (`chattr +a`, which admins set on
    // audit logs) refuses the change and is written as it is.
    let mode = file
        .metadata()
        .map_err(|e| io_error(path, e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0
        && let Err(e) = file.set_permissions(Permissions::from_mode(0o600))
    {
        tracing::warn!(log = %path, mode = mode & 0o7777, error = %e, "cannot make the log private");
    }
    if missing {
        let folder = path.parent().expect("the log is in a folder");
        File::open(folder)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_error(folder, e))?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    use whmtoken_core::error_chain;

    fn log_in(dir: &tempfile::TempDir) -> (AccountingLog, Utf8PathBuf) {
        let path = Utf8Path::from_path(dir.path())
            .unwrap()
            .join("accounting.log");
        // Owned by whoever runs the tests: root on a server, maybe not here.
        let owner = rustix::process::geteuid().as_raw();
        (AccountingLog::new(path.clone(), owner), path)
    }

    #[test]
    fn a_failed_write_says_write() {
        let dir = tempfile::tempdir().unwrap();
        let (log, path) = log_in(&dir);
        log.append_durably("first", Duration::from_secs(1)).unwrap();
        // The log as held, but open for reading only: the next append cannot write it.
        *log.open.lock().unwrap() = Some(File::open(&path).unwrap());
        let err = log
            .append_durably("second", Duration::from_secs(1))
            .unwrap_err();
        assert_eq!(
            error_chain(&err),
            format!("{path}: cannot write: Bad file descriptor (os error 9)")
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first\n");
    }

    #[test]
    fn a_log_that_is_a_symbolic_link_is_refused_for_writing() {
        let dir = tempfile::tempdir().unwrap();
        let (log, path) = log_in(&dir);
        std::os::unix::fs::symlink("elsewhere", &path).unwrap();
        let err = log
            .append_durably("line", Duration::from_secs(1))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("refusing to write {path}: it is a symbolic link")
        );
    }

    #[test]
    fn a_torn_last_line_stays_on_its_own_and_the_next_line_is_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (log, path) = log_in(&dir);
        std::fs::write(&path, "whole\ntorn:CREATEAPITOK").unwrap();
        log.append_durably("next", Duration::from_secs(1)).unwrap();
        log.append_durably("after", Duration::from_secs(1)).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "whole\ntorn:CREATEAPITOK\nnext\nafter\n"
        );
    }
}

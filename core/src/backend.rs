//! The traits a storage backend implements, and the error type they all report in.
//!
//! # Contract
//! - Every method is synchronous and may be called from several threads at once.
//! - [`TokenDatabase::import`] is atomic: it takes the backend's lock for the user, reads the
//!   current tokens, calls [`ImportRequest::decide`], writes the result (if any) durably,
//!   and releases the lock. A reader never sees a half-written token set, and a concurrent
//!   writer's tokens are never lost.
//! - Every token and every top-level or per-token key that the converter does not touch is
//!   kept exactly as it was.
//! - Nothing that holds an [`AccessHash`] is ever logged or put in an error; errors name the
//!   location and what is wrong with it.
//! - Backends map their private errors into [`BackendError`]; core never sees their types.

use std::fmt;
use std::time::Duration;

use crate::acl::Privileges;
use crate::audit::AuditEvent;
use crate::clock::Clock;
use crate::import::{Decision, ImportError, ImportRequest};
use crate::secret::AccessHash;
use crate::token::TokenSet;
use crate::user::UserName;

/// What a user is to WHM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WhmRole {
    /// `root`, who holds every ACL.
    Root,
    /// A reseller with its privileges.
    Reseller(Privileges),
    /// Neither root nor a reseller (perhaps no such user at all).
    NotReseller,
}

impl WhmRole {
    pub fn privileges(&self) -> Option<Privileges> {
        match self {
            Self::Root => Some(Privileges::All),
            Self::Reseller(p) => Some(p.clone()),
            Self::NotReseller => None,
        }
    }
}

/// The directory of WHM users: who is root, who is a reseller, with which ACLs.
pub trait UserDirectory: Send + Sync {
    fn role(&self, user: &UserName) -> Result<WhmRole, BackendError>;

    /// Every reseller, sorted by name, as the backend lists them. Root is not a reseller
    /// unless the data lists it (cPanel's `--all-resellers` then processes root too).
    /// Names are returned unvalidated so that the pipeline reports a bad one as a failed
    /// user instead of dropping it unseen.
    fn resellers(&self) -> Result<Vec<String>, BackendError>;
}

/// Where access hashes come from.
pub trait AccessHashSource: Send + Sync {
    /// The raw access hash of `user`, or `None` when the user has none.
    fn read_access_hash(&self, user: &UserName) -> Result<Option<AccessHash>, BackendError>;
}

/// The WHM API token database.
pub trait TokenDatabase: Send + Sync {
    /// The user's tokens, read without taking a lock and without creating anything.
    fn tokens(&self, user: &UserName) -> Result<TokenSet, BackendError>;

    /// Atomically decides and applies `request` for `user`; see the module contract.
    fn import(&self, user: &UserName, request: &ImportRequest) -> Result<Decision, BackendError>;

    /// Appends one audit record.
    fn append_audit(&self, event: &AuditEvent) -> Result<(), BackendError>;

    /// Imports every item and audits each entry written, returning one outcome per item in
    /// the same order. The default runs [`import_and_audit`] on up to `jobs` threads; a
    /// transactional backend overrides it to commit many users at once. Either way a
    /// failure for one item must not undo the others.
    fn import_all(
        &self,
        items: &[ImportItem],
        clock: &dyn Clock,
        jobs: usize,
    ) -> Vec<Result<Imported, BackendError>> {
        crate::parallel::map(items, jobs, |item| {
            // A bug hit by one user fails that user, not the report of everyone else.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                import_and_audit(self, item, clock)
            }))
            .unwrap_or_else(|_| {
                let source = format!("internal error while importing for {}", item.user).into();
                Err(BackendError::Other {
                    backend: "pipeline",
                    source,
                })
            })
        })
    }
}

/// One user's import within a run.
#[derive(Clone, Debug)]
pub struct ImportItem {
    pub user: UserName,
    pub request: ImportRequest,
}

/// What an import did, and whether its audit record was written.
#[derive(Debug)]
pub struct Imported {
    pub decision: Decision,
    /// `Ok` when nothing needed auditing or the record was written.
    pub audit: Result<(), BackendError>,
}

/// Imports one item and, when an entry was written, appends its audit record.
pub fn import_and_audit<D: TokenDatabase + ?Sized>(
    db: &D,
    item: &ImportItem,
    clock: &dyn Clock,
) -> Result<Imported, BackendError> {
    let decision = db.import(&item.user, &item.request)?;
    let audit = match &decision {
        Decision::Write { entry, .. } => db.append_audit(&AuditEvent {
            time: clock.now(),
            user: item.user.clone(),
            token_name: entry.name.clone(),
        }),
        Decision::AlreadyPresent { .. } => Ok(()),
    };
    Ok(Imported { decision, audit })
}

/// A complete backend, as the command line uses it.
pub trait Backend: UserDirectory + AccessHashSource + TokenDatabase + fmt::Debug {
    /// Its `kind` in the config file and in `--json` output (`files`, `sqlite`, ...).
    fn kind(&self) -> &'static str;

    /// Runs `reads`, a run's planning, which reads from up to `--jobs` threads at once and
    /// never writes. A transactional backend can group those reads into a few read
    /// transactions instead of one per query; the default just runs them.
    fn read_together(&self, reads: &mut dyn FnMut()) {
        reads();
    }

    /// Problems found in the backend's data that did not stop it, such as unusable lines
    /// that were skipped; the command line shows them as warnings.
    fn notices(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A failure reported by a backend. Messages name the location (a file path, a database
/// and table) and what was wrong there, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{location}: {source}")]
    Io {
        location: String,
        source: std::io::Error,
    },

    /// Data that cannot be parsed or has the wrong shape; it was left as it was.
    #[error("{location}: {detail}")]
    Corrupt { location: String, detail: String },

    /// Something refused for safety: a symbolic link, a FIFO, a wrong owner, a huge file.
    #[error("refusing to read {location}: {detail}")]
    Unsafe { location: String, detail: String },

    /// Another process holds the lock; the same run can be retried later.
    #[error("{location} is locked by another process (waited {} s); try again later", waited.as_secs_f64())]
    LockTimeout { location: String, waited: Duration },

    #[error("{location}: token file is {what}: this can indicate a compromised server")]
    Immutable {
        location: String,
        what: &'static str,
    },

    #[error(transparent)]
    Import(#[from] ImportError),

    /// A backend-specific failure that fits none of the above.
    #[error("{backend} backend: {source}")]
    Other {
        backend: &'static str,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl BackendError {
    /// Whether the same operation may succeed when simply tried again later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::LockTimeout { .. })
    }
}

/// How long a backend waits for a lock held by another live process by default.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// How a refused file is described in messages: `a symbolic link`, `a FIFO`, ...
pub fn describe_file_type(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "a regular file"
    }
}

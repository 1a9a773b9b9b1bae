//! [`BackendError`]: what a backend reports, in terms every backend shares. Apart from the
//! seam ([`crate::backend`]) so that what the seam's types use (the audit turn) can name it
//! without importing the seam.

use std::io;
use std::time::Duration;

use crate::import::ImportError;

/// A failure reported by a backend: what happened, and where. Messages name the location
/// (a file path, a database and table) and what was wrong there, never a secret. An
/// underlying error is carried once, as [`std::error::Error::source`], never repeated in
/// the message; show the whole chain with [`crate::error_chain()`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// Something the operation needs does not exist, such as a user the backend has no
    /// entry for.
    #[error("{location}: {what}")]
    NotFound { location: String, what: String },

    /// Another process holds the lock; the same run can be retried later.
    #[error("{location} is locked by another process (waited {} s); try again later", waited.as_secs_f64())]
    Locked { location: String, waited: Duration },

    /// Data that cannot be parsed or has the wrong shape; it was left as it was.
    #[error("{location}: {detail}")]
    Corrupt { location: String, detail: String },

    /// Something refused for safety: a symbolic link, a FIFO, a wrong owner, a huge file.
    #[error("refusing to read {location}: {detail}")]
    Unsafe { location: String, detail: String },

    /// The same refusal where the backend was to write, such as an audit log that is a
    /// symbolic link.
    #[error("refusing to write {location}: {detail}")]
    UnsafeToWrite { location: String, detail: String },

    /// A secret's file that others than its owner can write: another tenant could choose
    /// the secret. Refused until its mode is fixed.
    #[error("{location} is writable by others (mode {mode:04o}); make it 0600 and run again")]
    WritableByOthers { location: String, mode: u32 },

    /// A token file carries the immutable or append-only attribute, which cPanel never
    /// sets: possibly the work of an intruder, so it is reported, not worked around.
    #[error("{location}: token file is {what}: this can indicate a compromised server")]
    Tampered {
        location: String,
        what: &'static str,
    },

    /// Not attempted: an earlier audit record of the run could not be written, and no token
    /// is stored without one.
    #[error("not attempted: the audit log {location} cannot be written ({cause})")]
    AuditUnavailable { location: String, cause: String },

    /// Not attempted: an earlier flush of the place where it would be stored failed. A file
    /// system can then report later flushes of that place as done although nothing more
    /// reaches the disk (ext4 after its journal aborted), so nothing more is stored there.
    #[error("not attempted: an earlier flush of {location} failed ({cause})")]
    StoreUnavailable { location: String, cause: String },

    /// The backend cannot do this at all.
    #[error("the {backend} backend does not support {operation}")]
    Unsupported {
        backend: &'static str,
        operation: &'static str,
    },

    /// The operating system refused or failed an operation at `location`.
    #[error("{location}")]
    Io {
        location: String,
        #[source]
        source: io::Error,
    },

    /// The key cannot be stored under any name the converter may use.
    #[error(transparent)]
    Import(#[from] ImportError),

    /// A backend-specific failure that fits none of the above.
    #[error("{backend} backend")]
    Other {
        backend: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl BackendError {
    /// Whether the same operation may succeed when simply tried again later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Locked { .. })
    }
}

//! The seam's log primitive: the files of cPanel's logs folder, listed and opened by the
//! backend (files: `usr/local/cpanel/logs` under its root; SQLite: `<db stem>-logs` beside
//! the database; or the folder `--logs` names), read and understood by core
//! ([`crate::usage`]). A backend lists only the names [`crate::usage::LogName::parse`]
//! accepts, and opens each with its safe opens (a regular file, never through a symbolic
//! link); core decodes gzip and cuts lines in bounded memory.

use std::fmt;
use std::io::Read;

use crate::error::BackendError;

/// One log file a backend found, not opened yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFile {
    /// Its name under the logs folder: `access_log`, `access_log.1`,
    /// `archive/access_log-11-2026.gz`.
    pub name: String,
    /// Where it is, for messages and output (its path).
    pub location: String,
    /// When it was last written, epoch seconds.
    pub modified: i64,
}

/// A server's logs folder, as a backend hands it out ([`crate::Backend::logs`]).
pub trait Logs: Send + Sync + fmt::Debug {
    /// The folder, for messages and output.
    fn location(&self) -> &str;

    /// Every file of the two logs (names [`crate::usage::LogName::parse`] accepts), in no
    /// particular order.
    fn files(&self) -> Result<Vec<LogFile>, BackendError>;

    /// Opens `file` (one of [`files`](Self::files)) to read its bytes as stored (gzip or
    /// not), with the backend's checks: a regular file, not a symbolic link.
    fn open(&self, file: &LogFile) -> Result<Box<dyn Read + Send + '_>, BackendError>;
}

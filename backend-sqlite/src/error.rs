//! How SQLite's failures become [`BackendError`]s.
//!
//! Every message names the database file and, where one is involved, the table and user.
//! rusqlite's errors carry result codes, SQL text written in this crate and SQLite's own
//! messages, never a bound value, so no access hash can reach a message through them.

use std::error::Error;
use std::fmt;
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use rusqlite::ErrorCode;
use whmtoken_core::BackendError;

/// What to do about a damaged database, for its messages.
const REPAIR: &str =
    "put back a copy, or make a new one with `fake-server build` or `fake-server generate`";

/// The name this backend reports itself by in [`BackendError::Other`].
pub(crate) const BACKEND: &str = "sqlite";

/// A rusqlite error with the place it happened, for [`BackendError::Other`]. SQLite's own
/// message is part of this one's, so it is not a `source()` as well (rusqlite's errors
/// repeat their causes in their messages).
#[derive(Debug)]
pub(crate) struct SqlError {
    location: String,
    error: rusqlite::Error,
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.error)
    }
}

impl Error for SqlError {}

/// Where in the database something happened: the file, and optionally a table and a user.
#[derive(Clone, Debug)]
pub(crate) struct Site {
    pub(crate) path: Utf8PathBuf,
    /// How long a writer waits for another one: what a lock timeout reports.
    pub(crate) waited: Duration,
}

impl Site {
    pub(crate) fn new(path: &Utf8Path, waited: Duration) -> Self {
        Self {
            path: path.to_owned(),
            waited,
        }
    }

    /// `<path>`, `<path>, table <t>` or `<path>, table <t>, user <u>`.
    pub(crate) fn location(&self, table: Option<&str>, user: Option<&str>) -> String {
        match (table, user) {
            (Some(t), Some(u)) => format!("{}, table {t}, user {u}", self.path),
            (Some(t), None) => format!("{}, table {t}", self.path),
            (None, _) => self.path.to_string(),
        }
    }

    /// Another process held the database's write lock for longer than the lock timeout.
    pub(crate) fn locked(&self) -> BackendError {
        BackendError::Locked {
            location: self.path.to_string(),
            waited: self.waited,
        }
    }

    /// Maps a rusqlite error met in `table` (or the database as a whole).
    pub(crate) fn sql(&self, table: Option<&str>, e: rusqlite::Error) -> BackendError {
        self.sql_for(table, None, e)
    }

    /// Maps a rusqlite error met while working on `user`'s rows of `table`.
    pub(crate) fn sql_for(
        &self,
        table: Option<&str>,
        user: Option<&str>,
        e: rusqlite::Error,
    ) -> BackendError {
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => return self.locked(),
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
                return BackendError::Corrupt {
                    location: self.location(None, None),
                    detail: format!("{e}: the database is damaged; {REPAIR}"),
                };
            }
            _ => {}
        }
        let location = self.location(table, user);
        match e {
            rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::Utf8Error(..) => BackendError::Corrupt {
                location,
                detail: e.to_string(),
            },
            error => BackendError::Other {
                backend: BACKEND,
                source: Box::new(SqlError { location, error }),
            },
        }
    }

    /// Data of the wrong shape in `table`, for `user`.
    pub(crate) fn corrupt(
        &self,
        table: &str,
        user: Option<&str>,
        detail: impl Into<String>,
    ) -> BackendError {
        BackendError::Corrupt {
            location: self.location(Some(table), user),
            detail: detail.into(),
        }
    }

    pub(crate) fn io(&self, source: std::io::Error) -> BackendError {
        BackendError::Io {
            location: self.path.to_string(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> Site {
        Site::new(Utf8Path::new("/srv/server.db"), Duration::from_secs(3))
    }

    fn failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn busy_is_a_retryable_lock_timeout() {
        let e = site().sql(Some("tokens"), failure(rusqlite::ffi::SQLITE_BUSY));
        assert!(e.is_retryable());
        assert_eq!(
            e.to_string(),
            "/srv/server.db is locked by another process (waited 3 s); try again later"
        );
    }

    #[test]
    fn not_a_database_is_corrupt() {
        let e = site().sql(None, failure(rusqlite::ffi::SQLITE_NOTADB));
        assert!(matches!(e, BackendError::Corrupt { .. }), "{e:?}");
        assert!(e.to_string().starts_with("/srv/server.db: "), "{e}");
    }

    #[test]
    fn other_failures_name_the_backend_table_and_user() {
        let e = site().sql_for(
            Some("users"),
            Some("bob"),
            failure(rusqlite::ffi::SQLITE_CONSTRAINT),
        );
        let BackendError::Other { backend, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(*backend, "sqlite");
        assert!(
            whmtoken_core::error_chain(&e)
                .starts_with("sqlite backend: /srv/server.db, table users, user bob: "),
            "{e}"
        );
    }
}

//! The SQLite backend: one database file is one whole fake server (users, resellers,
//! access hashes, WHM API tokens and accounting lines), for test environments that need
//! many throwaway servers.
//!
//! Its semantics are those of the file backend: the same server gives the same roles,
//! access hashes, token entries, statuses and messages; only the locations in messages
//! differ (`<db>, table <t>, user <u>` instead of a file path).
//!
//! | what | where |
//! | --- | --- |
//! | users' uid and home, whether reseller and with which ACLs, raw access hash, an account's domain and owner | table `users` |
//! | WHM API tokens: one row per entry, the entry kept as cPanel's JSON text | table `tokens` |
//! | audit lines (`accounting.log`) | table `accounting` |
//! | server settings (`allow_deprecated_accesshash`, as in `cpanel.config`) | table `settings` |
//! | cpsrvd's logs (`access_log`, `api_tokens_log` and their rotations), as files | the folder `<db stem>-logs` beside the database |
//!
//! A user's token database is their rows of `tokens`: a user with token rows and no row in
//! `users` is an account that no longer exists but still has tokens, as a token file can
//! outlive its account. One token is looked up by the `UNIQUE (user, hash)` index.
//!
//! Every write is a `BEGIN IMMEDIATE` transaction (a run's imports are batched through the
//! [`BatchImport`] capability, with a savepoint per user when a write fails), so one user's
//! failure never undoes another user's import. Readers never wait for writers (WAL);
//! writers wait for each other up to the lock timeout, then fail with a retryable
//! [`BackendError::Locked`]. A run's planning reads through a [`read session`]
//! (`Backend::read_session`) of a few read transactions.
//!
//! [`read session`]: whmtoken_core::Backend::read_session

mod accounts;
mod batch;
mod error;
#[cfg(feature = "harness")]
mod harness;
mod logs;
mod open;
mod readers;
mod retire;
mod revoke;
mod run_lock;
mod schema;
mod settings;
mod tokens;

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};
use serde::{Deserialize, Serialize};
use whmtoken_core::backend::DEFAULT_LOCK_TIMEOUT;
use whmtoken_core::{
    AccessHash, AuditEvent, AuditTurn, Backend, BackendConfig, BackendError, BatchImport, Clock,
    Decision, ImportItem, ImportRequest, Privileges, Reads, ServerSettings, TokenEntry, TokenHash,
    TokenSet, UserName, WhmRole,
};

use crate::error::Site;

/// The `[backend]` section for `kind = "sqlite"`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SqliteConfig {
    /// The database file; relative paths are taken from the config file's folder.
    pub path: Utf8PathBuf,
}

impl BackendConfig for SqliteConfig {
    const KIND: &'static str = "sqlite";

    fn resolve_relative(&mut self, base: &Utf8Path) {
        self.path = base
            .join(&self.path)
            .components()
            .filter(|c| *c != camino::Utf8Component::CurDir)
            .collect();
    }

    fn open(&self, lock_timeout: Duration) -> Result<Box<dyn Backend>, BackendError> {
        Ok(Box::new(
            SqliteBackend::open(self)?.with_lock_timeout(lock_timeout),
        ))
    }
}

/// A fake server in one SQLite file.
///
/// One connection, shared by the threads that use this value; other values and other
/// processes on the same file are kept apart by SQLite's own locking.
pub struct SqliteBackend {
    site: Site,
    conn: Mutex<Connection>,
    /// Set once a batch could not begin because another process held the write lock past
    /// the lock timeout: the later batches of the run fail at once instead of each waiting
    /// again.
    gave_up_waiting: AtomicBool,
}

impl fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("path", &self.site.path)
            .field("lock_timeout", &self.site.waited)
            .finish_non_exhaustive()
    }
}

impl SqliteBackend {
    /// Opens an existing database and brings its schema up to date. A missing file is an
    /// error naming the path; so is a symbolic link or anything but a regular file.
    pub fn open(config: &SqliteConfig) -> Result<Self, BackendError> {
        let site = Site::new(&config.path, DEFAULT_LOCK_TIMEOUT);
        let conn = open::existing(&site)?;
        Ok(Self::with_connection(site, conn))
    }

    /// Creates a new, empty server at `path`, mode 0600. The file must not exist yet.
    pub fn create(path: &Utf8Path) -> Result<Self, BackendError> {
        let site = Site::new(path, DEFAULT_LOCK_TIMEOUT);
        let conn = open::new(&site)?;
        Ok(Self::with_connection(site, conn))
    }

    fn with_connection(site: Site, conn: Connection) -> Self {
        Self {
            site,
            conn: Mutex::new(conn),
            gave_up_waiting: AtomicBool::new(false),
        }
    }

    /// How long a write waits for another writer (SQLite's `busy_timeout`).
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        // sqlite3_busy_timeout only fails on a closed or misused handle, never on an open
        // connection; the value is kept for error messages either way.
        let _ = open::set_busy_timeout(
            self.conn.get_mut().unwrap_or_else(PoisonError::into_inner),
            timeout,
        );
        self.site.waited = timeout;
        self
    }

    /// The database file.
    pub fn path(&self) -> &Utf8Path {
        &self.site.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the connection rolled its transaction back on the way out
        // (rusqlite's Transaction drops to a rollback), so the connection is still sound.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` in its own `BEGIN IMMEDIATE` transaction and commits it; an error rolls
    /// it back.
    fn write<T>(
        &self,
        table: &'static str,
        user: Option<&str>,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, BackendError> {
        self.write_with(|tx| f(tx).map_err(|e| self.site.sql_for(Some(table), user, e)))
    }

    fn write_with<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.site.sql(None, e))?;
        let value = f(&tx)?;
        tx.commit().map_err(|e| self.site.sql(None, e))?;
        Ok(value)
    }

    fn no_such_user(&self, user: &str) -> BackendError {
        BackendError::NotFound {
            location: self.site.location(Some("users"), None),
            what: format!("no entry for user {user}"),
        }
    }

    fn access_hash_with(
        &self,
        conn: &Connection,
        user: &UserName,
    ) -> Result<Option<AccessHash>, BackendError> {
        let name = user.as_str();
        let sql = |e| self.site.sql_for(Some("users"), Some(name), e);
        let mut stmt = conn
            .prepare_cached("SELECT access_hash FROM users WHERE name = ?1")
            .map_err(sql)?;
        let mut rows = stmt.query([name]).map_err(sql)?;
        let Some(row) = rows.next().map_err(sql)? else {
            // As in the file backend, root needs no entry; anyone else does.
            return if user.is_root() {
                Ok(None)
            } else {
                Err(self.no_such_user(name))
            };
        };
        self.checked_access_hash(name, row.get_ref(0).map_err(sql)?)
    }

    /// The access hash held in `column` of `user`'s row, checked.
    fn checked_access_hash(
        &self,
        user: &str,
        column: ValueRef<'_>,
    ) -> Result<Option<AccessHash>, BackendError> {
        // Copied straight from SQLite's buffer into the secret: no other copy is made.
        match column {
            ValueRef::Null => Ok(None),
            ValueRef::Blob(raw) if raw.len() > AccessHash::MAX_LEN => Err(BackendError::Unsafe {
                location: self.site.location(Some("users"), Some(user)),
                detail: format!(
                    "its access hash is {} bytes, more than {}",
                    raw.len(),
                    AccessHash::MAX_LEN
                ),
            }),
            ValueRef::Blob(raw) => Ok(Some(AccessHash::copy_of(raw))),
            _ => Err(self
                .site
                .corrupt("users", Some(user), "the access hash is not a blob")),
        }
    }

    /// [`Reads::role_and_access_hash`] from one lookup of the user's row.
    fn role_and_access_hash_with(
        &self,
        conn: &Connection,
        user: &UserName,
    ) -> Result<(WhmRole, Option<AccessHash>), BackendError> {
        let name = user.as_str();
        let sql = |e| self.site.sql_for(Some("users"), Some(name), e);
        let mut stmt = conn
            .prepare_cached("SELECT reseller_acls, access_hash FROM users WHERE name = ?1")
            .map_err(sql)?;
        let mut rows = stmt.query([name]).map_err(sql)?;
        let row = rows.next().map_err(sql)?;
        let role = match row {
            _ if user.is_root() => WhmRole::Root,
            Some(row) => role_of(&self.site, name, row.get(0).map_err(sql)?)?,
            None => WhmRole::NotReseller,
        };
        let access_hash = match row {
            Some(row) if role != WhmRole::NotReseller => {
                self.checked_access_hash(name, row.get_ref(1).map_err(sql)?)?
            }
            // Root needs no entry; anyone else without one is no reseller.
            _ => None,
        };
        Ok((role, access_hash))
    }
}

/// Whether `user` has a row in `users`; root always has an account.
fn has_account_with(conn: &Connection, site: &Site, user: &UserName) -> Result<bool, BackendError> {
    if user.is_root() {
        return Ok(true);
    }
    let name = user.as_str();
    conn.prepare_cached("SELECT 1 FROM users WHERE name = ?1")
        .and_then(|mut stmt| stmt.exists([name]))
        .map_err(|e| site.sql_for(Some("users"), Some(name), e))
}

/// The reads of one user, made through `conn`.
fn role_with(conn: &Connection, site: &Site, user: &UserName) -> Result<WhmRole, BackendError> {
    if user.is_root() {
        return Ok(WhmRole::Root);
    }
    let name = user.as_str();
    let acls: Option<Option<String>> = conn
        .prepare_cached("SELECT reseller_acls FROM users WHERE name = ?1")
        .and_then(|mut stmt| stmt.query_row([name], |row| row.get(0)).optional())
        .map_err(|e| site.sql_for(Some("users"), Some(name), e))?;
    role_of(site, name, acls.flatten())
}

/// The role of `user` (not root), whose row holds `acls` in `reseller_acls`.
fn role_of(site: &Site, user: &str, acls: Option<String>) -> Result<WhmRole, BackendError> {
    let Some(acls) = acls else {
        return Ok(WhmRole::NotReseller);
    };
    let acls: Vec<String> = serde_json::from_str(&acls).map_err(|e| {
        site.corrupt(
            "users",
            Some(user),
            format!("the reseller ACLs are not a list of names ({e})"),
        )
    })?;
    Ok(WhmRole::Reseller(Privileges::from_list(acls)))
}

impl Reads for SqliteBackend {
    fn role(&self, user: &UserName) -> Result<WhmRole, BackendError> {
        role_with(&self.lock(), &self.site, user)
    }

    fn read_access_hash(&self, user: &UserName) -> Result<Option<AccessHash>, BackendError> {
        self.access_hash_with(&self.lock(), user)
    }

    fn role_and_access_hash(
        &self,
        user: &UserName,
    ) -> Result<(WhmRole, Option<AccessHash>), BackendError> {
        self.role_and_access_hash_with(&self.lock(), user)
    }

    fn tokens(&self, user: &UserName) -> Result<TokenSet, BackendError> {
        tokens::read(&self.lock(), &self.site, user.as_str())
    }

    fn token(&self, user: &UserName, key: &TokenHash) -> Result<Option<TokenEntry>, BackendError> {
        tokens::read_one(&self.lock(), &self.site, user.as_str(), key)
    }

    fn has_account(&self, user: &UserName) -> Result<bool, BackendError> {
        has_account_with(&self.lock(), &self.site, user)
    }
}

/// Planning's reads: through up to one extra connection per core, each in a read
/// transaction of its own (one lock and one schema check instead of one per query), never
/// through the main connection, which may be writing the slice before meanwhile; only
/// should no extra connection open do the reads go there, one at a time. Dropping the
/// session ends the read transactions.
struct ReadSession<'b> {
    backend: &'b SqliteBackend,
    readers: readers::Readers,
}

impl ReadSession<'_> {
    fn read<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        match self.readers.checkout(&self.backend.site) {
            Some(reader) => f(&reader),
            None => f(&self.backend.lock()),
        }
    }
}

impl Reads for ReadSession<'_> {
    fn role(&self, user: &UserName) -> Result<WhmRole, BackendError> {
        self.read(|conn| role_with(conn, &self.backend.site, user))
    }

    fn read_access_hash(&self, user: &UserName) -> Result<Option<AccessHash>, BackendError> {
        self.read(|conn| self.backend.access_hash_with(conn, user))
    }

    fn role_and_access_hash(
        &self,
        user: &UserName,
    ) -> Result<(WhmRole, Option<AccessHash>), BackendError> {
        self.read(|conn| self.backend.role_and_access_hash_with(conn, user))
    }

    fn tokens(&self, user: &UserName) -> Result<TokenSet, BackendError> {
        self.read(|conn| tokens::read(conn, &self.backend.site, user.as_str()))
    }

    fn token(&self, user: &UserName, key: &TokenHash) -> Result<Option<TokenEntry>, BackendError> {
        self.read(|conn| tokens::read_one(conn, &self.backend.site, user.as_str(), key))
    }

    fn has_account(&self, user: &UserName) -> Result<bool, BackendError> {
        self.read(|conn| has_account_with(conn, &self.backend.site, user))
    }
}

impl Drop for ReadSession<'_> {
    fn drop(&mut self) {
        self.readers.close();
    }
}

impl Backend for SqliteBackend {
    fn kind(&self) -> &'static str {
        SqliteConfig::KIND
    }

    fn log_folder(&self) -> Option<Utf8PathBuf> {
        Some(logs::folder_of(&self.site.path))
    }

    /// The folder beside the database (or `folder`); its files must be root's or the
    /// database owner's.
    fn logs(
        &self,
        folder: Option<&Utf8Path>,
    ) -> Result<Box<dyn whmtoken_core::Logs + '_>, BackendError> {
        let default = logs::folder_of(&self.site.path);
        let owner = std::fs::metadata(&self.site.path)
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .map_err(|e| self.site.io(e))?;
        Ok(Box::new(logs::LogFolder::open(
            folder.unwrap_or(&default),
            owner,
        )?))
    }

    fn resellers(&self) -> Result<Vec<String>, BackendError> {
        let conn = self.lock();
        let sql = |e| self.site.sql(Some("users"), e);
        let mut stmt = conn
            .prepare("SELECT name FROM users WHERE reseller_acls IS NOT NULL ORDER BY name")
            .map_err(sql)?;
        let names = stmt
            .query_map([], |row| row.get(0))
            .map_err(sql)?
            .collect::<Result<_, _>>()
            .map_err(sql)?;
        Ok(names)
    }

    fn token_users(&self) -> Result<Vec<String>, BackendError> {
        tokens::users(&self.lock(), &self.site)
    }

    fn server_settings(&self) -> Result<ServerSettings, BackendError> {
        settings::read(&self.lock(), &self.site)
    }

    /// The audit row is inserted in the same transaction as the token; the whole import
    /// runs in its turn, as every write takes the one connection.
    fn import(
        &self,
        user: &UserName,
        request: &ImportRequest,
        audit: &AuditTurn<'_>,
    ) -> Result<Decision, BackendError> {
        let name = user.as_str();
        audit.hold(|| {
            self.write_with(|tx| {
                let current = tokens::read(tx, &self.site, name)?;
                let decision = request.decide(&current)?;
                audit.record(user, &decision, &mut |event| {
                    tx.execute(
                        "INSERT INTO accounting (line) VALUES (?1)",
                        [event.accounting_line()],
                    )
                    .map(drop)
                    .map_err(|e| self.site.sql(Some("accounting"), e))
                })?;
                if let Decision::Write { entry, .. } = &decision {
                    tokens::upsert(tx, name, &request.hash, entry)
                        .map_err(|e| self.site.sql_for(Some("tokens"), Some(name), e))?;
                }
                Ok(decision)
            })
        })
    }

    fn append_audit(&self, event: &AuditEvent) -> Result<(), BackendError> {
        let line = event.accounting_line();
        self.write("accounting", None, |tx| {
            tx.execute("INSERT INTO accounting (line) VALUES (?1)", [&line])?;
            Ok(())
        })
    }

    fn read_session(&self) -> Option<Box<dyn Reads + '_>> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Some(Box::new(ReadSession {
            backend: self,
            readers: readers::Readers::new(cores),
        }))
    }

    fn batch(&self) -> Option<&dyn BatchImport> {
        Some(self)
    }

    fn retirement(&self) -> Option<&dyn whmtoken_core::Retirement> {
        Some(self)
    }

    fn accounts(&self) -> Result<Vec<whmtoken_core::Account>, BackendError> {
        accounts::read(self)
    }

    fn revoke(&self, user: &UserName, name: &str) -> Result<Option<TokenHash>, BackendError> {
        revoke::revoke(self, user, name)
    }
}

/// All users in a few transactions (see the `batch` module), on the calling thread: SQLite
/// has one writer at a time anyway.
impl BatchImport for SqliteBackend {
    fn import_batch(
        &self,
        items: &[ImportItem],
        clock: &dyn Clock,
    ) -> Vec<Result<Decision, BackendError>> {
        batch::import_all(
            &mut self.lock(),
            &self.site,
            items,
            clock,
            &self.gave_up_waiting,
        )
    }
}

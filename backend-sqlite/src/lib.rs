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
//! | users' uid and home, whether reseller and with which ACLs, raw access hash | table `users` |
//! | WHM API tokens: one row per entry, the entry kept as cPanel's JSON text | table `tokens` |
//! | audit lines (`accounting.log`) | table `accounting` |
//!
//! Every write is a `BEGIN IMMEDIATE` transaction (a run's imports are batched, with a
//! savepoint per user when a write fails), so one user's failure never undoes another
//! user's import. Readers never wait for writers (WAL); writers wait for each other up to
//! the lock timeout, then fail with a retryable [`BackendError::LockTimeout`].

mod batch;
mod error;
mod open;
mod readers;
mod schema;
mod tokens;

use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde::Deserialize;
use serde_json::Value;
use whmtoken_core::backend::DEFAULT_LOCK_TIMEOUT;
use whmtoken_core::{
    AccessHash, AccessHashSource, AuditEvent, Backend, BackendError, Clock, Decision, ImportItem,
    ImportRequest, Imported, Privileges, TokenDatabase, TokenHash, TokenSet, UserDirectory,
    UserName, WhmRole,
};

use crate::error::Site;

/// Access hashes larger than this are refused, as the file backend refuses such
/// `.accesshash` files (real ones are 990 bytes).
pub const MAX_ACCESS_HASH: usize = 64 * 1024;

/// One user for [`SqliteBackend::load`].
#[derive(Debug)]
pub struct SeedUser<'a> {
    pub name: &'a str,
    pub uid: u32,
    pub home: &'a str,
    /// `None`: not a reseller.
    pub reseller_acls: Option<&'a [String]>,
    /// The raw access hash, or `None` for none.
    pub access_hash: Option<&'a [u8]>,
    /// Existing tokens: key and the entry object as stored.
    pub tokens: Vec<(TokenHash, Value)>,
}

/// The `[backend]` section for `kind = "sqlite"`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SqliteConfig {
    /// The database file; relative paths are taken from the config file's folder.
    pub path: Utf8PathBuf,
}

/// A fake server in one SQLite file.
///
/// One connection, shared by the threads that use this value; other values and other
/// processes on the same file are kept apart by SQLite's own locking.
pub struct SqliteBackend {
    site: Site,
    conn: Mutex<Connection>,
    /// Extra connections for the grouped reads of planning.
    readers: readers::Readers,
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
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            site,
            conn: Mutex::new(conn),
            readers: readers::Readers::new(cores),
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

    /// Adds a user, or updates the uid, home and reseller ACLs of an existing one (its
    /// access hash is kept). `reseller_acls`: `None` for a user who is not a reseller,
    /// `Some(&[])` for a reseller without ACLs. Names are stored as given, unvalidated,
    /// as the file backend stores whatever its data files say.
    pub fn add_user(
        &self,
        name: &str,
        uid: u32,
        home: &str,
        reseller_acls: Option<&[String]>,
    ) -> Result<(), BackendError> {
        let acls = reseller_acls.map(|acls| Value::from(acls.to_vec()).to_string());
        self.write("users", Some(name), |tx| {
            tx.execute(
                "INSERT INTO users (name, uid, home, reseller_acls) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE
                 SET uid = excluded.uid, home = excluded.home,
                     reseller_acls = excluded.reseller_acls",
                params![name, uid, home, acls],
            )?;
            Ok(())
        })
    }

    /// Stores `raw` as the user's access hash, exactly as given. `root` is added (uid 0,
    /// home `/root`) when absent, as the file backend assumes for a root missing from
    /// `etc/passwd`; any other user must have been added first.
    pub fn set_access_hash(&self, user: &str, raw: &[u8]) -> Result<(), BackendError> {
        let updated = self.write("users", Some(user), |tx| {
            let updated = tx.execute(
                "UPDATE users SET access_hash = ?2 WHERE name = ?1",
                params![user, raw],
            )?;
            if updated == 0 && user == "root" {
                tx.execute(
                    "INSERT INTO users (name, uid, home, access_hash) VALUES ('root', 0, '/root', ?1)",
                    params![raw],
                )?;
                return Ok(1);
            }
            Ok(updated)
        })?;
        if updated == 0 {
            return Err(self.no_such_user(user));
        }
        Ok(())
    }

    /// Stores `entry` (a JSON object, kept as given, every key included) under `hash` in
    /// the user's token set, replacing an entry with the same hash in place.
    pub fn insert_token(
        &self,
        user: &str,
        hash: &TokenHash,
        entry: &serde_json::Value,
    ) -> Result<(), BackendError> {
        if !entry.is_object() {
            return Err(self.site.corrupt(
                "tokens",
                Some(user),
                format!(
                    "token {}: the entry is {}, expected an object",
                    hash.prefix(),
                    whmtoken_core::token::kind_of(entry)
                ),
            ));
        }
        self.write("tokens", Some(user), |tx| {
            tokens::upsert(tx, user, hash, entry)
        })
    }

    /// Adds many users, with their access hashes and tokens, in one transaction: how large
    /// fake servers are built quickly. Same rules as [`add_user`](Self::add_user),
    /// [`set_access_hash`](Self::set_access_hash) and [`insert_token`](Self::insert_token).
    pub fn load(&self, users: &[SeedUser<'_>]) -> Result<(), BackendError> {
        self.write("users", None, |tx| {
            let mut user_stmt = tx.prepare(
                "INSERT INTO users (name, uid, home, reseller_acls, access_hash) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (name) DO UPDATE
                 SET uid = excluded.uid, home = excluded.home,
                     reseller_acls = excluded.reseller_acls, access_hash = excluded.access_hash",
            )?;
            let mut token_stmt = tx.prepare(tokens::UPSERT_TOKEN)?;
            for user in users {
                let acls = user.reseller_acls.map(|acls| Value::from(acls.to_vec()).to_string());
                user_stmt.execute(params![user.name, user.uid, user.home, acls, user.access_hash])?;
                for (hash, entry) in &user.tokens {
                    token_stmt.execute(params![user.name, hash.as_str(), entry.to_string()])?;
                }
            }
            Ok(())
        })
    }

    /// The whole server state as one canonical document, the same shape for every backend:
    /// `{"users": {"<user>": {"tokens": {"<sha512 hex>": {entry}}}}, "accounting": [line, ...]}`
    /// with every object's keys sorted. Users without tokens do not appear. Entries are
    /// shown as stored.
    pub fn dump(&self) -> Result<Value, BackendError> {
        let mut conn = self.lock();
        // One read transaction: one consistent picture.
        let tx = conn.transaction().map_err(|e| self.site.sql(None, e))?;
        let dump = tokens::dump(&tx, &self.site)?;
        tx.finish().map_err(|e| self.site.sql(None, e))?;
        Ok(dump)
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the connection rolled its transaction back on the way out
        // (rusqlite's Transaction drops to a rollback), so the connection is still sound.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs a read on a reader connection of its own when one is free (during grouped
    /// reads), otherwise on the main connection.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        match self.readers.checkout(&self.site) {
            Some(reader) => f(&reader),
            None => f(&self.lock()),
        }
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
        self.site
            .corrupt("users", None, format!("no entry for user {user}"))
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
        // Copied straight from SQLite's buffer into the secret: no other copy is made.
        match row.get_ref(0).map_err(sql)? {
            ValueRef::Null => Ok(None),
            ValueRef::Blob(raw) if raw.len() > MAX_ACCESS_HASH => Err(BackendError::Unsafe {
                location: self.site.location(Some("users"), Some(name)),
                detail: format!(
                    "its access hash is {} bytes, more than {MAX_ACCESS_HASH}",
                    raw.len()
                ),
            }),
            ValueRef::Blob(raw) => Ok(Some(AccessHash::from_bytes(raw.to_vec()))),
            _ => Err(self
                .site
                .corrupt("users", Some(name), "the access hash is not a blob")),
        }
    }
}

impl UserDirectory for SqliteBackend {
    fn role(&self, user: &UserName) -> Result<WhmRole, BackendError> {
        if user.is_root() {
            return Ok(WhmRole::Root);
        }
        let name = user.as_str();
        let sql = |e| self.site.sql_for(Some("users"), Some(name), e);
        let acls: Option<Option<String>> = self
            .read(|conn| {
                conn.prepare_cached("SELECT reseller_acls FROM users WHERE name = ?1")?
                    .query_row([name], |row| row.get(0))
                    .optional()
            })
            .map_err(sql)?;
        let Some(Some(acls)) = acls else {
            return Ok(WhmRole::NotReseller);
        };
        let acls: Vec<String> = serde_json::from_str(&acls).map_err(|e| {
            self.site.corrupt(
                "users",
                Some(name),
                format!("the reseller ACLs are not a list of names ({e})"),
            )
        })?;
        Ok(WhmRole::Reseller(Privileges::from_list(acls)))
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
}

impl AccessHashSource for SqliteBackend {
    fn read_access_hash(&self, user: &UserName) -> Result<Option<AccessHash>, BackendError> {
        self.read(|conn| self.access_hash_with(conn, user))
    }
}

impl TokenDatabase for SqliteBackend {
    fn tokens(&self, user: &UserName) -> Result<TokenSet, BackendError> {
        self.read(|conn| tokens::read(conn, &self.site, user.as_str()))
    }

    fn import(&self, user: &UserName, request: &ImportRequest) -> Result<Decision, BackendError> {
        let name = user.as_str();
        self.write_with(|tx| {
            let current = tokens::read(tx, &self.site, name)?;
            let decision = request.decide(&current)?;
            if let Decision::Write { entry, .. } = &decision {
                tokens::upsert(tx, name, &request.hash, &entry.to_json())
                    .map_err(|e| self.site.sql_for(Some("tokens"), Some(name), e))?;
            }
            Ok(decision)
        })
    }

    /// All users in a few transactions (see the `batch` module); `jobs` is not needed, as
    /// SQLite has one writer at a time anyway.
    fn import_all(
        &self,
        items: &[ImportItem],
        clock: &dyn Clock,
        _jobs: usize,
    ) -> Vec<Result<Imported, BackendError>> {
        batch::import_all(&mut self.lock(), &self.site, items, clock)
    }

    fn append_audit(&self, event: &AuditEvent) -> Result<(), BackendError> {
        let line = event.accounting_line();
        self.write("accounting", None, |tx| {
            tx.execute("INSERT INTO accounting (line) VALUES (?1)", [&line])?;
            Ok(())
        })
    }
}

impl Backend for SqliteBackend {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    /// One deferred read transaction around all of `reads`: one lock and one schema check
    /// instead of one per query (should it fail to open, the reads run without it). Reads
    /// made from several threads meanwhile go through extra connections, one per core,
    /// each in a read transaction of its own.
    fn read_together(&self, reads: &mut dyn FnMut()) {
        let began = self.lock().execute_batch("BEGIN DEFERRED").is_ok();
        self.readers.begin();
        reads();
        self.readers.end();
        if began {
            let _ = self.lock().execute_batch("COMMIT");
        }
    }
}

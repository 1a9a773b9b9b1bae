//! Retiring access hashes in the database, reversibly ([`Retirement`]).
//!
//! Core decides and sequences ([`whmtoken_core::retire`]); these are the primitives, each
//! one `BEGIN IMMEDIATE` transaction, durable at its commit. A run's journal is its rows of
//! `runs` (one JSON record a row, the header first), and its backups are rows of
//! `backups`. Removing an access hash compares its SHA-512 and clears `users.access_hash`
//! in one transaction, so nothing changes between the check and the removal;
//! `allow_deprecated_accesshash` is the `settings` row of that name, compared and set the
//! same way.

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Transaction};
use whmtoken_core::retire::{
    ALLOW_DEPRECATED_ACCESSHASH, Held, Journal, Record, Removal, RetiredFile, Retirement, RunId,
    RunLock, Setting, content_sha512,
};
use whmtoken_core::{BackendError, Reads, UserName};
use zeroize::Zeroizing;

use crate::SqliteBackend;
use crate::error::Site;

impl SqliteBackend {
    /// The raw access hash stored for `user` in the transaction; `None` when it has none.
    fn access_hash_in(
        &self,
        tx: &Connection,
        user: &UserName,
    ) -> Result<Option<Vec<u8>>, BackendError> {
        let name = user.as_str();
        let sql = |e| self.site.sql_for(Some("users"), Some(name), e);
        let row: Option<Option<Vec<u8>>> = tx
            .query_row(
                "SELECT access_hash FROM users WHERE name = ?1",
                [name],
                |row| match row.get_ref(0)? {
                    ValueRef::Null => Ok(None),
                    ValueRef::Blob(raw) => Ok(Some(raw.to_vec())),
                    _ => Err(rusqlite::Error::InvalidColumnType(
                        0,
                        "access_hash".into(),
                        rusqlite::types::Type::Blob,
                    )),
                },
            )
            .optional()
            .map_err(sql)?;
        match row {
            Some(hash) => Ok(hash),
            None if user.is_root() => Ok(None),
            None => Err(self.no_such_user(name)),
        }
    }

    /// The account a journal entry names.
    fn journal_user(&self, retired: &RetiredFile) -> Result<UserName, BackendError> {
        UserName::new(&retired.user).map_err(|e| self.site.corrupt("runs", None, e.to_string()))
    }

    fn backup_location(&self, id: &RunId, name: &str) -> String {
        format!("{}, table backups, run {id}, {name}", self.site.path)
    }

    fn setting_in(&self, tx: &Connection) -> Result<Option<String>, BackendError> {
        tx.query_row(
            "SELECT value FROM settings WHERE name = ?1",
            [ALLOW_DEPRECATED_ACCESSHASH],
            |row| row.get(0),
        )
        .optional()
        .map_err(|e| self.site.sql(Some("settings"), e))
    }

    fn set_setting_in(
        &self,
        tx: &Transaction<'_>,
        value: Option<&str>,
    ) -> Result<(), BackendError> {
        let done = match value {
            Some(value) => tx.execute(
                "INSERT INTO settings (name, value) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                [ALLOW_DEPRECATED_ACCESSHASH, value],
            ),
            None => tx.execute(
                "DELETE FROM settings WHERE name = ?1",
                [ALLOW_DEPRECATED_ACCESSHASH],
            ),
        };
        done.map(drop)
            .map_err(|e| self.site.sql(Some("settings"), e))
    }
}

fn record_in(
    site: &Site,
    tx: &Transaction<'_>,
    id: &RunId,
    record: &Record,
) -> Result<(), BackendError> {
    let text = serde_json::to_string(record).expect("a record serializes");
    tx.execute(
        "INSERT INTO runs (run, record) VALUES (?1, ?2)",
        [id.as_str(), &text],
    )
    .map(drop)
    .map_err(|e| site.sql(Some("runs"), e))
}

fn read_journal(
    site: &Site,
    conn: &rusqlite::Connection,
    id: &RunId,
) -> Result<Journal, BackendError> {
    let sql = |e| site.sql(Some("runs"), e);
    let mut stmt = conn
        .prepare_cached("SELECT record FROM runs WHERE run = ?1 ORDER BY id")
        .map_err(sql)?;
    let texts: Vec<String> = stmt
        .query_map([id.as_str()], |row| row.get(0))
        .map_err(sql)?
        .collect::<Result<_, _>>()
        .map_err(sql)?;
    if texts.is_empty() {
        return Err(BackendError::NotFound {
            location: site.location(Some("runs"), None),
            what: format!("no run {id}"),
        });
    }
    let location = || format!("{}, run {id}", site.location(Some("runs"), None));
    let records = texts
        .iter()
        .map(|t| serde_json::from_str::<Record>(t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| BackendError::Corrupt {
            location: location(),
            detail: format!("a record is not a journal record ({e})"),
        })?;
    Journal::from_records(records).map_err(|detail| BackendError::Corrupt {
        location: location(),
        detail,
    })
}

impl Retirement for SqliteBackend {
    fn lock_runs(&self) -> Result<RunLock, BackendError> {
        crate::run_lock::take(&self.site).map(RunLock::new)
    }

    fn begin(&self, id: &RunId, started: i64, command: &str) -> Result<(), BackendError> {
        let header = Record::Header {
            run: id.clone(),
            started,
            command: command.to_owned(),
            records_removals: true,
        };
        self.write_with(|tx| {
            let exists: bool = tx
                .prepare("SELECT 1 FROM runs WHERE run = ?1")
                .and_then(|mut s| s.exists([id.as_str()]))
                .map_err(|e| self.site.sql(Some("runs"), e))?;
            if exists {
                return Err(BackendError::Corrupt {
                    location: self.site.location(Some("runs"), None),
                    detail: format!("run {id} exists already"),
                });
            }
            record_in(&self.site, tx, id, &header)
        })
    }

    fn append(&self, id: &RunId, record: &Record) -> Result<(), BackendError> {
        self.write_with(|tx| record_in(&self.site, tx, id, record))
    }

    fn journal(&self, id: &RunId) -> Result<Journal, BackendError> {
        read_journal(&self.site, &self.lock(), id)
    }

    fn journals(&self) -> Result<Vec<Journal>, BackendError> {
        let conn = self.lock();
        let sql = |e| self.site.sql(Some("runs"), e);
        let mut stmt = conn
            .prepare("SELECT run FROM runs GROUP BY run ORDER BY substr(run, 1, 16), min(id)")
            .map_err(sql)?;
        let ids: Vec<String> = stmt
            .query_map([], |row| row.get(0))
            .map_err(sql)?
            .collect::<Result<_, _>>()
            .map_err(sql)?;
        ids.iter()
            .map(|id| {
                let id =
                    RunId::parse(id).map_err(|e| self.site.corrupt("runs", None, e.to_string()))?;
                read_journal(&self.site, &conn, &id)
            })
            .collect()
    }

    fn put_backup(&self, id: &RunId, name: &str, content: &[u8]) -> Result<String, BackendError> {
        self.write_with(|tx| {
            tx.execute(
                "INSERT INTO backups (run, name, content) VALUES (?1, ?2, ?3)",
                rusqlite::params![id.as_str(), name, content],
            )
            .map_err(|e| self.site.sql(Some("backups"), e))
        })?;
        Ok(self.backup_location(id, name))
    }

    fn remove_backups(&self, id: &RunId) -> Result<usize, BackendError> {
        self.write_with(|tx| {
            tx.execute("DELETE FROM backups WHERE run = ?1", [id.as_str()])
                .map_err(|e| self.site.sql(Some("backups"), e))
        })
    }

    fn count_backups(&self, id: &RunId) -> Result<usize, BackendError> {
        let n: i64 = self
            .lock()
            .query_row(
                "SELECT COUNT(*) FROM backups WHERE run = ?1",
                [id.as_str()],
                |row| row.get(0),
            )
            .map_err(|e| self.site.sql(Some("backups"), e))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    fn backup(&self, id: &RunId, name: &str) -> Result<(String, Zeroizing<Vec<u8>>), BackendError> {
        let location = self.backup_location(id, name);
        let content: Option<Vec<u8>> = self
            .lock()
            .query_row(
                "SELECT content FROM backups WHERE run = ?1 AND name = ?2",
                [id.as_str(), name],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.site.sql(Some("backups"), e))?;
        match content {
            Some(content) => Ok((location, Zeroizing::new(content))),
            None => Err(BackendError::NotFound {
                location,
                what: "the backup is missing".to_owned(),
            }),
        }
    }

    fn read_home(
        &self,
        user: &UserName,
        _owner: Option<u32>,
    ) -> Result<Option<Held>, BackendError> {
        // The reads' checks (an unknown user, a huge value), then the raw bytes.
        if self.read_access_hash(user)?.is_none() {
            return Ok(None);
        }
        let raw = self.access_hash_in(&self.lock(), user)?;
        Ok(raw.map(|raw| Held {
            location: self.site.location(Some("users"), Some(user.as_str())),
            content: Zeroizing::new(raw),
            mode: None,
            uid: None,
            gid: None,
            mtime: None,
            mtime_nsec: None,
        }))
    }

    fn remove_if_unchanged(
        &self,
        _id: &RunId,
        retired: &RetiredFile,
    ) -> Result<Removal, BackendError> {
        let user = self.journal_user(retired)?;
        let name = user.as_str();
        self.write_with(|tx| {
            let Some(raw) = self.access_hash_in(tx, &user)?.map(Zeroizing::new) else {
                return Ok(Removal::Gone);
            };
            if content_sha512(&raw) != retired.sha512 {
                return Ok(Removal::Changed {
                    location: self.site.location(Some("users"), Some(name)),
                });
            }
            tx.execute(
                "UPDATE users SET access_hash = NULL WHERE name = ?1",
                [name],
            )
            .map_err(|e| self.site.sql_for(Some("users"), Some(name), e))?;
            Ok(Removal::Removed)
        })
    }

    fn put_back(
        &self,
        retired: &RetiredFile,
        content: &[u8],
        replacing: Option<&str>,
    ) -> Result<(), BackendError> {
        let user = self.journal_user(retired)?;
        let name = user.as_str();
        self.write_with(|tx| {
            let now = self.access_hash_in(tx, &user)?.map(Zeroizing::new);
            if now.as_ref().map(|n| content_sha512(n)).as_deref() != replacing {
                return Err(BackendError::UnsafeToWrite {
                    location: self.site.location(Some("users"), Some(name)),
                    detail: "it changed while being restored; left as it is".to_owned(),
                });
            }
            let updated = tx
                .execute(
                    "UPDATE users SET access_hash = ?2 WHERE name = ?1",
                    rusqlite::params![name, content],
                )
                .map_err(|e| self.site.sql_for(Some("users"), Some(name), e))?;
            if updated == 0 {
                return Err(self.no_such_user(name));
            }
            Ok(())
        })
    }

    fn setting(&self) -> Result<Setting, BackendError> {
        Ok(Setting {
            value: self.setting_in(&self.lock())?,
            location: self.site.location(Some("settings"), None),
            lines: Vec::new(),
        })
    }

    fn set_setting(&self, expected: Option<&str>, new: Option<&str>) -> Result<bool, BackendError> {
        self.write_with(|tx| {
            if self.setting_in(tx)?.as_deref() != expected {
                return Ok(false);
            }
            self.set_setting_in(tx, new)?;
            Ok(true)
        })
    }

    fn append_accounting(&self, line: &str) -> Result<(), BackendError> {
        self.write("accounting", None, |tx| {
            tx.execute("INSERT INTO accounting (line) VALUES (?1)", [line])?;
            Ok(())
        })
    }
}

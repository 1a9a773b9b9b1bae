//! Retiring access hashes in the database, reversibly ([`Retirement`]).
//!
//! A run's journal is its rows of `runs` (one JSON record a row, the header first), and
//! its backups are rows of `backups`. Retiring one account is one `BEGIN IMMEDIATE`
//! transaction that copies the access hash into `backups`, records the change and clears
//! `users.access_hash`: a crash leaves all of it or none. `allow_deprecated_accesshash` is
//! the `settings` row of that name, changed the same way.

use rusqlite::types::ValueRef;
use rusqlite::{OptionalExtension, Transaction};
use whmtoken_core::retire::{
    ALLOW_DEPRECATED_ACCESSHASH, Change, Journal, Record, Restored, Retired, RetiredFile,
    Retirement, RunId, SettingChange, Standing, content_sha512, standing,
};
use whmtoken_core::{AccessHash, BackendError, Reads, UserName};

use crate::SqliteBackend;
use crate::error::Site;

impl SqliteBackend {
    /// The raw access hash stored for `user` in the transaction; `None` when it has none.
    fn access_hash_in(
        &self,
        tx: &Transaction<'_>,
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

    fn backup_location(&self, id: &RunId, name: &str) -> String {
        format!("{}, table backups, run {id}, {name}", self.site.path)
    }

    fn setting_in(&self, tx: &Transaction<'_>) -> Result<Option<String>, BackendError> {
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
    fn begin(&self, id: &RunId, started: i64, command: &str) -> Result<(), BackendError> {
        let header = Record::Header {
            run: id.clone(),
            started,
            command: command.to_owned(),
            records_removals: false,
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

    fn retire(&self, id: &RunId, user: &UserName) -> Result<Retired, BackendError> {
        let hash = self.read_access_hash(user)?;
        let decided = standing(self, user, hash.as_ref())?;
        let key = hash.and_then(|h| h.token_hash());
        if decided != Standing::Converted {
            return Ok(Retired::Left(decided));
        }
        let name = user.as_str();
        let backup = format!("{name}.accesshash");
        let done = self.write_with(|tx| {
            // Decided outside the transaction: gone meanwhile, it is decided again below.
            let Some(raw) = self.access_hash_in(tx, user)? else {
                return Ok(None);
            };
            let raw = zeroize::Zeroizing::new(raw);
            if AccessHash::from_bytes(raw.to_vec()).token_hash() != key {
                return Err(BackendError::UnsafeToWrite {
                    location: self.site.location(Some("users"), Some(name)),
                    detail: "the access hash changed while being retired; it was left in place"
                        .to_owned(),
                });
            }
            let retired = RetiredFile {
                user: name.to_owned(),
                path: self.site.location(Some("users"), Some(name)),
                sha512: content_sha512(&raw),
                size: raw.len() as u64,
                mode: None,
                uid: None,
                gid: None,
                mtime: None,
                mtime_nsec: None,
                backup: self.backup_location(id, &backup),
                set_aside: None,
                unconfirmed: false,
            };
            tx.execute(
                "INSERT INTO backups (run, name, content) VALUES (?1, ?2, ?3)",
                rusqlite::params![id.as_str(), backup, &raw[..]],
            )
            .map_err(|e| self.site.sql_for(Some("backups"), Some(name), e))?;
            record_in(
                &self.site,
                tx,
                id,
                &Record::Change(Change::Accesshash(retired.clone())),
            )?;
            tx.execute(
                "UPDATE users SET access_hash = NULL WHERE name = ?1",
                [name],
            )
            .map_err(|e| self.site.sql_for(Some("users"), Some(name), e))?;
            Ok(Some(Retired::Done(retired)))
        })?;
        match done {
            Some(done) => Ok(done),
            None => Ok(Retired::Left(standing(self, user, None)?)),
        }
    }

    fn set_accesshash_auth(
        &self,
        id: &RunId,
        allow: bool,
    ) -> Result<Option<SettingChange>, BackendError> {
        let new = if allow { "1" } else { "0" };
        self.write_with(|tx| {
            let old = self.setting_in(tx)?;
            if (old.as_deref() == Some("1")) == allow {
                return Ok(None);
            }
            let change = SettingChange {
                name: ALLOW_DEPRECATED_ACCESSHASH.to_owned(),
                old,
                new: Some(new.to_owned()),
            };
            record_in(
                &self.site,
                tx,
                id,
                &Record::Change(Change::Setting(change.clone())),
            )?;
            self.set_setting_in(tx, Some(new))?;
            Ok(Some(change))
        })
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

    fn journal(&self, id: &RunId) -> Result<Journal, BackendError> {
        read_journal(&self.site, &self.lock(), id)
    }

    fn restore_change(
        &self,
        id: &RunId,
        change: &Change,
        force: bool,
        check_only: bool,
    ) -> Result<Restored, BackendError> {
        match change {
            Change::Accesshash(retired) => self.write_with(|tx| {
                let user = UserName::new(&retired.user)
                    .map_err(|e| self.site.corrupt("runs", None, e.to_string()))?;
                let name = user.as_str();
                let present = self.access_hash_in(tx, &user)?.map(zeroize::Zeroizing::new);
                if present.as_ref().map(|p| content_sha512(p)).as_deref()
                    == Some(retired.sha512.as_str())
                {
                    return Ok(Restored::AlreadyRestored);
                }
                let backup_name = format!("{name}.accesshash");
                let location = self.backup_location(id, &backup_name);
                let content: Option<Vec<u8>> = tx
                    .query_row(
                        "SELECT content FROM backups WHERE run = ?1 AND name = ?2",
                        [id.as_str(), &backup_name],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(|e| self.site.sql_for(Some("backups"), Some(name), e))?;
                let Some(content) = content.map(zeroize::Zeroizing::new) else {
                    return Err(BackendError::NotFound {
                        location,
                        what: "the backup is missing".to_owned(),
                    });
                };
                if content_sha512(&content) != retired.sha512 && !force {
                    return Err(BackendError::Corrupt {
                        location,
                        detail: "the backup no longer matches the journal's SHA-512; --force restores it as it is".to_owned(),
                    });
                }
                if present.is_some() && !force {
                    return Err(BackendError::UnsafeToWrite {
                        location: self.site.location(Some("users"), Some(name)),
                        detail: "an access hash exists again and differs from the one retired; --force keeps it in the run's backup and restores".to_owned(),
                    });
                }
                if check_only {
                    return Ok(Restored::Restored);
                }
                if let Some(present) = &present {
                    let kept: i64 = tx
                        .query_row(
                            "SELECT count(*) FROM backups WHERE run = ?1 AND name LIKE ?2",
                            [id.as_str(), &format!("{backup_name}.replaced-%")],
                            |row| row.get(0),
                        )
                        .map_err(|e| self.site.sql(Some("backups"), e))?;
                    tx.execute(
                        "INSERT INTO backups (run, name, content) VALUES (?1, ?2, ?3)",
                        rusqlite::params![
                            id.as_str(),
                            format!("{backup_name}.replaced-{}", kept + 1),
                            &present[..]
                        ],
                    )
                    .map_err(|e| self.site.sql(Some("backups"), e))?;
                }
                let updated = tx
                    .execute(
                        "UPDATE users SET access_hash = ?2 WHERE name = ?1",
                        rusqlite::params![name, &content[..]],
                    )
                    .map_err(|e| self.site.sql_for(Some("users"), Some(name), e))?;
                if updated == 0 {
                    return Err(self.no_such_user(name));
                }
                Ok(Restored::Restored)
            }),
            Change::Setting(setting) => self.write_with(|tx| {
                let current = self.setting_in(tx)?;
                if current == setting.old {
                    return Ok(Restored::AlreadyRestored);
                }
                if current != setting.new && !force {
                    return Err(BackendError::UnsafeToWrite {
                        location: self.site.location(Some("settings"), None),
                        detail: format!(
                            "{} was changed since the run; --force sets it back",
                            setting.name
                        ),
                    });
                }
                if !check_only {
                    self.set_setting_in(tx, setting.old.as_deref())?;
                }
                Ok(Restored::Restored)
            }),
        }
    }

    fn mark_restored(&self, id: &RunId, at: i64) -> Result<(), BackendError> {
        self.write_with(|tx| record_in(&self.site, tx, id, &Record::Restored { restored_at: at }))
    }

    fn append_accounting(&self, line: &str) -> Result<(), BackendError> {
        self.write("accounting", None, |tx| {
            tx.execute("INSERT INTO accounting (line) VALUES (?1)", [line])?;
            Ok(())
        })
    }
}

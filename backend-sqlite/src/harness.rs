//! The SQLite backend's [`Harness`] (cargo feature `harness`): seeding a new database, for
//! tests and `fake-server`, and the canonical dump of a whole server.

use std::collections::BTreeMap;

use rusqlite::{Connection, params};
use serde_json::{Map, Value};
use whmtoken_core::harness::dump_document;
use whmtoken_core::{BackendError, Harness, Seed, ServerSettings, TokenHash};

use crate::error::Site;
use crate::{SqliteBackend, SqliteConfig, settings, tokens};

/// The database file `build` makes in its folder.
const DATABASE: &str = "server.db";

impl Harness for SqliteConfig {
    fn build(seed: &Seed, dir: &camino::Utf8Path) -> Result<Self, BackendError> {
        std::fs::create_dir_all(dir).map_err(|source| BackendError::Io {
            location: dir.to_string(),
            source,
        })?;
        SqliteBackend::create(&dir.join(DATABASE))?.load(seed)?;
        write_logs(&crate::logs::folder_of(&dir.join(DATABASE)), &seed.logs)?;
        Ok(Self {
            path: DATABASE.into(),
        })
    }

    fn dump(&self) -> Result<Value, BackendError> {
        SqliteBackend::open(self)?.dump()
    }

    fn set_settings(&self, settings: &ServerSettings) -> Result<(), BackendError> {
        SqliteBackend::open(self)?.set_server_settings(settings)
    }
}

/// Writes a seed's log files into the logs folder (0700; files 0600), made only when the
/// seed has some.
fn write_logs(folder: &camino::Utf8Path, logs: &[(String, Vec<u8>)]) -> Result<(), BackendError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let io = |path: &camino::Utf8Path, source| BackendError::Io {
        location: path.to_string(),
        source,
    };
    for (name, content) in logs {
        let path = folder.join(name);
        let parent = path.parent().expect("a file has a folder");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| io(parent, e))?;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, content))
            .map_err(|e| io(&path, e))?;
    }
    Ok(())
}

/// Seeding and dumping, beyond what the converter needs.
impl SqliteBackend {
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

    /// Stores the server's settings, replacing those stored before.
    pub fn set_server_settings(&self, settings: &ServerSettings) -> Result<(), BackendError> {
        self.write("settings", None, |tx| store_settings(tx, settings))
    }

    /// Adds every user of `seed`, with its access hash and tokens, and stores its settings,
    /// in one transaction: how large fake servers are built quickly. Same rules as
    /// [`add_user`](Self::add_user), [`set_access_hash`](Self::set_access_hash),
    /// [`insert_token`](Self::insert_token) and
    /// [`set_server_settings`](Self::set_server_settings).
    pub fn load(&self, seed: &Seed) -> Result<(), BackendError> {
        self.write_with(|tx| {
            store_settings(tx, &seed.settings).map_err(|e| self.site.sql(Some("settings"), e))?;
            load_users(tx, seed).map_err(|e| self.site.sql(Some("users"), e))
        })
    }

    /// The whole server state as the canonical document of
    /// [`dump_document`], read in one transaction: one consistent picture.
    pub fn dump(&self) -> Result<Value, BackendError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(|e| self.site.sql(None, e))?;
        let dump = stored(&tx, &self.site)?;
        tx.finish().map_err(|e| self.site.sql(None, e))?;
        Ok(dump)
    }
}

/// Adds or updates every user of `seed`, with its access hash and tokens.
fn load_users(tx: &Connection, seed: &Seed) -> rusqlite::Result<()> {
    let mut user_stmt = tx.prepare(
        "INSERT INTO users (name, uid, home, reseller_acls, access_hash, domain, owner)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (name) DO UPDATE
         SET uid = excluded.uid, home = excluded.home,
             reseller_acls = excluded.reseller_acls, access_hash = excluded.access_hash,
             domain = excluded.domain, owner = excluded.owner",
    )?;
    let mut token_stmt = tx.prepare(tokens::UPSERT_TOKEN)?;
    for user in &seed.users {
        let acls = user
            .reseller
            .as_ref()
            .map(|acls| Value::from(acls.clone()).to_string());
        // Root is no hosting account: it has no domain or owner.
        let account = (user.name != "root").then_some((&user.domain, &user.owner));
        user_stmt.execute(params![
            user.name,
            user.uid,
            user.home,
            acls,
            user.access_hash,
            account.map(|a| a.0),
            account.map(|a| a.1)
        ])?;
        for (hash, entry) in &user.tokens {
            token_stmt.execute(params![
                user.name,
                hash.as_str(),
                Value::Object(entry.clone()).to_string()
            ])?;
        }
    }
    Ok(())
}

/// Stores `settings`, replacing those stored before.
fn store_settings(conn: &Connection, settings: &ServerSettings) -> rusqlite::Result<()> {
    conn.execute(
        settings::UPSERT_SETTING,
        params![
            settings::ALLOW_DEPRECATED_ACCESSHASH,
            settings::flag(settings.allow_deprecated_accesshash)
        ],
    )?;
    Ok(())
}

/// Every user's stored entries and the audit lines, as the canonical dump.
fn stored(conn: &Connection, site: &Site) -> Result<Value, BackendError> {
    let sql = |table| move |e| site.sql(Some(table), e);
    let mut users: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut stmt = conn
        .prepare("SELECT user, hash, entry FROM tokens ORDER BY user, id")
        .map_err(sql("tokens"))?;
    let rows = stmt
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        })
        .map_err(sql("tokens"))?;
    for row in rows {
        let (user, hash, text) = row.map_err(sql("tokens"))?;
        let entry: Value = serde_json::from_str(&text).map_err(|e| {
            let shown =
                TokenHash::parse(&hash).map_or_else(|_| "?".to_owned(), |h| h.prefix().to_owned());
            site.corrupt(
                "tokens",
                Some(&user),
                format!("token {shown}: not valid JSON ({e})"),
            )
        })?;
        users.entry(user).or_default().insert(hash, entry);
    }
    let mut stmt = conn
        .prepare("SELECT line FROM accounting ORDER BY id")
        .map_err(sql("accounting"))?;
    let accounting = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .map_err(sql("accounting"))?
        .collect::<Result<_, _>>()
        .map_err(sql("accounting"))?;
    Ok(dump_document(users, accounting))
}

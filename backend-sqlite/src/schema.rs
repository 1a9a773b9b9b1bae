//! The database schema and its migrations, numbered by `PRAGMA user_version`.
//!
//! Version 0 is an empty file. Each entry of [`MIGRATIONS`] takes the schema one version
//! up; they run in one `BEGIN IMMEDIATE` transaction together with the new
//! `user_version`, so a crash or a concurrent opener never sees a half-migrated database.
//! A migration, once released, is never edited: changes come as a new entry.

use rusqlite::{Connection, TransactionBehavior};
use whmtoken_core::BackendError;

use crate::error::Site;

/// Version 1: users (with their reseller ACLs and access hashes), tokens, accounting lines.
const V1: &str = "
CREATE TABLE users (
    name          TEXT PRIMARY KEY NOT NULL CHECK (name <> ''),
    uid           INTEGER NOT NULL CHECK (uid BETWEEN 0 AND 4294967295),
    home          TEXT NOT NULL,
    -- A JSON array of ACL names; NULL: not a reseller.
    reseller_acls TEXT CHECK (
        reseller_acls IS NULL
        OR CASE WHEN json_valid(reseller_acls) THEN json_type(reseller_acls) = 'array' ELSE 0 END
    ),
    -- The raw `.accesshash` content, whitespace and all; NULL: the user has none.
    access_hash   BLOB
) STRICT;

CREATE TABLE tokens (
    -- Insertion order, which is the order of the user's token set; a replaced entry keeps
    -- its place, as it does in cPanel's JSON object.
    id    INTEGER PRIMARY KEY,
    user  TEXT NOT NULL,
    hash  TEXT NOT NULL CHECK (length(hash) = 128 AND hash NOT GLOB '*[^0-9a-f]*'),
    -- The entry as cPanel's token file holds it, as JSON text: every key kept.
    entry TEXT NOT NULL CHECK (
        CASE WHEN json_valid(entry) THEN json_type(entry) = 'object' ELSE 0 END
    ),
    UNIQUE (user, hash)
) STRICT;

CREATE TABLE accounting (
    id   INTEGER PRIMARY KEY,
    -- One `accounting.log` line, without its line feed.
    line TEXT NOT NULL CHECK (instr(line, char(10)) = 0)
) STRICT;
";

/// Version 2: the server's settings, one row per setting (`allow_deprecated_accesshash`,
/// `'1'` or `'0'`); a setting without a row has cPanel's default.
const V2: &str = "
CREATE TABLE settings (
    name  TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;
";

/// Version 3: the journal of `whmtoken retire` runs (`runs`: one JSON record a row, each
/// run's header first, as a journal file holds them a line) and their backups (`backups`:
/// the content of each access hash a run retired, or a forced restore replaced).
const V3: &str = "
CREATE TABLE runs (
    id     INTEGER PRIMARY KEY,
    run    TEXT NOT NULL,
    record TEXT NOT NULL CHECK (
        CASE WHEN json_valid(record) THEN json_type(record) = 'object' ELSE 0 END
    )
) STRICT;

CREATE TABLE backups (
    run     TEXT NOT NULL,
    name    TEXT NOT NULL,
    content BLOB NOT NULL,
    PRIMARY KEY (run, name)
) STRICT;
";

/// Version 4: each account's main domain and owner, for the fake WHM's `listaccts`; NULL
/// for root and for users added before.
const V4: &str = "
ALTER TABLE users ADD COLUMN domain TEXT;
ALTER TABLE users ADD COLUMN owner TEXT;
";

/// The migrations, in order: entry `i` takes version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4];

/// The schema version this build writes and understands.
pub(crate) const LATEST: i64 = MIGRATIONS.len() as i64;

/// The tables this program creates; with their automatic indexes, all a schema may hold.
const TABLES: [&str; 6] = [
    "users",
    "tokens",
    "accounting",
    "settings",
    "runs",
    "backups",
];

/// Refuses a schema holding anything this program did not create: a trigger or a view
/// would run on every write or read of ours.
pub(crate) fn check_objects(conn: &Connection, site: &Site) -> Result<(), BackendError> {
    let sql = |e| site.sql(None, e);
    let mut stmt = conn
        .prepare("SELECT type, name FROM sqlite_schema ORDER BY type, name")
        .map_err(sql)?;
    let objects: Vec<(String, String)> = stmt
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .map_err(sql)?
        .collect::<Result<_, _>>()
        .map_err(sql)?;
    let foreign = objects.iter().find(|(kind, name)| match kind.as_str() {
        "table" => !TABLES.contains(&name.as_str()),
        "index" => !name.starts_with("sqlite_autoindex_"),
        _ => true,
    });
    match foreign {
        Some((kind, name)) => Err(BackendError::Unsafe {
            location: site.location(None, None),
            detail: format!(
                "its schema holds a {kind} “{}” that whmtoken did not create",
                name.escape_debug()
            ),
        }),
        None => Ok(()),
    }
}

/// Brings the database up to [`LATEST`].
pub(crate) fn migrate(conn: &mut Connection, site: &Site) -> Result<(), BackendError> {
    let sql = |e| site.sql(None, e);
    if version(conn).map_err(sql)? == LATEST {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql)?;
    // Read again under the write lock: another process may have migrated meanwhile.
    let current = version(&tx).map_err(sql)?;
    if current > LATEST {
        return Err(BackendError::Corrupt {
            location: site.location(None, None),
            detail: format!(
                "schema version {current} is newer than this program knows ({LATEST}); \
                 use a newer whmtoken"
            ),
        });
    }
    if current < 0 {
        return Err(BackendError::Corrupt {
            location: site.location(None, None),
            detail: format!("schema version {current} is not a whmtoken version"),
        });
    }
    if current == 0 {
        let objects: i64 = tx
            .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
            .map_err(sql)?;
        if objects > 0 {
            return Err(BackendError::Corrupt {
                location: site.location(None, None),
                detail: "not a whmtoken database: it holds tables but no schema version \
                         (PRAGMA user_version is 0)"
                    .to_owned(),
            });
        }
    }
    for migration in &MIGRATIONS[current as usize..] {
        tx.execute_batch(migration).map_err(sql)?;
    }
    tx.pragma_update(None, "user_version", LATEST)
        .map_err(sql)?;
    tx.commit().map_err(sql)
}

fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use camino::Utf8Path;

    use super::*;

    fn site() -> Site {
        Site::new(Utf8Path::new("mem.db"), Duration::ZERO)
    }

    #[test]
    fn migrates_an_empty_database_once() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, &site()).unwrap();
        assert_eq!(version(&conn).unwrap(), LATEST);
        migrate(&mut conn, &site()).unwrap();
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            tables,
            [
                "accounting",
                "backups",
                "runs",
                "settings",
                "tokens",
                "users"
            ]
        );
    }

    #[test]
    fn a_version_1_database_gains_the_settings_table_and_keeps_its_rows() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(V1).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO users (name, uid, home) VALUES ('bob', 1001, '/home/bob')",
            [],
        )
        .unwrap();
        migrate(&mut conn, &site()).unwrap();
        assert_eq!(version(&conn).unwrap(), LATEST);
        let users: i64 = conn
            .query_row("SELECT count(*) FROM users", [], |row| row.get(0))
            .unwrap();
        assert_eq!(users, 1);
        conn.execute(
            "INSERT INTO settings (name, value) VALUES ('allow_deprecated_accesshash', '1')",
            [],
        )
        .unwrap();
        assert!(
            conn.execute("INSERT INTO settings (name, value) VALUES ('x', NULL)", [])
                .is_err()
        );
    }

    #[test]
    fn a_token_is_looked_up_through_the_user_and_hash_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, &site()).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!(
                "EXPLAIN QUERY PLAN {}",
                crate::tokens::SELECT_TOKEN
            ))
            .unwrap()
            .query_map(["u", "h"], |row| row.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(plan.len(), 1, "{plan:?}");
        assert!(
            plan[0].starts_with("SEARCH tokens USING INDEX")
                && plan[0].ends_with("(user=? AND hash=?)"),
            "{plan:?}"
        );
    }

    #[test]
    fn refuses_newer_and_foreign_databases() {
        let mut newer = Connection::open_in_memory().unwrap();
        newer
            .pragma_update(None, "user_version", LATEST + 1)
            .unwrap();
        let err = migrate(&mut newer, &site()).unwrap_err().to_string();
        assert!(err.contains("is newer than this program knows"), "{err}");

        let mut foreign = Connection::open_in_memory().unwrap();
        foreign.execute_batch("CREATE TABLE t (x)").unwrap();
        let err = migrate(&mut foreign, &site()).unwrap_err().to_string();
        assert!(err.contains("not a whmtoken database"), "{err}");
    }

    #[test]
    fn checks_refuse_malformed_rows() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, &site()).unwrap();
        let bad = [
            "INSERT INTO tokens (user, hash, entry) VALUES ('u', 'abc', '{}')",
            "INSERT INTO tokens (user, hash, entry) VALUES ('u', printf('%.128c', 'A'), '{}')",
            "INSERT INTO tokens (user, hash, entry) VALUES ('u', printf('%.128c', 'a'), '[]')",
            "INSERT INTO tokens (user, hash, entry) VALUES ('u', printf('%.128c', 'a'), '{')",
            "INSERT INTO users (name, uid, home, reseller_acls) VALUES ('r', 1, '/h', '\"all\"')",
            "INSERT INTO users (name, uid, home) VALUES ('r', -1, '/h')",
            "INSERT INTO users (name, uid, home) VALUES ('', 1, '/h')",
            "INSERT INTO accounting (line) VALUES ('a' || char(10) || 'b')",
        ];
        for sql in bad {
            assert!(conn.execute(sql, []).is_err(), "accepted: {sql}");
        }
        conn.execute(
            "INSERT INTO tokens (user, hash, entry) VALUES ('u', printf('%.128c', 'a'), '{}')",
            [],
        )
        .unwrap();
    }
}

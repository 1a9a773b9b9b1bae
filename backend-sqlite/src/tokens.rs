//! The `tokens` and `accounting` tables: reading a user's token set, storing one entry,
//! and the canonical dump of the whole server.
//!
//! An entry is stored as the JSON text of the object cPanel's token file holds under the
//! key, so every field (`acls` and `whitelist_ips` absent or present, `expires_at` null or
//! set, digit strings where cPanel wrote strings) and every unknown key survives as it was.

use std::collections::BTreeMap;

use rusqlite::{Connection, Statement, params};
use serde_json::{Map, Value};
use whmtoken_core::{BackendError, TokenEntry, TokenHash, TokenSet};

use crate::error::Site;

/// Selects a user's tokens; see [`read_with`]. They are put in order (`id`) after reading:
/// an `ORDER BY` here sorts in a temporary b-tree, and SQLite re-prepares such a statement
/// every time it is bound to another user.
pub(crate) const SELECT_TOKENS: &str = "SELECT id, hash, entry FROM tokens WHERE user = ?1";

/// The user's tokens in the order they were first stored.
pub(crate) fn read(conn: &Connection, site: &Site, user: &str) -> Result<TokenSet, BackendError> {
    let mut stmt = conn
        .prepare_cached(SELECT_TOKENS)
        .map_err(|e| site.sql_for(Some("tokens"), Some(user), e))?;
    read_with(&mut stmt, site, user)
}

/// The same through a statement prepared from [`SELECT_TOKENS`], for batches.
pub(crate) fn read_with(
    stmt: &mut Statement<'_>,
    site: &Site,
    user: &str,
) -> Result<TokenSet, BackendError> {
    let sql = |e| site.sql_for(Some("tokens"), Some(user), e);
    let mut rows: Vec<(i64, String, String)> = stmt
        .query_map([user], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .map_err(sql)?
        .collect::<Result<_, _>>()
        .map_err(sql)?;
    rows.sort_unstable_by_key(|(id, ..)| *id);
    let mut entries = Vec::with_capacity(rows.len());
    for (_, key, text) in rows {
        let corrupt = |detail: String| site.corrupt("tokens", Some(user), detail);
        let hash = TokenHash::parse(&key).map_err(|e| corrupt(format!("token key {e}")))?;
        let entry = serde_json::from_str(&text)
            .map_err(|e| format!("not valid JSON ({e})"))
            .and_then(|value: Value| TokenEntry::from_json(&value))
            .map_err(|e| corrupt(format!("token {}: {e}", hash.prefix())))?;
        entries.push((hash, entry));
    }
    Ok(TokenSet::new(entries))
}

/// Stores `entry` under `hash`; an entry already there is replaced in its place.
pub(crate) fn upsert(
    conn: &Connection,
    user: &str,
    hash: &TokenHash,
    entry: &Value,
) -> rusqlite::Result<()> {
    conn.execute(
        UPSERT_TOKEN,
        params![user, hash.as_str(), entry.to_string()],
    )?;
    Ok(())
}

/// Stores an entry, replacing one with the same user and hash in its place.
pub(crate) const UPSERT_TOKEN: &str = "INSERT INTO tokens (user, hash, entry) VALUES (?1, ?2, ?3)
     ON CONFLICT (user, hash) DO UPDATE SET entry = excluded.entry";

/// `{"accounting": [line, ...], "users": {user: {"tokens": {hash: entry}}}}`, every object's
/// keys sorted.
pub(crate) fn dump(conn: &Connection, site: &Site) -> Result<Value, BackendError> {
    let sql = |table| move |e| site.sql(Some(table), e);
    let mut users: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
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
        users.entry(user).or_default().insert(hash, sorted(entry));
    }
    let mut stmt = conn
        .prepare("SELECT line FROM accounting ORDER BY id")
        .map_err(sql("accounting"))?;
    let accounting: Vec<Value> = stmt
        .query_map([], |row| row.get::<_, String>(0).map(Value::from))
        .map_err(sql("accounting"))?
        .collect::<Result<_, _>>()
        .map_err(sql("accounting"))?;

    let users: Map<String, Value> = users
        .into_iter()
        .map(|(user, tokens)| {
            let tokens: Map<String, Value> = tokens.into_iter().collect();
            let mut slot = Map::new();
            slot.insert("tokens".to_owned(), Value::Object(tokens));
            (user, Value::Object(slot))
        })
        .collect();
    let mut top = Map::new();
    top.insert("accounting".to_owned(), Value::Array(accounting));
    top.insert("users".to_owned(), Value::Object(users));
    Ok(Value::Object(top))
}

/// `value` with the keys of every object in it sorted.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let keyed: BTreeMap<String, Value> =
                map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(keyed.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

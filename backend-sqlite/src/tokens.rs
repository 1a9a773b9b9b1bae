//! The `tokens` table: reading a user's token set or one entry of it, listing the users that
//! have tokens, and storing one entry.
//!
//! An entry is stored as the JSON text of the object cPanel's token file holds under the
//! key, so every field (`acls` and `whitelist_ips` absent or present, `expires_at` null or
//! set, digit strings where cPanel wrote strings) and every unknown key survives as it was.

use rusqlite::{Connection, OptionalExtension, Statement, params};
use serde::Serialize;
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
        let hash = TokenHash::parse_owned(key)
            .map_err(|e| site.corrupt("tokens", Some(user), e.to_string()))?;
        let entry = parse_entry(site, user, &hash, &text)?;
        entries.push((hash, entry));
    }
    Ok(TokenSet::new(entries))
}

/// Selects the entry a user holds under one key, through the `UNIQUE (user, hash)` index.
pub(crate) const SELECT_TOKEN: &str = "SELECT entry FROM tokens WHERE user = ?1 AND hash = ?2";

/// The entry `user` holds under `key`, if any, without reading the user's other tokens.
/// Only that entry is parsed: another malformed row of the user's goes unnoticed here.
pub(crate) fn read_one(
    conn: &Connection,
    site: &Site,
    user: &str,
    key: &TokenHash,
) -> Result<Option<TokenEntry>, BackendError> {
    let sql = |e| site.sql_for(Some("tokens"), Some(user), e);
    let text: Option<String> = conn
        .prepare_cached(SELECT_TOKEN)
        .and_then(|mut stmt| {
            stmt.query_row(params![user, key.as_str()], |row| row.get(0))
                .optional()
        })
        .map_err(sql)?;
    text.map(|text| parse_entry(site, user, key, &text))
        .transpose()
}

/// Every user with at least one token row, sorted by name (SQLite's binary collation orders
/// UTF-8 text as Rust orders strings), whether or not the user has a row in `users`.
pub(crate) fn users(conn: &Connection, site: &Site) -> Result<Vec<String>, BackendError> {
    let sql = |e| site.sql(Some("tokens"), e);
    let mut stmt = conn
        .prepare_cached("SELECT DISTINCT user FROM tokens ORDER BY user")
        .map_err(sql)?;
    let users = stmt
        .query_map([], |row| row.get(0))
        .map_err(sql)?
        .collect::<Result<_, _>>()
        .map_err(sql)?;
    Ok(users)
}

/// One stored entry, as JSON text, for the key `hash` of `user`; a malformed one is
/// [`BackendError::Corrupt`], shown by the key's prefix only.
fn parse_entry(
    site: &Site,
    user: &str,
    hash: &TokenHash,
    text: &str,
) -> Result<TokenEntry, BackendError> {
    TokenEntry::from_json_text(text).map_err(|e| {
        site.corrupt(
            "tokens",
            Some(user),
            format!("token {}: {e}", hash.prefix()),
        )
    })
}

/// Stores `entry` (a [`TokenEntry`], or any JSON value when seeding a server) under
/// `hash`; an entry already there is replaced in its place.
pub(crate) fn upsert(
    conn: &Connection,
    user: &str,
    hash: &TokenHash,
    entry: &impl Serialize,
) -> rusqlite::Result<()> {
    let text = serde_json::to_string(entry).expect("an entry is always valid JSON");
    conn.execute(UPSERT_TOKEN, params![user, hash.as_str(), text])?;
    Ok(())
}

/// Stores an entry, replacing one with the same user and hash in its place.
pub(crate) const UPSERT_TOKEN: &str = "INSERT INTO tokens (user, hash, entry) VALUES (?1, ?2, ?3)
     ON CONFLICT (user, hash) DO UPDATE SET entry = excluded.entry";

//! The hosting accounts ([`Backend::accounts`](whmtoken_core::Backend::accounts)): the
//! users with an owner (schema version 4), sorted by name, with their domains.

use whmtoken_core::{Account, BackendError};

use crate::SqliteBackend;

pub(crate) fn read(backend: &SqliteBackend) -> Result<Vec<Account>, BackendError> {
    let conn = backend.lock();
    let sql = |e| backend.site.sql(Some("users"), e);
    let mut stmt = conn
        .prepare_cached(
            "SELECT name, domain, owner FROM users WHERE owner IS NOT NULL ORDER BY name",
        )
        .map_err(sql)?;
    let accounts = stmt
        .query_map([], |row| {
            Ok(Account {
                user: row.get(0)?,
                domain: row.get(1)?,
                owner: row.get(2)?,
            })
        })
        .map_err(sql)?
        .collect::<Result<_, _>>()
        .map_err(sql)?;
    Ok(accounts)
}

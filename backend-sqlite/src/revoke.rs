//! Revoking a token by name ([`Backend::revoke`](whmtoken_core::Backend::revoke)): the
//! user's rows are read and the one row deleted in one `BEGIN IMMEDIATE` transaction.

use rusqlite::params;
use whmtoken_core::{BackendError, TokenHash, UserName};

use crate::{SqliteBackend, tokens};

/// Deletes `user`'s token called `name`; the key removed, or `None` when there was none.
pub(crate) fn revoke(
    backend: &SqliteBackend,
    user: &UserName,
    name: &str,
) -> Result<Option<TokenHash>, BackendError> {
    let user = user.as_str();
    backend.write_with(|tx| {
        let current = tokens::read(tx, &backend.site, user)?;
        let Some((key, _)) = current.iter().find(|(_, entry)| entry.name == name) else {
            return Ok(None);
        };
        tx.execute(
            "DELETE FROM tokens WHERE user = ?1 AND hash = ?2",
            params![user, key.as_str()],
        )
        .map_err(|e| backend.site.sql_for(Some("tokens"), Some(user), e))?;
        Ok(Some(key.clone()))
    })
}

//! Revoking a token by name ([`Backend::revoke`](whmtoken_core::Backend::revoke)): the
//! token file's one locked rewrite ([`token_file::rewrite`]), as an import's, without the
//! entry; a revoke writes no audit line, and a missing token file is not created.

use std::fs;

use whmtoken_core::{BackendError, TokenHash, UserName};

use crate::FilesBackend;
use crate::document::Edit;
use crate::token_file;

/// Removes `user`'s token called `name`; the key removed, or `None` when there was none.
pub(crate) fn revoke(
    backend: &FilesBackend,
    user: &UserName,
    name: &str,
) -> Result<Option<TokenHash>, BackendError> {
    // No token file: nothing to revoke, and no token folder to set up.
    if fs::symlink_metadata(backend.token_file(user)).is_err() {
        return Ok(None);
    }
    let target = backend.writable_token_file(user)?;
    token_file::rewrite(
        &target,
        false,
        None,
        |tokens| {
            let key = tokens
                .iter()
                .find(|(_, entry)| entry.name == name)
                .map(|(key, _)| key.clone());
            let edit = key.clone().map(Edit::Remove);
            Ok((key, edit))
        },
        |_| Ok(None),
    )
}

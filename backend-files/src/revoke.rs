//! Revoking a token by name ([`Backend::revoke`](whmtoken_core::Backend::revoke)): the
//! token file is read, and written again without the entry, under the same dot-lock and
//! flock as an import, through the same durable replacement.

use std::fs;

use whmtoken_core::{BackendError, TokenHash, UserName};

use crate::FilesBackend;
use crate::document::Document;
use crate::lock::{Deadline, DotLock};
use crate::safe_fs::read_bounded;
use crate::token_file::{MAX_TOKEN_FILE, NewFile, open_locked};

/// Removes `user`'s token called `name`; the key removed, or `None` when there was none. A
/// missing token file is not created.
pub(crate) fn revoke(
    backend: &FilesBackend,
    user: &UserName,
    name: &str,
) -> Result<Option<TokenHash>, BackendError> {
    let path = backend.token_file(user);
    if fs::symlink_metadata(&path).is_err() {
        return Ok(None);
    }
    let folder = backend.token_folder()?;
    let deadline = Deadline::after(backend.lock_timeout);
    let _dot_lock = DotLock::acquire(&path, &folder.locks, deadline)?;
    let (file, size, created) = open_locked(&path, backend.token_owner, deadline)?;
    if created {
        // Removed by someone else since it was looked at: no token to revoke.
        let _ = fs::remove_file(&path);
        return Ok(None);
    }
    let _memory = backend.budget.take(size);
    let bytes = read_bounded(&path, &file, size, MAX_TOKEN_FILE)?;
    let document = Document::parse(&path, &bytes)?;
    let Some((key, _)) = document.set.iter().find(|(_, entry)| entry.name == name) else {
        return Ok(None);
    };
    let key = key.clone();
    NewFile::write(&path, backend.token_owner, |out| {
        document.write_without(&key, out)
    })?
    .put_in_place(folder, None)?;
    Ok(Some(key))
    // `file` (the flock) and then `_dot_lock` are released here.
}

//! `var/cpanel/accounting.log`: one line appended per token written, under the same lock
//! protocol cPanel uses for it, the file kept at mode 0600.

use std::fs::{OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::time::Duration;

use camino::Utf8Path;
use whmtoken_core::BackendError;

use crate::lock::{DotLock, flock_exclusive};
use crate::safe_fs::{Expect, check, io_error, open_guarded};

pub(crate) fn append(path: &Utf8Path, line: &str, timeout: Duration) -> Result<(), BackendError> {
    let _dot_lock = DotLock::acquire(path, timeout)?;
    let mut options = OpenOptions::new();
    options.append(true).create(true).mode(0o600);
    let mut file = open_guarded(path, &mut options)?
        .ok_or_else(|| io_error(path, std::io::ErrorKind::NotFound.into()))?;
    check(
        path,
        &file,
        Expect {
            owner: None,
            max_len: u64::MAX,
        },
    )?;
    flock_exclusive(path, &file, timeout)?;
    file.set_permissions(Permissions::from_mode(0o600))
        .map_err(|e| io_error(path, e))?;
    file.write_all(format!("{line}\n").as_bytes())
        .map_err(|e| io_error(path, e))
}

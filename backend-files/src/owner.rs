//! A tree that root does not own (a fake server another user built): root acting on it acts
//! as the tree's owner. Its files are trusted as root's would be on a real server, so
//! anything root did there with root's power (follow a home out of the tree, create a file
//! owned by someone else, set a setuid bit) a forged file in the tree could steer.
//!
//! So, when the backend is opened as root on such a tree, the opening thread drops to the
//! owner's uid and gid for good (real, effective and saved; no supplementary groups); the
//! threads it starts afterwards, those of the run, inherit that. Everything created is then
//! the owner's, and nothing the owner could not reach is reached. And a home folder is
//! followed only when it stays inside the tree.

use std::io;
use std::path::{Path, PathBuf};

use camino::Utf8Path;
use rustix::process::{Gid, Uid};
use whmtoken_core::BackendError;

use crate::safe_fs::io_error;

/// Makes this thread (and those it starts) act as `uid`:`gid`, for good, when it runs as
/// root; nothing otherwise.
pub(crate) fn act_as(root: &Utf8Path, uid: u32, gid: u32) -> Result<(), BackendError> {
    if !rustix::process::geteuid().is_root() || uid == 0 {
        return Ok(());
    }
    let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
    rustix::thread::set_thread_groups(&[])
        .and_then(|()| rustix::thread::set_thread_res_gid(gid, gid, gid))
        .and_then(|()| rustix::thread::set_thread_res_uid(uid, uid, uid))
        .map_err(|e| {
            io_error(
                root,
                io::Error::other(format!(
                    "cannot act as the tree's owner (uid {}): {e}",
                    uid.as_raw()
                )),
            )
        })
}

/// The tree's real path, against which homes are checked.
pub(crate) fn real_root(root: &Utf8Path) -> Result<PathBuf, BackendError> {
    std::fs::canonicalize(root).map_err(|e| io_error(root, e))
}

/// Refuses a home folder whose real path leaves the tree `real_root`; a missing one is
/// left to the reads, which find nothing there.
pub(crate) fn check_inside(
    real_root: &Path,
    home: &Utf8Path,
    user: &str,
) -> Result<(), BackendError> {
    match std::fs::canonicalize(home) {
        Ok(real) if real.starts_with(real_root) => Ok(()),
        Ok(real) => Err(BackendError::Unsafe {
            location: home.to_string(),
            detail: format!(
                "the home of {user} leads out of the tree, to {}",
                real.display()
            ),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(home, e)),
    }
}

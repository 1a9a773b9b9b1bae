//! A home folder held open while retire and restore work in it: its path is resolved once
//! (symbolic links on the way followed, as `etc/passwd` gives it, and checked to stay in
//! the tree), then opened one component at a time without following any link, and every
//! read, rename, removal and new file of the run in that folder goes through the open
//! descriptor. A tenant who swaps its home, or a folder on the way, for a symbolic link
//! meanwhile cannot steer root into another folder: the swap either makes the opening fail
//! or comes after it, when the path is no longer used.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path};

use camino::{Utf8Path, Utf8PathBuf};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags};
use whmtoken_core::BackendError;

use crate::safe_fs::{io_error, unsafe_file};

/// An open home folder; `path` is how messages show it.
#[derive(Debug)]
pub(crate) struct Home {
    pub(crate) path: Utf8PathBuf,
    dir: File,
}

/// The flags of every open here: never a symbolic link, never a terminal, never blocked by
/// a FIFO, not inherited.
fn guarded() -> OFlags {
    OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC
}

impl Home {
    /// Opens the home folder `path` (as shown), whose real path must stay under
    /// `real_root`; `None` when it does not exist. A home that is itself a symbolic link
    /// must lead to a folder its account (`owner`) owns: a link to another account's home,
    /// root's included, is refused.
    pub(crate) fn open(
        path: &Utf8Path,
        real_root: &Path,
        owner: u32,
    ) -> Result<Option<Self>, BackendError> {
        let real = match std::fs::canonicalize(path) {
            Ok(real) => real,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(path, e)),
        };
        if !real.starts_with(real_root) {
            return Err(unsafe_file(
                path,
                &format!(
                    "the home folder leads out of the tree, to {}",
                    real.display()
                ),
            ));
        }
        let mut dir: OwnedFd =
            rustix::fs::open("/", OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
                .map_err(|e| io_error(path, e.into()))?;
        for part in real.components() {
            let Component::Normal(name) = part else {
                continue;
            };
            dir = rustix::fs::openat(&dir, name, OFlags::DIRECTORY | guarded(), Mode::empty())
                .map_err(|e| match e {
                    rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => unsafe_file(
                        path,
                        "it changed into a symbolic link or a file while being opened",
                    ),
                    e => io_error(path, e.into()),
                })?;
        }
        let dir = File::from(dir);
        let meta = dir.metadata().map_err(|e| io_error(path, e))?;
        if meta.uid() != owner {
            let parent = path.parent().expect("a home has a parent folder");
            let lexical = std::fs::canonicalize(parent)
                .map_err(|e| io_error(parent, e))?
                .join(path.file_name().unwrap_or_default());
            if lexical != real {
                return Err(unsafe_file(
                    path,
                    "it is a symbolic link to a folder its account does not own",
                ));
            }
        }
        Ok(Some(Self {
            path: path.to_owned(),
            dir,
        }))
    }

    /// The folder's descriptor.
    pub(crate) fn dir(&self) -> &File {
        &self.dir
    }

    /// Where `name` is, as messages show it.
    pub(crate) fn at(&self, name: &str) -> Utf8PathBuf {
        self.path.join(name)
    }

    /// Opens `name` in the folder for reading, never through a symbolic link; `None` when
    /// it does not exist.
    pub(crate) fn open_file(&self, name: &str) -> Result<Option<File>, BackendError> {
        match rustix::fs::openat(&self.dir, name, OFlags::RDONLY | guarded(), Mode::empty()) {
            Ok(fd) => Ok(Some(File::from(fd))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(rustix::io::Errno::LOOP) => {
                Err(unsafe_file(&self.at(name), "it is a symbolic link"))
            }
            Err(e) => Err(io_error(&self.at(name), e.into())),
        }
    }

    /// Makes `name`, a new file (never over anything, never through a link), mode 0600.
    pub(crate) fn create_new(&self, name: &str) -> io::Result<File> {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | guarded();
        let fd = rustix::fs::openat(&self.dir, name, flags, Mode::from_raw_mode(0o600))?;
        Ok(File::from(fd))
    }

    /// The kind of `name` (not followed), `None` when there is nothing of that name.
    pub(crate) fn kind(&self, name: &str) -> io::Result<Option<FileType>> {
        match rustix::fs::statat(&self.dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(FileType::from_raw_mode(stat.st_mode))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Renames `from` to `to` in the folder, never over an existing `to`.
    pub(crate) fn rename_noreplace(&self, from: &str, to: &str) -> io::Result<()> {
        rustix::fs::renameat_with(&self.dir, from, &self.dir, to, RenameFlags::NOREPLACE)
            .map_err(io::Error::from)
    }

    /// Renames `from` over `to` in the folder.
    pub(crate) fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        rustix::fs::renameat(&self.dir, from, &self.dir, to).map_err(io::Error::from)
    }

    /// Removes the file (not a folder) `name`.
    pub(crate) fn remove(&self, name: &str) -> io::Result<()> {
        rustix::fs::unlinkat(&self.dir, name, AtFlags::empty()).map_err(io::Error::from)
    }

    /// The names in the folder.
    pub(crate) fn names(&self) -> Result<Vec<String>, BackendError> {
        let entries =
            rustix::fs::Dir::read_from(&self.dir).map_err(|e| io_error(&self.path, e.into()))?;
        Ok(entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = OsStr::from_bytes(e.file_name().to_bytes());
                name.to_str().map(str::to_owned)
            })
            .collect())
    }

    /// Syncs the folder, so that what was made, renamed or removed in it lasts.
    pub(crate) fn sync(&self) -> Result<(), BackendError> {
        self.dir.sync_all().map_err(|e| io_error(&self.path, e))
    }
}

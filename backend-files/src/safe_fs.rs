//! Opening files in places other users control: never through a symbolic link at the last
//! component, never blocking on a FIFO, and checked on the open descriptor, not the path.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

use camino::{Utf8Path, Utf8PathBuf};
use rustix::fs::OFlags;
use whmtoken_core::BackendError;

/// Flags for every open of a file the backend does not fully control.
pub(crate) fn guarded_flags() -> i32 {
    let flags = OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    i32::try_from(flags.bits()).expect("open flags fit in an int")
}

/// Opens `path` with `options` plus the guarded flags. `Ok(None)` when it does not exist.
pub(crate) fn open_guarded(
    path: &Utf8Path,
    options: &mut OpenOptions,
) -> Result<Option<File>, BackendError> {
    match options.custom_flags(guarded_flags()).open(path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            Err(unsafe_file(path, "it is a symbolic link"))
        }
        Err(e) => Err(io_error(path, e)),
    }
}

/// What the checks on an open file require.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Expect {
    /// Owners accepted besides root.
    pub owner: Option<u32>,
    pub max_len: u64,
    /// A secret: refused when group or others can write it, or when anyone but `owner`
    /// (not even root) owns it.
    pub secret: bool,
}

/// Checks the open file: a regular file with one link, owned by root or `expect.owner`, no
/// larger than `expect.max_len`.
pub(crate) fn check(
    path: &Utf8Path,
    file: &File,
    expect: Expect,
) -> Result<Metadata, BackendError> {
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    if !meta.file_type().is_file() {
        return Err(unsafe_file(
            path,
            &format!(
                "it is {}",
                whmtoken_core::backend::describe_file_type(&meta.file_type())
            ),
        ));
    }
    if meta.nlink() != 1 {
        return Err(unsafe_file(
            path,
            &format!("it has {} hard links", meta.nlink()),
        ));
    }
    let owner_ok = if expect.secret {
        Some(meta.uid()) == expect.owner
    } else {
        meta.uid() == 0 || Some(meta.uid()) == expect.owner
    };
    if !owner_ok {
        let detail = match expect.owner {
            Some(owner) if expect.secret => {
                format!(
                    "it is owned by uid {}, not by its account (uid {owner})",
                    meta.uid()
                )
            }
            _ => format!("it is owned by uid {}", meta.uid()),
        };
        return Err(unsafe_file(path, &detail));
    }
    if meta.len() > expect.max_len {
        let detail = format!("it is {} bytes, more than {}", meta.len(), expect.max_len);
        return Err(unsafe_file(path, &detail));
    }
    let mode = meta.mode() & 0o7777;
    if expect.secret && mode & 0o022 != 0 {
        return Err(BackendError::WritableByOthers {
            location: path.to_string(),
            mode,
        });
    }
    Ok(meta)
}

/// [`check`]s the open file, then reads it whole.
pub(crate) fn read_checked(
    path: &Utf8Path,
    file: &File,
    expect: Expect,
) -> Result<Vec<u8>, BackendError> {
    let meta = check(path, file, expect)?;
    read_bounded(path, file, meta.len(), expect.max_len)
}

/// Reads at most `max_len` bytes: a file that grows past its checked size is refused.
/// `size_hint` (the checked length) sizes the buffer, so that reading does not reallocate
/// and leave copies of a secret behind in freed memory.
pub(crate) fn read_bounded(
    path: &Utf8Path,
    file: &File,
    size_hint: u64,
    max_len: u64,
) -> Result<Vec<u8>, BackendError> {
    let capacity = usize::try_from(size_hint.min(max_len)).unwrap_or(0) + 1;
    let mut bytes = Vec::with_capacity(capacity);
    file.take(max_len + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(path, e))?;
    if bytes.len() as u64 > max_len {
        return Err(unsafe_file(
            path,
            &format!("it grew past {max_len} bytes while being read"),
        ));
    }
    Ok(bytes)
}

/// A file this process has just made, removed when the guard is dropped unless
/// [`Made::keep`] is called: no error path leaves a half-made file behind.
#[derive(Debug)]
pub(crate) struct Made {
    path: Option<Utf8PathBuf>,
}

impl Made {
    pub(crate) fn new(path: &Utf8Path) -> Self {
        Self {
            path: Some(path.to_owned()),
        }
    }

    /// The file is done (or renamed away): leave it.
    pub(crate) fn keep(mut self) {
        self.path = None;
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        if let Some(path) = &self.path
            && let Err(e) = std::fs::remove_file(path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(file = %path, error = %e, "could not remove a file left unfinished");
        }
    }
}

pub(crate) fn unsafe_file(path: &Utf8Path, detail: &str) -> BackendError {
    BackendError::Unsafe {
        location: path.to_string(),
        detail: detail.to_owned(),
    }
}

pub(crate) fn io_error(path: &Utf8Path, source: io::Error) -> BackendError {
    BackendError::Io {
        location: path.to_string(),
        source,
    }
}

pub(crate) fn corrupt(path: &Utf8Path, detail: impl Into<String>) -> BackendError {
    BackendError::Corrupt {
        location: path.to_string(),
        detail: detail.into(),
    }
}

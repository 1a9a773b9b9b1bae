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

/// Every rule a file is checked against where it is opened.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Rules {
    /// A file read as it is: see [`Expect`].
    Read(Expect),
    /// A file this backend replaces (a token file): owned by `owner` itself (root only
    /// when `owner` is root), that nobody else can write to, no larger than `max_len`, and
    /// without the immutable or append-only attribute, which cPanel never sets.
    Replaced { owner: u32, max_len: u64 },
}

impl From<Expect> for Rules {
    fn from(expect: Expect) -> Self {
        Self::Read(expect)
    }
}

impl Rules {
    fn max_len(self) -> u64 {
        match self {
            Self::Read(expect) => expect.max_len,
            Self::Replaced { max_len, .. } => max_len,
        }
    }
}

/// A file opened by [`open_checked`]: every check of its [`Rules`] was made on this
/// descriptor, once, and nothing checks it again.
#[derive(Debug)]
pub(crate) struct Checked {
    path: Utf8PathBuf,
    file: File,
    /// Its size when it was checked (or, once locked, when it was locked).
    len: u64,
    max_len: u64,
}

impl Checked {
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The open file itself, for a read that streams it.
    pub(crate) fn into_file(self) -> File {
        self.file
    }

    /// The same file, its size as it is now: what a writer that held the lock before us
    /// left (the rules' bound still holds: [`read`](Self::read) refuses more).
    pub(crate) fn with_len(self, len: u64) -> Self {
        Self { len, ..self }
    }

    /// The whole file, at most the rules' `max_len` bytes.
    pub(crate) fn read(&self) -> Result<Vec<u8>, BackendError> {
        read_bounded(&self.path, &self.file, self.len, self.max_len)
    }
}

/// Opens `path` with `options` plus the guarded flags and checks the descriptor against
/// `rules`; `Ok(None)` when it does not exist. An open that a [`Rules::Replaced`] file
/// refuses is explained by its attributes when they are the cause.
pub(crate) fn open_checked(
    path: &Utf8Path,
    options: &mut OpenOptions,
    rules: impl Into<Rules>,
) -> Result<Option<Checked>, BackendError> {
    let rules = rules.into();
    let file = match open_guarded(path, options) {
        Ok(Some(file)) => file,
        Ok(None) => return Ok(None),
        Err(BackendError::Io { location, source })
            if source.kind() == io::ErrorKind::PermissionDenied
                && matches!(rules, Rules::Replaced { .. }) =>
        {
            let file = OpenOptions::new()
                .read(true)
                .custom_flags(guarded_flags())
                .open(path)
                .ok();
            return Err(file
                .and_then(|f| attribute_refusal(path, &f))
                .unwrap_or(BackendError::Io { location, source }));
        }
        Err(e) => return Err(e),
    };
    let meta = check(path, &file, rules)?;
    if let Rules::Replaced { .. } = rules
        && let Some(refusal) = attribute_refusal(path, &file)
    {
        return Err(refusal);
    }
    Ok(Some(Checked {
        path: path.to_owned(),
        file,
        len: meta.len(),
        max_len: rules.max_len(),
    }))
}

/// Checks the open file: a regular file with one link, owned by root or the rules' owner,
/// no larger than their `max_len`, and what else the rules ask.
pub(crate) fn check(
    path: &Utf8Path,
    file: &File,
    rules: impl Into<Rules>,
) -> Result<Metadata, BackendError> {
    let rules = rules.into();
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
    let (owner, secret) = match rules {
        Rules::Read(expect) => (expect.owner, expect.secret),
        Rules::Replaced { owner, .. } => (Some(owner), false),
    };
    let owner_ok = if secret {
        Some(meta.uid()) == owner
    } else {
        meta.uid() == 0 || Some(meta.uid()) == owner
    };
    if !owner_ok {
        let detail = match owner {
            Some(owner) if secret => {
                format!(
                    "it is owned by uid {}, not by its account (uid {owner})",
                    meta.uid()
                )
            }
            _ => format!("it is owned by uid {}", meta.uid()),
        };
        return Err(unsafe_file(path, &detail));
    }
    if meta.len() > rules.max_len() {
        let detail = format!("it is {} bytes, more than {}", meta.len(), rules.max_len());
        return Err(unsafe_file(path, &detail));
    }
    let mode = meta.mode() & 0o7777;
    match rules {
        Rules::Read(_) if secret && mode & 0o022 != 0 => Err(BackendError::WritableByOthers {
            location: path.to_string(),
            mode,
        }),
        Rules::Replaced { owner, .. } if meta.uid() != owner => Err(unsafe_file(
            path,
            &format!("it is owned by uid {}, not {owner}", meta.uid()),
        )),
        Rules::Replaced { .. } if mode & 0o022 != 0 => Err(unsafe_file(
            path,
            &format!("its mode {mode:04o} lets others write to it"),
        )),
        _ => Ok(meta),
    }
}

/// The immutable or append-only attribute, which stops any replacement of the file.
fn attribute_refusal(path: &Utf8Path, file: &File) -> Option<BackendError> {
    let flags = rustix::fs::ioctl_getflags(file).ok()?;
    let what = if flags.contains(rustix::fs::IFlags::IMMUTABLE) {
        "immutable (chattr +i)"
    } else if flags.contains(rustix::fs::IFlags::APPEND) {
        "append-only (chattr +a)"
    } else {
        return None;
    };
    Some(BackendError::Tampered {
        location: path.to_string(),
        what,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A file this backend replaces must be its writer's own: root's is refused unless the
    /// writer is root, after the checks every file gets (its size first).
    #[test]
    fn a_replaced_file_owned_by_root_is_its_writers_only_when_the_writer_is_root() {
        let dir = tempfile::tempdir().unwrap();
        let path = Utf8Path::from_path(dir.path()).unwrap().join("x.json");
        std::fs::write(&path, "{}").unwrap();
        let uid = std::fs::metadata(&path).unwrap().uid();
        let refusal = |owner, max_len| {
            let rules = Rules::Replaced { owner, max_len };
            let mut options = OpenOptions::new();
            match open_checked(&path, options.read(true), rules) {
                Err(BackendError::Unsafe { detail, .. }) => detail,
                other => panic!("expected a refusal, got {other:?}"),
            }
        };
        let expected = if uid == 0 {
            "it is owned by uid 0, not 1".to_owned()
        } else {
            format!("it is owned by uid {uid}")
        };
        assert_eq!(refusal(uid + 1, 1 << 20), expected);
        assert_eq!(
            refusal(uid + 1, 1),
            if uid == 0 {
                "it is 2 bytes, more than 1".to_owned()
            } else {
                expected
            }
        );
        let mut options = OpenOptions::new();
        let own = open_checked(
            &path,
            options.read(true),
            Rules::Replaced {
                owner: uid,
                max_len: 2,
            },
        );
        assert_eq!(
            own.unwrap().expect("the file is there").read().unwrap(),
            b"{}"
        );
    }
}

//! A user's WHM token file, `var/cpanel/authn/api_tokens_v2/whostmgr/<user>.json`: read,
//! and replaced atomically and durably under cPanel's lock protocol, its audit line written
//! durably before the new file becomes visible.

use std::fs::{self, DirBuilder, File, Metadata, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::sync::Arc;
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use whmtoken_core::{BackendError, Decision, ImportRequest, TokenSet};

use crate::budget::ReadBudget;
use crate::crash::crash_point;
use crate::document::Document;
use crate::group_sync::GroupSync;
use crate::lock::{Deadline, DotLock, LockSource, flock_exclusive, unique_suffix};
use crate::safe_fs::{
    Expect, Made, check, guarded_flags, io_error, open_guarded, read_bounded, unsafe_file,
};

/// Token files larger than this are refused rather than parsed.
pub(crate) const MAX_TOKEN_FILE: u64 = 16 << 20;

/// Where WHM's token files are, under the server root.
pub(crate) const TOKEN_FOLDER: &str = "var/cpanel/authn/api_tokens_v2/whostmgr";

/// The folders above a token file, from the top, with the modes cPanel creates them with.
const TOKEN_DIRS: [(&str, u32); 4] = [
    ("var/cpanel", 0o755),
    ("var/cpanel/authn", 0o711),
    ("var/cpanel/authn/api_tokens_v2", 0o711),
    (TOKEN_FOLDER, 0o700),
];

/// Reads the tokens without locking or creating anything; a missing file has none.
///
/// It also makes every check an import makes before writing (the folder's safety, the
/// immutable and append-only attributes), so that a dry run predicts a real run.
pub(crate) fn read(
    path: &Utf8Path,
    owner: u32,
    budget: &ReadBudget,
) -> Result<TokenSet, BackendError> {
    let folder = path.parent().expect("a token file has a folder");
    match fs::symlink_metadata(folder) {
        Ok(meta) => check_token_folder(folder, &meta, owner)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(TokenSet::default()),
        Err(e) => return Err(io_error(folder, e)),
    }
    let Some(file) = open_guarded(path, OpenOptions::new().read(true))? else {
        return Ok(TokenSet::default());
    };
    let meta = check_token_file(path, &file, owner)?;
    if let Some(refusal) = attribute_refusal(path, &file) {
        return Err(refusal);
    }
    let _memory = budget.take(meta.len());
    let bytes = read_bounded(path, &file, meta.len(), MAX_TOKEN_FILE)?;
    Ok(Document::parse(path, &bytes)?.set)
}

/// The users that have a token file in `folder` (the `whostmgr` folder), sorted: the
/// `<user>` of every `<user>.json` whose name has no other dot, as cPanel lists them
/// (`([^.]+)\.json$`), which leaves out temporary files. A missing folder has none.
///
/// The folder gets the same checks as before a read or an import (a real folder, owned by
/// `owner`, that nobody else can write to), made again on the descriptor that is listed, so
/// that a folder swapped for a symbolic link in between is not listed through. Entries are
/// listed by name only: a `<user>.json` that is not a regular file is listed, and refused
/// when it is read. A name that is not UTF-8 is listed with replacement characters, for the
/// caller to report as an invalid user name.
pub(crate) fn list_users(folder: &Utf8Path, owner: u32) -> Result<Vec<String>, BackendError> {
    match fs::symlink_metadata(folder) {
        Ok(meta) => check_token_folder(folder, &meta, owner)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(folder, e)),
    }
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(guarded_flags() | libc_directory())
        .open(folder);
    let dir = match opened {
        Ok(dir) => dir,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(unsafe_file(folder, "it is a symbolic link"));
        }
        Err(e) => return Err(io_error(folder, e)),
    };
    let meta = dir.metadata().map_err(|e| io_error(folder, e))?;
    check_token_folder(folder, &meta, owner)?;
    let entries = rustix::fs::Dir::read_from(&dir).map_err(|e| io_error(folder, e.into()))?;
    let mut users = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(folder, e.into()))?;
        let name = String::from_utf8_lossy(entry.file_name().to_bytes());
        if let Some(user) = name
            .strip_suffix(".json")
            .filter(|u| !u.is_empty() && !u.contains('.'))
        {
            users.push(user.to_owned());
        }
    }
    users.sort_unstable();
    Ok(users)
}

/// The `whostmgr` folder, set up for writing: opened (for fsync), with the syncs its
/// renames share and the source of its files' dot-locks.
#[derive(Debug)]
pub(crate) struct TokenFolder {
    pub(crate) dir: File,
    pub(crate) syncs: GroupSync<(), Arc<io::Error>>,
    pub(crate) locks: LockSource,
}

/// How an import's audit line is written: appended in the user's turn, then made durable
/// before the new token file becomes visible.
pub(crate) trait AuditLine {
    /// Appends the record `decision` calls for (none for a key already present).
    fn append(&mut self, decision: &Decision) -> Result<(), BackendError>;
    /// Returns once the appended record is on disk.
    fn make_durable(&mut self) -> Result<(), BackendError>;
}

/// Decides `request` against the file's current contents, has `audit` write the decision's
/// audit line, and writes the result, all while holding the dot-lock and the flock. When
/// the line cannot be written, nothing is.
pub(crate) fn import(
    path: &Utf8Path,
    request: &ImportRequest,
    owner: u32,
    timeout: Duration,
    folder: &TokenFolder,
    budget: &ReadBudget,
    audit: &mut dyn AuditLine,
) -> Result<Decision, BackendError> {
    let deadline = Deadline::after(timeout);
    let _dot_lock = DotLock::acquire(path, &folder.locks, deadline)?;
    let (file, size, created) = open_locked(path, owner, deadline)?;
    let decided = (|| {
        // The file's bytes, and their share of the memory budget, are let go before the
        // audit line waits for its turn: an earlier user may be waiting for that memory.
        let (decision, new_file) = {
            let _memory = budget.take(size);
            let bytes = read_bounded(path, &file, size, MAX_TOKEN_FILE)?;
            let document = Document::parse_for_import(path, &bytes, &request.hash)?;
            let decision = request.decide(&document.set)?;
            let new_file = match &decision {
                Decision::Write { entry, .. } => Some(NewFile::write(path, owner, |out| {
                    document.write_with_entry(&request.hash, entry, out)
                })?),
                Decision::AlreadyPresent { .. } => None,
            };
            (decision, new_file)
        };
        match new_file {
            Some(new_file) => new_file.put_in_place(folder, Some((&decision, audit)))?,
            None => audit.append(&decision)?,
        }
        Ok(decision)
    })();
    if decided.is_err() && created {
        // The empty file this import made, still under its locks: gone with the import.
        let still_ours = fs::symlink_metadata(path)
            .ok()
            .zip(file.metadata().ok())
            .is_some_and(|(now, held)| now.ino() == held.ino() && now.len() == 0);
        if still_ours {
            let _ = fs::remove_file(path);
        }
    }
    decided
    // `file` (the flock) and then `_dot_lock` are released here.
}

/// Parses bytes as a token file would be, for the property tests.
#[cfg(test)]
pub(crate) fn parse_for_tests(bytes: &[u8]) -> Result<TokenSet, BackendError> {
    Document::parse(Utf8Path::new("test.json"), bytes).map(|doc| doc.set)
}

/// Opens (creating it empty, as cPanel does) and flocks the data file, making sure the
/// descriptor still names the file at `path` once the lock is held.
/// Returns the file and its size once locked.
pub(crate) fn open_locked(
    path: &Utf8Path,
    owner: u32,
    deadline: Deadline,
) -> Result<(File, u64, bool), BackendError> {
    loop {
        // Made here (`created`) or already there: what a failed import leaves differs.
        let mut options = OpenOptions::new();
        options.read(true).write(true).create_new(true).mode(0o600);
        let (opened, created) = match open_guarded(path, &mut options) {
            Err(BackendError::Io { source, .. })
                if source.kind() == io::ErrorKind::AlreadyExists =>
            {
                let mut options = OpenOptions::new();
                options.read(true).write(true);
                (open_guarded(path, &mut options), false)
            }
            other => (other, true),
        };
        let file = match opened {
            Ok(Some(file)) => file,
            // Removed between the two opens: make it again.
            Ok(None) if !created => continue,
            Ok(None) => return Err(io_error(path, io::ErrorKind::NotFound.into())),
            Err(BackendError::Io { source, .. })
                if source.kind() == io::ErrorKind::PermissionDenied =>
            {
                return Err(immutable_or(path, source));
            }
            Err(e) => return Err(e),
        };
        check_token_file(path, &file, owner)?;
        flock_exclusive(path, &file, deadline)?;
        let held = file.metadata().map_err(|e| io_error(path, e))?;
        if fs::symlink_metadata(path).is_ok_and(|now| now.ino() == held.ino()) {
            return Ok((file, held.len(), created));
        }
    }
}

/// Explains a refused open: the immutable or append-only attribute, or the plain error.
fn immutable_or(path: &Utf8Path, source: io::Error) -> BackendError {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(guarded_flags())
        .open(path);
    file.ok()
        .and_then(|f| attribute_refusal(path, &f))
        .unwrap_or_else(|| io_error(path, source))
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

/// A token file is trusted only when it is a regular file owned by the writing user (root on
/// a real server) that nobody else can write to.
fn check_token_file(path: &Utf8Path, file: &File, owner: u32) -> Result<Metadata, BackendError> {
    let meta = check(
        path,
        file,
        Expect {
            owner: Some(owner),
            max_len: MAX_TOKEN_FILE,
            secret: false,
        },
    )?;
    if meta.uid() != owner {
        return Err(unsafe_file(
            path,
            &format!("it is owned by uid {}, not {owner}", meta.uid()),
        ));
    }
    if meta.mode() & 0o022 != 0 {
        let detail = format!(
            "its mode {:04o} lets others write to it",
            meta.mode() & 0o7777
        );
        return Err(unsafe_file(path, &detail));
    }
    Ok(meta)
}

/// Creates the token folders that are missing, with cPanel's modes, and checks that the
/// `whostmgr` folder is a real folder that only `owner` can write to.
pub(crate) fn ensure_token_dirs(root: &Utf8Path, owner: u32) -> Result<File, BackendError> {
    for (relative, mode) in TOKEN_DIRS {
        let dir = root.join(relative);
        if fs::symlink_metadata(&dir).is_ok() {
            continue; // existing folders keep their modes
        }
        // Missing parents above `var/cpanel` (a bare test root) get the same mode.
        DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(&dir)
            .map_err(|e| io_error(&dir, e))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode))
            .map_err(|e| io_error(&dir, e))?;
        // A new folder lasts a power loss only once its parent's entry is on disk.
        let parent = dir.parent().expect("under the root");
        File::open(parent)
            .and_then(|p| p.sync_all())
            .map_err(|e| io_error(parent, e))?;
    }
    let whostmgr = root.join(TOKEN_DIRS[3].0);
    let meta = fs::symlink_metadata(&whostmgr).map_err(|e| io_error(&whostmgr, e))?;
    check_token_folder(&whostmgr, &meta, owner)?;
    let folder = OpenOptions::new()
        .read(true)
        .custom_flags(guarded_flags() | libc_directory())
        .open(&whostmgr);
    folder.map_err(|e| io_error(&whostmgr, e))
}

/// `O_DIRECTORY`: the folder opened for fsync must be the folder just checked.
fn libc_directory() -> i32 {
    i32::try_from(rustix::fs::OFlags::DIRECTORY.bits()).expect("open flags fit in an int")
}

/// The `whostmgr` folder is trusted only when it is a real folder owned by `owner` that
/// nobody else can write to.
fn check_token_folder(folder: &Utf8Path, meta: &Metadata, owner: u32) -> Result<(), BackendError> {
    if !meta.is_dir() {
        return Err(unsafe_file(
            folder,
            &format!(
                "it is {}",
                whmtoken_core::backend::describe_file_type(&meta.file_type())
            ),
        ));
    }
    if meta.uid() != owner || meta.mode() & 0o022 != 0 {
        let detail = format!(
            "folder owned by uid {} with mode {:04o}",
            meta.uid(),
            meta.mode() & 0o7777
        );
        return Err(unsafe_file(folder, &detail));
    }
    Ok(())
}

/// A token file's new contents, written to a temporary file beside it and not yet in place.
pub(crate) struct NewFile<'p> {
    path: &'p Utf8Path,
    temp: Utf8PathBuf,
    made: Made,
    file: File,
}

impl<'p> NewFile<'p> {
    /// Writes `contents` to a new temporary file beside `path`; refuses contents that this
    /// program could not read back. The temporary file is removed unless it is put in place.
    pub(crate) fn write(
        path: &'p Utf8Path,
        owner: u32,
        contents: impl FnOnce(&mut io::BufWriter<&File>) -> io::Result<()>,
    ) -> Result<Self, BackendError> {
        let temp = Utf8PathBuf::from(format!("{path}-{}", unique_suffix()));
        let (made, file) = write_new(&temp, contents, owner)?;
        // A file this program could not read back would lock its user out of every later run.
        let written = file.metadata().map_err(|e| io_error(&temp, e))?.len();
        if written > MAX_TOKEN_FILE {
            return Err(BackendError::UnsafeToWrite {
                location: path.to_string(),
                detail: format!(
                    "with the new token it would be {written} bytes, more than {MAX_TOKEN_FILE}; it was left as it was"
                ),
            });
        }
        Ok(Self {
            path,
            temp,
            made,
            file,
        })
    }

    /// Has `audit` (if any) append the line for its decision, syncs the file while the line
    /// is synced (one log sync shared with other threads), renames the file over its path
    /// and syncs the folder (one sync shared with the renames of other threads) and the new
    /// file: after a crash the file holds either the old or the new contents, never a mix,
    /// and never the new contents without their line. When any step before the rename
    /// fails, the temporary file is removed; a failure after it fails the user without a
    /// claim that the token was stored.
    ///
    /// The line is appended before the file's own fsync, so that a user's turn (audit lines
    /// go in the users' order) never waits on a disk flush.
    pub(crate) fn put_in_place(
        self,
        folder: &TokenFolder,
        audit: Option<(&Decision, &mut dyn AuditLine)>,
    ) -> Result<(), BackendError> {
        let Self {
            path,
            temp,
            made,
            file,
        } = self;
        let mut audit = audit;
        if let Some((decision, line)) = audit.as_mut() {
            line.append(decision)?;
        }
        file.sync_all().map_err(|e| io_error(&temp, e))?;
        crash_point("token-file-synced");
        if let Some((_, line)) = audit.as_mut() {
            line.make_durable()?;
        }
        crash_point("audit-line-durable");
        fs::rename(&temp, path).map_err(|e| io_error(path, e))?;
        made.keep();
        crash_point("renamed");
        let dir = path.parent().expect("a token file has a folder");
        let ticket = folder.syncs.ticket(|()| ());
        folder
            .syncs
            .wait(ticket, |()| folder.dir.sync_all().map_err(Arc::new))
            .map_err(|e| io_error(dir, std::io::Error::new(e.kind(), e.to_string())))?;
        crash_point("folder-synced");
        // After an I/O error a file system can stop writing while a folder's fsync still
        // succeeds; the new file's own descriptor reports it.
        file.sync_data().map_err(|e| io_error(path, e))
    }
}

/// Writes the new file, flocked as cPanel's writer flocks it; the returned handle
/// keeps that lock until the caller has renamed the file into place, and the guard removes
/// the file unless the caller keeps it.
fn write_new(
    temp: &Utf8Path,
    contents: impl FnOnce(&mut io::BufWriter<&File>) -> io::Result<()>,
    owner: u32,
) -> Result<(Made, File), BackendError> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(guarded_flags())
        .open(temp)
        .map_err(|e| io_error(temp, e))?;
    let made = Made::new(temp);
    // New and exclusive: nobody else can hold this lock yet, so it never waits.
    file.try_lock()
        .map_err(|e| io_error(temp, io::Error::other(e.to_string())))?;
    // As root, the new file gets the tree's owner (root on a real server); anyone else
    // can only write files of their own.
    if rustix::process::geteuid().is_root() {
        let gid = (owner == 0).then_some(rustix::process::Gid::ROOT);
        rustix::fs::fchown(&file, Some(rustix::process::Uid::from_raw(owner)), gid)
            .map_err(|e| io_error(temp, e.into()))?;
    }
    let mut out = io::BufWriter::with_capacity(64 << 10, &file);
    contents(&mut out)
        .and_then(|()| out.flush())
        .map_err(|e| io_error(temp, e))?;
    drop(out);
    Ok((made, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_whitespace_and_null_files_hold_no_tokens() {
        let p = Utf8Path::new("x.json");
        assert!(Document::parse(p, b"null").unwrap().set.is_empty());
        assert!(Document::parse(p, b"").unwrap().set.is_empty());
        assert!(Document::parse(p, b" \n").unwrap().set.is_empty());
        let err = Document::parse(p, b"{").err().unwrap().to_string();
        assert!(err.starts_with("x.json: not valid JSON"), "{err}");
    }
}

//! A user's WHM token file, `var/cpanel/authn/api_tokens_v2/whostmgr/<user>.json`: read,
//! and replaced atomically and durably under cPanel's lock protocol, its audit line written
//! durably before the new file becomes visible.

use std::fs::{self, DirBuilder, File, Metadata, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use whmtoken_core::{BackendError, TokenHash, TokenSet, error_chain};

use crate::accounting::Pending;
use crate::budget::ReadBudget;
use crate::crash::{crash_point, fault};
use crate::document::{Document, Edit};
use crate::group_sync::GroupSync;
use crate::lock::{Deadline, LockSource, Locked, unique_suffix};
use crate::safe_fs::{Made, Rules, guarded_flags, io_error, open_checked, unsafe_file};

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

/// The checks a token file is opened with: a file this backend replaces.
fn rules(owner: u32) -> Rules {
    Rules::Replaced {
        owner,
        max_len: MAX_TOKEN_FILE,
    }
}

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
    let Some(file) = open_checked(path, OpenOptions::new().read(true), rules(owner))? else {
        return Ok(TokenSet::default());
    };
    let _memory = budget.take(file.len());
    Ok(Document::parse(path, &file.read()?)?.set)
}

/// The users that have a token file in `folder` (the `whostmgr` folder), sorted: the
/// `<user>` of every `<user>.json` whose name has no other dot, as cPanel lists them
/// (`([^.]+)\.json$`), which leaves out temporary files. A missing folder has none.
///
/// The folder gets the same checks as before an import, on the descriptor that is listed
/// ([`open_folder`]). Entries are listed by name only: a `<user>.json` that is not a
/// regular file is listed, and refused when it is read. A name that is not UTF-8 is listed
/// with replacement characters, for the caller to report as an invalid user name.
pub(crate) fn list_users(folder: &Utf8Path, owner: u32) -> Result<Vec<String>, BackendError> {
    let Some(dir) = open_folder(folder, owner)? else {
        return Ok(Vec::new());
    };
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
///
/// Its first failed flush (of the folder, or of a token file in it) is kept: from then on
/// nothing more is stored in it. After a failed journal commit, ext4 reports later fsyncs
/// of the same folder and of new files in it as done although nothing reaches the disk, so
/// a later success proves nothing.
#[derive(Debug)]
pub(crate) struct TokenFolder {
    pub(crate) path: Utf8PathBuf,
    pub(crate) dir: File,
    /// Its permission bits, as found when the run began ([`TokenFolder::journal_alive`]).
    pub(crate) mode: rustix::fs::Mode,
    pub(crate) syncs: GroupSync<(), Arc<io::Error>>,
    pub(crate) locks: LockSource,
    pub(crate) failed: OnceLock<Arc<io::Error>>,
}

impl TokenFolder {
    /// `Err` ([`BackendError::StoreUnavailable`]) once a flush in this folder failed.
    fn check(&self) -> Result<(), BackendError> {
        match self.failed.get() {
            Some(error) => Err(BackendError::StoreUnavailable {
                location: self.path.to_string(),
                cause: error_chain(error.as_ref()),
            }),
            None => Ok(()),
        }
    }

    /// `Err` when the file system's journal was aborted by a failed commit. After that,
    /// ext4 reports an fsync of what the failed commit held as done (nothing is left to
    /// commit) though nothing reached the disk; the abort is found out by the next change
    /// that starts a journal handle. Setting the folder's mode to what it is is such a
    /// change: the first after the abort marks the file system failed (the inode update
    /// swallows its own error), and the second is refused (`EROFS`; XFS, shut down after a
    /// failed log write, refuses the first with `EIO`). Where the folder's mode cannot be
    /// set (not its owner), there is nothing to learn here: `Ok`.
    fn journal_alive(&self) -> io::Result<()> {
        for _ in 0..2 {
            match fault("journal-probe")
                .and_then(|()| rustix::fs::fchmod(&self.dir, self.mode).map_err(io::Error::from))
            {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Keeps the first failed flush (`error`, of the file or folder at `location`) and
    /// returns it as that place's error.
    fn flush_failed(&self, location: &Utf8Path, error: io::Error) -> BackendError {
        self.keep_failure(location, error).error()
    }

    fn keep_failure(&self, location: &Utf8Path, error: io::Error) -> Unsettled {
        let error = Arc::new(error);
        let _ = self.failed.set(Arc::clone(&error));
        Unsettled {
            location: location.to_owned(),
            error,
        }
    }

    /// Makes the renames of `placed` (new files just renamed into this folder) durable:
    /// one fsync of the folder (shared with other threads' renames), then each new file's
    /// fdatasync (after an I/O error a file system can stop writing while a folder's fsync
    /// still succeeds; the file's own descriptor reports it), then one probe of the
    /// journal: those flushes may have returned 0 for a commit that failed (see
    /// [`journal_alive`](Self::journal_alive)). `Ok` only when all of it succeeded; else
    /// the first failure, which every file of `placed` then shares (none is reported
    /// stored: some may be, the safe direction).
    pub(crate) fn settle(&self, placed: &[&Placed<'_>]) -> Result<(), Unsettled> {
        if placed.is_empty() {
            return Ok(());
        }
        let ticket = self.syncs.ticket(|()| ());
        self.syncs
            .wait(ticket, |()| match self.failed.get() {
                // A flush after a failed one proves nothing (see `TokenFolder`).
                Some(failed) => Err(Arc::clone(failed)),
                None => fault("token-folder-sync")
                    .and_then(|()| self.dir.sync_all())
                    .map_err(Arc::new),
            })
            .map_err(|e| self.keep_failure(&self.path, copied(&e)))?;
        // Each of those renames is now durable.
        placed.iter().for_each(|_| crash_point("folder-synced"));
        for new_file in placed {
            fault("token-file-datasync")
                .and_then(|()| new_file.file.sync_data())
                .map_err(|e| self.keep_failure(new_file.path, e))?;
        }
        self.journal_alive()
            .map_err(|e| self.keep_failure(&self.path, e))
    }
}

/// A flush that failed in the token folder: where, and the system's error.
#[derive(Debug)]
pub(crate) struct Unsettled {
    location: Utf8PathBuf,
    error: Arc<io::Error>,
}

impl Unsettled {
    /// The failure as an error of the place it happened.
    fn error(&self) -> BackendError {
        self.error_at(&self.location)
    }

    /// The failure as an error of `location`.
    fn error_at(&self, location: &Utf8Path) -> BackendError {
        io_error(location, copied(&self.error))
    }
}

/// A copy of a kept system error (its kind and message), for each user it fails.
fn copied(error: &io::Error) -> io::Error {
    io::Error::new(error.kind(), error.to_string())
}

/// One user's token file, ready to be rewritten: where it is, who owns it, and what its
/// rewrites share with other users' (the folder, the memory budget).
#[derive(Debug)]
pub(crate) struct TokenFile<'a> {
    pub(crate) path: Utf8PathBuf,
    pub(crate) owner: u32,
    /// How long to wait for its locks.
    pub(crate) timeout: Duration,
    pub(crate) folder: &'a TokenFolder,
    pub(crate) budget: &'a ReadBudget,
}

/// The one locked rewrite of a token file, which every change of one takes (an import, a
/// revoke), in this order:
///
/// 1. take the dot-lock and the flock, the file opened and checked once ([`Locked`]);
///    a missing file is made empty when `create`, else it reads as empty;
/// 2. read it (its share of the memory budget taken) and parse it, keeping whole only the
///    entry under `whole` when given (an import's key);
/// 3. `decide` the outcome and the [`Edit`] (none: nothing is written);
/// 4. write the edited document to a temporary file beside it, then let the bytes and the
///    budget go: an earlier user may be waiting for that memory; fsync it;
/// 5. `record` the outcome's audit line in its user's turn, only now that the file it
///    names is on disk; then the line made durable and the file renamed into place
///    ([`Staged::place`]), and the rename made durable ([`TokenFolder::settle`]).
///
/// Nothing is attempted once a flush in the folder failed ([`TokenFolder`]). When any
/// step fails, nothing is in place and a file made in step 1 is removed. A chunk of imports
/// ([`FilesBackend`](crate::FilesBackend)'s `ChunkImport`) takes the same steps for each of
/// its users, each step for all of them before the next, through [`Staged`].
pub(crate) fn rewrite<'l, T>(
    target: &TokenFile<'_>,
    create: bool,
    whole: Option<&TokenHash>,
    decide: impl FnOnce(&TokenSet) -> Result<(T, Option<Edit>), BackendError>,
    record: impl FnOnce(&T) -> Result<Option<Pending<'l>>, BackendError>,
) -> Result<T, BackendError> {
    let mut staged = Staged::new(target, target.timeout, create, whole, decide)?;
    staged.sync()?;
    let line = record(staged.outcome())?;
    staged.place(line)?;
    let placed: Vec<_> = staged.placed().into_iter().collect();
    match target.folder.settle(&placed) {
        Ok(()) => Ok(staged.finish()),
        Err(failure) => Err(staged.unsettled(&failure)),
    }
    // The flock and then the dot-lock are released here.
}

/// One user's rewrite between the steps of [`rewrite`]: its locks held, its outcome
/// decided, its new file (if any) written, then flushed, then renamed into place. Dropped
/// before [`finish`](Self::finish) (a step failed), it removes the file its lock made
/// (still under its locks), and the new file's guard removes the temporary file; then the
/// flock and the dot-lock are released.
pub(crate) struct Staged<'t, T> {
    target: &'t TokenFile<'t>,
    outcome: Option<T>,
    new_file: Option<NewFile<'t>>,
    /// The new file once renamed into place, and whether an audit line names it.
    placed: Option<Placed<'t>>,
    /// Every step done: the change stays.
    finished: bool,
    /// Last, so that it is dropped last: the temporary file goes while the locks are held.
    locked: Option<Locked>,
}

/// A new file renamed into place, not yet known to be durable there.
pub(crate) struct Placed<'p> {
    path: &'p Utf8Path,
    file: File,
    line_written: bool,
}

impl<'t, T> Staged<'t, T> {
    /// Steps 1 to 4 of [`rewrite`], but the new file's fsync, waiting at most `wait` for
    /// the locks ([`BackendError::Locked`] after it; zero: only when they are free now).
    pub(crate) fn new(
        target: &'t TokenFile<'t>,
        wait: Duration,
        create: bool,
        whole: Option<&TokenHash>,
        decide: impl FnOnce(&TokenSet) -> Result<(T, Option<Edit>), BackendError>,
    ) -> Result<Self, BackendError> {
        let (path, rules) = (&target.path, rules(target.owner));
        target.folder.check()?;
        let deadline = Deadline::after(wait);
        let locked = Locked::take(path, &target.folder.locks, deadline, rules, create)?;
        let mut staged = Self {
            target,
            outcome: None,
            new_file: None,
            placed: None,
            finished: false,
            locked,
        };
        let file = staged.locked.as_ref().map(|locked| &locked.file);
        let _memory = target.budget.take(file.map_or(0, |f| f.len()));
        let bytes = file.map(|f| f.read()).transpose()?.unwrap_or_default();
        let document = Document::parse_keeping(path, &bytes, whole)?;
        let (outcome, edit) = decide(&document.set)?;
        staged.new_file = edit
            .map(|edit| {
                let owner = Owner {
                    uid: target.owner,
                    folder_setgid: target.folder.mode.contains(rustix::fs::Mode::SGID),
                };
                NewFile::write(path, owner, |out| document.write(&edit, out))
            })
            .transpose()?;
        staged.outcome = Some(outcome);
        Ok(staged)
    }

    pub(crate) fn outcome(&self) -> &T {
        self.outcome.as_ref().expect("decided in `new`")
    }

    /// Asks the system to start writing the new file out now, so that the new files of
    /// several users are on their way to the disk together before the first is flushed.
    /// Only a hint: [`sync`](Self::sync) still flushes it.
    pub(crate) fn start_writeback(&self) {
        if let Some(new_file) = &self.new_file {
            // POSIX_FADV_DONTNEED starts the writeback of the file's dirty pages (Linux);
            // an error only means that it did not.
            let _ = rustix::fs::fadvise(&new_file.file, 0, None, rustix::fs::Advice::DontNeed);
        }
    }

    /// Flushes the new file, before its audit line is queued: a line is never written for
    /// a file that may not be on disk. A failure is kept by the folder.
    pub(crate) fn sync(&self) -> Result<(), BackendError> {
        if let Some(new_file) = &self.new_file {
            new_file.sync(self.target.folder)?;
            self.target.folder.check()?;
        }
        Ok(())
    }

    /// Makes `line` (the audit line appended in its user's turn, if any) durable (one log
    /// sync shared with other users) and renames the synced new file over its path: after
    /// a crash the file holds either the old or the new contents, never a mix, and never
    /// the new contents without their line. When any step before the rename fails, the
    /// temporary file is removed. A failure once the line is durable fails the user with
    /// an error saying that its line was written but its token was not stored.
    pub(crate) fn place(&mut self, line: Option<Pending<'_>>) -> Result<(), BackendError> {
        let line_written = line.is_some();
        line.map_or(Ok(()), Pending::durable)?;
        let Some(NewFile {
            path,
            temp,
            made,
            file,
        }) = self.new_file.take()
        else {
            return Ok(());
        };
        crash_point("audit-line-durable");
        // A flush in the folder failed meanwhile: nothing more is put in place there.
        if let Some(failed) = self.target.folder.failed.get() {
            return Err(not_stored(line_written, io_error(path, copied(failed))));
        }
        fault("rename")
            .and_then(|()| fs::rename(&temp, path))
            .map_err(|e| not_stored(line_written, io_error(path, e)))?;
        made.keep();
        crash_point("renamed");
        self.placed = Some(Placed {
            path,
            file,
            line_written,
        });
        Ok(())
    }

    /// The new file renamed into place by [`place`](Self::place), if any.
    pub(crate) fn placed(&self) -> Option<&Placed<'t>> {
        self.placed.as_ref()
    }

    /// The error of a user whose renamed file could not be made durable
    /// ([`TokenFolder::settle`]'s `failure`): at its own file when that is where the flush
    /// failed, else at the folder.
    pub(crate) fn unsettled(&self, failure: &Unsettled) -> BackendError {
        let line_written = self.placed.as_ref().is_some_and(|p| p.line_written);
        let folder = &self.target.folder.path;
        let location = if failure.location == self.target.path {
            &self.target.path
        } else {
            folder
        };
        not_stored(line_written, failure.error_at(location))
    }

    /// `Err` ([`BackendError::StoreUnavailable`]) once a flush in the token folder failed:
    /// checked again in the user's audit turn, so that no line is written for a token that
    /// can no longer be stored.
    pub(crate) fn check_folder(&self) -> Result<(), BackendError> {
        self.target.folder.check()
    }

    /// The outcome, every step done: the change stays.
    pub(crate) fn finish(mut self) -> T {
        self.finished = true;
        self.outcome.take().expect("decided in `new`")
    }
}

impl<T> Drop for Staged<'_, T> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let Some(locked) = self.locked.as_ref().filter(|locked| locked.created) else {
            return;
        };
        // The empty file this rewrite made, still under its locks: gone with the change.
        let path = &self.target.path;
        let still_ours = fs::symlink_metadata(path)
            .ok()
            .zip(locked.file.file().metadata().ok())
            .is_some_and(|(now, held)| now.ino() == held.ino() && now.len() == 0);
        if still_ours {
            let _ = fs::remove_file(path);
        }
    }
}

/// Parses bytes as a token file would be, for the property tests.
#[cfg(test)]
pub(crate) fn parse_for_tests(bytes: &[u8]) -> Result<TokenSet, BackendError> {
    Document::parse(Utf8Path::new("test.json"), bytes).map(|doc| doc.set)
}

/// Creates the token folders that are missing, with cPanel's modes, and opens the
/// `whostmgr` folder ([`open_folder`]).
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
    open_folder(&whostmgr, owner)?
        .ok_or_else(|| io_error(&whostmgr, io::ErrorKind::NotFound.into()))
}

/// Opens the `whostmgr` folder, never through a symbolic link, and checks it on that
/// descriptor ([`check_token_folder`]); `Ok(None)` when it does not exist. A refused open
/// is explained by what is at the path when the checks say what is wrong with it.
fn open_folder(folder: &Utf8Path, owner: u32) -> Result<Option<File>, BackendError> {
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(guarded_flags() | libc_directory())
        .open(folder);
    let dir = match opened {
        Ok(dir) => dir,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            if let Ok(meta) = fs::symlink_metadata(folder) {
                check_token_folder(folder, &meta, owner)?;
            }
            return Err(io_error(folder, e));
        }
    };
    let meta = dir.metadata().map_err(|e| io_error(folder, e))?;
    check_token_folder(folder, &meta, owner)?;
    Ok(Some(dir))
}

/// `O_DIRECTORY`: the folder opened must be a folder.
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
        owner: Owner,
        contents: impl FnOnce(&mut io::BufWriter<Counted<'_>>) -> io::Result<()>,
    ) -> Result<Self, BackendError> {
        let temp = Utf8PathBuf::from(format!("{path}-{}", unique_suffix()));
        let (made, file, written) = write_new(&temp, contents, owner)?;
        // A file this program could not read back would lock its user out of every later run.
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

    /// Flushes the new file, before its audit line is queued: a line is never written for
    /// a file that may not be on disk. A failure is kept by `folder`.
    fn sync(&self, folder: &TokenFolder) -> Result<(), BackendError> {
        fault("token-file-sync")
            .and_then(|()| self.file.sync_all())
            .map_err(|e| folder.flush_failed(&self.temp, e))?;
        crash_point("token-file-synced");
        Ok(())
    }
}

/// `error`, for a user whose token was not stored; saying so when its audit line is on disk.
fn not_stored(line_written: bool, error: BackendError) -> BackendError {
    if line_written {
        line_without_token(error)
    } else {
        error
    }
}

/// `error`, for a user whose audit line is on disk but whose token is not.
fn line_without_token(error: BackendError) -> BackendError {
    match error {
        BackendError::Io { location, source } => BackendError::Io {
            location,
            source: io::Error::new(source.kind(), LineWithoutToken(source)),
        },
        other => other,
    }
}

/// `its audit line was written, but the token was not stored`, caused by the system's error.
#[derive(Debug)]
struct LineWithoutToken(io::Error);

impl std::fmt::Display for LineWithoutToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("its audit line was written, but the token was not stored")
    }
}

impl std::error::Error for LineWithoutToken {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Who a new token file must belong to: the tree's owner (root on a real server), and
/// whether its folder has the setgid bit (a new file then takes the folder's group).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Owner {
    pub(crate) uid: u32,
    pub(crate) folder_setgid: bool,
}

/// Writes the new file, flocked as cPanel's writer flocks it; the returned handle
/// keeps that lock until the caller has renamed the file into place, and the guard removes
/// the file unless the caller keeps it.
fn write_new(
    temp: &Utf8Path,
    contents: impl FnOnce(&mut io::BufWriter<Counted<'_>>) -> io::Result<()>,
    owner: Owner,
) -> Result<(Made, File, u64), BackendError> {
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
    // can only write files of their own. A file root makes, in its own group, in a
    // folder without the setgid bit, is root's and group root's already.
    let (root, root_group) = running_as_root();
    if root && (owner.uid != 0 || owner.folder_setgid || !root_group) {
        let gid = (owner.uid == 0).then_some(rustix::process::Gid::ROOT);
        rustix::fs::fchown(&file, Some(rustix::process::Uid::from_raw(owner.uid)), gid)
            .map_err(|e| io_error(temp, e.into()))?;
    }
    let mut out = io::BufWriter::with_capacity(
        64 << 10,
        Counted {
            file: &file,
            written: 0,
        },
    );
    contents(&mut out)
        .and_then(|()| out.flush())
        .map_err(|e| io_error(temp, e))?;
    let written = out.get_ref().written;
    drop(out);
    Ok((made, file, written))
}

/// A new file being written, and how many bytes reached it (its length: it was empty),
/// so that its size is known without asking the system again.
#[derive(Debug)]
pub(crate) struct Counted<'f> {
    file: &'f File,
    written: u64,
}

impl Write for Counted<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = self.file.write(bytes)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Whether this thread writes as root (and so gives new files the tree's owner), and
/// whether its group is root's: asked once per thread rather than once per file.
/// Identities are per thread here ([`owner::act_as`](crate::owner::act_as)), and a thread's
/// can only drop, never rise, after it was asked: a stale answer then makes a `fchown` to
/// the thread's own uid, which changes nothing.
fn running_as_root() -> (bool, bool) {
    thread_local! {
        static ROOT: std::cell::Cell<Option<(bool, bool)>> = const { std::cell::Cell::new(None) };
    }
    ROOT.with(|root| {
        root.get().unwrap_or_else(|| {
            let identity = (
                rustix::process::geteuid().is_root(),
                rustix::process::getegid().is_root(),
            );
            root.set(Some(identity));
            identity
        })
    })
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

//! `var/lib/whmtoken`: the journal of retirement runs (`runs/<run-id>.json`) and their
//! backups (`backups/<run-id>/`), root's alone (folders 0700, files 0600).
//!
//! A journal file holds one JSON record a line ([`Record`]): the run's header, then each
//! change, appended and synced before the change is made, then a note for each time the
//! run was restored (`jq . runs/<run-id>.json` reads it as it is). A line cut short by a
//! crash was never synced, so no change was made for it: it is skipped when read, and the
//! next append starts on a new line.
//!
//! `runs.lock` is the run lock ([`Retirement::lock_runs`]): an exclusive `flock` on it is
//! held for a whole retire or restore run, and lost with the process. No dot-lock beside
//! it: a run lasts longer than cPanel's five minutes after which a dot-lock counts as
//! stale, and no cPanel program takes this lock.
//!
//! [`Retirement::lock_runs`]: whmtoken_core::Retirement::lock_runs

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};

use camino::{Utf8Path, Utf8PathBuf};
use whmtoken_core::BackendError;
use whmtoken_core::retire::{Journal, Record, RunId};

use crate::lock::{Deadline, flock_exclusive, open_data};
use crate::safe_fs::{
    Checked, Expect, Rules, check, corrupt, guarded_flags, io_error, unsafe_file,
};

/// Under the root.
pub(crate) const STATE_FOLDER: &str = "var/lib/whmtoken";

/// The largest journal read back (a run of a million accounts is well under it).
const MAX_JOURNAL: u64 = 1 << 30;

/// The journal and backup folders of one server.
#[derive(Debug)]
pub(crate) struct Journals {
    state: Utf8PathBuf,
    /// Who may own the folders and files besides root: the tree's owner.
    owner: u32,
}

impl Journals {
    pub(crate) fn new(root: &Utf8Path, owner: u32) -> Self {
        Self {
            state: root.join(STATE_FOLDER),
            owner,
        }
    }

    pub(crate) fn runs_folder(&self) -> Utf8PathBuf {
        self.state.join("runs")
    }

    pub(crate) fn journal_path(&self, id: &RunId) -> Utf8PathBuf {
        self.runs_folder().join(format!("{id}.json"))
    }

    /// Where run `id`'s backup named `name` is, under this server's root.
    pub(crate) fn backup_path(&self, id: &RunId, name: &str) -> Utf8PathBuf {
        self.state.join("backups").join(id.as_str()).join(name)
    }

    /// `backups/<run-id>`, made (and its making synced) when missing.
    pub(crate) fn backup_folder(&self, id: &RunId) -> Result<(Utf8PathBuf, File), BackendError> {
        self.ensure_folders()?;
        let folder = self.state.join("backups").join(id.as_str());
        let dir = self.private_folder(&folder)?;
        Ok((folder, dir))
    }

    /// Removes `backups/<run-id>` and the files in it (none there: nothing to do), the
    /// removals synced; how many files there were. A folder that is not root's (or the
    /// tree owner's) and private is refused, as when it is written.
    pub(crate) fn remove_backups(&self, id: &RunId) -> Result<usize, BackendError> {
        let backups = self.state.join("backups");
        let folder = backups.join(id.as_str());
        if fs::symlink_metadata(&folder).is_err() {
            return Ok(0);
        }
        let dir = self.private_folder(&folder)?;
        let names: Vec<std::ffi::CString> = rustix::fs::Dir::read_from(&dir)
            .map_err(|e| io_error(&folder, e.into()))?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_owned())
            .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
            .collect();
        for name in &names {
            rustix::fs::unlinkat(&dir, name.as_c_str(), rustix::fs::AtFlags::empty()).map_err(
                |e| {
                    io_error(
                        &folder.join(String::from_utf8_lossy(name.as_bytes()).as_ref()),
                        e.into(),
                    )
                },
            )?;
        }
        dir.sync_all().map_err(|e| io_error(&folder, e))?;
        fs::remove_dir(&folder).map_err(|e| io_error(&folder, e))?;
        sync_folder(&backups)?;
        Ok(names.len())
    }

    /// How many files `backups/<run-id>` holds (none there: 0), read only.
    pub(crate) fn count_backups(&self, id: &RunId) -> Result<usize, BackendError> {
        let folder = self.state.join("backups").join(id.as_str());
        match fs::read_dir(&folder) {
            Ok(entries) => Ok(entries.filter_map(Result::ok).count()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io_error(&folder, e)),
        }
    }

    /// Takes the run lock, `var/lib/whmtoken/runs.lock` (made empty, 0600, when missing),
    /// opened as a file this backend replaces is (no symbolic link, one link, root's or the
    /// tree owner's, nobody else can write it), waiting up to `timeout` for its `flock`.
    pub(crate) fn lock_runs(&self, timeout: std::time::Duration) -> Result<Checked, BackendError> {
        self.ensure_folders()?;
        let path = self.state.join("runs.lock");
        let rules = Rules::Replaced {
            owner: self.owner,
            max_len: 4096,
        };
        let (file, _) = open_data(&path, rules, true)?.expect("made when missing");
        flock_exclusive(&path, file.file(), Deadline::after(timeout))?;
        Ok(file)
    }

    /// Makes `var/lib/whmtoken`, `runs` and `backups` when missing.
    fn ensure_folders(&self) -> Result<(), BackendError> {
        let parent = self.state.parent().expect("under the root");
        if fs::symlink_metadata(parent).is_err() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .and_then(|()| fs::set_permissions(parent, fs::Permissions::from_mode(0o755)))
                .map_err(|e| io_error(parent, e))?;
        }
        self.private_folder(&self.state)?;
        self.private_folder(&self.runs_folder())?;
        self.private_folder(&self.state.join("backups"))?;
        Ok(())
    }

    /// Opens `folder`, making it 0700 (and syncing its parent) when missing; an existing
    /// one must be a real folder of root's (or the tree owner's) that nobody else can enter.
    fn private_folder(&self, folder: &Utf8Path) -> Result<File, BackendError> {
        match DirBuilder::new().mode(0o700).create(folder) {
            Ok(()) => {
                fs::set_permissions(folder, fs::Permissions::from_mode(0o700))
                    .map_err(|e| io_error(folder, e))?;
                let parent = folder.parent().expect("under the root");
                sync_folder(parent)?;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_error(folder, e)),
        }
        let dir = open_folder(folder)?;
        let meta = dir.metadata().map_err(|e| io_error(folder, e))?;
        if !meta.is_dir() || (meta.uid() != 0 && meta.uid() != self.owner) {
            return Err(refused(folder, "it is not a folder of root's"));
        }
        if meta.mode() & 0o077 != 0 {
            let detail = format!("mode {:04o}; make it 0700", meta.mode() & 0o7777);
            return Err(refused(folder, &detail));
        }
        Ok(dir)
    }

    /// Writes run `id`'s journal with its header, synced, folder included. A journal that
    /// exists already is an error: ids are never reused.
    pub(crate) fn create(&self, id: &RunId, header: &Record) -> Result<File, BackendError> {
        self.ensure_folders()?;
        let path = self.journal_path(id);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(guarded_flags())
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        write_record(&path, &mut file, header)?;
        sync_folder(&self.runs_folder())?;
        Ok(file)
    }

    /// Opens run `id`'s journal for appending; `NotFound` when there is none.
    pub(crate) fn open(&self, id: &RunId) -> Result<File, BackendError> {
        let path = self.journal_path(id);
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .custom_flags(guarded_flags())
            .open(&path)
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => not_found(&path, id),
                _ => io_error(&path, e),
            })?;
        self.check_file(&path, &file)?;
        Ok(file)
    }

    /// Appends `record` to the open journal and syncs it. A line left unfinished by a
    /// crash is ended first, so that the new record starts a line of its own.
    pub(crate) fn append(
        &self,
        id: &RunId,
        file: &mut File,
        record: &Record,
    ) -> Result<(), BackendError> {
        self.append_unsynced(id, file, record)?;
        file.sync_data()
            .map_err(|e| io_error(&self.journal_path(id), e))
    }

    /// Appends `record` without waiting for it to be durable: for a record whose loss
    /// only understates (a removal recorded complete), synced by the next append.
    pub(crate) fn append_unsynced(
        &self,
        id: &RunId,
        file: &mut File,
        record: &Record,
    ) -> Result<(), BackendError> {
        let path = self.journal_path(id);
        let len = file.metadata().map_err(|e| io_error(&path, e))?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1))
                .and_then(|_| file.read_exact(&mut last))
                .map_err(|e| io_error(&path, e))?;
            if last[0] != b'\n' {
                file.write_all(b"\n").map_err(|e| io_error(&path, e))?;
            }
        }
        let mut line = serde_json::to_string(record).expect("a record serializes");
        line.push('\n');
        file.write_all(line.as_bytes())
            .map_err(|e| io_error(&path, e))
    }

    /// Run `id`'s journal as recorded.
    pub(crate) fn read(&self, id: &RunId) -> Result<Journal, BackendError> {
        let path = self.journal_path(id);
        let mut file = match OpenOptions::new()
            .read(true)
            .custom_flags(guarded_flags())
            .open(&path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found(&path, id)),
            Err(e) => return Err(io_error(&path, e)),
        };
        self.check_file(&path, &file)?;
        let mut text = String::new();
        (&mut file)
            .take(MAX_JOURNAL)
            .read_to_string(&mut text)
            .map_err(|e| io_error(&path, e))?;
        let records = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|line| {
                serde_json::from_str::<Record>(line)
                    .inspect_err(
                        |e| tracing::warn!(journal = %path, error = %e, "skipped a line cut short"),
                    )
                    .ok()
            });
        let journal = Journal::from_records(records).map_err(|detail| corrupt(&path, detail))?;
        if journal.id != *id {
            return Err(corrupt(&path, format!("it records run {}", journal.id)));
        }
        Ok(journal)
    }

    /// Every run's journal, oldest first; none when the folder does not exist.
    pub(crate) fn list(&self) -> Result<Vec<Journal>, BackendError> {
        let folder = self.runs_folder();
        let entries = match fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(&folder, e)),
        };
        let mut ids: Vec<RunId> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                RunId::parse(name.strip_suffix(".json")?).ok()
            })
            .collect();
        // By the second in the id, then by when the journal was made (as finely as the file
        // system tells: runs begun within a few milliseconds may come in either order).
        ids.sort_by_cached_key(|id| {
            let made = fs::metadata(self.journal_path(id))
                .and_then(|m| m.created())
                .ok();
            (id.as_str()[..16].to_owned(), made, id.clone())
        });
        let mut journals = Vec::with_capacity(ids.len());
        for id in &ids {
            let path = self.journal_path(id);
            match self.read(id) {
                Ok(journal) => journals.push(journal),
                // Killed before its header was synced: the run made no change.
                Err(BackendError::Corrupt { .. }) if self.is_headless(&path) => {
                    tracing::warn!(journal = %path, "skipped a run that never started");
                }
                Err(e) => return Err(e),
            }
        }
        whmtoken_core::retire::confirm_finished(&mut journals);
        Ok(journals)
    }

    /// Whether the journal at `path` holds no whole line: its run was killed before its
    /// header was synced.
    fn is_headless(&self, path: &Utf8Path) -> bool {
        fs::read(path).is_ok_and(|bytes| !bytes.contains(&b'\n'))
    }

    fn check_file(&self, path: &Utf8Path, file: &File) -> Result<(), BackendError> {
        let expect = Expect {
            owner: Some(self.owner),
            max_len: MAX_JOURNAL,
            secret: false,
        };
        let meta = check(path, file, expect)?;
        if meta.mode() & 0o022 != 0 {
            return Err(unsafe_file(path, "others can write it"));
        }
        Ok(())
    }
}

fn write_record(path: &Utf8Path, file: &mut File, record: &Record) -> Result<(), BackendError> {
    let mut line = serde_json::to_string(record).expect("a record serializes");
    line.push('\n');
    file.write_all(line.as_bytes())
        .and_then(|()| file.sync_data())
        .map_err(|e| io_error(path, e))
}

/// Opens a folder for fsync, refusing a symbolic link.
pub(crate) fn open_folder(folder: &Utf8Path) -> Result<File, BackendError> {
    let directory = i32::try_from(rustix::fs::OFlags::DIRECTORY.bits()).expect("flags fit");
    OpenOptions::new()
        .read(true)
        .custom_flags(guarded_flags() | directory)
        .open(folder)
        .map_err(|e| match e.raw_os_error() {
            Some(code) if code == rustix::io::Errno::LOOP.raw_os_error() => {
                unsafe_file(folder, "it is a symbolic link")
            }
            Some(code) if code == rustix::io::Errno::NOTDIR.raw_os_error() => {
                unsafe_file(folder, "it is not a folder")
            }
            _ => io_error(folder, e),
        })
}

/// Syncs a folder, so that the entries just made or removed in it last a power loss.
pub(crate) fn sync_folder(folder: &Utf8Path) -> Result<(), BackendError> {
    File::open(folder)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| io_error(folder, e))
}

fn refused(folder: &Utf8Path, detail: &str) -> BackendError {
    BackendError::UnsafeToWrite {
        location: folder.to_string(),
        detail: detail.to_owned(),
    }
}

fn not_found(path: &Utf8Path, id: &RunId) -> BackendError {
    BackendError::NotFound {
        location: path.to_string(),
        what: format!("no run {id}"),
    }
}

//! The file backend's retirement primitives ([`Retirement`]); core decides and sequences.
//!
//! An access hash is read with the converter's checks (never through a symbolic link, on
//! the open descriptor, owned by its account, nobody else can write it). A backup is
//! `var/lib/whmtoken/backups/<run-id>/<name>` (0600, synced, folder synced) and a journal
//! record a synced line of `var/lib/whmtoken/runs/<run-id>.json` (`journal.rs`). Removing an
//! access hash renames it aside in its folder, reads it there once more and removes it only
//! when it is still what was backed up, else renames it back: a crash meanwhile leaves it
//! where [`Retirement::finish_interrupted`] and [`Retirement::recover_set_aside`] find it.
//! Every path is found under this server's root as its config names it now, never taken from
//! a journal. The setting is written by `cpanel_config.rs`.

use std::fs::{File, FileTimes, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use camino::{Utf8Path, Utf8PathBuf};
use whmtoken_core::retire::{
    Change, Held, Journal, Record, Removal, RetiredFile, Retirement, RunId, RunLock, Setting,
    SettingChange, Zeroizing, content_sha512,
};
use whmtoken_core::{AccessHash, BackendError, UserName};

use crate::cpanel_config::{setting_lines, setting_value, with_lines, with_setting};
use crate::crash::{crash_point, test_hook};
use crate::home::Home;
use crate::journal::{Journals, sync_folder};
use crate::lock::{LockSource, unique_suffix};
use crate::safe_fs::{Expect, Made, check, guarded_flags, io_error, open_guarded, read_bounded};
use crate::{CPANEL_CONFIG, FilesBackend};

/// What a backend keeps for the runs it makes: the journals, the open journal of the
/// current run, and the lock source for `cpanel.config`'s dot-lock.
#[derive(Debug)]
pub(crate) struct RunState {
    journals: Journals,
    current: Mutex<Option<Current>>,
    pub(crate) config_locks: LockSource,
}

/// The run under way in this process.
#[derive(Debug)]
struct Current {
    id: RunId,
    journal: File,
    backups: Option<(Utf8PathBuf, File)>,
}

impl RunState {
    pub(crate) fn new(root: &Utf8Path, owner: u32) -> Self {
        Self {
            journals: Journals::new(root, owner),
            current: Mutex::new(None),
            config_locks: LockSource::new(root.join("var/cpanel")),
        }
    }

    /// Runs `f` with run `id`'s open journal (opened when it is not the current run).
    fn with_run<T>(
        &self,
        id: &RunId,
        f: impl FnOnce(&Journals, &mut Current) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_none_or(|c| c.id != *id) {
            *current = Some(Current {
                id: id.clone(),
                journal: self.journals.open(id)?,
                backups: None,
            });
        }
        f(&self.journals, current.as_mut().expect("set above"))
    }
}

impl Current {
    /// The run's backup folder, made at the first backup.
    fn backups(&mut self, journals: &Journals) -> Result<&(Utf8PathBuf, File), BackendError> {
        if self.backups.is_none() {
            self.backups = Some(journals.backup_folder(&self.id)?);
        }
        Ok(self.backups.as_ref().expect("set above"))
    }
}

/// Reads the access hash `name` in `home` as the converter reads one: never through a
/// symbolic link, checked on the open descriptor, owned by `uid`, nobody else can write it.
fn read_in(home: &Home, name: &str, uid: u32) -> Result<Option<Held>, BackendError> {
    let Some(file) = home.open_file(name)? else {
        return Ok(None);
    };
    let path = home.at(name);
    let expect = Expect {
        owner: Some(uid),
        max_len: AccessHash::MAX_LEN as u64,
        secret: true,
    };
    let meta = check(&path, &file, expect)?;
    let content = Zeroizing::new(read_bounded(&path, &file, meta.len(), expect.max_len)?);
    Ok(Some(Held {
        location: path.into_string(),
        content,
        mode: Some(meta.mode() & 0o7777),
        uid: Some(meta.uid()),
        gid: Some(meta.gid()),
        mtime: Some(meta.mtime()),
        mtime_nsec: u32::try_from(meta.mtime_nsec()).ok(),
    }))
}

/// The name of an access hash in its home.
const ACCESSHASH: &str = ".accesshash";

impl Retirement for FilesBackend {
    fn lock_runs(&self) -> Result<RunLock, BackendError> {
        let held = self.runs.journals.lock_runs(self.lock_timeout)?;
        Ok(RunLock::new(held))
    }

    fn begin(&self, id: &RunId, started: i64, command: &str) -> Result<(), BackendError> {
        let header = Record::Header {
            run: id.clone(),
            started,
            command: command.to_owned(),
            records_removals: true,
        };
        let journal = self.runs.journals.create(id, &header)?;
        *self
            .runs
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Current {
            id: id.clone(),
            journal,
            backups: None,
        });
        Ok(())
    }

    fn append(&self, id: &RunId, record: &Record) -> Result<(), BackendError> {
        self.runs.with_run(id, |journals, run| match record {
            // Not waited for: lost in a crash, it only makes the run count one less
            // retired; restore goes by what is on disk.
            Record::Removed { .. } => journals.append_unsynced(id, &mut run.journal, record),
            _ => journals.append(id, &mut run.journal, record),
        })
    }

    fn journal(&self, id: &RunId) -> Result<Journal, BackendError> {
        self.runs.journals.read(id)
    }

    fn journals(&self) -> Result<Vec<Journal>, BackendError> {
        self.runs.journals.list()
    }

    fn put_backup(&self, id: &RunId, name: &str, content: &[u8]) -> Result<String, BackendError> {
        // Only the journal's lock is shared: the copies and their fsyncs of several
        // accounts overlap.
        let folder = self
            .runs
            .with_run(id, |journals, run| Ok(run.backups(journals)?.0.clone()))?;
        if name.contains('/') || name.starts_with('.') {
            return Err(BackendError::UnsafeToWrite {
                location: folder.to_string(),
                detail: format!("“{}” is not a backup's name", name.escape_debug()),
            });
        }
        let path = folder.join(name);
        write_new(&path, content)?.keep();
        sync_folder(&folder)?;
        Ok(path.into_string())
    }

    fn remove_backups(&self, id: &RunId) -> Result<usize, BackendError> {
        self.runs.journals.remove_backups(id)
    }

    fn count_backups(&self, id: &RunId) -> Result<usize, BackendError> {
        self.runs.journals.count_backups(id)
    }

    fn backup(&self, id: &RunId, name: &str) -> Result<(String, Zeroizing<Vec<u8>>), BackendError> {
        let path = self.runs.journals.backup_path(id, name);
        let content = read_backup(&path, self.token_owner)?;
        Ok((path.into_string(), content))
    }

    fn read_home(&self, user: &UserName, owner: Option<u32>) -> Result<Option<Held>, BackendError> {
        let (home, account) = self.home(user)?;
        match home {
            Some(home) => read_in(&home, ACCESSHASH, owner.unwrap_or(account.uid)),
            None => Ok(None),
        }
    }

    fn account_uid(&self, user: &UserName) -> Result<Option<u32>, BackendError> {
        self.account(user).map(|account| Some(account.uid))
    }

    fn set_aside_name(&self, id: &RunId) -> Option<String> {
        Some(set_aside_name(id))
    }

    fn remove_if_unchanged(
        &self,
        id: &RunId,
        retired: &RetiredFile,
    ) -> Result<Removal, BackendError> {
        crash_point("retire-journaled");
        test_hook("retire-journaled");
        let user = self.journal_user(id, retired)?;
        let (home, account) = self.home(&user)?;
        let Some(home) = home else {
            return Ok(Removal::Gone);
        };
        let aside = match &retired.set_aside {
            Some(name) if !name.contains('/') => name.clone(),
            _ => set_aside_name(id),
        };
        let removal = remove_checked(
            &home,
            retired.uid.unwrap_or(account.uid),
            &aside,
            &retired.sha512,
        )?;
        if removal == Removal::Removed {
            crash_point("retire-removed");
        }
        Ok(removal)
    }

    fn put_back(
        &self,
        retired: &RetiredFile,
        content: &[u8],
        replacing: Option<&str>,
    ) -> Result<(), BackendError> {
        let user = UserName::new(&retired.user).map_err(|e| BackendError::Corrupt {
            location: retired.path.clone(),
            detail: e.to_string(),
        })?;
        let (home, account) = self.home(&user)?;
        let home = home.ok_or_else(|| BackendError::NotFound {
            location: retired.path.clone(),
            what: format!("the home folder of {user} is missing"),
        })?;
        let path = home.at(ACCESSHASH);
        if let Some(sha) = replacing {
            let now = read_in(&home, ACCESSHASH, retired.uid.unwrap_or(account.uid))?;
            if now.is_none_or(|n| content_sha512(&n.content) != sha) {
                return Err(BackendError::UnsafeToWrite {
                    location: path.to_string(),
                    detail: "it changed while being restored; left as it is".to_owned(),
                });
            }
        }
        // What a killed restore left here, as the converter's debris is swept.
        crate::debris::sweep(&home.path, home.dir(), crate::debris::Leftovers::Home);
        let temp = format!("{ACCESSHASH}.whmtoken-{}", unique_suffix());
        let mtime = retired.mtime.map(|secs| {
            let nanos = retired.mtime_nsec.unwrap_or(0);
            match u64::try_from(secs) {
                Ok(s) => SystemTime::UNIX_EPOCH + Duration::new(s, nanos),
                Err(_) => SystemTime::UNIX_EPOCH,
            }
        });
        // The account's owner and group now (a recycled uid is refused before this), and
        // permission bits only: never a setuid, setgid or sticky bit from a journal.
        let like = Like {
            uid: account.uid,
            gid: account.gid.or(retired.gid),
            mode: retired.mode.map(|mode| mode & 0o777),
            mtime,
        };
        let made = write_new_in(&home, &temp, content, &like)?;
        if replacing.is_some() {
            home.rename(&temp, ACCESSHASH)
        } else {
            // Never over a file that appeared meanwhile.
            home.rename_noreplace(&temp, ACCESSHASH)
        }
        .map_err(|e| io_error(&path, e))?;
        made.keep();
        home.sync()
    }

    fn recover_set_aside(
        &self,
        retired: &RetiredFile,
        check_only: bool,
    ) -> Result<bool, BackendError> {
        let Some(name) = &retired.set_aside else {
            return Ok(false);
        };
        let user = UserName::new(&retired.user).map_err(|e| BackendError::Corrupt {
            location: retired.path.clone(),
            detail: e.to_string(),
        })?;
        let (home, account) = self.home(&user)?;
        let Some(home) = home else {
            return Ok(false);
        };
        let owner = retired.uid.unwrap_or(account.uid);
        recover_set_aside_at(&home, name, owner, retired, check_only)
    }

    fn setting(&self) -> Result<Setting, BackendError> {
        // No lock is taken: a dry run writes nothing, not even a lock file.
        let path = self.root.join(CPANEL_CONFIG);
        let text = crate::read_root_file(&path, self.token_owner)?;
        Ok(Setting {
            value: setting_value(&text),
            location: path.into_string(),
            lines: setting_lines(&text),
        })
    }

    fn set_setting(&self, expected: Option<&str>, new: Option<&str>) -> Result<bool, BackendError> {
        self.set_setting_if(expected, &|text| with_setting(text, new))
    }

    fn restore_setting(
        &self,
        expected: Option<&str>,
        change: &SettingChange,
    ) -> Result<bool, BackendError> {
        if change.lines.is_empty() {
            return self.set_setting(expected, change.old.as_deref());
        }
        self.set_setting_if(expected, &|text| with_lines(text, &change.lines))
    }

    fn append_accounting(&self, line: &str) -> Result<(), BackendError> {
        self.accounting.append_durably(line, self.lock_timeout)
    }

    fn finish_interrupted(&self, user: &UserName) -> Result<Option<RunId>, BackendError> {
        let (home, account) = self.home(user)?;
        let Some(home) = home else {
            return Ok(None);
        };
        let mut finished = None;
        for name in home.names()? {
            let Some(id) = name
                .strip_prefix(SET_ASIDE_PREFIX)
                .and_then(|id| RunId::parse(id).ok())
            else {
                continue;
            };
            // Whatever is in `.accesshash` now is restore's to weigh against it.
            if home
                .kind(ACCESSHASH)
                .map_err(|e| io_error(&home.at(ACCESSHASH), e))?
                .is_some()
            {
                break;
            }
            // Read with the later runs' records: a removal finished already, by that run or
            // a later one, leaves nothing to finish (a file of that name is not its).
            let Some(journal) = self.runs.journals.list()?.into_iter().find(|j| j.id == id) else {
                continue;
            };
            if journal.removed.contains(user.as_str()) {
                continue;
            }
            let Some(retired) = journal.changes.iter().find_map(|c| match c {
                Change::Accesshash(f)
                    if f.user == user.as_str() && f.set_aside.as_deref() == Some(&name) =>
                {
                    Some(f)
                }
                _ => None,
            }) else {
                continue;
            };
            let aside = home.at(&name);
            let Some(kept) = read_in(&home, &name, account.uid)? else {
                continue;
            };
            let backup = self
                .runs
                .journals
                .backup_path(&id, &format!("{user}.accesshash"));
            let backed_up = read_backup(&backup, self.token_owner)
                .is_ok_and(|content| content_sha512(&content) == retired.sha512);
            if backed_up && content_sha512(&kept.content) == retired.sha512 {
                home.remove(&name).map_err(|e| io_error(&aside, e))?;
                home.sync()?;
                // The run finishing it records that, in its own journal (core).
                finished = Some(id);
                continue;
            }
            home.rename_noreplace(&name, ACCESSHASH)
                .map_err(|e| io_error(&home.at(ACCESSHASH), e))?;
            home.sync()?;
            return Err(BackendError::UnsafeToWrite {
                location: home.at(ACCESSHASH).to_string(),
                detail: format!(
                    "run {id} was stopped while retiring it, and it is not what that run backed up; put back in place"
                ),
            });
        }
        Ok(finished)
    }
}

impl FilesBackend {
    /// The account a journal entry of run `id` names.
    fn journal_user(&self, id: &RunId, retired: &RetiredFile) -> Result<UserName, BackendError> {
        UserName::new(&retired.user).map_err(|e| BackendError::Corrupt {
            location: self.runs.journals.journal_path(id).to_string(),
            detail: e.to_string(),
        })
    }

    /// `user`'s home folder, opened ([`Home`]; `None` when it does not exist), and the
    /// account.
    fn home(
        &self,
        user: &UserName,
    ) -> Result<(Option<Home>, crate::passwd::Account), BackendError> {
        let (path, account) = self.access_hash_path(user)?;
        let folder = path.parent().expect("a home folder");
        let real_root = match &self.real_root {
            Some(real) => real.clone(),
            None => crate::owner::real_root(&self.root)?,
        };
        Ok((Home::open(folder, &real_root, account.uid)?, account))
    }
}

/// Puts back an access hash that a killed or failed retire left under its set-aside
/// `name` in `home`: renamed back when `.accesshash` is free, removed when `.accesshash`
/// holds the very content retired (the backup has it too), else refused. `true`: it was
/// renamed back or removed (with `check_only`: it would be).
fn recover_set_aside_at(
    home: &Home,
    name: &str,
    owner: u32,
    retired: &RetiredFile,
    check_only: bool,
) -> Result<bool, BackendError> {
    if name.contains('/') {
        return Err(BackendError::Corrupt {
            location: retired.path.clone(),
            detail: "the journal's set-aside name is not a file name".to_owned(),
        });
    }
    let aside = home.at(name);
    // Only a file can be what a retire set aside; anything else there is not its.
    if home.kind(name).map_err(|e| io_error(&aside, e))? != Some(rustix::fs::FileType::RegularFile)
    {
        return Ok(false);
    }
    let Some(kept) = read_in(home, name, owner)? else {
        return Ok(false);
    };
    let path = home.at(ACCESSHASH);
    let home_free = home
        .kind(ACCESSHASH)
        .map_err(|e| io_error(&path, e))?
        .is_none();
    if home_free {
        if !check_only {
            home.rename_noreplace(name, ACCESSHASH)
                .map_err(|e| io_error(&path, e))?;
            home.sync()?;
        }
        return Ok(true);
    }
    let present = read_in(home, ACCESSHASH, owner)?;
    let same = |sha: &str| sha == retired.sha512;
    if content_sha512(&kept.content) == retired.sha512
        && present.is_some_and(|p| same(&content_sha512(&p.content)))
    {
        if !check_only {
            home.remove(name).map_err(|e| io_error(&aside, e))?;
            home.sync()?;
        }
        return Ok(true);
    }
    Err(BackendError::UnsafeToWrite {
        location: aside.to_string(),
        detail: "a retire left this access hash here and .accesshash exists too; keep one of them by hand".to_owned(),
    })
}

/// What a restored access hash gets: its account's uid and group, its permission bits and
/// modification time.
struct Like {
    uid: u32,
    gid: Option<u32>,
    mode: Option<u32>,
    mtime: Option<SystemTime>,
}

/// Writes `content` to a new file at `path` (never over an existing one, 0600), synced.
/// The guard removes the file unless the caller keeps it.
fn write_new(path: &Utf8Path, content: &[u8]) -> Result<Made, BackendError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(guarded_flags())
        .open(path)
        .map_err(|e| io_error(path, e))?;
    let made = Made::new(path);
    file.write_all(content).map_err(|e| io_error(path, e))?;
    file.sync_all().map_err(|e| io_error(path, e))?;
    Ok(made)
}

/// Writes `content` to `name`, a new file in `home` (never over an existing one, never
/// through a link), with `like`'s owner (as root; anyone else can only make files of their
/// own), mode and modification time, synced. The guard removes it unless the caller keeps
/// it.
fn write_new_in<'a>(
    home: &'a Home,
    name: &str,
    content: &[u8],
    like: &Like,
) -> Result<MadeIn<'a>, BackendError> {
    let path = home.at(name);
    let mut file = home.create_new(name).map_err(|e| io_error(&path, e))?;
    let made = MadeIn {
        home,
        name: Some(name.to_owned()),
    };
    file.write_all(content).map_err(|e| io_error(&path, e))?;
    if rustix::process::geteuid().is_root() {
        std::os::unix::fs::fchown(&file, Some(like.uid), like.gid)
            .map_err(|e| io_error(&path, e))?;
    }
    if let Some(mode) = like.mode {
        file.set_permissions(Permissions::from_mode(mode))
            .map_err(|e| io_error(&path, e))?;
    }
    if let Some(mtime) = like.mtime {
        file.set_times(FileTimes::new().set_modified(mtime))
            .map_err(|e| io_error(&path, e))?;
    }
    file.sync_all().map_err(|e| io_error(&path, e))?;
    Ok(made)
}

/// A file made in a home folder, removed when dropped unless kept.
struct MadeIn<'a> {
    home: &'a Home,
    name: Option<String>,
}

impl MadeIn<'_> {
    fn keep(mut self) {
        self.name = None;
    }
}

impl Drop for MadeIn<'_> {
    fn drop(&mut self) {
        if let Some(name) = self.name.take() {
            let _ = self.home.remove(&name);
        }
    }
}

/// The name an access hash gets in its folder while run `id` checks it before removal.
fn set_aside_name(id: &RunId) -> String {
    format!("{SET_ASIDE_PREFIX}{id}")
}

/// The set-aside name of an access hash, before its run's id.
const SET_ASIDE_PREFIX: &str = ".accesshash.whmtoken-retiring-";

/// Renames `.accesshash` to `aside` in `home`, reads it there again with the same checks,
/// and removes it only when its SHA-512 is still `sha512` (the backup's). Otherwise it is
/// renamed back ([`Removal::Changed`]; kept under `aside`, and an error, when a new
/// `.accesshash` appeared meanwhile).
fn remove_checked(
    home: &Home,
    owner: u32,
    aside: &str,
    sha512: &str,
) -> Result<Removal, BackendError> {
    let path = home.at(ACCESSHASH);
    match home.rename_noreplace(ACCESSHASH, aside) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Removal::Gone),
        Err(e) => return Err(io_error(&path, e)),
    }
    crash_point("retire-set-aside");
    let unchanged = matches!(
        read_in(home, aside, owner),
        Ok(Some(now)) if content_sha512(&now.content) == sha512
    );
    let aside_path = home.at(aside);
    if unchanged {
        home.remove(aside).map_err(|e| io_error(&aside_path, e))?;
        home.sync()?;
        return Ok(Removal::Removed);
    }
    let detail = match home.rename_noreplace(aside, ACCESSHASH) {
        Ok(()) => {
            home.sync()?;
            return Ok(Removal::Changed {
                location: path.to_string(),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            "it changed while being retired and a new .accesshash appeared meanwhile; the changed one was left here".to_owned()
        }
        Err(e) => format!("it changed while being retired and could not be renamed back ({e}); it was left here"),
    };
    home.sync()?;
    Err(BackendError::UnsafeToWrite {
        location: aside_path.to_string(),
        detail,
    })
}

/// A backup's content, read as safely as any root-owned file.
fn read_backup(path: &Utf8Path, owner: u32) -> Result<Zeroizing<Vec<u8>>, BackendError> {
    let Some(file) = open_guarded(path, OpenOptions::new().read(true))? else {
        return Err(BackendError::NotFound {
            location: path.to_string(),
            what: "the backup is missing".to_owned(),
        });
    };
    let expect = Expect {
        owner: Some(owner),
        max_len: AccessHash::MAX_LEN as u64,
        secret: false,
    };
    let meta = check(path, &file, expect)?;
    Ok(Zeroizing::new(read_bounded(
        path,
        &file,
        meta.len(),
        expect.max_len,
    )?))
}

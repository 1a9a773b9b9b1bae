//! Retiring access hashes on cPanel's files, reversibly ([`Retirement`]).
//!
//! An access hash is read with the converter's checks (never through a symbolic link, on
//! the open descriptor, owned by its account, nobody else can write it), copied into
//! `var/lib/whmtoken/backups/<run-id>/<user>.accesshash` (0600, synced, folder synced), its
//! journal entry appended and synced, and only then removed from the home folder (the
//! folder synced). `allow_deprecated_accesshash` is changed in `var/cpanel/cpanel.config`
//! under cPanel's lock protocol for that file (a `cpanel.config.lock` dot-lock, then a
//! flock), written to a new file beside it that is renamed over it, every other line kept
//! byte for byte.

use std::fs::{self, File, FileTimes, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use camino::{Utf8Path, Utf8PathBuf};
use whmtoken_core::retire::{
    ALLOW_DEPRECATED_ACCESSHASH, Change, Journal, Record, Restored, RetiredFile, Retirement, RunId,
    SettingChange, Standing, content_sha512, standing,
};
use whmtoken_core::{AccessHash, BackendError, UserName};
use zeroize::Zeroizing;

use crate::crash::{crash_point, test_hook};
use crate::journal::{Journals, sync_folder};
use crate::lock::{Deadline, DotLock, LockSource, flock_exclusive, unique_suffix};
use crate::safe_fs::{Expect, Made, check, guarded_flags, io_error, open_guarded, read_bounded};
use crate::{CPANEL_CONFIG, FilesBackend};

/// What a backend keeps for the runs it makes: the journals, the open journal of the
/// current run, and the lock source for `cpanel.config`'s dot-lock.
#[derive(Debug)]
pub(crate) struct RunState {
    journals: Journals,
    current: Mutex<Option<Current>>,
    config_locks: LockSource,
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

    fn record(&mut self, journals: &Journals, change: Change) -> Result<(), BackendError> {
        journals.append(&self.id, &mut self.journal, &Record::Change(change))
    }
}

/// An access hash read for retirement: its path, its metadata and content.
struct Found {
    path: Utf8PathBuf,
    meta: fs::Metadata,
    content: Zeroizing<Vec<u8>>,
}

impl FilesBackend {
    /// Reads `user`'s `.accesshash` with the converter's checks; `None` when it has none.
    fn find_access_hash(&self, user: &UserName) -> Result<Option<Found>, BackendError> {
        let (path, account) = self.access_hash_path(user)?;
        read_access_hash_at(path, account.uid)
    }
}

/// Reads the `.accesshash` at `path` as the converter does: never through a symbolic link,
/// checked on the open descriptor, owned by `uid`, nobody else can write it.
fn read_access_hash_at(path: Utf8PathBuf, uid: u32) -> Result<Option<Found>, BackendError> {
    let Some(file) = open_guarded(&path, OpenOptions::new().read(true))? else {
        return Ok(None);
    };
    let expect = Expect {
        owner: Some(uid),
        max_len: AccessHash::MAX_LEN as u64,
        secret: true,
    };
    let meta = check(&path, &file, expect)?;
    let content = Zeroizing::new(read_bounded(&path, &file, meta.len(), expect.max_len)?);
    Ok(Some(Found {
        path,
        meta,
        content,
    }))
}

impl Retirement for FilesBackend {
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

    fn retire(
        &self,
        id: &RunId,
        user: &UserName,
    ) -> Result<whmtoken_core::retire::Retired, BackendError> {
        use whmtoken_core::retire::Retired;
        let Some(found) = self.find_access_hash(user)? else {
            return Ok(Retired::Left(standing(self, user, None)?));
        };
        let hash = AccessHash::from_bytes(found.content.to_vec());
        match standing(self, user, Some(&hash))? {
            Standing::Converted => {}
            other => return Ok(Retired::Left(other)),
        }
        drop(hash);
        // Only the journal's append waits for other threads: the copies, the removals and
        // their fsyncs of several accounts overlap.
        let folder = self
            .runs
            .with_run(id, |journals, run| Ok(run.backups(journals)?.0.clone()))?;
        let backup = folder.join(format!("{user}.accesshash"));
        let made = write_new(&backup, &found.content, None)?;
        sync_folder(&folder)?;
        let aside = set_aside_name(id);
        let retired = RetiredFile {
            user: user.to_string(),
            path: found.path.to_string(),
            sha512: content_sha512(&found.content),
            size: found.content.len() as u64,
            mode: Some(found.meta.mode() & 0o7777),
            uid: Some(found.meta.uid()),
            gid: Some(found.meta.gid()),
            mtime: Some(found.meta.mtime()),
            mtime_nsec: u32::try_from(found.meta.mtime_nsec()).ok(),
            backup: backup.to_string(),
            set_aside: Some(aside.clone()),
            unconfirmed: false,
        };
        self.runs.with_run(id, |journals, run| {
            run.record(journals, Change::Accesshash(retired.clone()))
        })?;
        made.keep();
        crash_point("retire-journaled");
        test_hook("retire-journaled");
        // Backup and journal entry are durable: the access hash may go, provided what is
        // removed is what was backed up.
        if !remove_checked(&found, &aside, &retired.sha512)? {
            return Ok(Retired::Left(Standing::AlreadyRetired));
        }
        crash_point("retire-removed");
        self.runs.with_run(id, |journals, run| {
            // Not waited for: lost in a crash, it only makes the run count one less
            // retired; restore goes by what is on disk.
            journals.append_unsynced(
                id,
                &mut run.journal,
                &Record::Removed {
                    removed: user.to_string(),
                },
            )
        })?;
        Ok(Retired::Done(retired))
    }

    fn set_accesshash_auth(
        &self,
        id: &RunId,
        allow: bool,
    ) -> Result<Option<SettingChange>, BackendError> {
        let new = Some(if allow { "1" } else { "0" }.to_owned());
        self.edit_setting(|old| {
            let effective_allow = old.as_deref() == Some("1");
            if effective_allow == allow {
                return Ok(Edit::Leave(None));
            }
            let change = SettingChange {
                name: ALLOW_DEPRECATED_ACCESSHASH.to_owned(),
                old: old.clone(),
                new: new.clone(),
            };
            self.runs.with_run(id, |journals, run| {
                run.record(journals, Change::Setting(change.clone()))
            })?;
            Ok(Edit::Write(new.clone(), Some(change)))
        })
    }

    fn journals(&self) -> Result<Vec<Journal>, BackendError> {
        self.runs.journals.list()
    }

    fn journal(&self, id: &RunId) -> Result<Journal, BackendError> {
        self.runs.journals.read(id)
    }

    fn restore_change(
        &self,
        id: &RunId,
        change: &Change,
        force: bool,
        check_only: bool,
    ) -> Result<Restored, BackendError> {
        match change {
            Change::Accesshash(file) => self.restore_file(id, file, force, check_only),
            Change::Setting(setting) => self.restore_setting(setting, force, check_only),
        }
    }

    fn mark_restored(&self, id: &RunId, at: i64) -> Result<(), BackendError> {
        self.runs.with_run(id, |journals, run| {
            journals.append(id, &mut run.journal, &Record::Restored { restored_at: at })
        })
    }

    fn append_accounting(&self, line: &str) -> Result<(), BackendError> {
        self.accounting.append_durably(line, self.lock_timeout)
    }

    fn finish_interrupted(&self, user: &UserName) -> Result<Option<RunId>, BackendError> {
        let (home, account) = self.access_hash_path(user)?;
        let folder = home.parent().expect("a home folder");
        let entries = match fs::read_dir(folder) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(folder, e)),
        };
        let mut finished = None;
        for entry in entries.filter_map(Result::ok) {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let Some(id) = name
                .strip_prefix(SET_ASIDE_PREFIX)
                .and_then(|id| RunId::parse(id).ok())
            else {
                continue;
            };
            // Whatever is in `.accesshash` now is restore's to weigh against it.
            if fs::symlink_metadata(&home).is_ok() {
                break;
            }
            let journal = match self.runs.journals.read(&id) {
                Ok(journal) => journal,
                Err(BackendError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
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
            let aside = folder.join(&name);
            let Some(kept) = read_access_hash_at(aside.clone(), account.uid)? else {
                continue;
            };
            let backup = self
                .runs
                .journals
                .backup_path(&id, &format!("{user}.accesshash"));
            let backed_up = read_backup(&backup, self.token_owner)
                .is_ok_and(|content| content_sha512(&content) == retired.sha512);
            if backed_up && content_sha512(&kept.content) == retired.sha512 {
                fs::remove_file(&aside).map_err(|e| io_error(&aside, e))?;
                sync_folder(folder)?;
                self.runs.with_run(&id, |journals, run| {
                    journals.append(
                        &id,
                        &mut run.journal,
                        &Record::Removed {
                            removed: user.to_string(),
                        },
                    )
                })?;
                finished = Some(id);
                continue;
            }
            rename_noreplace(&aside, &home).map_err(|e| io_error(&home, e))?;
            sync_folder(folder)?;
            return Err(BackendError::UnsafeToWrite {
                location: home.to_string(),
                detail: format!(
                    "run {id} was stopped while retiring it, and it is not what that run backed up; put back in place"
                ),
            });
        }
        Ok(finished)
    }
}

impl FilesBackend {
    fn restore_file(
        &self,
        id: &RunId,
        retired: &RetiredFile,
        force: bool,
        check_only: bool,
    ) -> Result<Restored, BackendError> {
        let user = UserName::new(&retired.user).map_err(|e| BackendError::Corrupt {
            location: self.runs.journals.journal_path(id).to_string(),
            detail: e.to_string(),
        })?;
        // Where it was and where its backup is, under this server's root as the config
        // names it now (the journal's paths are those of the root it was made under).
        let (home, account) = self.access_hash_path(&user)?;
        let backup = self
            .runs
            .journals
            .backup_path(id, &format!("{user}.accesshash"));
        // Owned as it was.
        let owner = retired.uid.unwrap_or(account.uid);
        let recovered = match &retired.set_aside {
            Some(name) => self.recover_set_aside(&home, name, owner, retired, check_only)?,
            None => false,
        };
        let present = read_access_hash_at(home.clone(), owner)?;
        let present_sha = present.as_ref().map(|f| content_sha512(&f.content));
        if present_sha.as_deref() == Some(retired.sha512.as_str()) {
            return Ok(if recovered {
                Restored::Restored
            } else {
                Restored::AlreadyRestored
            });
        }
        if present.is_some() && retired.unconfirmed {
            // The run never removed it (its removal failed, or it changed meanwhile and was
            // put back): what is there is the account's, not the run's to undo.
            return Ok(Restored::AlreadyRestored);
        }
        let content = read_backup(&backup, self.token_owner)?;
        if content_sha512(&content) != retired.sha512 && !force {
            return Err(BackendError::Corrupt {
                location: backup.to_string(),
                detail: "the backup no longer matches the journal's SHA-512; --force restores it as it is".to_owned(),
            });
        }
        if present.is_some() && !force {
            return Err(BackendError::UnsafeToWrite {
                location: home.to_string(),
                detail: "an access hash exists again and differs from the one retired; --force keeps it in the run's backup and restores".to_owned(),
            });
        }
        if check_only {
            return Ok(Restored::Restored);
        }
        if let Some(present) = &present {
            self.keep_in_backup(id, &format!("{user}.accesshash"), &present.content)?;
        }
        let folder = home.parent().expect("a home folder");
        let temp = Utf8PathBuf::from(format!("{home}.whmtoken-{}", unique_suffix()));
        let mtime = retired.mtime.map(|secs| {
            let nanos = retired.mtime_nsec.unwrap_or(0);
            match u64::try_from(secs) {
                Ok(s) => SystemTime::UNIX_EPOCH + Duration::new(s, nanos),
                Err(_) => SystemTime::UNIX_EPOCH,
            }
        });
        let made = write_new(&temp, &content, Some((retired, mtime)))?;
        let replaced = if present.is_some() {
            fs::rename(&temp, &home)
        } else {
            // Never over a file that appeared meanwhile.
            rename_noreplace(&temp, &home)
        }
        .map_err(|e| io_error(&home, e));
        replaced?;
        made.keep();
        sync_folder(folder)?;
        Ok(Restored::Restored)
    }

    /// Puts back an access hash that a killed or failed retire left under its set-aside
    /// `name` beside `home`: renamed back when `home` is free, removed when `home` holds
    /// the very content retired (the backup has it too), else refused. `true`: it was
    /// renamed back or removed (with `check_only`: it would be).
    fn recover_set_aside(
        &self,
        home: &Utf8Path,
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
        let folder = home.parent().expect("a home folder");
        let aside = folder.join(name);
        // Only a file can be what a retire set aside; anything else there is not its.
        if !fs::symlink_metadata(&aside).is_ok_and(|m| m.is_file()) {
            return Ok(false);
        }
        let Some(kept) = read_access_hash_at(aside.clone(), owner)? else {
            return Ok(false);
        };
        let home_free =
            matches!(fs::symlink_metadata(home), Err(e) if e.kind() == io::ErrorKind::NotFound);
        if home_free {
            if !check_only {
                rename_noreplace(&aside, home).map_err(|e| io_error(home, e))?;
                sync_folder(folder)?;
            }
            return Ok(true);
        }
        let present = read_access_hash_at(home.to_owned(), owner)?;
        let same = |sha: &str| sha == retired.sha512;
        if content_sha512(&kept.content) == retired.sha512
            && present.is_some_and(|p| same(&content_sha512(&p.content)))
        {
            if !check_only {
                fs::remove_file(&aside).map_err(|e| io_error(&aside, e))?;
                sync_folder(folder)?;
            }
            return Ok(true);
        }
        Err(BackendError::UnsafeToWrite {
            location: aside.to_string(),
            detail: "a retire left this access hash here and .accesshash exists too; keep one of them by hand".to_owned(),
        })
    }

    fn restore_setting(
        &self,
        change: &SettingChange,
        force: bool,
        check_only: bool,
    ) -> Result<Restored, BackendError> {
        let path = self.root.join(CPANEL_CONFIG);
        if check_only {
            // No lock is taken: a dry run writes nothing, not even a lock file.
            let text = crate::read_root_file(&path, self.token_owner)?;
            let current = setting_value(&text);
            return match decide_restore(&path, &current, change, force)? {
                true => Ok(Restored::Restored),
                false => Ok(Restored::AlreadyRestored),
            };
        }
        self.edit_setting(|current| {
            Ok(if decide_restore(&path, current, change, force)? {
                Edit::Write(change.old.clone(), Restored::Restored)
            } else {
                Edit::Leave(Restored::AlreadyRestored)
            })
        })
    }

    /// Copies what a forced restore replaces into the run's backup, synced.
    fn keep_in_backup(&self, id: &RunId, name: &str, content: &[u8]) -> Result<(), BackendError> {
        self.runs.with_run(id, |journals, run| {
            let (folder, dir) = run.backups(journals)?;
            let path = folder.join(format!("{name}.replaced-{}", unique_suffix()));
            write_new(&path, content, None)?.keep();
            dir.sync_all().map_err(|e| io_error(folder, e))
        })
    }

    /// Changes `allow_deprecated_accesshash` in `cpanel.config` under its locks. `decide`
    /// gets the current value (the last line's, `None` when unset) and says whether to
    /// write a new value (`None`: no line for it).
    fn edit_setting<T>(
        &self,
        decide: impl FnOnce(&Option<String>) -> Result<Edit<T>, BackendError>,
    ) -> Result<T, BackendError> {
        let path = self.root.join(CPANEL_CONFIG);
        let deadline = Deadline::after(self.lock_timeout);
        let _dot_lock = DotLock::acquire(&path, &self.runs.config_locks, deadline)?;
        let existing = open_guarded(&path, OpenOptions::new().read(true))?;
        let expect = Expect {
            owner: Some(self.token_owner),
            max_len: 64 << 20,
            secret: false,
        };
        let (text, meta) = match &existing {
            Some(file) => {
                flock_exclusive(&path, file, deadline)?;
                let meta = check(&path, file, expect)?;
                let bytes = read_bounded(&path, file, meta.len(), expect.max_len)?;
                (bytes, Some(meta))
            }
            None => (Vec::new(), None),
        };
        let text = String::from_utf8_lossy(&text).into_owned();
        let current = setting_value(&text);
        let (value, outcome) = match decide(&current)? {
            Edit::Leave(outcome) => return Ok(outcome),
            Edit::Write(value, outcome) => (value, outcome),
        };
        let new_text = with_setting(&text, value.as_deref());
        let temp = Utf8PathBuf::from(format!("{path}.whmtoken-{}", unique_suffix()));
        let mode = meta.as_ref().map_or(0o644, |m| m.mode() & 0o7777);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(guarded_flags())
            .open(&temp)
            .map_err(|e| io_error(&temp, e))?;
        let made = Made::new(&temp);
        if let Some(meta) = &meta {
            std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()))
                .map_err(|e| io_error(&temp, e))?;
        }
        file.set_permissions(Permissions::from_mode(mode))
            .and_then(|()| (&file).write_all(new_text.as_bytes()))
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error(&temp, e))?;
        fs::rename(&temp, &path).map_err(|e| io_error(&path, e))?;
        made.keep();
        sync_folder(path.parent().expect("in var/cpanel"))?;
        Ok(outcome)
    }
}

/// What [`FilesBackend::edit_setting`] is to do.
enum Edit<T> {
    Leave(T),
    Write(Option<String>, T),
}

/// Whether a setting change is to be undone (`false`: it is undone already); refused when
/// the setting was changed since, unless `force`.
fn decide_restore(
    path: &Utf8Path,
    current: &Option<String>,
    change: &SettingChange,
    force: bool,
) -> Result<bool, BackendError> {
    if *current == change.old {
        return Ok(false);
    }
    if *current != change.new && !force {
        return Err(BackendError::UnsafeToWrite {
            location: path.to_string(),
            detail: format!(
                "{} was changed since the run (it is {}); --force sets it back to {}",
                change.name,
                shown(current.as_deref()),
                shown(change.old.as_deref())
            ),
        });
    }
    Ok(true)
}

fn shown(value: Option<&str>) -> String {
    match value {
        Some(v) => format!("“{}”", v.escape_debug()),
        None => "unset".to_owned(),
    }
}

/// The value of the last line that sets `allow_deprecated_accesshash` (what cPanel uses),
/// trimmed; `None` when no line sets it.
pub(crate) fn setting_value(text: &str) -> Option<String> {
    text.lines()
        .rev()
        .find_map(setting_line_value)
        .map(str::to_owned)
}

fn setting_line_value(line: &str) -> Option<&str> {
    if line.trim_start().starts_with('#') {
        return None;
    }
    let (key, value) = line.split_once('=')?;
    (key.trim() == ALLOW_DEPRECATED_ACCESSHASH).then(|| value.trim())
}

/// `text` with every line setting `allow_deprecated_accesshash` set to `value` (removed for
/// `None`), every other line kept byte for byte; a line is appended when none sets it.
pub(crate) fn with_setting(text: &str, value: Option<&str>) -> String {
    let mut out = String::with_capacity(text.len() + 40);
    let mut found = false;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        if setting_line_value(body).is_none() {
            out.push_str(line);
            continue;
        }
        found = true;
        if let Some(value) = value {
            out.push_str(&format!("{ALLOW_DEPRECATED_ACCESSHASH}={value}"));
            out.push_str(&line[body.len()..]);
        }
    }
    if let (false, Some(value)) = (found, value) {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("{ALLOW_DEPRECATED_ACCESSHASH}={value}\n"));
    }
    out
}

/// Writes `content` to a new file at `path` (never over an existing one), synced; with
/// `like`, the file gets the retired file's mode, owner and modification time. The guard
/// removes the file unless the caller keeps it.
fn write_new(
    path: &Utf8Path,
    content: &[u8],
    like: Option<(&RetiredFile, Option<SystemTime>)>,
) -> Result<Made, BackendError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(guarded_flags())
        .open(path)
        .map_err(|e| io_error(path, e))?;
    let made = Made::new(path);
    file.write_all(content).map_err(|e| io_error(path, e))?;
    if let Some((retired, mtime)) = like {
        if retired.uid.is_some() || retired.gid.is_some() {
            std::os::unix::fs::fchown(&file, retired.uid, retired.gid)
                .map_err(|e| io_error(path, e))?;
        }
        if let Some(mode) = retired.mode {
            file.set_permissions(Permissions::from_mode(mode))
                .map_err(|e| io_error(path, e))?;
        }
        if let Some(mtime) = mtime {
            file.set_times(FileTimes::new().set_modified(mtime))
                .map_err(|e| io_error(path, e))?;
        }
    }
    file.sync_all().map_err(|e| io_error(path, e))?;
    Ok(made)
}

/// The name an access hash gets in its folder while run `id` checks it before removal.
fn set_aside_name(id: &RunId) -> String {
    format!("{SET_ASIDE_PREFIX}{id}")
}

/// The set-aside name of an access hash, before its run's id.
const SET_ASIDE_PREFIX: &str = ".accesshash.whmtoken-retiring-";

/// Renames `found` to `aside` in its folder, reads it there again with the same checks,
/// and removes it only when its SHA-512 is still `sha512` (the backup's). Otherwise it is
/// renamed back (kept under `aside` when a new `.accesshash` appeared meanwhile) and the
/// account fails. `false`: it was gone already (removed by another run).
fn remove_checked(found: &Found, aside: &str, sha512: &str) -> Result<bool, BackendError> {
    let path = &found.path;
    let folder = path.parent().expect("a home folder");
    let aside = folder.join(aside);
    match rename_noreplace(path, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_error(path, e)),
    }
    crash_point("retire-set-aside");
    let owner = found.meta.uid();
    let unchanged = matches!(
        read_access_hash_at(aside.clone(), owner),
        Ok(Some(now)) if content_sha512(&now.content) == sha512
    );
    if unchanged {
        fs::remove_file(&aside).map_err(|e| io_error(&aside, e))?;
        // The home folder is followed as `etc/passwd` gives it, as it was for the read.
        sync_folder(folder)?;
        return Ok(true);
    }
    let detail = match rename_noreplace(&aside, path) {
        Ok(()) => {
            sync_folder(folder)?;
            return Err(BackendError::UnsafeToWrite {
                location: path.to_string(),
                detail: "it changed while being retired; left in place".to_owned(),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            "it changed while being retired and a new .accesshash appeared meanwhile; the changed one was left here".to_owned()
        }
        Err(e) => format!("it changed while being retired and could not be renamed back ({e}); it was left here"),
    };
    sync_folder(folder)?;
    Err(BackendError::UnsafeToWrite {
        location: aside.to_string(),
        detail,
    })
}

/// Renames `from` to `to`, never over an existing `to`.
fn rename_noreplace(from: &Utf8Path, to: &Utf8Path) -> io::Result<()> {
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        from.as_std_path(),
        rustix::fs::CWD,
        to.as_std_path(),
        rustix::fs::RenameFlags::NOREPLACE,
    )
    .map_err(io::Error::from)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_is_changed_and_every_other_line_kept() {
        let text = "a=1\r\nallow_deprecated_accesshash=1\r\n# allow_deprecated_accesshash=1\nz=2";
        assert_eq!(setting_value(text).as_deref(), Some("1"));
        let off = with_setting(text, Some("0"));
        assert_eq!(
            off,
            "a=1\r\nallow_deprecated_accesshash=0\r\n# allow_deprecated_accesshash=1\nz=2"
        );
        assert_eq!(
            with_setting("a=1", Some("0")),
            "a=1\nallow_deprecated_accesshash=0\n"
        );
        assert_eq!(
            with_setting("", Some("0")),
            "allow_deprecated_accesshash=0\n"
        );
        assert_eq!(
            with_setting("a=1\nallow_deprecated_accesshash=0\nb\n", None),
            "a=1\nb\n"
        );
        assert_eq!(setting_value("a=1\n"), None);
    }
}

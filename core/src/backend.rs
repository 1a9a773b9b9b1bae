//! The seam a storage backend implements: one [`Backend`] trait of primitives, the
//! [`Reads`] it shares with read sessions, and its opt-in capabilities, [`BatchImport`] and
//! [`Retirement`]'s primitives.
//!
//! # Contract
//! - Every method is synchronous and may be called from several threads at once. A backend
//!   never starts threads of its own for a run: [`crate::pipeline`] owns the worker
//!   threads, and it is the pipeline that confines a panic to the user that caused it.
//! - Reads ([`Reads::role`], [`Reads::read_access_hash`], [`Reads::tokens`]) take no lock,
//!   create nothing and change nothing.
//! - [`Backend::import`] is atomic: it takes the backend's lock for the user, reads the
//!   current tokens, calls [`ImportRequest::decide`], writes the decision's audit record
//!   through [`AuditTurn::record`], makes the result (if any) visible and durable, and
//!   releases the lock. No token is ever visible without a durable audit record naming it:
//!   when the record fails, nothing is stored. A reader never sees a half-written token
//!   set, and a concurrent writer's tokens are never lost. A lock held by another process
//!   for longer than the backend's lock timeout is [`BackendError::Locked`], and nothing was
//!   written.
//! - [`Backend::append_audit`] appends one whole line durably, or fails and appends nothing
//!   usable.
//! - Every token and every top-level or per-token key that the converter does not touch is
//!   kept exactly as it was.
//! - Nothing that holds an [`AccessHash`] is ever logged or put in an error; errors name the
//!   location and what is wrong with it.
//! - Backends map their private errors into [`BackendError`]; core never sees their types.

use std::fmt;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::acl::Privileges;
use crate::audit::{AuditEvent, AuditTurn};
use crate::clock::Clock;
pub use crate::cluster::ClusterFile;
pub use crate::error::BackendError;
use crate::import::{Decision, ImportRequest};
pub use crate::logs::{LogFile, Logs};
use crate::retire::records::{
    Held, Journal, Record, Removal, RetiredFile, RunId, Setting, SettingChange,
};
use crate::secret::{AccessHash, TokenHash};
use crate::token::{TokenEntry, TokenSet};
use crate::user::UserName;

/// What a user is to WHM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WhmRole {
    /// `root`, who holds every ACL.
    Root,
    /// A reseller with its privileges.
    Reseller(Privileges),
    /// Neither root nor a reseller (perhaps no such user at all).
    NotReseller,
}

impl WhmRole {
    pub fn privileges(&self) -> Option<Privileges> {
        match self {
            Self::Root => Some(Privileges::All),
            Self::Reseller(p) => Some(p.clone()),
            Self::NotReseller => None,
        }
    }
}

/// Server-wide settings that decide how WHM authenticates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerSettings {
    /// cPanel's `allow_deprecated_accesshash` tweak setting: whether a `~/.accesshash` still
    /// authenticates API calls (cPanel's default, and a missing setting, is off).
    pub allow_deprecated_accesshash: bool,
}

/// A hosting account, as WHM's `listaccts` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub user: String,
    /// Its main domain, when the server records one.
    pub domain: Option<String>,
    /// The reseller (or root) that owns it.
    pub owner: String,
}

/// The reads the pipeline makes for one user. A [`Backend`] answers them itself; a read
/// session from [`Backend::read_session`] answers the same questions for many users at
/// once.
pub trait Reads: Send + Sync {
    /// Whether `user` is root, a reseller (with which ACLs) or neither.
    fn role(&self, user: &UserName) -> Result<WhmRole, BackendError>;

    /// The raw access hash of `user`, or `None` when the user has none. A user the backend
    /// has no entry for is [`BackendError::NotFound`] (root needs no entry).
    fn read_access_hash(&self, user: &UserName) -> Result<Option<AccessHash>, BackendError>;

    /// What planning reads of each user: its role and, unless it is neither root nor a
    /// reseller, its raw access hash, failing as [`role`](Self::role) and then
    /// [`read_access_hash`](Self::read_access_hash) would. A user who is neither is never
    /// asked for an access hash. A store that holds both in one record overrides this to
    /// read it once.
    fn role_and_access_hash(
        &self,
        user: &UserName,
    ) -> Result<(WhmRole, Option<AccessHash>), BackendError> {
        let role = self.role(user)?;
        if role == WhmRole::NotReseller {
            return Ok((role, None));
        }
        let access_hash = self.read_access_hash(user)?;
        Ok((role, access_hash))
    }

    /// The user's tokens, read without taking a lock and without creating anything.
    fn tokens(&self, user: &UserName) -> Result<TokenSet, BackendError>;

    /// The user's token stored under `key`, if any. A store that can look a key up without
    /// reading the user's whole token set overrides this.
    fn token(&self, user: &UserName, key: &TokenHash) -> Result<Option<TokenEntry>, BackendError> {
        Ok(self.tokens(user)?.get(key).cloned())
    }

    /// Whether the server has an account called `user`; `root` always has one.
    fn has_account(&self, user: &UserName) -> Result<bool, BackendError>;
}

/// A storage backend: where reseller ACLs, access hashes and token databases live.
pub trait Backend: Reads + fmt::Debug {
    /// Its `kind` in the config file and in `--json` output (`files`, `sqlite`, ...).
    fn kind(&self) -> &'static str;

    /// Every reseller, sorted by name, as the backend lists them. Root is not a reseller
    /// unless the data lists it (cPanel's `--all-resellers` then processes root too).
    /// Names are returned unvalidated so that the pipeline reports a bad one as a failed
    /// user instead of dropping it unseen.
    fn resellers(&self) -> Result<Vec<String>, BackendError>;

    /// Every account that has a token database (a token file, token rows), sorted by name,
    /// whether or not the account still exists. Names are returned unvalidated.
    fn token_users(&self) -> Result<Vec<String>, BackendError>;

    /// The server's settings; a setting the store does not hold has cPanel's default.
    fn server_settings(&self) -> Result<ServerSettings, BackendError>;

    /// Atomically decides and applies `request` for `user`, writing the decision's audit
    /// record through `audit` before anything is visible; see the module contract.
    fn import(
        &self,
        user: &UserName,
        request: &ImportRequest,
        audit: &AuditTurn<'_>,
    ) -> Result<Decision, BackendError>;

    /// Appends one audit record on its own (an event that is not an import's).
    fn append_audit(&self, event: &AuditEvent) -> Result<(), BackendError>;

    /// A session for reading many users, from several threads at once, until it is
    /// dropped. A transactional backend can answer them from a few read transactions
    /// instead of one per query. A run plans each slice of a batch through a session of
    /// its own while [`BatchImport::import_batch`] writes the slice before it on another
    /// thread: a session must not get in a batch's way, nor fail because one is running (its
    /// reads are of other users), though it may wait for one. `None` (the default): the
    /// backend's own [`Reads`] serve.
    fn read_session(&self) -> Option<Box<dyn Reads + '_>> {
        None
    }

    /// The batch capability, for a backend that can import many users in a few
    /// transactions; `None` (the default) has the pipeline call [`import`](Self::import)
    /// per user on its own threads.
    fn batch(&self) -> Option<&dyn BatchImport> {
        None
    }

    /// The chunk capability, for a backend whose imports share their flushes when one
    /// worker thread writes several users at once; `None` (the default) has the pipeline
    /// call [`import`](Self::import) per user. A backend offering [`batch`](Self::batch)
    /// is never asked for it.
    fn chunks(&self) -> Option<&dyn ChunkImport> {
        None
    }

    /// The retirement capability (`whmtoken retire`, `restore`, `runs`): `None` (the
    /// default) when the backend cannot retire access hashes.
    fn retirement(&self) -> Option<&dyn Retirement> {
        None
    }

    /// The server's hosting accounts (root is none), sorted by name: an opt-in capability
    /// for the fake WHM's `listaccts`; the default is [`BackendError::Unsupported`].
    fn accounts(&self) -> Result<Vec<Account>, BackendError> {
        Err(BackendError::Unsupported {
            backend: self.kind(),
            operation: "listing accounts",
        })
    }

    /// Removes `user`'s token called `name` (WHM's `api_token_revoke`) under the same lock
    /// as [`import`](Self::import), keeping every other token as it was; `Ok(None)` when the
    /// user has no token of that name, else the key removed. An opt-in capability: the
    /// default is [`BackendError::Unsupported`].
    fn revoke(&self, user: &UserName, name: &str) -> Result<Option<TokenHash>, BackendError> {
        let _ = (user, name);
        Err(BackendError::Unsupported {
            backend: self.kind(),
            operation: "revoking tokens",
        })
    }

    /// Problems found in the backend's data that did not stop it, such as unusable lines
    /// that were skipped; the command line shows them as warnings.
    fn notices(&self) -> Vec<String> {
        Vec::new()
    }

    /// Where the server's logs are kept when no folder is named (files:
    /// `usr/local/cpanel/logs` under the root; SQLite: `<db stem>-logs` beside the
    /// database): what the fake WHM writes to. `None` (the default) for a store with no
    /// such folder.
    fn log_folder(&self) -> Option<camino::Utf8PathBuf> {
        None
    }

    /// The server's logs, in `folder` when given (`--logs`), else where the backend keeps
    /// them ([`log_folder`](Self::log_folder)): an opt-in capability, for `whmtoken usage`
    /// and the audit. A folder that does not exist is [`BackendError::NotFound`] naming it;
    /// the default is [`BackendError::Unsupported`].
    fn logs(&self, folder: Option<&camino::Utf8Path>) -> Result<Box<dyn Logs + '_>, BackendError> {
        let _ = folder;
        Err(BackendError::Unsupported {
            backend: self.kind(),
            operation: "reading logs",
        })
    }

    /// The credentials this server uses to reach its DNS cluster peers (files:
    /// `var/cpanel/cluster/<user>/config/<peer>`), read safely: an opt-in capability for
    /// the audit; the default is [`BackendError::Unsupported`].
    fn cluster_configs(&self) -> Result<Vec<ClusterFile>, BackendError> {
        Err(BackendError::Unsupported {
            backend: self.kind(),
            operation: "reading DNS cluster configs",
        })
    }
}

/// Importing many users at once: what a transactional backend offers through
/// [`Backend::batch`].
pub trait BatchImport: Send + Sync {
    /// Does for every item what [`Backend::import`] does for one, on the calling thread,
    /// each token stored together with its audit record (one for an entry written, timed by
    /// `clock`) and never without it, and returns one outcome per item in the same order. A
    /// failure for one item never undoes another's import. A run hands its users over in
    /// slices of at most [`crate::pipeline::BATCH_USERS`], in order, so that a signal stops
    /// it between slices, and meanwhile reads the next slice's users through a read session
    /// ([`Backend::read_session`]) on another thread.
    fn import_batch(
        &self,
        items: &[ImportItem],
        clock: &dyn Clock,
    ) -> Vec<Result<Decision, BackendError>>;
}

/// Importing a few consecutive users of a run at once on one of the pipeline's worker
/// threads, so that their flushes are issued together (the file backend: every new file
/// written and its writeback started before the first is flushed, then one audit-log
/// commit and one folder sync for them all). What [`Backend::chunks`] hands out.
pub trait ChunkImport: Send + Sync {
    /// Does for the first items what [`Backend::import`] does for one, `turns[i]` being
    /// item `i`'s [`AuditTurn`], and returns their outcomes in the items' order: at least
    /// the first item's (for which it waits as `import` would), and as many more as it got
    /// to; the pipeline hands the others back in a later call. A failure for one item
    /// never undoes another's import.
    ///
    /// The items follow each other in the run, so their records must be written in the
    /// items' order, and an item that fails before its record must pass its turn
    /// ([`AuditTurn::pass`]) before a later item of the call records: a record waits for
    /// every earlier user's turn. An item left for a later call must not have taken its
    /// turn. Once `stopped()` (a signal), no item after the first is started: the call
    /// returns the outcomes of those already started.
    fn import_chunk(
        &self,
        items: &[ImportItem],
        turns: &[AuditTurn<'_>],
        stopped: &dyn Fn() -> bool,
    ) -> Vec<Result<Decision, BackendError>>;
}

/// One user's import within a run.
#[derive(Clone, Debug)]
pub struct ImportItem {
    pub user: UserName,
    pub request: ImportRequest,
}

/// The retirement capability a backend hands out through [`Backend::retirement`]: the
/// primitives `whmtoken retire`, `restore` and `runs` are made of. Core decides and
/// sequences (the `retire` module); a backend only stores, reads and removes, each step
/// durable when it returns `Ok`.
///
/// # Contract
/// - [`begin`](Self::begin) and [`append`](Self::append) return once the record is
///   durable (a backend may leave [`Record::Removed`] to a later sync: lost in a crash, it
///   only makes the run count one less retired).
/// - [`put_backup`](Self::put_backup) returns once the backup is durable, and never
///   replaces a backup.
/// - [`remove_if_unchanged`](Self::remove_if_unchanged) removes an access hash only when
///   its content's SHA-512 is still the one journaled, checked as close to the removal as
///   the store allows; otherwise it leaves it where it is.
/// - Paths are found again under the backend's own root, never taken from a journal.
/// - Nothing here, nor in any error, shows a secret; a journal holds SHA-512 digests only.
/// - [`lock_runs`](Self::lock_runs) keeps the retire and restore runs of every process on
///   the server apart: core's runner holds it for a whole run that writes.
pub trait Retirement: Send + Sync {
    /// Takes the server's run lock, held until the [`RunLock`] is dropped, waiting for
    /// another run (of any process, this one included) up to the backend's lock timeout;
    /// then [`BackendError::Locked`], and nothing was written. A process that dies loses it.
    fn lock_runs(&self) -> Result<RunLock, BackendError>;

    /// Creates run `id`'s journal with its header, durably; an id is used once.
    fn begin(&self, id: &RunId, started: i64, command: &str) -> Result<(), BackendError>;

    /// Appends `record` to run `id`'s journal, durably.
    fn append(&self, id: &RunId, record: &Record) -> Result<(), BackendError>;

    /// The journal of run `id`; [`BackendError::NotFound`] when there is none.
    fn journal(&self, id: &RunId) -> Result<Journal, BackendError>;

    /// Every run's journal, oldest first.
    fn journals(&self) -> Result<Vec<Journal>, BackendError>;

    /// Stores `content` as run `id`'s backup called `name`, durably; where it is.
    fn put_backup(&self, id: &RunId, name: &str, content: &[u8]) -> Result<String, BackendError>;

    /// Run `id`'s backup called `name`: where it is and its content;
    /// [`BackendError::NotFound`] when it is missing.
    fn backup(&self, id: &RunId, name: &str) -> Result<(String, Zeroizing<Vec<u8>>), BackendError>;

    /// Removes every backup of run `id` (its access hashes, and what forced restores kept),
    /// durably; how many there were. None left (or none ever made) is not an error.
    fn remove_backups(&self, id: &RunId) -> Result<usize, BackendError>;

    /// How many backups run `id` has (what [`Retirement::remove_backups`] would remove),
    /// read only.
    fn count_backups(&self, id: &RunId) -> Result<usize, BackendError>;

    /// `user`'s access hash with its metadata, read with the converter's checks (owned by
    /// `owner` when given, else by the account); `None` when it has none.
    fn read_home(&self, user: &UserName, owner: Option<u32>) -> Result<Option<Held>, BackendError>;

    /// `user`'s uid now, where the store keeps one (files: `etc/passwd`); `None` (the
    /// default) for a store without uids. Restore refuses an account whose uid changed
    /// since its run: a recycled uid never receives someone else's secret.
    fn account_uid(&self, user: &UserName) -> Result<Option<u32>, BackendError> {
        let _ = user;
        Ok(None)
    }

    /// The name an access hash is given beside its home while run `id` checks it once more
    /// before removing it (files), journaled with it; `None` (the default) for a store that
    /// checks and removes in one step.
    fn set_aside_name(&self, id: &RunId) -> Option<String> {
        let _ = id;
        None
    }

    /// Removes the access hash `retired` journals (found again under the backend's root)
    /// when its SHA-512 is still `retired.sha512`.
    fn remove_if_unchanged(
        &self,
        id: &RunId,
        retired: &RetiredFile,
    ) -> Result<Removal, BackendError>;

    /// Puts `content` back as `retired`'s access hash with its mode, owner and mtime: where
    /// nothing is (`replacing: None`), or over what has the SHA-512 `replacing`; refused
    /// when something else appeared meanwhile.
    fn put_back(
        &self,
        retired: &RetiredFile,
        content: &[u8],
        replacing: Option<&str>,
    ) -> Result<(), BackendError>;

    /// Puts back what a killed or failed retire left under its set-aside name (files): renamed
    /// back when the home is free, removed when the home holds the very content retired,
    /// else refused. `true`: it was (with `check_only`: it would be). The default: `false`.
    fn recover_set_aside(
        &self,
        retired: &RetiredFile,
        check_only: bool,
    ) -> Result<bool, BackendError> {
        let _ = (retired, check_only);
        Ok(false)
    }

    /// Finishes what a killed run left of `user`'s retirement while `user` has no access
    /// hash (files: one still under its set-aside name, removed when it is what that run
    /// backed up and its removal is recorded nowhere, else put back and an error). The
    /// run's id when one was finished; the caller records it in its own run's journal
    /// ([`Record::Finished`]), never in that run's.
    fn finish_interrupted(&self, user: &UserName) -> Result<Option<RunId>, BackendError> {
        let _ = user;
        Ok(None)
    }

    /// `allow_deprecated_accesshash` as it is now, read without a lock.
    fn setting(&self) -> Result<Setting, BackendError>;

    /// Sets `allow_deprecated_accesshash` to `new` (`None`: unset) under the store's lock,
    /// only when it is still `expected`; `false`: it was not, and nothing was written.
    fn set_setting(&self, expected: Option<&str>, new: Option<&str>) -> Result<bool, BackendError>;

    /// Puts `change`'s setting back as the run found it, under the store's lock, only when
    /// it is still `expected` (`false`: nothing written). The default: [`set_setting`] to
    /// `change.old`; a store that keeps lines puts `change.lines` back byte for byte.
    ///
    /// [`set_setting`]: Self::set_setting
    fn restore_setting(
        &self,
        expected: Option<&str>,
        change: &SettingChange,
    ) -> Result<bool, BackendError> {
        self.set_setting(expected, change.old.as_deref())
    }

    /// Appends one line to the server's audit log (`accounting.log`), durably.
    fn append_accounting(&self, line: &str) -> Result<(), BackendError>;
}

/// A held run lock ([`Retirement::lock_runs`]): whatever the backend holds it with, released
/// when dropped.
pub struct RunLock {
    _held: Box<dyn Send + Sync>,
}

impl RunLock {
    /// The lock held by `held` (a locked file, a guard) until this is dropped.
    pub fn new(held: impl Send + Sync + 'static) -> Self {
        Self {
            _held: Box::new(held),
        }
    }
}

impl fmt::Debug for RunLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RunLock")
    }
}

/// How long a backend waits for a lock held by another live process by default.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// How a refused file is described in messages: `a symbolic link`, `a FIFO`, ...
pub fn describe_file_type(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "a regular file"
    }
}

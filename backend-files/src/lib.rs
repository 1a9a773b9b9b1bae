//! The file backend: cPanel's own layout under a configured root (`/` on a real server).
//!
//! | what | where, under `root` |
//! | --- | --- |
//! | users' uid and home | `etc/passwd` |
//! | resellers and their ACLs | `var/cpanel/resellers` |
//! | access hashes | `<home>/.accesshash` |
//! | WHM API tokens | `var/cpanel/authn/api_tokens_v2/whostmgr/<user>.json` |
//! | audit lines | `var/cpanel/accounting.log` |
//! | server settings (`allow_deprecated_accesshash`) | `var/cpanel/cpanel.config` |
//! | hosting accounts' owners and main domains | `etc/trueuserowners`, `etc/trueuserdomains` |
//! | cpsrvd's logs (`access_log`, `api_tokens_log` and their rotations) | `usr/local/cpanel/logs` |
//! | DNS cluster peers' credentials | `var/cpanel/cluster/<user>/config/<peer>` |
//!
//! `etc/passwd` and `var/cpanel/resellers` are read once, when the backend is opened;
//! `var/cpanel/cpanel.config` each time the settings are asked for, so that a converter
//! run, which never asks, does not depend on it.
//!
//! Home folders are resolved through `etc/passwd` and followed as they are, symbolic links
//! included (`/home` linking to `/home2` is a common layout, and only root can change those
//! folders). The last component, `.accesshash`, lives in a folder its tenant controls: it
//! is never followed through a symbolic link, and it is checked on the open descriptor.

mod accounting;
mod accounts;
mod budget;
mod chunk;
mod cluster;
mod cpanel_config;
mod crash;
mod debris;
mod document;
mod group_sync;
#[cfg(feature = "harness")]
mod harness;
mod home;
mod journal;
mod lock;
mod logs;
mod owner;
mod passwd;
#[cfg(test)]
mod properties;
mod resellers;
mod retire;
mod revoke;
mod safe_fs;
mod token_file;

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;

use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use serde::Deserialize;
use serde::Serialize;
use whmtoken_core::backend::DEFAULT_LOCK_TIMEOUT;
use whmtoken_core::{
    AccessHash, AuditEvent, AuditTurn, Backend, BackendConfig, BackendError, Decision,
    ImportRequest, Privileges, Reads, ServerSettings, TokenSet, UserName, WhmRole,
};

use crate::document::Edit;
use crate::safe_fs::{Expect, corrupt, open_checked};

/// The server's tweak settings, under the root.
const CPANEL_CONFIG: &str = "var/cpanel/cpanel.config";

/// The `[backend]` section for `kind = "files"`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// The server root: `/` on a real server.
    pub root: Utf8PathBuf,
}

impl BackendConfig for FilesConfig {
    const KIND: &'static str = "files";

    fn resolve_relative(&mut self, base: &Utf8Path) {
        self.root = absolute(base, &self.root);
    }

    /// The real server root (`/`, however it is spelled) is root's alone.
    fn needs_root(&self) -> bool {
        std::fs::canonicalize(&self.root)
            .map(|p| p == std::path::Path::new("/"))
            .unwrap_or(self.root == "/")
    }

    fn open(&self, lock_timeout: Duration) -> Result<Box<dyn Backend>, BackendError> {
        Ok(Box::new(
            FilesBackend::open(self)?.with_lock_timeout(lock_timeout),
        ))
    }
}

/// `path` taken from `base` when relative, without `.` components.
fn absolute(base: &Utf8Path, path: &Utf8Path) -> Utf8PathBuf {
    base.join(path)
        .components()
        .filter(|c| *c != camino::Utf8Component::CurDir)
        .collect()
}

/// Lines of a data file that could not be used: (line number, reason).
type BadLines = Vec<(usize, String)>;

/// A skipped line of `etc/passwd` or `var/cpanel/resellers`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SkippedLine {
    file: Utf8PathBuf,
    line: usize,
    reason: String,
}

/// cPanel's file layout under `root`. The passwd and resellers data are read once, when
/// the backend is opened.
#[derive(Debug)]
pub struct FilesBackend {
    root: Utf8PathBuf,
    accounts: HashMap<String, passwd::Account>,
    resellers: BTreeMap<String, Vec<String>>,
    skipped: Vec<SkippedLine>,
    lock_timeout: Duration,
    /// The uid that owns the token files: root on a real server, whoever runs the tests.
    token_owner: u32,
    accounting: accounting::AccountingLog,
    /// The `whostmgr` token folder, made, checked, opened (for fsync) and cleared of an
    /// earlier run's debris once per run, at its first write.
    token_folder: OnceLock<token_file::TokenFolder>,
    /// Held while the token folder is set up, so that it is set up once.
    token_folder_setup: Mutex<()>,
    /// How many token-file bytes may be in memory at once, across threads.
    budget: budget::ReadBudget,
    /// The journals and backups of `whmtoken retire` runs.
    runs: retire::RunState,
    /// The tree's real path, when root does not own it: no home is followed out of it.
    real_root: Option<std::path::PathBuf>,
}

impl FilesBackend {
    pub fn open(config: &FilesConfig) -> Result<Self, BackendError> {
        let root = config.root.clone();
        for needed in ["var/cpanel", "etc/passwd"] {
            if std::fs::symlink_metadata(root.join(needed)).is_err() {
                return Err(BackendError::NotFound {
                    location: root.to_string(),
                    what: format!("not a cPanel server: it has no {needed}"),
                });
            }
        }
        // On `/` only root's files are trusted; in a tree elsewhere (a fake server), the
        // files of whoever owns the tree are trusted as root's are.
        let (tree_owner, tree_group) = if config.needs_root() {
            (0, 0)
        } else {
            use std::os::unix::fs::MetadataExt;
            let meta = std::fs::metadata(&root).map_err(|e| safe_fs::io_error(&root, e))?;
            (meta.uid(), meta.gid())
        };
        // Root on a tree it does not own acts as its owner (`owner`), and follows no home
        // out of it.
        owner::act_as(&root, tree_owner, tree_group)?;
        let real_root = (tree_owner != 0)
            .then(|| owner::real_root(&root))
            .transpose()?;
        let passwd_path = root.join("etc/passwd");
        let (accounts, bad_passwd) = passwd::parse(&read_root_file(&passwd_path, tree_owner)?);
        let resellers_path = root.join("var/cpanel/resellers");
        let (resellers, bad_resellers) =
            resellers::parse(&read_root_file(&resellers_path, tree_owner)?);
        let skipped: Vec<SkippedLine> =
            [(passwd_path, bad_passwd), (resellers_path, bad_resellers)]
                .into_iter()
                .flat_map(|(file, bad)| {
                    bad.into_iter().map(move |(line, reason)| SkippedLine {
                        file: file.clone(),
                        line,
                        reason,
                    })
                })
                .collect();
        for s in &skipped {
            tracing::warn!(file = %s.file, line = s.line, reason = %s.reason, "skipped a line");
        }
        Ok(Self {
            accounts,
            resellers,
            skipped,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            token_owner: tree_owner,
            accounting: accounting::AccountingLog::new(
                config.root.join("var/cpanel/accounting.log"),
                tree_owner,
            ),
            token_folder: OnceLock::new(),
            token_folder_setup: Mutex::new(()),
            budget: budget::ReadBudget::new(budget::READ_BUDGET),
            runs: retire::RunState::new(&root, tree_owner),
            real_root,
            root,
        })
    }

    /// How long to wait for a lock held by another live process.
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Where `user`'s WHM token file lives.
    pub fn token_file(&self, user: &UserName) -> Utf8PathBuf {
        self.root
            .join(token_file::TOKEN_FOLDER)
            .join(format!("{user}.json"))
    }

    /// The token folder, for writing. The first call (the first write of a run: a dry
    /// run never gets here) makes the folder when it is missing and removes the temporary
    /// files an earlier, killed converter left in it ([`debris`]).
    fn token_folder(&self) -> Result<&token_file::TokenFolder, BackendError> {
        if let Some(folder) = self.token_folder.get() {
            return Ok(folder);
        }
        let _setup = self
            .token_folder_setup
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(folder) = self.token_folder.get() {
            return Ok(folder);
        }
        let dir = token_file::ensure_token_dirs(&self.root, self.token_owner)?;
        let path = self.root.join(token_file::TOKEN_FOLDER);
        debris::sweep(&path, &dir, debris::Leftovers::All);
        // The accounting log's lock sources live beside it.
        let var_cpanel = self.root.join("var/cpanel");
        if let Ok(dir) = std::fs::File::open(&var_cpanel) {
            debris::sweep(&var_cpanel, &dir, debris::Leftovers::VarCpanel);
        }
        let mode = rustix::fs::fstat(&dir)
            .map(|stat| stat.st_mode & 0o7777)
            .map_err(|e| whmtoken_core::BackendError::Io {
                location: path.to_string(),
                source: e.into(),
            })?;
        Ok(self.token_folder.get_or_init(|| token_file::TokenFolder {
            dir,
            mode: rustix::fs::Mode::from_raw_mode(mode),
            syncs: group_sync::GroupSync::default(),
            locks: lock::LockSource::new(path.clone()),
            failed: OnceLock::new(),
            path,
        }))
    }

    /// `user`'s token file, for a rewrite: the token folder is set up at the first.
    pub(crate) fn writable_token_file(
        &self,
        user: &UserName,
    ) -> Result<token_file::TokenFile<'_>, BackendError> {
        Ok(token_file::TokenFile {
            path: self.token_file(user),
            owner: self.token_owner,
            timeout: self.lock_timeout,
            folder: self.token_folder()?,
            budget: &self.budget,
        })
    }

    /// Where `user`'s `.accesshash` is, and the account it belongs to.
    fn access_hash_path(
        &self,
        user: &UserName,
    ) -> Result<(Utf8PathBuf, passwd::Account), BackendError> {
        let account = self.account(user)?;
        if account.home.split('/').any(|part| part == "..") {
            return Err(BackendError::Unsafe {
                location: self.root.join("etc/passwd").to_string(),
                detail: format!("the home of {user} has a `..` component"),
            });
        }
        let home = self.root.join(account.home.trim_start_matches('/'));
        if let Some(real_root) = &self.real_root {
            owner::check_inside(real_root, &home, user.as_str())?;
        }
        Ok((home.join(".accesshash"), account))
    }

    fn account(&self, user: &UserName) -> Result<passwd::Account, BackendError> {
        match self.accounts.get(user.as_str()) {
            // The tree's root account is the tree's owner: root on a real server.
            Some(account) if user.is_root() => Ok(passwd::Account {
                uid: self.token_owner,
                ..account.clone()
            }),
            Some(account) => Ok(account.clone()),
            None if user.is_root() => Ok(passwd::Account {
                uid: self.token_owner,
                gid: None,
                home: "/root".to_owned(),
            }),
            None => Err(BackendError::NotFound {
                location: self.root.join("etc/passwd").to_string(),
                what: format!("no entry for user {user}"),
            }),
        }
    }
}

/// Reads a data file owned by root or `tree_owner`; a missing one reads as empty.
pub(crate) fn read_root_file(path: &Utf8Path, tree_owner: u32) -> Result<String, BackendError> {
    let expect = Expect {
        owner: Some(tree_owner),
        max_len: 64 << 20,
        secret: false,
    };
    let Some(file) = open_checked(path, OpenOptions::new().read(true), expect)? else {
        return Ok(String::new());
    };
    let bytes = file.read()?;
    // A stray byte (a Latin-1 GECOS field, say) must not stop the run: the parsers skip a
    // line whose fields they use are not valid UTF-8.
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

impl Reads for FilesBackend {
    fn role(&self, user: &UserName) -> Result<WhmRole, BackendError> {
        if user.is_root() {
            return Ok(WhmRole::Root);
        }
        Ok(match self.resellers.get(user.as_str()) {
            Some(acls) => WhmRole::Reseller(Privileges::from_list(acls)),
            None => WhmRole::NotReseller,
        })
    }

    fn read_access_hash(&self, user: &UserName) -> Result<Option<AccessHash>, BackendError> {
        let (path, account) = self.access_hash_path(user)?;
        let expect = Expect {
            owner: Some(account.uid),
            max_len: AccessHash::MAX_LEN as u64,
            secret: true,
        };
        let file = open_checked(&path, OpenOptions::new().read(true), expect)?;
        file.map(|file| file.read().map(AccessHash::from_bytes))
            .transpose()
    }

    fn tokens(&self, user: &UserName) -> Result<TokenSet, BackendError> {
        token_file::read(&self.token_file(user), self.token_owner, &self.budget)
    }

    fn has_account(&self, user: &UserName) -> Result<bool, BackendError> {
        Ok(user.is_root() || self.accounts.contains_key(user.as_str()))
    }
}

/// An import's decision for the user's `tokens`, and the edit of the token file it calls for.
fn decide_import(
    request: &ImportRequest,
    tokens: &TokenSet,
) -> Result<(Decision, Option<Edit>), BackendError> {
    let decision = request.decide(tokens)?;
    let edit = match &decision {
        Decision::Write { entry, .. } => Some(Edit::Put(request.hash.clone(), entry.clone())),
        Decision::AlreadyPresent { .. } => None,
    };
    Ok((decision, edit))
}

impl Backend for FilesBackend {
    fn kind(&self) -> &'static str {
        FilesConfig::KIND
    }

    fn resellers(&self) -> Result<Vec<String>, BackendError> {
        Ok(self.resellers.keys().cloned().collect())
    }

    fn token_users(&self) -> Result<Vec<String>, BackendError> {
        token_file::list_users(&self.root.join(token_file::TOKEN_FOLDER), self.token_owner)
    }

    /// Read from `var/cpanel/cpanel.config` each time, as safely as `etc/passwd`; a missing
    /// file or setting has cPanel's default.
    fn server_settings(&self) -> Result<ServerSettings, BackendError> {
        let path = self.root.join(CPANEL_CONFIG);
        cpanel_config::parse(&read_root_file(&path, self.token_owner)?)
            .map_err(|detail| corrupt(&path, detail))
    }

    /// The audit line is appended in the user's turn and made durable (one fdatasync shared
    /// with the lines of other threads) before the token file is renamed into place.
    fn import(
        &self,
        user: &UserName,
        request: &ImportRequest,
        audit: &AuditTurn<'_>,
    ) -> Result<Decision, BackendError> {
        let target = self.writable_token_file(user)?;
        let record = |decision: &Decision| {
            self.accounting
                .record(audit, user, decision, self.lock_timeout)
        };
        token_file::rewrite(
            &target,
            true,
            Some(&request.hash),
            |tokens| decide_import(request, tokens),
            record,
        )
    }

    fn chunks(&self) -> Option<&dyn whmtoken_core::ChunkImport> {
        Some(self)
    }

    fn append_audit(&self, event: &AuditEvent) -> Result<(), BackendError> {
        self.accounting
            .append_durably(&event.accounting_line(), self.lock_timeout)
    }

    fn retirement(&self) -> Option<&dyn whmtoken_core::Retirement> {
        Some(self)
    }

    fn accounts(&self) -> Result<Vec<whmtoken_core::Account>, BackendError> {
        accounts::read(self)
    }

    fn revoke(
        &self,
        user: &UserName,
        name: &str,
    ) -> Result<Option<whmtoken_core::TokenHash>, BackendError> {
        revoke::revoke(self, user, name)
    }

    fn log_folder(&self) -> Option<Utf8PathBuf> {
        Some(self.root.join(logs::LOGS))
    }

    fn logs(
        &self,
        folder: Option<&Utf8Path>,
    ) -> Result<Box<dyn whmtoken_core::Logs + '_>, BackendError> {
        let default = self.root.join(logs::LOGS);
        let folder = folder.unwrap_or(&default);
        Ok(Box::new(logs::LogFolder::open(folder, self.token_owner)?))
    }

    fn cluster_configs(&self) -> Result<Vec<whmtoken_core::ClusterFile>, BackendError> {
        cluster::read(&self.root, self.token_owner)
    }

    fn notices(&self) -> Vec<String> {
        self.skipped
            .iter()
            .map(|s| format!("{}: line {} skipped: {}", s.file, s.line, s.reason))
            .collect()
    }
}

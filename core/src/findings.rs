//! `whmtoken audit`: every WHM credential of a server, account by account, with findings.
//!
//! Reads only: no lock is taken and nothing is written, so it is safe while WHM runs. A file
//! that cannot be read safely becomes a finding, never a stop.

use std::collections::BTreeSet;

use crate::acl::{ALL, CREATE_USER_SESSION};
use crate::backend::{Backend, BackendError, Reads, ServerSettings};
use crate::error_chain;
use crate::parallel;
use crate::secret::TokenHash;
use crate::token::TokenEntry;
use crate::user::UserName;

/// How much a finding matters; ordered from least to most.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Self::Critical, Self::Warning, Self::Info];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

/// What a finding is about; its [`as_str`](Code::as_str) is stable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    AccesshashNotConverted,
    AccesshashActive,
    UnsafeAccesshash,
    EmptyAccesshash,
    UnknownAccount,
    UnusableAllowList,
    DeprecatedAuthEnabled,
    UnsafeTokenFile,
    OrphanTokenFile,
    UnrestrictedToken,
    DangerousAcl,
    NoExpiry,
    Expired,
    AccesshashInUse,
    LegacySecretInUse,
    UnusedToken,
    OutboundAccesshash,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccesshashNotConverted => "accesshash_not_converted",
            Self::AccesshashActive => "accesshash_active",
            Self::UnsafeAccesshash => "unsafe_accesshash",
            Self::EmptyAccesshash => "empty_accesshash",
            Self::UnknownAccount => "unknown_account",
            Self::UnusableAllowList => "unusable_allow_list",
            Self::DeprecatedAuthEnabled => "deprecated_auth_enabled",
            Self::UnsafeTokenFile => "unsafe_token_file",
            Self::OrphanTokenFile => "orphan_token_file",
            Self::UnrestrictedToken => "unrestricted_token",
            Self::DangerousAcl => "dangerous_acl",
            Self::NoExpiry => "no_expiry",
            Self::Expired => "expired",
            Self::AccesshashInUse => "accesshash_in_use",
            Self::LegacySecretInUse => "legacy_secret_in_use",
            Self::UnusedToken => "unused_token",
            Self::OutboundAccesshash => "outbound_accesshash",
        }
    }
}

/// One finding: what, how bad, and a line naming the user and token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub code: Code,
    pub message: String,
    /// The token it is about, if one.
    pub token: Option<String>,
}

/// Where an account's access hash stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessHashState {
    None,
    Converted,
    NotConverted,
    Unreadable,
    /// An access hash exists, but the token database could not be read to tell.
    Unknown,
}

impl AccessHashState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Converted => "converted",
            Self::NotConverted => "not_converted",
            Self::Unreadable => "unreadable",
            Self::Unknown => "unknown",
        }
    }
}

/// One stored token, as an admin needs to see it (never its key beyond 12 hex characters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenView {
    pub name: String,
    pub hash_prefix: String,
    pub create_time: Option<i64>,
    pub expires_at: Option<i64>,
    pub expired: bool,
    pub full_access: bool,
    pub acls: Option<Vec<String>>,
    pub allow_ips: Option<Vec<String>>,
    /// Stored under the key of the account's current access hash.
    pub from_accesshash: bool,
}

/// One account's credentials and findings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountAudit {
    pub user: String,
    pub accesshash: AccessHashState,
    pub tokens: Vec<TokenView>,
    pub findings: Vec<Finding>,
}

/// The whole server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerAudit {
    pub settings: ServerSettings,
    /// Findings about the server itself.
    pub findings: Vec<Finding>,
    pub accounts: Vec<AccountAudit>,
}

impl ServerAudit {
    /// Every finding, the server's first.
    pub fn all_findings(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .chain(self.accounts.iter().flat_map(|a| &a.findings))
    }

    pub fn count(&self, severity: Severity) -> usize {
        self.all_findings()
            .filter(|f| f.severity == severity)
            .count()
    }

    /// The most severe finding's severity.
    pub fn worst(&self) -> Option<Severity> {
        self.all_findings().map(|f| f.severity).max()
    }
}

/// Audits `users`, or, given none, root, every reseller and every account that has a token
/// database; at `now` (epoch seconds), on up to `jobs` threads.
pub fn audit(
    backend: &dyn Backend,
    users: &[String],
    now: i64,
    jobs: usize,
) -> Result<ServerAudit, BackendError> {
    let settings = backend.server_settings()?;
    let (users, token_users) = covered_accounts(backend, users)?;
    let session = backend.read_session();
    let reads: &dyn Reads = session.as_deref().unwrap_or(backend);
    let accounts = parallel::map(&users, jobs, |user| {
        let has_token_file = token_users.contains(user);
        audit_account(reads, settings, user, has_token_file, now)
    });
    let findings = if settings.allow_deprecated_accesshash {
        vec![Finding {
            severity: Severity::Warning,
            code: Code::DeprecatedAuthEnabled,
            message: "server: access-hash authentication is on (allow_deprecated_accesshash=1)"
                .to_owned(),
            token: None,
        }]
    } else {
        Vec::new()
    };
    Ok(ServerAudit {
        settings,
        findings,
        accounts,
    })
}

/// The accounts an audit covers: `users` (each once), or, given none, root, every reseller
/// and every account that has a token database; with the accounts that have one.
pub fn covered_accounts(
    backend: &dyn Backend,
    users: &[String],
) -> Result<(Vec<String>, BTreeSet<String>), BackendError> {
    let token_users: BTreeSet<String> = backend.token_users()?.into_iter().collect();
    let users: Vec<String> = if users.is_empty() {
        let mut everyone: BTreeSet<String> = backend.resellers()?.into_iter().collect();
        everyone.extend(token_users.iter().cloned());
        everyone.remove("root");
        std::iter::once("root".to_owned()).chain(everyone).collect()
    } else {
        let mut seen = BTreeSet::new();
        users
            .iter()
            .filter(|u| seen.insert(u.as_str()))
            .cloned()
            .collect()
    };
    Ok((users, token_users))
}

fn audit_account(
    reads: &dyn Reads,
    settings: ServerSettings,
    raw: &str,
    has_token_file: bool,
    now: i64,
) -> AccountAudit {
    let mut account = AccountAudit {
        user: raw.to_owned(),
        accesshash: AccessHashState::None,
        tokens: Vec::new(),
        findings: Vec::new(),
    };
    let user = match UserName::new(raw) {
        Ok(user) => user,
        Err(e) => {
            let message = format!("{}: not an account name ({e})", raw.escape_debug());
            account.push(Severity::Critical, Code::UnsafeTokenFile, message, None);
            return account;
        }
    };
    let exists = reads.has_account(&user).unwrap_or(false);
    let key = if exists {
        read_key(reads, &user, &mut account)
    } else {
        None
    };
    let tokens = match reads.tokens(&user) {
        Ok(tokens) => Some(tokens),
        Err(e) => {
            let message = format!("{user}: token database refused: {}", error_chain(&e));
            account.push(Severity::Critical, Code::UnsafeTokenFile, message, None);
            None
        }
    };
    if !exists {
        let (code, message) = if has_token_file {
            (
                Code::OrphanTokenFile,
                format!("{user}: token file of an account that does not exist"),
            )
        } else {
            (
                Code::UnknownAccount,
                format!("{user}: no such account, and no token file"),
            )
        };
        account.push(Severity::Warning, code, message, None);
    }
    let Some(tokens) = tokens else {
        if key.is_some() {
            account.accesshash = AccessHashState::Unknown;
        }
        return account;
    };
    if let Some(key) = &key {
        match tokens.get(key) {
            Some(entry) => {
                account.accesshash = AccessHashState::Converted;
                let message = format!(
                    "{user}: access hash converted as “{}” but still present; retire it",
                    entry.name
                );
                let name = Some(entry.name.clone());
                account.push(Severity::Warning, Code::AccesshashActive, message, name);
            }
            None => not_converted(settings, &user, &mut account),
        }
    }
    for (hash, entry) in tokens.iter() {
        let view = token_view(hash, entry, key.as_ref(), now);
        account.findings.extend(token_findings(&user, &view));
        account.tokens.push(view);
    }
    account
}

/// The token hash of `user`'s access hash, if it has one that can be converted; what is
/// wrong with it goes to `account`.
fn read_key(reads: &dyn Reads, user: &UserName, account: &mut AccountAudit) -> Option<TokenHash> {
    match reads.read_access_hash(user) {
        Ok(None) => None,
        Ok(Some(hash)) => {
            let key = hash.token_hash();
            if key.is_none() {
                let message =
                    format!("{user}: access hash is empty; it cannot be converted (or used)");
                account.push(Severity::Warning, Code::EmptyAccesshash, message, None);
            }
            key
        }
        Err(e) => {
            account.accesshash = AccessHashState::Unreadable;
            let message = format!("{user}: access hash refused: {}", error_chain(&e));
            account.push(Severity::Critical, Code::UnsafeAccesshash, message, None);
            None
        }
    }
}

/// An access hash with no token of its secret: how bad depends on whether access-hash
/// authentication is still on.
fn not_converted(settings: ServerSettings, user: &UserName, account: &mut AccountAudit) {
    account.accesshash = AccessHashState::NotConverted;
    let (severity, consequence) = if settings.allow_deprecated_accesshash {
        (
            Severity::Warning,
            "its clients fail once access-hash authentication is off",
        )
    } else {
        (
            Severity::Critical,
            "access-hash authentication is off, so its clients are failing now",
        )
    };
    let message = format!("{user}: access hash not converted; {consequence}");
    account.push(severity, Code::AccesshashNotConverted, message, None);
}

impl AccountAudit {
    pub(crate) fn push(
        &mut self,
        severity: Severity,
        code: Code,
        message: String,
        token: Option<String>,
    ) {
        self.findings.push(Finding {
            severity,
            code,
            message,
            token,
        });
    }
}

fn token_view(
    hash: &TokenHash,
    entry: &TokenEntry,
    current: Option<&TokenHash>,
    now: i64,
) -> TokenView {
    TokenView {
        name: entry.name.clone(),
        hash_prefix: hash.prefix().to_owned(),
        create_time: entry.create_time,
        expires_at: entry.expires_at,
        expired: entry.expires_at.is_some_and(|t| t < now),
        full_access: entry.has_full_access(),
        acls: entry.acls.clone(),
        allow_ips: entry.whitelist_ips.clone(),
        from_accesshash: current == Some(hash),
    }
}

fn token_findings(user: &UserName, token: &TokenView) -> Vec<Finding> {
    let name = &token.name;
    let mut findings = Vec::new();
    let mut add = |severity, code, message: String| {
        findings.push(Finding {
            severity,
            code,
            message,
            token: Some(name.clone()),
        });
    };
    if token.acls.is_none() && token.allow_ips.is_none() {
        add(
            Severity::Warning,
            Code::UnrestrictedToken,
            format!("{user}: token “{name}” has full access and accepts any address"),
        );
    }
    for acl in token.acls.iter().flatten() {
        if acl == ALL || acl == CREATE_USER_SESSION {
            add(
                Severity::Warning,
                Code::DangerousAcl,
                format!("{user}: token “{name}” holds the ACL “{acl}”"),
            );
        }
    }
    match token.allow_ips.as_deref() {
        Some([]) => add(
            Severity::Warning,
            Code::UnusableAllowList,
            format!("{user}: token “{name}” has an empty allow-list, which admits no address"),
        ),
        Some(list) => {
            if let Some(bad) = list
                .iter()
                .find(|entry| crate::auth::allow_list_entry(entry).is_none())
            {
                add(
                    Severity::Warning,
                    Code::UnusableAllowList,
                    format!(
                        "{user}: token “{name}” has the allow-list entry “{bad}”, which makes every request with it fail"
                    ),
                );
            }
        }
        None => {}
    }
    match token.expires_at {
        None => add(
            Severity::Info,
            Code::NoExpiry,
            format!("{user}: token “{name}” never expires"),
        ),
        Some(at) if token.expired => add(
            Severity::Info,
            Code::Expired,
            format!(
                "{user}: token “{name}” expired {} and is still stored",
                crate::usage::time::utc_text(at)
            ),
        ),
        Some(_) => {}
    }
    findings
}

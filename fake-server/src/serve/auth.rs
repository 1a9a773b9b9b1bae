//! Who is calling: the `Authorization: whm USER:SECRET` header, decided by
//! [`whmtoken_core::auth::verify`] (the decision `whmtoken verify` makes), and the ACLs the
//! caller then holds.

use std::collections::BTreeSet;
use std::net::IpAddr;

use whmtoken_core::auth::{self, Access, Attempt, Verdict};
use whmtoken_core::{AccessHash, Backend, BackendError, Privileges, UserName, error_chain};

/// An authenticated caller.
#[derive(Debug)]
pub(crate) struct Caller {
    pub(crate) user: UserName,
    /// What the account holds (root: everything).
    pub(crate) account: Privileges,
    /// What this request may use: the account's privileges, or a token's ACLs that the
    /// account holds.
    pub(crate) acls: Acls,
    /// Whether the request came with a full-access credential (the access hash or a token
    /// without `acls`).
    pub(crate) full_access: bool,
    /// The token that authenticated it; `None` for the access hash.
    pub(crate) token: Option<String>,
    /// That token's expiry (epoch seconds), when it has one.
    pub(crate) expires_at: Option<i64>,
    /// That token's allow-list, when it has one.
    pub(crate) allow_list: Option<Vec<String>>,
}

/// The ACLs a request may use.
#[derive(Debug)]
pub(crate) enum Acls {
    All,
    Only(BTreeSet<String>),
}

impl Acls {
    pub(crate) fn holds(&self, acl: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(set) => set.contains(acl),
        }
    }
}

impl From<Privileges> for Acls {
    fn from(privileges: Privileges) -> Self {
        match privileges {
            Privileges::All => Self::All,
            Privileges::Acls(set) => Self::Only(set),
        }
    }
}

/// Why a request was refused (HTTP 403), or could not be decided (HTTP 500). The reason
/// never holds the secret.
#[derive(Debug)]
pub(crate) struct Denied {
    /// The user named in the header, when it was a valid name.
    pub(crate) user: Option<UserName>,
    pub(crate) reason: String,
    /// The server's data could not be read: not the caller's fault.
    pub(crate) failed: bool,
}

impl Denied {
    fn refused(user: Option<&UserName>, reason: impl Into<String>) -> Self {
        Self {
            user: user.cloned(),
            reason: reason.into(),
            failed: false,
        }
    }

    fn failed(user: &UserName, error: &BackendError) -> Self {
        Self {
            user: Some(user.clone()),
            reason: format!(
                "the fake server's data could not be read: {}",
                error_chain(error)
            ),
            failed: true,
        }
    }
}

/// The scheme and credentials the header should hold, for messages.
const EXPECTED: &str = "send Authorization: whm USER:SECRET";

/// Decides the request whose `Authorization` header is `header` (its raw bytes), coming
/// from `peer` at `now` (epoch seconds), as cPanel's server would.
pub(crate) fn authenticate(
    backend: &dyn Backend,
    header: Option<&[u8]>,
    peer: IpAddr,
    now: i64,
) -> Result<Caller, Denied> {
    let Some(header) = header else {
        return Err(Denied::refused(
            None,
            format!("no Authorization header: {EXPECTED}"),
        ));
    };
    let header = header.trim_ascii();
    let split = header.iter().position(u8::is_ascii_whitespace);
    let (scheme, credentials) = match split {
        Some(at) => (&header[..at], header[at..].trim_ascii_start()),
        None => (header, &b""[..]),
    };
    if scheme.eq_ignore_ascii_case(b"basic") {
        return Err(Denied::refused(
            None,
            format!(
                "password authentication is not available: fake servers hold no passwords; {EXPECTED}"
            ),
        ));
    }
    if !scheme.eq_ignore_ascii_case(b"whm") {
        return Err(Denied::refused(
            None,
            format!("unsupported authorization scheme; {EXPECTED}"),
        ));
    }
    let Some(colon) = credentials.iter().position(|b| *b == b':') else {
        return Err(Denied::refused(
            None,
            format!("malformed whm credentials; {EXPECTED}"),
        ));
    };
    let user = std::str::from_utf8(&credentials[..colon])
        .ok()
        .and_then(|name| UserName::new(name).ok())
        .ok_or_else(|| {
            Denied::refused(
                None,
                "the user in the Authorization header is not a valid user name",
            )
        })?;
    let secret = &credentials[colon + 1..];
    if secret.len() > AccessHash::MAX_LEN {
        return Err(Denied::refused(Some(&user), "the secret is too long"));
    }
    let secret = AccessHash::from_bytes(secret.to_vec());
    let settings = backend
        .server_settings()
        .map_err(|e| Denied::failed(&user, &e))?;
    let attempt = Attempt {
        user: &user,
        secret: &secret,
        from: Some(peer),
        at: now,
    };
    let verdict =
        auth::verify(backend, settings, &attempt).map_err(|e| Denied::failed(&user, &e))?;
    let (access, account, token) = match verdict {
        Verdict::Token {
            access,
            account,
            name,
        } => (access, account, Some(name)),
        Verdict::AccessHash { account } => (Access::Full, account, None),
        Verdict::Refused(why) => return Err(Denied::refused(Some(&user), why.to_string())),
        // Never with an address given; refused rather than trusted should that change.
        Verdict::DependsOnAddress { name } => {
            return Err(Denied::refused(
                Some(&user),
                format!("token “{name}” has an allow-list and the client's address is unknown"),
            ));
        }
    };
    let (acls, full_access) = match access {
        Access::Full => (Acls::from(account.clone()), true),
        Access::Acls(list) => (Acls::Only(list.into_iter().collect()), false),
    };
    let (expires_at, allow_list) = match &token {
        Some(name) => token_limits(backend, &user, name)?,
        None => (None, None),
    };
    Ok(Caller {
        user,
        account,
        acls,
        full_access,
        token,
        expires_at,
        allow_list,
    })
}

/// The expiry and the allow-list of `user`'s token `name`: what the tokens it creates are
/// held to.
fn token_limits(
    backend: &dyn Backend,
    user: &UserName,
    name: &str,
) -> Result<(Option<i64>, Option<Vec<String>>), Denied> {
    let tokens = backend.tokens(user).map_err(|e| Denied::failed(user, &e))?;
    let entry = tokens.iter().find(|(_, entry)| entry.name == name);
    Ok(entry.map_or((None, None), |(_, entry)| {
        (
            entry.expires_at.filter(|at| *at != 0),
            entry.whitelist_ips.clone(),
        )
    }))
}

//! The hosting accounts, as cPanel records them: `etc/trueuserowners` (`user: owner` lines)
//! and `etc/trueuserdomains` (`domain: user` lines), read for
//! [`Backend::accounts`](whmtoken_core::Backend::accounts). A missing file lists nothing;
//! a line without `: ` is skipped.

use std::collections::HashMap;

use whmtoken_core::{Account, BackendError};

use crate::{FilesBackend, read_root_file};

/// `user: owner`, one account a line.
pub(crate) const OWNERS: &str = "etc/trueuserowners";
/// `domain: user`, one account's main domain a line.
pub(crate) const DOMAINS: &str = "etc/trueuserdomains";

/// Every account of `etc/trueuserowners`, sorted by name, with its domain.
pub(crate) fn read(backend: &FilesBackend) -> Result<Vec<Account>, BackendError> {
    let text = |file| read_root_file(&backend.root.join(file), backend.token_owner);
    let domains: HashMap<String, String> = pairs(&text(DOMAINS)?)
        .map(|(domain, user)| (user.to_owned(), domain.to_owned()))
        .collect();
    let mut accounts: Vec<Account> = pairs(&text(OWNERS)?)
        .map(|(user, owner)| Account {
            user: user.to_owned(),
            domain: domains.get(user).cloned(),
            owner: owner.to_owned(),
        })
        .collect();
    accounts.sort_by(|a, b| a.user.cmp(&b.user));
    accounts.dedup_by(|a, b| a.user == b.user);
    Ok(accounts)
}

fn pairs(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.lines()
        .filter_map(|line| line.split_once(": "))
        .map(|(a, b)| (a.trim(), b.trim()))
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
}

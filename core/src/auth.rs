//! What cPanel's server decides for `Authorization: whm USER:SECRET`: the rules `whmtoken
//! verify` and the fake WHM endpoint share.
//!
//! The decision, in cPanel's order (reference 1.4, 2.3): the account must exist and be root
//! or a reseller; the token is found by the SHA-512 of the secret with its whitespace
//! removed; a token whose `expires_at` is set and earlier than the time of the request counts
//! as absent (`expires_at < now`: a token expiring this very second still works); a token
//! with an allow-list admits only addresses inside one of its entries (an empty list admits
//! none, IPv4 entries never admit IPv6 addresses); failing a token, a secret equal to the
//! account's current access hash is accepted only while `allow_deprecated_accesshash` is on.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::acl::Privileges;
use crate::backend::{BackendError, Reads, ServerSettings};
use crate::secret::AccessHash;
use crate::token::TokenEntry;
use crate::user::UserName;

/// One authentication attempt.
#[derive(Debug)]
pub struct Attempt<'a> {
    pub user: &'a UserName,
    /// The secret as sent; whitespace in it is ignored, as clients send the access hash
    /// without its line breaks.
    pub secret: &'a AccessHash,
    /// The client's address; `None` when unknown.
    pub from: Option<IpAddr>,
    /// When the request is made, in epoch seconds.
    pub at: i64,
}

/// What the server would answer. An accepted request carries what the account holds, as
/// read for the decision, so that the caller need not read its role again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted by the API token `name`, with `access`.
    Token {
        name: String,
        access: Access,
        /// What the account holds (root: everything).
        account: Privileges,
    },
    /// Accepted as the account's legacy access hash.
    AccessHash {
        /// What the account holds (root: everything).
        account: Privileges,
    },
    /// The token `name` has an allow-list and no address was given: the answer depends on
    /// where the request comes from.
    DependsOnAddress {
        name: String,
    },
    Refused(Refusal),
}

/// The privileges a request accepted by a token gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// Everything the account holds.
    Full,
    /// Only these ACLs: the token's ACLs that the account holds, in the token's order.
    Acls(Vec<String>),
}

/// Why a request is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no account called {0}")]
    NoAccount(UserName),
    #[error("{0} is neither root nor a reseller")]
    NotReseller(UserName),
    #[error("no secret given")]
    EmptySecret,
    #[error("token “{name}” expired at {expires_at}")]
    Expired { name: String, expires_at: i64 },
    #[error("token “{name}” has an empty allow-list, which admits no address")]
    EmptyAllowList { name: String },
    #[error("{address} is not in the allow-list of token “{name}”")]
    AddressNotAllowed { name: String, address: IpAddr },
    #[error(
        "the allow-list of token “{name}” holds “{}”, which is not an address or a range without host bits (cPanel fails such a request)",
        .entry.escape_debug()
    )]
    BadAllowListEntry { name: String, entry: String },
    #[error(
        "the secret is the access hash of {0}, but access-hash authentication is off (allow_deprecated_accesshash=0)"
    )]
    AccessHashDisabled(UserName),
    #[error("no token of {0} matches this secret, and it is not the account's access hash")]
    UnknownSecret(UserName),
}

/// Decides `attempt` as cPanel's server would, reading through `reads`.
pub fn verify(
    reads: &dyn Reads,
    settings: ServerSettings,
    attempt: &Attempt<'_>,
) -> Result<Verdict, BackendError> {
    let user = attempt.user;
    if !reads.has_account(user)? {
        return Ok(Verdict::Refused(Refusal::NoAccount(user.clone())));
    }
    let Some(privileges) = reads.role(user)?.privileges() else {
        return Ok(Verdict::Refused(Refusal::NotReseller(user.clone())));
    };
    let Some(key) = attempt.secret.token_hash() else {
        return Ok(Verdict::Refused(Refusal::EmptySecret));
    };
    let mut expired = None;
    if let Some(entry) = reads.token(user, &key)? {
        match entry.expires_at {
            Some(expires_at) if expires_at < attempt.at => {
                expired = Some(Refusal::Expired {
                    name: entry.name,
                    expires_at,
                });
            }
            _ => {
                return Ok(match admits(&entry, attempt.from) {
                    Err(refusal) => Verdict::Refused(refusal),
                    Ok(false) => Verdict::DependsOnAddress { name: entry.name },
                    Ok(true) => {
                        let access = if entry.has_full_access() {
                            Access::Full
                        } else {
                            let acls = entry.acls.iter().flatten();
                            Access::Acls(acls.filter(|a| privileges.holds(a)).cloned().collect())
                        };
                        Verdict::Token {
                            name: entry.name,
                            access,
                            account: privileges,
                        }
                    }
                });
            }
        }
    }
    // An access hash that cannot be read safely (a link, a FIFO, ...) authenticates no one.
    let is_access_hash = reads
        .read_access_hash(user)
        .ok()
        .flatten()
        .and_then(|current| current.token_hash())
        .is_some_and(|current| current == key);
    Ok(match (is_access_hash, expired) {
        (true, _) if settings.allow_deprecated_accesshash => Verdict::AccessHash {
            account: privileges,
        },
        (true, _) => Verdict::Refused(Refusal::AccessHashDisabled(user.clone())),
        (false, Some(expired)) => Verdict::Refused(expired),
        (false, None) => Verdict::Refused(Refusal::UnknownSecret(user.clone())),
    })
}

/// Whether `entry`'s allow-list admits `from`: `Ok(false)` when it has one and no address
/// was given.
fn admits(entry: &TokenEntry, from: Option<IpAddr>) -> Result<bool, Refusal> {
    let Some(list) = &entry.whitelist_ips else {
        return Ok(true);
    };
    if list.is_empty() {
        return Err(Refusal::EmptyAllowList {
            name: entry.name.clone(),
        });
    }
    let mut nets = Vec::with_capacity(list.len());
    for text in list {
        let net = allow_list_entry(text).ok_or_else(|| Refusal::BadAllowListEntry {
            name: entry.name.clone(),
            entry: text.clone(),
        })?;
        nets.push(net);
    }
    let Some(address) = from else {
        return Ok(false);
    };
    if nets.iter().any(|net| net.contains(&address)) {
        Ok(true)
    } else {
        Err(Refusal::AddressNotAllowed {
            name: entry.name.clone(),
            address,
        })
    }
}

/// An allow-list entry: an address or a range whose host bits are clear.
pub(crate) fn allow_list_entry(text: &str) -> Option<IpNet> {
    let net = match text.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => IpNet::from(text.parse::<IpAddr>().ok()?),
    };
    (net.network() == net.addr()).then_some(net)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::WhmRole;
    use crate::secret::TokenHash;
    use crate::token::TokenSet;

    /// One reseller, `bob`, holding `list-accts`, with one token and an access hash.
    struct Server {
        token: TokenEntry,
        token_secret: &'static str,
        access_hash: &'static str,
    }

    impl Reads for Server {
        fn role(&self, user: &UserName) -> Result<WhmRole, BackendError> {
            Ok(match user.as_str() {
                "root" => WhmRole::Root,
                "bob" => WhmRole::Reseller(Privileges::from_list(["list-accts"])),
                _ => WhmRole::NotReseller,
            })
        }

        fn read_access_hash(&self, _: &UserName) -> Result<Option<AccessHash>, BackendError> {
            Ok(Some(AccessHash::from_bytes(self.access_hash.into())))
        }

        fn tokens(&self, _: &UserName) -> Result<TokenSet, BackendError> {
            let key = TokenHash::of_secret(self.token_secret.as_bytes());
            Ok(TokenSet::new(vec![(key, self.token.clone())]))
        }

        fn has_account(&self, user: &UserName) -> Result<bool, BackendError> {
            Ok(["root", "bob", "plain"].contains(&user.as_str()))
        }
    }

    fn server(token: TokenEntry) -> Server {
        Server {
            token,
            token_secret: "tokensecret",
            access_hash: "abcd\nef01\n",
        }
    }

    fn entry() -> TokenEntry {
        TokenEntry {
            name: "billing".into(),
            ..TokenEntry::default()
        }
    }

    fn decide(
        server: &Server,
        user: &str,
        secret: &str,
        from: Option<&str>,
        allow: bool,
    ) -> Verdict {
        let user = UserName::new(user).unwrap();
        let secret = AccessHash::from_bytes(secret.into());
        let attempt = Attempt {
            user: &user,
            secret: &secret,
            from: from.map(|a| a.parse().unwrap()),
            at: 1_000,
        };
        let settings = ServerSettings {
            allow_deprecated_accesshash: allow,
        };
        verify(server, settings, &attempt).unwrap()
    }

    #[test]
    fn a_token_is_found_by_the_sha512_of_the_secret_without_whitespace() {
        let s = server(entry());
        let want = Verdict::Token {
            name: "billing".into(),
            access: Access::Full,
            account: Privileges::from_list(["list-accts"]),
        };
        assert_eq!(decide(&s, "bob", "token\nsecret\n", None, false), want);
    }

    #[test]
    fn effective_acls_are_those_the_account_holds() {
        let acls = Some(vec!["create-acct".into(), "list-accts".into()]);
        let s = server(TokenEntry { acls, ..entry() });
        assert_eq!(
            decide(&s, "bob", "tokensecret", None, false),
            Verdict::Token {
                name: "billing".into(),
                access: Access::Acls(vec!["list-accts".into()]),
                account: Privileges::from_list(["list-accts"]),
            }
        );
    }

    #[test]
    fn expiry_is_strictly_before_the_request() {
        for (expires_at, accepted) in [(999, false), (1_000, true), (1_001, true)] {
            let s = server(TokenEntry {
                expires_at: Some(expires_at),
                ..entry()
            });
            let verdict = decide(&s, "bob", "tokensecret", None, false);
            assert_eq!(
                matches!(verdict, Verdict::Token { .. }),
                accepted,
                "{expires_at}: {verdict:?}"
            );
        }
    }

    #[test]
    fn allow_lists_admit_inside_refuse_outside_and_depend_without_an_address() {
        let list = Some(vec![
            "10.0.0.0/8".into(),
            "2001:0db8:0000:0000:0000:0000:0000:0001".into(),
        ]);
        let s = server(TokenEntry {
            whitelist_ips: list,
            ..entry()
        });
        let check = |from| decide(&s, "bob", "tokensecret", from, false);
        assert!(matches!(check(Some("10.1.2.3")), Verdict::Token { .. }));
        assert!(matches!(check(Some("2001:DB8::1")), Verdict::Token { .. }));
        assert!(matches!(
            check(Some("::ffff:10.1.2.3")),
            Verdict::Refused(Refusal::AddressNotAllowed { .. })
        ));
        assert!(matches!(
            check(Some("192.0.2.1")),
            Verdict::Refused(Refusal::AddressNotAllowed { .. })
        ));
        assert_eq!(
            check(None),
            Verdict::DependsOnAddress {
                name: "billing".into()
            }
        );
        let empty = server(TokenEntry {
            whitelist_ips: Some(Vec::new()),
            ..entry()
        });
        assert!(matches!(
            decide(&empty, "bob", "tokensecret", Some("10.0.0.1"), false),
            Verdict::Refused(Refusal::EmptyAllowList { .. })
        ));
    }

    #[test]
    fn the_access_hash_counts_only_while_the_setting_is_on() {
        let s = server(entry());
        assert_eq!(
            decide(&s, "bob", "abcdef01", None, true),
            Verdict::AccessHash {
                account: Privileges::from_list(["list-accts"])
            }
        );
        assert_eq!(
            decide(&s, "root", "abcdef01", None, true),
            Verdict::AccessHash {
                account: Privileges::All
            }
        );
        assert!(matches!(
            decide(&s, "bob", "abcdef01", None, false),
            Verdict::Refused(Refusal::AccessHashDisabled(_))
        ));
        assert!(matches!(
            decide(&s, "bob", "wrong", None, true),
            Verdict::Refused(Refusal::UnknownSecret(_))
        ));
    }

    #[test]
    fn accounts_must_exist_and_be_root_or_resellers() {
        let s = server(entry());
        assert!(matches!(
            decide(&s, "ghost", "tokensecret", None, true),
            Verdict::Refused(Refusal::NoAccount(_))
        ));
        assert!(matches!(
            decide(&s, "plain", "tokensecret", None, true),
            Verdict::Refused(Refusal::NotReseller(_))
        ));
        assert!(matches!(
            decide(&s, "bob", " \n", None, true),
            Verdict::Refused(Refusal::EmptySecret)
        ));
    }
}

//! What importing one converted key into a user's token set means, as a pure decision
//! that a backend evaluates under its own lock.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::restrictions::Restrictions;
use crate::secret::TokenHash;
use crate::token::{TokenEntry, TokenSet};

/// cPanel's script tries the plain name and then up to 24 suffixed ones.
pub const NAME_ATTEMPTS: usize = 25;
const SUFFIX_LEN: usize = 8;
const SUFFIX_ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Everything needed to import one key, fixed before any lock is taken.
#[derive(Clone, Debug)]
pub struct ImportRequest {
    pub hash: TokenHash,
    /// `accesshash-<epoch>`: the first name tried.
    pub base_name: String,
    /// Seeds the suffixes of the fallback names, which are made only when needed.
    suffix_seed: u64,
    pub create_time: i64,
    pub restrictions: Restrictions,
    /// Replace an entry that already holds the key (cPanel's behaviour) instead of keeping it.
    pub replace: bool,
    /// How many names are tried: [`NAME_ATTEMPTS`], or 1 for a name given by the caller.
    attempts: usize,
}

/// What a backend must do with the user's token set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The key is already there and is kept exactly as it is.
    AlreadyPresent { name: String },
    /// Store `entry` under the key; `replaces` says whether an entry with the key goes.
    Write { entry: TokenEntry, replaces: bool },
}

impl Decision {
    /// The token name the user ends up with.
    pub fn token_name(&self) -> &str {
        match self {
            Self::AlreadyPresent { name } => name,
            Self::Write { entry, .. } => &entry.name,
        }
    }
}

/// Why a key cannot be imported.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error(
        "Cannot import accesshash: A conflicting API token with the name “{last}” already exists \
         ({tried} names tried)"
    )]
    NamesExhausted { last: String, tried: usize },
}

impl ImportRequest {
    /// `suffix_seed` picks the fallback names' suffixes: give each request a random one.
    pub fn new(
        hash: TokenHash,
        now: i64,
        restrictions: Restrictions,
        replace: bool,
        suffix_seed: u64,
    ) -> Self {
        Self {
            hash,
            base_name: format!("accesshash-{now}"),
            suffix_seed,
            create_time: now,
            restrictions,
            replace,
            attempts: NAME_ATTEMPTS,
        }
    }

    /// A new token stored under `name` and no other, as WHM's `api_token_create` stores one:
    /// a name already taken by another key is [`ImportError::NamesExhausted`] naming it.
    pub fn named(hash: TokenHash, name: &str, now: i64, restrictions: Restrictions) -> Self {
        Self {
            base_name: name.to_owned(),
            attempts: 1,
            ..Self::new(hash, now, restrictions, false, 0)
        }
    }

    /// The names tried in order: `accesshash-<epoch>`, then the same with `-` and 8
    /// characters of `[0-9A-Z]`, [`NAME_ATTEMPTS`] in all. The same request always gives
    /// the same names.
    pub fn candidate_names(&self) -> impl Iterator<Item = String> + '_ {
        let mut rng = StdRng::seed_from_u64(self.suffix_seed);
        let suffixed = (1..self.attempts).map(move |_| {
            let suffix: String = (0..SUFFIX_LEN)
                .map(|_| char::from(SUFFIX_ALPHABET[rng.random_range(0..SUFFIX_ALPHABET.len())]))
                .collect();
            format!("{}-{suffix}", self.base_name)
        });
        std::iter::once(self.base_name.clone()).chain(suffixed)
    }

    /// Decides against the user's current tokens. Backends call this while holding their
    /// lock, so that the check and the write are one step.
    pub fn decide(&self, existing: &TokenSet) -> Result<Decision, ImportError> {
        let replaces = match existing.get(&self.hash) {
            Some(entry) if !self.replace => {
                return Ok(Decision::AlreadyPresent {
                    name: entry.name.clone(),
                });
            }
            Some(_) => true,
            None => false,
        };
        let mut last = String::new();
        let name = self
            .candidate_names()
            .find(|name| {
                let free = !existing.name_taken(name, Some(&self.hash));
                if !free {
                    last.clone_from(name);
                }
                free
            })
            .ok_or(ImportError::NamesExhausted {
                last,
                tried: self.attempts,
            })?;
        let entry = TokenEntry {
            name: name.clone(),
            create_time: Some(self.create_time),
            expires_at: self.restrictions.expires_at,
            whitelist_ips: self.restrictions.whitelist_ips.clone(),
            acls: self.restrictions.acls.clone(),
            extra: Default::default(),
        };
        Ok(Decision::Write { entry, replaces })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(replace: bool) -> ImportRequest {
        ImportRequest::new(
            TokenHash::of_secret(b"k"),
            1000,
            Restrictions::default(),
            replace,
            7,
        )
    }

    fn set(entries: &[(&[u8], &str)]) -> TokenSet {
        TokenSet::new(
            entries
                .iter()
                .map(|(secret, name)| {
                    let entry = TokenEntry {
                        name: (*name).into(),
                        ..Default::default()
                    };
                    (TokenHash::of_secret(secret), entry)
                })
                .collect(),
        )
    }

    #[test]
    fn candidate_names_follow_cpanels_pattern() {
        let r = request(false);
        let names: Vec<String> = r.candidate_names().collect();
        assert_eq!(
            names,
            r.candidate_names().collect::<Vec<_>>(),
            "the same every time"
        );
        assert_eq!(names.len(), NAME_ATTEMPTS);
        assert_eq!(names[0], "accesshash-1000");
        for n in &names[1..] {
            let suffix = n.strip_prefix("accesshash-1000-").unwrap();
            assert_eq!(suffix.len(), 8);
            assert!(
                suffix
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
            );
        }
    }

    #[test]
    fn new_key_takes_the_first_free_name() {
        let d = request(false)
            .decide(&set(&[(b"other", "accesshash-1000")]))
            .unwrap();
        let Decision::Write { entry, replaces } = d else {
            panic!("{d:?}")
        };
        assert!(!replaces);
        assert!(entry.name.starts_with("accesshash-1000-"));
        assert_eq!(entry.create_time, Some(1000));
        assert!(entry.has_full_access());
    }

    #[test]
    fn existing_key_is_kept_unless_replacing() {
        let existing = set(&[(b"k", "billing")]);
        assert_eq!(
            request(false).decide(&existing).unwrap(),
            Decision::AlreadyPresent {
                name: "billing".into()
            }
        );
        let d = request(true).decide(&existing).unwrap();
        assert!(
            matches!(d, Decision::Write { replaces: true, ref entry } if entry.name == "accesshash-1000")
        );
    }

    #[test]
    fn a_named_request_tries_its_name_only() {
        let named = ImportRequest::named(
            TokenHash::of_secret(b"k"),
            "billing",
            1000,
            Restrictions::default(),
        );
        assert_eq!(named.candidate_names().collect::<Vec<_>>(), ["billing"]);
        let Decision::Write { entry, .. } = named.decide(&set(&[])).unwrap() else {
            panic!("a new key is written")
        };
        assert_eq!(entry.name, "billing");
        assert_eq!(
            named.decide(&set(&[(b"other", "billing")])).unwrap_err(),
            ImportError::NamesExhausted {
                last: "billing".into(),
                tried: 1
            }
        );
    }

    #[test]
    fn every_name_taken_is_an_error() {
        let r = request(false);
        let names: Vec<(Vec<u8>, String)> = r
            .candidate_names()
            .enumerate()
            .map(|(i, n)| (vec![i as u8], n.clone()))
            .collect();
        let taken = TokenSet::new(
            names
                .iter()
                .map(|(s, n)| {
                    (
                        TokenHash::of_secret(s),
                        TokenEntry {
                            name: n.clone(),
                            ..Default::default()
                        },
                    )
                })
                .collect(),
        );
        let err = r.decide(&taken).unwrap_err().to_string();
        assert!(
            err.starts_with("Cannot import accesshash: A conflicting API token"),
            "{err}"
        );
    }
}

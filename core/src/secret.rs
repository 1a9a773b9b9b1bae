//! The access hash (a secret) and its SHA-512 digest (the token database key).
//!
//! An [`AccessHash`] never prints, never serializes and is wiped from memory when dropped.
//! Only a [`TokenHash`] leaves this module, and only its first 12 hex characters are ever
//! shown to a person.

use std::fmt;

use secrecy::{ExposeSecret, SecretSlice};
use sha2::{Digest, Sha512};
use zeroize::Zeroize;

/// Number of hex characters of a SHA-512 that may be shown in output and logs.
pub const SHOWN_PREFIX_LEN: usize = 12;

/// The raw contents of a `.accesshash` file, whitespace and all.
pub struct AccessHash(SecretSlice<u8>);

impl AccessHash {
    /// The largest access hash any backend accepts, in bytes (real ones are 990): a larger
    /// one is refused as unsafe rather than read.
    pub const MAX_LEN: usize = 64 * 1024;

    /// Takes ownership of the raw file contents. The bytes are moved into an exactly sized
    /// buffer and `raw`, spare capacity included, is wiped.
    pub fn from_bytes(mut raw: Vec<u8>) -> Self {
        let exact: Box<[u8]> = raw.as_slice().into();
        raw.zeroize();
        Self(SecretSlice::new(exact))
    }

    /// Copies `raw`, a buffer the caller does not own (a database's row), into the secret:
    /// the only copy this makes.
    pub fn copy_of(raw: &[u8]) -> Self {
        Self(SecretSlice::new(raw.into()))
    }

    /// The token key: the lowercase SHA-512 hex of the contents with every whitespace byte
    /// removed (Perl's `s/\s//g`: space, tab, LF, VT, FF, CR).
    ///
    /// Returns `None` when nothing is left after stripping, which cPanel reports as
    /// "There was a problem loading the accesshash."
    pub fn token_hash(&self) -> Option<TokenHash> {
        // Hashed run by run, so that no stripped copy of the secret is ever made.
        let mut hasher = Sha512::new();
        let mut empty = true;
        for run in self
            .0
            .expose_secret()
            .split(|b| is_perl_space(*b))
            .filter(|r| !r.is_empty())
        {
            hasher.update(run);
            empty = false;
        }
        (!empty).then(|| TokenHash(format!("{:x}", hasher.finalize())))
    }
}

fn is_perl_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

impl fmt::Debug for AccessHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessHash([redacted])")
    }
}

/// A token database key: 128 lowercase hex characters, the SHA-512 of a secret.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenHash(String);

/// A string that is not 128 lowercase hex characters. Nothing of it is shown: a malformed
/// key may be a pasted secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a key of {len} characters is not a token hash (128 lowercase hex characters)")]
pub struct InvalidTokenHash {
    len: usize,
}

impl TokenHash {
    /// SHA-512 of `secret`, as lowercase hex.
    pub fn of_secret(secret: &[u8]) -> Self {
        Self(format!("{:x}", Sha512::digest(secret)))
    }

    /// Validates a key read from a token database.
    pub fn parse(s: &str) -> Result<Self, InvalidTokenHash> {
        Self::check(s)?;
        Ok(Self(s.to_owned()))
    }

    /// [`parse`](Self::parse), keeping `s` rather than copying it.
    pub fn parse_owned(s: String) -> Result<Self, InvalidTokenHash> {
        Self::check(&s)?;
        Ok(Self(s))
    }

    fn check(s: &str) -> Result<(), InvalidTokenHash> {
        if s.len() == 128 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(())
        } else {
            Err(InvalidTokenHash {
                len: s.chars().count(),
            })
        }
    }

    /// The full key, for storage only.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex characters: all that output and logs may show.
    pub fn prefix(&self) -> &str {
        &self.0[..SHOWN_PREFIX_LEN]
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", self.prefix())
    }
}

impl fmt::Display for TokenHash {
    /// Shows the prefix only; use [`TokenHash::as_str`] to store the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", self.prefix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha512_vector_abc() {
        assert_eq!(
            TokenHash::of_secret(b"abc").as_str(),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
    }

    #[test]
    fn thirty_line_access_hash_vector() {
        let raw = "00112233445566778899aabbccddeeff\n".repeat(30);
        assert_eq!(raw.len(), 990);
        let hash = AccessHash::from_bytes(raw.into_bytes())
            .token_hash()
            .unwrap();
        assert_eq!(
            hash.as_str(),
            "a5b08ca0a9a61916e2f902c8f7729b45dbbbfbd7b3b27910ba927d655851703f\
             c3db3bec6fb3afb48861572b96f7ac92344879b5441166b74e23c9ba354ef7ce"
        );
    }

    #[test]
    fn all_perl_whitespace_is_stripped() {
        let spaced = AccessHash::from_bytes(b" a\tb\r\nc\x0b\x0c".to_vec());
        assert_eq!(spaced.token_hash(), Some(TokenHash::of_secret(b"abc")));
        assert_eq!(
            AccessHash::from_bytes(b" \n\r\t".to_vec()).token_hash(),
            None
        );
    }

    #[test]
    fn debug_and_display_hide_secrets() {
        let secret = AccessHash::from_bytes(b"supersecretvalue".to_vec());
        assert_eq!(format!("{secret:?}"), "AccessHash([redacted])");
        let hash = TokenHash::of_secret(b"abc");
        assert_eq!(hash.to_string(), "ddaf35a19361…");
        assert!(!format!("{hash:?}").contains("7abacc"));
    }

    #[test]
    fn parse_checks_shape_and_hides_bad_keys() {
        assert!(TokenHash::parse(TokenHash::of_secret(b"x").as_str()).is_ok());
        assert!(TokenHash::parse(&"A".repeat(128)).is_err());
        let err = TokenHash::parse(&"secret0123456789".repeat(4))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "a key of 64 characters is not a token hash (128 lowercase hex characters)"
        );
    }
}

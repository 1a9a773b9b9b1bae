//! The credentials a server uses to reach its DNS cluster peers:
//! `var/cpanel/cluster/<user>/config/<peer>`, in either of cPanel's styles:
//!
//! - old: the remote user, the host and the secret, on three lines (the secret, an access
//!   hash, possibly over more lines);
//! - new: a `#version …` line, then `key=value` lines, `user`, `host` and `pass` among
//!   them (an access hash in `pass` may go on over the following lines).
//!
//! A `pass` that is an access hash (long hex) breaks when the peer turns access-hash
//! authentication off; a 32-character API token does not. The secret is only looked at
//! here, in place: never copied, printed or kept.

use std::fmt;

use zeroize::Zeroizing;

/// One peer's config file, as a backend read it (with the secret in it).
pub struct ClusterFile {
    /// The local account whose cluster it is (`var/cpanel/cluster/<user>`).
    pub user: String,
    /// The peer, as the file is named.
    pub peer: String,
    /// Where it is, for messages.
    pub location: String,
    content: Zeroizing<Vec<u8>>,
}

impl ClusterFile {
    pub fn new(user: String, peer: String, location: String, content: Vec<u8>) -> Self {
        Self {
            user,
            peer,
            location,
            content: Zeroizing::new(content),
        }
    }
}

impl fmt::Debug for ClusterFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterFile")
            .field("user", &self.user)
            .field("peer", &self.peer)
            .field("location", &self.location)
            .field("content", &"[redacted]")
            .finish()
    }
}

/// What kind of secret a peer is reached with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    /// Long hex: an access hash.
    AccessHash,
    /// 32 characters of `[0-9A-Z]`: an API token.
    Token,
    /// No secret at all.
    Missing,
    /// Something else.
    Unknown,
}

/// A peer link, without its secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterLink {
    pub user: String,
    pub peer: String,
    pub location: String,
    /// The user on the peer, and its host, as the file names them.
    pub remote_user: Option<String>,
    pub host: Option<String>,
    pub credential: Credential,
}

/// Reads a peer's config file.
pub fn parse(file: &ClusterFile) -> ClusterLink {
    let text: &[u8] = &file.content;
    let mut lines = text
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    // A user or host as the file names it: never what could be a secret on the wrong
    // line (long hex, or a token's shape).
    let shown = |value: &[u8]| {
        let value = value.trim_ascii();
        let mut secret = Secret::default();
        secret.add(value);
        let plain = !value.is_empty()
            && value.len() <= 255
            && value
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
            && matches!(secret.kind(), Credential::Unknown)
            && !(value.len() >= 32 && secret.hex);
        plain.then(|| String::from_utf8_lossy(value).into_owned())
    };
    let first = text.trim_ascii_start();
    let (remote_user, host, credential) = if first.starts_with(b"#version") {
        let mut user = None;
        let mut host = None;
        let mut secret = Secret::default();
        let mut in_pass = false;
        for line in lines {
            match line.iter().position(|b| *b == b'=') {
                Some(eq) if !line.starts_with(b"#") => {
                    let (key, value) = (line[..eq].trim_ascii(), &line[eq + 1..]);
                    in_pass = key == b"pass";
                    match key {
                        b"user" => user = shown(value),
                        b"host" => host = shown(value),
                        b"pass" => secret.add(value),
                        _ => {}
                    }
                }
                None if in_pass && is_hex(line.trim_ascii()) => secret.add(line),
                _ => in_pass = false,
            }
        }
        (user, host, secret.kind())
    } else {
        let user = lines.next().and_then(shown);
        let host = lines.next().and_then(shown);
        let mut secret = Secret::default();
        for line in lines {
            secret.add(line);
        }
        (user, host, secret.kind())
    };
    ClusterLink {
        user: file.user.clone(),
        peer: file.peer.clone(),
        location: file.location.clone(),
        remote_user,
        host,
        credential,
    }
}

fn is_hex(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(u8::is_ascii_hexdigit)
}

/// What is known of a secret seen piece by piece, whitespace left out: never its bytes.
#[derive(Debug, Default)]
struct Secret {
    len: usize,
    hex: bool,
    token_alphabet: bool,
    seen: bool,
}

impl Secret {
    fn add(&mut self, piece: &[u8]) {
        if !self.seen {
            self.seen = true;
            self.hex = true;
            self.token_alphabet = true;
        }
        for b in piece.iter().filter(|b| !b.is_ascii_whitespace()) {
            self.len += 1;
            self.hex &= b.is_ascii_hexdigit();
            self.token_alphabet &= b.is_ascii_digit() || b.is_ascii_uppercase();
        }
    }

    fn kind(&self) -> Credential {
        match self.len {
            0 => Credential::Missing,
            32 if self.token_alphabet => Credential::Token,
            64.. if self.hex => Credential::AccessHash,
            _ => Credential::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "0123456789abcdef0123456789abcdef\nfedcba9876543210fedcba9876543210\n";

    fn link(content: &str) -> ClusterLink {
        parse(&ClusterFile::new(
            "root".into(),
            "dns2.example.com".into(),
            "/var/cpanel/cluster/root/config/dns2.example.com".into(),
            content.as_bytes().to_vec(),
        ))
    }

    #[test]
    fn the_old_style_holds_user_host_and_secret_on_lines() {
        let old = link(&format!("root\ndns2.example.com\n{HASH}"));
        assert_eq!(old.remote_user.as_deref(), Some("root"));
        assert_eq!(old.host.as_deref(), Some("dns2.example.com"));
        assert_eq!(old.credential, Credential::AccessHash);
        let token = link("root\ndns2.example.com\nJPQNSRU0DH448UJLGXH7KVJECC5QN9N9\n");
        assert_eq!(token.credential, Credential::Token);
    }

    #[test]
    fn the_new_style_holds_keys_and_a_pass_that_may_go_on_over_lines() {
        let new = link(&format!(
            "#version 2.0\nuser=root\nhost=198.51.100.2\npass={HASH}module=cPanel\ndebug=0\n"
        ));
        assert_eq!(new.remote_user.as_deref(), Some("root"));
        assert_eq!(new.host.as_deref(), Some("198.51.100.2"));
        assert_eq!(new.credential, Credential::AccessHash);
        let token = link(
            "#version 2.0\nuser=root\nhost=198.51.100.2\npass=JPQNSRU0DH448UJLGXH7KVJECC5QN9N9\nmodule=cPanel\n",
        );
        assert_eq!(token.credential, Credential::Token);
        let empty = link("#version 2.0\nuser=root\nhost=h\npass=\n");
        assert_eq!(empty.credential, Credential::Missing);
        let short = link("#version 2.0\npass=abc123\n");
        assert_eq!(short.credential, Credential::Unknown);
    }

    #[test]
    fn the_secret_is_never_shown_not_even_on_the_wrong_line() {
        for content in [
            HASH.to_owned(),
            format!("\n{HASH}"),
            format!("#version 2.0\nuser={HASH}"),
        ] {
            let file = ClusterFile::new("root".into(), "p".into(), "l".into(), content.into());
            let shown = format!("{file:?} {:?}", parse(&file));
            assert!(!shown.contains("0123456789abcdef"), "{shown}");
        }
        let token = link("JPQNSRU0DH448UJLGXH7KVJECC5QN9N9\nhost\n");
        assert_eq!(token.remote_user, None);
    }
}

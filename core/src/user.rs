//! WHM user names, validated before any path or query is built from them.

use std::fmt;

/// The longest user name accepted. cPanel's own limit is far lower; this only bounds input.
const MAX_LEN: usize = 64;

/// A WHM user name (`root` or a reseller) that is safe to use in a path.
///
/// Accepted: 1 to 64 characters from `[A-Za-z0-9_.-]`, not starting with `.` or `-`.
/// That refuses `..`, `a/b`, `.`, the empty name, option-like names and NUL bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserName(String);

/// Why a string is not a usable user name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidUserName {
    #[error("invalid user name “{0}”: it is empty")]
    Empty(String),
    #[error("invalid user name “{0}”: it is longer than {MAX_LEN} characters")]
    TooLong(String),
    #[error("invalid user name “{0}”: it may not start with “{1}”")]
    BadStart(String, char),
    #[error("invalid user name “{shown}”: it contains {what}")]
    BadChar { shown: String, what: String },
}

impl UserName {
    /// Validates `name`.
    pub fn new(name: &str) -> Result<Self, InvalidUserName> {
        let shown = || name.escape_debug().to_string();
        if name.is_empty() {
            return Err(InvalidUserName::Empty(String::new()));
        }
        if name.len() > MAX_LEN {
            return Err(InvalidUserName::TooLong(shown()));
        }
        if let Some(bad) = name.chars().find(|c| !is_name_char(*c)) {
            let what = match bad {
                '\0' => "a NUL byte".to_owned(),
                '/' => "a “/”".to_owned(),
                c if c.is_control() => format!("the control character {}", c.escape_unicode()),
                c => format!("the character “{c}”"),
            };
            return Err(InvalidUserName::BadChar {
                shown: shown(),
                what,
            });
        }
        let first = name.chars().next().expect("checked non-empty");
        if first == '.' || first == '-' {
            return Err(InvalidUserName::BadStart(shown(), first));
        }
        Ok(Self(name.to_owned()))
    }

    /// The superuser, who holds every ACL.
    pub fn root() -> Self {
        Self("root".to_owned())
    }

    pub fn is_root(&self) -> bool {
        self.0 == "root"
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl std::str::FromStr for UserName {
    type Err = InvalidUserName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_cpanel_style_names() {
        for ok in ["root", "res00001", "bob", "a_b", "x.y", "u-1", "9lives"] {
            assert_eq!(UserName::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_names_that_could_escape_a_path() {
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "-rf",
            "a\0b",
            "a b",
            "a:b",
            &"x".repeat(65),
        ] {
            assert!(UserName::new(bad).is_err(), "{bad:?} was accepted");
        }
        let err = UserName::new("a\0b").unwrap_err().to_string();
        assert!(err.contains("NUL"), "{err}");
    }
}

//! What `whmtoken usage` finds: for each account, its access hash's and each token's uses
//! within a window, with the clients that made them, the log files read and how far back
//! they reach. Every field a client chose (address, user agent) is text here with its
//! invalid UTF-8 shown as `\xNN`; the command line escapes control characters as it
//! escapes names. Secrets, paths and query strings are never kept.

use super::names::LogKind;

/// The time span looked at: `from` to `to`, epoch seconds, both included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub from: i64,
    pub to: i64,
}

impl Window {
    pub fn contains(&self, time: i64) -> bool {
        (self.from..=self.to).contains(&time)
    }
}

/// An account to count, with the tokens it holds now: (name, creation time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Covered {
    pub user: String,
    pub tokens: Vec<(String, Option<i64>)>,
}

/// One log file read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRead {
    /// Where it is (a path).
    pub path: String,
    pub kind: LogKind,
    /// The earliest and latest time of its lines that parsed.
    pub first: Option<i64>,
    pub last: Option<i64>,
    pub lines: u64,
    /// Lines that did not parse (or had more than one reading, or were over 64 KiB).
    pub unparsed: u64,
    /// Why it could not be read to its end (the lines before still count).
    pub error: Option<String>,
}

/// How far back the logs reach: the earliest `access_log` line read (the log that sees
/// every request). `complete` when that is at or before the window's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Coverage {
    pub from: Option<i64>,
    pub complete: bool,
}

impl Coverage {
    /// Whether the logs saw everything since `since` (a window's start, or a token's
    /// creation when later).
    pub fn covers(&self, since: i64) -> bool {
        self.from.is_some_and(|from| from <= since)
    }
}

/// One client of a credential: an address and a user agent (`None` when only
/// `api_tokens_log` saw the request).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    pub ip: String,
    pub user_agent: Option<String>,
    /// Requests in the window, accepted or refused.
    pub count: u64,
    /// Of which refused.
    pub refused: u64,
    /// Its latest request.
    pub last: i64,
}

/// A use: when, and by which client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Use {
    pub time: i64,
    pub ip: String,
    pub user_agent: Option<String>,
}

/// How many clients of one credential are kept apart; further ones are only counted.
pub const CLIENTS_SHOWN: usize = 10;

/// The uses of one credential within the window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CredentialUsage {
    /// Requests accepted (status below 400).
    pub ok: u64,
    /// Requests refused (status 400 or more).
    pub refused: u64,
    /// The first and last accepted request.
    pub first: Option<i64>,
    pub last: Option<i64>,
    /// The last refused attempt.
    pub last_refused: Option<i64>,
    /// The last accepted request and its client.
    pub last_use: Option<Use>,
    /// The last refused attempt and its client.
    pub last_refusal: Option<Use>,
    /// The clients, the latest first, at most [`CLIENTS_SHOWN`].
    pub clients: Vec<Client>,
    /// Clients beyond those.
    pub more_clients: u64,
}

impl CredentialUsage {
    pub fn used(&self) -> bool {
        self.ok > 0
    }

    pub fn is_empty(&self) -> bool {
        self.ok == 0 && self.refused == 0
    }
}

/// A token's uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenUsage {
    pub name: String,
    /// The account holds a token of that name now (else it was seen in the logs only).
    pub stored: bool,
    /// Its creation time, when stored.
    pub created: Option<i64>,
    pub usage: CredentialUsage,
}

/// One account's uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountUsage {
    pub user: String,
    /// The access hash's uses: requests with the WHM header that no token accounts for.
    pub accesshash: CredentialUsage,
    /// Its tokens: those stored, then those seen in the logs only, by name.
    pub tokens: Vec<TokenUsage>,
}

/// The whole answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageReport {
    pub window: Window,
    /// The logs folder.
    pub folder: String,
    /// Every file read, oldest first, `access_log`'s then `api_tokens_log`'s.
    pub logs: Vec<LogRead>,
    pub coverage: Coverage,
    pub accounts: Vec<AccountUsage>,
}

impl UsageReport {
    pub fn account(&self, user: &str) -> Option<&AccountUsage> {
        self.accounts.iter().find(|a| a.user == user)
    }

    /// Whether the logs saw every request since `since` (or the window's start, if later).
    pub fn covers_since(&self, since: Option<i64>) -> bool {
        self.coverage
            .covers(since.map_or(self.window.from, |s| s.max(self.window.from)))
    }
}

/// `bytes` as text: valid UTF-8 as it is, every other byte as `\xNN`.
pub(crate) fn text_of(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn invalid_utf8_is_shown_as_escaped_bytes() {
        assert_eq!(super::text_of(b"caf\xc3\xa9 \xe9\xff!"), "café \\xe9\\xff!");
    }
}

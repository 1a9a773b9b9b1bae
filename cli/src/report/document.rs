//! The `whmtoken audit --json` document (version 1) as `whmtoken report` reads it: typed,
//! so that a document of another kind is refused by name, and compact, so that a fleet of a
//! million accounts fits in memory.

use serde::{Deserialize, Serialize};

/// One server's audit.
#[derive(Debug, Deserialize)]
pub struct Document {
    pub version: u32,
    pub host: String,
    pub backend: String,
    pub server: Server,
    pub accounts: Vec<Account>,
    /// Required, to tell an audit document from others, and not read.
    #[serde(rename = "summary")]
    _summary: serde::de::IgnoredAny,
    /// `null` when the audit read no logs.
    #[serde(default)]
    pub usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
pub struct Server {
    pub allow_deprecated_accesshash: bool,
    pub findings: Vec<Finding>,
}

#[derive(Debug, Deserialize)]
pub struct Usage {
    pub window: Window,
    pub coverage: Coverage,
}

#[derive(Debug, Deserialize)]
pub struct Window {
    pub from: i64,
}

#[derive(Debug, Deserialize)]
pub struct Coverage {
    pub complete: bool,
}

#[derive(Debug, Deserialize)]
pub struct Account {
    pub user: String,
    pub accesshash: String,
    /// The access hash's last use, when the audit read the logs.
    #[serde(default)]
    pub accesshash_last_used: Option<Use>,
    pub tokens: Vec<Token>,
    pub findings: Vec<Finding>,
}

impl Account {
    /// The account's step in the migration: `retired` (no access hash, and a token the
    /// converter made, named `accesshash-…` as it names them, is kept), else the audit's
    /// own state (`converted`, `not_converted`, `none`, `unreadable`, `unknown`).
    pub fn progress(&self) -> &str {
        let converted = |t: &Token| t.from_accesshash || t.name.starts_with("accesshash-");
        if self.accesshash == "none" && self.tokens.iter().any(converted) {
            "retired"
        } else {
            &self.accesshash
        }
    }
}

/// A token, written back as the audit wrote it (`--format jsonl`).
#[derive(Debug, Deserialize, Serialize)]
pub struct Token {
    pub name: String,
    pub hash_prefix: String,
    pub create_time: Option<i64>,
    pub expires_at: Option<i64>,
    pub expired: bool,
    pub full_access: bool,
    pub acls: Option<Vec<String>>,
    pub allow_ips: Option<Vec<String>>,
    pub from_accesshash: bool,
    /// The last use, when the audit read the logs; `null` otherwise.
    #[serde(default)]
    pub last_used: Option<Use>,
}

/// A use: when, from which address, with which user agent.
#[derive(Debug, Deserialize, Serialize)]
pub struct Use {
    pub time: i64,
    pub ip: String,
    pub user_agent: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Finding {
    pub severity: Severity,
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub token: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Warning,
    Info,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Self::Critical, Self::Warning, Self::Info];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::Warning => "warning",
            Self::Info => "info",
        }
    }
}

/// The audit documents in `bytes`, one or more one after the other (`cat *.json`): each
/// parsed document, or why the bytes are not audit documents.
pub fn parse_all(bytes: &[u8]) -> Result<Vec<Document>, String> {
    let mut documents = Vec::new();
    for document in serde_json::Deserializer::from_slice(bytes).into_iter::<Document>() {
        let document = document.map_err(|e| e.to_string())?;
        if document.version != 1 {
            return Err(format!(
                "audit document version {}; this whmtoken reads version 1",
                document.version
            ));
        }
        documents.push(document);
    }
    if documents.is_empty() {
        return Err("empty".to_owned());
    }
    Ok(documents)
}

//! How a backend is named and opened from the config file ([`BackendConfig`]), and how
//! tests, `fake-server` and the benchmarks build and inspect whole servers of it
//! ([`Harness`]).
//!
//! A backend crate implements [`BackendConfig`] on the type of its `[backend]` section, and
//! [`Harness`] on the same type behind its `harness` cargo feature, so that the converter
//! itself is built without any seeding or dumping code. The command line and `fake-server`
//! each register a backend with one line that names that type.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use camino::Utf8Path;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::backend::{Backend, BackendError, ServerSettings};
use crate::secret::TokenHash;

/// The `[backend]` section of one kind of backend, and how to open it.
pub trait BackendConfig:
    Clone + Serialize + DeserializeOwned + fmt::Debug + Send + Sync + 'static
{
    /// Its `kind` in the config file.
    const KIND: &'static str;

    /// Makes its relative paths absolute, taken from `base` (the config file's folder).
    fn resolve_relative(&mut self, base: &Utf8Path);

    /// Whether only root may open it: cPanel's own files on the real server root.
    fn needs_root(&self) -> bool {
        false
    }

    /// Opens the backend; a lock held by another process is waited for up to
    /// `lock_timeout`.
    fn open(&self, lock_timeout: Duration) -> Result<Box<dyn Backend>, BackendError>;
}

/// Building and dumping whole servers of one kind, for tests and test environments.
pub trait Harness: BackendConfig {
    /// Writes a new server holding exactly `seed` into `dir` (made if missing, else
    /// empty), and returns the config that opens it, with paths inside `dir` relative to
    /// it.
    fn build(seed: &Seed, dir: &Utf8Path) -> Result<Self, BackendError>;

    /// The whole server state as one canonical document, the same for every backend
    /// holding the same server; see [`dump_document`].
    fn dump(&self) -> Result<Value, BackendError>;

    /// Replaces the server's settings, atomically, while it may be in use (`fake-server
    /// set`); the default is [`BackendError::Unsupported`].
    fn set_settings(&self, settings: &ServerSettings) -> Result<(), BackendError> {
        let _ = settings;
        Err(BackendError::Unsupported {
            backend: Self::KIND,
            operation: "changing settings",
        })
    }
}

/// A whole server to build: its settings, its users, their access hashes and tokens, and
/// its logs.
#[derive(Clone, Default)]
pub struct Seed {
    pub settings: ServerSettings,
    pub users: Vec<SeedUser>,
    /// Files of the logs folder: name under it (`access_log`,
    /// `archive/access_log-11-2026.gz`) and content, as stored.
    pub logs: Vec<(String, Vec<u8>)>,
}

/// One account of a [`Seed`].
#[derive(Clone)]
pub struct SeedUser {
    pub name: String,
    pub uid: u32,
    /// The home folder, absolute (`/home/<name>`).
    pub home: String,
    /// `Some` for a reseller: its ACL list as given (`[]` allowed).
    pub reseller: Option<Vec<String>>,
    /// The raw `.accesshash` contents, whitespace and all.
    pub access_hash: Option<Vec<u8>>,
    /// Existing tokens: key and the entry object as stored.
    pub tokens: Vec<(TokenHash, Map<String, Value>)>,
    /// The account's main domain and its owner (root or a reseller), as WHM's `listaccts`
    /// shows them; root has neither.
    pub domain: String,
    pub owner: String,
}

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Seed")
            .field("settings", &self.settings)
            .field("users", &self.users.len())
            .field("logs", &self.logs.len())
            .finish()
    }
}

impl fmt::Debug for SeedUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeedUser")
            .field("name", &self.name)
            .field("uid", &self.uid)
            .field("reseller", &self.reseller)
            .field(
                "access_hash",
                &self.access_hash.as_ref().map(|_| "[redacted]"),
            )
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

/// The canonical dump: `{"users": {"<user>": {"tokens": {"<key>": {entry}}}},
/// "accounting": ["<line>", ...]}`, with every object's keys sorted and users without
/// tokens left out, so that two backends or two runs compare with a plain diff. Entries are
/// shown as stored.
pub fn dump_document(
    tokens: BTreeMap<String, Map<String, Value>>,
    accounting: Vec<String>,
) -> Value {
    let users: Map<String, Value> = tokens
        .into_iter()
        .filter(|(_, tokens)| !tokens.is_empty())
        .map(|(user, tokens)| {
            let mut holder = Map::new();
            holder.insert("tokens".to_owned(), Value::Object(tokens));
            (user, Value::Object(holder))
        })
        .collect();
    let mut document = Map::new();
    document.insert("users".to_owned(), Value::Object(users));
    document.insert(
        "accounting".to_owned(),
        Value::Array(accounting.into_iter().map(Value::from).collect()),
    );
    let mut document = Value::Object(document);
    document.sort_all_objects();
    document
}

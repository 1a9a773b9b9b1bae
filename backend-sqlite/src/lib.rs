//! The SQLite backend: one database file is one whole fake server (users, resellers,
//! access hashes, WHM API tokens and accounting lines), for test environments that need
//! many throwaway servers.

use camino::Utf8PathBuf;
use serde::Deserialize;

/// The `[backend]` section for `kind = "sqlite"`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SqliteConfig {
    /// The database file; relative paths are taken from the config file's folder.
    pub path: Utf8PathBuf,
}

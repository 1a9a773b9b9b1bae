//! The config file: which backend to use and where its data lives.
//!
//! ```toml
//! [backend]
//! kind = "files"   # or "sqlite"
//! root = "/"       # files: the server root
//! # path = "server.db"  # sqlite: the database file
//! ```
//!
//! Unknown keys are errors. Relative paths are taken from the config file's own folder.

use std::path::Path;

use camino::{Utf8Path, Utf8PathBuf};
use serde::Deserialize;

use crate::error::CliError;

/// The system-wide config file, used when neither `--config` nor `WHMTOKEN_CONFIG` names one.
pub const SYSTEM_CONFIG: &str = "/etc/whmtoken.toml";

/// Backend kinds this program knows, with the cargo feature that builds each in.
const KINDS: [(&str, &str, bool); 2] = [
    ("files", "files", cfg!(feature = "files")),
    ("sqlite", "sqlite", cfg!(feature = "sqlite")),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    backend: BackendConfig,
}

/// The `[backend]` section.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BackendConfig {
    #[cfg(feature = "files")]
    Files(whmtoken_backend_files::FilesConfig),
    #[cfg(feature = "sqlite")]
    Sqlite(whmtoken_backend_sqlite::SqliteConfig),
}

impl BackendConfig {
    /// The built-in default: cPanel's files on this server.
    fn default_for_this_server() -> Result<Self, CliError> {
        #[cfg(feature = "files")]
        return Ok(Self::Files(whmtoken_backend_files::FilesConfig {
            root: Utf8PathBuf::from("/"),
        }));
        #[cfg(not(feature = "files"))]
        return Err(CliError::Config(
            "no config file found, and the built-in default needs the cargo feature `files`".into(),
        ));
    }
}

/// Finds and reads the config: `--config`, else `$WHMTOKEN_CONFIG`, else
/// [`SYSTEM_CONFIG`] if it exists, else the built-in default.
pub fn load(explicit: Option<&Utf8Path>) -> Result<BackendConfig, CliError> {
    let from_env = std::env::var("WHMTOKEN_CONFIG")
        .ok()
        .filter(|v| !v.is_empty())
        .map(Utf8PathBuf::from);
    let path = match explicit.map(Utf8Path::to_owned).or(from_env) {
        Some(path) => path,
        None if Path::new(SYSTEM_CONFIG).exists() => Utf8PathBuf::from(SYSTEM_CONFIG),
        None => return BackendConfig::default_for_this_server(),
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| CliError::Config(format!("cannot read config file {path}: {e}")))?;
    parse(&path, &text)
}

/// Parses `text` (read from `path`) and makes its paths absolute.
pub fn parse(path: &Utf8Path, text: &str) -> Result<BackendConfig, CliError> {
    let bad = |detail: String| CliError::Config(format!("config file {path}: {detail}"));
    if let Some(kind) = declared_kind(text) {
        match KINDS.iter().find(|(name, ..)| *name == kind) {
            Some((_, feature, false)) => {
                return Err(bad(format!(
                    "backend kind “{kind}” needs the cargo feature `{feature}`, which this binary was built without"
                )));
            }
            Some(_) => {}
            None => {
                let known: Vec<&str> = KINDS.iter().map(|(name, ..)| *name).collect();
                return Err(bad(format!(
                    "unknown backend kind “{kind}” (known: {})",
                    known.join(", ")
                )));
            }
        }
    }
    let file: ConfigFile =
        toml::from_str(text).map_err(|e| bad(e.to_string().trim_end().to_owned()))?;
    let absolute = std::path::absolute(path)
        .ok()
        .and_then(|p| Utf8PathBuf::from_path_buf(p).ok())
        .ok_or_else(|| bad("cannot make its path absolute".into()))?;
    let base = absolute.parent().unwrap_or(Utf8Path::new("/"));
    Ok(resolve_relative(file.backend, base))
}

fn declared_kind(text: &str) -> Option<String> {
    let table: toml::Table = toml::from_str(text).ok()?;
    Some(table.get("backend")?.get("kind")?.as_str()?.to_owned())
}

fn resolve_relative(config: BackendConfig, base: &Utf8Path) -> BackendConfig {
    let absolute = |p: Utf8PathBuf| {
        let joined = if p.is_absolute() { p } else { base.join(p) };
        joined
            .components()
            .filter(|c| *c != camino::Utf8Component::CurDir)
            .collect::<Utf8PathBuf>()
    };
    match config {
        #[cfg(feature = "files")]
        BackendConfig::Files(mut c) => {
            c.root = absolute(c.root);
            BackendConfig::Files(c)
        }
        #[cfg(feature = "sqlite")]
        BackendConfig::Sqlite(mut c) => {
            c.path = absolute(c.path);
            BackendConfig::Sqlite(c)
        }
    }
}

#[cfg(all(test, not(feature = "sqlite")))]
mod without_sqlite {
    #[test]
    fn a_backend_built_out_names_its_feature() {
        let err = super::parse(
            camino::Utf8Path::new("/c.toml"),
            "[backend]\nkind = \"sqlite\"\npath = \"s.db\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("needs the cargo feature `sqlite`"), "{err}");
    }
}

#[cfg(all(test, feature = "files"))]
mod tests {
    use super::*;

    fn parse_at(text: &str) -> Result<BackendConfig, String> {
        parse(Utf8Path::new("/etc/whm/whmtoken.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    #[allow(irrefutable_let_patterns)] // with the files feature alone
    fn relative_roots_are_taken_from_the_config_folder() {
        let BackendConfig::Files(c) =
            parse_at("[backend]\nkind = \"files\"\nroot = \"srv\"\n").unwrap()
        else {
            panic!("files backend expected")
        };
        assert_eq!(c.root, "/etc/whm/srv");
    }

    #[test]
    fn unknown_keys_and_kinds_are_named() {
        let err =
            parse_at("[backend]\nkind = \"files\"\nroot = \"/\"\nrooot = \"/\"\n").unwrap_err();
        assert!(
            err.contains("/etc/whm/whmtoken.toml") && err.contains("rooot"),
            "{err}"
        );
        let err = parse_at("[backend]\nkind = \"files\"\nroot = \"/\"\n[extra]\n").unwrap_err();
        assert!(err.contains("extra"), "{err}");
        let err = parse_at("[backend]\nkind = \"mysql\"\n").unwrap_err();
        assert!(err.contains("unknown backend kind “mysql”"), "{err}");
        let err = parse_at("[backend\n").unwrap_err();
        assert!(err.contains("/etc/whm/whmtoken.toml"), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn no_config_text_makes_the_parser_panic(text in proptest::prelude::any::<String>()) {
            let _ = parse_at(&text);
            let _ = parse_at(&format!("[backend]\nkind = \"files\"\n{text}"));
        }
    }
}

//! The backend kinds whmtoken's programs are built with, registered once, in [`KINDS`]: one
//! `kind!` line per backend, naming its `kind` in config files (also the name of the cargo
//! feature that builds it in) and the type of its `[backend]` section.
//!
//! The command line opens backends through [`parse`] (each kind's `BackendConfig`); with
//! the feature `harness`, `fake-server` and the tests build, dump and change whole servers
//! through each kind's `Harness` ([`Kind::build`], [`dump_server`], [`open_server`],
//! [`set_server_settings`]). The converter never enables `harness`. [`SystemClock`] is the
//! real clock the programs hand to core, which never reads the time itself.

mod clock;
#[cfg(feature = "harness")]
mod harness;

use std::fmt;
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use whmtoken_core::config_file::{ConfigError, ConfigFile};
use whmtoken_core::{Backend, BackendConfig, BackendError};

pub use clock::SystemClock;
#[cfg(feature = "harness")]
pub use harness::{dump_server, open_server, set_server_settings};

/// `kind!(name, ConfigType)`: the kind `name`, built in only with the cargo feature `name`.
macro_rules! kind {
    ($name:literal, $config:ty) => {
        Kind {
            name: $name,
            config_type: stringify!($config),
            load: {
                #[cfg(feature = $name)]
                {
                    Some(load::<$config>)
                }
                #[cfg(not(feature = $name))]
                {
                    None
                }
            },
            #[cfg(feature = "harness")]
            harness: {
                #[cfg(feature = $name)]
                {
                    Some(harness::Ops::of::<$config>())
                }
                #[cfg(not(feature = $name))]
                {
                    None
                }
            },
        }
    };
}

/// Every backend kind, built in or not: the one list.
pub const KINDS: &[Kind] = &[
    kind!("files", whmtoken_backend_files::FilesConfig),
    kind!("sqlite", whmtoken_backend_sqlite::SqliteConfig),
];

/// One backend kind: its name, and how to reach it when it is built in.
#[derive(Debug)]
pub struct Kind {
    /// `kind` in config files (`files`, `sqlite`), and the cargo feature that builds it in.
    pub name: &'static str,
    /// The type of its `[backend]` section, as registered (`whmtoken_backend_files::FilesConfig`).
    config_type: &'static str,
    load: Option<Load>,
    #[cfg(feature = "harness")]
    harness: Option<harness::Ops>,
}

/// Reads a kind's `[backend]` section, its relative paths taken from the folder given.
type Load = fn(ConfigFile<'_>, &Utf8Path) -> Result<Config, ConfigError>;

impl Kind {
    /// The kind called `name`, or the message naming the known ones.
    pub fn named(name: &str) -> Result<&'static Kind, String> {
        KINDS.iter().find(|k| k.name == name).ok_or_else(|| {
            let known: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
            format!(
                "unknown backend kind “{name}” (known: {})",
                known.join(", ")
            )
        })
    }

    /// Whether this program was built with the kind's cargo feature.
    pub fn is_built_in(&self) -> bool {
        self.load.is_some()
    }

    /// The type of its `[backend]` section, as registered in [`KINDS`].
    pub fn config_type(&self) -> &'static str {
        self.config_type
    }

    /// What a program built without this kind says of it.
    fn built_out(&self) -> String {
        format!(
            "backend kind “{}” needs the cargo feature `{}`, which this binary was built without",
            self.name, self.name
        )
    }
}

/// A backend's `[backend]` section, read and its paths made absolute: ready to open.
pub struct Config {
    /// The section as read, for `Debug` (`FilesConfig { root: "/" }`).
    shown: String,
    needs_root: bool,
    open: Open,
}

/// Opens a backend whose config was read, with a lock timeout.
type Open = Box<dyn FnOnce(Duration) -> Result<Box<dyn Backend>, BackendError>>;

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Config {
    fn of<C: BackendConfig>(config: C) -> Self {
        Self {
            shown: format!("{config:?}"),
            needs_root: config.needs_root(),
            open: Box::new(move |lock_timeout| config.open(lock_timeout)),
        }
    }

    /// Whether only root may open it (cPanel's own files on the real server root).
    pub fn needs_root(&self) -> bool {
        self.needs_root
    }

    /// Opens the backend; a lock held by another process is waited for up to `lock_timeout`.
    pub fn open(self, lock_timeout: Duration) -> Result<Box<dyn Backend>, BackendError> {
        (self.open)(lock_timeout)
    }
}

/// Reads a section as `C` and makes its paths absolute from `base`.
#[allow(dead_code)] // with every backend feature off
fn load<C: BackendConfig>(file: ConfigFile<'_>, base: &Utf8Path) -> Result<Config, ConfigError> {
    let mut config: C = file.section()?;
    config.resolve_relative(base);
    Ok(Config::of(config))
}

/// Parses the config file `text` (read from `path`) and reads its `[backend]` section as
/// its kind says, relative paths taken from the file's folder. Mistakes are reported at
/// their line and column ([`whmtoken_core::config_file`]); a kind not built in names its
/// cargo feature.
pub fn parse(path: &Utf8Path, text: &str) -> Result<Config, ConfigError> {
    let file = ConfigFile::parse(path, text)?;
    let kind = built_in(&file)?;
    let load = kind.load.expect("built in");
    let base = folder_of(&file, path)?;
    load(file, &base)
}

/// The registered, built-in kind `file` names.
fn built_in(file: &ConfigFile<'_>) -> Result<&'static Kind, ConfigError> {
    let kind = Kind::named(file.kind()).map_err(|e| file.kind_error(e))?;
    if !kind.is_built_in() {
        return Err(file.kind_error(kind.built_out()));
    }
    Ok(kind)
}

/// The absolute folder of the config file at `path`, which relative paths start from.
fn folder_of(file: &ConfigFile<'_>, path: &Utf8Path) -> Result<Utf8PathBuf, ConfigError> {
    let absolute = std::path::absolute(path)
        .ok()
        .and_then(|p| Utf8PathBuf::from_path_buf(p).ok())
        .ok_or_else(|| file.error("cannot make its path absolute"))?;
    Ok(absolute
        .parent()
        .map_or_else(|| Utf8PathBuf::from("/"), Utf8Path::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_error(text: &str) -> String {
        parse(Utf8Path::new("/etc/whmtoken.toml"), text)
            .unwrap_err()
            .to_string()
    }

    /// Run with each kind alone (`cargo xtask ci`), this tells the built-in kind from the
    /// others: the first is read as its config type, the others name their feature.
    #[test]
    fn each_kind_is_read_when_built_in_and_names_its_feature_when_not() {
        for kind in KINDS {
            let err = parse_error(&format!(
                "[backend]\nkind = \"{}\"\nnot_a_key = 1\n",
                kind.name
            ));
            let expected = if kind.is_built_in() {
                "unknown field `not_a_key`".to_owned()
            } else {
                format!("needs the cargo feature `{}`", kind.name)
            };
            assert!(err.contains(&expected), "{}: {err}", kind.name);
        }
        let err = parse_error("[backend]\nkind = \"mysql\"\n");
        let known: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
        let expected = format!("unknown backend kind “mysql” (known: {}", known.join(", "));
        assert!(err.contains(&expected), "{err}");
    }

    #[test]
    fn relative_paths_start_from_the_config_files_folder() {
        let Ok(kind) = Kind::named("files") else {
            panic!("files is registered")
        };
        if kind.is_built_in() {
            let config = parse(
                Utf8Path::new("/etc/whm/whmtoken.toml"),
                "[backend]\nkind = \"files\"\nroot = \"srv\"\n",
            )
            .unwrap();
            assert_eq!(
                format!("{config:?}"),
                r#"FilesConfig { root: "/etc/whm/srv" }"#
            );
        }
    }
}

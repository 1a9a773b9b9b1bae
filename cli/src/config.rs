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
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use whmtoken_backends::{Config, Kind};
use whmtoken_core::config_file::ConfigError;
use whmtoken_core::{Backend, BackendError};

use crate::error::CliError;

/// The system-wide config file, used when neither `--config` nor `WHMTOKEN_CONFIG` names one.
pub const SYSTEM_CONFIG: &str = "/etc/whmtoken.toml";

/// The built-in default, read as a config file would be: cPanel's files on this server.
const THIS_SERVER: &str = "[backend]\nkind = \"files\"\nroot = \"/\"\n";

/// The backend a run will use: its config, ready to open (the kinds are those registered
/// in `whmtoken_backends`).
pub struct Settings(Config);

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Settings {
    /// Refuses to go on unless run as root (real and effective uid 0, as cPanel's script
    /// requires) where the backend needs it.
    pub fn check_root(&self) -> Result<(), CliError> {
        let root = rustix::process::getuid().is_root() && rustix::process::geteuid().is_root();
        if self.0.needs_root() && !root {
            return Err(CliError::NotRoot);
        }
        Ok(())
    }

    /// Opens the backend.
    pub fn open(self, lock_timeout: Duration) -> Result<Box<dyn Backend>, BackendError> {
        self.0.open(lock_timeout)
    }

    /// The built-in default: cPanel's files on this server.
    fn default_for_this_server() -> Result<Self, CliError> {
        if !Kind::named("files").is_ok_and(Kind::is_built_in) {
            return Err(CliError::Config(
                "no config file found, and the built-in default needs the cargo feature `files`"
                    .into(),
            ));
        }
        Ok(parse(Utf8Path::new("/built-in default"), THIS_SERVER)?)
    }
}

/// Finds and reads the config: `--config`, else `$WHMTOKEN_CONFIG`, else
/// [`SYSTEM_CONFIG`] if it exists and holds a setting, else the built-in default. The
/// packages install a [`SYSTEM_CONFIG`] that is all comments (`packaging/whmtoken.toml`),
/// which is the same as none; a file named by `--config` or `WHMTOKEN_CONFIG` must hold
/// a `[backend]`, so that a file emptied by mistake never turns a run on a test server
/// into a run on this server.
pub fn load_settings(explicit: Option<&Utf8Path>) -> Result<Settings, CliError> {
    if explicit.is_some_and(|p| p.as_str().is_empty()) {
        return Err(CliError::Usage(
            "--config needs the path of a config file".into(),
        ));
    }
    let from_env = std::env::var("WHMTOKEN_CONFIG")
        .ok()
        .filter(|v| !v.is_empty())
        .map(Utf8PathBuf::from);
    let system = explicit.is_none() && from_env.is_none();
    let (path, named_by) = match (explicit.map(Utf8Path::to_owned), from_env) {
        (Some(path), _) => (path, ""),
        (None, Some(path)) => (path, " (named by WHMTOKEN_CONFIG)"),
        (None, None) if Path::new(SYSTEM_CONFIG).exists() => (Utf8PathBuf::from(SYSTEM_CONFIG), ""),
        (None, None) => return Settings::default_for_this_server(),
    };
    let text = read_config(&path).map_err(|source| ConfigError::Unreadable {
        path: format!("{path}{named_by}").into(),
        source,
    })?;
    if system && holds_no_setting(&text) {
        return Settings::default_for_this_server();
    }
    Ok(parse(&path, &text)?)
}

/// Whether a config file's text is only comments and blank lines.
fn holds_no_setting(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .all(|line| line.is_empty() || line.starts_with('#'))
}

/// A config file is at most this long.
const MAX_CONFIG: u64 = 1 << 20;

/// Reads a config file without ever blocking: it is opened non-blocking and must be a
/// regular file (a FIFO or a device named by `--config` is refused at once, not waited on).
fn read_config(path: &Utf8Path) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        let what = whmtoken_core::backend::describe_file_type(&meta.file_type());
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("it is {what}, not a regular file"),
        ));
    }
    let mut text = String::new();
    file.take(MAX_CONFIG + 1)
        .read_to_string(&mut text)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => std::io::Error::new(
                e.kind(),
                "it is not text (a database? --config takes the whmtoken.toml beside it)",
            ),
            _ => e,
        })?;
    if text.len() as u64 > MAX_CONFIG {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("it is longer than {MAX_CONFIG} bytes"),
        ));
    }
    Ok(text)
}

/// Parses `text` (read from `path`) and makes its paths absolute. Mistakes are reported
/// as `fake-server dump` reports them, at their line and column
/// ([`whmtoken_core::config_file`]).
pub fn parse(path: &Utf8Path, text: &str) -> Result<Settings, ConfigError> {
    whmtoken_backends::parse(path, text).map(Settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_at(text: &str) -> Result<Settings, String> {
        parse(Utf8Path::new("/etc/whm/whmtoken.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn relative_roots_are_taken_from_the_config_folder() {
        let settings = parse_at("[backend]\nkind = \"files\"\nroot = \"srv\"\n").unwrap();
        assert_eq!(
            format!("{settings:?}"),
            r#"FilesConfig { root: "/etc/whm/srv" }"#
        );
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

    /// The example the packages install as /etc/whmtoken.toml.
    const PACKAGED: &str = include_str!("../../packaging/whmtoken.toml");

    #[test]
    fn the_packaged_config_holds_no_setting_and_its_examples_parse() {
        assert!(holds_no_setting(PACKAGED));
        assert!(!holds_no_setting("# a comment\n[backend]\n"));
        let examples: Vec<String> = PACKAGED
            .split("# [backend]\n")
            .skip(1)
            .map(|example| {
                let lines = example
                    .lines()
                    .take_while(|l| l.starts_with("# ") && l.contains(" = "));
                let lines: Vec<&str> = lines.map(|l| &l[2..]).collect();
                format!("[backend]\n{}\n", lines.join("\n"))
            })
            .collect();
        assert_eq!(examples.len(), 2, "{examples:?}");
        let files = parse_at(&examples[0]).unwrap();
        assert_eq!(format!("{files:?}"), r#"FilesConfig { root: "/" }"#);
        let sqlite = parse(Utf8Path::new("/etc/whmtoken.toml"), &examples[1]);
        assert!(sqlite.is_ok(), "{:?}", sqlite.err().map(|e| e.to_string()));
    }

    /// Every kind of the one registry (`whmtoken_backends::KINDS`) is one this parser
    /// knows and, in this build, opens: a section of that kind is read as its config type,
    /// never refused as unknown or built out.
    #[test]
    fn every_registered_kind_reaches_the_parser() {
        assert!(
            whmtoken_backends::KINDS.len() >= 2,
            "files and sqlite at least"
        );
        for kind in whmtoken_backends::KINDS {
            assert!(
                kind.is_built_in(),
                "{} is not built into the cli",
                kind.name
            );
            let err = parse_at(&format!(
                "[backend]\nkind = \"{}\"\nnot_a_key = 1\n",
                kind.name
            ))
            .unwrap_err();
            assert!(
                err.contains("unknown field `not_a_key`"),
                "{}: {err}",
                kind.name
            );
        }
        assert!(Settings::default_for_this_server().is_ok());
    }

    proptest::proptest! {
        #[test]
        fn no_config_text_makes_the_parser_panic(text in proptest::prelude::any::<String>()) {
            let _ = parse_at(&text);
            let _ = parse_at(&format!("[backend]\nkind = \"files\"\n{text}"));
        }
    }
}

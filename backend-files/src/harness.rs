//! The file backend's [`Harness`] (cargo feature `harness`): cPanel file trees built from a
//! [`Seed`] for tests and `fake-server`, and dumped back as the canonical document.
//!
//! Trees are laid out as cPanel lays them out (`etc/passwd`, `var/cpanel/resellers`, the
//! seed's settings in `var/cpanel/cpanel.config`, home folders 0711 with a 0600
//! `.accesshash`, token files 0600 in a 0700 folder). Built by a user other than root,
//! every account gets that user's uid, so that the ownership checks of a real run hold on a
//! tree nobody could `chown`.

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::{Map, Value};
use whmtoken_core::harness::dump_document;
use whmtoken_core::{BackendError, Harness, Seed, ServerSettings};

use crate::safe_fs::{corrupt, io_error};
use crate::token_file::TOKEN_FOLDER;
use crate::{CPANEL_CONFIG, FilesConfig};

const ACCOUNTING_LOG: &str = "var/cpanel/accounting.log";

impl Harness for FilesConfig {
    fn build(seed: &Seed, dir: &Utf8Path) -> Result<Self, BackendError> {
        let tree = Tree::new(dir)?;
        let runner = fs::metadata(dir).map_err(|e| io_error(dir, e))?.uid();
        let mut passwd = String::new();
        let mut resellers = String::new();
        for user in &seed.users {
            // Not run as root, every account (root too) is the builder's: its files can
            // belong to no one else.
            let uid = if runner == 0 { user.uid } else { runner };
            passwd.push_str(&format!(
                "{name}:x:{uid}:{uid}::{home}:/bin/bash\n",
                name = user.name,
                home = user.home
            ));
            let home = tree.under(&user.home);
            tree.mkdir(&home, if user.uid == 0 { 0o700 } else { 0o711 })?;
            if let Some(acls) = &user.reseller {
                resellers.push_str(&format!("{}:{}\n", user.name, acls.join(",")));
            }
            if let Some(raw) = &user.access_hash {
                // Owned by its account, as cPanel makes it (by the builder when not root).
                let path = home.join(".accesshash");
                tree.write(&path, raw, 0o600)?;
                if runner == 0 {
                    std::os::unix::fs::chown(&path, Some(uid), Some(uid))
                        .map_err(|e| io_error(&path, e))?;
                }
            }
            if !user.tokens.is_empty() {
                let tokens: Map<String, Value> = user
                    .tokens
                    .iter()
                    .map(|(key, entry)| (key.as_str().to_owned(), Value::Object(entry.clone())))
                    .collect();
                let document = serde_json::json!({ "tokens": tokens }).to_string();
                let folder = tree.under(TOKEN_FOLDER);
                tree.mkdir(&folder, 0o700)?;
                let file = folder.join(format!("{}.json", user.name));
                tree.write(&file, document.as_bytes(), 0o600)?;
            }
        }
        if !seed.users.iter().any(|u| u.name == "root") {
            passwd.insert_str(0, "root:x:0:0:root:/root:/bin/bash\n");
        }
        tree.write(&tree.under("etc/passwd"), passwd.as_bytes(), 0o644)?;
        // The accounts `listaccts` lists, as cPanel records them.
        let accounts = seed.users.iter().filter(|u| u.name != "root");
        let (domains, owners): (String, String) = accounts
            .map(|u| {
                (
                    format!("{}: {}\n", u.domain, u.name),
                    format!("{}: {}\n", u.name, u.owner),
                )
            })
            .unzip();
        tree.write(
            &tree.under(crate::accounts::DOMAINS),
            domains.as_bytes(),
            0o640,
        )?;
        tree.write(
            &tree.under(crate::accounts::OWNERS),
            owners.as_bytes(),
            0o640,
        )?;
        tree.write(
            &tree.under("var/cpanel/resellers"),
            resellers.as_bytes(),
            0o644,
        )?;
        let config = format!(
            "allow_deprecated_accesshash={}\n",
            u8::from(seed.settings.allow_deprecated_accesshash)
        );
        tree.write(&tree.under(CPANEL_CONFIG), config.as_bytes(), 0o644)?;
        for (name, content) in &seed.logs {
            let logs = tree.under(crate::logs::LOGS);
            tree.mkdir(&logs, 0o700)?;
            tree.write(&logs.join(name), content, 0o600)?;
        }
        Ok(Self {
            root: Utf8PathBuf::from("."),
        })
    }

    fn dump(&self) -> Result<Value, BackendError> {
        let folder = self.root.join(TOKEN_FOLDER);
        let mut tokens = BTreeMap::new();
        let entries = match folder.read_dir_utf8() {
            Ok(entries) => entries.collect::<Result<Vec<_>, _>>(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
        .map_err(|e| io_error(&folder, e))?;
        for entry in entries {
            // cPanel's own listing: `<user>.json`, nothing with another dot (temp files).
            let Some(user) = entry
                .file_name()
                .strip_suffix(".json")
                .filter(|u| !u.is_empty() && !u.contains('.'))
            else {
                continue;
            };
            let path = entry.path();
            let text = fs::read_to_string(path).map_err(|e| io_error(path, e))?;
            if text.trim().is_empty() {
                continue;
            }
            let document: Value = serde_json::from_str(&text)
                .map_err(|e| corrupt(path, format!("not valid JSON ({e})")))?;
            if let Some(Value::Object(user_tokens)) = document.get("tokens") {
                tokens.insert(user.to_owned(), user_tokens.clone());
            }
        }
        let log = self.root.join(ACCOUNTING_LOG);
        let accounting = match fs::read_to_string(&log) {
            Ok(text) => text.lines().map(str::to_owned).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_error(&log, e)),
        };
        Ok(dump_document(tokens, accounting))
    }

    /// Rewrites `var/cpanel/cpanel.config` with the setting's line replaced (or added), every
    /// other line kept, through a temporary file renamed over it.
    fn set_settings(&self, settings: &ServerSettings) -> Result<(), BackendError> {
        let path = self.root.join(CPANEL_CONFIG);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io_error(&path, e)),
        };
        let setting = "allow_deprecated_accesshash";
        let mut lines: Vec<String> = text
            .lines()
            .filter(|line| {
                line.split_once('=')
                    .is_none_or(|(key, _)| key.trim() != setting)
            })
            .map(str::to_owned)
            .collect();
        lines.push(format!(
            "{setting}={}",
            u8::from(settings.allow_deprecated_accesshash)
        ));
        let temp = Utf8PathBuf::from(format!("{path}.new-{}", std::process::id()));
        let tree = Tree { root: &self.root };
        tree.write(&temp, (lines.join("\n") + "\n").as_bytes(), 0o644)?;
        fs::rename(&temp, &path).map_err(|e| io_error(&path, e))
    }
}

/// The folder a tree is built in.
struct Tree<'a> {
    root: &'a Utf8Path,
}

impl<'a> Tree<'a> {
    fn new(root: &'a Utf8Path) -> Result<Self, BackendError> {
        fs::create_dir_all(root).map_err(|e| io_error(root, e))?;
        let tree = Self { root };
        tree.mkdir(&tree.under("var/cpanel"), 0o755)?;
        Ok(tree)
    }

    /// An absolute server path (`/home/bob`) inside the tree.
    fn under(&self, path: &str) -> Utf8PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// Creates `path` and its missing parents; `mode` applies to `path` itself.
    fn mkdir(&self, path: &Utf8Path, mode: u32) -> Result<(), BackendError> {
        if path.is_dir() {
            return Ok(());
        }
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(path)
            .and_then(|()| fs::set_permissions(path, fs::Permissions::from_mode(mode)))
            .map_err(|e| io_error(path, e))
    }

    fn write(&self, path: &Utf8Path, contents: &[u8], mode: u32) -> Result<(), BackendError> {
        self.mkdir(path.parent().expect("a file has a folder"), 0o755)?;
        fs::write(path, contents)
            .and_then(|()| fs::set_permissions(path, fs::Permissions::from_mode(mode)))
            .map_err(|e| io_error(path, e))
    }
}

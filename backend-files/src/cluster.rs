//! The DNS cluster configs: `var/cpanel/cluster/<user>/config/<peer>`, each read as the
//! converter reads a secret's file (no symbolic link, a regular file with one link, owned
//! by root or the tree's owner, writable by no one else, at most 64 KiB). Core tells what
//! they hold ([`whmtoken_core::cluster`]). A file refused is left out, and logged.

use std::fs::OpenOptions;
use std::io;

use camino::Utf8Path;
use whmtoken_core::{BackendError, ClusterFile, UserName};

use crate::safe_fs::{Expect, io_error, open_checked};

/// The clusters folder under a server root.
const CLUSTER: &str = "var/cpanel/cluster";

/// The largest config file read.
const MAX_LEN: u64 = 64 << 10;

/// Every peer config under `root`.
pub(crate) fn read(root: &Utf8Path, owner: u32) -> Result<Vec<ClusterFile>, BackendError> {
    let folder = root.join(CLUSTER);
    let mut users: Vec<String> = match folder.read_dir_utf8() {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_owned())
            .filter(|name| UserName::new(name).is_ok())
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(&folder, e)),
    };
    users.sort();
    let mut files = Vec::new();
    for user in users {
        let config = folder.join(&user).join("config");
        let Ok(entries) = config.read_dir_utf8() else {
            continue;
        };
        let mut peers: Vec<String> = entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_owned())
            .filter(|name| !name.starts_with('.'))
            .collect();
        peers.sort();
        for peer in peers {
            let path = config.join(&peer);
            let expect = Expect {
                owner: Some(owner),
                max_len: MAX_LEN,
                secret: true,
            };
            match open_checked(&path, OpenOptions::new().read(true), expect)
                .and_then(|f| f.map(|f| f.read()).transpose())
            {
                Ok(Some(content)) => {
                    files.push(ClusterFile::new(
                        user.clone(),
                        peer,
                        path.to_string(),
                        content,
                    ));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(file = %path, error = %e, "a DNS cluster config was refused");
                }
            }
        }
    }
    Ok(files)
}

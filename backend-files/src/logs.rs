//! cPanel's logs folder (`usr/local/cpanel/logs` under the root, or the folder `--logs`
//! names): the files of `access_log` and `api_tokens_log` in it and in its `archive/`,
//! opened as the converter opens root's files: never through a symbolic link, never
//! blocking on a FIFO, a regular file with one link owned by root (or the tree's owner),
//! checked on the descriptor. Core reads them ([`whmtoken_core::usage`]).

use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;

use camino::{Utf8Path, Utf8PathBuf};
use whmtoken_core::usage::LogName;
use whmtoken_core::{BackendError, LogFile, Logs};

use crate::safe_fs::{Expect, io_error, open_checked};

/// The logs folder under a server root.
pub(crate) const LOGS: &str = "usr/local/cpanel/logs";

/// A logs folder whose files are owned by root or `owner`.
#[derive(Debug)]
pub(crate) struct LogFolder {
    folder: Utf8PathBuf,
    owner: u32,
}

impl LogFolder {
    /// The folder at `folder`; [`BackendError::NotFound`] naming it when it is not there.
    pub(crate) fn open(folder: &Utf8Path, owner: u32) -> Result<Self, BackendError> {
        match fs::metadata(folder) {
            Ok(meta) if meta.is_dir() => Ok(Self {
                folder: folder.to_owned(),
                owner,
            }),
            Ok(_) => Err(BackendError::NotFound {
                location: folder.to_string(),
                what: "not a folder of logs".to_owned(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(BackendError::NotFound {
                location: folder.to_string(),
                what: "no such logs folder".to_owned(),
            }),
            Err(e) => Err(io_error(folder, e)),
        }
    }

    /// The log files directly in `dir` (under the folder as `prefix`).
    fn list(
        &self,
        dir: &Utf8Path,
        prefix: &str,
        out: &mut Vec<LogFile>,
    ) -> Result<(), BackendError> {
        let entries = match dir.read_dir_utf8() {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !prefix.is_empty() => return Ok(()),
            Err(e) => return Err(io_error(dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io_error(dir, e))?;
            let name = format!("{prefix}{}", entry.file_name());
            if LogName::parse(&name).is_none() {
                continue;
            }
            // Not followed: a link is listed and then refused when opened, so that the
            // output says so.
            let meta = fs::symlink_metadata(entry.path()).map_err(|e| io_error(entry.path(), e))?;
            out.push(LogFile {
                location: self.folder.join(&name).to_string(),
                name,
                modified: meta.mtime(),
            });
        }
        Ok(())
    }
}

impl Logs for LogFolder {
    fn location(&self) -> &str {
        self.folder.as_str()
    }

    fn files(&self) -> Result<Vec<LogFile>, BackendError> {
        let mut files = Vec::new();
        self.list(&self.folder, "", &mut files)?;
        let archive = self.folder.join("archive");
        if fs::symlink_metadata(&archive).is_ok_and(|m| m.is_dir()) {
            self.list(&archive, "archive/", &mut files)?;
        }
        Ok(files)
    }

    fn open(&self, file: &LogFile) -> Result<Box<dyn Read + Send + '_>, BackendError> {
        let path = self.folder.join(&file.name);
        let expect = Expect {
            owner: Some(self.owner),
            max_len: u64::MAX,
            secret: false,
        };
        match open_checked(&path, OpenOptions::new().read(true), expect)? {
            Some(checked) => Ok(Box::new(checked.into_file())),
            None => Err(BackendError::NotFound {
                location: path.to_string(),
                what: "it is gone".to_owned(),
            }),
        }
    }
}

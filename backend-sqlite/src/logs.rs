//! A SQLite server's logs: cPanel's logs folder kept beside the database, as
//! `<database file name without extension>-logs` (`server.db` → `server-logs/`), or the
//! folder `--logs` names. The files of `access_log` and `api_tokens_log` in it and in its
//! `archive/`, opened never through a symbolic link and never blocking on a FIFO, and
//! checked on the descriptor: a regular file with one link, owned by root or by the
//! database's owner. Core reads them ([`whmtoken_core::usage`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

use camino::{Utf8Path, Utf8PathBuf};
use rustix::fs::OFlags;
use whmtoken_core::backend::describe_file_type;
use whmtoken_core::usage::LogName;
use whmtoken_core::{BackendError, LogFile, Logs};

/// The logs folder of the database at `database`.
pub(crate) fn folder_of(database: &Utf8Path) -> Utf8PathBuf {
    let stem = database.file_stem().unwrap_or("server");
    database.with_file_name(format!("{stem}-logs"))
}

/// A logs folder whose files are owned by root or `owner`.
#[derive(Debug)]
pub(crate) struct LogFolder {
    folder: Utf8PathBuf,
    owner: u32,
}

fn io_error(path: &Utf8Path, source: io::Error) -> BackendError {
    BackendError::Io {
        location: path.to_string(),
        source,
    }
}

fn refused(path: &Utf8Path, detail: String) -> BackendError {
    BackendError::Unsafe {
        location: path.to_string(),
        detail,
    }
}

impl LogFolder {
    /// The folder at `folder`; [`BackendError::NotFound`] naming it when it is not there.
    pub(crate) fn open(folder: &Utf8Path, owner: u32) -> Result<Self, BackendError> {
        let missing = |what: &str| BackendError::NotFound {
            location: folder.to_string(),
            what: what.to_owned(),
        };
        match fs::metadata(folder) {
            Ok(meta) if meta.is_dir() => Ok(Self {
                folder: folder.to_owned(),
                owner,
            }),
            Ok(_) => Err(missing("not a folder of logs")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(missing("no such logs folder")),
            Err(e) => Err(io_error(folder, e)),
        }
    }

    fn list(
        &self,
        dir: &Utf8Path,
        prefix: &str,
        out: &mut Vec<LogFile>,
    ) -> Result<(), BackendError> {
        for entry in dir.read_dir_utf8().map_err(|e| io_error(dir, e))? {
            let entry = entry.map_err(|e| io_error(dir, e))?;
            let name = format!("{prefix}{}", entry.file_name());
            if LogName::parse(&name).is_none() {
                continue;
            }
            let meta = fs::symlink_metadata(entry.path()).map_err(|e| io_error(entry.path(), e))?;
            out.push(LogFile {
                location: self.folder.join(&name).to_string(),
                name,
                modified: meta.mtime(),
            });
        }
        Ok(())
    }

    /// Opens `path` without following a link or blocking, and checks the descriptor.
    fn open_checked(&self, path: &Utf8Path) -> Result<File, BackendError> {
        let flags = OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(flags.bits() as i32)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(code) if code == rustix::io::Errno::LOOP.raw_os_error() => {
                    refused(path, "it is a symbolic link".to_owned())
                }
                _ => io_error(path, e),
            })?;
        let meta = file.metadata().map_err(|e| io_error(path, e))?;
        if !meta.is_file() {
            let what = describe_file_type(&meta.file_type());
            return Err(refused(path, format!("it is {what}")));
        }
        if meta.nlink() != 1 {
            return Err(refused(path, format!("it has {} hard links", meta.nlink())));
        }
        if meta.uid() != 0 && meta.uid() != self.owner {
            return Err(refused(path, format!("it is owned by uid {}", meta.uid())));
        }
        Ok(file)
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
        Ok(Box::new(self.open_checked(&self.folder.join(&file.name))?))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_logs_folder_is_named_after_the_database() {
        let folder = super::folder_of(camino::Utf8Path::new("/srv/fake/server.db"));
        assert_eq!(folder, "/srv/fake/server-logs");
        let folder = super::folder_of(camino::Utf8Path::new("/srv/fake/a.b.sqlite"));
        assert_eq!(folder, "/srv/fake/a.b-logs");
    }
}

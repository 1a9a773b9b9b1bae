//! The fake WHM's own logs, in cPanel's formats: one `access_log` line per request (times
//! in UTC; the port is the one listened on), one `api_tokens_log` line per request a
//! token authenticated (local time with its offset), and one `error_log` line per request
//! refused or failed, with the precise reason the client is not told, appended to the fake
//! server's logs folder (made 0700, files 0600), so that `whmtoken usage` sees the clients
//! of a rehearsal. Each line is one `write` on an `O_APPEND` file.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::sync::Mutex;

use camino::{Utf8Path, Utf8PathBuf};
use whmtoken_fixtures::{AccessEntry, TokenLogEntry};

use super::AccessRecord;

/// The two logs of one fake server.
#[derive(Debug)]
pub struct LogWriter {
    folder: Utf8PathBuf,
    access: Mutex<File>,
    tokens: Mutex<File>,
    errors: Mutex<File>,
}

fn append(path: &Utf8Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
}

impl LogWriter {
    /// Appends to `folder`'s `access_log`, `api_tokens_log` and `error_log`, made when
    /// missing.
    pub fn open(folder: &Utf8Path) -> io::Result<Self> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(folder)?;
        Ok(Self {
            folder: folder.to_owned(),
            access: Mutex::new(append(&folder.join("access_log"))?),
            tokens: Mutex::new(append(&folder.join("api_tokens_log"))?),
            errors: Mutex::new(append(&folder.join("error_log"))?),
        })
    }

    pub fn folder(&self) -> &Utf8Path {
        &self.folder
    }

    /// Writes `record`'s lines.
    pub fn record(&self, record: &AccessRecord) -> io::Result<()> {
        let peer = record.peer.to_string();
        let user = record.user.as_ref().map_or("-", |u| u.as_str());
        let time = record.at.as_second();
        let mut line = Vec::with_capacity(256);
        AccessEntry {
            ip: &peer,
            forwarded_for: None,
            user,
            time,
            request: &record.request_line,
            status: record.status.as_u16(),
            size: record.size,
            user_agent: record.user_agent.as_deref().unwrap_or(b"-"),
            auth: record.auth,
            port: record.port,
        }
        .write_to(&mut line);
        write_line(&self.access, &line)?;
        if let Some(token) = &record.token {
            line.clear();
            let offset = jiff::tz::TimeZone::system().to_offset(record.at).seconds();
            TokenLogEntry {
                time,
                offset,
                status: record.status.as_u16(),
                user,
                token,
                request: &record.request_line,
                host: Some(&peer),
            }
            .write_to(&mut line);
            write_line(&self.tokens, &line)?;
        }
        if let Some(reason) = &record.error {
            line.clear();
            error_line(record, reason, &mut line);
            write_line(&self.errors, &line)?;
        }
        Ok(())
    }
}

fn write_line(file: &Mutex<File>, line: &[u8]) -> io::Result<()> {
    let mut file = file
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    file.write_all(line)
}

/// `[2026-12-01 07:40:00 +0000] warn [whostmgrd] 192.0.2.7 bob "GET /json-api/version" 403:
/// <reason>`, in local time as cpsrvd's `error_log`; `-` for no user; the request without
/// its query, control characters in the reason shown escaped.
fn error_line(record: &AccessRecord, reason: &str, out: &mut Vec<u8>) {
    use std::io::Write as _;
    let time = record.at.to_zoned(jiff::tz::TimeZone::system());
    let user = record.user.as_ref().map_or("-", |u| u.as_str());
    let reason: String = reason
        .chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    let _ = writeln!(
        out,
        "[{}] warn [whostmgrd] {} {} \"{} {}\" {}: {}",
        time.strftime("%Y-%m-%d %H:%M:%S %z"),
        record.peer,
        user,
        record.method,
        record.path.escape_debug(),
        record.status.as_u16(),
        reason
    );
}

//! Opening the database file: existing or new, never through a symbolic link, created
//! 0600, and set up the same way on every connection (busy timeout first, then WAL and
//! `synchronous=FULL`).

use std::fs::{self, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::time::Duration;

use camino::Utf8Path;
use rusqlite::{Connection, OpenFlags};
use whmtoken_core::BackendError;
use whmtoken_core::backend::describe_file_type;

use crate::error::Site;
use crate::schema;

/// How to make a database, for messages about a missing or empty one.
const HOW_TO_MAKE_ONE: &str = "make one with `fake-server build` or `fake-server generate`";

/// Opens the existing database at `site.path`, migrates its schema, and checks that the
/// schema holds nothing this program did not create. It never creates one: a missing or
/// empty file is an error, and so is a file that group or others can read or write (it
/// holds raw access hashes).
pub(crate) fn existing(site: &Site) -> Result<Connection, BackendError> {
    let path = &site.path;
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(BackendError::NotFound {
                location: path.to_string(),
                what: format!("no such database; {HOW_TO_MAKE_ONE}"),
            });
        }
        Err(e) => return Err(site.io(e)),
    };
    if !meta.file_type().is_file() {
        return Err(BackendError::Unsafe {
            location: path.to_string(),
            detail: format!("it is {}", describe_file_type(&meta.file_type())),
        });
    }
    if meta.len() == 0 {
        return Err(BackendError::NotFound {
            location: path.to_string(),
            what: format!("the file is empty, not a whmtoken database; {HOW_TO_MAKE_ONE}"),
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(BackendError::Unsafe {
            location: path.to_string(),
            detail: format!(
                "group or others can read or write it (mode {mode:04o}), and it holds raw access hashes; make it 0600"
            ),
        });
    }
    if !has_sqlite_header(path).map_err(|e| site.io(e))? {
        return Err(BackendError::Corrupt {
            location: path.to_string(),
            detail: format!("not a SQLite database, so not a whmtoken one; {HOW_TO_MAKE_ONE}"),
        });
    }
    let mut conn = connect(site)?;
    // Checked before anything is written to it (WAL, a migration): a refused database is
    // left exactly as it was.
    conn.pragma_update(None, "trusted_schema", "OFF")
        .map_err(|e| site.sql(None, e))?;
    schema::check_objects(&conn, site)?;
    configure(&conn, site)?;
    schema::migrate(&mut conn, site)?;
    Ok(conn)
}

/// Whether the file starts as every SQLite database does (`SQLite format 3` and a NUL).
fn has_sqlite_header(path: &Utf8Path) -> io::Result<bool> {
    use std::io::Read;
    const HEADER: &[u8; 16] = b"SQLite format 3\0";
    let mut start = Vec::with_capacity(HEADER.len());
    fs::File::open(path)?
        .take(HEADER.len() as u64)
        .read_to_end(&mut start)?;
    Ok(start == HEADER)
}

/// Another connection to the database `existing` opened, for reading only. Its page cache
/// is kept small: its reads are lookups by user, spread over the whole file, which a large
/// cache would not keep anyway.
pub(crate) fn reader(site: &Site) -> Result<Connection, BackendError> {
    let sql = |e| site.sql(None, e);
    let conn = connect(site)?;
    set_busy_timeout(&conn, site.waited).map_err(sql)?;
    conn.pragma_update(None, "trusted_schema", "OFF")
        .map_err(sql)?;
    conn.pragma_update(None, "cache_size", READER_CACHE_KIB)
        .map_err(sql)?;
    Ok(conn)
}

/// A reader's page cache, in KiB as `PRAGMA cache_size` takes it (negative: KiB).
const READER_CACHE_KIB: i64 = -256;

/// Creates a new database at `site.path` (which must not exist yet), mode 0600, with the
/// current schema.
pub(crate) fn new(site: &Site) -> Result<Connection, BackendError> {
    let path = &site.path;
    create_file(path).map_err(|e| site.io(e))?;
    let made = set_up_new(site);
    if made.is_err() {
        // Leave nothing half-made behind; the error says what went wrong.
        for suffix in ["", "-wal", "-shm"] {
            let _ = fs::remove_file(format!("{path}{suffix}"));
        }
    }
    made
}

fn set_up_new(site: &Site) -> Result<Connection, BackendError> {
    let mut conn = connect(site)?;
    configure(&conn, site)?;
    schema::migrate(&mut conn, site)?;
    sync_parent(&site.path).map_err(|e| site.io(e))?;
    Ok(conn)
}

/// Creates the empty file, 0600 whatever the umask; an existing file is an error.
fn create_file(path: &Utf8Path) -> io::Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(Permissions::from_mode(0o600))
}

fn connect(site: &Site) -> Result<Connection, BackendError> {
    // No SQLITE_OPEN_CREATE: `new` has made the file. No SQLITE_OPEN_URI: a path is a path.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    Connection::open_with_flags(&site.path, flags).map_err(|e| site.sql(None, e))
}

/// The per-connection settings, in the order that matters: the busy timeout before the
/// switch to WAL, which otherwise can fail at once when another connection is busy.
fn configure(conn: &Connection, site: &Site) -> Result<(), BackendError> {
    let sql = |e| site.sql(None, e);
    set_busy_timeout(conn, site.waited).map_err(sql)?;
    // Functions and virtual tables named in the schema are not run on its say-so.
    conn.pragma_update(None, "trusted_schema", "OFF")
        .map_err(sql)?;
    let _mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(sql)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sql)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(sql)
}

/// `busy_timeout`, capped at what SQLite can represent (about 24 days) instead of panicking.
pub(crate) fn set_busy_timeout(conn: &Connection, timeout: Duration) -> rusqlite::Result<()> {
    let max = Duration::from_millis(i32::MAX as u64);
    conn.busy_timeout(timeout.min(max))
}

fn sync_parent(path: &Utf8Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_str().is_empty() => p,
        _ => Utf8Path::new("."),
    };
    fs::File::open(parent)?.sync_all()
}

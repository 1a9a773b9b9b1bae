//! The I/O floor for `cargo xtask bench`: only the work a conversion cannot avoid (its
//! system calls; for SQLite, also the rows and keys it stores), with no parsing, no checks
//! and no locking logic, to measure the converter against.
//!
//! ```text
//! io-floor files ROOT JOBS   # per reseller (each folder under ROOT/home): read .accesshash and
//!                            # the token file, write a new token file to a temporary file,
//!                            # fsync it, have its audit line appended to
//!                            # var/cpanel/accounting.log and fdatasynced by a group commit,
//!                            # rename, have the folder fsynced by a group commit; on JOBS
//!                            # threads
//! io-floor files-each ROOT JOBS  # the same, but each user appends and fdatasyncs its own
//!                            # line and fsyncs the folder itself
//! io-floor files-chunked ROOT JOBS  # the same, in chunks of 16 users per thread, as the
//!                            # converter writes them: every temp file of the chunk written
//!                            # and its writeback started, then each fsynced, the chunk's
//!                            # lines in one write and one fdatasync, the renames, one
//!                            # folder fsync
//! io-floor syncfs ROOT JOBS  # the same writes without any fsync, then one syncfs of the file
//!                            # system: the limit no per-file durability can reach
//! io-floor sqlite DB SLICE   # per reseller: read its access hash and hash it (on a thread
//!                            # of its own, ahead of the writes), read its tokens, insert the
//!                            # token the converter writes (the SHA-512 of the access hash,
//!                            # an entry of the same shape) and an accounting line of the
//!                            # same form; one transaction per SLICE users (the converter's
//!                            # `pipeline::BATCH_USERS`), as the converter commits
//! ```
//!
//! It is a program of its own, outside whmtoken's workspace, sharing none of its code.
//!
//! A floor is the best the same durable work allows. Each user's own file is fsynced; the
//! audit log and the folder are shared, and there are two ways to flush them: a group
//! commit (as in the converter and in any database's log: whoever finds no flush running
//! writes every line queued so far in one `write` and fdatasyncs the log once, or fsyncs
//! the folder once, for every user that queued before it began, while the others wait), or
//! one flush per user, which the file system's journal may merge itself. Neither is always
//! faster (on loop-mounted XFS and ext4 the second measured faster), so the bench runs
//! both and takes the faster of each pair as the floor.

#![allow(clippy::print_stderr)]

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use sha2::{Digest, Sha512};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["files", root, jobs] => files(
            Path::new(root),
            jobs.parse().unwrap_or(1),
            Some(Shared::Group),
        ),
        ["files-each", root, jobs] => files(
            Path::new(root),
            jobs.parse().unwrap_or(1),
            Some(Shared::EachUser),
        ),
        ["syncfs", root, jobs] => {
            files(Path::new(root), jobs.parse().unwrap_or(1), None).and_then(|()| {
                let dir = File::open(root).map_err(|e| e.to_string())?;
                rustix::fs::syncfs(&dir).map_err(|e| e.to_string())
            })
        }
        ["files-chunked", root, jobs] => files_chunked(Path::new(root), jobs.parse().unwrap_or(1)),
        ["sqlite", db, slice] => match slice.parse() {
            Ok(slice) if slice > 0 => sqlite(Path::new(db), slice).map_err(|e| e.to_string()),
            _ => Err(format!("not a number of users: {slice}")),
        },
        _ => Err(
            "usage: io-floor files|files-each|files-chunked|syncfs ROOT JOBS | io-floor sqlite DB SLICE"
                .to_owned(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("io-floor: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One flush shared by every change queued before it began: `flush` gets the batch queued
/// so far (the log's lines; nothing for the folder).
#[derive(Default)]
struct Group {
    state: Mutex<GroupState>,
    done: Condvar,
}

#[derive(Default)]
struct GroupState {
    issued: u64,
    synced: u64,
    flushing: bool,
    failed: Option<String>,
    batch: Vec<u8>,
}

impl Group {
    /// Queues `bytes` and returns once a flush that began after that covered them.
    fn commit(
        &self,
        bytes: &[u8],
        flush: impl Fn(&[u8]) -> std::io::Result<()>,
    ) -> Result<(), String> {
        let mut state = self.state.lock().expect("lock");
        state.batch.extend_from_slice(bytes);
        state.issued += 1;
        let ticket = state.issued;
        loop {
            if let Some(e) = &state.failed {
                return Err(e.clone());
            }
            if state.synced >= ticket {
                return Ok(());
            }
            if state.flushing {
                state = self.done.wait(state).expect("lock");
                continue;
            }
            state.flushing = true;
            let through = state.issued;
            let batch = std::mem::take(&mut state.batch);
            drop(state);
            let result = flush(&batch);
            state = self.state.lock().expect("lock");
            state.flushing = false;
            match result {
                Ok(()) => state.synced = through,
                Err(e) => state.failed = Some(e.to_string()),
            }
            self.done.notify_all();
        }
    }
}

/// How the shared audit log and token folder are flushed.
#[derive(Clone, Copy)]
enum Shared {
    /// By group commits.
    Group,
    /// By each user, for itself.
    EachUser,
}

/// What every file floor works on: the users' home folders in name order, the token folder
/// (made if missing, and opened for its fsyncs) and the audit log opened for appending.
struct Server {
    users: Vec<PathBuf>,
    tokens: PathBuf,
    log: File,
    folder: File,
}

impl Server {
    fn open(root: &Path) -> Result<Self, String> {
        let mut users: Vec<PathBuf> = fs::read_dir(root.join("home"))
            .map_err(|e| e.to_string())?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        users.sort();
        let tokens = root.join("var/cpanel/authn/api_tokens_v2/whostmgr");
        fs::create_dir_all(&tokens).map_err(|e| e.to_string())?;
        let log = OpenOptions::new()
            .append(true)
            .create(true)
            .open(root.join("var/cpanel/accounting.log"))
            .map_err(|e| e.to_string())?;
        let folder = File::open(&tokens).map_err(|e| e.to_string())?;
        Ok(Self {
            users,
            tokens,
            log,
            folder,
        })
    }

    /// One user's reads and new file: its `.accesshash` and token file read, the new
    /// contents written to a temporary file beside the token file (not synced).
    fn write_temp(&self, home: &Path) -> Result<NewToken, String> {
        let e = |e: std::io::Error| e.to_string();
        let user = home.file_name().expect("a user folder").to_string_lossy();
        let secret = fs::read(home.join(".accesshash")).map_err(e)?;
        let path = self.tokens.join(format!("{user}.json"));
        let mut contents = fs::read(&path).unwrap_or_default();
        contents.extend_from_slice(&secret[..secret.len().min(200)]);
        let temp = self.tokens.join(format!("{user}.json-floor"));
        let mut file = File::create(&temp).map_err(e)?;
        file.write_all(&contents).map_err(e)?;
        Ok(NewToken {
            line: format!("floor:CREATEAPITOKEN:root:{user}:not-applicable:floor\n"),
            file,
            temp,
            path,
        })
    }
}

/// A user's new token file, written to `temp`, to be renamed to `path`, and its audit line.
struct NewToken {
    file: File,
    temp: PathBuf,
    path: PathBuf,
    line: String,
}

/// Runs `work` on `jobs` threads (at least one); the first error, if any.
fn on_threads(jobs: usize, work: impl Fn() -> Result<(), String> + Sync) -> Result<(), String> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..jobs.max(1)).map(|_| scope.spawn(&work)).collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("worker"))
    })
}

/// Each user's token file replaced, and an audit line appended; with `durable`, each file
/// fsynced on its own, the log and the folder as `durable` says; without, nothing synced.
fn files(root: &Path, jobs: usize, durable: Option<Shared>) -> Result<(), String> {
    let server = Server::open(root)?;
    let (log, folder) = (&server.log, &server.folder);
    let (lines, renames) = (Group::default(), Group::default());
    let next = AtomicUsize::new(0);
    on_threads(jobs, || {
        loop {
            let Some(home) = server.users.get(next.fetch_add(1, Ordering::Relaxed)) else {
                return Ok(());
            };
            let new = server.write_temp(home)?;
            let append = |bytes: &[u8]| (&*log).write_all(bytes);
            match durable {
                Some(Shared::Group) => {
                    new.file.sync_all().map_err(|e| e.to_string())?;
                    lines.commit(new.line.as_bytes(), |batch| {
                        append(batch)?;
                        log.sync_data()
                    })?;
                }
                Some(Shared::EachUser) => {
                    new.file.sync_all().map_err(|e| e.to_string())?;
                    append(new.line.as_bytes())
                        .and_then(|()| log.sync_data())
                        .map_err(|e| e.to_string())?;
                }
                None => append(new.line.as_bytes()).map_err(|e| e.to_string())?,
            }
            fs::rename(&new.temp, &new.path).map_err(|e| e.to_string())?;
            match durable {
                Some(Shared::Group) => renames.commit(&[], |_| folder.sync_all())?,
                Some(Shared::EachUser) => folder.sync_all().map_err(|e| e.to_string())?,
                None => {}
            }
        }
    })
}

/// Users per chunk in `files-chunked`, as in the converter (`pipeline::CHUNK_USERS`).
const CHUNK: usize = 16;

/// Each thread takes `CHUNK` users at a time: writes every temp file of the chunk, starting
/// its writeback at once, then fdatasyncs each, appends the chunk's lines in one write and
/// one fdatasync, renames them all and fsyncs the folder once.
fn files_chunked(root: &Path, jobs: usize) -> Result<(), String> {
    let server = Server::open(root)?;
    let next = AtomicUsize::new(0);
    let e = |e: std::io::Error| e.to_string();
    on_threads(jobs, || {
        loop {
            let first = next.fetch_add(CHUNK, Ordering::Relaxed);
            let end = (first + CHUNK).min(server.users.len());
            let Some(mine) = server.users.get(first..end).filter(|m| !m.is_empty()) else {
                return Ok(());
            };
            let mut pending = Vec::with_capacity(mine.len());
            for home in mine {
                let new = server.write_temp(home)?;
                rustix::fs::fadvise(&new.file, 0, None, rustix::fs::Advice::DontNeed)
                    .map_err(|x| x.to_string())?;
                pending.push(new);
            }
            for new in &pending {
                new.file.sync_data().map_err(e)?;
            }
            let lines: String = pending.iter().map(|new| new.line.as_str()).collect();
            (&server.log).write_all(lines.as_bytes()).map_err(e)?;
            server.log.sync_data().map_err(e)?;
            for new in &pending {
                fs::rename(&new.temp, &new.path).map_err(e)?;
            }
            server.folder.sync_all().map_err(e)?;
        }
    })
}

fn sqlite(db: &Path, slice_users: usize) -> rusqlite::Result<()> {
    let mut conn = rusqlite::Connection::open(db)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    let names: Vec<String> = conn
        .prepare("SELECT name FROM users WHERE reseller_acls IS NOT NULL ORDER BY name")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let token_name = format!("accesshash-{now}");
    let entry = format!(r#"{{"name":"{token_name}","create_time":{now},"expires_at":null}}"#);
    // The converter's timestamp is local time; its length is all that matters here.
    let time = "Fri Dec  4 20:37:41 2026";
    std::thread::scope(|scope| {
        // The keys, read and hashed on another core ahead of the writes, as the converter
        // plans on its other threads; `None` for a user with no access hash to convert.
        let (send, receive) = std::sync::mpsc::sync_channel(4);
        let names = &names;
        let reading = scope.spawn(move || keys_ahead(db, names, &send));
        let mut keys = receive.iter().flatten();
        // The converter's transactions: one per slice of the run.
        for slice in names.chunks(slice_users) {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            {
                let mut tokens = tx.prepare("SELECT hash, entry FROM tokens WHERE user = ?1")?;
                let mut insert =
                    tx.prepare("INSERT INTO tokens (user, hash, entry) VALUES (?1, ?2, ?3)")?;
                let mut audit = tx.prepare("INSERT INTO accounting (line) VALUES (?1)")?;
                for name in slice {
                    let Some(Some(key)) = keys.next() else {
                        continue;
                    };
                    let existing: Vec<(String, String)> = tokens
                        .query_map([name], |row| Ok((row.get(0)?, row.get(1)?)))?
                        .collect::<Result<_, _>>()?;
                    if existing.iter().any(|(hash, _)| *hash == key) {
                        continue;
                    }
                    insert.execute(rusqlite::params![name, key, entry])?;
                    audit.execute([format!(
                        "{time}:CREATEAPITOKEN:root:{name}:not-applicable:{token_name}"
                    )])?;
                }
            }
            tx.commit()?;
        }
        drop(keys);
        reading.join().expect("the reading thread does not panic")
    })
}

/// Sends each user's key, in order, in groups of 64, read through a connection of its own.
fn keys_ahead(
    db: &Path,
    names: &[String],
    send: &std::sync::mpsc::SyncSender<Vec<Option<String>>>,
) -> rusqlite::Result<()> {
    let conn = rusqlite::Connection::open(db)?;
    let mut hash = conn.prepare("SELECT access_hash FROM users WHERE name = ?1")?;
    for group in names.chunks(64) {
        let keys = group
            .iter()
            .map(|name| {
                let secret: Option<Vec<u8>> = hash.query_row([name], |row| row.get(0))?;
                Ok(secret.and_then(|secret| token_key(&secret)))
            })
            .collect::<rusqlite::Result<_>>()?;
        if send.send(keys).is_err() {
            break;
        }
    }
    Ok(())
}

/// The token's key: the lowercase SHA-512 hex of the access hash without its whitespace;
/// `None` when nothing is left, which the converter refuses.
fn token_key(secret: &[u8]) -> Option<String> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hasher = Sha512::new();
    let mut empty = true;
    for run in secret
        .split(|b| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
        .filter(|run| !run.is_empty())
    {
        hasher.update(run);
        empty = false;
    }
    if empty {
        return None;
    }
    let mut key = String::with_capacity(128);
    for byte in hasher.finalize() {
        key.push(char::from(HEX[usize::from(byte >> 4)]));
        key.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    Some(key)
}

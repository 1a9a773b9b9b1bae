//! Clearing what an earlier converter or restore left when it was killed: in the token
//! folder its temporary token files (`<user>.json-<suffix>`) and its lock sources
//! (`whmtoken.lock-<suffix>`); in `var/cpanel` lock sources and a restore's new
//! `cpanel.config.whmtoken-<suffix>`; in a home folder a restore's new
//! `.accesshash.whmtoken-<suffix>`. `<suffix>` is [`crate::lock::unique_suffix`]'s
//! `<pid hex>-<time hex>-<counter hex>` (a retire's `.accesshash.whmtoken-retiring-<run>` is
//! not one: it is recovered, never swept).
//!
//! A file goes only when its name is exactly one of those shapes, it is a regular file,
//! the process its name records is dead, and it is older than [`STALE_AFTER`], cPanel's
//! limit for a stale dot-lock (a live converter renews its lock source every few seconds).
//! Nothing else is touched: not cPanel's own files, not `<file>.lock` dot-locks (they are
//! broken, when stale, by whoever wants the lock), not the files of a live process.

use std::ffi::CStr;
use std::fs::File;
use std::time::{SystemTime, UNIX_EPOCH};

use camino::Utf8Path;
use rustix::fs::{AtFlags, FileType};
use rustix::io::Errno;

use crate::lock::{SOURCE_PREFIX, STALE_AFTER};

/// Which leftovers a sweep removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Leftovers {
    /// Temporary token files and lock sources: the token folder.
    All,
    /// Lock sources and a restore's new `cpanel.config`: `var/cpanel`, where the
    /// accounting log's dot-lock is linked from.
    VarCpanel,
    /// A restore's new `.accesshash`: a home folder.
    Home,
}

impl Leftovers {
    /// The pid a leftover's `name` records, when it is one this sweep removes.
    fn pid(self, name: &[u8]) -> Option<i32> {
        let temp_of = |file: &str| {
            let name = std::str::from_utf8(name).ok()?;
            suffix_pid(name.strip_prefix(file)?.strip_prefix(".whmtoken-")?)
        };
        match self {
            Self::All => debris_pid(name),
            Self::VarCpanel if name.starts_with(SOURCE_PREFIX.as_bytes()) => debris_pid(name),
            Self::VarCpanel => temp_of("cpanel.config"),
            Self::Home => temp_of(".accesshash"),
        }
    }
}

/// Removes the debris in `folder` (opened as `dir`), and logs how many files went. Never
/// fails the run: a file that cannot be looked at or removed is logged and left.
pub(crate) fn sweep(folder: &Utf8Path, dir: &File, leftovers: Leftovers) -> usize {
    let entries = match rustix::fs::Dir::read_from(dir) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(folder = %folder, error = %e, "could not list a folder for leftover temporary files");
            return 0;
        }
    };
    let mut candidates = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => {
                if let Some(pid) = leftovers.pid(entry.file_name().to_bytes()) {
                    candidates.push((entry.file_name().to_owned(), pid));
                }
            }
            Err(e) => {
                tracing::warn!(folder = %folder, error = %e, "could not list a folder for leftover temporary files");
                break;
            }
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let mut removed = 0;
    for (name, pid) in candidates {
        if remove_if_stale(folder, dir, &name, pid, now) {
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(folder = %folder, removed, "removed temporary files an earlier converter left behind");
    }
    removed
}

/// Removes `name` when it is a regular file older than the limit whose process is dead.
fn remove_if_stale(folder: &Utf8Path, dir: &File, name: &CStr, pid: i32, now: i64) -> bool {
    let shown = folder.join(String::from_utf8_lossy(name.to_bytes()).as_ref());
    let stat = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => stat,
        Err(Errno::NOENT) => return false,
        Err(e) => {
            tracing::warn!(file = %shown, error = %e, "could not check a leftover temporary file");
            return false;
        }
    };
    let limit = i64::try_from(STALE_AFTER.as_secs()).expect("a small limit");
    let old = now.saturating_sub(stat.st_mtime) > limit;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile || !old || alive(pid) {
        return false;
    }
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) => true,
        Err(Errno::NOENT) => false,
        Err(e) => {
            tracing::warn!(file = %shown, error = %e, "could not remove a leftover temporary file");
            false
        }
    }
}

/// Whether a process `pid` exists (one we may not signal exists too).
fn alive(pid: i32) -> bool {
    let Some(pid) = rustix::process::Pid::from_raw(pid) else {
        return true;
    };
    rustix::process::test_kill_process(pid) != Err(Errno::SRCH)
}

/// The pid recorded in a name of one of the two shapes, or `None` for any other name.
fn debris_pid(name: &[u8]) -> Option<i32> {
    let name = std::str::from_utf8(name).ok()?;
    let suffix = match name.strip_prefix(SOURCE_PREFIX) {
        Some(suffix) => suffix,
        None => {
            let (user, suffix) = name.split_once(".json-")?;
            if user.is_empty() || user.contains('.') {
                return None;
            }
            suffix
        }
    };
    suffix_pid(suffix)
}

/// The pid of a `<pid hex>-<time hex>-<counter hex>` suffix, or `None` for any other.
fn suffix_pid(suffix: &str) -> Option<i32> {
    let mut parts = suffix.split('-');
    let (pid, time, counter) = (parts.next()?, parts.next()?, parts.next()?);
    let hex = |part: &str, max: usize| {
        !part.is_empty()
            && part.len() <= max
            && part
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if parts.next().is_some() || !hex(pid, 8) || !hex(time, 32) || !hex(counter, 16) {
        return None;
    }
    i32::from_str_radix(pid, 16).ok().filter(|pid| *pid > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_converters_own_names_are_debris() {
        for (name, pid) in [
            ("whmtoken.lock-1a2b-18c3f0e1d2a3b4c5-0", Some(0x1a2b)),
            ("res1.json-400000-18c3f0e1d2a3b4c5-ff", Some(0x0040_0000)),
            ("a-b_c.json-7fffffff-1-2", Some(i32::MAX)),
        ] {
            assert_eq!(debris_pid(name.as_bytes()), pid, "{name}");
        }
        for name in [
            "res1.json",
            "res1.json.lock",
            "whmtoken.lock",
            "whmtoken.lock-",
            "whmtoken.lock-1-2",
            "whmtoken.lock-1-2-3-4",
            "whmtoken.lock-1A-2-3",
            "whmtoken.lock-0-2-3",
            "whmtoken.lock-80000000-2-3",
            "whmtoken.lock-123456789-2-3",
            "whmtoken.lock--2-3",
            "whmtoken.lock-+1-2-3",
            "res1.json-1-2",
            "res1.json-x-2-3",
            ".json-1-2-3",
            "a.b.json-1-2-3",
            "res1.json.tmp-1-2-3",
            "res1.json.lock-1-2-3",
            "res1.jsonx-1-2-3",
            "cpanel.lock-1-2-3",
        ] {
            assert_eq!(debris_pid(name.as_bytes()), None, "{name}");
        }
    }

    #[test]
    fn a_killed_restores_new_files_are_debris_where_it_writes_them() {
        let home = |name: &str| Leftovers::Home.pid(name.as_bytes());
        let var = |name: &str| Leftovers::VarCpanel.pid(name.as_bytes());
        assert_eq!(home(".accesshash.whmtoken-1a2b-18c3f0e1-0"), Some(0x1a2b));
        assert_eq!(var("cpanel.config.whmtoken-1a2b-18c3f0e1-0"), Some(0x1a2b));
        assert_eq!(var("whmtoken.lock-1a2b-18c3f0e1-0"), Some(0x1a2b));
        for name in [
            ".accesshash.whmtoken-retiring-20231114T221300Z-ab12",
            ".accesshash",
            ".accesshash.whmtoken-1-2",
            "x.accesshash.whmtoken-1-2-3",
            "whmtoken.lock-1a2b-18c3f0e1-0",
            "cpanel.config.whmtoken-1-2-3",
        ] {
            assert_eq!(home(name), None, "{name}");
        }
        for name in [
            "cpanel.config",
            "cpanel.config.whmtoken-x-2-3",
            "res1.json-1-2-3",
        ] {
            assert_eq!(var(name), None, "{name}");
        }
    }

    #[test]
    fn our_own_process_is_alive_and_one_beyond_pid_max_is_not() {
        assert!(alive(i32::try_from(std::process::id()).unwrap()));
        assert!(!alive(0x0040_0000), "pids stay below pid_max, at most 2^22");
        assert!(!alive(i32::MAX));
    }
}

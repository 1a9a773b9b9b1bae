//! Crash points for the crash tests: with the `crash-points` feature (never in a release
//! build), `WHMTOKEN_CRASH_AT=<point>:<n>` kills the process with SIGKILL the `n`th time a
//! write reaches `<point>`, so that a test can stop a run at an exact moment, such as
//! between a rename and the folder fsync that covers it. `WHMTOKEN_HOOK_AT=<point>` runs
//! the shell command in `WHMTOKEN_HOOK` each time a write reaches `<point>`, so that a test
//! can change a file at an exact moment, as a tenant could. `WHMTOKEN_FAIL_AT=<point>:<n>`
//! (several, comma-separated) makes the `n`th flush at `<point>` fail with `EIO` and the
//! others succeed, as ext4 reports a lost write once; `<point>:<n>+` fails every one from
//! the `n`th on, as a disk that stopped writing does.

/// Kills the process here when `WHMTOKEN_CRASH_AT` names this point and its count is reached.
#[cfg(feature = "crash-points")]
pub(crate) fn crash_point(point: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static HITS: AtomicU64 = AtomicU64::new(0);
    let Ok(wanted) = std::env::var("WHMTOKEN_CRASH_AT") else {
        return;
    };
    let Some((name, count)) = wanted.split_once(':') else {
        return;
    };
    if name == point && count.parse() == Ok(HITS.fetch_add(1, Ordering::SeqCst) + 1) {
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    }
}

#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub(crate) fn crash_point(_point: &str) {}

/// Runs `sh -c "$WHMTOKEN_HOOK"` here when `WHMTOKEN_HOOK_AT` names this point.
#[cfg(feature = "crash-points")]
pub(crate) fn test_hook(point: &str) {
    if std::env::var("WHMTOKEN_HOOK_AT").is_ok_and(|p| p == point)
        && let Ok(command) = std::env::var("WHMTOKEN_HOOK")
    {
        let _ = std::process::Command::new("sh")
            .args(["-c", &command])
            .status();
    }
}

#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub(crate) fn test_hook(_point: &str) {}

/// `Err(EIO)` here when `WHMTOKEN_FAIL_AT` names this point and its count; the caller
/// then skips the system call it stands for, as if the disk had failed it.
#[cfg(feature = "crash-points")]
pub(crate) fn fault(point: &str) -> std::io::Result<()> {
    use std::collections::HashMap;
    use std::sync::{Mutex, PoisonError};
    static HITS: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);
    let Ok(wanted) = std::env::var("WHMTOKEN_FAIL_AT") else {
        return Ok(());
    };
    let hit = {
        let mut hits = HITS.lock().unwrap_or_else(PoisonError::into_inner);
        let count = hits
            .get_or_insert_with(HashMap::new)
            .entry(point.to_owned())
            .or_default();
        *count += 1;
        *count
    };
    let fails = wanted
        .split(',')
        .filter_map(|w| w.split_once(':'))
        .any(|(name, n)| {
            name == point
                && match n.strip_suffix('+') {
                    Some(from) => from.parse().is_ok_and(|from: u64| hit >= from),
                    None => n.parse() == Ok(hit),
                }
        });
    if fails {
        Err(std::io::Error::from_raw_os_error(5))
    } else {
        Ok(())
    }
}

#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub(crate) fn fault(_point: &str) -> std::io::Result<()> {
    Ok(())
}

//! Crash points for the crash tests: with the `crash-points` feature (never in a release
//! build), `WHMTOKEN_CRASH_AT=<point>:<n>` kills the process with SIGKILL the `n`th time a
//! write reaches `<point>`, so that a test can stop a run at an exact moment, such as
//! between a rename and the folder fsync that covers it. `WHMTOKEN_HOOK_AT=<point>` runs
//! the shell command in `WHMTOKEN_HOOK` each time a write reaches `<point>`, so that a test
//! can change a file at an exact moment, as a tenant could.

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

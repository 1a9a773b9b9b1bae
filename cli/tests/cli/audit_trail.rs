//! The audit trail survives whatever the tokens survive: no token is stored without a
//! durable line naming it, whether the converter is killed at any moment of a write, the
//! log's disk fills up or the log turns read-only; the run stops storing at the first
//! line it cannot write, and a plain rerun converges with one line per token.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::Value;
use whmtoken_fixtures::{FakeServer, cpanel_style_access_hash};

use crate::{Run, run};

/// The moments of a write at which the crash test kills the converter: after the new
/// token file is synced, after its audit line is durable, after the rename, and after the
/// folder fsync that covers the rename.
const CRASH_POINTS: [&str; 4] = [
    "token-file-synced",
    "audit-line-durable",
    "renamed",
    "folder-synced",
];

fn server_with_resellers(count: usize) -> (FakeServer, Vec<String>) {
    let mut server = FakeServer::new();
    let names: Vec<String> = (0..count).map(|i| format!("res{i:04}")).collect();
    for name in &names {
        server.add_reseller(name, &["list-accts"]);
        server.write_access_hash(name, &cpanel_style_access_hash(name));
    }
    (server, names)
}

/// The converted token's name of each user that has one.
fn stored_tokens(server: &FakeServer, names: &[String]) -> BTreeMap<String, String> {
    names
        .iter()
        .filter_map(|user| {
            // A crash can leave the empty file an import creates first, as cPanel's does.
            let text = std::fs::read_to_string(server.token_file(user)).ok()?;
            if text.is_empty() {
                return None;
            }
            let doc: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{user}'s token file is not whole: {e}"));
            let entry = &doc["tokens"][server.expected_key(user)];
            let name = entry["name"].as_str()?.to_owned();
            Some((user.clone(), name))
        })
        .collect()
}

/// The (user, token name) each `CREATEAPITOKEN` line names.
fn named_by(lines: &[String]) -> Vec<(String, String)> {
    lines
        .iter()
        .map(|line| {
            let fields: Vec<&str> = line.rsplitn(4, ':').collect();
            // …:CREATEAPITOKEN:root:<user>:not-applicable:<name>, split from the right.
            let (name, user) = (fields[0], fields[2]);
            assert!(
                line.contains(":CREATEAPITOKEN:root:"),
                "a whole line: {line:?}"
            );
            (user.to_owned(), name.to_owned())
        })
        .collect()
}

/// Every stored token is named by exactly one line, and every other line names a token
/// that was never stored (its user has none): what a crash between a line and its token
/// leaves.
fn assert_one_line_per_token(server: &FakeServer, names: &[String], context: &str) {
    let stored = stored_tokens(server, names);
    let lines = server.accounting_lines();
    let named = named_by(&lines);
    for (user, name) in &stored {
        let count = named.iter().filter(|(u, n)| u == user && n == name).count();
        assert_eq!(count, 1, "{context}: {user}'s token {name}: {lines:#?}");
    }
    for (user, name) in &named {
        assert!(
            !stored.contains_key(user) || stored[user] == *name,
            "{context}: a line for {user}'s {name}, which holds another token"
        );
    }
}

/// Runs a plain conversion after an interrupted one: it converts every user left, writes
/// exactly one new line for each, and leaves one line per stored token.
fn assert_rerun_converges(server: &FakeServer, names: &[String], context: &str) {
    let before = server.accounting_lines();
    let out = run(server, &["--all-resellers", "--json"]);
    assert_eq!(out.code, 0, "{context}: {}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let mut converted: Vec<(String, String)> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "converted")
        .map(|r| {
            let field = |k: &str| r[k].as_str().unwrap().to_owned();
            (field("user"), field("token_name"))
        })
        .collect();
    let after = server.accounting_lines();
    assert_eq!(
        after[..before.len()],
        before[..],
        "{context}: the log only grows"
    );
    let mut new = named_by(&after[before.len()..]);
    converted.sort();
    new.sort();
    assert_eq!(
        new, converted,
        "{context}: one new line per token the rerun stored"
    );
    assert_eq!(stored_tokens(server, names).len(), names.len(), "{context}");
    for (user, name) in stored_tokens(server, names) {
        assert!(
            named_by(&after).contains(&(user.clone(), name.clone())),
            "{context}: {user}'s {name} has its line"
        );
    }
}

#[test]
fn killed_at_each_moment_of_a_write_no_token_is_left_without_its_line() {
    for point in CRASH_POINTS {
        for nth in [1, 6, 17] {
            let context = format!("killed at {point} #{nth}");
            let (server, names) = server_with_resellers(24);
            let status = Command::new(env!("CARGO_BIN_EXE_convert_accesshash_to_token"))
                .args(["--config", server.config_path().as_str()])
                .args(["--all-resellers", "--jobs", "4"])
                .env_remove("WHMTOKEN_LOG")
                .env("WHMTOKEN_CRASH_AT", format!("{point}:{nth}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert_eq!(status.signal(), Some(9), "{context}: killed there");
            assert_one_line_per_token(&server, &names, &context);
            assert_rerun_converges(&server, &names, &context);
        }
    }
}

/// A mount made for one test, lazily unmounted when dropped.
struct Mount(Utf8PathBuf);

impl Mount {
    /// Runs `mount args…`; `None`, with a note, where this machine cannot mount.
    #[expect(clippy::print_stderr, reason = "a skipped test says why")]
    fn new(target: &Utf8Path, args: &[&str]) -> Option<Self> {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: mounting needs root");
            return None;
        }
        let status = Command::new("mount").args(args).arg(target).status();
        match status {
            Ok(s) if s.success() => Some(Self(target.to_owned())),
            other => {
                eprintln!("skipped: cannot mount here ({other:?})");
                None
            }
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The outcome of a run that met an unwritable log: the users before the failure are
/// converted, those whose lines the failed write carried failed with `first_error`, every
/// later one is not attempted; nothing is stored for any failed user. Returns how many
/// were converted.
fn assert_stopped_at_the_log(
    report: &Value,
    server: &FakeServer,
    first_error: &str,
    cause: &str,
) -> usize {
    let log = server.root().join("var/cpanel/accounting.log");
    let results = report["results"].as_array().unwrap();
    let converted = results
        .iter()
        .take_while(|r| r["status"] == "converted")
        .count();
    let failing = results[converted..]
        .iter()
        .take_while(|r| r["error"].as_str().is_some_and(|e| e.contains(first_error)))
        .count();
    assert!(failing >= 1, "{:#?}", &results[converted..]);
    for result in &results[converted + failing..] {
        assert_eq!(result["status"], "failed", "{result}");
        assert_eq!(
            result["error"],
            format!("not attempted: the audit log {log} cannot be written ({cause})")
        );
    }
    for result in &results[converted..] {
        let user = result["user"].as_str().unwrap();
        let key = server.expected_key(user);
        let doc = server.token_document(user);
        assert!(
            doc.is_none_or(|d| d["tokens"].get(&key).is_none()),
            "{user}: no token without its line"
        );
    }
    converted
}

#[test]
fn a_full_disk_under_the_log_stops_the_run_and_a_rerun_converges() {
    // One user at a time, so that each line is a write of its own.
    full_disk_run(20, "1", 200);
}

#[test]
fn with_many_jobs_nothing_is_stored_after_the_log_filled() {
    // Several lines per write: a failed write frees room that a later, shorter one would
    // fit in; that later write must be refused too. Where the race falls varies, so a few
    // runs.
    for _ in 0..4 {
        full_disk_run(40, "16", 2000);
    }
}

/// Converts `resellers` with `--jobs jobs` while the log is on a 64 KiB file system with
/// `room` bytes left: the run stops storing at the first failed write, and once the log has
/// room again a rerun converges.
fn full_disk_run(resellers: usize, jobs: &str, room: usize) {
    let (server, names) = server_with_resellers(resellers);
    let disk = tempfile::tempdir().unwrap();
    let disk = Utf8Path::from_path(disk.path()).unwrap().to_owned();
    let Some(tmpfs) = Mount::new(&disk, &["-t", "tmpfs", "-o", "size=64k", "tmpfs"]) else {
        return;
    };
    let full_log = disk.join("accounting.log");
    let filler = "Mon Jun  1 13:33:19 2015:ADDRESELLER:root:root:example.com:example\n";
    let mut text = filler.repeat((65536 - room) / filler.len());
    text.push_str(&"x".repeat(65536 - room - text.len() - 1));
    text.push('\n');
    std::fs::write(&full_log, &text).unwrap();
    let log = server.root().join("var/cpanel/accounting.log");
    std::fs::write(&log, "").unwrap();
    let Some(bound) = Mount::new(&log, &["--bind", full_log.as_str()]) else {
        return;
    };

    let out = run(&server, &["--all-resellers", "--json", "--jobs", jobs]);
    assert_eq!(out.code, 65, "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let converted = assert_stopped_at_the_log(
        &report,
        &server,
        "No space left on device",
        "cannot write: No space left on device (os error 28)",
    );
    assert!(converted < names.len(), "{converted} converted");
    let on_disk = std::fs::read_to_string(&log).unwrap();
    assert!(on_disk.starts_with(&text), "earlier lines kept");
    assert!(on_disk.ends_with('\n'), "no torn line left");
    assert_eq!(
        named_by(&server.accounting_lines()[text.lines().count()..]).len(),
        converted,
        "one line per token stored, none for the others"
    );

    // Room again: the run's lines move to the server's own disk, without the filler.
    let written = std::fs::read_to_string(&full_log).unwrap();
    drop(bound);
    drop(tmpfs);
    std::fs::write(&log, &written[text.len()..]).unwrap();
    assert_one_line_per_token(&server, &names, "after the full disk");
    assert_rerun_converges(&server, &names, "after the full disk");
}

#[test]
fn a_read_only_log_stores_nothing_and_a_rerun_converges() {
    let (server, names) = server_with_resellers(12);
    let log = server.root().join("var/cpanel/accounting.log");
    std::fs::write(&log, "").unwrap();
    let Some(bound) = Mount::new(&log, &["--bind", log.as_str()]) else {
        return;
    };
    let Some(read_only) = Mount::new(&log, &["-o", "remount,bind,ro"]) else {
        return;
    };
    let out = run(&server, &["--all-resellers", "--json", "--jobs", "4"]);
    assert_eq!(out.code, 65, "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let converted = assert_stopped_at_the_log(
        &report,
        &server,
        "cannot open for appending: Read-only file system",
        "cannot open for appending: Read-only file system (os error 30)",
    );
    assert_eq!(converted, 0);
    assert!(stored_tokens(&server, &names).is_empty());

    drop(read_only);
    drop(bound);
    assert_rerun_converges(&server, &names, "after the read-only log");
}

#[test]
fn empty_lock_files_left_by_a_crash_are_taken_over_at_once() {
    let (server, names) = server_with_resellers(3);
    let folder = server
        .root()
        .join("var/cpanel/authn/api_tokens_v2/whostmgr");
    std::fs::create_dir_all(&folder).unwrap();
    let token_lock = folder.join(format!("{}.json.lock", names[1]));
    let log_lock = server.root().join("var/cpanel/accounting.log.lock");
    for lock in [&token_lock, &log_lock] {
        std::fs::write(lock, "").unwrap();
    }
    // Far below cPanel's 300 s: the empty locks are not waited on as if held.
    let out = run(
        &server,
        &["--all-resellers", "--json", "--lock-timeout", "3"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_one_line_per_token(&server, &names, "empty locks");
    assert_eq!(stored_tokens(&server, &names).len(), names.len());
    for lock in [&token_lock, &log_lock] {
        assert!(!lock.exists(), "{lock} released after the run");
    }
}

/// One run against an accounting log lock that stays empty and is touched without pause
/// by two threads (someone's lock, never seen the same twice); the run's output.
fn run_against_a_changing_empty_lock(server: &FakeServer) -> Run {
    let log_lock = server.root().join("var/cpanel/accounting.log.lock");
    std::fs::write(&log_lock, "").unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let touchers: Vec<_> = (0..2u64)
        .map(|offset| {
            let (stop, lock) = (std::sync::Arc::clone(&stop), log_lock.clone());
            std::thread::spawn(move || {
                let start = std::time::SystemTime::now();
                let mut n = offset;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    n += 2;
                    let when = start + std::time::Duration::from_micros(n);
                    if let Ok(file) = std::fs::File::options().write(true).open(&lock) {
                        let _ = file.set_modified(when);
                    }
                    std::thread::yield_now();
                }
            })
        })
        .collect();
    let out = run(
        server,
        &["--all-resellers", "--json", "--lock-timeout", "1"],
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for toucher in touchers {
        toucher.join().unwrap();
    }
    out
}

#[test]
fn an_empty_lock_that_keeps_changing_is_waited_on_no_longer_than_the_timeout() {
    // Two looks 50 ms apart that find the lock unchanged take it over as a crash's: on a
    // machine so loaded that both touchers were off the CPU that long, the run rightly took
    // it (exit 0). A few attempts keep that from failing the test; the wait is asserted on
    // the first attempt the touchers kept up with.
    let mut attempts = Vec::new();
    for _ in 0..4 {
        let (server, names) = server_with_resellers(3);
        let out = run_against_a_changing_empty_lock(&server);
        if out.code == 0 {
            attempts.push(out.stderr);
            continue;
        }
        assert_eq!(out.code, 65, "{}", out.stderr);
        assert!(
            out.stderr
                .contains("accounting.log.lock is locked by another process (waited 1 s)"),
            "{}",
            out.stderr
        );
        assert!(stored_tokens(&server, &names).is_empty());
        let log_lock = server.root().join("var/cpanel/accounting.log.lock");
        assert_eq!(
            std::fs::read(&log_lock).unwrap(),
            b"",
            "someone else's lock left alone"
        );
        return;
    }
    panic!("the changing empty lock was taken over on every attempt: {attempts:?}");
}

#[test]
fn large_token_files_beyond_the_memory_budget_do_not_stall_the_ordered_audit_lines() {
    // Ten files of about 14 MiB, ten at once: more than the 64 MiB of token-file bytes held
    // at once, so some users wait for memory while later ones wait for their audit turn.
    let (server, names) = server_with_resellers(10);
    for (n, name) in names.iter().enumerate() {
        server.write_token_file(name, &big_token_file(n, 14 << 20));
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_convert_accesshash_to_token"))
        .args(["--config", server.config_path().as_str()])
        .args(["--all-resellers", "--jobs", "10"])
        .env_remove("WHMTOKEN_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // A stall never ends: give up on it after a generous while rather than hang the suite.
    let mut waited = 0;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if waited > 240 {
            child.kill().unwrap();
            panic!("the run stalled");
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
        waited += 1;
    };
    assert_eq!(status.code(), Some(0));
    assert_eq!(stored_tokens(&server, &names).len(), names.len());
    assert_one_line_per_token(&server, &names, "large files");
}

/// A token file of about `size` bytes: many entries under keys no access hash has.
fn big_token_file(seed: usize, size: usize) -> String {
    let mut text = String::from("{\"tokens\":{");
    let mut n = 0;
    while text.len() < size {
        if n > 0 {
            text.push(',');
        }
        // A key of 128 hex digits that no access hash has (a SHA-512 is never this regular).
        text.push_str(&format!(
            "\"{seed:064x}{n:064x}\":{{\"name\":\"t{n}\",\"create_time\":1700000000,\"expires_at\":null}}"
        ));
        n += 1;
    }
    text.push_str("}}");
    text
}

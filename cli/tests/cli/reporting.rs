//! What a run tells while it runs: restrictions that were not applied, replaced tokens,
//! and `--verbose` lines streamed in the users' order (issue: what a person sees).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use camino::Utf8Path;
use serde_json::Value;
use whmtoken_fixtures::generate;

use crate::{run, server_with_resellers};

const NOT_APPLIED: &str =
    "--acl/--expires/--allow-ip not applied (use --replace to reissue the token with them)";

#[test]
fn restrictions_for_an_already_converted_user_are_reported_as_not_applied() {
    let server = server_with_resellers();
    let first = run(&server, &["--json", "res1"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let doc: Value = serde_json::from_str(&first.stdout).unwrap();
    assert!(
        doc["results"][0].get("restrictions_applied").is_none(),
        "no restrictions asked, no field: {doc}"
    );
    let name = doc["results"][0]["token_name"].as_str().unwrap().to_owned();

    let out = run(&server, &["--verbose", "--acl", "list-accts", "res1"]);
    assert_eq!(out.code, 0, "exit status unchanged: {}", out.stderr);
    assert_eq!(
        out.stderr,
        format!("warning: res1: already converted as “{name}”; {NOT_APPLIED}\n")
    );
    assert_eq!(
        out.stdout,
        format!("Already imported accesshash for “res1” as “{name}”\n")
    );
    let out = run(&server, &["--acl", "clustering", "res2"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (0, ""),
        "converted with it"
    );

    let out = run(&server, &["--json", "--expires", "30d", "res1", "res2"]);
    assert_eq!(out.code, 0);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["results"][0]["restrictions_applied"], false);
    assert_eq!(doc["results"][1]["restrictions_applied"], false);
    assert_eq!(out.stderr.lines().count(), 2, "{}", out.stderr);

    let out = run(
        &server,
        &["--json", "--replace", "--expires", "30d", "res1"],
    );
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["results"][0]["status"], "replaced");
    assert_eq!(doc["results"][0]["restrictions_applied"], true);
    assert_eq!(out.stderr, "");
}

#[test]
fn replace_says_replaced() {
    let server = server_with_resellers();
    assert_eq!(run(&server, &["res1"]).code, 0);
    let out = run(&server, &["--verbose", "--replace", "--dry-run", "res1"]);
    assert!(
        out.stdout
            .starts_with("Would replace accesshash token for “res1” as “accesshash-"),
        "{}",
        out.stdout
    );
    let out = run(&server, &["--verbose", "--replace", "res1"]);
    assert_eq!(out.code, 0);
    assert!(
        out.stdout
            .starts_with("Replaced accesshash token for “res1” as “accesshash-"),
        "{}",
        out.stdout
    );
}

/// Takes the dot-lock of `file` as another live process would (this test's own pid).
fn hold_lock(file: &Utf8Path) -> camino::Utf8PathBuf {
    let lock = camino::Utf8PathBuf::from(format!("{file}.lock"));
    std::fs::write(&lock, format!("{}\ntest\n", std::process::id())).unwrap();
    lock
}

#[test]
fn verbose_lines_stream_in_the_users_order_while_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let dir = Utf8Path::from_path(dir.path()).unwrap();
    let config = generate(2_000, 0, 7).build("files", dir).unwrap();
    let folder = dir.join("var/cpanel/authn/api_tokens_v2/whostmgr");
    std::fs::create_dir_all(&folder).unwrap();
    // The last user's token file is held by "another process": the run cannot finish.
    let last = folder.join("res02000.json");
    let lock = hold_lock(&last);

    let mut child = Command::new(env!("CARGO_BIN_EXE_convert_accesshash_to_token"))
        .args(["--config", config.as_str(), "--verbose", "--all-resellers"])
        .args(["--jobs", "2", "--lock-timeout", "60"])
        .env_remove("WHMTOKEN_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(
        first.starts_with("Imported accesshash for “res00001”"),
        "{first}"
    );
    let mut seen = 1;
    while seen < 1_999 {
        let line = lines.next().unwrap().unwrap();
        seen += 1;
        assert!(
            line.starts_with(&format!("Imported accesshash for “res{seen:05}”")),
            "in the users' order: {line}"
        );
    }
    assert!(
        !last.exists(),
        "1,999 lines were printed while the last user was still waiting"
    );
    std::fs::remove_file(&lock).unwrap();
    let last_line = lines.next().unwrap().unwrap();
    assert!(last_line.contains("“res02000”"), "{last_line}");
    assert!(lines.next().is_none());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(output.stderr).unwrap(),
        "",
        "no progress bar when stderr is not a terminal"
    );
}

#[test]
fn audit_lines_follow_the_users_order_whatever_the_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let dir = Utf8Path::from_path(dir.path()).unwrap();
    let config = generate(300, 1, 9).build("files", dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_convert_accesshash_to_token"))
        .args([
            "--config",
            config.as_str(),
            "--all-resellers",
            "--jobs",
            "16",
        ])
        .env_remove("WHMTOKEN_LOG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let log = std::fs::read_to_string(dir.join("var/cpanel/accounting.log")).unwrap();
    let users: Vec<&str> = log.lines().map(|l| l.split(":").nth(5).unwrap()).collect();
    let expected: Vec<String> = (1..=300).map(|i| format!("res{i:05}")).collect();
    assert_eq!(users, expected);
}

/// Starts a `--verbose` conversion of `resellers` resellers on `jobs` threads whose third
/// user's token file is held by "another process", and waits until the first two users are
/// printed.
fn blocked_run(
    dir: &Utf8Path,
    resellers: usize,
    jobs: &str,
    args: &[&str],
) -> (
    std::process::Child,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
    camino::Utf8PathBuf,
) {
    let config = generate(resellers, 0, 11).build("files", dir).unwrap();
    let folder = dir.join("var/cpanel/authn/api_tokens_v2/whostmgr");
    std::fs::create_dir_all(&folder).unwrap();
    let lock = hold_lock(&folder.join("res00003.json"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_convert_accesshash_to_token"))
        .args(["--config", config.as_str(), "--all-resellers", "--verbose"])
        .args(["--jobs", jobs, "--lock-timeout", "60"])
        .args(args)
        .env_remove("WHMTOKEN_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for n in 1..=2 {
        let line = lines.next().unwrap().unwrap();
        assert!(line.contains(&format!("“res0000{n}”")), "{line}");
    }
    (child, lines, lock)
}

fn signal(child: &std::process::Child, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
}

#[test]
fn a_signal_stops_the_run_between_users_and_a_rerun_converts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let dir = Utf8Path::from_path(dir.path()).unwrap();
    let (mut child, lines, lock) = blocked_run(dir, 10, "1", &[]);
    signal(&child, rustix::process::Signal::TERM);
    // The user being written (if it had started) finishes once the lock is free.
    std::thread::sleep(std::time::Duration::from_millis(200));
    std::fs::remove_file(&lock).unwrap();
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(75), "{stderr}");
    let interrupted: Vec<&str> = stderr
        .lines()
        .map(|l| {
            l.strip_prefix("error: ")
                .and_then(|l| l.strip_suffix(": not attempted: interrupted"))
                .unwrap_or_else(|| panic!("unexpected stderr line: {l}"))
        })
        .collect();
    let expected: Vec<String> = (4..=10).map(|n| format!("res{n:05}")).collect();
    assert!(
        interrupted.ends_with(&expected.iter().map(String::as_str).collect::<Vec<_>>()),
        "{stderr}"
    );
    assert_eq!(
        rest.len() + interrupted.len(),
        8,
        "res00003 either finished or was not started: {rest:?} {stderr}"
    );

    let config = dir.join("whmtoken.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_convert_accesshash_to_token"))
        .args(["--config", config.as_str(), "--all-resellers", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["summary"]["interrupted"], 0);
    assert_eq!(
        doc["summary"]["converted"].as_u64().unwrap() as usize,
        interrupted.len()
    );
}

#[test]
fn a_signal_starts_no_more_users_of_a_chunk() {
    // Two chunks of six (12 users, 2 jobs); the third user's token file is held by "another
    // process", so the first chunk settles res00001 and res00002, then waits for res00003.
    let dir = tempfile::tempdir().unwrap();
    let dir = Utf8Path::from_path(dir.path()).unwrap();
    let (child, lines, lock) = blocked_run(dir, 12, "2", &[]);
    let folder = dir.join("var/cpanel/authn/api_tokens_v2/whostmgr");
    // res00003 waits for its lock by now.
    std::thread::sleep(std::time::Duration::from_millis(200));
    signal(&child, rustix::process::Signal::TERM);
    std::thread::sleep(std::time::Duration::from_millis(200));
    std::fs::remove_file(&lock).unwrap();
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(75));
    assert!(
        rest[0].contains("“res00003”"),
        "being written, it finishes: {rest:?}"
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    for n in 4..=6 {
        let user = format!("res0000{n}");
        assert!(
            stderr.contains(&format!("error: {user}: not attempted: interrupted")),
            "{user} is not started after the signal: {stderr}"
        );
        assert!(!folder.join(format!("{user}.json")).exists());
    }
}

#[test]
fn a_second_signal_ends_the_run_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let dir = Utf8Path::from_path(dir.path()).unwrap();
    let (mut child, _lines, lock) = blocked_run(dir, 10, "1", &[]);
    signal(&child, rustix::process::Signal::TERM);
    std::thread::sleep(std::time::Duration::from_millis(100));
    signal(&child, rustix::process::Signal::INT);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(75));
    assert!(lock.exists(), "it did not wait for the held lock");
}

#[test]
fn a_closed_stderr_changes_nothing_but_the_lost_lines() {
    let server = server_with_resellers();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_convert_accesshash_to_token"))
        .args([
            "--config",
            server.config_path().as_str(),
            "--verbose",
            "root",
            "ghost",
            "res1",
        ])
        .args(["--acl", "create-user-session"])
        .env("WHMTOKEN_LOG", "trace")
        .env("RUST_BACKTRACE", "0")
        .stderr(writer)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(65), "the run's own status");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("Imported accesshash for “root”"),
        "{stdout}"
    );
}

#[test]
fn names_read_from_the_server_cannot_forge_lines() {
    let server = server_with_resellers();
    let key = server.expected_key("res1");
    let forged = "evil\u{1b}[2J\nImported accesshash for “root” as “x”";
    let doc = serde_json::json!({"tokens": {key: {"name": forged, "create_time": 1, "expires_at": null}}});
    server.write_token_file("res1", &doc.to_string());
    let out = run(&server, &["--verbose", "res1"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "Already imported accesshash for “res1” as “evil\\u{1b}[2J\\nImported accesshash for “root” as “x””\n"
    );
    let out = run(&server, &["--json", "res1"]);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        doc["results"][0]["token_name"], forged,
        "JSON escapes as JSON does"
    );
}

#[test]
fn the_real_root_of_a_machine_that_is_not_a_cpanel_server_is_refused() {
    if std::path::Path::new("/var/cpanel").exists() || !rustix::process::geteuid().is_root() {
        return; // a cPanel server, or not root (which is refused earlier, with 77)
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("real.toml");
    std::fs::write(&config, "[backend]\nkind = \"files\"\nroot = \"/\"\n").unwrap();
    for extra in [&[][..], &["--dry-run"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_convert_accesshash_to_token"))
            .args(["--config", config.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(78), "{extra:?}");
        assert_eq!(
            String::from_utf8(out.stderr).unwrap(),
            "error: cannot open the backend: /: not a cPanel server: it has no var/cpanel\n"
        );
    }
}

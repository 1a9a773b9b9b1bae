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

//! A disk that fails a flush: the converter's binary built for the tests fails the `n`th
//! flush at a named place with `EIO` (`WHMTOKEN_FAIL_AT`, the files backend's
//! `crash-points`), the others succeeding, as ext4 reports a lost write once. Stored means
//! durable: after the first failed flush in the token folder no later user is reported
//! stored, no line names a token whose file was not on disk first, and a failed log sync
//! leaves no fragment behind.

use serde_json::Value;
use whmtoken_fixtures::{FakeServer, cpanel_style_access_hash};

use crate::{Run, run_raw};

fn server_with_resellers(count: usize) -> (FakeServer, Vec<String>) {
    let mut server = FakeServer::new();
    let names: Vec<String> = (0..count).map(|i| format!("res{i:04}")).collect();
    for name in &names {
        server.add_reseller(name, &["list-accts"]);
        server.write_access_hash(name, &cpanel_style_access_hash(name));
    }
    (server, names)
}

/// Converts every reseller, one at a time, with `fail` as `WHMTOKEN_FAIL_AT`.
fn convert_failing(server: &FakeServer, fail: &str) -> (Run, Vec<Value>) {
    convert_failing_on(server, fail, 1)
}

/// Converts every reseller on `jobs` threads (chunks of several users each when above
/// one), with `fail` as `WHMTOKEN_FAIL_AT`.
fn convert_failing_on(server: &FakeServer, fail: &str, jobs: usize) -> (Run, Vec<Value>) {
    let config = server.config_path();
    let jobs = jobs.to_string();
    let args = [
        "--config",
        config.as_str(),
        "--all-resellers",
        "--json",
        "--jobs",
        &jobs,
    ];
    let out = run_raw(&args, &[("WHMTOKEN_FAIL_AT", fail)]);
    let report: Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    let results = report["results"].as_array().unwrap().clone();
    (out, results)
}

/// The users the log's `CREATEAPITOKEN` lines name.
fn users_in_log(server: &FakeServer) -> Vec<String> {
    server
        .accounting_lines()
        .iter()
        .map(|line| line.split(':').rev().nth(2).unwrap().to_owned())
        .collect()
}

fn has_token(server: &FakeServer, user: &str) -> bool {
    server
        .token_document(user)
        .is_some_and(|doc| doc["tokens"].get(server.expected_key(user)).is_some())
}

/// The results after `failed_at` (0-based) are all not attempted, naming the token folder.
fn assert_rest_not_attempted(server: &FakeServer, results: &[Value], failed_at: usize) {
    let folder = server
        .root()
        .join("var/cpanel/authn/api_tokens_v2/whostmgr");
    for result in &results[failed_at + 1..] {
        assert_eq!(result["status"], "failed", "{result}");
        assert_eq!(
            result["error"],
            format!(
                "not attempted: an earlier flush of {folder} failed (Input/output error (os error 5))"
            ),
            "{result}"
        );
        assert!(!has_token(server, result["user"].as_str().unwrap()));
    }
}

#[test]
fn after_a_failed_folder_flush_no_later_user_is_reported_stored() {
    let (server, names) = server_with_resellers(6);
    // Only the third flush fails: ext4 then reports later ones as done, though its journal
    // aborted and nothing more reaches the disk.
    let (out, results) = convert_failing(&server, "token-folder-sync:3");
    assert_eq!(out.code, 65, "{}", out.stderr);
    assert_eq!(results[0]["status"], "converted");
    assert_eq!(results[1]["status"], "converted");
    let folder = server
        .root()
        .join("var/cpanel/authn/api_tokens_v2/whostmgr");
    assert_eq!(
        results[2]["error"],
        format!(
            "{folder}: its audit line was written, but the token was not stored: Input/output error (os error 5)"
        )
    );
    assert_rest_not_attempted(&server, &results, 2);
    assert_eq!(users_in_log(&server), names[..3]);
}

#[test]
fn a_journal_found_aborted_after_the_flushes_fails_the_user_and_stops_the_rest() {
    // ext4 returns 0 from an fsync of what a failed commit held; the probe after a user's
    // flushes (the folder's mode set twice) finds the aborted journal.
    let (server, names) = server_with_resellers(5);
    let (out, results) = convert_failing(&server, "journal-probe:3");
    assert_eq!(out.code, 65, "{}", out.stderr);
    assert_eq!(results[0]["status"], "converted");
    let folder = server
        .root()
        .join("var/cpanel/authn/api_tokens_v2/whostmgr");
    assert_eq!(
        results[1]["error"],
        format!(
            "{folder}: its audit line was written, but the token was not stored: Input/output error (os error 5)"
        ),
        "{}",
        names[1]
    );
    assert_rest_not_attempted(&server, &results, 1);
}

#[test]
fn after_a_failed_token_file_flush_its_line_is_never_written_and_nothing_more_is_stored() {
    let (server, names) = server_with_resellers(6);
    let (out, results) = convert_failing(&server, "token-file-sync:2");
    assert_eq!(out.code, 65, "{}", out.stderr);
    assert_eq!(results[0]["status"], "converted");
    let error = results[1]["error"].as_str().unwrap();
    let temp = server.token_file(&names[1]);
    assert!(
        error.starts_with(&format!("{temp}-"))
            && error.ends_with(": Input/output error (os error 5)"),
        "{error}"
    );
    assert!(!has_token(&server, &names[1]));
    assert_rest_not_attempted(&server, &results, 1);
    assert_eq!(
        users_in_log(&server),
        names[..1],
        "no line for a token file that was not on disk"
    );
}

#[test]
fn in_chunks_no_line_is_written_once_a_flush_of_the_chunk_failed() {
    // Two chunks of three users; only the first two token-file flushes succeed, so each
    // chunk meets a failed flush before its users' lines are due, whatever the threads'
    // order: the users flushed before it get no line either.
    let (server, names) = server_with_resellers(6);
    let (out, results) = convert_failing_on(&server, "token-file-sync:3+", 2);
    assert_eq!(out.code, 65, "{}", out.stderr);
    for result in &results {
        assert_eq!(result["status"], "failed", "{result}");
    }
    assert_eq!(
        users_in_log(&server),
        Vec::<String>::new(),
        "{}",
        out.stderr
    );
    assert!(names.iter().all(|name| !has_token(&server, name)));
}

#[test]
fn in_chunks_each_user_s_error_names_its_own_file_or_the_folder() {
    let (server, _) = server_with_resellers(8);
    let (out, results) = convert_failing_on(&server, "token-file-datasync:2", 2);
    assert_eq!(out.code, 65, "{}", out.stderr);
    let folder = server
        .root()
        .join("var/cpanel/authn/api_tokens_v2/whostmgr");
    let failed: Vec<&Value> = results.iter().filter(|r| r["status"] == "failed").collect();
    assert!(!failed.is_empty());
    for result in failed {
        let user = result["user"].as_str().unwrap();
        let error = result["error"].as_str().unwrap();
        let own = server.token_file(user);
        assert!(
            error.starts_with(&format!("{own}: "))
                || error.starts_with(&format!("{folder}: "))
                || error.starts_with("not attempted: "),
            "{user}: {error}"
        );
    }
}

#[test]
fn a_failed_rename_after_the_line_says_the_line_names_a_token_not_stored() {
    let (server, names) = server_with_resellers(3);
    let (out, results) = convert_failing(&server, "rename:2");
    assert_eq!(out.code, 65, "{}", out.stderr);
    assert_eq!(
        results[1]["error"],
        format!(
            "{}: its audit line was written, but the token was not stored: Input/output error (os error 5)",
            server.token_file(&names[1])
        )
    );
    assert!(!has_token(&server, &names[1]));
    assert_eq!(results[2]["status"], "converted", "a rename is not a flush");
    assert_eq!(users_in_log(&server), names);
}

#[test]
fn a_failed_log_sync_is_cut_back_and_stops_the_run() {
    let (server, names) = server_with_resellers(4);
    let (out, results) = convert_failing(&server, "log-sync:2");
    assert_eq!(out.code, 65, "{}", out.stderr);
    assert_eq!(results[0]["status"], "converted");
    let log = server.root().join("var/cpanel/accounting.log");
    assert_eq!(
        results[1]["error"],
        format!("{log}: cannot sync: Input/output error (os error 5)")
    );
    assert_eq!(
        users_in_log(&server),
        names[..1],
        "the lines of the failed sync are cut off"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.ends_with('\n') && text.lines().count() == 1,
        "{text:?}"
    );
    for result in &results[2..] {
        assert!(
            result["error"]
                .as_str()
                .unwrap()
                .starts_with("not attempted: the audit log"),
            "{result}"
        );
    }
}

//! Safe to re-run and to automate: idempotence, `--replace`, `--dry-run`, `--json` and the
//! least-privilege options (issue: automation).

use std::fs;

use serde_json::{Value, json};
use whmtoken_fixtures::{FakeServer, TreeSnapshot};

use crate::{VECTOR_KEY, now, run, server_with_resellers};

fn json_report(server: &FakeServer, args: &[&str]) -> (i32, Value, String) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = run(server, &all);
    let doc = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    (out.code, doc, out.stderr)
}

fn statuses(report: &Value) -> Vec<(String, String)> {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["user"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_second_run_keeps_the_entry_and_its_restrictions() {
    let server = server_with_resellers();
    assert_eq!(run(&server, &["root"]).code, 0);
    // An admin restricts the converted token afterwards.
    let mut doc = server.token_document("root").unwrap();
    doc["tokens"][VECTOR_KEY]["acls"] = json!(["clustering"]);
    doc["tokens"][VECTOR_KEY]["whitelist_ips"] = json!(["192.0.2.1"]);
    server.write_token_file("root", &doc.to_string());
    let before = fs::read(server.token_file("root")).unwrap();

    let out = run(&server, &["--verbose", "root"]);
    assert_eq!(out.code, 0, "{out:?}");
    let name = doc["tokens"][VECTOR_KEY]["name"].as_str().unwrap();
    assert_eq!(
        out.stdout,
        format!("Already imported accesshash for \u{201c}root\u{201d} as \u{201c}{name}\u{201d}\n")
    );
    assert_eq!(
        fs::read(server.token_file("root")).unwrap(),
        before,
        "the file is untouched"
    );
    assert_eq!(
        server.accounting_lines().len(),
        1,
        "no audit line without a write"
    );
}

#[test]
fn replace_writes_a_new_entry_with_the_new_restrictions() {
    let server = server_with_resellers();
    assert_eq!(run(&server, &["res1"]).code, 0);
    let (code, report, _) = json_report(
        &server,
        &[
            "--replace",
            "--acl",
            "list-accts",
            "--expires",
            "30d",
            "res1",
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(
        statuses(&report),
        [("res1".to_owned(), "replaced".to_owned())]
    );
    let doc = server.token_document("res1").unwrap();
    let tokens = doc["tokens"].as_object().unwrap();
    assert_eq!(tokens.len(), 1);
    let entry = &tokens[&server.expected_key("res1")];
    assert_eq!(entry["acls"], json!(["list-accts"]));
    let expires = entry["expires_at"].as_i64().unwrap();
    assert!((now() + 30 * 86_400 - expires).abs() < 60);
    assert_eq!(server.accounting_lines().len(), 2);
}

#[test]
fn dry_run_changes_no_byte_and_predicts_the_real_run() {
    let mut server = server_with_resellers();
    server.add_reseller("nohash", &[]);
    assert_eq!(run(&server, &["res2"]).code, 0);
    let before = TreeSnapshot::of(server.root());

    let args = ["--all-resellers"];
    let (code, dry, _) = json_report(&server, &[&["--dry-run"][..], &args].concat());
    assert_eq!(code, 0);
    assert_eq!(dry["dry_run"], json!(true));
    assert_eq!(
        TreeSnapshot::of(server.root()),
        before,
        "dry run wrote something"
    );
    let out = run(&server, &["-n", "--verbose", "res1"]);
    assert!(
        out.stdout
            .starts_with("Would import accesshash for \u{201c}res1\u{201d} as \u{201c}accesshash-"),
        "{out:?}"
    );
    assert_eq!(TreeSnapshot::of(server.root()), before);

    let (code, real, _) = json_report(&server, &args);
    assert_eq!(code, 0);
    assert_eq!(statuses(&dry), statuses(&real));
    assert_eq!(
        statuses(&real),
        [
            ("nohash", "no_accesshash"),
            ("res1", "converted"),
            ("res2", "already_converted")
        ]
        .map(|(u, s)| (u.to_owned(), s.to_owned()))
    );
}

#[test]
fn dry_run_reports_failures_with_the_real_exit_status() {
    let server = server_with_resellers();
    let before = TreeSnapshot::of(server.root());
    let out = run(
        &server,
        &["--dry-run", "nosuchuser", "res1", "--acl", "create-acct"],
    );
    assert_eq!(out.code, 65);
    assert_eq!(
        out.stderr,
        "error: nosuchuser: User nosuchuser is not a reseller.\n"
    );
    assert_eq!(TreeSnapshot::of(server.root()), before);
}

#[test]
fn json_follows_the_documented_schema_and_holds_no_secret() {
    let mut server = server_with_resellers();
    server.add_reseller("nohash", &[]);
    let (code, report, stderr) = json_report(&server, &["root", "nohash", "ghost", "res1"]);
    assert_eq!(code, 65);
    assert_eq!(stderr, "error: ghost: User ghost is not a reseller.\n");
    let top: Vec<&str> = report
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(top, ["version", "dry_run", "backend", "results", "summary"]);
    assert_eq!(
        (report["version"].clone(), report["backend"].clone()),
        (json!(1), json!("files"))
    );
    assert_eq!(
        report["summary"],
        json!({"converted": 2, "replaced": 0, "already_converted": 0, "no_accesshash": 1, "failed": 1, "interrupted": 0})
    );
    let results = report["results"].as_array().unwrap();
    assert_eq!(results[0]["token_hash_prefix"], json!(&VECTOR_KEY[..12]));
    assert!(
        results[0]["token_name"]
            .as_str()
            .unwrap()
            .starts_with("accesshash-")
    );
    assert_eq!(
        results[1],
        json!({"user": "nohash", "status": "no_accesshash"})
    );
    assert_eq!(
        results[2],
        json!({"user": "ghost", "status": "failed", "error": "User ghost is not a reseller."})
    );
    let text = report.to_string();
    for user in ["root", "res1"] {
        let secret = fs::read_to_string(server.access_hash_path(user))
            .unwrap()
            .replace('\n', "");
        for window in secret.as_bytes().windows(16).step_by(7) {
            assert!(
                !text.contains(std::str::from_utf8(window).unwrap()),
                "secret leaked for {user}"
            );
        }
        assert!(
            !text.contains(&server.expected_key(user)[..13]),
            "more than 12 hex characters shown"
        );
    }
}

#[test]
fn acl_option_grants_exactly_what_the_user_holds() {
    let server = server_with_resellers();
    let out = run(&server, &["--acl", "list-accts,clustering", "res1", "root"]);
    assert_eq!(out.code, 65);
    assert_eq!(
        out.stderr,
        "error: res1: cannot grant ACL \u{201c}clustering\u{201d}: res1 does not hold it\n"
    );
    assert!(!server.token_file("res1").exists());
    let root = server.token_document("root").unwrap();
    assert_eq!(
        root["tokens"][VECTOR_KEY]["acls"],
        json!(["clustering", "list-accts"])
    );

    let out = run(
        &server,
        &[
            "--acl",
            "list-accts",
            "--acl",
            "create-acct",
            "--acl",
            "list-accts",
            "res1",
        ],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let doc = server.token_document("res1").unwrap();
    assert_eq!(
        doc["tokens"][server.expected_key("res1")]["acls"],
        json!(["create-acct", "list-accts"])
    );

    let out = run(&server, &["--acl", "all", "res2"]);
    assert_eq!(out.code, 0, "{out:?}");
    let doc = server.token_document("res2").unwrap();
    assert!(
        doc["tokens"][server.expected_key("res2")]
            .get("acls")
            .is_none(),
        "all is full access"
    );
}

#[test]
fn only_builtin_acls_may_be_granted() {
    let server = server_with_resellers();
    let out = run(&server, &["--acl", "no-such-acl"]);
    assert_eq!(out.code, 64, "a usage error, before any user is read");
    assert!(out.stderr.contains("no-such-acl"), "{}", out.stderr);
    assert!(!server.token_file("root").exists());
}

#[test]
fn create_user_session_is_granted_with_a_warning() {
    let server = server_with_resellers();
    let out = run(&server, &["--acl", "create-user-session"]);
    assert_eq!(out.code, 0);
    assert!(
        out.stderr
            .starts_with("warning: the ACL \u{201c}create-user-session\u{201d}"),
        "{}",
        out.stderr
    );
}

#[test]
fn allow_ip_is_validated_and_stored_normalised() {
    let server = server_with_resellers();
    let out = run(
        &server,
        &[
            "--allow-ip",
            "2001:db8::1",
            "--allow-ip",
            "192.0.2.7/32",
            "--allow-ip",
            "10.0.0.0/8",
        ],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let doc = server.token_document("root").unwrap();
    assert_eq!(
        doc["tokens"][VECTOR_KEY]["whitelist_ips"],
        json!([
            "10.0.0.0/8",
            "192.0.2.7",
            "2001:0db8:0000:0000:0000:0000:0000:0001"
        ])
    );

    for bad in [
        &["--allow-ip", "10.0.0.0/33"][..],
        &["--allow-ip", "not-an-ip"],
        &["--expires", "1000000000"],
        &["--expires", "soon"],
    ] {
        let before = TreeSnapshot::of(server.root());
        let out = run(&server, &[bad, &["res1"]].concat());
        assert_eq!(out.code, 64, "{bad:?}: {out:?}");
        assert!(out.stderr.contains(bad[1]), "{bad:?}: {}", out.stderr);
        assert_eq!(TreeSnapshot::of(server.root()), before);
    }
    let many: Vec<String> = (0..101).map(|i| format!("--allow-ip=10.1.0.{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let out = run(&server, &[&many[..], &["res1"]].concat());
    assert_eq!(out.code, 64);
    assert!(out.stderr.contains("at most 100"), "{}", out.stderr);
}

#[test]
fn expires_accepts_epochs_and_spans() {
    let server = server_with_resellers();
    assert_eq!(run(&server, &["--expires", "1999999999", "res1"]).code, 0);
    let doc = server.token_document("res1").unwrap();
    assert_eq!(
        doc["tokens"][server.expected_key("res1")]["expires_at"],
        json!(1_999_999_999)
    );
    assert_eq!(run(&server, &["--expires", "12h", "res2"]).code, 0);
    let doc = server.token_document("res2").unwrap();
    let at = doc["tokens"][server.expected_key("res2")]["expires_at"]
        .as_i64()
        .unwrap();
    assert!((now() + 12 * 3600 - at).abs() < 60);
}

#[test]
fn a_live_lock_times_out_as_a_retryable_failure_and_a_stale_one_is_broken() {
    let server = server_with_resellers();
    server.write_token_file("res1", "");
    let lock = format!("{}.lock", server.token_file("res1"));
    // Held by this (live) test process.
    fs::write(&lock, format!("{}\nsome-writer\n", std::process::id())).unwrap();
    let out = run(&server, &["--lock-timeout", "0.3", "res1", "res2"]);
    assert_eq!(out.code, 65, "{out:?}");
    assert!(
        out.stderr.contains("is locked by another process")
            && out.stderr.contains("try again later"),
        "{}",
        out.stderr
    );
    assert!(
        server.token_file("res2").exists(),
        "the other users still run"
    );
    assert!(fs::metadata(&lock).is_ok(), "a live lock is not broken");

    // The owner died: the lock is stale and broken.
    fs::write(&lock, "999999999\ngone\n").unwrap();
    let out = run(&server, &["--lock-timeout", "0.3", "res1"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(fs::metadata(&lock).is_err());
}

#[test]
fn a_closed_stdout_keeps_the_error_lines_and_the_exit_status() {
    let server = server_with_resellers();
    for format in [&["--verbose"][..], &["--json"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader); // like `| head -c0`: nobody reads
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_convert_accesshash_to_token"))
            .args([
                "--config",
                server.config_path().as_str(),
                "root",
                "ghost",
                "res1",
                "--replace",
            ])
            .args(format)
            .env_remove("WHMTOKEN_LOG")
            .stdout(writer)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(65), "{format:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(
            stderr, "error: ghost: User ghost is not a reseller.\n",
            "{format:?}"
        );
    }
}

#[test]
fn a_stdout_that_cannot_be_written_exits_74_after_doing_the_work() {
    let server = server_with_resellers();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_convert_accesshash_to_token"))
        .args(["--config", server.config_path().as_str(), "--json", "res1"])
        .env_remove("WHMTOKEN_LOG")
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(74));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with("error: cannot write output: ") && stderr.lines().count() == 1,
        "{stderr}"
    );
    assert!(
        server.token_document("res1").is_some(),
        "the conversion itself was done"
    );
}

#[test]
fn a_held_accounting_log_stores_nothing_and_stops_the_run_until_a_rerun() {
    let server = server_with_resellers();
    let log = server.root().join("var/cpanel/accounting.log");
    let lock = server.root().join("var/cpanel/accounting.log.lock");
    // Another live process (this test's) holds the log's dot-lock.
    fs::write(&lock, format!("{}\nwhm\n", std::process::id())).unwrap();
    let (code, report, stderr) = json_report(
        &server,
        &[
            "--lock-timeout",
            "0.2",
            "--jobs",
            "1",
            "root",
            "res1",
            "res2",
        ],
    );
    assert_eq!(code, 65);
    let results = report["results"].as_array().unwrap();
    for (result, user) in results.iter().zip(["root", "res1", "res2"]) {
        assert_eq!(result["status"], json!("failed"), "{result}");
        assert_eq!(
            result["token_name"],
            json!(null),
            "nothing stored: {result}"
        );
        let error = result["error"].as_str().unwrap();
        if user == "root" {
            assert!(
                error.contains("accounting.log.lock is locked by another process (waited 0.2 s)"),
                "{error}"
            );
        } else {
            assert_eq!(
                error,
                format!(
                    "not attempted: the audit log {log} cannot be written (it is locked by another process)"
                )
            );
        }
        let doc = server.token_document(user);
        let tokens = doc.as_ref().and_then(|d| d["tokens"].as_object().cloned());
        assert!(
            tokens.is_none_or(|t| !t.contains_key(&server.expected_key(user))),
            "{user}: no token without its audit line: {doc:?}"
        );
    }
    assert_eq!(stderr.lines().count(), 3, "{stderr}");
    assert!(server.accounting_lines().is_empty());

    fs::remove_file(&lock).unwrap();
    let (code, report, _) = json_report(&server, &["root", "res1", "res2"]);
    assert_eq!(code, 0, "{report}");
    let lines = server.accounting_lines();
    for result in report["results"].as_array().unwrap() {
        assert_eq!(result["status"], json!("converted"), "{result}");
        let naming = format!(
            ":CREATEAPITOKEN:root:{}:not-applicable:{}",
            result["user"].as_str().unwrap(),
            result["token_name"].as_str().unwrap()
        );
        let count = lines.iter().filter(|l| l.ends_with(&naming)).count();
        assert_eq!(count, 1, "one line per token: {lines:?}");
    }
}

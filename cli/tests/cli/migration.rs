//! `whmtoken audit` and `whmtoken verify` on both backends: every finding code, every verify
//! outcome, the JSON shapes and the exit statuses (issue: audit and verify).

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::{Value, json};
use whmtoken_core::{AccessHash, TokenHash};
use whmtoken_fixtures::{Scenario, cpanel_style_access_hash};

use crate::{Run, backends, whmtoken};

fn key(secret: &str) -> String {
    AccessHash::from_bytes(secret.as_bytes().to_vec())
        .token_hash()
        .unwrap()
        .as_str()
        .to_owned()
}

/// A server in `dir` as `backend`: root converted and its access hash still there; `res1`
/// unconverted; `res2` with a token of each risky kind; `plain`, not a reseller.
fn server(backend: &str, dir: &Utf8Path, allow_deprecated: bool) -> Utf8PathBuf {
    let root_hash = cpanel_style_access_hash("root");
    let res1_hash = cpanel_style_access_hash("res1");
    let text = format!(
        r#"
[server]
allow_deprecated_accesshash = {allow_deprecated}

[[user]]
name = "root"
accesshash = "{root}"
[[user.token]]
hash = "{root_key}"
name = "accesshash-1700000000"
create_time = 1700000000
acls = ["list-accts"]
whitelist_ips = ["10.0.0.0/8"]
expires_at = 4000000000

[[user]]
name = "res1"
reseller = ["list-accts", "create-acct"]
accesshash = "{res1}"

[[user]]
name = "res2"
reseller = ["list-accts"]
[[user.token]]
hash = "{open_key}"
name = "open"
create_time = 1700000000
[[user.token]]
hash = "{all_key}"
name = "everything"
create_time = 1700000000
acls = ["all"]
whitelist_ips = ["192.0.2.1"]
expires_at = 4000000000
[[user.token]]
hash = "{session_key}"
name = "sessions"
create_time = 1700000000
acls = ["create-user-session", "list-accts", "create-acct"]
whitelist_ips = ["192.0.2.0/24"]
expires_at = 4000000000
[[user.token]]
hash = "{old_key}"
name = "old"
create_time = 1600000000
acls = ["list-accts"]
whitelist_ips = ["192.0.2.1"]
expires_at = 1650000000

[[user]]
name = "plain"
"#,
        root = root_hash.escape_default(),
        res1 = res1_hash.escape_default(),
        root_key = key(&root_hash),
        open_key = key("open-secret"),
        all_key = key("all-secret"),
        session_key = key("session-secret"),
        old_key = key("old-secret"),
    );
    let scenario = Scenario::parse(Utf8Path::new("migration scenario"), &text).unwrap();
    scenario.build(backend, dir).unwrap()
}

fn codes(account: &Value) -> Vec<(String, String)> {
    account["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_owned(),
                f["severity"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn account<'a>(doc: &'a Value, user: &str) -> &'a Value {
    doc["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["user"] == user)
        .unwrap_or_else(|| panic!("no account {user} in {doc:#}"))
}

fn pair(code: &str, severity: &str) -> (String, String) {
    (code.to_owned(), severity.to_owned())
}

#[test]
fn audit_reports_every_finding_on_both_backends() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(dir.path()).unwrap();
        let config = server(backend, dir, false);
        let out = whmtoken(&config, &["audit", "--json"], "");
        assert_eq!(out.code, 1, "{backend}: a critical finding: {}", out.stderr);
        let doc: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(doc["version"], 1);
        assert_eq!(doc["backend"], backend);
        assert_eq!(doc["server"]["allow_deprecated_accesshash"], false);
        let users: Vec<&str> = doc["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["user"].as_str().unwrap())
            .collect();
        assert_eq!(users, ["root", "res1", "res2"], "{backend}");

        let root = account(&doc, "root");
        assert_eq!(root["accesshash"], "converted", "{backend}");
        assert_eq!(
            codes(root),
            [pair("accesshash_active", "warning")],
            "{backend}"
        );
        let token = &root["tokens"][0];
        assert_eq!(token["from_accesshash"], true);
        assert_eq!(token["hash_prefix"].as_str().unwrap().len(), 12);
        assert_eq!(token["acls"], json!(["list-accts"]));
        assert_eq!(token["allow_ips"], json!(["10.0.0.0/8"]));
        assert_eq!(token["full_access"], false);

        let res1 = account(&doc, "res1");
        assert_eq!(res1["accesshash"], "not_converted");
        assert_eq!(
            codes(res1),
            [pair("accesshash_not_converted", "critical")],
            "{backend}"
        );

        let res2 = account(&doc, "res2");
        assert_eq!(res2["accesshash"], "none");
        assert_eq!(
            codes(res2),
            [
                pair("unrestricted_token", "warning"),
                pair("no_expiry", "info"),
                pair("dangerous_acl", "warning"),
                pair("dangerous_acl", "warning"),
                pair("expired", "info"),
            ],
            "{backend}"
        );
        let old = &res2["tokens"][3];
        assert_eq!(
            (old["name"].clone(), old["expired"].clone()),
            (json!("old"), json!(true))
        );
        assert_eq!(
            doc["summary"],
            json!({"critical": 1, "warning": 4, "info": 2}),
            "{backend}"
        );
        assert!(
            !out.stdout
                .contains(&key(&cpanel_style_access_hash("root"))[12..])
        );

        // The same server with access hashes still accepted.
        let dir2 = dir.join("on");
        let config = server(backend, &dir2, true);
        let out = whmtoken(&config, &["audit", "--json"], "");
        assert_eq!(out.code, 0, "{backend}: nothing critical: {}", out.stdout);
        let doc: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(
            codes(&doc["server"]),
            [pair("deprecated_auth_enabled", "warning")]
        );
        assert_eq!(
            codes(account(&doc, "res1")),
            [pair("accesshash_not_converted", "warning")]
        );
        let out = whmtoken(&config, &["audit", "--fail-on", "warning"], "");
        assert_eq!(out.code, 1, "{backend}");
        assert!(
            out.stdout.ends_with("\n0 critical, 6 warnings, 2 info\n"),
            "{}",
            out.stdout
        );
        let out = whmtoken(&config, &["audit", "--fail-on", "never", "res1"], "");
        assert_eq!(out.code, 0, "{backend}");
        assert!(
            out.stdout.contains("\nres1: access hash not converted\n"),
            "{}",
            out.stdout
        );
        assert!(
            !out.stdout.contains("\nroot:"),
            "only the named account: {}",
            out.stdout
        );
    }
}

#[test]
fn audit_reports_orphan_and_unsafe_files_without_stopping() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(dir.path()).unwrap();
        let config = server(backend, dir, false);
        let orphan = TokenHash::of_secret(b"orphan");
        match backend {
            "files" => {
                let folder = dir.join("var/cpanel/authn/api_tokens_v2/whostmgr");
                let ghost = folder.join("ghost.json");
                std::fs::write(
                    &ghost,
                    json!({"tokens": {orphan.as_str(): {"name": "left", "create_time": 1, "expires_at": null}}})
                        .to_string(),
                )
                .unwrap();
                std::fs::set_permissions(&ghost, std::fs::Permissions::from_mode(0o600)).unwrap();
                let res2 = folder.join("res2.json");
                std::fs::set_permissions(&res2, std::fs::Permissions::from_mode(0o666)).unwrap();
                let link = dir.join("home/res1/.accesshash");
                std::fs::remove_file(&link).unwrap();
                std::os::unix::fs::symlink(dir.join("root/.accesshash"), &link).unwrap();
            }
            _ => {
                let db = whmtoken_backend_sqlite::SqliteBackend::open(
                    &whmtoken_backend_sqlite::SqliteConfig {
                        path: dir.join("server.db"),
                    },
                )
                .unwrap();
                db.insert_token("ghost", &orphan, &json!({"name": "left", "create_time": 1}))
                    .unwrap();
                db.insert_token("res2", &TokenHash::of_secret(b"bad"), &json!({"name": 5}))
                    .unwrap();
                db.set_access_hash("res1", &vec![b'a'; AccessHash::MAX_LEN + 1])
                    .unwrap();
            }
        }
        let out = whmtoken(&config, &["audit", "--json"], "");
        assert_eq!(out.code, 1, "{backend}: {}", out.stderr);
        let doc: Value = serde_json::from_str(&out.stdout).unwrap();
        let ghost = account(&doc, "ghost");
        assert_eq!(
            codes(ghost),
            [
                pair("orphan_token_file", "warning"),
                pair("unrestricted_token", "warning"),
                pair("no_expiry", "info")
            ],
            "{backend}"
        );
        let res2 = account(&doc, "res2");
        assert_eq!(
            codes(res2),
            [pair("unsafe_token_file", "critical")],
            "{backend}"
        );
        let res1 = account(&doc, "res1");
        assert_eq!(res1["accesshash"], "unreadable", "{backend}");
        assert_eq!(
            codes(res1),
            [pair("unsafe_accesshash", "critical")],
            "{backend}"
        );
    }
}

/// Runs `whmtoken verify` for `user` with `secret` on stdin and extra `args`.
fn verify(config: &Utf8Path, user: &str, secret: &str, args: &[&str]) -> Run {
    let mut all = vec!["verify", user];
    all.extend_from_slice(args);
    whmtoken(config, &all, secret)
}

#[test]
fn verify_answers_as_cpanels_server_on_both_backends() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(dir.path()).unwrap();
        let config = server(backend, dir, false);
        let root_hash = cpanel_style_access_hash("root");
        let res1_hash = cpanel_style_access_hash("res1");
        let check = |user, secret: &str, args: &[&str], code, line: &str| {
            let out = verify(&config, user, secret, args);
            assert_eq!(
                (out.code, out.stdout.as_str()),
                (code, format!("{line}\n").as_str()),
                "{backend}: {user} {args:?}: {}",
                out.stderr
            );
        };
        // The converted access hash, sent as clients do (line breaks or not).
        check(
            "root",
            &root_hash,
            &["--from", "10.9.8.7"],
            0,
            "accepted: root via token “accesshash-1700000000” (acls: list-accts)",
        );
        check(
            "root",
            &root_hash.replace('\n', ""),
            &["--from", "192.0.2.1"],
            1,
            "refused: 192.0.2.1 is not in the allow-list of token “accesshash-1700000000”",
        );
        check(
            "root",
            &root_hash,
            &[],
            2,
            "depends on the address: token “accesshash-1700000000” has an allow-list; give the client's address with --from",
        );
        check(
            "res2",
            "open-secret",
            &[],
            0,
            "accepted: res2 via token “open” (full access)",
        );
        check(
            "res2",
            "session-secret",
            &["--from", "192.0.2.9"],
            0,
            "accepted: res2 via token “sessions” (acls: list-accts)",
        );
        // The time as a date, and how long ago (which depends on today).
        let out = verify(&config, "res2", "old-secret", &["--from", "192.0.2.1"]);
        assert_eq!(out.code, 1, "{backend}: {}", out.stderr);
        assert!(
            out.stdout
                .starts_with("refused: token “old” expired 2022-04-15 05:20:00 UTC (")
                && out.stdout.ends_with(" years ago)\n"),
            "{backend}: {}",
            out.stdout
        );
        check(
            "res2",
            "old-secret",
            &["--from", "192.0.2.1", "--at", "1650000000"],
            0,
            "accepted: res2 via token “old” (acls: list-accts)",
        );
        check(
            "res1",
            &res1_hash,
            &[],
            1,
            "refused: the secret is the access hash of res1, but access-hash authentication is off (allow_deprecated_accesshash=0)",
        );
        check(
            "res1",
            "not-the-secret",
            &[],
            1,
            "refused: no token of res1 matches this secret, and it is not the account's access hash",
        );
        check("ghost", "x", &[], 1, "refused: no account called ghost");
        check(
            "plain",
            "x",
            &[],
            1,
            "refused: plain is neither root nor a reseller",
        );

        let on = dir.join("on");
        let config_on = server(backend, &on, true);
        let out = verify(&config_on, "res1", &res1_hash, &["--json"]);
        assert_eq!(out.code, 0, "{backend}");
        let doc: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(
            doc,
            json!({"version": 1, "user": "res1", "accepted": true, "via": "accesshash"})
        );
        let out = verify(
            &config,
            "res2",
            "session-secret",
            &["--json", "--from", "192.0.2.9"],
        );
        let doc: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(
            doc,
            json!({"version": 1, "user": "res2", "accepted": true, "via": "token",
                   "token_name": "sessions", "full_access": false, "acls": ["list-accts"]})
        );
        let out = verify(&config, "res1", "nope", &["--json"]);
        assert_eq!(out.code, 1);
        let doc: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(
            (doc["accepted"].clone(), doc["via"].clone()),
            (json!(false), Value::Null)
        );
        assert!(
            doc["reason"]
                .as_str()
                .unwrap()
                .starts_with("no token of res1")
        );
    }
}

#[test]
fn whmtoken_convert_is_the_converter_and_audit_sees_the_result() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(dir.path()).unwrap();
        let config = server(backend, dir, false);
        let out = whmtoken(&config, &["convert", "--verbose", "res1"], "");
        assert_eq!(out.code, 0, "{backend}: {}", out.stderr);
        assert!(
            out.stdout
                .starts_with("Imported accesshash for “res1” as “accesshash-"),
            "{}",
            out.stdout
        );
        // --config after the subcommand works too.
        let out = Command::new(env!("CARGO_BIN_EXE_whmtoken"))
            .args([
                "convert",
                "--config",
                config.as_str(),
                "--dry-run",
                "--verbose",
                "res1",
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        assert!(
            String::from_utf8(out.stdout)
                .unwrap()
                .starts_with("Already imported accesshash for “res1”")
        );
        let out = verify(&config, "res1", &cpanel_style_access_hash("res1"), &[]);
        assert_eq!(out.code, 0, "{backend}: {}", out.stdout);
        let out = whmtoken(&config, &["audit", "--json", "res1"], "");
        let doc: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(account(&doc, "res1")["accesshash"], "converted");
    }
}

#[test]
fn whmtoken_usage_and_help() {
    let dir = tempfile::tempdir().unwrap();
    let dir = Utf8Path::from_path(dir.path()).unwrap();
    let config = server("sqlite", dir, false);
    let out = whmtoken(&config, &["--help"], "");
    assert_eq!(out.code, 0);
    for word in ["convert", "audit", "verify"] {
        assert!(out.stdout.contains(word), "{}", out.stdout);
    }
    let out = whmtoken(&config, &["help", "verify"], "");
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("--from"), "{}", out.stdout);
    let out = whmtoken(&config, &["convert", "--help"], "");
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("--all-resellers"), "{}", out.stdout);
    let out = whmtoken(&config, &["audit", "--fail-on", "sometimes"], "");
    assert_eq!(out.code, 64, "{}", out.stderr);
    let out = whmtoken(&config, &["verify"], "");
    assert_eq!(out.code, 64, "{}", out.stderr);
    let out = whmtoken(&config, &["frobnicate"], "");
    assert_eq!(out.code, 64, "{}", out.stderr);
    let out = whmtoken(&config, &["help", "convert"], "");
    assert!(out.stdout.contains("--lock-timeout"), "{}", out.stdout);
    let missing = dir.join("missing.toml");
    for args in [&["audit"][..], &["verify", "root"]] {
        let out = whmtoken(&missing, args, "secret");
        assert_eq!(out.code, 78, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.starts_with("error: cannot read config file "),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn audit_reports_what_no_client_can_use_and_unknown_accounts() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(dir.path()).unwrap();
        let text = format!(
            r#"
[[user]]
name = "root"

[[user]]
name = "res1"
reseller = []
accesshash = " \n"
[[user.token]]
hash = "{none_key}"
name = "nowhere"
create_time = 1700000000
expires_at = 4000000000
acls = ["list-accts"]
whitelist_ips = []
[[user.token]]
hash = "{bad_key}"
name = "badrange"
create_time = 1700000000
expires_at = 4000000000
acls = ["list-accts"]
whitelist_ips = ["10.1.2.3/8"]
"#,
            none_key = key("nowhere"),
            bad_key = key("badrange"),
        );
        let scenario = Scenario::parse(Utf8Path::new("inline"), &text).unwrap();
        let config = scenario.build(backend, dir).unwrap();
        let out = whmtoken(&config, &["audit", "--json", "res1", "nosuch"], "");
        assert_eq!(out.code, 0, "{backend}: warnings only: {}", out.stdout);
        let doc: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(
            codes(account(&doc, "res1")),
            [
                pair("empty_accesshash", "warning"),
                pair("unusable_allow_list", "warning"),
                pair("unusable_allow_list", "warning"),
            ],
            "{backend}"
        );
        assert_eq!(
            codes(account(&doc, "nosuch")),
            [pair("unknown_account", "warning")],
            "{backend}"
        );
        let out = verify(&config, "res1", "nowhere", &["--from", "10.0.0.1"]);
        assert_eq!(out.code, 1, "{backend}");
        let out = verify(&config, "res1", " \n\t", &[]);
        assert_eq!(out.code, 64, "{backend}: {}", out.stderr);
        assert!(
            out.stderr.starts_with("no secret on standard input"),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn an_accesshash_that_others_can_write_is_refused_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let dir = Utf8Path::from_path(dir.path()).unwrap();
    let config = server("files", dir, true);
    let path = dir.join("home/res1/.accesshash");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = whmtoken(&config, &["audit", "--json", "res1"], "");
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        codes(account(&doc, "res1")),
        [pair("unsafe_accesshash", "critical")]
    );
    let out = whmtoken(&config, &["convert", "res1"], "");
    assert_eq!(out.code, 65);
    assert_eq!(
        out.stderr,
        format!(
            "error: res1: {path} is writable by others (mode 0666); make it 0600 and run again\n"
        )
    );
    let out = verify(&config, "res1", &cpanel_style_access_hash("res1"), &[]);
    assert_eq!(out.code, 1, "never accepted: {}", out.stdout);
}

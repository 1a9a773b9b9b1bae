//! `whmtoken retire`, `restore` and `runs` on both backends: every status, the setting
//! refused and forced, restores (full, after a kill, refused on a changed file), what
//! `whmtoken verify` says at each step, and a retire killed at fifty moments (issue: retire
//! and restore).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::Instant;

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::{Value, json};
use whmtoken_core::AccessHash;
use whmtoken_fixtures::{FakeServer, Scenario, TreeSnapshot, cpanel_style_access_hash};

use crate::{Run, backends, whmtoken};

fn json_of(run: &Run) -> Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", run.stdout, run.stderr))
}

fn key(secret: &str) -> String {
    AccessHash::from_bytes(secret.as_bytes().to_vec())
        .token_hash()
        .unwrap()
        .as_str()
        .to_owned()
}

/// The statuses of a `--json` report, by user.
fn statuses(doc: &Value) -> BTreeMap<String, String> {
    doc["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let who = r.get("user").or_else(|| r.get("name")).unwrap();
            (
                who.as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The access-hash state of each account and the setting, as `whmtoken audit` reports them.
fn audit(config: &Utf8Path) -> (BTreeMap<String, String>, bool) {
    let doc = json_of(&whmtoken(
        config,
        &["audit", "--json", "--fail-on", "never"],
        "",
    ));
    let accounts = doc["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["user"].as_str().unwrap().to_owned(),
                a["accesshash"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (
        accounts,
        doc["server"]["allow_deprecated_accesshash"]
            .as_bool()
            .unwrap(),
    )
}

/// root converted; `res1` not converted; `res2` retired earlier (a converter's token, no
/// access hash); `res3` with neither; access-hash authentication on.
fn server(backend: &str, dir: &Utf8Path) -> Utf8PathBuf {
    let root_hash = cpanel_style_access_hash("root");
    let text = format!(
        r#"
[server]
allow_deprecated_accesshash = true

[[user]]
name = "root"
accesshash = "{root}"
[[user.token]]
hash = "{root_key}"
name = "accesshash-1700000000"
create_time = 1700000000

[[user]]
name = "res1"
reseller = ["list-accts"]
accesshash = "{res1}"

[[user]]
name = "res2"
reseller = ["list-accts"]
[[user.token]]
hash = "{old_key}"
name = "accesshash-1600000000"
create_time = 1600000000

[[user]]
name = "res3"
reseller = []
"#,
        root = root_hash.escape_default(),
        root_key = key(&root_hash),
        res1 = cpanel_style_access_hash("res1").escape_default(),
        old_key = key("an access hash retired long ago"),
    );
    let scenario = Scenario::parse(Utf8Path::new("retire scenario"), &text).unwrap();
    scenario.build(backend, dir).unwrap()
}

fn temp() -> (tempfile::TempDir, Utf8PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = Utf8PathBuf::from_path_buf(dir.path().to_owned()).unwrap();
    (dir, path)
}

#[test]
fn every_status_on_both_backends() {
    for backend in backends() {
        let (_keep, dir) = temp();
        let config = server(backend, &dir);
        let out = whmtoken(
            &config,
            &["retire", "root", "res1", "res2", "res3", "ghost", "--json"],
            "",
        );
        assert_eq!(out.code, 65, "{backend}: {}", out.stderr);
        let doc = json_of(&out);
        assert_eq!(doc["version"], 1);
        assert_eq!(doc["dry_run"], false);
        assert_eq!(doc["backend"], backend);
        assert_eq!(doc["accesshash_auth"], "unchanged");
        let id = doc["run_id"].as_str().unwrap().to_owned();
        assert!(
            id.len() == 21 && id.as_bytes()[8] == b'T' && &id[15..17] == "Z-",
            "{id}"
        );
        assert_eq!(
            statuses(&doc),
            map(&[
                ("root", "retired"),
                ("res1", "not_converted"),
                ("res2", "already_retired"),
                ("res3", "no_accesshash"),
                ("ghost", "failed"),
            ]),
            "{backend}"
        );
        assert_eq!(
            doc["summary"],
            json!({"retired": 1, "already_retired": 1, "no_accesshash": 1, "not_converted": 1, "failed": 1, "not_attempted": 0})
        );
        assert!(
            out.stderr.contains(
                "error: res1: access hash not converted; run convert_accesshash_to_token first\n"
            ),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("error: ghost: "), "{}", out.stderr);

        let (accounts, allowed) = audit(&config);
        assert_eq!(
            accounts["root"], "none",
            "{backend}: root's access hash is gone"
        );
        assert_eq!(
            accounts["res1"], "not_converted",
            "{backend}: res1 untouched"
        );
        assert!(allowed, "the setting is only changed when asked");

        // The human lines, and a second run that finds nothing left to retire.
        let again = whmtoken(&config, &["retire", "root", "res3"], "");
        assert_eq!(again.code, 0, "{}", again.stderr);
        assert_eq!(
            again.stdout,
            "Already retired accesshash for “root”\nNo accesshash for “res3”\n\
             Retired 0, already retired 1, no access hash 1, not converted 0, failed 0, not attempted 0.\n"
        );
        let runs = json_of(&whmtoken(&config, &["runs", "--json"], ""));
        assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "{runs}");
        assert_eq!(runs["runs"][0]["id"], id.as_str());
        assert_eq!(runs["runs"][0]["retired"], json!(["root"]));
        assert_eq!(runs["runs"][0]["restored_at"], Value::Null);

        let lines = accounting(backend, &config);
        let retire_lines: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains(":RETIREACCESSHASH:"))
            .collect();
        assert_eq!(retire_lines.len(), 1, "{lines:?}");
        assert!(
            retire_lines[0].ends_with(&format!(":RETIREACCESSHASH:root:root:not-applicable:{id}")),
            "{lines:?}"
        );
    }
}

/// The audit lines of the server whose config is `config`.
fn accounting(backend: &str, config: &Utf8Path) -> Vec<String> {
    match backend {
        "files" => {
            std::fs::read_to_string(config.parent().unwrap().join("var/cpanel/accounting.log"))
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect()
        }
        _ => {
            let dump = whmtoken_fixtures::dump_server(config).unwrap();
            dump["accounting"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_str().unwrap().to_owned())
                .collect()
        }
    }
}

#[test]
fn the_files_backend_keeps_a_private_backup_and_a_journal_that_undoes_it_exactly() {
    let (_keep, dir) = temp();
    let config = server("files", &dir);
    let home = dir.join("root/.accesshash");
    let before = std::fs::metadata(&home).unwrap();
    let content = std::fs::read(&home).unwrap();
    let doc = json_of(&whmtoken(&config, &["retire", "--json"], ""));
    let id = doc["run_id"].as_str().unwrap();
    assert!(!home.exists());

    let state = dir.join("var/lib/whmtoken");
    for folder in [
        state.clone(),
        state.join("runs"),
        state.join("backups"),
        state.join(format!("backups/{id}")),
    ] {
        let mode = std::fs::metadata(&folder).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o700, "{folder}");
    }
    let backup = state.join(format!("backups/{id}/root.accesshash"));
    assert_eq!(std::fs::read(&backup).unwrap(), content);
    assert_eq!(
        std::fs::metadata(&backup).unwrap().permissions().mode() & 0o7777,
        0o600
    );
    let journal = std::fs::read_to_string(state.join(format!("runs/{id}.json"))).unwrap();
    let records: Vec<Value> = journal
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records[0]["run"], id);
    assert_eq!(
        records[1]["users"],
        json!(["root"]),
        "the accounts as given"
    );
    assert_eq!(records[2]["change"], "accesshash");
    assert_eq!(records[2]["path"], home.as_str());
    assert_eq!(records[2]["mode"], 0o600);
    assert_eq!(records[2]["mtime"], before.mtime());
    assert_eq!(
        records[2]["sha512"],
        whmtoken_core::retire::content_sha512(&content)
    );
    // Nothing of the secret is in the journal or the output.
    let secret_line = std::str::from_utf8(&content)
        .unwrap()
        .lines()
        .next()
        .unwrap();
    assert!(!journal.contains(secret_line));

    // A line cut short by a kill was never synced, and no change was made for it: it is
    // skipped, and the next record starts a line of its own.
    let journal_path = state.join(format!("runs/{id}.json"));
    let mut torn = std::fs::OpenOptions::new()
        .append(true)
        .open(&journal_path)
        .unwrap();
    torn.write_all(br#"{"change":"accesshash","user":"res1","pa"#)
        .unwrap();
    drop(torn);
    let out = whmtoken(&config, &["restore", id], "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        format!(
            "Restored accesshash for “root” (run {id})\n\
             Restored 1, already restored 0, failed 0, not attempted 0.\n"
        )
    );
    let journal = std::fs::read_to_string(&journal_path).unwrap();
    let last: Value = serde_json::from_str(journal.lines().last().unwrap()).unwrap();
    assert!(last["restored_at"].is_i64(), "{journal}");
    let after = std::fs::metadata(&home).unwrap();
    assert_eq!(std::fs::read(&home).unwrap(), content);
    assert_eq!(
        (
            after.mode(),
            after.uid(),
            after.gid(),
            after.mtime(),
            after.mtime_nsec()
        ),
        (
            before.mode(),
            before.uid(),
            before.gid(),
            before.mtime(),
            before.mtime_nsec()
        )
    );
}

#[test]
fn a_dry_run_writes_nothing_at_all() {
    let (_keep, dir) = temp();
    let config = server("files", &dir);
    let before = TreeSnapshot::of(&dir);
    let out = whmtoken(
        &config,
        &[
            "retire",
            "root",
            "res2",
            "--disable-accesshash-auth",
            "--dry-run",
            "--force",
        ],
        "",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "Would retire accesshash for “root”\nAlready retired accesshash for “res2”\n\
         Would disable access-hash authentication (allow_deprecated_accesshash=0)\n\
         Would retire 1, already retired 1, no access hash 0, not converted 0, failed 0, not attempted 0.\n"
    );
    let doc = json_of(&whmtoken(&config, &["retire", "-n", "--json"], ""));
    assert_eq!(doc["dry_run"], true);
    assert_eq!(doc["run_id"], Value::Null);
    assert_eq!(statuses(&doc), map(&[("root", "retired")]));
    assert_eq!(TreeSnapshot::of(&dir), before, "nothing was written");
    assert!(!dir.join("var/lib/whmtoken").exists());

    // A dry restore writes nothing either.
    let id = json_of(&whmtoken(&config, &["retire", "--json"], ""))["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = TreeSnapshot::of(&dir);
    let out = whmtoken(&config, &["restore", &id, "-n"], "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "Would restore accesshash for “root”\n\
         Would restore 1, already restored 0, failed 0, not attempted 0.\n"
    );
    assert_eq!(TreeSnapshot::of(&dir), before);
}

#[test]
fn disabling_access_hash_authentication_is_refused_while_one_is_not_converted_unless_forced() {
    for backend in backends() {
        let (_keep, dir) = temp();
        let config = server(backend, &dir);
        let cpanel_config = dir.join("var/cpanel/cpanel.config");
        if backend == "files" {
            // Other lines, a comment and no final line feed: all kept byte for byte.
            let text = std::fs::read_to_string(&cpanel_config).unwrap();
            let text =
                format!("skipanalog=1\r\n# allow_deprecated_accesshash=1\n{text}maxemailsperhour=")
                    .replace(
                        "allow_deprecated_accesshash=1\n",
                        "allow_deprecated_accesshash=1\r\n",
                    );
            std::fs::write(&cpanel_config, text).unwrap();
        }
        let before = std::fs::read(&cpanel_config).ok();
        let out = whmtoken(
            &config,
            &["retire", "root", "--disable-accesshash-auth", "--json"],
            "",
        );
        assert_eq!(out.code, 65, "{backend}: {}", out.stderr);
        let doc = json_of(&out);
        assert_eq!(doc["accesshash_auth"], "refused");
        // Decided first: refused, so nothing is retired either.
        assert_eq!(statuses(&doc), map(&[("root", "failed")]));
        assert_eq!(doc["run_id"], Value::Null, "{backend}: no run");
        assert_eq!(
            doc["results"][0]["error"],
            whmtoken_core::retire::NOT_ATTEMPTED_REFUSED
        );
        assert!(
            !whmtoken_core::retire::NOT_ATTEMPTED_REFUSED.contains("below"),
            "nothing is below in JSON"
        );
        // The summary counts as the text's: not attempted apart from failed.
        assert_eq!(doc["summary"]["failed"], 0, "{doc}");
        assert_eq!(doc["summary"]["not_attempted"], 1, "{doc}");
        assert!(
            out.stderr.contains(
                "error: allow_deprecated_accesshash left on: 1 account(s) still have an access hash that is not converted (res1)"
            ),
            "{}",
            out.stderr
        );
        assert!(audit(&config).1, "{backend}: still on");
        assert_eq!(std::fs::read(&cpanel_config).ok(), before);

        let out = whmtoken(
            &config,
            &["retire", "--disable-accesshash-auth", "--force"],
            "",
        );
        assert_eq!(out.code, 0, "{backend}: {}", out.stderr);
        assert!(
            out.stdout
                .starts_with("Retired accesshash for “root” (backup in run "),
            "{}",
            out.stdout
        );
        let id = out
            .stdout
            .lines()
            .nth(1)
            .and_then(|l| {
                l.strip_prefix(
                    "Disabled access-hash authentication (allow_deprecated_accesshash=0, run ",
                )
            })
            .and_then(|l| l.strip_suffix(')'))
            .unwrap_or_else(|| panic!("{}", out.stdout))
            .to_owned();
        assert!(!audit(&config).1, "{backend}: now off");
        if backend == "files" {
            let text = std::fs::read_to_string(&cpanel_config).unwrap();
            let expected = String::from_utf8(before.clone().unwrap()).unwrap().replace(
                "\nallow_deprecated_accesshash=1\r\n",
                "\nallow_deprecated_accesshash=0\r\n",
            );
            assert_eq!(text, expected);
        }
        let lines = accounting(backend, &config);
        assert!(
            lines.iter().any(|l| l.ends_with(&format!(
                ":DISABLEACCESSHASHAUTH:root:root:not-applicable:{id}"
            ))),
            "{lines:?}"
        );
        let again = whmtoken(
            &config,
            &["retire", "--disable-accesshash-auth", "--json"],
            "",
        );
        assert_eq!(json_of(&again)["accesshash_auth"], "unchanged");
        assert_eq!(
            json_of(&again)["run_id"],
            Value::Null,
            "nothing changed: no run"
        );

        // Restoring the run turns it back on, exactly as it was.
        let out = whmtoken(&config, &["restore", &id, "--json"], "");
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(
            statuses(&json_of(&out)),
            map(&[
                ("allow_deprecated_accesshash", "restored"),
                ("root", "restored")
            ])
        );
        assert!(audit(&config).1, "{backend}: on again");
        assert_eq!(std::fs::read(&cpanel_config).ok(), before);
    }
}

#[test]
fn setting_only_switches_the_setting_alone_with_the_same_refusals_journal_and_restore() {
    for backend in backends() {
        let (_keep, dir) = temp();
        let config = server(backend, &dir);
        let hashes = |config: &Utf8Path| -> BTreeMap<String, String> {
            audit(config)
                .0
                .into_iter()
                .filter(|(user, _)| user == "root" || user == "res1")
                .collect()
        };
        let before = hashes(&config);
        assert_eq!(before.len(), 2, "{before:?}");
        // res1's access hash is not converted: refused, as without --setting-only.
        let args = ["retire", "--disable-accesshash-auth", "--setting-only"];
        let out = whmtoken(&config, &args, "");
        assert_eq!(out.code, 65, "{backend}: {}", out.stderr);
        assert!(
            out.stderr.contains(
                "error: allow_deprecated_accesshash left on: 1 account(s) still have an access hash that is not converted (res1)"
            ),
            "{}",
            out.stderr
        );
        assert!(audit(&config).1, "{backend}: still on");

        let out = whmtoken(&config, &[&args[..], &["--force", "--json"]].concat(), "");
        assert_eq!(out.code, 0, "{backend}: {}", out.stderr);
        let doc = json_of(&out);
        assert_eq!(doc["accesshash_auth"], "disabled");
        assert_eq!(doc["results"], json!([]), "no account touched");
        let id = doc["run_id"].as_str().unwrap().to_owned();
        assert!(!audit(&config).1, "{backend}: off");
        assert_eq!(
            hashes(&config),
            before,
            "{backend}: every access hash in place"
        );
        let runs = json_of(&whmtoken(&config, &["runs", "--json"], ""));
        assert_eq!(runs["runs"][0]["retired"], json!([]));
        assert_eq!(runs["runs"][0]["settings"][0]["new"], "0");

        let out = whmtoken(&config, &["restore", &id, "--json"], "");
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(
            statuses(&json_of(&out)),
            map(&[("allow_deprecated_accesshash", "restored")])
        );
        assert!(audit(&config).1, "{backend}: on again");

        // The usage shown with the refusal of users names the three forms, never
        // --setting-only with users.
        let out = whmtoken(
            &config,
            &[
                "retire",
                "--setting-only",
                "--disable-accesshash-auth",
                "root",
            ],
            "",
        );
        assert_eq!(out.code, 64, "{}", out.stderr);
        assert!(
            out.stderr
                .contains("whmtoken retire [OPTIONS] --setting-only --disable-accesshash-auth\n")
                && !out.stderr.contains("--setting-only [USER]"),
            "{}",
            out.stderr
        );
        // Only with --disable-accesshash-auth, and without accounts.
        for wrong in [
            &["retire", "--setting-only"][..],
            &[
                "retire",
                "--disable-accesshash-auth",
                "--setting-only",
                "root",
            ],
            &[
                "retire",
                "--disable-accesshash-auth",
                "--setting-only",
                "--all-resellers",
            ],
        ] {
            assert_eq!(whmtoken(&config, wrong, "").code, 64, "{wrong:?}");
        }
    }
}

/// Every run's journal made to say it began `seconds` earlier (what waiting would do).
fn age_runs(backend: &str, dir: &Utf8Path, seconds: i64) {
    if backend == "sqlite" {
        let conn = rusqlite::Connection::open(dir.join("server.db")).unwrap();
        conn.execute(
            "UPDATE runs SET record = json_set(record, '$.started', json_extract(record, '$.started') - ?1) WHERE json_extract(record, '$.started') IS NOT NULL",
            [seconds],
        )
        .unwrap();
        return;
    }
    for entry in std::fs::read_dir(dir.join("var/lib/whmtoken/runs")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let (header, rest) = text.split_once('\n').unwrap();
        let mut header: serde_json::Map<String, Value> = serde_json::from_str(header).unwrap();
        let started = header["started"].as_i64().unwrap();
        header.insert("started".into(), json!(started - seconds));
        std::fs::write(&path, format!("{}\n{rest}", Value::Object(header))).unwrap();
    }
}

#[test]
fn runs_prune_with_no_runs_says_so_and_makes_nothing() {
    for backend in backends() {
        let (_keep, dir) = temp();
        let config = server(backend, &dir);
        let before = TreeSnapshot::of(&dir);
        for extra in [&[][..], &["--dry-run"]] {
            let out = whmtoken(
                &config,
                &[&["runs", "--prune", "--older-than", "1d"][..], extra].concat(),
                "",
            );
            assert_eq!(out.code, 0, "{backend}: {}", out.stderr);
            assert_eq!(out.stdout, "No retire runs on this server yet.\n");
        }
        assert_eq!(TreeSnapshot::of(&dir), before, "{backend}: no store made");
        assert!(!dir.join("var/lib/whmtoken").exists());
        // 0 would prune a run just begun: refused as a usage error.
        let out = whmtoken(&config, &["runs", "--prune", "--older-than", "0m"], "");
        assert_eq!(out.code, 64, "{}", out.stderr);
        assert!(out.stderr.contains("must be more than 0"), "{}", out.stderr);
    }
}

#[test]
fn runs_prune_removes_old_restored_runs_backups_journaled_and_dry_runnable() {
    for backend in backends() {
        let (_keep, dir) = temp();
        let config = server(backend, &dir);
        let retire = || {
            let out = whmtoken(&config, &["retire", "root", "--json"], "");
            assert_eq!(out.code, 0, "{backend}: {}", out.stderr);
            json_of(&out)["run_id"].as_str().unwrap().to_owned()
        };
        let restored = retire();
        assert_eq!(whmtoken(&config, &["restore", &restored], "").code, 0);
        let kept = retire();
        let backups = |id: &str| dir.join(format!("var/lib/whmtoken/backups/{id}"));
        let prune = |extra: &[&str]| {
            let out = whmtoken(&config, &[&["runs", "--prune"][..], extra].concat(), "");
            assert_eq!(out.code, 0, "{backend}: {}", out.stderr);
            out.stdout
        };

        // Not old enough: nothing.
        assert_eq!(
            prune(&["--older-than", "1d"]),
            "No retire run begun that long ago; nothing to prune.\n"
        );
        age_runs(backend, &dir, 120);
        let not_restored = format!(
            "Kept the backups of run {kept}: not restored; restore it first, or prune it with --force\n"
        );
        assert_eq!(
            prune(&["--older-than", "1m", "--dry-run"]),
            format!(
                "Would prune the backups of run {restored} (1 file(s))\n{not_restored}Would prune 1, kept 1 not restored and 0 partly restored.\n"
            )
        );
        let dry = whmtoken(
            &config,
            &[
                "runs",
                "--prune",
                "--older-than",
                "1m",
                "--dry-run",
                "--json",
            ],
            "",
        );
        let dry = json_of(&dry);
        assert_eq!(dry["runs"][0]["status"], "pruned", "{dry}");
        assert_eq!(dry["runs"][0]["removed"], 1, "{dry}: what it would remove");
        if backend == "files" {
            assert!(backups(&restored).is_dir(), "a dry run removes nothing");
        }
        assert_eq!(
            prune(&["--older-than", "1m"]),
            format!(
                "Pruned the backups of run {restored} (1 file(s))\n{not_restored}Pruned 1, kept 1 not restored and 0 partly restored.\n"
            )
        );
        if backend == "files" {
            assert!(!backups(&restored).exists());
            assert!(backups(&kept).is_dir());
        }
        let runs = json_of(&whmtoken(&config, &["runs", "--json"], ""));
        assert!(runs["runs"][0]["pruned_at"].is_i64(), "{runs}");
        assert_eq!(runs["runs"][1]["pruned_at"], Value::Null);
        let text = whmtoken(&config, &["runs"], "").stdout;
        assert!(
            text.lines()
                .next()
                .unwrap()
                .contains(", backups pruned at "),
            "{text}"
        );

        // Forced: the run not restored too; it can then no longer be restored.
        let out = whmtoken(
            &config,
            &["runs", "--prune", "--older-than", "1m", "--force", "--json"],
            "",
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
        let doc = json_of(&out);
        assert_eq!(doc["runs"][0]["status"], "already_pruned");
        assert_eq!(doc["runs"][1]["status"], "pruned");
        assert_eq!(doc["runs"][1]["removed"], 1);
        let out = whmtoken(&config, &["restore", &kept], "");
        assert_eq!(out.code, 65);
        assert!(
            out.stderr.starts_with(&format!(
                "error: root: the backups of run {kept} were pruned at "
            )) && out.stderr.contains(" UTC; not restored"),
            "{}",
            out.stderr
        );

        for wrong in [
            &["runs", "--older-than", "1d"][..],
            &["runs", "--prune"],
            &["runs", "--prune", "--older-than", "5x"],
            &["runs", "--prune", "--older-than", "-1d"],
            &["runs", "--force"],
        ] {
            assert_eq!(whmtoken(&config, wrong, "").code, 64, "{wrong:?}");
        }
    }
}

#[test]
fn restore_of_a_run_that_does_not_exist_says_so_plainly() {
    for backend in backends() {
        let (_keep, dir) = temp();
        let config = server(backend, &dir);
        // Once with no run at all, once with another run there.
        for _ in 0..2 {
            let out = whmtoken(&config, &["restore", "20261204T000000Z-abcd"], "");
            assert_eq!(out.code, 64, "{backend}: {}", out.stderr);
            assert_eq!(
                out.stderr, "error: no run 20261204T000000Z-abcd (whmtoken runs lists them)\n",
                "{backend}"
            );
            assert_eq!(whmtoken(&config, &["retire", "root"], "").code, 0);
        }
    }
}

#[test]
fn restore_puts_a_whole_run_back_once_and_says_so() {
    for backend in backends() {
        let (_keep, dir) = temp();
        let config = server(backend, &dir);
        let convert = Command::new(env!("CARGO_BIN_EXE_convert_accesshash_to_token"))
            .args(["--config", config.as_str(), "res1"])
            .output()
            .unwrap();
        assert!(convert.status.success());
        let out = whmtoken(
            &config,
            &[
                "retire",
                "root",
                "res1",
                "--disable-accesshash-auth",
                "--json",
            ],
            "",
        );
        assert_eq!(out.code, 0, "{backend}: {}", out.stderr);
        let doc = json_of(&out);
        assert_eq!(doc["accesshash_auth"], "disabled");
        let id = doc["run_id"].as_str().unwrap().to_owned();
        let (accounts, allowed) = audit(&config);
        assert_eq!(
            (
                accounts["root"].as_str(),
                accounts["res1"].as_str(),
                allowed
            ),
            ("none", "none", false)
        );

        let out = whmtoken(&config, &["restore", &id, "--json"], "");
        assert_eq!(out.code, 0, "{backend}: {}", out.stderr);
        let doc = json_of(&out);
        assert_eq!(
            statuses(&doc),
            map(&[
                ("root", "restored"),
                ("res1", "restored"),
                ("allow_deprecated_accesshash", "restored")
            ])
        );
        assert!(doc["restored_at"].is_i64());
        let (accounts, allowed) = audit(&config);
        assert_eq!(
            (
                accounts["root"].as_str(),
                accounts["res1"].as_str(),
                allowed
            ),
            ("converted", "converted", true),
            "{backend}"
        );

        // A second restore reads, finds everything back, and changes nothing at all: no
        // lock file made, not even for a moment.
        let before = (TreeSnapshot::of(&dir), folder_mtimes(&dir));
        let out = whmtoken(&config, &["restore", &id, "--json"], "");
        assert_eq!(out.code, 0);
        assert_eq!(
            json_of(&out)["summary"],
            json!({"restored": 0, "already_restored": 3, "failed": 0, "not_attempted": 0})
        );
        if backend == "files" {
            assert_eq!(
                (TreeSnapshot::of(&dir), folder_mtimes(&dir)),
                before,
                "the second restore changed nothing"
            );
        }
        let runs = whmtoken(&config, &["runs"], "");
        assert!(
            runs.stdout.starts_with(&id)
                && runs.stdout.contains(
                    "retired 2 access hash(es), allow_deprecated_accesshash 1 → 0  restored at "
                ),
            "{}",
            runs.stdout
        );
        let lines = accounting(backend, &config);
        let restores = lines
            .iter()
            .filter(|l| l.contains(":RESTOREACCESSHASH:root:"))
            .count();
        assert_eq!(restores, 2, "once each: {lines:?}");

        assert_eq!(
            whmtoken(&config, &["restore", "20990101T000000Z-zzzz"], "").code,
            64
        );
        assert_eq!(
            whmtoken(&config, &["restore", "../../etc/passwd"], "").code,
            64
        );
        let out = whmtoken(&config, &["restore", "nonsense"], "");
        assert_eq!(
            (out.code, out.stderr.as_str()),
            (
                64,
                "error: “nonsense” is not a run id (like 20261201T031500Z-k3x9)\n"
            )
        );
    }
}

/// The modification time of every folder under `dir` (a lock file made and removed
/// changes its folder's).
fn folder_mtimes(dir: &Utf8Path) -> BTreeMap<Utf8PathBuf, (i64, i64)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(folder) = todo.pop() {
        let meta = std::fs::symlink_metadata(&folder).unwrap();
        out.insert(folder.clone(), (meta.mtime(), meta.mtime_nsec()));
        for entry in std::fs::read_dir(&folder).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                todo.push(Utf8PathBuf::from_path_buf(entry.path()).unwrap());
            }
        }
    }
    out
}

/// The users `whmtoken runs --json` lists as retired by run `id`, and its `runs` line.
fn runs_retired(config: &Utf8Path, id: &str) -> (Vec<String>, String) {
    let doc = json_of(&whmtoken(config, &["runs", "--json"], ""));
    let run = doc["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no run {id}: {doc}"))
        .clone();
    let users = run["retired"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_owned())
        .collect();
    let line = whmtoken(config, &["runs"], "")
        .stdout
        .lines()
        .find(|l| l.starts_with(id))
        .unwrap()
        .to_owned();
    (users, line)
}

/// The one run's id in a files tree.
fn only_run(dir: &Utf8Path) -> String {
    let names: Vec<String> = std::fs::read_dir(dir.join("var/lib/whmtoken/runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    names[0].strip_suffix(".json").unwrap().to_owned()
}

/// Runs `whmtoken retire root` with `env` set (crash points and hooks).
fn retire_root_with(config: &Utf8Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_whmtoken"))
        .args(["--config", config.as_str(), "retire", "root"])
        .env_remove("WHMTOKEN_LOG")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn an_access_hash_changed_while_being_retired_is_left_in_place_with_its_new_content() {
    // Rewritten in place (same inode), and replaced by a rename, between the backup and
    // the removal.
    for rewrite in [
        "printf 'rewritten in place' > root/.accesshash",
        "printf 'replaced by rename' > root/.new && chmod 600 root/.new && mv root/.new root/.accesshash",
    ] {
        let (_keep, dir) = temp();
        let config = server("files", &dir);
        let hook = format!("cd {dir} && {rewrite}");
        let (code, stderr) = retire_root_with(
            &config,
            &[
                ("WHMTOKEN_HOOK_AT", "retire-journaled"),
                ("WHMTOKEN_HOOK", &hook),
            ],
        );
        let path = dir.join("root/.accesshash");
        assert_eq!(code, Some(65), "{rewrite}: {stderr}");
        assert_eq!(
            stderr,
            format!(
                "error: root: refusing to write {path}: it changed while being retired; left in place\n"
            ),
            "{rewrite}"
        );
        let now = std::fs::read_to_string(&path).unwrap();
        assert!(
            now.starts_with("re"),
            "{rewrite}: the new content is kept: {now}"
        );
        let id = only_run(&dir);
        let (users, line) = runs_retired(&config, &id);
        assert!(users.is_empty(), "{rewrite}: {users:?}");
        assert!(line.contains("retired 0 access hash(es)"), "{line}");
        // Its restore leaves the new content alone.
        let out = whmtoken(&config, &["restore", &id, "--json"], "");
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(
            statuses(&json_of(&out)),
            map(&[("root", "already_restored")])
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), now);
    }
}

#[test]
fn a_retire_killed_while_an_access_hash_is_set_aside_is_undone_by_restore() {
    let original = cpanel_style_access_hash("root");
    // Set aside as it was; changed first (a tenant's write); set aside, then a copy of it
    // put back as `.accesshash`.
    for (changed, copied_back) in [(false, false), (true, false), (false, true)] {
        let (_keep, dir) = temp();
        let config = server("files", &dir);
        let path = dir.join("root/.accesshash");
        let mtime = std::fs::metadata(&path).unwrap().mtime();
        let hook = format!("printf changed > {path}");
        let mut env = vec![("WHMTOKEN_CRASH_AT", "retire-set-aside:1")];
        if changed {
            env.extend([
                ("WHMTOKEN_HOOK_AT", "retire-journaled"),
                ("WHMTOKEN_HOOK", &hook),
            ]);
        }
        let (code, _) = retire_root_with(&config, &env);
        assert_eq!(code, None, "killed");
        let id = only_run(&dir);
        let aside = dir.join(format!("root/.accesshash.whmtoken-retiring-{id}"));
        assert!(!path.exists() && aside.is_file());
        assert!(runs_retired(&config, &id).0.is_empty());
        if copied_back {
            std::fs::copy(&aside, &path).unwrap();
        }

        let out = whmtoken(&config, &["restore", &id, "--json"], "");
        assert_eq!(out.code, 0, "{}", out.stderr);
        let expected = if changed {
            "already_restored"
        } else {
            "restored"
        };
        assert_eq!(statuses(&json_of(&out)), map(&[("root", expected)]));
        let content = std::fs::read_to_string(&path).unwrap();
        if changed {
            assert_eq!(content, "changed");
        } else {
            assert_eq!(content, original);
        }
        // Its own file back (a changed one was rewritten since: its time is its own).
        if !copied_back && !changed {
            assert_eq!(std::fs::metadata(&path).unwrap().mtime(), mtime);
        }
        assert!(!aside.exists(), "the set-aside name is gone");
    }
}

#[test]
fn a_rerun_finishes_what_a_retire_killed_while_setting_aside_left() {
    let original = cpanel_style_access_hash("root");
    for changed in [false, true] {
        let (_keep, dir) = temp();
        let config = server("files", &dir);
        let path = dir.join("root/.accesshash");
        let hook = format!("printf changed > {path}");
        let mut env = vec![("WHMTOKEN_CRASH_AT", "retire-set-aside:1")];
        if changed {
            env.extend([
                ("WHMTOKEN_HOOK_AT", "retire-journaled"),
                ("WHMTOKEN_HOOK", &hook),
            ]);
        }
        assert_eq!(retire_root_with(&config, &env).0, None, "killed");
        let id = only_run(&dir);
        let aside = dir.join(format!("root/.accesshash.whmtoken-retiring-{id}"));

        let out = whmtoken(&config, &["retire", "root", "--json"], "");
        assert!(!aside.exists(), "{changed}: the set-aside name is gone");
        if changed {
            assert_eq!(out.code, 65);
            assert_eq!(
                out.stderr,
                format!(
                    "error: root: refusing to write {path}: run {id} was stopped while retiring it, and it is not what that run backed up; put back in place\n"
                )
            );
            assert_eq!(std::fs::read_to_string(&path).unwrap(), "changed");
            assert!(runs_retired(&config, &id).0.is_empty());
        } else {
            assert_eq!(out.code, 0, "{}", out.stderr);
            assert_eq!(
                statuses(&json_of(&out)),
                map(&[("root", "already_retired")])
            );
            assert!(!path.exists());
            assert_eq!(runs_retired(&config, &id).0, ["root"]);
            let lines = accounting("files", &config);
            let of_the_run = lines
                .iter()
                .filter(|l| {
                    l.ends_with(&format!(":RETIREACCESSHASH:root:root:not-applicable:{id}"))
                })
                .count();
            assert_eq!(of_the_run, 1, "one line for one removal: {lines:?}");
            let out = whmtoken(&config, &["restore", &id], "");
            assert_eq!(out.code, 0, "{}", out.stderr);
            assert_eq!(std::fs::read_to_string(&path).unwrap(), original);
        }
    }
}

#[test]
fn a_set_aside_file_planted_after_a_later_run_finished_the_removal_is_left_alone() {
    let original = cpanel_style_access_hash("root");
    let (_keep, dir) = temp();
    let config = server("files", &dir);
    let path = dir.join("root/.accesshash");
    let killed = [("WHMTOKEN_CRASH_AT", "retire-set-aside:1")];
    assert_eq!(retire_root_with(&config, &killed).0, None, "killed");
    let id = only_run(&dir);
    let aside = dir.join(format!("root/.accesshash.whmtoken-retiring-{id}"));
    // A later run finishes the removal, recorded in its own journal.
    let out = whmtoken(&config, &["retire", "root"], "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!aside.exists());
    // Then a file appears under the first run's set-aside name: not that run's.
    std::fs::write(&aside, "planted").unwrap();
    std::fs::set_permissions(&aside, std::fs::Permissions::from_mode(0o600)).unwrap();
    let dry = whmtoken(&config, &["restore", &id, "--dry-run", "--json"], "");
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    let real = whmtoken(&config, &["restore", &id, "--json"], "");
    assert_eq!(real.code, 0, "{}", real.stderr);
    for out in [&dry, &real] {
        assert_eq!(statuses(&json_of(out)), map(&[("root", "restored")]));
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), original);
    assert_eq!(std::fs::read_to_string(&aside).unwrap(), "planted");
}

#[test]
fn an_access_hash_whose_removal_failed_is_not_counted_as_retired() {
    for backend in backends() {
        let (_keep, dir) = temp();
        let config = server(backend, &dir);
        let convert = Command::new(env!("CARGO_BIN_EXE_convert_accesshash_to_token"))
            .args(["--config", config.as_str(), "res1"])
            .output()
            .unwrap();
        assert!(convert.status.success());
        // The name root's access hash is to be set aside under is taken: its removal fails.
        let hook = format!(
            "cd {dir} && id=$(basename var/lib/whmtoken/runs/*.json .json) && mkdir root/.accesshash.whmtoken-retiring-$id"
        );
        let out = Command::new(env!("CARGO_BIN_EXE_whmtoken"))
            .args([
                "--config",
                config.as_str(),
                "retire",
                "root",
                "res1",
                "--json",
            ])
            .env_remove("WHMTOKEN_LOG")
            .env("WHMTOKEN_HOOK_AT", "retire-journaled")
            .env("WHMTOKEN_HOOK", &hook)
            .output()
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        let doc: Value = serde_json::from_str(&stdout).unwrap();
        let id = doc["run_id"].as_str().unwrap().to_owned();
        let (users, line) = runs_retired(&config, &id);
        if backend == "files" {
            assert_eq!(out.status.code(), Some(65));
            assert_eq!(
                statuses(&doc),
                map(&[("root", "failed"), ("res1", "retired")])
            );
            assert_eq!(users, ["res1"]);
            assert!(line.contains("retired 1 access hash(es)"), "{line}");
            assert!(dir.join("root/.accesshash").is_file());
        } else {
            // One transaction each: nothing to fail in between.
            assert_eq!(out.status.code(), Some(0));
            assert_eq!(users.len(), 2);
        }
        let out = whmtoken(&config, &["restore", &id, "--json"], "");
        assert_eq!(out.code, 0, "{}", out.stderr);
        let (accounts, _) = audit(&config);
        assert_eq!(
            (accounts["root"].as_str(), accounts["res1"].as_str()),
            ("converted", "converted"),
            "{backend}"
        );
    }
}

#[test]
fn restore_works_on_the_server_its_config_names_even_copied_or_moved() {
    let (_keep, dir) = temp();
    let one = dir.join("one");
    std::fs::create_dir(&one).unwrap();
    let config = server("files", &one);
    let out = whmtoken(&config, &["retire", "root", "--json"], "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let id = json_of(&out)["run_id"].as_str().unwrap().to_owned();
    let copy = |from: &Utf8Path, to: &Utf8Path| {
        let cp = Command::new("cp")
            .args(["-a", from.as_str(), to.as_str()])
            .status();
        assert!(cp.unwrap().success());
    };
    let two = dir.join("two");
    copy(&one, &two);
    let out = whmtoken(
        &two.join(config.file_name().unwrap()),
        &["restore", &id],
        "",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        two.join("root/.accesshash").is_file(),
        "the copy is restored"
    );
    assert!(
        !one.join("root/.accesshash").exists(),
        "the original is left alone"
    );

    let three = dir.join("three");
    std::fs::rename(&one, &three).unwrap();
    let out = whmtoken(
        &three.join(config.file_name().unwrap()),
        &["restore", &id],
        "",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        three.join("root/.accesshash").is_file(),
        "the moved tree is restored"
    );
}

#[test]
fn a_named_account_that_is_not_a_reseller_is_refused_as_the_converter_refuses_it() {
    for backend in backends() {
        let (_keep, dir) = temp();
        let text = format!(
            "[[user]]\nname = \"plain\"\naccesshash = \"{}\"\n",
            cpanel_style_access_hash("plain").escape_default()
        );
        let scenario = Scenario::parse(Utf8Path::new("plain"), &text).unwrap();
        let config = scenario.build(backend, &dir).unwrap();
        let out = whmtoken(&config, &["retire", "plain", "--json"], "");
        assert_eq!(out.code, 65, "{backend}");
        assert_eq!(
            json_of(&out)["results"],
            json!([{"user": "plain", "status": "failed", "error": "User plain is not a reseller."}])
        );
        assert_eq!(out.stderr, "error: plain: User plain is not a reseller.\n");
    }
}

/// Replaces `user`'s access hash, as a tenant or WHM could after a retirement.
fn write_access_hash(backend: &str, dir: &Utf8Path, user: &str, content: &str) {
    match backend {
        "files" => {
            let home = if user == "root" {
                dir.join("root")
            } else {
                dir.join("home").join(user)
            };
            let path = home.join(".accesshash");
            std::fs::write(&path, content).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        _ => {
            let conn = rusqlite::Connection::open(dir.join("server.db")).unwrap();
            conn.execute(
                "UPDATE users SET access_hash = ?1 WHERE name = ?2",
                rusqlite::params![content.as_bytes(), user],
            )
            .unwrap();
        }
    }
}

#[test]
fn restore_refuses_an_access_hash_that_came_back_and_a_changed_backup_unless_forced() {
    for backend in backends() {
        let (_keep, dir) = temp();
        let config = server(backend, &dir);
        let id = json_of(&whmtoken(&config, &["retire", "--json"], ""))["run_id"]
            .as_str()
            .unwrap()
            .to_owned();
        write_access_hash(backend, &dir, "root", "a new access hash\n");
        let out = whmtoken(&config, &["restore", &id], "");
        assert_eq!(out.code, 65, "{backend}");
        assert!(
            out.stderr.starts_with("error: root: ")
                && out
                    .stderr
                    .contains("an access hash exists again and differs from the one retired"),
            "{}",
            out.stderr
        );
        assert!(!out.stderr.contains("new access hash"), "no secret shown");
        let runs = json_of(&whmtoken(&config, &["runs", "--json"], ""));
        assert_eq!(runs["runs"][0]["restored_at"], Value::Null, "not restored");

        let out = whmtoken(&config, &["restore", &id, "--force"], "");
        assert_eq!(out.code, 0, "{backend}: {}", out.stderr);
        let (accounts, _) = audit(&config);
        assert_eq!(
            accounts["root"], "converted",
            "{backend}: the retired one is back"
        );
        if backend == "files" {
            let kept: Vec<String> =
                std::fs::read_dir(dir.join(format!("var/lib/whmtoken/backups/{id}")))
                    .unwrap()
                    .map(|e| e.unwrap().file_name().into_string().unwrap())
                    .filter(|n| n.starts_with("root.accesshash.replaced-"))
                    .collect();
            assert_eq!(kept.len(), 1, "the replaced one is kept");
            let path = dir.join(format!("var/lib/whmtoken/backups/{id}/{}", kept[0]));
            assert_eq!(
                std::fs::read_to_string(&path).unwrap(),
                "a new access hash\n"
            );
        }

        // The replaced access hash's only copy is among the run's backups: pruning the
        // restored run keeps them unless forced.
        age_runs(backend, &dir, 120);
        let out = whmtoken(&config, &["runs", "--prune", "--older-than", "1m"], "");
        assert_eq!(out.code, 0, "{backend}: {}", out.stderr);
        assert_eq!(
            out.stdout,
            format!(
                "Kept the backups of run {id}: they hold the only copy of the access hash a forced restore replaced for root; prune it with --force\n\
                 Pruned 0, kept 0 not restored and 0 partly restored, and 1 holding replaced access hashes.\n"
            ),
            "{backend}"
        );
        let runs = json_of(&whmtoken(&config, &["runs", "--json"], ""));
        assert_eq!(
            runs["runs"][0]["pruned_at"],
            Value::Null,
            "{backend}: not pruned"
        );
        let dry = whmtoken(
            &config,
            &["runs", "--prune", "--older-than", "1m", "-n", "--json"],
            "",
        );
        let dry = json_of(&dry);
        assert_eq!(dry["runs"][0]["status"], "kept", "{dry}");
        assert_eq!(
            dry["runs"][0]["replaced"],
            serde_json::json!(["root"]),
            "{dry}"
        );
        let out = whmtoken(
            &config,
            &["runs", "--prune", "--older-than", "1m", "--force"],
            "",
        );
        assert_eq!(out.code, 0, "{backend}: {}", out.stderr);
        assert!(
            out.stdout
                .starts_with(&format!("Pruned the backups of run {id}")),
            "{}",
            out.stdout
        );
    }

    // A backup that no longer matches the journal.
    let (_keep, dir) = temp();
    let config = server("files", &dir);
    let id = json_of(&whmtoken(&config, &["retire", "--json"], ""))["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let backup = dir.join(format!("var/lib/whmtoken/backups/{id}/root.accesshash"));
    std::fs::write(&backup, "tampered\n").unwrap();
    let out = whmtoken(&config, &["restore", &id], "");
    assert_eq!(out.code, 65);
    assert!(
        out.stderr
            .contains("the backup no longer matches the journal's SHA-512"),
        "{}",
        out.stderr
    );
    assert!(!dir.join("root/.accesshash").exists());
}

#[test]
fn a_converted_access_hash_that_cannot_be_read_safely_is_said_so_in_the_refusal() {
    let (_keep, dir) = temp();
    let config = server("files", &dir);
    // root's is converted, but writable by others: it cannot be read to tell.
    let path = dir.join("root/.accesshash");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o602)).unwrap();
    let out = whmtoken(
        &config,
        &["retire", "--setting-only", "--disable-accesshash-auth"],
        "",
    );
    assert_eq!(out.code, 65, "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "left on: 1 account(s) still have an access hash that is not converted (res1), and 1 account(s) have an access hash that cannot be read to tell whether it is converted (root)"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn a_hostile_access_hash_fails_its_user_and_is_left_alone() {
    let (_keep, dir) = temp();
    let config = server("files", &dir);
    let path = dir.join("root/.accesshash");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = whmtoken(&config, &["retire", "--json"], "");
    assert_eq!(out.code, 65);
    assert_eq!(statuses(&json_of(&out)), map(&[("root", "failed")]));
    assert!(
        out.stderr.contains("is writable by others"),
        "{}",
        out.stderr
    );
    assert!(path.exists());

    std::fs::rename(&path, dir.join("root/elsewhere")).unwrap();
    std::os::unix::fs::symlink("elsewhere", &path).unwrap();
    let out = whmtoken(&config, &["retire"], "");
    assert_eq!(out.code, 65);
    assert!(
        out.stderr.contains("it is a symbolic link"),
        "{}",
        out.stderr
    );
    assert!(path.symlink_metadata().unwrap().file_type().is_symlink());
}

/// Removes `user`'s tokens, as an admin revoking them would.
fn revoke_tokens(backend: &str, dir: &Utf8Path, user: &str) {
    match backend {
        "files" => std::fs::write(
            dir.join(format!(
                "var/cpanel/authn/api_tokens_v2/whostmgr/{user}.json"
            )),
            r#"{"tokens":{}}"#,
        )
        .unwrap(),
        _ => {
            let conn = rusqlite::Connection::open(dir.join("server.db")).unwrap();
            conn.execute("DELETE FROM tokens WHERE user = ?1", [user])
                .unwrap();
        }
    }
}

#[test]
fn verify_tells_the_story_of_a_retirement_and_its_restore() {
    let secret = cpanel_style_access_hash("root");
    for backend in backends() {
        let (_keep, dir) = temp();
        let config = server(backend, &dir);
        let id = json_of(&whmtoken(&config, &["retire", "--json"], ""))["run_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let out = whmtoken(&config, &["verify", "root"], &secret);
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (
                0,
                "accepted: root via token “accesshash-1700000000” (full access)\n"
            ),
            "{backend}: still accepted through the converted token"
        );
        revoke_tokens(backend, &dir, "root");
        let out = whmtoken(&config, &["verify", "root"], &secret);
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (
                1,
                "refused: no token of root matches this secret, and it is not the account's access hash\n"
            ),
            "{backend}: the legacy path is gone"
        );
        let out = whmtoken(&config, &["restore", &id], "");
        assert_eq!(out.code, 0, "{backend}: {}", out.stderr);
        let out = whmtoken(&config, &["verify", "root"], &secret);
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (0, "accepted: root via access hash (deprecated)\n"),
            "{backend}: accepted as an access hash again"
        );
    }
}

/// `count` resellers, each with an access hash and its converted token.
fn converted_resellers(count: usize) -> (FakeServer, Vec<String>, BTreeMap<String, String>) {
    let mut server = FakeServer::new();
    let names: Vec<String> = (0..count).map(|i| format!("res{i:04}")).collect();
    let mut contents = BTreeMap::new();
    for name in &names {
        server.add_reseller(name, &["list-accts"]);
        let content = cpanel_style_access_hash(name);
        server.write_access_hash(name, &content);
        contents.insert(name.clone(), content);
    }
    let out = crate::run(&server, &["--all-resellers"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    (server, names, contents)
}

/// Run ids, from `whmtoken runs --json`.
fn run_ids(config: &Utf8Path) -> BTreeSet<String> {
    let doc = json_of(&whmtoken(config, &["runs", "--json"], ""));
    doc["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Every access hash is in its home or in a backup that a journal entry names, with the
/// same content; never lost. Returns the users whose access hash is in a backup only.
fn check_nothing_lost(
    server: &FakeServer,
    contents: &BTreeMap<String, String>,
) -> BTreeSet<String> {
    let state = server.root().join("var/lib/whmtoken");
    let mut journaled: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(state.join("runs")) {
        for entry in entries {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for line in text.lines() {
                let Ok(record) = serde_json::from_str::<Value>(line) else {
                    continue; // a line cut short by the kill: no change was made for it
                };
                if record["change"] == "accesshash" {
                    journaled
                        .entry(record["user"].as_str().unwrap().to_owned())
                        .or_default()
                        .push((
                            record["backup"].as_str().unwrap().to_owned(),
                            record["sha512"].as_str().unwrap().to_owned(),
                        ));
                }
            }
        }
    }
    let mut in_backup = BTreeSet::new();
    for (name, content) in contents {
        let home = server.access_hash_path(name);
        if let Ok(text) = std::fs::read_to_string(&home) {
            assert_eq!(&text, content, "{name}: its access hash changed");
            continue;
        }
        let sha = whmtoken_core::retire::content_sha512(content.as_bytes());
        let found = journaled
            .get(name)
            .into_iter()
            .flatten()
            .any(|(backup, digest)| {
                *digest == sha && std::fs::read_to_string(backup).ok().as_ref() == Some(content)
            });
        assert!(
            found,
            "{name}: its access hash is neither in its home nor in a journaled backup"
        );
        in_backup.insert(name.clone());
    }
    in_backup
}

#[test]
fn killed_at_fifty_moments_nothing_is_lost_and_restore_or_a_rerun_finishes() {
    let (server, names, contents) = converted_resellers(60);
    let config = server.config_path();
    let full = Instant::now();
    let out = whmtoken(&config, &["retire", "--all-resellers", "--json"], "");
    let duration = full.elapsed();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let id = json_of(&out)["run_id"].as_str().unwrap().to_owned();
    assert_eq!(check_nothing_lost(&server, &contents).len(), names.len());
    assert_eq!(whmtoken(&config, &["restore", &id], "").code, 0);
    assert!(check_nothing_lost(&server, &contents).is_empty());

    let mut killed_midway = 0;
    for point in 0..50u32 {
        let before = run_ids(&config);
        let mut child = Command::new(env!("CARGO_BIN_EXE_whmtoken"))
            .args(["--config", config.as_str(), "retire", "--all-resellers"])
            .env_remove("WHMTOKEN_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(duration * point / 50);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let retired = check_nothing_lost(&server, &contents);
        if !retired.is_empty() && retired.len() < names.len() {
            killed_midway += 1;
        }
        let killed: Vec<String> = run_ids(&config).difference(&before).cloned().collect();
        if point % 2 == 1 {
            // A rerun finishes the job...
            let out = whmtoken(&config, &["retire", "--all-resellers", "--json"], "");
            assert_eq!(out.code, 0, "{point}: {}", out.stderr);
            assert_eq!(check_nothing_lost(&server, &contents).len(), names.len());
            // ...and restoring both runs puts everything back.
            let mut ids: Vec<String> = run_ids(&config).difference(&before).cloned().collect();
            ids.sort();
            for id in ids.iter().rev() {
                let out = whmtoken(&config, &["restore", id], "");
                assert_eq!(out.code, 0, "{point}: restore {id}: {}", out.stderr);
            }
        } else {
            for id in &killed {
                let out = whmtoken(&config, &["restore", id], "");
                assert_eq!(out.code, 0, "{point}: restore {id}: {}", out.stderr);
            }
        }
        assert!(
            check_nothing_lost(&server, &contents).is_empty(),
            "{point}: every access hash is home again"
        );
    }
    assert!(
        killed_midway > 0,
        "some kills landed in the middle of the run"
    );
    let leftovers: Vec<_> = std::fs::read_dir(server.root().join("var/cpanel"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".whmtoken-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_home_folder_reached_through_a_symbolic_link_is_retired_and_restored() {
    let (_keep, dir) = temp();
    let config = server("files", &dir);
    std::fs::rename(dir.join("root"), dir.join("root2")).unwrap();
    std::os::unix::fs::symlink("root2", dir.join("root")).unwrap();
    let out = whmtoken(&config, &["retire", "--json"], "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let id = json_of(&out)["run_id"].as_str().unwrap().to_owned();
    assert!(!dir.join("root2/.accesshash").exists());
    let out = whmtoken(&config, &["restore", &id], "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(dir.join("root2/.accesshash").is_file());
}

/// On SQLite, every access hash is in `users` or in a `backups` row that a journal row of
/// the same run names, with the same content. Returns how many are in a backup only.
fn check_nothing_lost_in_sqlite(db: &Utf8Path, contents: &BTreeMap<String, String>) -> usize {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut in_backup = 0;
    for (name, content) in contents {
        let present: Option<Vec<u8>> = conn
            .query_row(
                "SELECT access_hash FROM users WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .unwrap();
        if let Some(present) = present {
            assert_eq!(
                present,
                content.as_bytes(),
                "{name}: its access hash changed"
            );
            continue;
        }
        let sha = whmtoken_core::retire::content_sha512(content.as_bytes());
        let backed_up: i64 = conn
            .query_row(
                "SELECT count(*) FROM backups b JOIN runs r ON r.run = b.run
                 WHERE b.name = ?1 AND b.content = ?2
                   AND json_extract(r.record, '$.user') = ?3
                   AND json_extract(r.record, '$.sha512') = ?4",
                rusqlite::params![format!("{name}.accesshash"), content.as_bytes(), name, sha],
                |r| r.get(0),
            )
            .unwrap();
        assert!(
            backed_up > 0,
            "{name}: neither in users nor in a journaled backup"
        );
        in_backup += 1;
    }
    in_backup
}

#[test]
fn on_sqlite_a_killed_retire_loses_nothing_either() {
    let (_keep, dir) = temp();
    let mut text = String::new();
    let mut contents = BTreeMap::new();
    for i in 0..200 {
        let name = format!("res{i:04}");
        let content = cpanel_style_access_hash(&name);
        text.push_str(&format!(
            "[[user]]\nname = \"{name}\"\nreseller = []\naccesshash = \"{}\"\n",
            content.escape_default()
        ));
        contents.insert(name, content);
    }
    let scenario = Scenario::parse(Utf8Path::new("many"), &text).unwrap();
    let config = scenario.build("sqlite", &dir).unwrap();
    let db = dir.join("server.db");
    let convert = Command::new(env!("CARGO_BIN_EXE_convert_accesshash_to_token"))
        .args(["--config", config.as_str(), "--all-resellers"])
        .output()
        .unwrap();
    assert!(convert.status.success());
    let full = Instant::now();
    let out = whmtoken(&config, &["retire", "--all-resellers", "--json"], "");
    let duration = full.elapsed();
    let id = json_of(&out)["run_id"].as_str().unwrap().to_owned();
    assert_eq!(check_nothing_lost_in_sqlite(&db, &contents), 200);
    assert_eq!(whmtoken(&config, &["restore", &id], "").code, 0);

    for point in 0..10u32 {
        let before = run_ids(&config);
        let mut child = Command::new(env!("CARGO_BIN_EXE_whmtoken"))
            .args(["--config", config.as_str(), "retire", "--all-resellers"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(duration * point / 10);
        child.kill().unwrap();
        child.wait().unwrap();
        check_nothing_lost_in_sqlite(&db, &contents);
        for id in run_ids(&config).difference(&before) {
            let out = whmtoken(&config, &["restore", id], "");
            assert_eq!(out.code, 0, "{point}: {}", out.stderr);
        }
        assert_eq!(check_nothing_lost_in_sqlite(&db, &contents), 0, "{point}");
    }
}

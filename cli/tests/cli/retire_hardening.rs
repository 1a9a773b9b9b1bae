//! Retire and restore against hostile trees and journals (issue 25): a forged journal
//! never gives a file root's uid, a setuid bit or a place outside the tree; a recycled uid
//! never receives someone else's secret; a run's journal is appended by that run alone;
//! audit lines are written before the change they record, in the accounts' order; two
//! runs at once take turns, so that `runs` and `restore` agree.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::Value;
use whmtoken_fixtures::{FakeServer, cpanel_style_access_hash};

use crate::{Run, backends, whmtoken};

fn json_of(run: &Run) -> Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", run.stdout, run.stderr))
}

/// A files server with resellers `names`, each converted.
fn converted(names: &[&str]) -> FakeServer {
    let mut server = FakeServer::new();
    for name in names {
        server.add_reseller(name, &["list-accts"]);
        server.write_access_hash(name, &cpanel_style_access_hash(name));
    }
    let out = whmtoken(&server.config_path(), &["convert", "--all-resellers"], "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    server
}

/// Retires `names`; the run's id.
fn retire(config: &Utf8Path, names: &[&str]) -> String {
    let mut args = vec!["retire", "--json"];
    args.extend_from_slice(names);
    let out = whmtoken(config, &args, "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    json_of(&out)["run_id"].as_str().unwrap().to_owned()
}

fn journal_path(server: &FakeServer, id: &str) -> Utf8PathBuf {
    server
        .root()
        .join(format!("var/lib/whmtoken/runs/{id}.json"))
}

/// Rewrites run `id`'s journal entry for `user` with `edit`.
fn forge(server: &FakeServer, id: &str, user: &str, edit: impl Fn(&mut Value)) {
    let path = journal_path(server, id);
    let text = std::fs::read_to_string(&path).unwrap();
    let forged: Vec<String> = text
        .lines()
        .map(|line| {
            let mut record: Value = serde_json::from_str(line).unwrap();
            if record["change"] == "accesshash" && record["user"] == user {
                edit(&mut record);
            }
            record.to_string()
        })
        .collect();
    std::fs::write(&path, forged.join("\n") + "\n").unwrap();
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn a_journal_never_gives_a_restored_file_a_setuid_bit() {
    let server = converted(&["alice"]);
    let config = server.config_path();
    let id = retire(&config, &["alice"]);
    forge(&server, &id, "alice", |r| r["mode"] = 0o4755.into());
    let out = whmtoken(&config, &["restore", &id], "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let meta = std::fs::metadata(server.access_hash_path("alice")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
}

#[test]
fn restore_refuses_an_account_whose_uid_changed_since_the_run() {
    let server = converted(&["alice"]);
    let config = server.config_path();
    let id = retire(&config, &["alice"]);
    let uid = server.uid("alice").unwrap();
    // The account was removed and its name given to someone else, with another uid.
    let passwd = server.root().join("etc/passwd");
    let text = std::fs::read_to_string(&passwd).unwrap();
    let recycled = text.replace(
        &format!("alice:x:{uid}:{uid}:"),
        &format!("alice:x:{}:{}:", uid + 8, uid + 8),
    );
    assert_ne!(text, recycled);
    std::fs::write(&passwd, recycled).unwrap();
    let out = whmtoken(&config, &["restore", &id], "");
    assert_eq!(out.code, 65, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "error: alice: uid changed from {uid} to {} since run {id}; not restored",
            uid + 8
        )),
        "{}",
        out.stderr
    );
    assert!(!server.access_hash_path("alice").exists());
}

#[test]
#[expect(clippy::print_stderr, reason = "a skipped test says why")]
fn root_restoring_a_tree_another_user_owns_never_writes_outside_it_nor_as_root() {
    if !is_root() {
        eprintln!("skipped: needs root (a tree that root does not own)");
        return;
    }
    const OWNER: u32 = 4242;
    let mut server = FakeServer::new();
    server.add_user_with_uid("alice", OWNER);
    server.make_reseller("alice", &["list-accts"]);
    server.write_access_hash("alice", &cpanel_style_access_hash("alice"));
    let chown = |path: &Utf8Path| {
        let status = std::process::Command::new("chown")
            .args(["-R", &format!("{OWNER}:{OWNER}"), path.as_str()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    chown(server.root());
    let config = server.config_path();
    let out = whmtoken(&config, &["convert", "alice"], "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let id = retire(&config, &["alice"]);
    for made in [
        "var/lib/whmtoken",
        "var/cpanel/authn/api_tokens_v2/whostmgr",
    ] {
        let meta = std::fs::metadata(server.root().join(made)).unwrap();
        assert_eq!(meta.uid(), OWNER, "{made}: made as the tree's owner");
    }

    // The tree's owner forges the journal (root's uid, a setuid bit) and points alice's
    // home out of the tree, at a folder anyone can write.
    forge(&server, &id, "alice", |r| {
        r["uid"] = 0.into();
        r["gid"] = 0.into();
        r["mode"] = 0o4755.into();
    });
    let outside = tempfile::tempdir().unwrap();
    std::fs::set_permissions(outside.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let home = server.home("alice");
    std::fs::remove_dir_all(&home).unwrap();
    std::os::unix::fs::symlink(outside.path(), &home).unwrap();
    let passwd = server.root().join("etc/passwd");
    let text = std::fs::read_to_string(&passwd).unwrap();
    std::fs::write(
        &passwd,
        text.replace(&format!(":{OWNER}:{OWNER}:"), ":0:0:"),
    )
    .unwrap();
    chown(server.root());

    let out = whmtoken(&config, &["restore", &id, "--force"], "");
    assert_eq!(out.code, 65, "{}", out.stderr);
    let planted: Vec<_> = std::fs::read_dir(outside.path()).unwrap().collect();
    assert!(
        planted.is_empty(),
        "nothing written outside the tree: {planted:?}"
    );
}

/// The accounting log's lines of `action`, each as the account it names.
fn lines_of(server: &FakeServer, action: &str) -> Vec<String> {
    server
        .accounting_lines()
        .iter()
        .filter(|line| line.contains(&format!(":{action}:")))
        .map(|line| line.split(':').rev().nth(2).unwrap().to_owned())
        .collect()
}

fn resellers(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("res{i:03}")).collect()
}

#[test]
fn retire_and_restore_lines_follow_the_accounts_order_whatever_the_jobs() {
    let names = resellers(40);
    let named: Vec<&str> = names.iter().map(String::as_str).collect();
    let server = converted(&named);
    let config = server.config_path();
    let id = retire(&config, &["--all-resellers"]);
    assert_eq!(lines_of(&server, "RETIREACCESSHASH"), names);
    // Restore puts the accounts back in the order the run was given them, too.
    let out = whmtoken(&config, &["restore", &id], "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(lines_of(&server, "RESTOREACCESSHASH"), names);
}

#[test]
fn a_log_that_cannot_be_written_stops_retire_before_any_change() {
    let server = converted(&["alice", "bob"]);
    let config = server.config_path();
    let log = server.root().join("var/cpanel/accounting.log");
    let kept = std::fs::read(&log).unwrap();
    std::fs::remove_file(&log).unwrap();
    std::os::unix::fs::symlink("/dev/null", &log).unwrap();
    let out = whmtoken(&config, &["retire", "alice", "bob"], "");
    assert_eq!(out.code, 65, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "error: alice: not retired: its audit line could not be written: refusing to write {log}: it is a symbolic link"
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!(
            "error: not attempted, 1 account(s) (bob): the audit log {log} cannot be written (it is a symbolic link)"
        )),
        "{}",
        out.stderr
    );
    for user in ["alice", "bob"] {
        assert!(server.access_hash_path(user).exists(), "{user} kept");
    }
    // The run changed nothing: no backup of a secret is left behind.
    let backups = server.root().join("var/lib/whmtoken/backups");
    let left: Vec<_> = walkdir(&backups);
    assert!(left.is_empty(), "backups left: {left:?}");
    std::fs::remove_file(&log).unwrap();
    std::fs::write(&log, kept).unwrap();
}

/// Every file under `folder` (none when it does not exist).
fn walkdir(folder: &Utf8Path) -> Vec<Utf8PathBuf> {
    let Ok(entries) = folder.read_dir_utf8() else {
        return Vec::new();
    };
    entries
        .flat_map(|e| {
            let path = e.unwrap().path().to_owned();
            if path.is_dir() {
                walkdir(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

#[test]
fn a_recreated_set_aside_file_never_adds_to_an_old_journal_nor_to_the_log() {
    let server = converted(&["alice"]);
    let config = server.config_path();
    let secret = std::fs::read(server.access_hash_path("alice")).unwrap();
    let id = retire(&config, &["alice"]);
    let journal = journal_path(&server, &id);
    let recorded = std::fs::read_to_string(&journal).unwrap();
    // The tenant puts its old access hash back under the set-aside name of that run.
    let aside = server
        .home("alice")
        .join(format!(".accesshash.whmtoken-retiring-{id}"));
    server.write_file(&aside, &secret, 0o600);
    if let Some(uid) = server.uid("alice").filter(|_| is_root()) {
        std::os::unix::fs::chown(&aside, Some(uid), Some(uid)).unwrap();
    }
    for _ in 0..2 {
        let out = whmtoken(&config, &["retire", "alice"], "");
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    assert_eq!(
        std::fs::read_to_string(&journal).unwrap(),
        recorded,
        "run {id}'s journal is appended by that run alone"
    );
    assert_eq!(lines_of(&server, "RETIREACCESSHASH"), ["alice"]);
}

/// A `backend` server with 200 converted resellers, in `dir`; its config.
fn converted_many(backend: &str, dir: &Utf8Path) -> Utf8PathBuf {
    let text: String = (0..200)
        .map(|i| {
            let name = format!("res{i:03}");
            let hash = cpanel_style_access_hash(&name);
            format!(
                "[[user]]\nname = \"{name}\"\nreseller = []\naccesshash = \"{}\"\n",
                hash.escape_default()
            )
        })
        .collect();
    let scenario = whmtoken_fixtures::Scenario::parse(Utf8Path::new("many"), &text).unwrap();
    let config = scenario.build(backend, dir).unwrap();
    let convert = std::process::Command::new(env!("CARGO_BIN_EXE_convert_accesshash_to_token"))
        .args(["--config", config.as_str(), "--all-resellers"])
        .output()
        .unwrap();
    assert!(convert.status.success(), "{convert:?}");
    config
}

/// The names in a JSON list.
fn names(list: &Value) -> Vec<String> {
    let list = list
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"));
    list.iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn two_retires_at_once_take_turns_and_runs_and_restore_agree() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(dir.path()).unwrap();
        let config = converted_many(backend, dir);
        let both: Vec<Run> = std::thread::scope(|scope| {
            let runs: Vec<_> = (0..2)
                .map(|_| {
                    scope.spawn(|| whmtoken(&config, &["retire", "--all-resellers", "--json"], ""))
                })
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        for out in &both {
            assert_eq!(out.code, 0, "{backend}: {}", out.stderr);
        }
        let listed = json_of(&whmtoken(&config, &["runs", "--json"], ""));
        let runs = listed["runs"].as_array().unwrap();
        let mut journaled: Vec<String> = runs.iter().flat_map(|r| names(&r["retired"])).collect();
        journaled.sort();
        let every: Vec<String> = (0..200).map(|i| format!("res{i:03}")).collect();
        assert_eq!(
            journaled, every,
            "{backend}: each account in one run's journal, once"
        );
        for run in runs {
            let id = run["id"].as_str().unwrap();
            let out = whmtoken(&config, &["restore", id, "--json"], "");
            assert_eq!(out.code, 0, "{backend}: {}", out.stderr);
            let restored: Vec<String> = json_of(&out)["results"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["status"] == "restored")
                .map(|r| r["user"].as_str().unwrap().to_owned())
                .collect();
            let mut retired = names(&run["retired"]);
            retired.sort();
            let mut restored = restored;
            restored.sort();
            assert_eq!(
                restored, retired,
                "{backend}: run {id}: what runs lists is what restore put back"
            );
        }
    }
}

/// Makes `path` a leftover of a killed run: `content`, ten minutes old.
fn leftover(path: &Utf8Path, content: &str) {
    std::fs::write(path, content).unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(600);
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_times(std::fs::FileTimes::new().set_modified(old))
        .unwrap();
}

#[test]
fn a_killed_restores_new_files_are_swept_as_the_converters_debris_is() {
    let server = converted(&["alice"]);
    let config = server.config_path();
    server.append(
        "var/cpanel/cpanel.config",
        "allow_deprecated_accesshash=1\n",
    );
    let out = whmtoken(
        &config,
        &["retire", "--json", "--disable-accesshash-auth", "alice"],
        "",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let id = json_of(&out)["run_id"].as_str().unwrap().to_owned();
    // Named by a process that cannot exist (pids stay below 2^22), and one that does.
    let dead = "7ffffffe-18c3f0e1-0";
    let live = format!("{:x}-18c3f0e1-0", std::process::id());
    let home = server.home("alice");
    let var = server.root().join("var/cpanel");
    let swept = [
        home.join(format!(".accesshash.whmtoken-{dead}")),
        var.join(format!("cpanel.config.whmtoken-{dead}")),
    ];
    let kept = [
        home.join(format!(".accesshash.whmtoken-{live}")),
        var.join(format!("cpanel.config.whmtoken-{live}")),
        home.join(format!(".accesshash.whmtoken-retiring-{id}-x")),
    ];
    for path in swept.iter().chain(&kept) {
        leftover(path, "half a secret");
    }
    let out = whmtoken(&config, &["restore", &id], "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    for path in &swept {
        assert!(!path.exists(), "{path} left behind");
    }
    for path in &kept {
        assert!(path.exists(), "{path} removed");
    }
}

#[test]
fn duplicated_setting_lines_are_restored_byte_for_byte() {
    let server = converted(&["alice"]);
    let config = server.config_path();
    let path = server.root().join("var/cpanel/cpanel.config");
    let original = "skipanalog=1\nallow_deprecated_accesshash = 0\r\n\
                    maxemailsperhour=5\nallow_deprecated_accesshash=1\nallow_deprecated_accesshash =1";
    std::fs::write(&path, original).unwrap();
    let retire = |seed: &str| {
        let out = whmtoken(
            &config,
            &["retire", "--json", "--disable-accesshash-auth"],
            "",
        );
        assert_eq!(out.code, 0, "{seed}: {}", out.stderr);
        json_of(&out)["run_id"].as_str().unwrap().to_owned()
    };
    let id = retire("first");
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("accesshash=0")
    );
    let out = whmtoken(&config, &["restore", &id], "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), original);

    // Its lines removed since the run: put back as they were, at the end.
    let id = retire("second");
    std::fs::write(&path, "skipanalog=1\nmaxemailsperhour=5\n").unwrap();
    let out = whmtoken(&config, &["restore", &id], "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "skipanalog=1\nmaxemailsperhour=5\nallow_deprecated_accesshash = 0\r\n\
         allow_deprecated_accesshash=1\nallow_deprecated_accesshash =1"
    );
}

/// Plants `content` as `user`'s file at `path` (owned by the account when run as root).
fn plant_as(server: &FakeServer, user: &str, path: &Utf8Path, content: &[u8]) {
    server.write_file(path, content, 0o600);
    if let Some(uid) = server.uid(user).filter(|_| is_root()) {
        std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
    }
}

/// The status of each result of a restore's `--json` document.
fn restore_statuses(out: &Run) -> Vec<(String, String)> {
    json_of(out)["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let name = r["user"].as_str().or(r["name"].as_str()).unwrap();
            (name.to_owned(), r["status"].as_str().unwrap().to_owned())
        })
        .collect()
}

#[test]
fn a_set_aside_file_planted_after_the_removal_is_left_alone_by_restore() {
    let server = converted(&["alice"]);
    let config = server.config_path();
    let secret = std::fs::read(server.access_hash_path("alice")).unwrap();
    let id = retire(&config, &["alice"]);
    // The run recorded the removal complete; the tenant then plants its own file under
    // the run's set-aside name.
    let aside = server
        .home("alice")
        .join(format!(".accesshash.whmtoken-retiring-{id}"));
    plant_as(&server, "alice", &aside, b"the tenant's own file");
    let dry = whmtoken(&config, &["restore", "--dry-run", "--json", &id], "");
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    let real = whmtoken(&config, &["restore", "--json", &id], "");
    assert_eq!(real.code, 0, "{}", real.stderr);
    let restored = vec![("alice".to_owned(), "restored".to_owned())];
    assert_eq!(restore_statuses(&dry), restored, "the dry run");
    assert_eq!(restore_statuses(&real), restored, "the real run");
    assert_eq!(
        std::fs::read(server.access_hash_path("alice")).unwrap(),
        secret
    );
    assert_eq!(std::fs::read(&aside).unwrap(), b"the tenant's own file");
}

#[test]
fn runs_lists_a_partly_restored_runs_accounts_not_back_first_and_counts_the_rest() {
    let given = ["h", "g", "f", "e", "d", "c", "b", "a"];
    let server = converted(&given);
    let config = server.config_path();
    let id = retire(&config, &given);
    plant_as(&server, "e", &server.access_hash_path("e"), b"a new one");
    assert_eq!(whmtoken(&config, &["restore", &id], "").code, 65);
    let text = whmtoken(&config, &["runs"], "");
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(
        text.stdout.contains(
            "partly restored (not restored 1: e; restored 7: h, g, f, d, c and 2 more; --verbose lists them)\n"
        ),
        "{}",
        text.stdout
    );
    let verbose = whmtoken(&config, &["runs", "--verbose"], "");
    assert!(
        verbose
            .stdout
            .contains("partly restored (not restored 1: e; restored 7: h, g, f, d, c, b, a)\n"),
        "{}",
        verbose.stdout
    );
    // Begun two minutes ago, as far as the journal tells; pruning keeps it, and says how.
    let path = journal_path(&server, &id);
    let journal = std::fs::read_to_string(&path).unwrap();
    let (header, rest) = journal.split_once('\n').unwrap();
    let mut header: Value = serde_json::from_str(header).unwrap();
    header["started"] = (header["started"].as_i64().unwrap() - 120).into();
    std::fs::write(&path, format!("{header}\n{rest}")).unwrap();
    let out = whmtoken(&config, &["runs", "--prune", "--older-than", "1m"], "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        format!(
            "Kept the backups of run {id}: only partly restored; restore it first, or prune it with --force\n\
             Pruned 0, kept 0 not restored and 1 partly restored.\n"
        )
    );
}

#[test]
fn runs_shows_a_partly_restored_run_naming_what_is_back_and_what_is_not() {
    let server = converted(&["carol", "alice", "bob"]);
    let config = server.config_path();
    let id = retire(&config, &["carol", "alice", "bob"]);
    // Another access hash appears for alice: her restore is refused, the others' are not.
    plant_as(
        &server,
        "alice",
        &server.access_hash_path("alice"),
        b"a new one",
    );
    let out = whmtoken(&config, &["restore", &id], "");
    assert_eq!(out.code, 65, "{}", out.stderr);
    let text = whmtoken(&config, &["runs"], "");
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(
        text.stdout.contains(
            "retired 3 access hash(es)  partly restored (not restored 1: alice; restored 2: carol, bob)"
        ),
        "{}",
        text.stdout
    );
    let doc = json_of(&whmtoken(&config, &["runs", "--json"], ""));
    let run = &doc["runs"][0];
    assert_eq!(run["restore"], "partly_restored");
    assert_eq!(names(&run["retired"]), ["carol", "alice", "bob"]);
    assert_eq!(names(&run["restored_users"]), ["carol", "bob"]);
    assert_eq!(names(&run["not_restored_users"]), ["alice"]);
    assert_eq!(run["restored_at"], Value::Null);

    // Once the rest is back, the run is restored.
    std::fs::remove_file(server.access_hash_path("alice")).unwrap();
    let out = whmtoken(&config, &["restore", &id], "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc = json_of(&whmtoken(&config, &["runs", "--json"], ""));
    assert_eq!(doc["runs"][0]["restore"], "restored");
    assert_eq!(
        names(&doc["runs"][0]["not_restored_users"]),
        Vec::<String>::new()
    );
}

#[test]
fn retire_and_restore_take_lock_timeout_as_the_converter_does() {
    let server = converted(&["alice"]);
    let config = server.config_path();
    let id = retire(&config, &["alice"]);
    let lock_path = server.root().join("var/lib/whmtoken/runs.lock");
    let held = std::fs::File::options()
        .read(true)
        .write(true)
        .open(&lock_path)
        .unwrap();
    held.lock().unwrap();
    for args in [
        &["retire", "--lock-timeout", "0.3", "alice"][..],
        &["restore", "--lock-timeout", "0.3", &id],
    ] {
        let out = whmtoken(&config, args, "");
        assert_eq!(out.code, 75, "{args:?}: {}", out.stderr);
        assert_eq!(
            out.stderr,
            format!(
                "error: cannot take the lock of retire and restore runs: {lock_path} is locked by another process (waited 0.3 s); try again later\n"
            ),
            "{args:?}"
        );
    }
    drop(held);
    let seconds = "expected a number of seconds from 0 to 3600, such as 30";
    for command in ["retire", "restore"] {
        for value in ["abc", "-1", "3600.5"] {
            let out = whmtoken(&config, &[command, &id, "--lock-timeout", value], "");
            assert_eq!(out.code, 64, "{command} {value}");
            assert!(out.stderr.contains(seconds), "{}", out.stderr);
        }
    }
    let out = whmtoken(&config, &["restore", "--lock-timeout", "0", &id], "");
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn accounts_not_attempted_are_one_line_with_the_first_few_names_and_verbose_lists_all() {
    let names: Vec<String> = ["hank", "bob", "gus", "carl", "dan", "eve", "fay", "abe"]
        .map(str::to_owned)
        .to_vec();
    let named: Vec<&str> = names.iter().map(String::as_str).collect();
    let server = converted(&named);
    let config = server.config_path();
    let log = server.root().join("var/cpanel/accounting.log");
    let kept = std::fs::read(&log).unwrap();
    std::fs::remove_file(&log).unwrap();
    std::os::unix::fs::symlink("/dev/null", &log).unwrap();
    let reason = format!("the audit log {log} cannot be written (it is a symbolic link)");
    let mut args = vec!["retire"];
    args.extend(&named);
    let out = whmtoken(&config, &args, "");
    assert_eq!(out.code, 65, "{}", out.stderr);
    assert_eq!(
        out.stderr.lines().nth(1),
        Some(
            format!(
                "error: not attempted, 7 account(s) (bob, gus, carl, dan, eve and 2 more; --verbose lists them): {reason}"
            )
            .as_str()
        ),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stdout,
        "Retired 0, already retired 0, no access hash 0, not converted 0, failed 1, not attempted 7.\n"
    );
    args.push("--verbose");
    let out = whmtoken(&config, &args, "");
    assert!(
        out.stderr.contains(&format!(
            "error: not attempted, 7 account(s) (bob, gus, carl, dan, eve, fay, abe): {reason}"
        )),
        "{}",
        out.stderr
    );
    std::fs::remove_file(&log).unwrap();
    std::fs::write(&log, kept).unwrap();
}

#[test]
fn runs_says_when_there_are_none() {
    let server = converted(&["alice"]);
    let out = whmtoken(&server.config_path(), &["runs"], "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "No retire runs on this server yet.\n");
}

#[test]
fn every_list_of_accounts_follows_the_order_given_whatever_the_jobs_on_both_backends() {
    // Not name order, and enough accounts for the threads to finish out of order.
    let given: Vec<String> = (0..200)
        .map(|i| format!("res{:03}", (i * 37) % 200))
        .collect();
    let given_refs: Vec<&str> = given.iter().map(String::as_str).collect();
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(dir.path()).unwrap();
        let config = converted_many(backend, dir);
        let mut args = vec!["retire", "--json"];
        args.extend(&given_refs);
        let out = whmtoken(&config, &args, "");
        assert_eq!(out.code, 0, "{backend}: {}", out.stderr);
        let doc = json_of(&out);
        let id = doc["run_id"].as_str().unwrap().to_owned();
        let users = |doc: &Value| -> Vec<String> {
            doc["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["user"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(users(&doc), given, "{backend}: retire --json");
        let runs = json_of(&whmtoken(&config, &["runs", "--json"], ""));
        assert_eq!(names(&runs["runs"][0]["retired"]), given, "{backend}: runs");
        assert_eq!(
            names(&runs["runs"][0]["not_restored_users"]),
            given,
            "{backend}: runs"
        );
        let out = whmtoken(&config, &["restore", &id], "");
        assert_eq!(out.code, 0, "{backend}: {}", out.stderr);
        let text: Vec<&str> = out
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix("Restored accesshash for “"))
            .filter_map(|l| l.split('”').next())
            .collect();
        assert_eq!(text, given_refs, "{backend}: restore's lines");
        assert_eq!(
            out.stdout.lines().last(),
            Some("Restored 200, already restored 0, failed 0, not attempted 0.")
        );
        let again = json_of(&whmtoken(&config, &["restore", &id, "--json"], ""));
        assert_eq!(users(&again), given, "{backend}: restore --json");
    }
}

#[test]
#[expect(clippy::print_stderr, reason = "a skipped test says why")]
fn restore_never_writes_into_another_accounts_home_through_a_linked_home() {
    if !is_root() {
        eprintln!("skipped: needs root (accounts with uids of their own)");
        return;
    }
    let server = converted(&["alice"]);
    let config = server.config_path();
    let id = retire(&config, &["alice"]);

    // Alice's home becomes a link to root's home, which has no access hash: a restore that
    // followed it would make alice's secret root's.
    let root_home = server.home("root");
    std::fs::create_dir_all(&root_home).unwrap();
    let home = server.home("alice");
    std::fs::remove_dir_all(&home).unwrap();
    std::os::unix::fs::symlink(&root_home, &home).unwrap();

    let out = whmtoken(&config, &["restore", &id], "");
    assert_eq!(out.code, 65, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("a symbolic link to a folder its account does not own"),
        "{}",
        out.stderr
    );
    assert!(
        !root_home.join(".accesshash").exists(),
        "alice's secret never becomes root's access hash"
    );
}

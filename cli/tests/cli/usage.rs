//! `whmtoken usage`, and the audit and retire that read the same logs, on both backends
//! (issue: evidence before the switch): each classification (session, access hash, token,
//! refused, through the proxy), rotated and gzip archives, a gzip bomb, coverage shorter
//! than the window, forged user agents and quotes, truncated and oversized lines, query
//! strings never printed, the join across time zones and a daylight-saving change, a
//! missing logs folder and `--logs`; and on files, DNS cluster configs of both styles.

use std::io::Write;

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::Value;
use whmtoken_core::AccessHash;
use whmtoken_fixtures::{AccessEntry, Scenario, TokenLogEntry, cpanel_style_access_hash};

use crate::{Run, backends, now, whmtoken};

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

fn temp() -> (tempfile::TempDir, Utf8PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = Utf8PathBuf::from_path_buf(dir.path().to_owned()).unwrap();
    (dir, path)
}

/// An `access_log` line.
struct Line<'a> {
    user: &'a str,
    time: i64,
    auth: u8,
    status: u16,
    ip: &'a str,
    forwarded_for: Option<&'a str>,
    agent: &'a [u8],
    request: &'a [u8],
}

const LISTACCTS: &[u8] = b"GET /json-api/listaccts?api.version=1 HTTP/1.1";

fn line(user: &str, time: i64) -> Line<'_> {
    Line {
        user,
        time,
        auth: b'a',
        status: 200,
        ip: "198.51.100.7",
        forwarded_for: None,
        agent: b"billing-system/2.1",
        request: LISTACCTS,
    }
}

impl Line<'_> {
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        AccessEntry {
            ip: self.ip,
            forwarded_for: self.forwarded_for,
            user: self.user,
            time: self.time,
            request: self.request,
            status: self.status,
            size: 100,
            user_agent: self.agent,
            auth: self.auth,
            port: if self.forwarded_for.is_some() {
                443
            } else {
                2087
            },
        }
        .write_to(&mut out);
        out
    }
}

fn token_line(time: i64, offset: i32, user: &str, token: &str, request: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    TokenLogEntry {
        time,
        offset,
        status: 200,
        user,
        token,
        request,
        host: None,
    }
    .write_to(&mut out);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// `MM-YYYY` of an epoch, as cPanel names its monthly archives.
fn month_of(epoch: i64) -> String {
    let time = jiff::Timestamp::from_second(epoch).unwrap();
    time.strftime("%m-%Y").to_string()
}

const DAY: i64 = 86_400;

/// root converted (and its old secret still sent, through its token), bob not converted
/// with a token `billing`, carol with a token never used; access-hash authentication
/// `allow`ed or not.
fn scenario_text(allow: bool) -> String {
    let root = cpanel_style_access_hash("root");
    format!(
        r#"
[server]
allow_deprecated_accesshash = {allow}

[[user]]
name = "root"
accesshash = "{root_hash}"
[[user.token]]
hash = "{root_key}"
name = "accesshash-1700000000"
create_time = 1700000000

[[user]]
name = "bob"
reseller = ["list-accts"]
accesshash = "{bob_hash}"
[[user.token]]
hash = "{billing}"
name = "billing"
create_time = 1600000000

[[user]]
name = "carol"
reseller = []
[[user.token]]
hash = "{spare}"
name = "spare"
create_time = 1600000000
"#,
        root_hash = root.escape_default(),
        root_key = key(&root),
        bob_hash = cpanel_style_access_hash("bob").escape_default(),
        billing = key("BILLINGTOKEN0000000000000000000A"),
        spare = key("SPARETOKEN000000000000000000000A"),
    )
}

/// The logs of the story: what each client did, as cPanel logged it.
fn story_logs(now: i64) -> Vec<(String, Vec<u8>)> {
    let mut current = Vec::new();
    let session = Line {
        auth: b's',
        agent: b"Mozilla/5.0",
        ..line("root", now - 7200)
    };
    current.extend(session.bytes());
    current.extend(line("bob", now - 3600).bytes());
    let query = Line {
        request: b"GET /json-api/passwd?api.version=1&password=hunter2 HTTP/1.1",
        ..line("bob", now - 2400)
    };
    current.extend(query.bytes());
    let token_request = Line {
        request: b"GET /json-api/version?api.version=1 HTTP/1.1",
        ..line("bob", now - 1800)
    };
    current.extend(token_request.bytes());
    let legacy = Line {
        ip: "192.0.2.53",
        agent: b"dnsadmin",
        ..line("root", now - 1000)
    };
    current.extend(legacy.bytes());
    let proxied = Line {
        ip: "127.0.0.1",
        forwarded_for: Some("10.0.0.9, 203.0.113.5"),
        ..line("bob", now - 900)
    };
    current.extend(proxied.bytes());
    let forged = Line {
        auth: b's',
        agent: b"x\" \"a\" \"-\" 2087",
        ..line("bob", now - 800)
    };
    current.extend(forged.bytes());
    let quoted = Line {
        agent: b"say \"hi\"\x1b[2J\xe9",
        ..line("bob", now - 700)
    };
    current.extend(quoted.bytes());
    let cut = line("bob", now - 600).bytes();
    current.extend(&cut[..cut.len() / 2]);
    current.push(b'\n');
    current.extend(vec![b'y'; 70_000]);
    current.push(b'\n');
    let refused = Line {
        status: 403,
        ip: "192.0.2.99",
        agent: b"old-script",
        ..line("bob", now - 60)
    };
    current.extend(refused.bytes());
    let mut tokens = token_line(now - 1799, -21_600, "bob", "billing", token_request.request);
    tokens.extend(token_line(
        now - 1000,
        3600,
        "root",
        "accesshash-1700000000",
        LISTACCTS,
    ));
    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    for _ in 0..32 {
        bomb.write_all(&[0u8; 1 << 20]).unwrap();
    }
    bomb.write_all(b"\n").unwrap();
    bomb.write_all(&line("bob", now - 20 * DAY).bytes())
        .unwrap();
    vec![
        (
            format!("archive/access_log-{}.gz", month_of(now - 100 * DAY)),
            gzip(&line("bob", now - 100 * DAY).bytes()),
        ),
        (
            format!("archive/access_log-{}.gz", month_of(now - 40 * DAY)),
            gzip(&line("bob", now - 40 * DAY).bytes()),
        ),
        ("access_log.2.gz".to_owned(), bomb.finish().unwrap()),
        (
            "access_log.1".to_owned(),
            line("bob", now - 10 * DAY).bytes(),
        ),
        ("access_log".to_owned(), current),
        ("api_tokens_log".to_owned(), tokens),
    ]
}

fn build(backend: &str, dir: &Utf8Path, allow: bool, logs: Vec<(String, Vec<u8>)>) -> Utf8PathBuf {
    let mut scenario = Scenario::parse(Utf8Path::new("usage"), &scenario_text(allow)).unwrap();
    scenario.logs = logs;
    scenario.build(backend, dir).unwrap()
}

fn account<'a>(doc: &'a Value, user: &str) -> &'a Value {
    doc["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["user"] == user)
        .unwrap_or_else(|| panic!("{user} in {doc}"))
}

fn token<'a>(account: &'a Value, name: &str) -> &'a Value {
    account["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {account}"))
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

#[test]
fn usage_tells_each_credential_and_client_apart() {
    for backend in backends() {
        let (_t, dir) = temp();
        let now = now();
        let config = build(backend, &dir, true, story_logs(now));
        let run = whmtoken(&config, &["usage", "--json"], "");
        assert_eq!(run.code, 0, "{backend}: {}", run.stderr);
        for secret in ["hunter2", "json-api", "password"] {
            assert!(!run.stdout.contains(secret), "{backend}: {secret} shown");
        }
        let doc = json_of(&run);
        assert_eq!(doc["version"], 1);
        assert_eq!(keys(&doc["window"]), ["from", "to"]);
        assert!(
            doc["coverage"]["complete"].as_bool().unwrap(),
            "{backend}: {doc}"
        );
        let logs = doc["logs"].as_array().unwrap();
        assert_eq!(
            logs.len(),
            5,
            "{backend}: the archive of 100 days ago is not read: {doc}"
        );
        for key in ["path", "first", "last", "lines", "unparsed"] {
            assert!(logs[0].get(key).is_some(), "{backend}: {key}");
        }
        let current = logs
            .iter()
            .find(|l| l["path"].as_str().unwrap().ends_with("/access_log"))
            .unwrap();
        assert_eq!(
            (current["lines"].as_u64(), current["unparsed"].as_u64()),
            (Some(11), Some(3)),
            "{backend}: {current}"
        );
        let bomb = logs
            .iter()
            .find(|l| l["path"].as_str().unwrap().ends_with("access_log.2.gz"))
            .unwrap();
        assert_eq!(
            (bomb["lines"].as_u64(), bomb["unparsed"].as_u64()),
            (Some(2), Some(1))
        );
        let bob = account(&doc, "bob");
        let hash = &bob["accesshash"];
        for key in ["ok", "refused", "first", "last", "clients"] {
            assert!(hash.get(key).is_some(), "{backend}: {key}");
        }
        // 100 days ago is outside; 40, 20 and 10 days ago, 3600, 2400, 900 and 700 s ago in.
        assert_eq!(hash["ok"], 7, "{backend}: {hash}");
        assert_eq!(hash["refused"], 1);
        assert_eq!(hash["last"], now - 700);
        assert_eq!(hash["last_refused"], now - 60);
        let clients = hash["clients"].as_array().unwrap();
        assert_eq!(
            keys(&clients[0]),
            ["count", "ip", "last", "refused", "user_agent"]
        );
        assert_eq!(clients[0]["ip"], "192.0.2.99");
        assert_eq!(clients[0]["user_agent"], "old-script");
        assert!(
            clients.iter().any(|c| c["ip"] == "203.0.113.5"),
            "through the proxy: {hash}"
        );
        assert!(
            clients
                .iter()
                .any(|c| c["user_agent"] == "say \"hi\"\\u{1b}[2J\\xe9"),
            "escaped: {hash}"
        );
        let billing = token(bob, "billing");
        assert_eq!(
            (billing["ok"].as_u64(), billing["refused"].as_u64()),
            (Some(1), Some(0))
        );
        assert_eq!(billing["clients"][0]["ip"], "198.51.100.7");
        let root = account(&doc, "root");
        assert_eq!(root["accesshash"]["ok"], 0, "{root}");
        assert_eq!(token(root, "accesshash-1700000000")["ok"], 1, "{root}");
        assert_eq!(token(account(&doc, "carol"), "spare")["ok"], 0);

        let text = whmtoken(&config, &["usage", "bob"], "");
        assert_eq!(text.code, 0, "{}", text.stderr);
        assert!(
            text.stdout.contains("coverage: complete"),
            "{}",
            text.stdout
        );
        assert!(
            text.stdout.contains(" UTC (") && text.stdout.contains(" ago)"),
            "{}",
            text.stdout
        );
        assert!(
            text.stdout.contains("access hash: 7 uses"),
            "{}",
            text.stdout
        );
        assert!(
            !text.stdout.contains("\nroot:"),
            "only bob: {}",
            text.stdout
        );
        assert!(!text.stdout.contains('\u{1b}'), "escaped: {}", text.stdout);
    }
}

#[test]
fn coverage_shorter_than_the_window_is_said_and_no_token_called_unused() {
    for backend in backends() {
        let (_t, dir) = temp();
        let now = now();
        let logs = vec![("access_log".to_owned(), line("bob", now - 5 * DAY).bytes())];
        let config = build(backend, &dir, true, logs);
        let doc = json_of(&whmtoken(&config, &["usage", "--json"], ""));
        assert_eq!(doc["coverage"]["from"], now - 5 * DAY);
        assert_eq!(doc["coverage"]["complete"], false);
        let text = whmtoken(&config, &["usage"], "");
        assert!(
            text.stdout.contains("coverage: INCOMPLETE"),
            "{}",
            text.stdout
        );
        let audit = json_of(&whmtoken(
            &config,
            &["audit", "--json", "--fail-on", "never"],
            "",
        ));
        let codes = codes(&audit);
        assert!(
            !codes.contains(&"unused_token".to_owned()),
            "{backend}: {codes:?}"
        );
        assert_eq!(audit["usage"]["coverage"]["complete"], false);
        // Within a shorter window the logs cover, it is unused.
        let since = (now - 2 * DAY).to_string();
        let doc = json_of(&whmtoken(
            &config,
            &["usage", "--json", "--since", &since],
            "",
        ));
        assert_eq!(doc["coverage"]["complete"], true);
    }
}

/// Every finding's code, account by account.
fn codes(audit: &Value) -> Vec<String> {
    audit["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["findings"].as_array().unwrap().iter())
        .chain(audit["server"]["findings"].as_array().unwrap().iter())
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .collect()
}

fn finding<'a>(audit: &'a Value, user: &str, code: &str) -> Option<&'a Value> {
    account(audit, user)["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == code)
}

#[test]
fn the_audit_shows_last_uses_and_their_findings() {
    for backend in backends() {
        for allow in [true, false] {
            let (_t, dir) = temp();
            let now = now();
            let config = build(backend, &dir, allow, story_logs(now));
            let audit = json_of(&whmtoken(
                &config,
                &["audit", "--json", "--fail-on", "never"],
                "",
            ));
            let bob = account(&audit, "bob");
            assert_eq!(bob["accesshash_last_used"]["time"], now - 700, "{bob}");
            assert_eq!(token(bob, "billing")["last_used"]["ip"], "198.51.100.7");
            assert_eq!(
                token(account(&audit, "carol"), "spare")["last_used"],
                Value::Null
            );
            assert_eq!(
                account(&audit, "carol")["accesshash_last_used"],
                Value::Null
            );
            assert_eq!(audit["usage"]["coverage"]["complete"], true);
            assert_eq!(audit["usage"]["files"].as_array().unwrap().len(), 5);
            let in_use = finding(&audit, "bob", "accesshash_in_use").expect("in use");
            let severity = if allow { "warning" } else { "critical" };
            assert_eq!(in_use["severity"], severity, "{backend}");
            let message = in_use["message"].as_str().unwrap();
            assert!(
                message.contains("192.0.2.53") || message.contains("198.51.100.7"),
                "{message}"
            );
            assert!(!message.contains("hunter2"), "{message}");
            let legacy = finding(&audit, "root", "legacy_secret_in_use").expect("legacy");
            assert_eq!(legacy["severity"], "info");
            assert_eq!(legacy["token"], "accesshash-1700000000");
            assert!(
                legacy["message"]
                    .as_str()
                    .unwrap()
                    .contains("192.0.2.53 “dnsadmin”"),
                "{legacy}"
            );
            let unused = finding(&audit, "carol", "unused_token").expect("unused");
            assert_eq!(unused["token"], "spare");
            assert!(finding(&audit, "bob", "unused_token").is_none());

            let text = whmtoken(&config, &["audit", "--fail-on", "never"], "").stdout;
            assert!(
                text.contains("usage: ") && text.contains("coverage complete"),
                "{text}"
            );
            assert!(text.contains("  access hash last used "), "{text}");
            assert!(text.contains("not used in the window"), "{text}");

            let skipped = json_of(&whmtoken(
                &config,
                &["audit", "--json", "--no-usage", "--fail-on", "never"],
                "",
            ));
            assert_eq!(skipped["usage"], Value::Null);
            assert!(
                account(&skipped, "bob")
                    .get("accesshash_last_used")
                    .is_none()
            );
            assert!(!codes(&skipped).contains(&"accesshash_in_use".to_owned()));
        }
    }
}

#[test]
fn retire_names_the_unconverted_access_hashes_in_use_in_its_refusal_and_when_forced() {
    for backend in backends() {
        let (_t, dir) = temp();
        let now = now();
        let config = build(backend, &dir, true, story_logs(now));
        let refused = whmtoken(
            &config,
            &["retire", "root", "--disable-accesshash-auth"],
            "",
        );
        assert_eq!(refused.code, 65, "{}", refused.stderr);
        assert!(
            refused
                .stderr
                .contains("error: bob: access hash not converted and in use"),
            "{}",
            refused.stderr
        );
        assert!(
            refused.stderr.contains("198.51.100.7"),
            "{}",
            refused.stderr
        );
        assert!(refused.stderr.contains("left on"), "{}", refused.stderr);
        let forced = whmtoken(
            &config,
            &[
                "retire",
                "root",
                "--disable-accesshash-auth",
                "--force",
                "--json",
            ],
            "",
        );
        assert_eq!(forced.code, 0, "{}", forced.stderr);
        assert!(
            forced
                .stderr
                .contains("warning: bob: access hash not converted and in use"),
            "{}",
            forced.stderr
        );
        let doc = json_of(&forced);
        assert_eq!(doc["accesshash_auth"], "disabled");
        let bob = &doc["accesshash_in_use"][0];
        assert_eq!(bob["user"], "bob", "{doc}");
        let last = bob["last"].as_i64().unwrap();
        assert!((now - 40 * DAY..=now).contains(&last), "{doc}");
        assert!(
            bob["clients"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["ip"] == "198.51.100.7"),
            "{doc}"
        );
    }
}

/// Root and eight resellers, none converted, each used by a client `198.51.100.<n>` an hour
/// ago (`n` 0 for root).
fn many_in_use(backend: &str, dir: &Utf8Path, now: i64) -> Utf8PathBuf {
    let mut text = String::from("[server]\nallow_deprecated_accesshash = true\n");
    let mut access = Vec::new();
    for (n, user) in std::iter::once("root".to_owned())
        .chain((1..=8).map(|i| format!("res{i}")))
        .enumerate()
    {
        let reseller = if user == "root" {
            ""
        } else {
            "reseller = []\n"
        };
        text.push_str(&format!(
            "[[user]]\nname = \"{user}\"\n{reseller}accesshash = \"{}\"\n",
            cpanel_style_access_hash(&user).escape_default()
        ));
        let ip = format!("198.51.100.{n}");
        access.extend(
            Line {
                ip: &ip,
                ..line(&user, now - 3600 + n as i64)
            }
            .bytes(),
        );
    }
    let mut scenario = Scenario::parse(Utf8Path::new("many"), &text).unwrap();
    scenario.logs = vec![("access_log".to_owned(), access)];
    scenario.build(backend, dir).unwrap()
}

#[test]
fn the_refusal_lists_the_first_few_access_hashes_in_use_root_first_and_json_gives_epochs() {
    for backend in backends() {
        let (_t, dir) = temp();
        let now = now();
        let config = many_in_use(backend, &dir, now);
        let args = ["retire", "--setting-only", "--disable-accesshash-auth"];
        let refused = whmtoken(&config, &args, "");
        assert_eq!(refused.code, 65, "{}", refused.stderr);
        let lines: Vec<&str> = refused.stderr.lines().collect();
        // Five accounts, one line for the other four, and the refusal.
        assert_eq!(lines.len(), 7, "{}", refused.stderr);
        for (line, user) in lines.iter().zip(["root", "res1", "res2", "res3", "res4"]) {
            assert!(
                line.starts_with(&format!(
                    "error: {user}: access hash not converted and in use"
                )),
                "{}",
                refused.stderr
            );
        }
        assert!(
            lines[5].starts_with("error: and 4 more account(s)")
                && lines[5].contains("(res5, res6, res7, res8)")
                && lines[5].contains("--verbose lists them"),
            "{}",
            refused.stderr
        );
        assert!(
            lines[6].contains("9 account(s) still have an access hash that is not converted (root, res1, res2, res3, res4 and 4 more)"),
            "{}",
            refused.stderr
        );
        let verbose = whmtoken(&config, &[&args[..], &["--verbose"]].concat(), "");
        assert_eq!(verbose.stderr.lines().count(), 10, "{}", verbose.stderr);

        let json = whmtoken(&config, &[&args[..], &["--json"]].concat(), "");
        assert_eq!(json.code, 65, "{}", json.stderr);
        let doc = json_of(&json);
        let in_use = doc["accesshash_in_use"].as_array().unwrap();
        let users: Vec<&str> = in_use.iter().map(|a| a["user"].as_str().unwrap()).collect();
        assert_eq!(
            users,
            [
                "root", "res1", "res2", "res3", "res4", "res5", "res6", "res7", "res8"
            ]
        );
        for (n, account) in in_use.iter().enumerate() {
            assert_eq!(account["last"], now - 3600 + n as i64, "{account}");
            assert_eq!(account["ok"], 1, "{account}");
            assert_eq!(account["unreadable"], false, "{account}");
            assert_eq!(account["clients"][0]["ip"], format!("198.51.100.{n}"));
            assert!(account["since"].is_i64(), "{account}");
        }
    }
}

#[test]
fn the_join_holds_across_time_zones_and_a_daylight_saving_change() {
    // 2026-11-01, America/Chicago: 01:30 local happens at 06:30 UTC (CDT, -0500) and again
    // at 07:30 UTC (CST, -0600); the server writes api_tokens_log in local time.
    let first = 1_793_514_600;
    let second = first + 3600;
    for backend in backends() {
        let (_t, dir) = temp();
        let mut access = line("bob", first).bytes();
        access.extend(line("bob", second).bytes());
        access.extend(line("bob", second + 10).bytes());
        let mut tokens = token_line(first + 1, -5 * 3600, "bob", "billing", LISTACCTS);
        tokens.extend(token_line(
            second + 2,
            -6 * 3600,
            "bob",
            "billing",
            LISTACCTS,
        ));
        let logs = vec![
            ("access_log".to_owned(), access),
            ("api_tokens_log".to_owned(), tokens),
        ];
        let config = build(backend, &dir, true, logs);
        let since = (first - DAY).to_string();
        let doc = json_of(&whmtoken(
            &config,
            &["usage", "bob", "--json", "--since", &since],
            "",
        ));
        let bob = account(&doc, "bob");
        assert_eq!(token(bob, "billing")["ok"], 2, "{bob}");
        assert_eq!(token(bob, "billing")["first"], first);
        assert_eq!(bob["accesshash"]["ok"], 1, "the request 10 s later: {bob}");
        assert_eq!(bob["accesshash"]["last"], second + 10);
    }
}

#[test]
fn a_missing_logs_folder_is_exit_74_naming_it_and_logs_takes_another() {
    for backend in backends() {
        let (_t, dir) = temp();
        let config = build(backend, &dir, true, Vec::new());
        let run = whmtoken(&config, &["usage"], "");
        assert_eq!(run.code, 74, "{backend}: {}", run.stderr);
        let expected = if backend == "files" {
            "usr/local/cpanel/logs"
        } else {
            "server-logs"
        };
        assert!(run.stderr.contains(expected), "{backend}: {}", run.stderr);
        let audit = whmtoken(&config, &["audit", "--fail-on", "never"], "");
        assert_eq!(
            audit.code, 0,
            "the audit goes on without logs: {}",
            audit.stderr
        );
        assert!(
            audit.stdout.contains("usage: no logs found"),
            "{}",
            audit.stdout
        );
        let copied = dir.join("copied");
        std::fs::create_dir(&copied).unwrap();
        std::fs::write(copied.join("access_log"), line("bob", now() - 5).bytes()).unwrap();
        let doc = json_of(&whmtoken(
            &config,
            &["usage", "--json", "--logs", copied.as_str()],
            "",
        ));
        assert_eq!(account(&doc, "bob")["accesshash"]["ok"], 1);
        let bad = whmtoken(&config, &["usage", "--since", "soon"], "");
        assert_eq!(bad.code, 64, "{}", bad.stderr);
    }
}

const HASH: &str = "0123456789abcdef0123456789abcdef\nfedcba9876543210fedcba9876543210\n";
const TOKEN: &str = "JPQNSRU0DH448UJLGXH7KVJECC5QN9N9";

#[test]
fn dns_cluster_peers_reached_with_an_access_hash_are_found_never_shown() {
    let (_t, dir) = temp();
    let config = build("files", &dir, true, Vec::new());
    let folder = dir.join("var/cpanel/cluster/root/config");
    std::fs::create_dir_all(&folder).unwrap();
    let write = |name: &str, text: String| {
        use std::os::unix::fs::PermissionsExt;
        let path = folder.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    write(
        "dns1.example.com",
        format!("root\ndns1.example.com\n{HASH}"),
    );
    write(
        "dns2.example.com",
        format!("root\ndns2.example.com\n{TOKEN}\n"),
    );
    write(
        "dns3.example.com",
        format!("#version 2.0\nuser=root\nhost=dns3.example.com\npass={HASH}module=cPanel\n"),
    );
    write(
        "dns4.example.com",
        format!("#version 2.0\nuser=root\nhost=dns4.example.com\npass={TOKEN}\nmodule=cPanel\n"),
    );
    let run = whmtoken(&config, &["audit", "--json", "--fail-on", "never"], "");
    let audit = json_of(&run);
    let outbound: Vec<&str> = account(&audit, "root")["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "outbound_accesshash")
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert_eq!(outbound.len(), 2, "{outbound:?}");
    assert!(outbound[0].contains("dns1.example.com") && outbound[1].contains("dns3.example.com"));
    assert!(
        outbound
            .iter()
            .all(|m| m.contains("convert it on") && m.contains("replace the secret"))
    );
    let text = whmtoken(&config, &["audit", "--fail-on", "never"], "");
    for shown in [&run.stdout, &run.stderr, &text.stdout, &text.stderr] {
        assert!(
            !shown.contains("0123456789abcdef") && !shown.contains(TOKEN),
            "{shown}"
        );
    }
}

#[test]
fn usage_text_counts_with_thousands_separated_as_every_count() {
    let (_t, dir) = temp();
    let now = now();
    let access: Vec<u8> = (0..1250)
        .flat_map(|i| line("bob", now - 5000 + i).bytes())
        .collect();
    let config = build(
        "sqlite",
        &dir,
        true,
        vec![("access_log".to_owned(), access)],
    );
    let out = whmtoken(&config, &["usage"], "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains(", 1,250 lines (0 unparsed)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("1,250 uses, first "), "{}", out.stdout);
    assert!(
        out.stdout.contains(": 1,250 requests, last "),
        "{}",
        out.stdout
    );
}

#[test]
fn an_account_the_server_does_not_have_is_warned_of_and_the_window_reads_in_words() {
    let (_t, dir) = temp();
    let now = now();
    let config = build(
        "files",
        &dir,
        true,
        vec![("access_log".to_owned(), line("bob", now - 60).bytes())],
    );
    let out = whmtoken(&config, &["usage", "ghost", "bob", "--since", "1d"], "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stderr,
        "warning: ghost: no such account on this server; its uses in the logs are shown all the same\n"
    );
    assert!(
        out.stdout.contains("ghost:\n  access hash: not used"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(" (1 day)\n"), "{}", out.stdout);
    let out = whmtoken(&config, &["usage", "root", "bob"], "");
    assert_eq!(out.stderr, "", "known accounts: no warning");
}

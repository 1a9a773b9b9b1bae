//! The same scenarios built once per backend and converted with the same arguments give the
//! same dump, stdout, stderr and exit status, apart from times and the names made from them.

use camino::Utf8Path;
use serde_json::{Value, json};
use whmtoken_fixtures::{Scenario, ScenarioToken, dump_server, generate};

use crate::{Run, run_raw};

/// A generated server plus the awkward cases: a plain user with an access hash, a reseller
/// with an empty one, a reseller without one, a user already converted, a name clash.
fn scenario() -> Scenario {
    let mut scenario = generate(4, 2, 11);
    let text = r#"
        [[user]]
        name = "plain"
        accesshash = "0123456789abcdef0123456789abcdef\n"
        [[user]]
        name = "blank"
        reseller = []
        accesshash = " \n"
        [[user]]
        name = "nohash"
        reseller = ["list-accts"]
    "#;
    scenario.users.extend(
        Scenario::parse(Utf8Path::new("extra.toml"), text)
            .unwrap()
            .users,
    );
    // res00001 was converted before; res00002 has a token whose name clashes with now.
    let converted = whmtoken_core::AccessHash::from_bytes(
        scenario.users[1].accesshash.clone().unwrap().into_bytes(),
    );
    scenario.users[1].tokens.push(token(
        converted.token_hash().unwrap().as_str(),
        "accesshash-1700000000",
    ));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for second in now..now + 20 {
        let other = whmtoken_core::TokenHash::of_secret(second.to_string().as_bytes());
        scenario.users[2]
            .tokens
            .push(token(other.as_str(), &format!("accesshash-{second}")));
    }
    scenario
}

fn token(hash: &str, name: &str) -> ScenarioToken {
    ScenarioToken {
        hash: hash.to_owned(),
        name: name.to_owned(),
        create_time: 1_700_000_000,
        expires_at: None,
        acls: Some(vec!["list-accts".into()]),
        whitelist_ips: None,
        extra: serde_json::Map::from_iter([("origin".to_owned(), json!("test"))]),
    }
}

/// Replaces what depends on the clock or on chance: `accesshash-<epoch>[-<suffix>]` names,
/// the creation times of entries written now, and the time stamps of accounting lines.
fn normalise_text(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("accesshash-") {
        out.push_str(&rest[..at]);
        out.push_str("accesshash-T");
        rest = &rest[at + "accesshash-".len()..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        rest = &rest[digits..];
        let suffix = rest
            .strip_prefix('-')
            .filter(|s| s.len() >= 8 && s.bytes().take(8).all(|b| b.is_ascii_alphanumeric()));
        if let Some(after) = suffix {
            rest = &after[8..];
        }
    }
    out.push_str(rest);
    out
}

fn normalise_dump(mut dump: Value) -> Value {
    for user in dump["users"].as_object_mut().unwrap().values_mut() {
        for entry in user["tokens"].as_object_mut().unwrap().values_mut() {
            if entry["create_time"].as_i64().unwrap_or(0) > 1_790_000_000 {
                entry["create_time"] = json!("now");
            }
        }
    }
    let mut lines: Vec<String> = dump["accounting"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            l.as_str()
                .unwrap()
                .split_once(":CREATEAPITOKEN:")
                .unwrap()
                .1
                .to_owned()
        })
        .collect();
    lines.sort();
    dump["accounting"] = json!(lines);
    serde_json::from_str(&normalise_text(&dump.to_string())).unwrap()
}

fn outcome(config: &Utf8Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["--config", config.as_str()];
    all.extend_from_slice(args);
    let Run {
        code,
        stdout,
        stderr,
    } = run_raw(&all, &[]);
    let stdout = stdout.replace("\"backend\": \"sqlite\"", "\"backend\": \"files\"");
    (code, normalise_text(&stdout), normalise_text(&stderr))
}

#[test]
fn files_and_sqlite_servers_behave_identically() {
    let scenario = scenario();
    let dir = tempfile::tempdir().unwrap();
    let dir = Utf8Path::from_path(dir.path()).unwrap();
    let files = scenario.build("files", &dir.join("files")).unwrap();
    let sqlite = scenario.build("sqlite", &dir.join("sqlite")).unwrap();
    assert_eq!(
        normalise_dump(dump_server(&files).unwrap()),
        normalise_dump(dump_server(&sqlite).unwrap())
    );

    let runs: [&[&str]; 7] = [
        &["--verbose", "--dry-run", "--all-resellers"],
        &[
            "--verbose",
            "root",
            "plain",
            "ghost",
            "nohash",
            "blank",
            "res00003",
            "../x",
        ],
        &["--json", "--all-resellers", "--acl", "list-accts"],
        &["--verbose", "--all-resellers"],
        &[
            "--verbose",
            "--replace",
            "--acl",
            "clustering",
            "--allow-ip",
            "192.0.2.0/24",
            "--expires",
            "1999999999",
            "root",
            "res00004",
        ],
        &["--json", "--dry-run", "--replace", "--all-resellers"],
        &["--verbose", "root", "res00001"],
    ];
    let mut seen = Vec::new();
    for args in runs {
        let args = [args, &["--jobs", "1"]].concat();
        let from_files = outcome(&files, &args);
        assert_eq!(from_files, outcome(&sqlite, &args), "{args:?}");
        seen.push(from_files);
        assert_eq!(
            normalise_dump(dump_server(&files).unwrap()),
            normalise_dump(dump_server(&sqlite).unwrap()),
            "{args:?}"
        );
    }
    // The runs did real work: failures, conversions, replacements.
    assert_eq!(seen[1].0, 65);
    assert!(
        seen[1]
            .2
            .contains("error: ghost: User ghost is not a reseller."),
        "{}",
        seen[1].2
    );
    assert!(
        seen[3]
            .1
            .contains("Imported accesshash for “res00002” as “accesshash-T”"),
        "{}",
        seen[3].1
    );
    assert!(seen[6].1.contains("Already imported"), "{}", seen[6].1);
}

#[test]
fn one_failed_user_in_a_sqlite_batch_undoes_nothing_of_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let dir = Utf8Path::from_path(dir.path()).unwrap();
    let config = generate(3, 1, 5).build("sqlite", dir).unwrap();
    let db = whmtoken_backend_sqlite::SqliteBackend::open(&whmtoken_backend_sqlite::SqliteConfig {
        path: dir.join("server.db"),
    })
    .unwrap();
    let odd_key = whmtoken_core::TokenHash::of_secret(b"no name");
    db.insert_token("res00002", &odd_key, &json!({"create_time": 1}))
        .unwrap();
    drop(db);

    let (code, stdout, stderr) = outcome(&config, &["--verbose", "--all-resellers"]);
    assert_eq!(code, 65);
    assert!(
        stderr.starts_with("error: res00002: ") && stderr.contains("`name` is missing"),
        "{stderr}"
    );
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    let dump = dump_server(&config).unwrap();
    for user in ["res00001", "res00003"] {
        assert_eq!(
            dump["users"][user]["tokens"].as_object().unwrap().len(),
            2,
            "{user}"
        );
    }
    assert_eq!(dump["accounting"].as_array().unwrap().len(), 2);
}

//! The drop-in behaviour of cPanel's script: files, lines and statuses (issue: foundation).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use serde_json::{Value, json};
use whmtoken_fixtures::{FakeServer, cpanel_style_access_hash};

use crate::{VECTOR_KEY, VECTOR_LINE, now, run, run_raw, server_with_resellers};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/data/cpanel");

fn mode(path: impl AsRef<std::path::Path>) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// The single token entry of `user`'s file, with its key.
fn only_token(server: &FakeServer, user: &str) -> (String, Value) {
    let doc = server.token_document(user).expect("token file exists");
    let tokens = doc["tokens"].as_object().unwrap();
    assert_eq!(tokens.len(), 1, "{doc}");
    let (k, v) = tokens.iter().next().unwrap();
    (k.clone(), v.clone())
}

#[test]
fn no_arguments_converts_root_into_cpanels_exact_file_shape() {
    let server = server_with_resellers();
    let before = now();
    let out = run(&server, &[]);
    let after = now();
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "", "")
    );

    let raw = fs::read_to_string(server.token_file("root")).unwrap();
    let (key, entry) = only_token(&server, "root");
    assert_eq!(key, VECTOR_KEY);
    let t = entry["create_time"].as_i64().unwrap();
    assert!((before..=after).contains(&t));
    assert_eq!(
        raw,
        format!(
            r#"{{"tokens":{{"{VECTOR_KEY}":{{"name":"accesshash-{t}","create_time":{t},"expires_at":null}}}}}}"#
        ),
        "compact JSON, no final newline, no acls or whitelist_ips"
    );
    assert!(
        server.token_document("res1").is_none(),
        "only root is converted by default"
    );

    let base = server.root().join("var/cpanel/authn");
    assert_eq!(mode(server.token_file("root")), 0o600);
    let owner = fs::metadata(server.token_file("root")).unwrap();
    let runner = fs::metadata(server.root()).unwrap();
    if runner.uid() == 0 {
        assert_eq!(
            (owner.uid(), owner.gid()),
            (0, 0),
            "root:root when run as root"
        );
    }
    assert_eq!(mode(base.join("api_tokens_v2/whostmgr")), 0o700);
    assert_eq!(mode(base.join("api_tokens_v2")), 0o711);
    assert_eq!(mode(&base), 0o711);
    let leftovers: Vec<_> = fs::read_dir(base.join("api_tokens_v2/whostmgr"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        leftovers,
        ["root.json"],
        "no lock or temporary file is left behind"
    );
}

#[test]
fn as_root_a_token_file_is_root_s_even_in_a_folder_with_the_setgid_bit() {
    let server = server_with_resellers();
    if fs::metadata(server.root()).unwrap().uid() != 0 {
        return; // only root makes files for another owner
    }
    let folder = server
        .root()
        .join("var/cpanel/authn/api_tokens_v2/whostmgr");
    fs::create_dir_all(&folder).unwrap();
    std::os::unix::fs::chown(&folder, Some(0), Some(4321)).unwrap();
    fs::set_permissions(&folder, fs::Permissions::from_mode(0o2700)).unwrap();
    let out = run(&server, &["res1"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let owner = fs::metadata(server.token_file("res1")).unwrap();
    assert_eq!(
        (owner.uid(), owner.gid()),
        (0, 0),
        "root:root, not the folder's group"
    );
}

#[test]
fn the_sha512_vectors_of_the_reference_are_the_keys() {
    let mut server = FakeServer::new();
    server.add_reseller("abc", &[]);
    server.write_access_hash("abc", "abc\n");
    server.write_access_hash("root", &VECTOR_LINE.repeat(30));
    assert_eq!(run(&server, &["root", "abc"]).code, 0);
    assert_eq!(only_token(&server, "root").0, VECTOR_KEY);
    assert_eq!(
        only_token(&server, "abc").0,
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
         2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
    );
}

#[test]
fn verbose_prints_cpanels_line_byte_for_byte() {
    let server = server_with_resellers();
    let out = run(&server, &["--verbose", "root", "res2"]);
    assert_eq!(out.code, 0, "{out:?}");
    let root_name = only_token(&server, "root").1["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let res2_name = only_token(&server, "res2").1["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        out.stdout.as_bytes(),
        format!(
            "Imported accesshash for \u{201c}root\u{201d} as \u{201c}{root_name}\u{201d}\n\
             Imported accesshash for \u{201c}res2\u{201d} as \u{201c}{res2_name}\u{201d}\n"
        )
        .as_bytes()
    );
}

#[test]
fn a_user_without_an_access_hash_is_skipped_silently() {
    let mut server = server_with_resellers();
    server.add_reseller("nohash", &["list-accts"]);
    let out = run(&server, &["--verbose", "nohash"]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "", "")
    );
    assert!(!server.token_file("nohash").exists());
    assert!(server.accounting_lines().is_empty());
}

#[test]
fn failures_print_error_lines_exit_65_and_the_rest_is_converted() {
    let mut server = server_with_resellers();
    server.add_user("plain");
    server.write_access_hash("plain", &cpanel_style_access_hash("plain"));
    server.add_reseller("blank", &[]);
    server.write_access_hash("blank", " \n\n");
    let out = run(
        &server,
        &["--verbose", "plain", "root", "nosuchuser", "blank", "res1"],
    );
    assert_eq!(out.code, 65);
    assert_eq!(
        out.stderr,
        "error: plain: User plain is not a reseller.\n\
         error: nosuchuser: User nosuchuser is not a reseller.\n\
         error: blank: There was a problem loading the accesshash.\n"
    );
    assert_eq!(
        out.stdout.lines().count(),
        2,
        "root and res1 converted: {}",
        out.stdout
    );
    assert!(server.token_file("res1").exists() && !server.token_file("plain").exists());
}

#[test]
fn all_resellers_goes_in_name_order_without_root() {
    let mut server = FakeServer::new();
    server.write_access_hash("root", &cpanel_style_access_hash("root"));
    for name in ["zed", "alpha", "mid"] {
        server.add_reseller(name, &["list-accts"]);
        server.write_access_hash(name, &cpanel_style_access_hash(name));
    }
    let out = run(&server, &["--verbose", "--all-resellers"]);
    assert_eq!(out.code, 0, "{out:?}");
    let users: Vec<&str> = out
        .stdout
        .lines()
        .map(|l| l.split(['\u{201c}', '\u{201d}']).nth(1).unwrap())
        .collect();
    assert_eq!(users, ["alpha", "mid", "zed"]);
    assert!(!server.token_file("root").exists());
}

#[test]
fn all_resellers_on_a_server_without_resellers_does_nothing() {
    let server = FakeServer::new();
    server.write_access_hash("root", &cpanel_style_access_hash("root"));
    let out = run(&server, &["--verbose", "--all-resellers"]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "", "")
    );
    assert!(!server.token_file("root").exists());
}

#[test]
fn all_resellers_with_user_names_is_a_usage_error() {
    let server = server_with_resellers();
    let out = run(&server, &["--all-resellers", "res1"]);
    assert_eq!(out.code, 64);
    assert!(
        out.stderr.ends_with("Invalid usage. See --help\n\n"),
        "{}",
        out.stderr
    );
    assert!(!server.token_file("res1").exists());
}

#[test]
fn a_user_named_twice_is_converted_once() {
    let server = server_with_resellers();
    let out = run(&server, &["--verbose", "res1", "res1"]);
    assert_eq!(out.code, 0);
    assert_eq!(out.stdout.lines().count(), 1);
    assert_eq!(server.accounting_lines().len(), 1);
}

#[test]
fn a_name_clash_gets_cpanels_random_suffix() {
    let server = server_with_resellers();
    // Take the plain name for every second this test could run in.
    let start = now();
    let tokens: serde_json::Map<String, Value> = (0..30)
        .map(|i| {
            let key = whmtoken_core::TokenHash::of_secret(format!("other{i}").as_bytes());
            (
                key.as_str().to_owned(),
                json!({"name": format!("accesshash-{}", start + i), "create_time": 1}),
            )
        })
        .collect();
    server.write_token_file("res1", &json!({ "tokens": tokens }).to_string());
    let out = run(&server, &["res1"]);
    assert_eq!(out.code, 0, "{out:?}");
    let doc = server.token_document("res1").unwrap();
    let entry = &doc["tokens"][server.expected_key("res1")];
    let name = entry["name"].as_str().unwrap();
    let t = entry["create_time"].as_i64().unwrap();
    let suffix = name.strip_prefix(&format!("accesshash-{t}-")).expect(name);
    assert_eq!(suffix.len(), 8);
    assert!(
        suffix
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()),
        "{name}"
    );
    assert_eq!(doc["tokens"].as_object().unwrap().len(), 31);
}

#[test]
fn unrelated_tokens_and_unknown_keys_are_kept_as_they_were() {
    let server = server_with_resellers();
    let original =
        fs::read_to_string(format!("{CORPUS}/token-files/root-with-restrictions.json")).unwrap();
    let mut with_extras: Value = serde_json::from_str(&original).unwrap();
    with_extras["schema"] = json!({"v": 2});
    let first_key = with_extras["tokens"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    with_extras["tokens"][&first_key]["origin"] = json!("billing");
    server.write_token_file("root", &with_extras.to_string());

    assert_eq!(run(&server, &["root"]).code, 0);
    let after = server.token_document("root").unwrap();
    assert_eq!(after["schema"], json!({"v": 2}));
    for (key, entry) in with_extras["tokens"].as_object().unwrap() {
        assert_eq!(&after["tokens"][key], entry, "token {key} changed");
    }
    assert_eq!(after["tokens"][VECTOR_KEY]["expires_at"], Value::Null);
    assert_eq!(after["tokens"].as_object().unwrap().len(), 4);
}

#[test]
fn the_accounting_line_names_the_user_and_the_stored_token() {
    let server = server_with_resellers();
    assert_eq!(run(&server, &["res1", "root"]).code, 0);
    let lines = server.accounting_lines();
    assert_eq!(lines.len(), 2);
    // Users are written in parallel, so their lines may come in either order.
    for user in ["res1", "root"] {
        let name = only_token(&server, user).1["name"]
            .as_str()
            .unwrap()
            .to_owned();
        let tail = format!(":CREATEAPITOKEN:root:{user}:not-applicable:{name}");
        let line = lines.iter().find(|l| l.ends_with(&tail));
        let line = line.unwrap_or_else(|| panic!("no line ends with {tail}: {lines:?}"));
        let time = line.strip_suffix(&tail).unwrap();
        // Perl's scalar localtime: "Thu Jun 11 13:33:19 2015".
        let fields: Vec<&str> = time.split_whitespace().collect();
        assert_eq!(fields.len(), 5, "{time}");
        assert_eq!(fields[3].len(), 8, "{time}");
    }
    assert_eq!(mode(server.root().join("var/cpanel/accounting.log")), 0o600);
}

#[test]
fn the_access_hash_file_is_never_changed() {
    let server = server_with_resellers();
    let path = server.access_hash_path("res1");
    let (bytes, meta) = (fs::read(&path).unwrap(), fs::metadata(&path).unwrap());
    assert_eq!(run(&server, &["res1"]).code, 0);
    let after = fs::metadata(&path).unwrap();
    assert_eq!(fs::read(&path).unwrap(), bytes);
    assert_eq!(
        (after.mode(), after.ino(), after.mtime()),
        (meta.mode(), meta.ino(), meta.mtime())
    );
}

#[test]
fn help_is_cpanels_usage_text_on_stdout() {
    let cpanel = fs::read_to_string(format!("{CORPUS}/converter/help/stdout")).unwrap();
    for flag in ["--help", "-?", "-h", "-help"] {
        let out = run_raw(&[flag], &[]);
        assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{flag}");
        assert!(out.stdout.starts_with(&cpanel), "{flag}: {}", out.stdout);
    }
}

#[test]
fn an_unknown_option_is_reported_as_getopt_does() {
    let out = run_raw(&["--bogus"], &[]);
    assert_eq!(out.code, 64);
    assert_eq!(
        out.stderr,
        fs::read_to_string(format!("{CORPUS}/converter/bad-option/stderr")).unwrap(),
        "byte for byte what cPanel's script prints"
    );
    assert_eq!(out.stdout, "");
}

#[test]
fn getopt_spellings_and_options_after_users_work() {
    let server = server_with_resellers();
    let out = run(&server, &["res1", "-verb", "res2"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.lines().count(), 2);
}

#[test]
fn config_errors_exit_78_naming_the_file_and_key() {
    let server = FakeServer::new();
    let config = server.root().join("bad.toml");
    fs::write(
        &config,
        "[backend]\nkind = \"files\"\nroot = \".\"\nrooot = \"/\"\n",
    )
    .unwrap();
    let out = run_raw(&["--config", config.as_str()], &[]);
    assert_eq!(out.code, 78);
    assert!(
        out.stderr.contains(config.as_str()) && out.stderr.contains("rooot"),
        "{}",
        out.stderr
    );

    let missing = server.root().join("missing.toml");
    let out = run_raw(&[], &[("WHMTOKEN_CONFIG", missing.as_str())]);
    assert_eq!(out.code, 78);
    assert!(out.stderr.contains("missing.toml"), "{}", out.stderr);
}

#[test]
fn the_config_can_come_from_the_environment() {
    let server = server_with_resellers();
    let out = run_raw(
        &["--verbose"],
        &[("WHMTOKEN_CONFIG", server.config_path().as_str())],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .starts_with("Imported accesshash for \u{201c}root\u{201d}")
    );
}

#[test]
fn the_real_server_root_requires_root() {
    if rustix_is_root() {
        // Check the refusal through an unprivileged child, where the tests run as root.
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("real.toml");
        fs::write(&config, "[backend]\nkind = \"files\"\nroot = \"/\"\n").unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).unwrap();
        let output = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_convert_accesshash_to_token"))
            .args(["--config", config.to_str().unwrap()])
            .output();
        let Ok(output) = output else { return }; // no setpriv on this machine
        if String::from_utf8_lossy(&output.stderr).starts_with("setpriv:") {
            return; // the unprivileged user cannot reach the binary in this checkout
        }
        assert_eq!(output.status.code(), Some(77));
        assert_eq!(
            String::from_utf8_lossy(&output.stderr),
            "error: This program can only be run by root!\n"
        );
    } else {
        let out = run_raw(&["--dry-run"], &[]);
        assert_eq!(out.code, 77);
        assert_eq!(out.stderr, "error: This program can only be run by root!\n");
    }
}

fn rustix_is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

#[test]
fn jobs_one_writes_strictly_in_order() {
    let server = server_with_resellers();
    assert_eq!(
        run(&server, &["--jobs", "1", "res2", "root", "res1"]).code,
        0
    );
    let users: Vec<String> = server
        .accounting_lines()
        .iter()
        .map(|l| l.rsplit(':').nth(2).unwrap().to_owned())
        .collect();
    assert_eq!(users, ["res2", "root", "res1"]);
    assert_eq!(run(&server, &["--jobs", "0"]).code, 64);
}

//! Crashes and concurrency: a converter killed at any moment leaves valid token files that
//! a plain re-run completes, and converters running beside WHM's own writer lose nothing.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::{Value, json};
use whmtoken_core::TokenHash;
use whmtoken_fixtures::{FakeServer, add_token_like_cpanel, cpanel_style_access_hash};

use crate::run;

/// `count` resellers, each with an access hash and two existing tokens.
fn server_with_many_resellers(count: usize) -> (FakeServer, Vec<String>) {
    let mut server = FakeServer::new();
    let names: Vec<String> = (0..count).map(|i| format!("res{i:04}")).collect();
    for name in &names {
        server.add_reseller(name, &["list-accts"]);
        server.write_access_hash(name, &cpanel_style_access_hash(name));
        let tokens: serde_json::Map<String, Value> = (0..2)
            .map(|k| {
                let key = TokenHash::of_secret(format!("{name}/existing{k}").as_bytes());
                (key.as_str().to_owned(), json!({"name": format!("existing{k}"), "create_time": 1_700_000_000, "expires_at": null}))
            })
            .collect();
        server.write_token_file(name, &json!({ "tokens": tokens }).to_string());
    }
    (server, names)
}

/// Every token file parses, still holds its two earlier tokens, and holds the converted key
/// at most once under an `accesshash-` name. Returns how many users are converted.
fn check_files(server: &FakeServer, names: &[String]) -> usize {
    let mut converted = 0;
    for name in names {
        let doc = server
            .token_document(name)
            .unwrap_or_else(|| panic!("{name}'s token file vanished"));
        let tokens = doc["tokens"]
            .as_object()
            .unwrap_or_else(|| panic!("{name}: {doc}"));
        for k in 0..2 {
            let key = TokenHash::of_secret(format!("{name}/existing{k}").as_bytes());
            assert_eq!(
                tokens[key.as_str()]["name"],
                json!(format!("existing{k}")),
                "{name} lost a token"
            );
        }
        let accesshash_entries = tokens
            .values()
            .filter(|e| e["name"].as_str().unwrap().starts_with("accesshash-"))
            .count();
        assert!(accesshash_entries <= 1, "{name}: {doc}");
        if tokens.contains_key(&server.expected_key(name)) {
            assert_eq!(accesshash_entries, 1, "{name}: {doc}");
            converted += 1;
        }
        assert_eq!(tokens.len(), 2 + accesshash_entries, "{name}: {doc}");
    }
    converted
}

#[test]
fn killed_at_fifty_moments_the_tree_stays_valid_and_a_rerun_completes() {
    let (server, names) = server_with_many_resellers(200);
    let full = Instant::now();
    assert_eq!(run(&server, &["--all-resellers"]).code, 0);
    let duration = full.elapsed();
    assert_eq!(check_files(&server, &names), names.len());

    for point in 0..50u32 {
        // --replace rewrites every file, so each kill lands in the middle of real writes.
        let mut child = Command::new(env!("CARGO_BIN_EXE_convert_accesshash_to_token"))
            .args([
                "--config",
                server.config_path().as_str(),
                "--all-resellers",
                "--replace",
                "--lock-timeout",
                "5",
            ])
            .env_remove("WHMTOKEN_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(duration * point / 50);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        check_files(&server, &names);
    }

    let out = run(&server, &["--all-resellers", "--json"]);
    assert_eq!(out.code, 0, "no manual clean-up is needed: {}", out.stderr);
    assert_eq!(check_files(&server, &names), names.len());
    let leftover_locks = std::fs::read_dir(
        server
            .root()
            .join("var/cpanel/authn/api_tokens_v2/whostmgr"),
    )
    .unwrap()
    .filter(|e| {
        e.as_ref()
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".lock")
    })
    .count();
    assert_eq!(leftover_locks, 0);
}

#[test]
fn converters_and_whms_writer_at_once_lose_nothing() {
    let (server, names) = server_with_many_resellers(12);
    let config = server.config_path();
    let converters: Vec<_> = (0..3)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_convert_accesshash_to_token"))
                .args(["--config", config.as_str(), "--all-resellers", "--json"])
                .env_remove("WHMTOKEN_LOG")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut added = Vec::new();
    for round in 0..4 {
        for name in &names {
            let key = TokenHash::of_secret(format!("{name}/whm{round}").as_bytes());
            add_token_like_cpanel(
                &server.token_file(name),
                key.as_str(),
                json!({"name": format!("whm{round}"), "create_time": 1}),
            );
            added.push((name.clone(), key));
        }
    }
    let mut converted_by: BTreeMap<String, usize> = BTreeMap::new();
    for child in converters {
        let output = child.wait_with_output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report: Value = serde_json::from_slice(&output.stdout).unwrap();
        for result in report["results"].as_array().unwrap() {
            if result["status"] == json!("converted") {
                *converted_by
                    .entry(result["user"].as_str().unwrap().to_owned())
                    .or_default() += 1;
            }
        }
    }
    assert!(
        converted_by.values().all(|n| *n == 1) && converted_by.len() == names.len(),
        "{converted_by:?}"
    );
    for (name, key) in added {
        let doc = server.token_document(&name).unwrap();
        assert!(
            doc["tokens"].get(key.as_str()).is_some(),
            "WHM's token for {name} was lost"
        );
        assert_eq!(
            doc["tokens"].as_object().unwrap().len(),
            2 + 4 + 1,
            "{name}: {doc}"
        );
        assert!(doc["tokens"].get(server.expected_key(&name)).is_some());
    }
}

//! What the file backend reports about the server as a whole, on ordinary trees: the users
//! that have a token file (`token_users`), whether an account exists (`has_account`), the
//! settings in `var/cpanel/cpanel.config`, and one token looked up by key. Hostile trees
//! for the same reads are in `hostile.rs`.

use std::fs;

use whmtoken_backend_files::{FilesBackend, FilesConfig};
use whmtoken_core::{Backend, Reads, ServerSettings, TokenHash, UserName};
use whmtoken_fixtures::FakeServer;

fn open(server: &FakeServer) -> FilesBackend {
    FilesBackend::open(&FilesConfig {
        root: server.root().to_owned(),
    })
    .unwrap()
}

fn user(name: &str) -> UserName {
    UserName::new(name).unwrap()
}

/// Root plus resellers `res1` and `res2` and a plain user `pat`.
fn server() -> FakeServer {
    let mut server = FakeServer::new();
    server.add_reseller("res1", &["list-accts"]);
    server.add_reseller("res2", &[]);
    server.add_user("pat");
    server
}

#[test]
fn token_users_are_the_json_files_without_another_dot_sorted() {
    let server = server();
    for name in ["res2", "res1", "ghost"] {
        server.write_token_file(name, "{}");
    }
    let folder = server.token_file("res1").parent().unwrap().to_owned();
    // Temporary files, lock files and other names are not token files of a user.
    for other in [
        "res1.json-1700000000-ab12",
        "res1.json.lock",
        "a.b.json",
        ".json",
        ".hidden.json",
        "notes.txt",
        "res1.JSON",
    ] {
        server.write_file(&folder.join(other), b"{}", 0o600);
    }
    // Listed by name: a folder named like a token file is refused when it is read.
    fs::create_dir(folder.join("odd.json")).unwrap();
    let backend = open(&server);
    assert_eq!(
        backend.token_users().unwrap(),
        ["ghost", "odd", "res1", "res2"]
    );
    assert!(backend.tokens(&user("odd")).is_err());
}

#[test]
fn a_server_without_a_token_folder_has_no_token_users() {
    let server = server();
    assert!(!server.token_file("res1").parent().unwrap().exists());
    assert!(open(&server).token_users().unwrap().is_empty());
}

#[test]
fn an_account_is_a_passwd_entry_and_root_always_has_one() {
    let server = server();
    server.write_token_file("ghost", "{}");
    let backend = open(&server);
    for name in ["root", "res1", "res2", "pat"] {
        assert!(backend.has_account(&user(name)).unwrap(), "{name}");
    }
    for name in ["ghost", "stranger", "res"] {
        assert!(!backend.has_account(&user(name)).unwrap(), "{name}");
    }

    // Root has an account even when `etc/passwd` does not list it.
    let passwd = server.root().join("etc/passwd");
    fs::write(&passwd, "bob:x:1001:1001::/home/bob:/bin/bash\n").unwrap();
    let backend = open(&server);
    assert!(backend.has_account(&user("root")).unwrap());
    assert!(backend.has_account(&user("bob")).unwrap());
    assert!(!backend.has_account(&user("res1")).unwrap());
}

#[test]
fn settings_are_read_from_cpanel_config_each_time_and_default_to_off() {
    let server = server();
    let backend = open(&server);
    assert_eq!(
        backend.server_settings().unwrap(),
        ServerSettings::default()
    );
    let path = server.root().join("var/cpanel/cpanel.config");
    let allowing = "skipanalog=0\nallow_deprecated_accesshash=1\nmaxemailsperhour=\n";
    server.write_file(&path, allowing.as_bytes(), 0o644);
    assert!(
        backend
            .server_settings()
            .unwrap()
            .allow_deprecated_accesshash
    );
    server.write_file(&path, b"allow_deprecated_accesshash=0\n", 0o644);
    assert!(
        !backend
            .server_settings()
            .unwrap()
            .allow_deprecated_accesshash
    );
    server.write_file(&path, b"skipanalog=1\n", 0o644);
    assert_eq!(
        backend.server_settings().unwrap(),
        ServerSettings::default()
    );
}

#[test]
fn a_token_is_looked_up_by_key_in_its_users_file() {
    let server = server();
    let key = TokenHash::of_secret(b"lookup");
    server.write_token_file(
        "res1",
        &format!(
            r#"{{"tokens":{{"{}":{{"name":"billing","origin":"whm"}}}}}}"#,
            key.as_str()
        ),
    );
    let backend = open(&server);
    let entry = backend.token(&user("res1"), &key).unwrap().unwrap();
    assert_eq!(entry.name, "billing");
    assert_eq!(entry.extra["origin"], "whm");
    assert!(
        backend
            .token(&user("res1"), &TokenHash::of_secret(b"other"))
            .unwrap()
            .is_none()
    );
    assert!(backend.token(&user("res2"), &key).unwrap().is_none());
}

//! The SQLite backend against the behaviours the pipeline relies on, on real database files.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::{Value, json};
use tempfile::TempDir;
use whmtoken_backend_sqlite::{SqliteBackend, SqliteConfig};
use whmtoken_core::clock::{Clock, FixedClock};
use whmtoken_core::import::NAME_ATTEMPTS;
use whmtoken_core::{
    AuditEvent, AuditTurn, Backend, BackendError, BatchImport, Decision, ImportError, ImportItem,
    ImportRequest, Privileges, Reads, Restrictions, ServerSettings, TokenHash, UserName, WhmRole,
};

struct Server {
    _dir: TempDir,
    path: Utf8PathBuf,
    backend: SqliteBackend,
}

fn new_server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let path = Utf8PathBuf::try_from(dir.path().join("server.db")).unwrap();
    let backend = SqliteBackend::create(&path).unwrap();
    Server {
        _dir: dir,
        path,
        backend,
    }
}

fn reopen(path: &Utf8Path) -> SqliteBackend {
    SqliteBackend::open(&SqliteConfig {
        path: path.to_owned(),
    })
    .unwrap()
}

fn user(name: &str) -> UserName {
    UserName::new(name).unwrap()
}

fn acls(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn request(secret: &[u8], now: i64, replace: bool, seed: u64) -> ImportRequest {
    ImportRequest::new(
        TokenHash::of_secret(secret),
        now,
        Restrictions::default(),
        replace,
        seed,
    )
}

fn hash(secret: &[u8]) -> TokenHash {
    TokenHash::of_secret(secret)
}

fn tokens_of(dump: &Value, user: &str) -> Value {
    dump["users"][user]["tokens"].clone()
}

/// A server with root, two resellers and a plain user, as the pipeline sees one.
fn seeded() -> Server {
    let s = new_server();
    let b = &s.backend;
    b.add_user("root", 0, "/root", None).unwrap();
    b.add_user(
        "res2",
        1002,
        "/home/res2",
        Some(&acls(&["list-accts", "create-acct"])),
    )
    .unwrap();
    b.add_user("res1", 1001, "/home/res1", Some(&[])).unwrap();
    b.add_user(
        "boss",
        1003,
        "/home/boss",
        Some(&acls(&["list-accts", "all"])),
    )
    .unwrap();
    b.add_user("plain", 1004, "/home/plain", None).unwrap();
    s
}

#[test]
fn create_makes_a_0600_wal_database_and_refuses_an_existing_file() {
    let s = new_server();
    assert_eq!(s.backend.kind(), "sqlite");
    assert_eq!(s.backend.path(), s.path);
    let mode = std::fs::metadata(&s.path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let raw = rusqlite::Connection::open(&s.path).unwrap();
    let journal: String = raw
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
    let version: i64 = raw
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 4);

    // SQLite gives its side files the database's mode.
    s.backend
        .add_user("res1", 1001, "/home/res1", Some(&[]))
        .unwrap();
    let wal = format!("{}-wal", s.path);
    let mode = std::fs::metadata(&wal).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{wal}");

    let err = SqliteBackend::create(&s.path).unwrap_err();
    assert!(matches!(err, BackendError::Io { .. }), "{err:?}");
    assert!(err.to_string().starts_with(s.path.as_str()), "{err}");
    assert!(
        s.path.exists(),
        "a refused create removed the existing file"
    );
}

#[test]
fn open_refuses_missing_linked_and_foreign_files_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8PathBuf::try_from(dir.path().to_owned()).unwrap();
    let open =
        |p: &Utf8Path| SqliteBackend::open(&SqliteConfig { path: p.to_owned() }).unwrap_err();

    let missing = root.join("missing.db");
    let err = open(&missing);
    assert!(matches!(&err, BackendError::NotFound { .. }), "{err:?}");
    assert!(
        err.to_string().contains("missing.db") && err.to_string().contains("fake-server build"),
        "{err}"
    );
    assert!(!missing.exists(), "open created the file");

    let real = root.join("real.db");
    SqliteBackend::create(&real).unwrap();
    let link = root.join("link.db");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let err = open(&link);
    assert!(matches!(err, BackendError::Unsafe { .. }), "{err:?}");
    assert!(err.to_string().contains("symbolic link"), "{err}");

    let err = open(&root);
    assert!(err.to_string().contains("a directory"), "{err}");

    let text = root.join("notes.db");
    std::fs::write(
        &text,
        "this is not a database, just some text that is long enough",
    )
    .unwrap();
    std::fs::set_permissions(&text, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let err = open(&text);
    assert!(matches!(err, BackendError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("notes.db"), "{err}");

    // SQLite's header, then garbage: SQLite's own "not a database", and what to do.
    let damaged = root.join("damaged.db");
    let mut bytes = b"SQLite format 3\0".to_vec();
    bytes.resize(8192, 0xA5);
    std::fs::write(&damaged, bytes).unwrap();
    std::fs::set_permissions(
        &damaged,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let err = open(&damaged);
    assert!(matches!(err, BackendError::Corrupt { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("damaged.db"), "{message}");
    assert!(message.contains("the database is damaged"), "{message}");
    assert!(message.contains("fake-server build"), "{message}");
}

#[test]
fn roles_and_resellers_match_the_file_backend() {
    let s = seeded();
    let b = &s.backend;
    assert_eq!(b.role(&user("root")).unwrap(), WhmRole::Root);
    assert_eq!(
        b.role(&user("res2")).unwrap(),
        WhmRole::Reseller(Privileges::from_list(["list-accts", "create-acct"]))
    );
    assert_eq!(
        b.role(&user("res1")).unwrap(),
        WhmRole::Reseller(Privileges::from_list(Vec::<String>::new()))
    );
    assert_eq!(
        b.role(&user("boss")).unwrap(),
        WhmRole::Reseller(Privileges::All)
    );
    assert_eq!(b.role(&user("plain")).unwrap(), WhmRole::NotReseller);
    assert_eq!(b.role(&user("nobody")).unwrap(), WhmRole::NotReseller);
    assert_eq!(b.resellers().unwrap(), ["boss", "res1", "res2"]);

    // Root is root even when the users table does not know it.
    let empty = new_server();
    assert_eq!(empty.backend.role(&user("root")).unwrap(), WhmRole::Root);
    assert!(empty.backend.resellers().unwrap().is_empty());

    // add_user on an existing user updates it.
    b.add_user("plain", 1004, "/home/plain", Some(&acls(&["list-accts"])))
        .unwrap();
    assert_eq!(b.resellers().unwrap(), ["boss", "plain", "res1", "res2"]);
}

#[test]
fn access_hashes_are_returned_raw() {
    let s = seeded();
    let b = &s.backend;
    let raw = "00112233445566778899aabbccddeeff\n".repeat(30);
    b.set_access_hash("res1", raw.as_bytes()).unwrap();
    let read = b.read_access_hash(&user("res1")).unwrap().unwrap();
    // The stored bytes are whitespace and all: the key is the SHA-512 of them stripped.
    assert_eq!(
        read.token_hash().unwrap().as_str(),
        "a5b08ca0a9a61916e2f902c8f7729b45dbbbfbd7b3b27910ba927d655851703f\
         c3db3bec6fb3afb48861572b96f7ac92344879b5441166b74e23c9ba354ef7ce"
    );
    let raw_db = rusqlite::Connection::open(&s.path).unwrap();
    let stored: Vec<u8> = raw_db
        .query_row(
            "SELECT access_hash FROM users WHERE name = 'res1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, raw.as_bytes());

    b.set_access_hash("res2", b" \n\t").unwrap();
    let blank = b.read_access_hash(&user("res2")).unwrap().unwrap();
    assert_eq!(blank.token_hash(), None);

    assert!(b.read_access_hash(&user("plain")).unwrap().is_none());
    assert!(b.read_access_hash(&user("root")).unwrap().is_none());

    let err = b.read_access_hash(&user("nobody")).unwrap_err();
    assert!(matches!(err, BackendError::NotFound { .. }), "{err:?}");
    assert!(
        err.to_string()
            .ends_with(", table users: no entry for user nobody"),
        "{err}"
    );
    let err = b.set_access_hash("nobody", b"x").unwrap_err();
    assert!(
        err.to_string().contains("no entry for user nobody"),
        "{err}"
    );

    b.set_access_hash("boss", &vec![b'a'; 64 * 1024 + 1])
        .unwrap();
    let err = b.read_access_hash(&user("boss")).unwrap_err();
    assert!(matches!(err, BackendError::Unsafe { .. }), "{err:?}");
    assert!(!format!("{err:?}").contains("aaaa"), "{err:?}");
}

#[test]
fn root_absent_from_users_gets_an_entry_with_its_access_hash() {
    let s = new_server();
    let b = &s.backend;
    assert!(b.read_access_hash(&user("root")).unwrap().is_none());
    b.set_access_hash("root", b"abc").unwrap();
    let read = b.read_access_hash(&user("root")).unwrap().unwrap();
    assert_eq!(read.token_hash(), Some(hash(b"abc")));
    assert!(b.resellers().unwrap().is_empty());
    assert_eq!(b.role(&user("root")).unwrap(), WhmRole::Root);
}

#[test]
fn import_stores_a_new_key_in_cpanels_shape() {
    let s = seeded();
    let b = &s.backend;
    let d = b
        .import(
            &user("res1"),
            &request(b"k", 1000, false, 1),
            &AuditTurn::alone(&FixedClock::at(0)),
        )
        .unwrap();
    let Decision::Write { entry, replaces } = &d else {
        panic!("{d:?}")
    };
    assert!(!replaces);
    assert_eq!(entry.name, "accesshash-1000");

    let set = b.tokens(&user("res1")).unwrap();
    assert_eq!(set.len(), 1);
    assert_eq!(set.get(&hash(b"k")), Some(entry));
    let dump = b.dump().unwrap();
    assert_eq!(
        serde_json::to_string(&dump).unwrap(),
        format!(
            r#"{{"accounting":["Thu Jan  1 00:00:00 1970:CREATEAPITOKEN:root:res1:not-applicable:accesshash-1000"],"users":{{"res1":{{"tokens":{{"{}":{{"create_time":1000,"expires_at":null,"name":"accesshash-1000"}}}}}}}}}}"#,
            hash(b"k").as_str()
        )
    );
    assert!(b.tokens(&user("res2")).unwrap().is_empty());
}

#[test]
fn restrictions_are_stored_and_absent_ones_stay_absent() {
    let s = seeded();
    let b = &s.backend;
    let mut r = request(b"k", 1000, false, 1);
    r.restrictions = Restrictions {
        acls: Some(acls(&["list-accts"])),
        whitelist_ips: Some(acls(&["192.0.2.1"])),
        expires_at: Some(2000),
    };
    b.import(&user("res2"), &r, &AuditTurn::alone(&FixedClock::at(0)))
        .unwrap();
    b.import(
        &user("res2"),
        &request(b"j", 1000, false, 1),
        &AuditTurn::alone(&FixedClock::at(0)),
    )
    .unwrap();
    let tokens = tokens_of(&b.dump().unwrap(), "res2");
    assert_eq!(
        tokens[hash(b"k").as_str()],
        json!({"acls": ["list-accts"], "create_time": 1000, "expires_at": 2000,
               "name": "accesshash-1000", "whitelist_ips": ["192.0.2.1"]})
    );
    let plain = tokens[hash(b"j").as_str()].as_object().unwrap();
    assert!(!plain.contains_key("acls") && !plain.contains_key("whitelist_ips"));
    assert_eq!(plain["expires_at"], Value::Null);
}

#[test]
fn an_existing_key_is_kept_unless_replacing() {
    let s = seeded();
    let b = &s.backend;
    b.insert_token(
        "res1",
        &hash(b"first"),
        &json!({"name": "first", "create_time": 5}),
    )
    .unwrap();
    b.insert_token(
        "res1",
        &hash(b"k"),
        &json!({"name": "billing", "create_time": 7, "acls": ["list-accts"], "origin": "x"}),
    )
    .unwrap();
    let before = b.dump().unwrap();

    // Idempotent: the same key again changes nothing, however often.
    for seed in 0..3 {
        let d = b
            .import(
                &user("res1"),
                &request(b"k", 1000, false, seed),
                &AuditTurn::alone(&FixedClock::at(0)),
            )
            .unwrap();
        assert_eq!(
            d,
            Decision::AlreadyPresent {
                name: "billing".into()
            }
        );
    }
    assert_eq!(b.dump().unwrap(), before);

    // --replace: rebuilt from scratch, in the same place.
    let d = b
        .import(
            &user("res1"),
            &request(b"k", 1000, true, 1),
            &AuditTurn::alone(&FixedClock::at(0)),
        )
        .unwrap();
    assert!(
        matches!(&d, Decision::Write { replaces: true, entry } if entry.name == "accesshash-1000"),
        "{d:?}"
    );
    let set = b.tokens(&user("res1")).unwrap();
    let order: Vec<&str> = set.iter().map(|(_, e)| e.name.as_str()).collect();
    assert_eq!(order, ["first", "accesshash-1000"]);
    let replaced = set.get(&hash(b"k")).unwrap();
    assert_eq!(replaced.acls, None);
    assert!(replaced.extra.is_empty());
}

#[test]
fn a_name_clash_takes_a_suffixed_name_and_exhaustion_fails_alone() {
    let s = seeded();
    let b = &s.backend;
    b.insert_token("res1", &hash(b"other"), &json!({"name": "accesshash-1000"}))
        .unwrap();
    let d = b
        .import(
            &user("res1"),
            &request(b"k", 1000, false, 1),
            &AuditTurn::alone(&FixedClock::at(0)),
        )
        .unwrap();
    let name = d.token_name();
    let suffix = name.strip_prefix("accesshash-1000-").unwrap();
    assert_eq!(suffix.len(), 8);

    // Another user converted first keeps its token when this one fails.
    b.import(
        &user("res2"),
        &request(b"r2", 1000, false, 1),
        &AuditTurn::alone(&FixedClock::at(0)),
    )
    .unwrap();
    let r = request(b"new", 1000, false, 9);
    for (i, taken) in r.candidate_names().enumerate() {
        b.insert_token("boss", &hash(&[i as u8]), &json!({ "name": taken }))
            .unwrap();
    }
    let before = b.dump().unwrap();
    let err = b
        .import(&user("boss"), &r, &AuditTurn::alone(&FixedClock::at(0)))
        .unwrap_err();
    assert!(
        matches!(
            err,
            BackendError::Import(ImportError::NamesExhausted { .. })
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains(&format!("({NAME_ATTEMPTS} names tried)"))
    );
    assert_eq!(b.dump().unwrap(), before);
    assert_eq!(b.tokens(&user("res2")).unwrap().len(), 1);
}

#[test]
fn other_tokens_and_unknown_keys_are_kept_exactly() {
    let s = seeded();
    let b = &s.backend;
    let odd = json!({
        "name": "legacy",
        "create_time": "1700000000",
        "expires_at": "1900000000",
        "whitelist_ips": ["10.0.0.0/8"],
        "zeta": [1, {"b": 2, "a": 1}],
        "origin": {"tool": "billing"},
    });
    b.insert_token("res2", &hash(b"old"), &odd).unwrap();
    let raw_db = rusqlite::Connection::open(&s.path).unwrap();
    let text = |db: &rusqlite::Connection| -> String {
        db.query_row(
            "SELECT entry FROM tokens WHERE user = 'res2' AND hash = ?1",
            [hash(b"old").as_str()],
            |r| r.get(0),
        )
        .unwrap()
    };
    let stored = text(&raw_db);
    assert_eq!(stored, odd.to_string(), "stored in the order given");

    b.import(
        &user("res2"),
        &request(b"k", 1000, false, 1),
        &AuditTurn::alone(&FixedClock::at(0)),
    )
    .unwrap();
    assert_eq!(text(&raw_db), stored, "an import rewrote another entry");
    let set = b.tokens(&user("res2")).unwrap();
    let legacy = set.get(&hash(b"old")).unwrap();
    assert_eq!(legacy.create_time, Some(1_700_000_000));
    assert_eq!(legacy.extra["origin"], json!({"tool": "billing"}));
    assert_eq!(set.len(), 2);
}

#[test]
fn a_malformed_entry_is_reported_where_it_is() {
    let s = seeded();
    let b = &s.backend;
    b.insert_token("res1", &hash(b"x"), &json!({"name": 5}))
        .unwrap();
    let err = b.tokens(&user("res1")).unwrap_err();
    assert!(matches!(err, BackendError::Corrupt { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("table tokens, user res1"), "{msg}");
    assert!(msg.contains("`name` is a number"), "{msg}");
    let err = b
        .import(
            &user("res1"),
            &request(b"k", 1000, false, 1),
            &AuditTurn::alone(&FixedClock::at(0)),
        )
        .unwrap_err();
    assert!(matches!(err, BackendError::Corrupt { .. }), "{err:?}");

    let err = b
        .insert_token("res1", &hash(b"y"), &json!([1]))
        .unwrap_err();
    assert!(err.to_string().contains("expected an object"), "{err}");
}

#[test]
fn everything_persists_after_reopening() {
    let s = seeded();
    s.backend.set_access_hash("res1", b"secret\n").unwrap();
    s.backend
        .import(
            &user("res1"),
            &request(b"secret", 1000, false, 1),
            &AuditTurn::alone(&FixedClock::at(0)),
        )
        .unwrap();
    let event = AuditEvent {
        time: FixedClock::at(1_433_165_599).now(),
        action: whmtoken_core::AuditAction::CreateApiToken,
        actor: whmtoken_core::UserName::root(),
        user: user("res1"),
        token_name: "accesshash-1000".into(),
    };
    s.backend.append_audit(&event).unwrap();
    let before = s.backend.dump().unwrap();
    let Server {
        _dir,
        path,
        backend,
        ..
    } = s;
    drop(backend);

    let again = reopen(&path);
    assert_eq!(again.dump().unwrap(), before);
    assert_eq!(again.resellers().unwrap(), ["boss", "res1", "res2"]);
    let read = again.read_access_hash(&user("res1")).unwrap().unwrap();
    assert_eq!(read.token_hash(), Some(hash(b"secret")));
    assert_eq!(
        again
            .import(
                &user("res1"),
                &request(b"secret", 2000, false, 1),
                &AuditTurn::alone(&FixedClock::at(0))
            )
            .unwrap(),
        Decision::AlreadyPresent {
            name: "accesshash-1000".into()
        }
    );
}

#[test]
fn the_audit_line_is_stored_in_order() {
    let s = seeded();
    for (t, name) in [
        (1_433_165_599, "accesshash-1433165599"),
        (1_433_165_600, "x"),
    ] {
        let event = AuditEvent {
            time: FixedClock::at(t).now(),
            action: whmtoken_core::AuditAction::CreateApiToken,
            actor: whmtoken_core::UserName::root(),
            user: user("res1"),
            token_name: name.into(),
        };
        s.backend.append_audit(&event).unwrap();
    }
    assert_eq!(
        s.backend.dump().unwrap()["accounting"],
        json!([
            "Mon Jun  1 13:33:19 2015:CREATEAPITOKEN:root:res1:not-applicable:accesshash-1433165599",
            "Mon Jun  1 13:33:20 2015:CREATEAPITOKEN:root:res1:not-applicable:x",
        ])
    );
}

#[test]
fn dump_is_canonical_and_lists_only_users_with_tokens() {
    let s = seeded();
    let b = &s.backend;
    b.insert_token(
        "res2",
        &hash(b"b"),
        &json!({"name": "b", "zz": 1, "aa": {"y": 1, "x": 2}}),
    )
    .unwrap();
    b.insert_token("res1", &hash(b"a"), &json!({"name": "a"}))
        .unwrap();
    let dump = b.dump().unwrap();
    let users: Vec<&String> = dump["users"].as_object().unwrap().keys().collect();
    assert_eq!(users, ["res1", "res2"]);
    let top: Vec<&String> = dump.as_object().unwrap().keys().collect();
    assert_eq!(top, ["accounting", "users"]);
    let entry = &tokens_of(&dump, "res2")[hash(b"b").as_str()];
    assert_eq!(
        serde_json::to_string(entry).unwrap(),
        r#"{"aa":{"x":2,"y":1},"name":"b","zz":1}"#
    );
}

#[test]
fn open_refuses_empty_shared_and_tampered_databases_and_never_creates_one() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8PathBuf::try_from(dir.path().to_owned()).unwrap();
    let open =
        |p: &Utf8Path| SqliteBackend::open(&SqliteConfig { path: p.to_owned() }).unwrap_err();

    let empty = root.join("empty.db");
    std::fs::write(&empty, "").unwrap();
    std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = open(&empty);
    assert!(matches!(&err, BackendError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("empty"), "{err}");
    assert_eq!(
        std::fs::metadata(&empty).unwrap().len(),
        0,
        "nothing was created in it"
    );

    // A plain-text file given as a server: said how to make one, as for a missing one.
    let text = root.join("server.txt");
    std::fs::write(&text, "root:x:0:0::/root:/bin/bash\n").unwrap();
    std::fs::set_permissions(&text, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = open(&text);
    assert!(matches!(&err, BackendError::Corrupt { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{text}: not a SQLite database, so not a whmtoken one; make one with `fake-server build` or `fake-server generate`"
        )
    );

    let shared = root.join("shared.db");
    SqliteBackend::create(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = open(&shared);
    assert!(matches!(&err, BackendError::Unsafe { .. }), "{err:?}");
    assert!(err.to_string().contains("mode 0644"), "{err}");

    for (name, sql) in [
        (
            "trigger",
            "CREATE TRIGGER planted AFTER INSERT ON tokens BEGIN DELETE FROM accounting; END;",
        ),
        ("view", "CREATE VIEW planted AS SELECT * FROM users"),
        ("table", "CREATE TABLE planted (x)"),
    ] {
        let db = root.join(format!("{name}.db"));
        SqliteBackend::create(&db).unwrap();
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
        let err = open(&db);
        assert!(
            matches!(&err, BackendError::Unsafe { .. }),
            "{name}: {err:?}"
        );
        assert!(
            err.to_string()
                .contains(&format!("a {name} “planted” that whmtoken did not create")),
            "{err}"
        );
    }
}

#[test]
fn a_refused_write_fails_that_user_alone_and_the_others_are_stored() {
    let s = seeded();
    rusqlite::Connection::open(&s.path)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER refuse_res2 BEFORE INSERT ON tokens WHEN NEW.user = 'res2'
             BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END;",
        )
        .unwrap();
    let names = ["res1", "res2", "boss"];
    let items = names.map(|u| ImportItem {
        user: user(u),
        request: request(u.as_bytes(), 1000, false, 1),
    });
    let outcomes = s.backend.import_batch(&items, &FixedClock::at(1000));

    assert_eq!(outcomes.len(), 3);
    for (u, outcome) in names.iter().zip(&outcomes) {
        match (*u, outcome) {
            ("res2", Err(e)) => assert!(
                whmtoken_core::error_chain(e).contains("refused by a test trigger"),
                "res2: {e}"
            ),
            ("res2", Ok(_)) => panic!("res2 was refused by the trigger"),
            (_, Err(e)) => panic!("{u}: {e}"),
            (_, Ok(decision)) => assert!(matches!(decision, Decision::Write { .. }), "{u}"),
        }
    }
    // A database with a trigger of someone else's is refused when opened: drop it first.
    rusqlite::Connection::open(&s.path)
        .unwrap()
        .execute_batch("DROP TRIGGER refuse_res2")
        .unwrap();
    let dump = reopen(&s.path).dump().unwrap();
    for u in ["res1", "boss"] {
        assert!(
            tokens_of(&dump, u)[hash(u.as_bytes()).as_str()].is_object(),
            "{u}'s token is stored: {dump}"
        );
    }
    assert_eq!(tokens_of(&dump, "res2"), Value::Null, "nothing for res2");
    let lines = dump["accounting"].as_array().unwrap();
    assert_eq!(lines.len(), 2, "one audit line per stored token: {lines:?}");
}

/// Each of `threads` imports `per_thread` keys into `res1`; key `i` of every thread is
/// imported with the same time, so their first-choice names clash across threads.
fn import_concurrently(backends: Vec<Arc<SqliteBackend>>, per_thread: usize) {
    std::thread::scope(|scope| {
        for (t, backend) in backends.into_iter().enumerate() {
            scope.spawn(move || {
                for i in 0..per_thread {
                    let secret = format!("thread{t}-key{i}");
                    let r = request(
                        secret.as_bytes(),
                        1000 + i as i64,
                        false,
                        (t * 1000 + i) as u64,
                    );
                    backend
                        .import(&user("res1"), &r, &AuditTurn::alone(&FixedClock::at(0)))
                        .unwrap();
                }
            });
        }
    });
}

fn assert_all_imported(backend: &SqliteBackend, threads: usize, per_thread: usize) {
    let set = backend.tokens(&user("res1")).unwrap();
    assert_eq!(set.len(), threads * per_thread, "an import was lost");
    let mut names: Vec<&str> = set.iter().map(|(_, e)| e.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), threads * per_thread, "two tokens share a name");
    for t in 0..threads {
        for i in 0..per_thread {
            let secret = format!("thread{t}-key{i}");
            assert!(
                set.get(&hash(secret.as_bytes())).is_some(),
                "{secret} is missing"
            );
        }
    }
}

#[test]
fn two_connections_importing_into_one_user_lose_nothing() {
    let s = seeded();
    let backends = (0..2)
        .map(|_| Arc::new(reopen(&s.path).with_lock_timeout(Duration::from_secs(30))))
        .collect();
    import_concurrently(backends, 25);
    assert_all_imported(&s.backend, 2, 25);
}

#[test]
fn two_threads_sharing_one_backend_lose_nothing() {
    let s = seeded();
    let shared = Arc::new(reopen(&s.path));
    import_concurrently(vec![shared.clone(), shared], 25);
    assert_all_imported(&s.backend, 2, 25);
}

#[test]
fn a_writer_held_elsewhere_gives_a_retryable_lock_timeout() {
    let s = seeded();
    let b = reopen(&s.path).with_lock_timeout(Duration::from_millis(100));
    let blocker = rusqlite::Connection::open(&s.path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();

    let started = std::time::Instant::now();
    let err = b
        .import(
            &user("res1"),
            &request(b"k", 1000, false, 1),
            &AuditTurn::alone(&FixedClock::at(0)),
        )
        .unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(err.is_retryable(), "{err:?}");
    assert!(
        matches!(&err, BackendError::Locked { location, .. } if location == s.path.as_str()),
        "{err:?}"
    );
    // Readers are not blocked by the writer.
    assert!(b.tokens(&user("res1")).unwrap().is_empty());

    blocker.execute_batch("ROLLBACK").unwrap();
    b.import(
        &user("res1"),
        &request(b"k", 1000, false, 1),
        &AuditTurn::alone(&FixedClock::at(0)),
    )
    .unwrap();
}

#[test]
fn once_a_batch_gave_up_waiting_for_the_lock_the_later_ones_of_the_run_fail_at_once() {
    let s = seeded();
    let b = reopen(&s.path).with_lock_timeout(Duration::from_millis(50));
    let batch = b.batch().expect("SQLite imports in batches");
    let items = |name: &str, secret: &[u8]| {
        vec![ImportItem {
            user: user(name),
            request: request(secret, 1000, false, 1),
        }]
    };
    let clock = FixedClock::at(0);
    let blocker = rusqlite::Connection::open(&s.path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let first = batch.import_batch(&items("res1", b"k1"), &clock);
    blocker.execute_batch("ROLLBACK").unwrap();
    // The lock is free again, but the run does not wait for it a second time.
    let second = batch.import_batch(&items("res2", b"k2"), &clock);
    for (outcome, what) in [
        (&first[0], "the batch that waited"),
        (&second[0], "the next one"),
    ] {
        assert!(
            matches!(outcome, Err(BackendError::Locked { location, .. }) if location == s.path.as_str()),
            "{what}: {outcome:?}"
        );
    }
    assert!(
        b.tokens(&user("res2")).unwrap().is_empty(),
        "nothing stored"
    );
    // Another run (a backend opened again) tries again.
    let again = reopen(&s.path);
    let outcome = again
        .batch()
        .unwrap()
        .import_batch(&items("res2", b"k2"), &clock);
    assert!(outcome[0].is_ok(), "{outcome:?}");
}

#[test]
fn debug_output_shows_no_data() {
    let s = seeded();
    s.backend
        .set_access_hash("res1", b"topsecretvalue")
        .unwrap();
    let shown = format!("{:?}", s.backend);
    assert!(
        shown.contains("server.db") && !shown.contains("topsecret"),
        "{shown}"
    );
}

#[test]
fn token_users_are_the_users_with_token_rows_account_or_not() {
    let s = seeded();
    let b = &s.backend;
    assert!(b.token_users().unwrap().is_empty());
    b.insert_token("res2", &hash(b"a"), &json!({"name": "a"}))
        .unwrap();
    b.insert_token("res2", &hash(b"b"), &json!({"name": "b"}))
        .unwrap();
    // A token database that outlived its account: rows without a row in `users`.
    b.insert_token("ghost", &hash(b"c"), &json!({"name": "c"}))
        .unwrap();
    b.insert_token("boss", &hash(b"d"), &json!({"name": "d"}))
        .unwrap();
    assert_eq!(b.token_users().unwrap(), ["boss", "ghost", "res2"]);
    b.import(
        &user("res1"),
        &request(b"k", 1000, false, 1),
        &AuditTurn::alone(&FixedClock::at(0)),
    )
    .unwrap();
    assert_eq!(
        reopen(&s.path).token_users().unwrap(),
        ["boss", "ghost", "res1", "res2"]
    );
}

#[test]
fn an_account_is_a_row_in_users_and_root_always_has_one() {
    let s = new_server();
    let b = &s.backend;
    b.add_user("res1", 1001, "/home/res1", Some(&[])).unwrap();
    b.insert_token("ghost", &hash(b"c"), &json!({"name": "c"}))
        .unwrap();
    let check = |reads: &dyn Reads| {
        assert!(
            reads.has_account(&user("root")).unwrap(),
            "root, without a row"
        );
        assert!(reads.has_account(&user("res1")).unwrap());
        assert!(!reads.has_account(&user("ghost")).unwrap());
        assert!(!reads.has_account(&user("res")).unwrap());
    };
    check(b);
    check(&*b.read_session().unwrap());
}

#[test]
fn settings_are_off_by_default_stored_and_persist() {
    let s = new_server();
    assert_eq!(
        s.backend.server_settings().unwrap(),
        ServerSettings::default()
    );
    let on = ServerSettings {
        allow_deprecated_accesshash: true,
    };
    s.backend.set_server_settings(&on).unwrap();
    assert_eq!(s.backend.server_settings().unwrap(), on);
    assert_eq!(reopen(&s.path).server_settings().unwrap(), on);
    s.backend
        .set_server_settings(&ServerSettings::default())
        .unwrap();
    assert_eq!(
        s.backend.server_settings().unwrap(),
        ServerSettings::default()
    );
    let stored: String = rusqlite::Connection::open(&s.path)
        .unwrap()
        .query_row(
            "SELECT value FROM settings WHERE name = 'allow_deprecated_accesshash'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(stored, "0");
}

#[test]
fn a_setting_of_the_wrong_shape_is_reported_where_it_is() {
    let s = new_server();
    rusqlite::Connection::open(&s.path)
        .unwrap()
        .execute(
            "INSERT INTO settings (name, value) VALUES ('allow_deprecated_accesshash', 'yes')",
            [],
        )
        .unwrap();
    let err = s.backend.server_settings().unwrap_err();
    assert!(matches!(err, BackendError::Corrupt { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}, table settings: allow_deprecated_accesshash is “yes”, expected '0' or '1'",
            s.path
        )
    );
}

#[test]
fn a_token_is_looked_up_by_key_alone_and_a_malformed_one_is_reported() {
    let s = seeded();
    let b = &s.backend;
    b.insert_token(
        "res1",
        &hash(b"good"),
        &json!({"name": "good", "origin": "whm"}),
    )
    .unwrap();
    b.insert_token("res1", &hash(b"bad"), &json!({"name": 5}))
        .unwrap();
    b.insert_token("res2", &hash(b"bad"), &json!({"name": "fine here"}))
        .unwrap();
    let check = |reads: &dyn Reads| {
        // Only the entry asked for is read: another malformed row does not stop the lookup.
        let good = reads.token(&user("res1"), &hash(b"good")).unwrap().unwrap();
        assert_eq!(good.name, "good");
        assert_eq!(good.extra["origin"], "whm");
        assert_eq!(
            reads
                .token(&user("res2"), &hash(b"bad"))
                .unwrap()
                .unwrap()
                .name,
            "fine here"
        );
        assert!(
            reads
                .token(&user("res1"), &hash(b"none"))
                .unwrap()
                .is_none()
        );
        assert!(
            reads
                .token(&user("plain"), &hash(b"good"))
                .unwrap()
                .is_none()
        );
        let err = reads.token(&user("res1"), &hash(b"bad")).unwrap_err();
        assert!(matches!(err, BackendError::Corrupt { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("table tokens, user res1"), "{msg}");
        assert!(
            msg.contains(&format!("token {}", hash(b"bad").prefix())),
            "{msg}"
        );
        assert!(msg.contains("`name` is a number"), "{msg}");
        assert!(!msg.contains(hash(b"bad").as_str()), "{msg}");
    };
    check(b);
    check(&*b.read_session().unwrap());
}

#[test]
fn a_refused_database_is_left_exactly_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8PathBuf::try_from(dir.path().to_owned()).unwrap();
    let db = root.join("planted.db");
    SqliteBackend::create(&db).unwrap();
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = DELETE; DROP TABLE settings; PRAGMA user_version = 1;
             CREATE TRIGGER planted AFTER INSERT ON tokens BEGIN DELETE FROM accounting; END;",
        )
        .unwrap();
    }
    let before = std::fs::read(&db).unwrap();
    let err = SqliteBackend::open(&SqliteConfig { path: db.clone() }).unwrap_err();
    assert!(matches!(&err, BackendError::Unsafe { .. }), "{err:?}");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "not migrated, not switched to WAL"
    );
    assert!(!root.join("planted.db-wal").exists());
}

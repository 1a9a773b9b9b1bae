//! Hostile trees at the backend level: files that try to make root read or write the wrong
//! thing are refused by `FilesBackend` itself, with the file named and nothing changed.
//!
//! The same cases, end to end through the binary, are in `cli/tests/cli/hostile.rs`. Cases
//! that need root (giving a file away, file attributes) return early when not run as root.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use rustix::fs::{IFlags, ioctl_getflags, ioctl_setflags};
use whmtoken_backend_files::{FilesBackend, FilesConfig};
use whmtoken_core::{
    AccessHash, AuditTurn, Backend, BackendError, FixedClock, ImportRequest, Reads, Restrictions,
    TokenHash, UserName, WhmRole,
};
use whmtoken_fixtures::{FakeServer, TreeSnapshot, cpanel_style_access_hash};

/// The backend refuses token files larger than this (16 MiB) rather than parse them.
const MAX_TOKEN_FILE: u64 = 16 << 20;

/// The largest `.accesshash` the backend reads (64 KiB; real ones are 990 bytes): a larger
/// one is refused unread.
const MAX_ACCESS_HASH: u64 = AccessHash::MAX_LEN as u64;

/// A uid no user of the fake servers has.
const STRANGER: u32 = 1234;

fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The uid the backend expects token files and their folder to belong to.
fn token_owner() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Root plus resellers `res1` and `res2`, each with a genuine-looking access hash.
fn server() -> FakeServer {
    let mut server = FakeServer::new();
    server.write_access_hash("root", &cpanel_style_access_hash("root"));
    for name in ["res1", "res2"] {
        server.add_reseller(name, &["list-accts"]);
        server.write_access_hash(name, &cpanel_style_access_hash(name));
    }
    server
}

/// `name`'s uid, as the fake server's `etc/passwd` gives it.
fn uid_of(server: &FakeServer, name: &str) -> u32 {
    let passwd = fs::read_to_string(server.root().join("etc/passwd")).unwrap();
    let line = passwd
        .lines()
        .find(|l| l.split(':').next() == Some(name))
        .unwrap_or_else(|| panic!("{name} is in etc/passwd"));
    line.split(':').nth(2).unwrap().parse().unwrap()
}

fn open(server: &FakeServer) -> FilesBackend {
    let config = FilesConfig {
        root: server.root().to_owned(),
    };
    FilesBackend::open(&config).unwrap_or_else(|e| panic!("open {}: {e}", server.root()))
}

fn user(name: &str) -> UserName {
    UserName::new(name).unwrap()
}

/// A conversion as a run would ask for it, replacing an entry with the same key.
fn request() -> ImportRequest {
    ImportRequest::new(
        TokenHash::of_secret(b"hostile-tree-test"),
        1_700_000_000,
        Restrictions::default(),
        true,
        7,
    )
}

/// Asserts a refusal for safety of exactly `path`, for exactly `detail`, whose message
/// names the file.
#[track_caller]
fn assert_unsafe<T: std::fmt::Debug>(
    result: Result<T, BackendError>,
    path: &Utf8Path,
    detail: &str,
) {
    let err = result.expect_err("the file is refused");
    match &err {
        BackendError::Unsafe {
            location,
            detail: said,
        } => {
            assert_eq!((location.as_str(), said.as_str()), (path.as_str(), detail));
        }
        other => panic!("expected a refusal for safety, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!("refusing to read {path}: {detail}")
    );
}

/// Asserts a refusal of unparsable data at exactly `path`, whose detail contains `detail`.
#[track_caller]
fn assert_corrupt<T: std::fmt::Debug>(
    result: Result<T, BackendError>,
    path: &Utf8Path,
    detail: &str,
) {
    let err = result.expect_err("the file is refused");
    match &err {
        BackendError::Corrupt {
            location,
            detail: said,
        } => {
            assert_eq!(location, path.as_str());
            assert!(said.contains(detail), "{said:?} does not say {detail:?}");
        }
        other => panic!("expected corrupt data, got {other:?}"),
    }
    assert!(err.to_string().starts_with(&format!("{path}: ")), "{err}");
}

/// Asserts a refusal of a token file carrying the immutable or append-only attribute
/// (`what`), reported as a possible compromise, whose message names the file.
#[track_caller]
fn assert_tampered<T: std::fmt::Debug>(
    result: Result<T, BackendError>,
    path: &Utf8Path,
    what: &str,
) {
    let err = result.expect_err("the file is refused");
    match &err {
        BackendError::Tampered {
            location,
            what: said,
        } => assert_eq!((location.as_str(), *said), (path.as_str(), what)),
        other => panic!("expected a token file with an attribute, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!("{path}: token file is {what}: this can indicate a compromised server")
    );
}

/// Asserts that `user` was looked up in `passwd` and not found, and that the message names
/// the file and the user.
#[track_caller]
fn assert_no_passwd_entry<T: std::fmt::Debug>(
    result: Result<T, BackendError>,
    passwd: &Utf8Path,
    user: &str,
) {
    let err = result.expect_err("the user is not found");
    let expected = format!("no entry for user {user}");
    match &err {
        BackendError::NotFound {
            location,
            what: detail,
        } => {
            assert_eq!(
                (location.as_str(), detail.as_str()),
                (passwd.as_str(), &*expected)
            );
        }
        other => panic!("expected no passwd entry, got {other:?}"),
    }
    assert_eq!(err.to_string(), format!("{passwd}: {expected}"));
}

/// Asserts that the tree is as it was, the backend having been dropped first (an open
/// backend keeps the source file of its dot-locks in the token folder). The snapshots are
/// not printed: one of them holds a 16 MiB file.
#[track_caller]
fn assert_unchanged(server: &FakeServer, before: &TreeSnapshot) {
    assert!(
        TreeSnapshot::of(server.root()) == *before,
        "the tree under {} changed",
        server.root()
    );
}

/// Runs `f` on another thread and fails the test if it takes more than 20 s (a FIFO that
/// is opened for reading blocks until someone writes to it).
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(value) => value,
        Err(RecvTimeoutError::Timeout) => panic!("the backend hung"),
        Err(RecvTimeoutError::Disconnected) => panic!("the backend panicked"),
    }
}

fn mkfifo(path: &Utf8Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path.as_std_path(),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
}

/// Removes res1's `.accesshash`, plants something in its place, and returns its path.
fn plant_access_hash(server: &FakeServer, plant: impl FnOnce(&Utf8Path)) -> Utf8PathBuf {
    let path = server.access_hash_path("res1");
    fs::remove_file(&path).unwrap();
    plant(&path);
    path
}

/// Checks that reading res1's planted `.accesshash` is refused for `detail`, that res2's is
/// still read, and that nothing changed.
fn assert_access_hash_refused(server: &FakeServer, path: &Utf8Path, detail: &str) {
    let before = TreeSnapshot::of(server.root());
    let backend = open(server);
    assert_unsafe(backend.read_access_hash(&user("res1")), path, detail);
    assert!(
        backend.read_access_hash(&user("res2")).unwrap().is_some(),
        "another user's access hash is still read"
    );
    drop(backend);
    assert_unchanged(server, &before);
}

/// Writes res1's token file with `contents`, as cPanel's writer leaves one.
fn token_file(server: &FakeServer, contents: &str) -> Utf8PathBuf {
    server.write_token_file("res1", contents);
    server.token_file("res1")
}

/// Checks that both a dry read and an import of res1's token file are refused for
/// `detail`, and that nothing changed.
fn assert_token_file_refused(server: &FakeServer, path: &Utf8Path, detail: &str) {
    let before = TreeSnapshot::of(server.root());
    let backend = open(server);
    assert_unsafe(backend.tokens(&user("res1")), path, detail);
    assert_unsafe(
        backend.import(
            &user("res1"),
            &request(),
            &AuditTurn::alone(&FixedClock::at(0)),
        ),
        path,
        detail,
    );
    drop(backend);
    assert_unchanged(server, &before);
}

/// Checks that a token file holding `contents` is refused as corrupt by a dry read and by
/// an import, and stays byte for byte as it was.
fn assert_malformed_token_file_kept(contents: &str, detail: &str) {
    let server = server();
    let path = token_file(&server, contents);
    let before = TreeSnapshot::of(server.root());
    let backend = open(&server);
    assert_corrupt(backend.tokens(&user("res1")), &path, detail);
    assert_corrupt(
        backend.import(
            &user("res1"),
            &request(),
            &AuditTurn::alone(&FixedClock::at(0)),
        ),
        &path,
        detail,
    );
    drop(backend);
    assert_eq!(fs::read_to_string(&path).unwrap(), contents);
    assert_unchanged(&server, &before);
}

/// Sets an inode attribute (immutable, append-only) on a file or folder, and clears it
/// when dropped so that the temporary tree can be removed.
struct Attribute {
    path: Utf8PathBuf,
    flag: IFlags,
}

impl Attribute {
    /// `None` when the attribute cannot be set: not root, or a file system without them.
    fn set(path: &Utf8Path, flag: IFlags) -> Option<Self> {
        let file = File::open(path).ok()?;
        let flags = ioctl_getflags(&file).ok()?;
        ioctl_setflags(&file, flags | flag).ok()?;
        Some(Self {
            path: path.to_owned(),
            flag,
        })
    }
}

impl Drop for Attribute {
    fn drop(&mut self) {
        if let Ok(file) = File::open(&self.path)
            && let Ok(flags) = ioctl_getflags(&file)
        {
            let _ = ioctl_setflags(&file, flags - self.flag);
        }
    }
}

/// Checks that a token file with `flag` set is reported as a possible compromise, with
/// `what`, by a dry read and by an import, and that nothing changed.
fn assert_attribute_reported(flag: IFlags, what: &str) {
    let server = server();
    let path = token_file(&server, "{}");
    let Some(attribute) = Attribute::set(&path, flag) else {
        return; // needs root and a file system with attributes
    };
    let before = TreeSnapshot::of(server.root());
    let backend = open(&server);
    let results = [
        backend.tokens(&user("res1")).map(drop),
        backend
            .import(
                &user("res1"),
                &request(),
                &AuditTurn::alone(&FixedClock::at(0)),
            )
            .map(drop),
    ];
    drop(backend);
    let after = TreeSnapshot::of(server.root());
    drop(attribute);
    for result in results {
        assert_tampered(result, &path, what);
    }
    assert!(after == before, "the tree changed");
    assert_eq!(fs::read_to_string(&path).unwrap(), "{}");
}

// --- `.accesshash`: a file in a folder its tenant controls --------------------------------

#[test]
fn an_accesshash_owned_by_its_user_is_read() {
    let server = server();
    let path = server.access_hash_path("res1");
    if running_as_root() {
        std::os::unix::fs::chown(&path, Some(uid_of(&server, "res1")), None).unwrap();
    }
    let before = TreeSnapshot::of(server.root());
    let backend = open(&server);
    let hash = backend.read_access_hash(&user("res1")).unwrap().unwrap();
    assert_eq!(
        hash.token_hash().unwrap().as_str(),
        server.expected_key("res1")
    );
    drop(backend);
    assert_unchanged(&server, &before);
}

#[test]
fn an_accesshash_that_others_can_write_is_refused_with_how_to_fix_it() {
    for mode in [0o666, 0o620, 0o602] {
        let server = server();
        let path = server.access_hash_path("res1");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        let backend = open(&server);
        let err = backend.read_access_hash(&user("res1")).unwrap_err();
        assert!(
            matches!(&err, BackendError::WritableByOthers { location, mode: m } if *location == path.as_str() && *m == mode),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("{path} is writable by others (mode {mode:04o}); make it 0600 and run again")
        );
    }
}

#[test]
fn a_root_that_is_not_a_cpanel_server_is_refused_naming_it() {
    for missing in ["var/cpanel", "etc/passwd"] {
        let server = server();
        let gone = server.root().join(missing);
        if gone.is_dir() {
            fs::remove_dir_all(&gone).unwrap();
        } else {
            fs::remove_file(&gone).unwrap();
        }
        let config = FilesConfig {
            root: server.root().to_owned(),
        };
        let err = FilesBackend::open(&config).unwrap_err();
        assert!(matches!(&err, BackendError::NotFound { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "{}: not a cPanel server: it has no {missing}",
                server.root()
            )
        );
    }
}

#[test]
fn a_missing_accesshash_means_no_access_hash() {
    let server = server();
    fs::remove_file(server.access_hash_path("res1")).unwrap();
    let backend = open(&server);
    assert!(backend.read_access_hash(&user("res1")).unwrap().is_none());
}

#[test]
fn an_accesshash_that_is_a_symlink_is_refused_and_not_followed() {
    let server = server();
    let secret = server.root().join("etc/shadow");
    server.write_file(&secret, b"root:$6$private\n", 0o600);
    let path = plant_access_hash(&server, |path| {
        std::os::unix::fs::symlink(&secret, path).unwrap();
    });
    assert_access_hash_refused(&server, &path, "it is a symbolic link");
}

#[test]
fn an_accesshash_linked_to_dev_zero_is_refused_without_reading_it() {
    let server = server();
    let path = plant_access_hash(&server, |path| {
        std::os::unix::fs::symlink("/dev/zero", path).unwrap();
    });
    assert_access_hash_refused(&server, &path, "it is a symbolic link");
}

#[test]
fn a_dangling_accesshash_symlink_is_refused_not_taken_for_a_missing_file() {
    let server = server();
    let path = plant_access_hash(&server, |path| {
        std::os::unix::fs::symlink("nowhere", path).unwrap();
    });
    assert_access_hash_refused(&server, &path, "it is a symbolic link");
}

#[test]
fn an_accesshash_that_is_a_fifo_neither_hangs_nor_is_read() {
    let server = server();
    let path = plant_access_hash(&server, mkfifo);
    let before = TreeSnapshot::of(server.root());
    let backend = open(&server);
    let result = bounded(move || backend.read_access_hash(&user("res1")));
    assert_unsafe(result, &path, "it is a FIFO");
    assert_unchanged(&server, &before);
}

#[test]
fn an_accesshash_that_is_a_socket_is_refused() {
    let server = server();
    let mut listener = None;
    let path = plant_access_hash(&server, |path| {
        listener = Some(UnixListener::bind(path).unwrap());
    });
    let before = TreeSnapshot::of(server.root());
    let backend = open(&server);
    let err = backend
        .read_access_hash(&user("res1"))
        .expect_err("a socket is refused");
    // open(2) itself fails on a socket (ENXIO), before any check of the file type.
    assert!(
        matches!(&err, BackendError::Unsafe { location, .. } | BackendError::Io { location, .. }
            if location == path.as_str()),
        "{err:?}"
    );
    assert!(err.to_string().contains(path.as_str()), "{err}");
    drop(backend);
    assert_unchanged(&server, &before);
}

#[test]
fn an_accesshash_with_a_second_hard_link_is_refused() {
    let server = server();
    let other = server.root().join("etc/other-hash");
    server.write_file(&other, cpanel_style_access_hash("x").as_bytes(), 0o600);
    let path = plant_access_hash(&server, |path| fs::hard_link(&other, path).unwrap());
    assert_access_hash_refused(&server, &path, "it has 2 hard links");
}

#[test]
fn an_accesshash_over_64_kib_is_refused_unread() {
    let server = server();
    let path = server.access_hash_path("res1");
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(MAX_ACCESS_HASH + 1)
        .unwrap();
    assert_access_hash_refused(
        &server,
        &path,
        &format!("it is {} bytes, more than 65536", MAX_ACCESS_HASH + 1),
    );
}

#[test]
fn an_accesshash_of_exactly_64_kib_is_still_read() {
    let server = server();
    let line = "0123456789abcdef0123456789abcde\n";
    let contents = line.repeat(usize::try_from(MAX_ACCESS_HASH).unwrap() / line.len());
    assert_eq!(contents.len() as u64, MAX_ACCESS_HASH);
    server.write_access_hash("res1", &contents);
    let backend = open(&server);
    let hash = backend.read_access_hash(&user("res1")).unwrap().unwrap();
    assert_eq!(
        hash.token_hash().unwrap().as_str(),
        server.expected_key("res1")
    );
}

#[test]
fn an_accesshash_that_is_a_directory_is_refused() {
    let server = server();
    let path = plant_access_hash(&server, |path| fs::create_dir(path).unwrap());
    assert_access_hash_refused(&server, &path, "it is a directory");
}

#[test]
fn an_accesshash_owned_by_another_user_is_refused() {
    if !running_as_root() {
        return; // only root can give a file away
    }
    let server = server();
    let path = server.access_hash_path("res1");
    std::os::unix::fs::chown(&path, Some(STRANGER), None).unwrap();
    let res1 = uid_of(&server, "res1");
    assert_access_hash_refused(
        &server,
        &path,
        &format!("it is owned by uid {STRANGER}, not by its account (uid {res1})"),
    );
}

#[test]
fn an_accesshash_owned_by_root_in_a_resellers_home_is_refused() {
    if !running_as_root() {
        return; // only root can give a file away
    }
    let server = server();
    let path = server.access_hash_path("res1");
    std::os::unix::fs::chown(&path, Some(0), Some(0)).unwrap();
    let res1 = uid_of(&server, "res1");
    assert_access_hash_refused(
        &server,
        &path,
        &format!("it is owned by uid 0, not by its account (uid {res1})"),
    );
}

#[test]
fn a_home_that_resolves_into_roots_home_does_not_yield_roots_secret() {
    if !running_as_root() {
        return; // the tenant's files must belong to the tenant
    }
    let server = server();
    let home = server.home("res1");
    fs::remove_dir_all(&home).unwrap();
    std::os::unix::fs::symlink(server.home("root"), &home).unwrap();
    let backend = open(&server);
    let res1 = uid_of(&server, "res1");
    assert_unsafe(
        backend.read_access_hash(&user("res1")),
        &home.join(".accesshash"),
        &format!("it is owned by uid 0, not by its account (uid {res1})"),
    );
    assert!(backend.read_access_hash(&user("root")).unwrap().is_some());
}

#[test]
fn an_accesshash_owned_by_another_reseller_is_refused() {
    if !running_as_root() {
        return; // only root can give a file away
    }
    let server = server();
    let path = server.access_hash_path("res1");
    let other = uid_of(&server, "res2");
    std::os::unix::fs::chown(&path, Some(other), None).unwrap();
    let res1 = uid_of(&server, "res1");
    assert_access_hash_refused(
        &server,
        &path,
        &format!("it is owned by uid {other}, not by its account (uid {res1})"),
    );
}

// --- `etc/passwd` and `var/cpanel/resellers` ------------------------------------------------

#[test]
fn a_reseller_missing_from_passwd_is_reported_naming_passwd() {
    let server = server();
    server.make_reseller("ghost", &[]);
    let before = TreeSnapshot::of(server.root());
    let backend = open(&server);
    assert!(matches!(
        backend.role(&user("ghost")).unwrap(),
        WhmRole::Reseller(_)
    ));
    assert_no_passwd_entry(
        backend.read_access_hash(&user("ghost")),
        &server.root().join("etc/passwd"),
        "ghost",
    );
    drop(backend);
    assert_unchanged(&server, &before);
}

#[test]
fn a_reseller_named_like_a_path_is_listed_as_written_for_the_pipeline_to_refuse() {
    let server = server();
    server.append("var/cpanel/resellers", "../x:all\n");
    let backend = open(&server);
    let resellers = backend.resellers().unwrap();
    assert_eq!(resellers, ["../x", "res1", "res2"]);
    assert!(
        UserName::new("../x").is_err(),
        "no user name, so no path, can be made from it"
    );
}

#[test]
fn unusable_passwd_and_resellers_lines_are_skipped_and_reported() {
    let mut server = server();
    server.append(
        "etc/passwd",
        "garbage line\nbad:x:NaN:1::/home/bad:/bin/sh\n",
    );
    server.append("var/cpanel/resellers", "no colon here\n");
    server.add_reseller("late", &["list-accts"]);
    server.write_access_hash("late", &cpanel_style_access_hash("late"));
    let before = TreeSnapshot::of(server.root());
    let backend = open(&server);
    let passwd = server.root().join("etc/passwd");
    let resellers = server.root().join("var/cpanel/resellers");
    assert_eq!(
        backend.notices(),
        [
            format!("{passwd}: line 4 skipped: expected 7 fields separated by “:”, found 1"),
            format!("{passwd}: line 5 skipped: uid “NaN” is not a number"),
            format!("{resellers}: line 3 skipped: no “:” after the user name"),
        ]
    );
    assert_eq!(backend.resellers().unwrap(), ["late", "res1", "res2"]);
    assert!(
        backend
            .role(&user("late"))
            .unwrap()
            .privileges()
            .unwrap()
            .holds("list-accts")
    );
    assert!(backend.read_access_hash(&user("late")).unwrap().is_some());
    drop(backend);
    assert_unchanged(&server, &before);
}

#[test]
fn a_stray_byte_in_passwd_skips_only_that_line() {
    use std::io::Write;
    let server = server();
    let mut passwd = File::options()
        .append(true)
        .open(server.root().join("etc/passwd"))
        .unwrap();
    passwd
        .write_all(b"b\xe9d:x:1777:1777::/home/bad:/bin/bash\n")
        .unwrap();
    let backend = open(&server);
    let notices = backend.notices();
    assert_eq!(
        notices,
        [format!(
            "{}: line 4 skipped: the name, uid or home is not valid UTF-8",
            server.root().join("etc/passwd")
        )]
    );
    assert!(backend.read_access_hash(&user("res2")).unwrap().is_some());
}

// --- WHM token files: root's own data, which must not be trusted blindly --------------------

#[test]
fn a_token_file_that_is_a_symlink_is_neither_read_nor_written_through() {
    let server = server();
    let elsewhere = server.root().join("etc/elsewhere.json");
    server.write_file(&elsewhere, b"{}", 0o600);
    let path = token_file(&server, "{}");
    fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
    assert_token_file_refused(&server, &path, "it is a symbolic link");
    assert_eq!(fs::read_to_string(&elsewhere).unwrap(), "{}");
}

#[test]
fn a_token_file_others_can_write_is_not_trusted() {
    let server = server();
    let path = token_file(&server, "{}");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
    assert_token_file_refused(&server, &path, "its mode 0666 lets others write to it");
}

#[test]
fn a_token_file_its_group_can_write_is_not_trusted() {
    let server = server();
    let path = token_file(&server, "{}");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o620)).unwrap();
    assert_token_file_refused(&server, &path, "its mode 0620 lets others write to it");
}

#[test]
fn a_token_file_owned_by_another_uid_is_not_trusted() {
    if !running_as_root() {
        return; // only root can give a file away
    }
    let server = server();
    let path = token_file(&server, "{}");
    std::os::unix::fs::chown(&path, Some(STRANGER), None).unwrap();
    assert_token_file_refused(&server, &path, &format!("it is owned by uid {STRANGER}"));
}

#[test]
fn a_token_file_with_a_second_hard_link_is_not_trusted() {
    let server = server();
    let path = token_file(&server, "{}");
    let other = server.root().join("etc/linked.json");
    fs::create_dir_all(other.parent().unwrap()).unwrap();
    fs::hard_link(&path, &other).unwrap();
    assert_token_file_refused(&server, &path, "it has 2 hard links");
    assert_eq!(fs::read_to_string(&other).unwrap(), "{}");
}

#[test]
fn a_token_file_that_is_a_fifo_neither_hangs_nor_is_read() {
    let server = server();
    let path = token_file(&server, "{}");
    fs::remove_file(&path).unwrap();
    mkfifo(&path);
    let before = TreeSnapshot::of(server.root());
    let backend = open(&server);
    let (read, imported) = bounded(move || {
        let read = backend.tokens(&user("res1")).map(drop);
        let imported = backend
            .import(
                &user("res1"),
                &request(),
                &AuditTurn::alone(&FixedClock::at(0)),
            )
            .map(drop);
        (read, imported)
    });
    assert_unsafe(read, &path, "it is a FIFO");
    assert_unsafe(imported, &path, "it is a FIFO");
    assert_unchanged(&server, &before);
}

#[test]
fn a_token_file_that_is_a_directory_is_refused() {
    let server = server();
    let path = token_file(&server, "{}");
    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
    let before = TreeSnapshot::of(server.root());
    let backend = open(&server);
    assert_unsafe(backend.tokens(&user("res1")), &path, "it is a directory");
    // An import opens the file for writing, which the system refuses on a folder (EISDIR)
    // before the backend's own checks run: refused too, though reported as an I/O error.
    let err = backend
        .import(
            &user("res1"),
            &request(),
            &AuditTurn::alone(&FixedClock::at(0)),
        )
        .expect_err("a folder is not written to");
    assert!(
        matches!(&err, BackendError::Unsafe { location, .. } | BackendError::Io { location, .. }
            if location == path.as_str()),
        "{err:?}"
    );
    drop(backend);
    assert_unchanged(&server, &before);
}

#[test]
fn a_token_file_over_16_mib_is_refused_unparsed() {
    let server = server();
    let path = token_file(&server, "{}");
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(MAX_TOKEN_FILE + 1)
        .unwrap();
    assert_token_file_refused(
        &server,
        &path,
        &format!(
            "it is {} bytes, more than {MAX_TOKEN_FILE}",
            MAX_TOKEN_FILE + 1
        ),
    );
}

#[test]
fn an_immutable_token_file_is_reported_as_a_possible_compromise() {
    assert_attribute_reported(IFlags::IMMUTABLE, "immutable (chattr +i)");
}

#[test]
fn an_append_only_token_file_is_reported_as_a_possible_compromise() {
    assert_attribute_reported(IFlags::APPEND, "append-only (chattr +a)");
}

#[test]
fn a_token_folder_others_can_write_is_refused_before_anything_is_created() {
    let server = server();
    server.write_token_file("res2", "{}");
    let folder = server
        .root()
        .join("var/cpanel/authn/api_tokens_v2/whostmgr");
    fs::set_permissions(&folder, fs::Permissions::from_mode(0o777)).unwrap();
    let before = TreeSnapshot::of(server.root());
    let backend = open(&server);
    let detail = format!("folder owned by uid {} with mode 0777", token_owner());
    assert_unsafe(backend.tokens(&user("res1")), &folder, &detail);
    assert_unsafe(
        backend.import(
            &user("res1"),
            &request(),
            &AuditTurn::alone(&FixedClock::at(0)),
        ),
        &folder,
        &detail,
    );
    assert_unsafe(backend.token_users(), &folder, &detail);
    drop(backend);
    assert_unchanged(&server, &before);
    assert!(!server.token_file("res1").exists());
}

#[test]
fn a_token_folder_that_is_a_symlink_is_refused_and_not_written_through() {
    let server = server();
    let elsewhere = server.root().join("elsewhere");
    server.mkdir("elsewhere", 0o700);
    server.mkdir("var/cpanel/authn/api_tokens_v2", 0o711);
    let folder = server
        .root()
        .join("var/cpanel/authn/api_tokens_v2/whostmgr");
    std::os::unix::fs::symlink(&elsewhere, &folder).unwrap();
    let before = TreeSnapshot::of(server.root());
    let backend = open(&server);
    assert_unsafe(backend.token_users(), &folder, "it is a symbolic link");
    assert_unsafe(
        backend.tokens(&user("res1")),
        &folder,
        "it is a symbolic link",
    );
    assert_unsafe(
        backend.import(
            &user("res1"),
            &request(),
            &AuditTurn::alone(&FixedClock::at(0)),
        ),
        &folder,
        "it is a symbolic link",
    );
    drop(backend);
    assert_unchanged(&server, &before);
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[test]
fn an_immutable_token_folder_stops_the_import_and_changes_nothing() {
    let server = server();
    server.write_token_file("res2", "{}");
    let folder = server
        .root()
        .join("var/cpanel/authn/api_tokens_v2/whostmgr");
    let Some(attribute) = Attribute::set(&folder, IFlags::IMMUTABLE) else {
        return; // needs root and a file system with attributes
    };
    let before = TreeSnapshot::of(server.root());
    let backend = open(&server);
    let result = backend
        .import(
            &user("res2"),
            &request(),
            &AuditTurn::alone(&FixedClock::at(0)),
        )
        .map(drop);
    drop(backend);
    let after = TreeSnapshot::of(server.root());
    drop(attribute);
    let err = result.expect_err("nothing can be written in an immutable folder");
    assert!(err.to_string().contains(folder.as_str()), "{err}");
    assert!(after == before, "the tree changed");
}

#[test]
fn a_token_file_that_is_not_json_stays_byte_identical() {
    assert_malformed_token_file_kept("{\"tokens\":", "not valid JSON");
}

#[test]
fn a_token_file_whose_tokens_are_an_array_stays_byte_identical() {
    assert_malformed_token_file_kept(
        "{\"tokens\":[]}",
        "`tokens` is an array, expected an object",
    );
}

#[test]
fn a_token_file_that_is_a_json_array_stays_byte_identical() {
    assert_malformed_token_file_kept("[]", "the document is an array");
}

#[test]
fn a_token_key_in_capitals_stays_byte_identical() {
    assert_malformed_token_file_kept(
        "{\"tokens\":{\"ABC\":{\"name\":\"x\"}}}",
        "is not a token hash",
    );
}

#[test]
fn a_token_key_too_short_for_a_sha512_stays_byte_identical() {
    assert_malformed_token_file_kept(
        "{\"tokens\":{\"0123\":{\"name\":\"x\"}}}",
        "is not a token hash",
    );
}

// --- `var/cpanel/cpanel.config`: root's settings, read only when asked for ----------------

fn cpanel_config(server: &FakeServer) -> Utf8PathBuf {
    server.root().join("var/cpanel/cpanel.config")
}

/// Plants something at `cpanel.config` and checks that reading the settings is refused for
/// `detail` without hanging, that the backend still opens and reads access hashes (a
/// conversion never asks for the settings), and that nothing changed.
fn assert_settings_refused(plant: impl FnOnce(&FakeServer, &Utf8Path), detail: &str) {
    let server = server();
    let path = cpanel_config(&server);
    plant(&server, &path);
    let before = TreeSnapshot::of(server.root());
    let backend = open(&server);
    let (settings, access_hash) = bounded(move || {
        let settings = backend.server_settings();
        let access_hash = backend.read_access_hash(&user("res1")).map(|a| a.is_some());
        (settings, access_hash)
    });
    assert_unsafe(settings, &path, detail);
    assert!(access_hash.unwrap(), "res1's access hash is still read");
    assert_unchanged(&server, &before);
}

#[test]
fn a_cpanel_config_that_is_a_symlink_is_refused_and_not_followed() {
    assert_settings_refused(
        |server, path| {
            let elsewhere = server.root().join("etc/allowing.config");
            server.write_file(&elsewhere, b"allow_deprecated_accesshash=1\n", 0o644);
            std::os::unix::fs::symlink(&elsewhere, path).unwrap();
        },
        "it is a symbolic link",
    );
}

#[test]
fn a_cpanel_config_that_is_a_fifo_neither_hangs_nor_is_read() {
    assert_settings_refused(|_, path| mkfifo(path), "it is a FIFO");
}

#[test]
fn a_cpanel_config_that_is_a_directory_is_refused() {
    assert_settings_refused(|_, path| fs::create_dir(path).unwrap(), "it is a directory");
}

#[test]
fn a_cpanel_config_with_a_second_hard_link_is_refused() {
    assert_settings_refused(
        |server, path| {
            let other = server.root().join("etc/other.config");
            server.write_file(&other, b"allow_deprecated_accesshash=1\n", 0o644);
            fs::hard_link(&other, path).unwrap();
        },
        "it has 2 hard links",
    );
}

#[test]
fn a_cpanel_config_owned_by_another_uid_is_refused() {
    if !running_as_root() {
        return; // only root can give a file away
    }
    assert_settings_refused(
        |server, path| {
            server.write_file(path, b"allow_deprecated_accesshash=1\n", 0o644);
            std::os::unix::fs::chown(path, Some(STRANGER), None).unwrap();
        },
        &format!("it is owned by uid {STRANGER}"),
    );
}

#[test]
fn a_cpanel_config_with_an_unknown_value_is_corrupt_and_names_the_line() {
    let server = server();
    let path = cpanel_config(&server);
    server.write_file(
        &path,
        b"skipanalog=1\nallow_deprecated_accesshash=maybe\n",
        0o644,
    );
    let backend = open(&server);
    assert_corrupt(
        backend.server_settings(),
        &path,
        "line 2: allow_deprecated_accesshash is “maybe”, expected 0 or 1",
    );
}

// --- Debris: what a killed converter left in the token folder -----------------------------

/// The token folder of a fake server.
fn token_folder(server: &FakeServer) -> Utf8PathBuf {
    server
        .root()
        .join("var/cpanel/authn/api_tokens_v2/whostmgr")
}

/// The names in `folder`, sorted.
fn names_in(folder: &Utf8Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Backdates the modification time of `path` (not followed when a symbolic link) by `age`.
fn backdate(path: &Utf8Path, age: Duration) {
    let then = std::time::SystemTime::now() - age;
    let since = then.duration_since(std::time::UNIX_EPOCH).unwrap();
    let stamp = rustix::fs::Timespec {
        tv_sec: since.as_secs().try_into().unwrap(),
        tv_nsec: since.subsec_nanos().into(),
    };
    let times = rustix::fs::Timestamps {
        last_access: stamp,
        last_modification: stamp,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path.as_std_path(),
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

/// A pid no process can have: Linux keeps pids below `pid_max`, at most 2^22.
const DEAD_PID: &str = "400000";
const HOUR: Duration = Duration::from_secs(3600);

/// The `removed` counts of the events logged while `f` runs on this thread.
///
/// Through one process-wide subscriber, set once, that hands each event to the thread
/// that logged it: a subscriber set for this thread alone can miss an event whose callsite
/// another test's thread registered first, with no subscriber to ask ("never", cached).
fn removed_counts_logged<T>(f: impl FnOnce() -> T) -> (T, Vec<u64>) {
    use std::cell::RefCell;
    use tracing::field::{Field, Visit};

    thread_local! {
        static SEEN: RefCell<Option<Vec<u64>>> = const { RefCell::new(None) };
    }
    struct Removed(Option<u64>);
    impl Visit for Removed {
        fn record_u64(&mut self, field: &Field, value: u64) {
            if field.name() == "removed" {
                self.0 = Some(value);
            }
        }
        fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
    }
    struct ToItsThread;
    impl tracing::Subscriber for ToItsThread {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            let mut removed = Removed(None);
            event.record(&mut removed);
            if let Some(n) = removed.0
                && *event.metadata().level() == tracing::Level::INFO
            {
                SEEN.with_borrow_mut(|seen| seen.as_mut().map(|seen| seen.push(n)));
            }
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }
    static SET: std::sync::Once = std::sync::Once::new();
    SET.call_once(|| {
        tracing::subscriber::set_global_default(ToItsThread)
            .expect("no other subscriber is set in this test binary");
    });
    SEEN.set(Some(Vec::new()));
    let value = f();
    (value, SEEN.take().unwrap_or_default())
}

#[test]
fn the_first_write_removes_only_old_debris_of_dead_converters_and_logs_how_many() {
    let server = server();
    server.write_token_file("res1", "{}");
    server.write_token_file("res2", "{}");
    let folder = token_folder(&server);
    let me = format!("{:x}", std::process::id());
    let plant = |name: &str, age: Duration| {
        let path = folder.join(name);
        server.write_file(&path, b"", 0o600);
        backdate(&path, age);
    };
    let debris = [
        format!("whmtoken.lock-{DEAD_PID}-18c3f0e1d2a3b4c5-0"),
        format!("res1.json-{DEAD_PID}-18c3f0e1d2a3b4c5-1"),
        "res2.json-7fffffff-18c3f0e1d2a3b4c5-2".to_owned(),
    ];
    for name in &debris {
        plant(name, HOUR);
    }
    let kept = [
        // A live process's files, however old.
        (format!("whmtoken.lock-{me}-18c3f0e1d2a3b4c5-0"), HOUR),
        (format!("res1.json-{me}-18c3f0e1d2a3b4c5-1"), HOUR),
        // A dead process's files younger than 300 s.
        (
            format!("whmtoken.lock-{DEAD_PID}-18c3f0e1d2a3b4c5-3"),
            Duration::from_secs(10),
        ),
        (
            format!("res1.json-{DEAD_PID}-18c3f0e1d2a3b4c5-4"),
            Duration::from_secs(200),
        ),
        // Names that are not exactly ours.
        (format!("res1.json.tmp-{DEAD_PID}-1-2"), HOUR),
        (format!("whmtoken.lock-{DEAD_PID}-1-2-3"), HOUR),
        ("whmtoken.lock-40000A-1-2".to_owned(), HOUR),
        ("whmtoken.lock".to_owned(), HOUR),
        (format!("res.1.json-{DEAD_PID}-1-2"), HOUR),
    ];
    for (name, age) in &kept {
        plant(name, *age);
    }
    // A stale dot-lock has its own rules: broken by whoever wants that lock, not swept.
    let dot_lock = folder.join("res1.json.lock");
    server.write_file(&dot_lock, format!("{}\nx\n", 0x40_0000).as_bytes(), 0o644);
    backdate(&dot_lock, HOUR);
    // Not regular files, though named like debris.
    let dir = folder.join(format!("whmtoken.lock-{DEAD_PID}-1-5"));
    fs::create_dir(&dir).unwrap();
    backdate(&dir, HOUR);
    let link = folder.join(format!("res1.json-{DEAD_PID}-1-6"));
    std::os::unix::fs::symlink("res1.json", &link).unwrap();
    backdate(&link, HOUR);
    let everything = names_in(&folder);

    let backend = open(&server);
    backend.tokens(&user("res2")).unwrap();
    assert_eq!(names_in(&folder), everything, "a read removes nothing");
    let (result, logged) = removed_counts_logged(|| {
        backend.import(
            &user("res2"),
            &request(),
            &AuditTurn::alone(&FixedClock::at(0)),
        )
    });
    result.unwrap();
    drop(backend);
    assert_eq!(logged, [3], "the number removed is logged once");
    let mut left: Vec<String> = everything
        .into_iter()
        .filter(|name| !debris.contains(name))
        .collect();
    left.sort();
    assert_eq!(names_in(&folder), left);
}

#[test]
fn debris_is_swept_once_per_backend_at_its_first_write() {
    let server = server();
    server.write_token_file("res1", "{}");
    let folder = token_folder(&server);
    let plant = |n: u32| {
        let path = folder.join(format!("whmtoken.lock-{DEAD_PID}-1-{n}"));
        server.write_file(&path, b"", 0o600);
        backdate(&path, HOUR);
        path
    };
    let first = plant(1);
    let backend = open(&server);
    backend
        .import(
            &user("res1"),
            &request(),
            &AuditTurn::alone(&FixedClock::at(0)),
        )
        .unwrap();
    assert!(!first.exists());
    let second = plant(2);
    backend
        .import(
            &user("res2"),
            &request(),
            &AuditTurn::alone(&FixedClock::at(0)),
        )
        .unwrap();
    assert!(
        second.exists(),
        "a backend sweeps once, before its first write"
    );
    drop(backend);
    open(&server)
        .import(
            &user("res1"),
            &request(),
            &AuditTurn::alone(&FixedClock::at(0)),
        )
        .unwrap();
    assert!(!second.exists(), "the next run sweeps it");
}

/// A tmpfs of `size` mounted on `dir` for the length of a test, owned by root, mode 0700.
struct Tmpfs(Utf8PathBuf);

impl Tmpfs {
    /// `None` when it cannot be mounted: not root, or mounting not allowed here.
    fn mount(dir: &Utf8Path, size: &str) -> Option<Self> {
        if !running_as_root() {
            return None;
        }
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .args(["tmpfs", dir.as_str()])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then(|| Self(dir.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.as_str())
            .status();
    }
}

/// Fills the file system of `folder` with a file named `filler`; returns its handle.
fn fill(folder: &Utf8Path) -> File {
    use std::io::Write;
    let mut filler = File::create(folder.join("filler")).unwrap();
    let page = [0u8; 4096];
    while filler.write_all(&page).is_ok() {}
    filler
}

/// Asserts that `result` failed for lack of space, naming a file in `folder`.
#[track_caller]
fn assert_disk_full<T: std::fmt::Debug>(result: Result<T, BackendError>, folder: &Utf8Path) {
    let err = result.expect_err("nothing can be written on a full disk");
    let text = err.to_string();
    assert!(matches!(err, BackendError::Io { .. }), "{err:?}");
    assert!(text.starts_with(&format!("{folder}/")), "{text}");
    let cause = std::error::Error::source(&err).map(ToString::to_string);
    assert!(
        cause
            .as_deref()
            .is_some_and(|c| c.contains("No space left on device")),
        "{text}: {cause:?}"
    );
}

#[test]
fn a_full_disk_leaves_no_lock_source_behind() {
    let server = server();
    server.mkdir("var/cpanel/authn/api_tokens_v2/whostmgr", 0o700);
    let folder = token_folder(&server);
    let Some(_tmpfs) = Tmpfs::mount(&folder, "64k") else {
        return; // needs root and permission to mount
    };
    drop(fill(&folder));
    let backend = open(&server);
    for name in ["res1", "res2", "root"] {
        assert_disk_full(
            backend.import(
                &user(name),
                &request(),
                &AuditTurn::alone(&FixedClock::at(0)),
            ),
            &folder,
        );
        assert_eq!(
            names_in(&folder),
            ["filler"],
            "after {name}, the backend still open"
        );
    }
    drop(backend);
    assert_eq!(names_in(&folder), ["filler"]);
}

#[test]
fn a_full_disk_leaves_no_temporary_token_file_behind() {
    let server = server();
    server.mkdir("var/cpanel/authn/api_tokens_v2/whostmgr", 0o700);
    let folder = token_folder(&server);
    let Some(_tmpfs) = Tmpfs::mount(&folder, "64k") else {
        return; // needs root and permission to mount
    };
    server.write_token_file("res1", "{\"tokens\":{}}");
    let filler = fill(&folder);
    // One page free: the lock source gets it, the new token file finds none.
    let size = filler.metadata().unwrap().len();
    filler.set_len(size / 4096 * 4096 - 4096).unwrap();
    drop(filler);
    let backend = open(&server);
    assert_disk_full(
        backend.import(
            &user("res1"),
            &request(),
            &AuditTurn::alone(&FixedClock::at(0)),
        ),
        &folder,
    );
    let open_names = names_in(&folder);
    drop(backend);
    assert_eq!(open_names.len(), 3, "{open_names:?}");
    assert!(
        open_names[2].starts_with("whmtoken.lock-"),
        "{open_names:?}"
    );
    assert_eq!(names_in(&folder), ["filler", "res1.json"]);
    assert_eq!(
        fs::read_to_string(server.token_file("res1")).unwrap(),
        "{\"tokens\":{}}"
    );
}

// --- What the converter does not change stays exactly as it was ---------------------------

#[test]
fn an_import_keeps_other_entries_and_unknown_keys_byte_for_byte() {
    let server = server();
    let other = TokenHash::of_secret(b"another token").as_str().to_owned();
    let entry = r#"{"name":"kept","create_time":1700000000,"expires_at":null,"big": 123456789012345678901234567890, "f": 1.0e2, "z": 1, "a": 2, "s": "\u00e9\/"}"#;
    let unknown = r#"{"n":1.0e2,"big":-123456789012345678901234567890,"z":[1E2, 0.10]}"#;
    let path = token_file(
        &server,
        &format!(r#"{{"version":{unknown},"tokens":{{"{other}":{entry}}},"last":1.0E+2}}"#),
    );
    let backend = open(&server);
    let decision = backend
        .import(
            &user("res1"),
            &request(),
            &AuditTurn::alone(&FixedClock::at(0)),
        )
        .unwrap();
    assert!(matches!(decision, whmtoken_core::Decision::Write { .. }));
    let kept = backend.tokens(&user("res1")).unwrap();
    drop(backend);
    let new_key = TokenHash::of_secret(b"hostile-tree-test");
    let new_entry =
        r#"{"name":"accesshash-1700000000","create_time":1700000000,"expires_at":null}"#;
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        format!(
            r#"{{"version":{unknown},"tokens":{{"{other}":{entry},"{}":{new_entry}}},"last":1.0E+2}}"#,
            new_key.as_str()
        )
    );
    assert_eq!(kept.len(), 2);
}

#[test]
fn a_token_file_with_a_repeated_key_fails_its_user_and_stays_byte_identical() {
    let key = TokenHash::of_secret(b"another token").as_str().to_owned();
    let prefix = &key[..12];
    let cases = [
        (
            format!(r#"{{"tokens":{{}},"tokens":{{"{key}":{{"name":"a"}}}}}}"#),
            r#"duplicate key "tokens" in the document"#.to_owned(),
        ),
        (
            format!(r#"{{"tokens":{{"{key}":{{"name":"a"}},"{key}":{{"name":"b"}}}}}}"#),
            format!("duplicate token key {prefix}… in `tokens`"),
        ),
        (
            format!(r#"{{"tokens":{{"{key}":{{"name":"a","acls":["all"],"acls":[]}}}}}}"#),
            format!(r#"duplicate key "acls" in token {prefix}…"#),
        ),
    ];
    for (contents, detail) in cases {
        assert_malformed_token_file_kept(&contents, &detail);
        let server = server();
        token_file(&server, &contents);
        let err = open(&server)
            .import(
                &user("res1"),
                &request(),
                &AuditTurn::alone(&FixedClock::at(0)),
            )
            .unwrap_err()
            .to_string();
        assert!(
            !err.contains(&key[12..]),
            "{err} shows more than the key's prefix"
        );
        assert!(
            open(&server)
                .import(
                    &user("res2"),
                    &request(),
                    &AuditTurn::alone(&FixedClock::at(0))
                )
                .is_ok()
        );
    }
}

#[test]
fn a_home_with_a_dot_dot_component_is_refused() {
    let server = server();
    server.append(
        "etc/passwd",
        "dotty:x:1500:1500::/home/../../outside:/bin/bash\n",
    );
    server.make_reseller("dotty", &[]);
    let backend = open(&server);
    let err = backend.read_access_hash(&user("dotty")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "refusing to read {}: the home of dotty has a `..` component",
            server.root().join("etc/passwd")
        )
    );
}

#[test]
fn a_token_file_is_never_written_past_the_size_it_can_be_read_at() {
    let server = server();
    let path = server.token_file("res1");
    // One entry with a note just under the limit: with a new token the file would pass it.
    let other = whmtoken_core::TokenHash::of_secret(b"other");
    let note = "n".repeat((16 << 20) - 400);
    let doc = serde_json::json!({"tokens": {other.as_str(): {"name": "big", "create_time": 1, "expires_at": null, "note": note}}});
    server.write_token_file("res1", &doc.to_string());
    let before = fs::read(&path).unwrap();
    let backend = open(&server);
    let err = backend
        .import(
            &user("res1"),
            &request(),
            &AuditTurn::alone(&FixedClock::at(0)),
        )
        .unwrap_err();
    assert!(
        matches!(&err, BackendError::UnsafeToWrite { .. })
            && err.to_string().contains("more than 16777216"),
        "{err}"
    );
    drop(backend);
    assert_eq!(fs::read(&path).unwrap(), before, "left as it was");
    let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("res1.json-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn an_append_only_accounting_log_is_appended_to() {
    let server = server();
    let log = server.root().join("var/cpanel/accounting.log");
    server.write_file(&log, b"an earlier line\n", 0o644);
    let Some(attribute) = Attribute::set(&log, IFlags::APPEND) else {
        return; // needs root and a file system with attributes
    };
    let backend = open(&server);
    let event = whmtoken_core::AuditEvent {
        time: whmtoken_core::Clock::now(&whmtoken_core::FixedClock::at(1_700_000_000)),
        action: whmtoken_core::AuditAction::CreateApiToken,
        actor: whmtoken_core::UserName::root(),
        user: user("res1"),
        token_name: "accesshash-1".into(),
    };
    let appended = backend.append_audit(&event);
    drop(backend);
    drop(attribute);
    appended.unwrap();
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.starts_with("an earlier line\n")
            && text.ends_with(":res1:not-applicable:accesshash-1\n"),
        "{text}"
    );
}

#[test]
fn a_full_disk_leaves_no_empty_token_file_made_by_the_failed_import() {
    let server = server();
    server.mkdir("var/cpanel/authn/api_tokens_v2/whostmgr", 0o700);
    let folder = token_folder(&server);
    let Some(_tmpfs) = Tmpfs::mount(&folder, "64k") else {
        return; // needs root and permission to mount
    };
    let filler = fill(&folder);
    let size = filler.metadata().unwrap().len();
    filler.set_len(size / 4096 * 4096 - 4096).unwrap();
    drop(filler);
    let backend = open(&server);
    assert_disk_full(
        backend.import(
            &user("res1"),
            &request(),
            &AuditTurn::alone(&FixedClock::at(0)),
        ),
        &folder,
    );
    drop(backend);
    assert_eq!(names_in(&folder), ["filler"], "no res1.json, empty or not");
}

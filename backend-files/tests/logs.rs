//! The file backend's logs folder and DNS cluster configs against hostile trees: a log
//! that is a symbolic link, a FIFO or a hard link is refused (named in the report, never
//! followed, never waited on), `--logs` reads another folder, and a cluster config of
//! either style is read without its secret ever being shown.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;

use whmtoken_backend_files::{FilesBackend, FilesConfig};
use whmtoken_core::cluster::{self, Credential};
use whmtoken_core::usage::{self, Covered, Window};
use whmtoken_core::{Backend, BackendError};
use whmtoken_fixtures::{AccessEntry, FakeServer};

const NOW: i64 = 1_796_332_762;

fn open(server: &FakeServer) -> FilesBackend {
    FilesBackend::open(&FilesConfig {
        root: server.root().to_owned(),
    })
    .unwrap()
}

fn line(time: i64) -> Vec<u8> {
    let mut line = Vec::new();
    AccessEntry {
        ip: "192.0.2.7",
        forwarded_for: None,
        user: "root",
        time,
        request: b"GET /json-api/version HTTP/1.1",
        status: 200,
        size: 1,
        user_agent: b"test",
        auth: b'a',
        port: 2087,
    }
    .write_to(&mut line);
    line
}

fn report(backend: &FilesBackend) -> usage::UsageReport {
    let logs = backend.logs(None).unwrap();
    let covered = vec![Covered {
        user: "root".into(),
        tokens: vec![],
    }];
    let window = Window {
        from: NOW - 86_400,
        to: NOW,
    };
    usage::report(logs.as_ref(), covered, window).unwrap()
}

#[test]
fn a_log_that_is_a_link_a_fifo_or_a_hard_link_is_refused_and_named() {
    let server = FakeServer::new();
    let logs = server.root().join("usr/local/cpanel/logs");
    server.mkdir("usr/local/cpanel/logs/archive", 0o700);
    let secret = server.root().join("etc/shadow-like");
    fs::write(&secret, line(NOW - 5)).unwrap();
    std::os::unix::fs::symlink(&secret, logs.join("access_log")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        logs.join("access_log.1").as_std_path(),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_bits_truncate(0o600),
        0,
    )
    .unwrap();
    fs::hard_link(&secret, logs.join("access_log.2")).unwrap();
    fs::write(logs.join("archive/access_log-12-2026.gz"), line(NOW - 9)).unwrap();
    let report = report(&open(&server));
    let errors: Vec<(&str, &str)> = report
        .logs
        .iter()
        .map(|l| {
            (
                l.path.rsplit('/').next().unwrap(),
                l.error.as_deref().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(errors.len(), 4, "{errors:?}");
    assert!(
        errors[0].0 == "access_log-12-2026.gz" && errors[0].1.is_empty(),
        "{errors:?}"
    );
    assert!(errors[1].1.contains("hard links"), "{errors:?}");
    assert!(errors[2].1.contains("FIFO"), "{errors:?}");
    assert!(errors[3].1.contains("symbolic link"), "{errors:?}");
    // Only the archive (not gzip after all: read as it is) was read.
    assert_eq!(report.account("root").unwrap().accesshash.ok, 1);
}

#[test]
fn a_missing_folder_is_named_and_another_folder_can_be_read() {
    let server = FakeServer::new();
    let backend = open(&server);
    let err = backend.logs(None).unwrap_err();
    assert!(matches!(err, BackendError::NotFound { .. }));
    assert!(err.to_string().contains("usr/local/cpanel/logs"), "{err}");
    let elsewhere = server.root().join("copied-logs");
    fs::create_dir(&elsewhere).unwrap();
    fs::write(elsewhere.join("access_log"), line(NOW)).unwrap();
    let logs = backend.logs(Some(&elsewhere)).unwrap();
    let files = logs.files().unwrap();
    assert_eq!(files.len(), 1);
    let mut text = String::new();
    logs.open(&files[0])
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(text.starts_with("192.0.2.7 - root ["), "{text}");
}

const HASH: &str = "0123456789abcdef0123456789abcdef\nfedcba9876543210fedcba9876543210\n";
const TOKEN: &str = "JPQNSRU0DH448UJLGXH7KVJECC5QN9N9";

#[test]
fn cluster_configs_of_both_styles_are_read_and_a_hostile_one_left_out() {
    let server = FakeServer::new();
    server.mkdir("var/cpanel/cluster/root/config", 0o700);
    let config = server.root().join("var/cpanel/cluster/root/config");
    let write = |name: &str, text: &str| {
        server.write_file(&config.join(name), text.as_bytes(), 0o600);
    };
    write(
        "dns1.example.com",
        &format!("root\ndns1.example.com\n{HASH}"),
    );
    write(
        "dns2.example.com",
        &format!("#version 2.0\nuser=root\nhost=dns2.example.com\npass={TOKEN}\nmodule=cPanel\n"),
    );
    write(
        "dns3.example.com",
        &format!("#version 2.0\nuser=root\nhost=dns3.example.com\npass={HASH}module=cPanel\n"),
    );
    write(
        "dns4.example.com",
        &format!("root\ndns4.example.com\n{HASH}"),
    );
    fs::set_permissions(
        config.join("dns4.example.com"),
        fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        config.join("dns1.example.com"),
        config.join("dns5.example.com"),
    )
    .unwrap();
    let files = open(&server).cluster_configs().unwrap();
    let links: Vec<_> = files.iter().map(cluster::parse).collect();
    let found: Vec<(&str, Credential)> = links
        .iter()
        .map(|l| (l.host.as_deref().unwrap_or("?"), l.credential))
        .collect();
    assert_eq!(
        found,
        [
            ("dns1.example.com", Credential::AccessHash),
            ("dns2.example.com", Credential::Token),
            ("dns3.example.com", Credential::AccessHash),
        ]
    );
    let shown = format!("{files:?} {links:?}");
    assert!(
        !shown.contains("0123456789abcdef") && !shown.contains(TOKEN),
        "{shown}"
    );
}

//! Hostile trees: tenant-controlled files that try to make root read the wrong thing, hang
//! or crash, and token files that must not be trusted (issue: hardening).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use whmtoken_fixtures::{FakeServer, TreeSnapshot, cpanel_style_access_hash};

use crate::{Run, run, run_raw, server_with_resellers};

fn running_as_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Runs against `server`, failing the test if the run takes longer than 20 s.
fn run_bounded(server: &FakeServer, args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_convert_accesshash_to_token"));
    command
        .arg("--config")
        .arg(server.config_path().as_str())
        .args(args);
    bounded(command)
}

/// Runs `command`, failing the test if it takes longer than 20 s.
fn bounded(mut command: Command) -> Run {
    let mut child = command
        .env_remove("WHMTOKEN_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("the converter hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    Run {
        code: output.status.code().unwrap(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// Plants something at res1's `.accesshash`, runs res1 then res2, and checks the refusal.
fn assert_refused(plant: impl FnOnce(&FakeServer, &camino::Utf8Path), detail: &str) {
    let server = server_with_resellers();
    let path = server.access_hash_path("res1");
    fs::remove_file(&path).unwrap();
    plant(&server, &path);
    let out = run_bounded(&server, &["res1", "res2"]);
    assert_eq!(out.code, 65, "{out:?}");
    assert_eq!(
        out.stderr,
        format!("error: res1: refusing to read {path}: {detail}\n")
    );
    assert!(!server.token_file("res1").exists());
    assert!(
        server.token_file("res2").exists(),
        "the run goes on with the next user"
    );
}

#[test]
fn a_symbolic_link_to_a_private_file_is_refused() {
    assert_refused(
        |server, path| {
            let secret = server.root().join("etc/shadow");
            server.write_file(&secret, b"root:$6$private\n", 0o600);
            std::os::unix::fs::symlink(&secret, path).unwrap();
        },
        "it is a symbolic link",
    );
}

#[test]
fn a_symbolic_link_to_dev_zero_is_refused() {
    assert_refused(
        |_, path| std::os::unix::fs::symlink("/dev/zero", path).unwrap(),
        "it is a symbolic link",
    );
}

#[test]
fn a_fifo_neither_hangs_nor_is_read() {
    assert_refused(
        |_, path| {
            let made = Command::new("mkfifo").arg(path.as_str()).status().unwrap();
            assert!(made.success());
        },
        "it is a FIFO",
    );
}

#[test]
fn a_hard_link_is_refused() {
    assert_refused(
        |server, path| {
            let other = server.root().join("etc/other-hash");
            server.write_file(&other, cpanel_style_access_hash("x").as_bytes(), 0o600);
            fs::hard_link(&other, path).unwrap();
        },
        "it has 2 hard links",
    );
}

#[test]
fn a_huge_file_is_refused() {
    assert_refused(
        |server, path| {
            server.write_file(path, &vec![b'a'; 10 * 1024 * 1024], 0o600);
            if running_as_root() {
                let uid = server.uid("res1");
                std::os::unix::fs::chown(path, uid, uid).unwrap();
            }
        },
        "it is 10485760 bytes, more than 65536",
    );
}

#[test]
fn a_directory_is_refused() {
    assert_refused(|_, path| fs::create_dir(path).unwrap(), "it is a directory");
}

#[test]
fn a_file_owned_by_another_user_is_refused() {
    if !running_as_root() {
        return; // only root can give a file away
    }
    assert_refused(
        |server, path| {
            server.write_file(path, cpanel_style_access_hash("x").as_bytes(), 0o600);
            std::os::unix::fs::chown(path, Some(1234), None).unwrap();
        },
        &format!(
            "it is owned by uid 1234, not by its account (uid {})",
            server_with_resellers().uid("res1").unwrap()
        ),
    );
}

#[test]
fn bad_user_names_are_refused_before_any_path_is_built() {
    let mut server = server_with_resellers();
    server.append("var/cpanel/resellers", "../x:all\n");
    server.add_reseller("ok", &[]);
    let before = TreeSnapshot::of(server.root());
    let out = run(&server, &["--", "../x", "a/b", ".", "", "-rf"]);
    assert_eq!(out.code, 65);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 5, "{}", out.stderr);
    for line in lines {
        assert!(line.contains("invalid user name"), "{line}");
    }
    assert_eq!(TreeSnapshot::of(server.root()), before);

    let out = run(&server, &["--all-resellers"]);
    assert_eq!(out.code, 65);
    assert!(
        out.stderr.starts_with("error: ../x: invalid user name"),
        "{}",
        out.stderr
    );
    assert!(
        server.token_file("res1").exists(),
        "valid resellers are still converted"
    );
}

#[test]
fn malformed_token_files_fail_the_user_and_stay_as_they_were() {
    let cases = [
        ("{\"tokens\":", "not valid JSON"),
        (
            "{\"tokens\":[]}",
            "`tokens` is an array, expected an object",
        ),
        ("[]", "the document is an array"),
        (
            "{\"tokens\":{\"ABC\":{\"name\":\"x\"}}}",
            "is not a token hash",
        ),
        (
            "{\"tokens\":{\"0123\":{\"name\":\"x\"}}}",
            "is not a token hash",
        ),
    ];
    for (contents, detail) in cases {
        let server = server_with_resellers();
        server.write_token_file("res1", contents);
        let out = run(&server, &["res1", "res2"]);
        assert_eq!(out.code, 65, "{contents}: {out:?}");
        let prefix = format!("error: res1: {}: ", server.token_file("res1"));
        assert!(
            out.stderr.starts_with(&prefix) && out.stderr.contains(detail),
            "{contents}: {}",
            out.stderr
        );
        assert_eq!(
            fs::read_to_string(server.token_file("res1")).unwrap(),
            contents
        );
        assert!(server.token_file("res2").exists());
    }
}

#[test]
fn a_token_file_that_is_a_symbolic_link_is_not_followed() {
    let server = server_with_resellers();
    let elsewhere = server.root().join("etc/elsewhere.json");
    server.write_file(&elsewhere, b"{}", 0o600);
    server.write_token_file("res2", "{}");
    fs::remove_file(server.token_file("res1")).ok();
    std::os::unix::fs::symlink(&elsewhere, server.token_file("res1")).unwrap();
    let out = run(&server, &["res1"]);
    assert_eq!(out.code, 65);
    assert!(
        out.stderr.contains("it is a symbolic link"),
        "{}",
        out.stderr
    );
    assert_eq!(fs::read_to_string(&elsewhere).unwrap(), "{}");
}

#[test]
fn a_token_file_others_can_write_is_not_trusted() {
    let server = server_with_resellers();
    server.write_token_file("res1", "{}");
    fs::set_permissions(server.token_file("res1"), fs::Permissions::from_mode(0o666)).unwrap();
    let out = run(&server, &["res1"]);
    assert_eq!(out.code, 65);
    assert!(
        out.stderr.contains("its mode 0666 lets others write to it"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_immutable_token_file_is_reported_as_a_possible_compromise() {
    let server = server_with_resellers();
    server.write_token_file("root", "{}");
    let path = server.token_file("root");
    let made_immutable = Command::new("chattr")
        .arg("+i")
        .arg(path.as_str())
        .stderr(Stdio::null())
        .status();
    if !made_immutable.is_ok_and(|s| s.success()) {
        return; // needs root and a file system with attributes
    }
    let dry = run(&server, &["--dry-run", "root"]);
    let out = run(&server, &["root"]);
    let _ = Command::new("chattr").arg("-i").arg(path.as_str()).status();
    let expected = format!(
        "error: root: {path}: token file is immutable (chattr +i): this can indicate a compromised server\n"
    );
    for run in [&dry, &out] {
        assert_eq!(
            (run.code, run.stderr.as_str()),
            (65, expected.as_str()),
            "a dry run predicts it"
        );
    }
    assert_eq!(fs::read_to_string(&path).unwrap(), "{}");
}

#[test]
fn a_token_folder_others_can_write_is_refused_by_dry_and_real_runs() {
    let server = server_with_resellers();
    server.write_token_file("res2", "{}");
    let folder = server
        .root()
        .join("var/cpanel/authn/api_tokens_v2/whostmgr");
    fs::set_permissions(&folder, fs::Permissions::from_mode(0o777)).unwrap();
    for args in [&["--dry-run", "res1"][..], &["res1"]] {
        let out = run(&server, args);
        assert_eq!(out.code, 65, "{args:?}: {out:?}");
        assert!(
            out.stderr.contains("with mode 0777"),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert!(!server.token_file("res1").exists());
}

#[test]
fn unusable_passwd_and_resellers_lines_are_skipped() {
    let mut server = server_with_resellers();
    server.append(
        "etc/passwd",
        "garbage line\nbad:x:NaN:1::/home/bad:/bin/sh\n",
    );
    server.append("var/cpanel/resellers", "no colon here\n");
    server.add_reseller("late", &[]);
    server.write_access_hash("late", &cpanel_style_access_hash("late"));
    let out = run(&server, &["--verbose", "--all-resellers"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout.lines().count(),
        3,
        "late, res1 and res2: {}",
        out.stdout
    );
    let passwd = server.root().join("etc/passwd");
    let resellers = server.root().join("var/cpanel/resellers");
    assert_eq!(
        out.stderr,
        format!(
            "warning: {passwd}: line 4 skipped: expected 7 fields separated by “:”, found 1\n\
             warning: {passwd}: line 5 skipped: uid “NaN” is not a number\n\
             warning: {resellers}: line 3 skipped: no “:” after the user name\n"
        )
    );
}

#[test]
fn the_most_verbose_logs_show_no_part_of_any_access_hash() {
    let server = server_with_resellers();
    let config = server.config_path();
    let before = TreeSnapshot::of(server.root());
    let out = run_raw(
        &[
            "--config",
            config.as_str(),
            "--verbose",
            "--json",
            "root",
            "res1",
            "res2",
        ],
        &[("WHMTOKEN_LOG", "trace")],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("token stored"),
        "trace logging is on: {}",
        out.stderr
    );
    let written: Vec<String> = TreeSnapshot::of(server.root())
        .paths()
        .into_iter()
        .filter(|p| !before.paths().contains(p) || p.as_str().ends_with(".json"))
        .filter_map(|p| fs::read_to_string(server.root().join(p)).ok())
        .collect();
    for user in ["root", "res1", "res2"] {
        let secret = fs::read_to_string(server.access_hash_path(user))
            .unwrap()
            .replace('\n', "");
        for window in secret.as_bytes().windows(16) {
            let window = std::str::from_utf8(window).unwrap();
            for text in [&out.stdout, &out.stderr].into_iter().chain(&written) {
                assert!(
                    !text.contains(window),
                    "a run of {user}'s access hash leaked"
                );
            }
        }
    }
}

#[test]
fn a_stray_byte_in_passwd_or_resellers_stops_nothing() {
    use std::io::Write;
    let server = server_with_resellers();
    let append = |relative: &str, bytes: &[u8]| {
        let path = server.root().join(relative);
        let mut file = fs::OpenOptions::new().append(true).open(path).unwrap();
        file.write_all(bytes).unwrap();
    };
    // Not run as root, jose is the runner, who owns the files made here.
    let uid = if running_as_root() {
        1777
    } else {
        rustix::process::geteuid().as_raw()
    };
    let passwd = [
        format!("jose:x:{uid}:{uid}:Jos").as_bytes(),
        b"\xe9 Garc\xeda:/home/jose:/bin/bash\n",
    ]
    .concat();
    append("etc/passwd", &passwd);
    append("var/cpanel/resellers", b"jose:list-accts\nb\xe9d:all\n");
    server.mkdir("home/jose", 0o711);
    let hash = server.home("jose").join(".accesshash");
    server.write_file(&hash, cpanel_style_access_hash("jose").as_bytes(), 0o600);
    std::os::unix::fs::chown(&hash, Some(uid), None).unwrap();
    let out = run(&server, &["--verbose", "--all-resellers"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("\u{201c}jose\u{201d}"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("line 4 skipped: not valid UTF-8"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_config_that_is_a_fifo_or_a_folder_exits_78_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("config.toml");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    for (config, what) in [
        (fifo.to_str().unwrap(), "a FIFO"),
        (dir.path().to_str().unwrap(), "a directory"),
    ] {
        for env in [false, true] {
            let mut command = Command::new(env!("CARGO_BIN_EXE_convert_accesshash_to_token"));
            command
                .env_remove("WHMTOKEN_LOG")
                .env_remove("WHMTOKEN_CONFIG");
            if env {
                command.env("WHMTOKEN_CONFIG", config);
            } else {
                command.args(["--config", config]);
            }
            let out = bounded(command);
            assert_eq!(out.code, 78, "{what}");
            let stderr = out.stderr;
            let named_by = if env {
                " (named by WHMTOKEN_CONFIG)"
            } else {
                ""
            };
            assert_eq!(
                stderr,
                format!(
                    "error: cannot read config file {config}{named_by}: it is {what}, not a regular file\n"
                )
            );
        }
    }
}

//! Drives the built `convert_accesshash_to_token` against fake cPanel trees and checks what
//! a sysadmin would: files, modes, output lines, exit statuses.

mod audit_trail;
mod automation;
mod differential;
mod dropin;
mod durability;
mod failing_disk;
mod fleet_report;
mod hostile;
mod messages;
mod migration;
mod operator;
mod reporting;
mod retire;
mod retire_hardening;
mod terminal;
mod usage;

use std::process::Command;

// The binaries under test are built with the files backend's kill points (its
// `crash-points` feature, enabled by this dev-dependency), which `audit_trail` and
// `retire` use.
use whmtoken_backend_files as _;
use whmtoken_fixtures::FakeServer;

/// The outcome of one run of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The backend kinds the `whmtoken` tests run on: every kind built in, from the one list.
pub fn backends() -> impl Iterator<Item = &'static str> {
    whmtoken_backends::KINDS
        .iter()
        .filter(|kind| kind.is_built_in())
        .map(|kind| kind.name)
}

/// Runs `whmtoken --config CONFIG ARGS`, `stdin` on its standard input.
pub fn whmtoken(config: &camino::Utf8Path, args: &[&str], stdin: &str) -> Run {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_whmtoken"))
        .arg("--config")
        .arg(config.as_str())
        .args(args)
        .env_remove("WHMTOKEN_CONFIG")
        .env_remove("WHMTOKEN_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run whmtoken");
    // A command that exits without reading its input closes the pipe: that is not an error.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let output = child.wait_with_output().unwrap();
    Run {
        code: output.status.code().expect("exited normally"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// Runs the binary with `args` against `server` (its `whmtoken.toml` is passed first).
pub fn run(server: &FakeServer, args: &[&str]) -> Run {
    let config = server.config_path();
    let mut all = vec!["--config", config.as_str()];
    all.extend_from_slice(args);
    run_raw(&all, &[])
}

/// Runs the binary with exactly `args` and extra environment variables, nothing inherited
/// from the caller's whmtoken settings.
pub fn run_raw(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_convert_accesshash_to_token"));
    command
        .args(args)
        .env_remove("WHMTOKEN_CONFIG")
        .env_remove("WHMTOKEN_LOG");
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().expect("run convert_accesshash_to_token");
    Run {
        code: output.status.code().expect("exited normally"),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    }
}

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The 990-byte access hash of reference section 5 and its token key.
pub const VECTOR_LINE: &str = "00112233445566778899aabbccddeeff\n";
pub const VECTOR_KEY: &str = "a5b08ca0a9a61916e2f902c8f7729b45dbbbfbd7b3b27910ba927d655851703f\
                              c3db3bec6fb3afb48861572b96f7ac92344879b5441166b74e23c9ba354ef7ce";

/// Root (with the section 5 vector) plus resellers `res1` and `res2` with access hashes.
pub fn server_with_resellers() -> FakeServer {
    let mut server = FakeServer::new();
    server.write_access_hash("root", &VECTOR_LINE.repeat(30));
    for (name, acls) in [
        ("res1", &["list-accts", "create-acct"][..]),
        ("res2", &["clustering"]),
    ] {
        server.add_reseller(name, acls);
        server.write_access_hash(name, &whmtoken_fixtures::cpanel_style_access_hash(name));
    }
    server
}

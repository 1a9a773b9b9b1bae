//! Project automation, run as `cargo xtask <task>`:
//!
//! - `ci`: in this order, formatting check, clippy with warnings denied, `cargo doc` with
//!   warnings denied, unused dependencies (cargo-machete, pinned, installed under
//!   `target/tools` on first use), the fake WHM's test clients (curl, pycpanel: the
//!   `clients` module), the whole test suite (with the tidy checks,
//!   `xtask/tests/tidy.rs`), the command line's tests with each backend alone, `dist`
//!   and the packages' checks (`package_check`), and `fleet`. `.ci/run` calls exactly this.
//! - `dist`: release binaries for glibc 2.17 and newer, and the DEB and RPM packages
//!   (`dist` module); `dist --check` adds the packages' checks.
//! - `fleet`: the Ansible collection run on local hosts with fake servers (`fleet`).
//! - `bench`: the converter against an I/O floor on generated servers (`bench` module).
//! - `demo`: builds a small fake server in SQLite (`target/demo/`) and converts root and
//!   its resellers on it.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod clients;
mod dist;
mod fleet;
mod package_check;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use camino::{Utf8Path, Utf8PathBuf};
use whmtoken_fixtures::{Scenario, dump_server};

const USAGE: &str =
    "usage: cargo xtask <ci|dist|fleet|demo|bench>   (cargo xtask TASK --help: what TASK does)

  ci     fmt check, clippy and rustdoc with warnings denied, unused dependencies
         (cargo-machete), every test (tidy checks included), each backend alone,
         dist --check, fleet
  dist   release binaries for glibc 2.17+, and DEB and RPM packages in target/dist
  fleet  the Ansible collection (contrib/ansible) run on local hosts with fake servers
  demo   a small fake server in SQLite (target/demo), converted
  bench  the converter against an I/O floor on generated servers, and fake-server serve
         (bench serve: that alone)";

/// What each task does, for `cargo xtask TASK --help`.
const TASK_HELP: [(&str, &str); 5] = [
    (
        "ci",
        "usage: cargo xtask ci

Runs every check, in this order, and stops at the first that fails: the formatting check
(cargo fmt --all --check), clippy with warnings denied, rustdoc with warnings denied,
unused dependencies (cargo-machete, installed into target/tools on first use, about a
minute), the clients the fake WHM's tests drive (curl via apt-get when missing; pycpanel
from PyPI into target/tools/pycpanel), the whole test suite (the tidy checks included), the command line's tests
with each backend alone, cargo xtask dist --check (the packages built, read, installed
and removed; as root), cargo xtask fleet (the Ansible collection), and the Ansible role
installing that DEB with apt and converting with it. .ci/run runs
exactly this. In a fresh clone on a 2-core machine it takes 7 to 10 minutes, about half
of it building its tools into target/tools; about a minute when everything is built.",
    ),
    (
        "dist",
        "usage: cargo xtask dist [--check]

Builds convert_accesshash_to_token, whmtoken and fake-server in release mode for
x86_64-unknown-linux-gnu with glibc 2.17 or newer (cargo-zigbuild and zig, from PyPI into
a virtualenv in target/tools/zig on first use), checks that no symbol version is above
GLIBC_2.17 (objdump -T) and that each runs here, generates the man pages and shell
completions from the command-line definitions, and makes the DEB and RPM packages
whmtoken and whmtoken-testing (fake-server) in target/dist (cargo-deb and
cargo-generate-rpm, installed into target/tools on first use, a few minutes).

--check then checks the packages as cargo xtask ci does: the RPMs' file lists, scripts
and config files (rpm -qlp, rpm -qp --scripts, Debian's rpm package); the DEB installed
with dpkg -i (as root), its binaries run (--version, a conversion of a fake server, the
installed /etc/whmtoken.toml meaning the built-in default), then removed with dpkg -r and
dpkg -P, leaving nothing behind.",
    ),
    (
        "fleet",
        "usage: cargo xtask fleet

Tests the Ansible collection whmtoken.cpanel (contrib/ansible): installs ansible-core and
ansible-lint from PyPI into a virtualenv in target/tools/ansible on first use, generates
one fake server per inventory host in target/fleet (ansible_connection: local), and runs
the example playbook whmtoken.cpanel.migrate with the debug build's binaries: --check
changes nothing and reports the hosts with work as changed; a real run converts them and
a rerun is ok; a failing host stops the play after its batch. Then ansible-lint on the
collection.",
    ),
    (
        "demo",
        "usage: cargo xtask demo

Builds convert_accesshash_to_token (cargo shows its progress), writes a small fake server
in SQLite to target/demo (root and resellers alice, bob and carol; replaced on each run),
converts root and its resellers on it, for real and then with --dry-run, and prints the
server's state as fake-server dump does.",
    ),
    (
        "bench",
        "usage: cargo xtask bench [serve|filesystems]

Builds the release binaries, generates fake servers in target/bench (kept for the next
run), runs the converter against an I/O floor on a fresh copy of each, and prints a table
of medians and ratios, also written to target/bench/report.md. It also measures
fake-server serve (16 keep-alive clients calling version, with wrk, installed with apt-get
when missing), and, run as root, the file backend on fresh loop-mounted XFS and ext4 (with
journal) images (needs xfsprogs). `cargo xtask bench serve` or `cargo xtask bench
filesystems` measures only that part. BENCH_CONVERTER=PATH measures another build of the
converter instead (an older commit's, say). Needs GNU time at /usr/bin/time; takes several
minutes. A benchmark, not a test: CI runs none of it.",
    ),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let is_help = |arg: &str| matches!(arg, "help" | "--help" | "-h");
    let task = args.first().map_or("", String::as_str);
    let help = TASK_HELP.iter().find(|(name, _)| *name == task);
    let rest: Vec<&str> = args[args.len().min(1)..]
        .iter()
        .map(String::as_str)
        .collect();
    let result = match (task, &rest[..]) {
        ("help" | "--help" | "-h", _) => {
            println!("{USAGE}");
            Ok(())
        }
        (_, rest) if help.is_some() && rest.iter().any(|a| is_help(a)) => {
            println!("{}", help.expect("checked").1);
            Ok(())
        }
        ("bench", ["serve"]) => bench::bench_serve(),
        ("bench", ["filesystems"]) => bench::bench(true),
        ("dist", ["--check"]) => dist::dist().and_then(|_| package_check::check()),
        (_, [extra, ..]) if help.is_some() => Err(format!(
            "{task} takes no such argument (given: {extra}); cargo xtask {task} --help says what it does"
        )),
        ("ci", []) => ci(),
        ("dist", []) => dist::dist().map(drop),
        ("fleet", []) => fleet::fleet(),
        ("demo", []) => demo(),
        ("bench", []) => bench::bench(false),
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Where cargo builds: `$CARGO_TARGET_DIR` when set, else the workspace's `target/`.
pub(crate) fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace_root().join(dir),
        _ => workspace_root().join("target"),
    }
}

pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .to_owned()
}

pub(crate) fn cargo(args: &[&str]) -> Result<(), String> {
    cargo_with_env(args, &[])
}

/// `cargo ARGS` in the workspace, with `env` added to the environment of that command only.
pub(crate) fn cargo_with_env(args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    let shown: String = env.iter().map(|(k, v)| format!("{k}='{v}' ")).collect();
    let shown = format!("{shown}cargo {}", args.join(" "));
    eprintln!("xtask: {shown}");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(workspace_root())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

fn ci() -> Result<(), String> {
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ])?;
    cargo_with_env(
        &["doc", "--workspace", "--no-deps", "--locked"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    machete()?;
    clients::install()?;
    // The tidy checks (`xtask/tests/tidy.rs`) run here, with every other test.
    cargo(&["test", "--workspace", "--locked"])?;
    // Each backend alone: the command line's own tests, including the message for a
    // backend that was built out.
    for feature in ["files", "sqlite"] {
        let only = [
            "-p",
            "whmtoken-cli",
            "--no-default-features",
            "--features",
            feature,
            "--locked",
            "--bins",
        ];
        cargo(&[&["test"][..], &only].concat())?;
    }
    // The packages, built, read and installed; the Ansible collection on local hosts.
    dist::dist()?;
    package_check::check()?;
    fleet::fleet()?;
    fleet::the_role_installs_the_package(&dist::package("whmtoken", "deb")?)
}

/// cargo-machete's version, pinned: a new one may flag new things.
const MACHETE_VERSION: &str = "0.9.2";

/// Unused dependencies, found by cargo-machete (it searches each crate's sources for the
/// names of its dependencies, so a false positive is silenced in that crate's Cargo.toml
/// under `[package.metadata.cargo-machete] ignored = [...]`). It is installed from
/// crates.io into `target/tools` on first use, or when the pin changed: a fresh machine
/// needs nothing but cargo.
fn machete() -> Result<(), String> {
    let root = workspace_root();
    let binary = install_cargo_tool("cargo-machete", MACHETE_VERSION)?;
    eprintln!("xtask: {} {}", binary.display(), root.display());
    // Without CARGO, cargo-machete reads its arguments as `cargo-machete ARGS`, not as
    // `cargo machete ARGS`, however xtask was started.
    let status = Command::new(&binary)
        .arg(&root)
        .env_remove("CARGO")
        .current_dir(&root)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    match status.code() {
        Some(0) => Ok(()),
        Some(1) => Err("cargo-machete found unused dependencies (listed above)".to_owned()),
        _ => Err(format!("cargo-machete failed ({status})")),
    }
}

/// Installs the cargo tool `name` at `version` from crates.io into `target/tools` unless
/// that version is there already (its `--version` names it), and returns its path.
pub(crate) fn install_cargo_tool(name: &str, version: &str) -> Result<PathBuf, String> {
    let tools = workspace_root().join("target/tools");
    let binary = tools.join("bin").join(name);
    let installed = Command::new(&binary)
        .arg("--version")
        .env_remove("CARGO")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned());
    let is_pinned = installed.is_some_and(|text| text.split_whitespace().any(|w| w == version));
    if !is_pinned {
        let tools = tools
            .to_str()
            .ok_or_else(|| format!("{} is not UTF-8", tools.display()))?;
        cargo(&[
            "install",
            "--locked",
            "--root",
            tools,
            name,
            "--version",
            version,
        ])?;
    }
    Ok(binary)
}

/// The demo server: root and three resellers, one of them without an access hash.
const DEMO_SCENARIO: &str = r#"
[[user]]
name = "root"
accesshash = "0123456789abcdef0123456789abcdef\nfedcba9876543210fedcba9876543210\n"

[[user]]
name = "alice"
reseller = ["create-acct", "list-accts"]
accesshash = "00112233445566778899aabbccddeeff\n"

[[user]]
name = "bob"
reseller = ["clustering"]
accesshash = "ffeeddccbbaa99887766554433221100\n"

[[user.token]]
hash = "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
name = "dnscluster"
create_time = 1700000000
acls = ["clustering"]

[[user]]
name = "carol"
reseller = []
"#;

/// How the demo builds the converter: with cargo's own progress on stderr, so that a first
/// build is seen to be building.
const DEMO_BUILD: [&str; 3] = ["build", "-p", "whmtoken-cli"];

fn demo() -> Result<(), String> {
    cargo(&DEMO_BUILD)?;
    let binary = target_dir().join("debug/convert_accesshash_to_token");
    let dir = Utf8PathBuf::from_path_buf(target_dir().join("demo"))
        .map_err(|p| format!("{} is not UTF-8", p.display()))?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| format!("{dir}: {e}"))?;
    }
    let scenario = Scenario::parse(Utf8Path::new("demo scenario"), DEMO_SCENARIO)
        .map_err(|e| e.to_string())?;
    let config = scenario.build("sqlite", &dir).map_err(|e| e.to_string())?;
    println!(
        "A fake cPanel server in {dir}/server.db: root and resellers alice, bob and carol (carol has no access hash)\n"
    );
    for args in [
        &["--verbose"][..],
        &["--verbose", "--all-resellers"],
        &["--verbose", "--all-resellers", "--dry-run"],
    ] {
        println!(
            "$ convert_accesshash_to_token --config {config} {}",
            args.join(" ")
        );
        let status = Command::new(&binary)
            .arg("--config")
            .arg(config.as_str())
            .args(args)
            .status()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        println!("(exit status {})\n", status.code().unwrap_or(-1));
    }
    let state = dump_server(&config)?;
    println!(
        "$ fake-server dump --config {config}\n{}",
        serde_json::to_string_pretty(&state).expect("JSON")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_shows_cargos_progress() {
        assert!(!DEMO_BUILD.contains(&"--quiet") && !DEMO_BUILD.contains(&"-q"));
    }
}

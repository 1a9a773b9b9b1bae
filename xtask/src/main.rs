//! Project automation, run as `cargo xtask <task>`:
//!
//! - `ci`: in this order, formatting check, clippy with warnings denied, `cargo doc` with
//!   warnings denied, pycpanel for the fake WHM's tests (the `clients` module), the whole
//!   test suite (with the tidy checks, `xtask/tests/tidy.rs`), each backend kind alone
//!   (`whmtoken-backends`' tests, the command line compiled with that kind only (cargo check)), `dist` with the packages' contents checked
//!   (`package_check`), `fleet`, `browser`, and as root the install checks in a throwaway root
//!   (`throwaway_root`), skipped in one line without root. It writes nothing outside the
//!   workspace and cargo's and pip's caches, but for Chromium, which `browser` installs
//!   with apt-get as root when missing. `.ci/run` calls exactly this.
//! - `dist`: release binaries for glibc 2.17 and newer, the DEB and RPM packages (`dist`,
//!   `man` and `package` modules), signed, in signed repositories (`repo`); `dist --check`
//!   adds the packages' checks (`package_check`, `repo_check`).
//! - `fleet`: the Ansible collection run on local hosts with fake servers (`fleet`).
//! - `browser`: `whmtoken report`'s page in headless Chromium, its CSV and JSON Lines read
//!   back with Python (`browser`).
//! - `bench`: the converter against an I/O floor on generated servers (`bench` module).
//! - `faultdisk`: as root, the converter on a fake disk that fails (`faultdisk` module).
//! - `demo`: builds a small fake server in SQLite (`target/demo/`) and converts root and
//!   its resellers on it.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod browser;
mod clients;
mod dist;
mod faultdisk;
mod fleet;
mod man;
mod package;
mod package_check;
mod repo;
mod repo_check;
mod rpm_header;
mod throwaway_root;
mod tools;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use camino::{Utf8Path, Utf8PathBuf};
use whmtoken_fixtures::Scenario;

const USAGE: &str =
    "usage: cargo xtask <ci|dist|man|fleet|browser|demo|bench|faultdisk>   (cargo xtask TASK --help: what TASK does)

  ci     fmt check, clippy and rustdoc with warnings denied, every test (tidy checks
         included), each backend alone, dist --check, fleet, browser; as root, the install
         checks in a throwaway root and faultdisk. Writes nothing outside the workspace but
         the Debian packages it installs as root (ci --help lists them)
  dist   release binaries for glibc 2.17+, and DEB and RPM packages in target/dist
  man    the man pages alone, in seconds (no release build), in target/man (man -l reads them)
  fleet  the Ansible collection (contrib/ansible) run on local hosts with fake servers
  browser  whmtoken report's page in headless Chromium, its CSV and JSON Lines read back
  demo   a small fake server in SQLite (target/demo), converted
  bench  the converter against an I/O floor on generated servers, fake-server serve,
         whmtoken usage and whmtoken report (bench serve, bench usage, bench report: that
         alone)
  faultdisk  as root: the converter on a fake disk that fails (FUSE and loop devices),
         XFS and ext4; fails on a false Imported, a line without its token, a torn line";

/// What each task does, for `cargo xtask TASK --help`.
const TASK_HELP: [(&str, &str); 8] = [
    (
        "man",
        "usage: cargo xtask man

Writes the man pages, as dist makes them (from the same command-line definitions and the
README), to target/man/NAME.8, not gzipped, without dist's release build: seconds, to read
one while editing (MANWIDTH=80 man -l target/man/whmtoken-convert.8). dist also checks
them at 80 columns.",
    ),
    (
        "ci",
        "usage: cargo xtask ci

Runs every check, in this order, and stops at the first that fails: the formatting check
(cargo fmt --all --check), clippy with warnings denied, rustdoc with warnings denied,
pycpanel (from PyPI into target/tools/pycpanel) for the fake WHM's tests, which also need
curl, the whole test suite (the tidy checks included: root entries, function and file
lengths, import circles, unused dependencies), each backend kind alone (the
registry's tests, the command line compiled with that kind only (cargo check)), cargo xtask dist --check (the packages built, signed and read, as
dist --check does), cargo xtask fleet (the Ansible collection), cargo xtask browser (the report's page in
headless Chromium), and, as root, the RPMs
installed and erased with rpm --root, and in a throwaway root (a mount namespace where
/usr, /etc and /var are overlays on a tmpfs that vanishes with it) the DEB installed and
removed with dpkg, installed with apt-get from the signed repository (and tampered copies
refused), and the Ansible role installing it (a file planted in /var/tmp left alone) and
from the repository; last, cargo xtask faultdisk where the machine has root, /dev/fuse and
loop devices. Without root those are skipped, and said so in one line. It writes nothing outside the workspace and cargo's
and pip's caches, but for the Debian packages it installs with apt-get as root when their
programs are missing, which stay installed: gnupg, rpm, createrepo-c and man-db (dist and
the packages' checks), chromium and chromium-driver (browser; without root and without
them, the browser check is skipped), fuse3, libfuse3-dev and xfsprogs (faultdisk). At the end it prints how long each step took. .ci/run runs exactly
this.",
    ),
    (
        "dist",
        "usage: cargo xtask dist [--check]

Builds convert_accesshash_to_token, whmtoken and fake-server in release mode for
x86_64-unknown-linux-gnu with glibc 2.17 or newer (cargo-zigbuild and zig, from PyPI into
a virtualenv in target/tools/zig on first use), checks that no symbol version is above
GLIBC_2.17 (objdump -T) and that each runs here, generates the man pages and shell
completions from the command-line definitions, and makes the DEB and RPM packages
whmtoken and whmtoken-testing (fake-server) in target/dist, in-process, from the package
metadata of cli/Cargo.toml and fake-server/Cargo.toml. It signs the RPMs (rpmsign) and lays
out target/dist/repo: rpm/ (createrepo_c), deb/ (a flat apt repository, Release signed:
InRelease, Release.gpg) and the public key whmtoken.asc. The key: WHMTOKEN_SIGNING_KEY (an
armored secret key without passphrase) or the file WHMTOKEN_SIGNING_KEY_FILE names; else a
throwaway key, said so. Needs gpg, rpmsign and createrepo_c (apt-get installs them as root).

--check then checks the packages as cargo xtask ci does: the RPMs' files, modes, config
files and scripts (their headers read by xtask, no rpm program needed) and the DEBs'
files, fields, conffiles and scripts (dpkg-deb); the man pages at 80 columns (man -l: their
sections, ACL names whole); the RPMs' signatures (rpmkeys --checksig: good, no key,
tampered); then, as root, each RPM installed and erased with rpm --root (nothing left),
and in a throwaway root (a mount namespace with overlays on /usr, /etc and /var), the DEB
installed with dpkg -i, its binaries run (--version, a conversion of a fake server, the
installed /etc/whmtoken.toml meaning the built-in default), then removed with dpkg -r and
dpkg -P, leaving nothing behind, and apt-get installing from the signed repository and
refusing tampered copies. Without root those parts are skipped, and said so.",
    ),
    (
        "fleet",
        "usage: cargo xtask fleet

Tests the Ansible collection whmtoken.cpanel (contrib/ansible): installs ansible-core and
ansible-lint from PyPI into a virtualenv in target/tools/ansible on first use, generates
one fake server per inventory host in target/fleet (ansible_connection: local), and runs
the example playbook whmtoken.cpanel.migrate with the debug build's binaries: --check
changes nothing and reports the hosts with work as changed; a real run converts them and
a rerun is ok; a failing host stops the play after its batch. Then the modules
whmtoken_usage, whmtoken_retire and whmtoken_restore ad hoc (check mode, changed then ok,
refusals), the playbook migrate_staged over several hosts (check, run, rerun ok, a failing
host or a refused disable stopping the next batch), rollback (a named run, then each
host's last) and report (the page and CSV on the controller, no host changed). Then
ansible-doc of every module (every option and return value described) and ansible-lint
--strict on the collection.",
    ),
    (
        "browser",
        "usage: cargo xtask browser

Checks whmtoken report as its users see it: writes a small generated fleet (12 servers, a
token named as markup among them) as the page, CSV and JSON Lines with the debug build,
reads the CSV and JSON Lines back with Python's csv and json, and opens the page in
headless Chromium driven by Selenium: no console error, the chart and the findings table
in the first screen (saved as target/browser/page.png), filtering by severity and sorting
by server change the rows, the markup-named token shown as text and never run. Installs
chromium and chromium-driver with apt-get when missing (as root; without root it says so
and skips), and Selenium from PyPI into target/tools/selenium.",
    ),
    (
        "demo",
        "usage: cargo xtask demo

Builds the three binaries, convert_accesshash_to_token, whmtoken and fake-server, into
target/debug (cargo shows its progress), writes a small fake server in SQLite to
target/demo (root and resellers alice, bob and carol; replaced on each run), converts root
and its resellers on it, for real and then with --dry-run, prints the server's state as
fake-server dump does, and prints the PATH line (export PATH=…/target/debug:\"$PATH\")
after which the commands it shows run as printed.",
    ),
    (
        "bench",
        "usage: cargo xtask bench [serve|filesystems|usage|report]

Builds the release binaries, generates fake servers in target/bench (kept for the next
run), runs the converter against an I/O floor on a fresh copy of each, and prints a table
of medians and ratios, also written to target/bench/report.md. It also measures
fake-server serve (16 keep-alive clients calling version, with wrk, installed with apt-get
when missing), and, run as root, the file backend on fresh loop-mounted XFS and ext4 (with
journal) images (needs xfsprogs), and whmtoken usage on 2 GB of generated logs, plain and
as gzip archives, against grep and zcat | grep (about 2.3 GB of disk in target/bench), and
whmtoken report on 1,000 generated audit documents of 1,000 accounts (about 1 GB more):
the page written (time, peak memory), then opened in headless Chromium (its first screen,
sorting and filtering the findings, timed in the page; see cargo xtask browser).
`cargo xtask bench serve`, `cargo xtask bench filesystems`, `cargo xtask bench usage` or
`cargo xtask bench report` measures only that part. BENCH_CONVERTER=PATH measures another build of the
converter instead (an older commit's, say); BENCH_BASELINE=PATH times another build beside
it in the same pairs on the XFS and ext4 images, and BENCH_RESELLERS=1000 (or 10000) holds
`bench filesystems` to that server size. Needs GNU time at /usr/bin/time; takes several
minutes. A benchmark, not a test: CI runs none of it.",
    ),
    (
        "faultdisk",
        "usage: cargo xtask faultdisk

As root, with /dev/fuse and loop devices: the converter on a fake disk that fails
(issue 25, items 11-13), with the harness in xtask/faultdisk (a FUSE daemon, faultdisk.c,
under a loop device holding XFS or ext4; scenarios.py runs, counts and reruns; its README
says how). Installs fuse3, libfuse3-dev and xfsprogs with apt-get when missing, builds the
daemon into target/faultdisk/bin and the binaries (debug), then runs the token folder's
disk failing writes (seeds 22 and 1) and the log's disk running out of new blocks (thin),
400 resellers each, on XFS and on ext4, under target/faultdisk/runs. It prints one line of
counts a run and fails on any false Imported (a user printed converted whose token is gone
once the disk came back), any audit line for a token never stored without that user's
error saying so, and any torn fragment in accounting.log. About a minute. ci runs it last
where the machine allows it, and says in one line why it was skipped where it does not.",
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
        ("bench", ["usage"]) => bench::bench_usage(),
        ("bench", ["report"]) => bench::bench_report(),
        ("bench", ["filesystems"]) => bench::bench(true),
        ("dist", ["--check"]) => dist::dist().and_then(|_| check_packages(false)),
        (throwaway_root::TASK, rest) => install_checks(rest),
        (_, [extra, ..]) if help.is_some() => Err(format!(
            "{task} takes no such argument (given: {extra}); cargo xtask {task} --help says what it does"
        )),
        ("ci", []) => ci(),
        ("dist", []) => dist::dist().map(drop),
        ("man", []) => dist::write_man_pages(&target_dir().join("man")),
        ("fleet", []) => fleet::fleet(),
        ("browser", []) => browser::browser(),
        ("demo", []) => demo(),
        ("bench", []) => bench::bench(false),
        ("faultdisk", []) => faultdisk::faultdisk(),
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

/// Whether cargo sets `name` for the program it runs (xtask), describing that program:
/// `CARGO_MANIFEST_DIR`, `CARGO_MANIFEST_PATH`, `CARGO_PKG_*`, `CARGO_CRATE_NAME`,
/// `CARGO_BIN_NAME`, `CARGO_PRIMARY_PACKAGE`.
fn set_for_xtask(name: &str) -> bool {
    name.starts_with("CARGO_MANIFEST_")
        || name.starts_with("CARGO_PKG_")
        || matches!(
            name,
            "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE"
        )
}

/// A `cargo` command (the cargo that runs xtask) in the workspace, without the variables
/// cargo set for xtask itself: build scripts watch some of them (ring's reads
/// `CARGO_MANIFEST_DIR` and `CARGO_PKG_*` and reruns when they change), so passing them on
/// would make every `cargo xtask …` and the README's plain `cargo build` rebuild each
/// other's dependencies.
pub(crate) fn cargo_command() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(set_for_xtask) {
            command.env_remove(name);
        }
    }
    command.current_dir(workspace_root());
    command
}

pub(crate) fn cargo(args: &[&str]) -> Result<(), String> {
    cargo_with_env(args, &[])
}

/// `cargo ARGS` in the workspace, with `env` added to the environment of that command only.
pub(crate) fn cargo_with_env(args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    let shown: String = env.iter().map(|(k, v)| format!("{k}='{v}' ")).collect();
    let shown = format!("{shown}cargo {}", args.join(" "));
    eprintln!("xtask: {shown}");
    let status = cargo_command()
        .args(args)
        .envs(env.iter().copied())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

fn ci() -> Result<(), String> {
    let mut timer = Timer::default();
    timer.step("fmt", || cargo(&["fmt", "--all", "--check"]))?;
    // The release build of the packages runs beside the checks and tests: both cores
    // stay busy while tests wait or link.
    let release = timer.step("start dist", || dist::ReleaseBuild::start(true))?;
    timer.step("clippy", || {
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ])
    })?;
    // The bench's floor, a program outside the workspace, held to fmt and clippy.
    timer.step("io-floor", || {
        let manifest = ["--manifest-path", bench::FLOOR_MANIFEST];
        cargo(&[&["fmt", "--check"][..], &manifest].concat())?;
        let target = ["--target-dir", &bench::floor_target_dir()?];
        let clippy = ["clippy", "--all-targets", "--locked"];
        cargo(&[&clippy[..], &manifest, &target, &["--", "-D", "warnings"]].concat())
    })?;
    timer.step("doc", || {
        cargo_with_env(
            &["doc", "--workspace", "--no-deps", "--locked"],
            &[("RUSTDOCFLAGS", "-D warnings")],
        )
    })?;
    timer.step("clients", clients::install)?;
    // The tidy checks (`xtask/tests/tidy.rs`, unused dependencies among them) run here,
    // with every other test.
    timer.step("test", || cargo(&["test", "--workspace", "--locked"]))?;
    // Each backend kind alone, from the one list: the registry's tests (the message for a
    // kind built out included), and the command line compiled with that kind only (cargo check).
    timer.step("each backend", || {
        for kind in whmtoken_backends::KINDS {
            let only = ["--no-default-features", "--locked", "--features"];
            let test = ["test", "-p", "whmtoken-backends"];
            cargo(&[&test[..], &only, &[kind.name]].concat())?;
            let feature = format!("whmtoken-backends/{}", kind.name);
            let check = ["check", "-p", "whmtoken-cli", "--bins"];
            cargo(&[&check[..], &only, &[&feature]].concat())?;
        }
        Ok(())
    })?;
    // The Ansible collection on local hosts; the packages, made and read; then, as root,
    // the DEB installed and removed, and the role installing it, in a throwaway root.
    timer.step("fleet", fleet::fleet)?;
    // The report's page in headless Chromium (a small page; the large one is `bench report`).
    timer.step("browser", browser::browser)?;
    timer.step("dist", || {
        tools::require(&tools::PACKAGING)?;
        release.finish().and_then(|()| dist::package_release())
    })?;
    timer.step("packages", || check_packages(true))?;
    // The converter on a disk that fails (FUSE under a loop device), where the machine
    // allows it; skipped in one line where it does not.
    timer.step("faultdisk", || match faultdisk::unavailable() {
        None => faultdisk::faultdisk(),
        Some(why) => {
            eprintln!("xtask: faultdisk skipped: {why}");
            Ok(())
        }
    })?;
    eprintln!("xtask: ci passed; {timer}");
    Ok(())
}

/// How long each step of `ci` took.
#[derive(Default)]
struct Timer {
    steps: Vec<(&'static str, std::time::Duration)>,
}

impl Timer {
    fn step<T>(
        &mut self,
        name: &'static str,
        run: impl FnOnce() -> Result<T, String>,
    ) -> Result<T, String> {
        let started = std::time::Instant::now();
        let result = run();
        self.steps.push((name, started.elapsed()));
        result.map_err(|e| format!("{e}\n(ci: {self})"))
    }
}

impl std::fmt::Display for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total: std::time::Duration = self.steps.iter().map(|(_, d)| *d).sum();
        let steps: Vec<String> = self
            .steps
            .iter()
            .map(|(name, took)| format!("{name} {:.1} s", took.as_secs_f64()))
            .collect();
        write!(
            f,
            "{:.0} s in all: {}",
            total.as_secs_f64(),
            steps.join(", ")
        )
    }
}

/// The one line said when the install checks are skipped: those of the DEB, and with
/// `role` the Ansible role's install step.
fn not_root(role: bool) -> String {
    let role = if role {
        " and the Ansible role's install step"
    } else {
        ""
    };
    format!(
        "xtask: not root: skipped installing and removing the DEB (dpkg -i, -r, -P; apt-get \
         from the signed repository) and the RPMs (rpm --root){role}: they need root for a \
         throwaway root (a mount namespace with overlays on /usr, /etc and /var); every other \
         check ran"
    )
}

/// The packages' checks: what they hold (`package_check`), then, as root, the DEB
/// installed and removed in a throwaway root, and with `role` the Ansible role installing
/// it there too. Without root the install checks are skipped, and said so in one line.
fn check_packages(role: bool) -> Result<(), String> {
    package_check::check_contents()?;
    man::check_rendered(&dist::release_dir().join("whmtoken-assets/man"))?;
    repo_check::check_rpm_signatures()?;
    if !throwaway_root::is_root() {
        eprintln!("{}", not_root(role));
        return Ok(());
    }
    repo_check::check_rpm_erase()?;
    throwaway_root::run_checks(role)
}

/// The hidden task run in the throwaway root: `deb`, and `role`.
fn install_checks(what: &[&str]) -> Result<(), String> {
    throwaway_root::enter()?;
    for check in what {
        match *check {
            "deb" => package_check::check_install()?,
            "repo" => repo_check::check_apt_repository()?,
            "role" => fleet::the_role_installs_the_package(&dist::package("whmtoken", "deb")?)?,
            other => return Err(format!("{}: no such check: {other}", throwaway_root::TASK)),
        }
    }
    Ok(())
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

/// How the demo builds the binaries whose commands it shows: with cargo's own progress on
/// stderr, so that a first build is seen to be building (the `xtask` alias is not quiet
/// either: building xtask itself shows its progress).
const DEMO_BUILD: [&str; 5] = ["build", "-p", "whmtoken-cli", "-p", "whmtoken-fake-server"];

/// The programs the demo's commands name: [`DEMO_BUILD`] builds each of them.
const DEMO_PROGRAMS: [&str; 3] = ["convert_accesshash_to_token", "whmtoken", "fake-server"];

fn demo() -> Result<(), String> {
    cargo(&DEMO_BUILD)?;
    let dir = Utf8PathBuf::from_path_buf(target_dir().join("demo"))
        .map_err(|p| format!("{} is not UTF-8", p.display()))?;
    let bin = Utf8PathBuf::from_path_buf(target_dir().join("debug"))
        .map_err(|p| format!("{} is not UTF-8", p.display()))?;
    if let Some(missing) = DEMO_PROGRAMS.iter().find(|p| !bin.join(p).exists()) {
        return Err(format!(
            "{bin}/{missing}: not built by cargo {}",
            DEMO_BUILD.join(" ")
        ));
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| format!("{dir}: {e}"))?;
    }
    let scenario = Scenario::parse(Utf8Path::new("demo scenario"), DEMO_SCENARIO)
        .map_err(|e| e.to_string())?;
    let config = scenario.build("sqlite", &dir).map_err(|e| e.to_string())?;
    println!(
        "A fake cPanel server in {dir}/server.db: root and resellers alice, bob and carol (carol has no access hash)\n"
    );
    let path_line = demo_path_line(&bin);
    println!("$ {path_line}\n");
    for command in demo_commands(&config) {
        println!("$ {command}");
        // Run by the shell exactly as shown, after the PATH line shown: what it prints
        // works as printed.
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!("{path_line}\n{command}"))
            .status()
            .map_err(|e| format!("cannot run sh: {e}"))?;
        println!("(exit status {})\n", status.code().unwrap_or(-1));
    }
    println!(
        "Try them yourself: run the export line above first (the binaries are in {bin}), then any of the commands."
    );
    Ok(())
}

/// `export PATH='…/target/debug':"$PATH"`: after it, the demo's commands run as shown.
fn demo_path_line(bin: &Utf8Path) -> String {
    format!("export PATH={}:\"$PATH\"", sh_quoted(bin.as_str()))
}

/// The commands the demo runs and shows, on the server whose config file is `config`.
fn demo_commands(config: &Utf8Path) -> Vec<String> {
    let config = sh_quoted(config.as_str());
    [
        "convert_accesshash_to_token --config {} --verbose",
        "convert_accesshash_to_token --config {} --verbose --all-resellers",
        "convert_accesshash_to_token --config {} --verbose --all-resellers --dry-run",
        "whmtoken --config {} audit --summary",
        "fake-server dump --config {}",
    ]
    .iter()
    .map(|template| template.replace("{}", &config))
    .collect()
}

/// `text` as one word for `sh`: as it is when it holds only characters that need no
/// quoting, else in single quotes.
fn sh_quoted(text: &str) -> String {
    if !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@".contains(&b))
    {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// Runs a command, failing unless it exits 0.
pub(crate) fn run(command: &mut Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    eprintln!("xtask: {shown}");
    let status = command
        .status()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

/// A command's stdout, failing unless it exits 0 (its stderr is shown).
pub(crate) fn output(command: &mut Command) -> Result<String, String> {
    let shown = format!("{command:?}");
    let out = command
        .output()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    String::from_utf8(out.stdout).map_err(|_| format!("{shown}: its output is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_is_run_without_the_variables_cargo_set_for_xtask() {
        // `cargo test` sets them for this test as `cargo run` does for xtask.
        let set: Vec<String> = std::env::vars()
            .map(|(name, _)| name)
            .filter(|name| set_for_xtask(name))
            .collect();
        assert!(set.iter().any(|n| n == "CARGO_MANIFEST_DIR"), "{set:?}");
        assert!(set.iter().any(|n| n == "CARGO_PKG_NAME"), "{set:?}");
        let command = cargo_command();
        let removed: Vec<String> = command
            .get_envs()
            .filter(|(_, value)| value.is_none())
            .filter_map(|(name, _)| name.to_str().map(str::to_owned))
            .collect();
        for name in &set {
            assert!(removed.contains(name), "{name} passed on to cargo");
        }
        assert!(
            !removed.iter().any(|n| n == "CARGO"),
            "cargo's own path stays"
        );
    }

    #[test]
    fn the_demo_shows_cargos_progress() {
        assert!(!DEMO_BUILD.contains(&"--quiet") && !DEMO_BUILD.contains(&"-q"));
        let config = std::fs::read_to_string(workspace_root().join(".cargo/config.toml")).unwrap();
        let alias = config
            .lines()
            .find(|l| l.starts_with("xtask = "))
            .expect("the xtask alias");
        assert!(
            !alias.contains("--quiet") && !alias.contains(" -q"),
            "building xtask itself shows its progress: {alias}"
        );
    }

    /// Every command the demo shows names a program its build makes, and runs, as shown,
    /// after the PATH line it shows: the commands are run by `sh` with only that line before
    /// them, here with stand-ins for the programs that print their arguments.
    #[test]
    fn the_demos_commands_work_as_printed() {
        for (package, program) in [
            ("whmtoken-cli", "convert_accesshash_to_token"),
            ("whmtoken-cli", "whmtoken"),
            ("whmtoken-fake-server", "fake-server"),
        ] {
            assert!(DEMO_BUILD.contains(&package), "{package}");
            assert!(DEMO_PROGRAMS.contains(&program));
        }
        let dir = tempfile::tempdir().unwrap();
        let bin = Utf8Path::from_path(dir.path())
            .unwrap()
            .join("it's target/debug");
        std::fs::create_dir_all(&bin).unwrap();
        for program in DEMO_PROGRAMS {
            let path = bin.join(program);
            std::fs::write(&path, format!("#!/bin/sh\necho {program} \"$@\"\n")).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        let config = Utf8Path::new("/srv/a demo/whmtoken.toml");
        let commands = demo_commands(config);
        assert_eq!(commands.len(), 5);
        for command in commands {
            let program = command.split(' ').next().unwrap();
            assert!(DEMO_PROGRAMS.contains(&program), "{command}");
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!("{}\n{command}", demo_path_line(&bin)))
                .env("PATH", "/usr/bin:/bin")
                .output()
                .unwrap();
            assert!(out.status.success(), "{command}");
            let printed = String::from_utf8(out.stdout).unwrap();
            assert!(
                printed.starts_with(program)
                    && printed.contains(" --config /srv/a demo/whmtoken.toml"),
                "{command}: {printed}"
            );
        }
    }
}

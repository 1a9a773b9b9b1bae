//! What this crate's test binaries that run no harness of their own (`serve`, `docs`,
//! `without_root`) share.
//!
//! They need `convert_accesshash_to_token` and `whmtoken`, the binaries of another package,
//! which cargo builds for that package's tests only. So each of these test binaries is
//! those programs too: it links the command line's library (a dev-dependency, compiled
//! from the current sources with the test) and, started under one of their names (argv[0]),
//! runs that program's `main` ([`act_as_a_program`]) instead of its tests. `fake-server` is
//! this package's own binary, which cargo builds for these tests (`CARGO_BIN_EXE_fake-server`).
//! No test runs cargo.

#![allow(dead_code)] // each test binary uses its part

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The command line's programs this test binary can be.
const PROGRAMS: [&str; 2] = ["convert_accesshash_to_token", "whmtoken"];

/// The `fake-server` binary cargo built for this package's tests.
pub const FAKE_SERVER: &str = env!("CARGO_BIN_EXE_fake-server");

/// When this process was started as `convert_accesshash_to_token` or `whmtoken` (the file
/// name of argv[0]), runs that program and returns its exit status.
pub fn act_as_a_program() -> Option<ExitCode> {
    let argv0 = std::env::args_os().next()?;
    match Path::new(&argv0).file_name().and_then(OsStr::to_str)? {
        "convert_accesshash_to_token" => Some(whmtoken_cli::converter_main()),
        "whmtoken" => Some(whmtoken_cli::whmtoken_main()),
        _ => None,
    }
}

/// A command running `program`: `fake-server`, or this test binary started as
/// `convert_accesshash_to_token` or `whmtoken`.
pub fn program(program: &str) -> Command {
    if program == "fake-server" {
        return Command::new(FAKE_SERVER);
    }
    assert!(PROGRAMS.contains(&program), "no program called {program}");
    let mut command = Command::new(std::env::current_exe().expect("the test's path"));
    command.arg0(program);
    command
}

/// Fills `folder` with the three programs under their names (symbolic links), for `PATH`.
pub fn link_programs(folder: &Path) {
    let this = std::env::current_exe().expect("the test's path");
    for (name, target) in [
        (PROGRAMS[0], this.as_path()),
        (PROGRAMS[1], this.as_path()),
        ("fake-server", Path::new(FAKE_SERVER)),
    ] {
        let link = folder.join(name);
        std::os::unix::fs::symlink(target, &link)
            .unwrap_or_else(|e| panic!("{}: {e}", link.display()));
    }
}

/// One test: its name and its body, which fails by panicking.
pub type Test = (&'static str, fn());

/// `tests!(a, b, …)`: the functions `a`, `b`, … as [`Test`]s named after them.
#[macro_export]
macro_rules! tests {
    ($($name:ident),* $(,)?) => {
        &[$((stringify!($name), $name as fn())),*]
    };
}

/// Runs `tests` as cargo's test harness would: those whose name contains one of the
/// arguments (every test without one; with `--exact`, equal to one), minus `--skip NAME`;
/// `--list` lists them; `--ignored` runs none (none is ignored). They run on `--test-threads`, `RUST_TEST_THREADS` or one thread per
/// core, each on a thread named after it; the status is failure when one failed.
pub fn run(tests: &[Test]) -> ExitCode {
    run_on(tests, Options::parse(std::env::args().skip(1)))
}

/// [`run`], one test at a time whatever the arguments: for tests that share something
/// outside the process (uid 65534's process count).
pub fn run_in_turn(tests: &[Test]) -> ExitCode {
    let options = Options::parse(std::env::args().skip(1));
    run_on(
        tests,
        Options {
            threads: 1,
            ..options
        },
    )
}

fn run_on(tests: &[Test], options: Options) -> ExitCode {
    let chosen: Vec<&Test> = tests
        .iter()
        .filter(|(name, _)| options.runs(name))
        .collect();
    let mut out = std::io::stdout().lock();
    if options.list {
        for (name, _) in &chosen {
            let _ = writeln!(out, "{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    let _ = writeln!(out, "\nrunning {} tests", chosen.len());
    drop(out);
    let next = AtomicUsize::new(0);
    let failed = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..options.threads.min(chosen.len()) {
            scope.spawn(|| {
                while let Some((name, test)) = chosen.get(next.fetch_add(1, Ordering::SeqCst)) {
                    let passed = std::thread::Builder::new()
                        .name((*name).to_owned())
                        .spawn(*test)
                        .expect("a thread")
                        .join()
                        .is_ok();
                    let verdict = if passed { "ok" } else { "FAILED" };
                    let _ = writeln!(std::io::stdout(), "test {name} ... {verdict}");
                    if !passed {
                        failed.lock().expect("not poisoned").push(*name);
                    }
                }
            });
        }
    });
    let failed = failed.into_inner().expect("not poisoned");
    let mut out = std::io::stdout().lock();
    if !failed.is_empty() {
        let _ = writeln!(out, "\nfailures:\n    {}", failed.join("\n    "));
    }
    let verdict = if failed.is_empty() { "ok" } else { "FAILED" };
    let _ = writeln!(
        out,
        "\ntest result: {verdict}. {} passed; {} failed\n",
        chosen.len() - failed.len(),
        failed.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(101)
    }
}

/// The arguments cargo's test harness takes, as far as they choose tests.
struct Options {
    filters: Vec<String>,
    skip: Vec<String>,
    exact: bool,
    list: bool,
    /// `--ignored`: only the ignored tests, and none is.
    ignored: bool,
    threads: usize,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> Self {
        let mut options = Self {
            filters: Vec::new(),
            skip: Vec::new(),
            exact: false,
            list: false,
            ignored: false,
            threads: std::env::var("RUST_TEST_THREADS")
                .ok()
                .and_then(|n| n.parse().ok())
                .or_else(|| std::thread::available_parallelism().ok().map(Into::into))
                .unwrap_or(1),
        };
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if arg.starts_with("--") => {
                    (flag.to_owned(), Some(value.to_owned()))
                }
                _ => (arg.clone(), None),
            };
            let mut value = || inline.clone().or_else(|| args.next()).unwrap_or_default();
            match flag.as_str() {
                "--exact" => options.exact = true,
                "--list" => options.list = true,
                "--ignored" => options.ignored = true,
                "--skip" => options.skip.push(value()),
                "--test-threads" => options.threads = value().parse().unwrap_or(1).max(1),
                "--color" | "--format" | "--logfile" | "-Z" => drop(value()),
                _ if flag.starts_with('-') => {}
                _ => options.filters.push(arg),
            }
        }
        options
    }

    fn runs(&self, name: &str) -> bool {
        let matches = |filter: &String| {
            if self.exact {
                name == filter
            } else {
                name.contains(filter.as_str())
            }
        };
        !self.ignored
            && (self.filters.is_empty() || self.filters.iter().any(matches))
            && !self.skip.iter().any(|skip| name.contains(skip.as_str()))
    }
}

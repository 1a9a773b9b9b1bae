//! `fake-server` and the converter without root: a user without root builds a fake file
//! tree with `fake-server generate` and converts it end to end, and a run that cannot start
//! threads goes on with fewer. When the tests run as root, both programs run as uid 65534
//! (setpriv). `fake-server` is this package's binary; `convert_accesshash_to_token` is this
//! test binary, started through a link of that name (`support`).

mod support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Whether the tests run as root.
fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// A folder that uid 65534 may read, holding the programs under their names.
struct Programs(tempfile::TempDir);

impl Programs {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        support::link_programs(dir.path());
        Self(dir)
    }

    fn converter(&self) -> PathBuf {
        self.0.path().join("convert_accesshash_to_token")
    }
}

/// Runs `program` with `args` as an unprivileged user (uid 65534) when the tests run as
/// root, as the runner otherwise; `None` when that user cannot reach the program.
fn unprivileged(program: &std::path::Path, args: &[&str]) -> Option<std::process::Output> {
    let mut command = if is_root() {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(program);
        c
    } else {
        std::process::Command::new(program)
    };
    let output = command
        .args(args)
        .env_remove("WHMTOKEN_CONFIG")
        .env_remove("WHMTOKEN_LOG")
        .output()
        .ok()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    (!stderr.starts_with("setpriv:")).then_some(output)
}

/// A files tree of `resellers` resellers that an unprivileged user (uid 65534 when the tests
/// run as root) generated with `fake-server`: its folder and config file. `None` when that
/// user cannot reach the binaries in this checkout.
fn unprivileged_tree(resellers: usize) -> Option<(tempfile::TempDir, String)> {
    let fake_server = Path::new(support::FAKE_SERVER);
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let out = dir.path().join("srv");
    let out = out.to_str().unwrap().to_owned();
    let resellers = resellers.to_string();
    let built = unprivileged(
        fake_server,
        &[
            "generate",
            "--resellers",
            &resellers,
            "--backend",
            "files",
            "--out",
            &out,
        ],
    )?;
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    Some((dir, format!("{out}/whmtoken.toml")))
}

fn a_user_without_root_builds_and_converts_a_fake_file_tree_end_to_end() {
    let programs = Programs::new();
    let converter = programs.converter();
    let Some((_dir, config)) = unprivileged_tree(5) else {
        return; // see `unprivileged_tree`
    };
    let converted = unprivileged(
        &converter,
        &["--config", &config, "--verbose", "--all-resellers"],
    )
    .unwrap();
    let stdout = String::from_utf8(converted.stdout).unwrap();
    assert_eq!(
        (
            converted.status.code(),
            String::from_utf8_lossy(&converted.stderr).as_ref()
        ),
        (Some(0), ""),
        "{stdout}"
    );
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with("Imported accesshash for “res0000"))
            .count(),
        5,
        "{stdout}"
    );
}

fn a_run_that_cannot_start_threads_goes_on_with_fewer() {
    let programs = Programs::new();
    let converter = programs.converter();
    if !is_root() {
        return; // the process limit is set for an unprivileged user, by root
    }
    let Some((_dir, config)) = unprivileged_tree(20) else {
        return; // see `unprivileged_tree`
    };
    // One process and no thread more for uid 65534: every spawn fails.
    let output = std::process::Command::new("prlimit")
        .args(["--nproc=1", "--"])
        .args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ])
        .arg(&converter)
        .args([
            "--config",
            &config,
            "--verbose",
            "--all-resellers",
            "--jobs",
            "8",
        ])
        .env_remove("WHMTOKEN_LOG")
        .output();
    let Ok(output) = output else { return }; // no prlimit on this machine
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.lines().count(), 20, "{stdout}");
}

fn the_trees_root_account_is_its_owner_and_root_acts_as_that_owner() {
    let programs = Programs::new();
    let converter = programs.converter();
    let Some((dir, config)) = unprivileged_tree(2) else {
        return; // see `unprivileged_tree`
    };
    // The tree's owner converts the tree's root account, whose files are theirs.
    let converted = unprivileged(&converter, &["--config", &config, "--verbose"]).unwrap();
    assert_eq!(
        converted.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&converted.stderr)
    );
    assert!(
        String::from_utf8_lossy(&converted.stdout).starts_with("Imported accesshash for “root”"),
        "{}",
        String::from_utf8_lossy(&converted.stdout)
    );
    if !is_root() {
        return;
    }
    // Root, on a tree another user built (the token folder not made yet), makes
    // everything as that user, and converts it.
    let tree = dir.path().join("srv");
    let tokens = tree.join("var/cpanel/authn/api_tokens_v2");
    fs::remove_dir_all(&tokens).unwrap();
    let converted = std::process::Command::new(&converter)
        .args(["--config", &config, "--all-resellers"])
        .env_remove("WHMTOKEN_CONFIG")
        .output()
        .unwrap();
    assert_eq!(
        converted.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&converted.stderr)
    );
    let owner = fs::metadata(&tree).unwrap().uid();
    for made in ["", "/whostmgr"] {
        let meta = fs::metadata(format!("{}{made}", tokens.display())).unwrap();
        assert_eq!(meta.uid(), owner, "{made}: the tree's owner's");
    }
}

fn main() -> ExitCode {
    if let Some(status) = support::act_as_a_program() {
        return status;
    }
    // One at a time: the second limits uid 65534 to one process, which the first would
    // otherwise be running as.
    support::run_in_turn(tests![
        a_user_without_root_builds_and_converts_a_fake_file_tree_end_to_end,
        the_trees_root_account_is_its_owner_and_root_acts_as_that_owner,
        a_run_that_cannot_start_threads_goes_on_with_fewer,
    ])
}

//! `cargo xtask faultdisk`: the converter on a fake disk that fails (issue 25, items
//! 11-13), with the team's harness in `xtask/faultdisk/` (a FUSE daemon under a loop
//! device, and the Python scripts that run, count and rerun; its README says how).
//!
//! As root, with `/dev/fuse` and loop devices: installs fuse3, libfuse3-dev and xfsprogs
//! with apt-get when missing, builds the daemon into `target/faultdisk/bin`, builds the
//! binaries (debug), and runs the three scenarios the issue names on XFS and on ext4 with
//! a few hundred resellers. It fails on any false `Imported` (a user printed as converted
//! whose token is gone once the disk came back), any audit line naming a token never stored
//! without that user's error saying so, and any torn fragment in `accounting.log`.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::{cargo, target_dir, throwaway_root, workspace_root};

/// The scenarios: file system, fault, placement, resellers, seed.
const MATRIX: [(&str, &str, &str, u32, u32); 6] = [
    ("ext4", "failwrite", "tokens", 400, 22),
    ("xfs", "failwrite", "tokens", 400, 22),
    ("ext4", "failwrite", "tokens", 400, 1),
    ("xfs", "failwrite", "tokens", 400, 1),
    ("xfs", "thin", "log", 400, 1),
    ("ext4", "thin", "log", 400, 1),
];

/// What a user's error says when its line was written and its token then not stored.
const LINE_WITHOUT_TOKEN: &str = "its audit line was written, but the token was not stored";

/// Why this machine cannot run the fake disk, if it cannot.
pub(crate) fn unavailable() -> Option<String> {
    if !throwaway_root::is_root() {
        return Some("faultdisk needs root (loop devices, mounts, a FUSE daemon)".to_owned());
    }
    ["/dev/fuse", "/dev/loop-control"]
        .into_iter()
        .find(|device| !Path::new(device).exists())
        .map(|device| format!("faultdisk needs {device}, which this machine lacks"))
}

pub(crate) fn faultdisk() -> Result<(), String> {
    if let Some(why) = unavailable() {
        return Err(why);
    }
    install_tools()?;
    let harness = workspace_root().join("xtask/faultdisk");
    let out = target_dir().join("faultdisk");
    let daemon = out.join("bin/faultdisk");
    build_daemon(&harness.join("faultdisk.c"), &daemon)?;
    cargo(&["build", "-p", "whmtoken-cli", "-p", "whmtoken-fake-server"])?;
    let bin = target_dir().join("debug");
    let mut failures = Vec::new();
    for (fs, fault, place, resellers, seed) in MATRIX {
        let run = scenario(
            &harness,
            &daemon,
            &bin,
            &out,
            (fs, fault, place, resellers, seed),
        )?;
        let folder = out
            .join("runs")
            .join(format!("{fs}-{fault}-{place}-{resellers}-seed{seed}"));
        let errors = std::fs::read_to_string(folder.join("run.err")).unwrap_or_default();
        // The disk images (512 MiB each, sparse) go; the outputs stay for a look.
        for image in ["A.raw", "B.raw"] {
            let _ = std::fs::remove_file(folder.join(image));
        }
        let said = errors
            .lines()
            .filter(|l| l.contains(LINE_WITHOUT_TOKEN))
            .count();
        let (line, problems) = judge(&run, said as u64);
        println!("{fs} {fault} {place} {resellers} --seed {seed}: {line}");
        failures.extend(
            problems
                .into_iter()
                .map(|p| format!("{fs} {fault} {place} seed {seed}: {p}")),
        );
    }
    if failures.is_empty() {
        println!("faultdisk: every promise kept");
        Ok(())
    } else {
        Err(format!("faultdisk: {}", failures.join("; ")))
    }
}

/// fuse3, its headers and xfsprogs, with apt-get when one is missing.
fn install_tools() -> Result<(), String> {
    let have = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if have("pkg-config", &["--exists", "fuse3"])
        && have("fusermount3", &["--version"])
        && have("mkfs.xfs", &["-V"])
    {
        return Ok(());
    }
    let status = Command::new("apt-get")
        .args([
            "install",
            "-y",
            "fuse3",
            "libfuse3-dev",
            "xfsprogs",
            "e2fsprogs",
            "pkg-config",
        ])
        .status()
        .map_err(|e| format!("cannot run apt-get: {e}"))?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| format!("apt-get install fuse3 libfuse3-dev xfsprogs failed ({status})"))
}

/// `gcc -O2 -Wall -o DAEMON SOURCE $(pkg-config --cflags --libs fuse3)`.
fn build_daemon(source: &Path, daemon: &Path) -> Result<(), String> {
    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs", "fuse3"])
        .output()
        .map_err(|e| format!("cannot run pkg-config: {e}"))?;
    let flags = String::from_utf8_lossy(&flags.stdout).into_owned();
    std::fs::create_dir_all(daemon.parent().expect("a folder"))
        .map_err(|e| format!("{}: {e}", daemon.display()))?;
    let status = Command::new("gcc")
        .args(["-O2", "-Wall", "-o"])
        .arg(daemon)
        .arg(source)
        .args(flags.split_whitespace())
        .status()
        .map_err(|e| format!("cannot run gcc: {e}"))?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| format!("gcc {} failed ({status})", source.display()))
}

/// One run of `scenarios.py run`, its JSON report.
fn scenario(
    harness: &Path,
    daemon: &Path,
    bin: &Path,
    out: &Path,
    (fs, fault, place, resellers, seed): (&str, &str, &str, u32, u32),
) -> Result<Value, String> {
    let output = Command::new("python3")
        .arg(harness.join("scenarios.py"))
        .args(["run", fs, fault, place, &resellers.to_string()])
        .args(["--seed", &seed.to_string(), "--tag", &format!("seed{seed}")])
        .env("WHMTOKEN_BIN", bin.join("convert_accesshash_to_token"))
        .env("FAKE_SERVER_BIN", bin.join("fake-server"))
        .env("FAULTDISK_BIN", daemon)
        .env("FAULT_DIR", out.join("runs"))
        .current_dir(workspace_root())
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).map_err(|e| {
        format!(
            "scenarios.py run {fs} {fault} {place}: no report ({e}): {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )
    })
}

/// The run's counts as one line, and what broke a promise; `explained`: how many users'
/// errors said their line was written and their token not stored.
fn judge(run: &Value, explained: u64) -> (String, Vec<String>) {
    let after = &run["after"];
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let false_imported = n(&after["false_claims"]);
    let torn = n(&after["torn"]) + n(&after["glued"]);
    let extra = n(&after["extra_lines"]);
    let line = format!(
        "exit {}, Imported printed {}, tokens {}, lines {}, false Imported {false_imported}, \
         lines without a token {extra} ({explained} said so), torn {torn}, rerun converged {}",
        run["rc"], run["printed"]["converted"], after["tokens"], after["lines"], run["converged"]
    );
    let mut problems = Vec::new();
    if let Some(error) = run.get("error") {
        problems.push(format!("the harness failed: {error}"));
    }
    if false_imported > 0 {
        problems.push(format!("{false_imported} false Imported"));
    }
    if extra > explained {
        problems.push(format!(
            "{} line(s) for tokens never stored without the user's error saying so",
            extra - explained
        ));
    }
    if torn > 0 {
        problems.push(format!("{torn} torn fragment(s) in accounting.log"));
    }
    (line, problems)
}

//! The checks that install a package, run in a throwaway root: a private mount namespace
//! (`unshare --mount`, which needs root) where `/usr`, `/etc` and `/var` are overlays whose
//! writable layers live on a tmpfs mounted there too. `dpkg -i`, `dpkg -r`/`-P`, and the
//! Ansible role's `apt` install happen in those overlays, see the host's files beneath
//! them, and vanish with the namespace when the checks end (or crash): the host's `/usr`,
//! `/etc` and `/var` are never written.
//!
//! `cargo xtask ci` starts this file's [`run`], which runs xtask again inside the namespace
//! as the hidden task [`TASK`]; that one mounts the overlays ([`enter`]) and runs the
//! checks.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::run;
use crate::target_dir;

/// The hidden task xtask runs inside the namespace.
pub(crate) const TASK: &str = "in-throwaway-root";

/// The folders the overlays cover.
const OVERLAID: [&str; 3] = ["/usr", "/etc", "/var"];

/// Whether this process runs as root (the throwaway root needs it).
pub(crate) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Runs the install checks (`TASK`) in a new mount namespace: the DEB's, and with `role`
/// the Ansible role's.
pub(crate) fn run_checks(role: bool) -> Result<(), String> {
    // This very binary, even if `cargo test` has replaced the file it was started from.
    let xtask = format!("/proc/{}/exe", std::process::id());
    let checks: &[&str] = if role {
        &["deb", "repo", "role"]
    } else {
        &["deb", "repo"]
    };
    run(Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--"])
        .arg(xtask)
        .arg(TASK)
        .args(checks))
}

/// Inside the namespace: a tmpfs in `target/throwaway-root`, and on `/usr`, `/etc` and
/// `/var` overlays writing to it. Refuses to run outside a private mount namespace, where
/// the mounts would be the host's.
pub(crate) fn enter() -> Result<(), String> {
    let own = std::fs::read_link("/proc/self/ns/mnt");
    let init = std::fs::read_link("/proc/1/ns/mnt");
    if own.is_err() || own.as_ref().ok() == init.as_ref().ok() {
        return Err(format!(
            "{TASK} runs only in its own mount namespace (cargo xtask ci starts it with unshare --mount)"
        ));
    }
    let layers = layers_dir();
    std::fs::create_dir_all(&layers).map_err(|e| format!("{}: {e}", layers.display()))?;
    run(Command::new("mount")
        .args(["-t", "tmpfs", "-o", "mode=0755", "throwaway-root"])
        .arg(&layers))?;
    for folder in OVERLAID {
        let name = folder.trim_start_matches('/');
        let upper = layers.join(name).join("upper");
        let work = layers.join(name).join("work");
        for dir in [&upper, &work] {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let options = format!(
            "lowerdir={folder},upperdir={},workdir={}",
            utf8(&upper)?,
            utf8(&work)?
        );
        run(Command::new("mount").args(["-t", "overlay", "overlay", "-o", &options, folder]))?;
    }
    eprintln!(
        "xtask: {} are overlays on a tmpfs of this mount namespace: what the checks install there vanishes with it",
        OVERLAID.join(", ")
    );
    Ok(())
}

/// Where the tmpfs is mounted (inside the namespace; an empty folder outside it).
fn layers_dir() -> PathBuf {
    target_dir().join("throwaway-root")
}

fn utf8(path: &Path) -> Result<&str, String> {
    let text = path
        .to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))?;
    if text.contains([',', ':']) {
        return Err(format!(
            "{text}: a comma or colon cannot be in an overlay's options"
        ));
    }
    Ok(text)
}

//! The system programs some tasks need (gpg, rpm's tools, createrepo_c): installed with
//! apt-get when missing and xtask runs as root (CI, on a fresh Debian machine), else
//! named with the package that has them.

use std::process::{Command, Stdio};

use crate::run;

/// Every program the packaging steps and their checks need, so that `ci` installs them
/// with one `apt-get update`.
pub(crate) const PACKAGING: [(&str, &str); 5] = [
    ("gpg", "gnupg"),
    ("rpmsign", "rpm"),
    ("rpmkeys", "rpm"),
    ("createrepo_c", "createrepo-c"),
    ("man", "man-db"),
];

/// Makes sure each `(program, Debian package)` is on the `PATH`.
pub(crate) fn require(tools: &[(&str, &str)]) -> Result<(), String> {
    let mut missing: Vec<&str> = tools
        .iter()
        .filter(|(program, _)| !on_path(program))
        .map(|(_, package)| *package)
        .collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if !crate::throwaway_root::is_root() || !on_path("apt-get") {
        return Err(format!(
            "missing programs: install them (apt-get install {list}), then run this again"
        ));
    }
    eprintln!("xtask: installing {list} (apt-get)");
    let install = |command: &mut Command| {
        run(command
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null()))
    };
    install(Command::new("apt-get").args(["update", "-qq"]))?;
    install(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing),
    )
}

fn on_path(program: &str) -> bool {
    find(program).is_some()
}

/// Where `program` is on the `PATH`.
pub(crate) fn find(program: &str) -> Option<std::path::PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

//! The third-party HTTP clients the fake WHM's tests drive (`fake-server/tests/serve.rs`),
//! installed before `cargo xtask ci` runs the tests: curl (Debian's package, when it is
//! missing) and pycpanel (PyPI, into a virtualenv in `target/tools/pycpanel`, by
//! `fake-server/tests/pycpanel/install.sh`). A machine without python3 skips the pycpanel
//! tests, which say so.

use std::process::{Command, Stdio};

use crate::{target_dir, workspace_root};

/// Installs what is missing.
pub(crate) fn install() -> Result<(), String> {
    if !works("curl", "--version") {
        eprintln!("xtask: installing curl (apt-get) for the fake WHM's tests");
        run(Command::new("apt-get").arg("update").arg("-qq"))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends", "curl"])
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    if works("python3", "--version") {
        let script = workspace_root().join("fake-server/tests/pycpanel/install.sh");
        run(Command::new("sh")
            .arg(script)
            .arg(target_dir().join("tools/pycpanel")))?;
    } else {
        eprintln!("xtask: python3 is missing: the pycpanel tests will be skipped");
    }
    Ok(())
}

fn works(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run(command: &mut Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    let status = command
        .status()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

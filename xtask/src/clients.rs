//! The third-party HTTP clients the fake WHM's tests drive (`fake-server/tests/serve.rs`),
//! made ready before `cargo xtask ci` runs the tests: curl must be there already (nothing
//! is installed into the machine), and pycpanel comes from PyPI into a virtualenv in
//! `target/tools/pycpanel` (`fake-server/tests/pycpanel/install.sh`). A machine without
//! python3 skips the pycpanel tests, which say so.

use std::process::{Command, Stdio};

use crate::{run, target_dir, workspace_root};

/// Checks that curl is there, and installs pycpanel into `target/tools`.
pub(crate) fn install() -> Result<(), String> {
    if !works("curl", "--version") {
        return Err(
            "the fake WHM's tests drive curl, which is missing: install it \
             (Debian: apt-get install curl)"
                .into(),
        );
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

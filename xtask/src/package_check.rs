//! What CI proves of the packages `cargo xtask dist` made (`cargo xtask ci`):
//!
//! - RPM (read with Debian's `rpm`, never installed): `rpm -qlp` lists exactly the files
//!   the package should hold, `rpm -qp --scripts` is empty (installing runs nothing), and
//!   `/etc/whmtoken.toml` is its one config file.
//! - DEB, on this machine, as root: `dpkg -i`; the installed binaries print their
//!   versions, convert a fake server (`fake-server` of the dist build), and with the
//!   installed all-comments `/etc/whmtoken.toml` fall back to the built-in default;
//!   `dpkg -r` removes every file but the config file, and `dpkg -P` that one too, so that
//!   every path the package holds is as it was before. It refuses to start when `whmtoken`
//!   is already installed or one of its files already exists.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::dist::{
    SERVER_BINARIES, TESTING_BINARY, documented_commands, man_pages, output, package, release_dir,
    run,
};

/// The config file both packages install.
const CONFIG: &str = "/etc/whmtoken.toml";

/// Every file the `whmtoken` packages install: `zsh` is the zsh completion folder, which
/// differs between Debian (`vendor-completions`) and the EL family (`site-functions`).
fn server_files(zsh: &str, licenses: &str) -> BTreeSet<String> {
    let mut files: BTreeSet<String> = SERVER_BINARIES
        .iter()
        .map(|b| format!("/usr/sbin/{b}"))
        .collect();
    for (name, command) in documented_commands() {
        let pages = man_pages(command).expect("man pages render");
        files.extend(
            pages
                .into_iter()
                .map(|(f, _)| format!("/usr/share/man/man8/{f}.gz")),
        );
        files.extend([
            format!("/usr/share/bash-completion/completions/{name}"),
            format!("/usr/share/zsh/{zsh}/_{name}"),
            format!("/usr/share/fish/vendor_completions.d/{name}.fish"),
        ]);
    }
    files.insert(CONFIG.to_owned());
    for doc in ["README.md", "CHANGELOG.md"] {
        files.insert(format!("/usr/share/doc/whmtoken/{doc}"));
    }
    for license in ["LICENSE-MIT", "LICENSE-APACHE"] {
        files.insert(format!("{licenses}/{license}"));
    }
    files
}

pub(crate) fn check() -> Result<(), String> {
    if output(Command::new("id").arg("-u"))?.trim() != "0" {
        return Err("the packages' checks install the DEB: run them as root".into());
    }
    ensure_rpm()?;
    check_rpms()?;
    check_deb()
}

/// Debian's `rpm` reads the RPMs; it is installed with apt-get when missing.
fn ensure_rpm() -> Result<(), String> {
    let found = Command::new("rpm").arg("--version").output();
    if found.is_ok_and(|out| out.status.success()) {
        return Ok(());
    }
    if !Path::new("/usr/bin/apt-get").exists() {
        return Err("rpm is missing: install it (on Debian, the package rpm)".into());
    }
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get").args(["install", "-y", "-qq", "rpm"]))
}

fn check_rpms() -> Result<(), String> {
    let rpm = package("whmtoken", "rpm")?;
    let listed = sorted_lines(&output(Command::new("rpm").arg("-qlp").arg(&rpm))?);
    let expected = server_files("site-functions", "/usr/share/licenses/whmtoken");
    compare(&rpm, &listed, &expected)?;
    let scripts = output(Command::new("rpm").args(["-qp", "--scripts"]).arg(&rpm))?;
    if !scripts.trim().is_empty() {
        return Err(format!(
            "{}: installing should run nothing, but it has scripts:\n{scripts}",
            rpm.display()
        ));
    }
    let config = output(Command::new("rpm").args(["-qp", "--configfiles"]).arg(&rpm))?;
    if config.trim() != CONFIG {
        return Err(format!(
            "{}: config files {config:?}, expected {CONFIG}",
            rpm.display()
        ));
    }
    let testing = package("whmtoken-testing", "rpm")?;
    let listed = sorted_lines(&output(Command::new("rpm").arg("-qlp").arg(&testing))?);
    let expected: BTreeSet<String> = [
        format!("/usr/bin/{TESTING_BINARY}"),
        "/usr/share/licenses/whmtoken-testing/LICENSE-APACHE".into(),
        "/usr/share/licenses/whmtoken-testing/LICENSE-MIT".into(),
    ]
    .into();
    compare(&testing, &listed, &expected)?;
    eprintln!(
        "xtask: {} and {}: the expected files, no scripts, {CONFIG} as config",
        rpm.display(),
        testing.display()
    );
    Ok(())
}

fn compare(
    package: &Path,
    listed: &BTreeSet<String>,
    expected: &BTreeSet<String>,
) -> Result<(), String> {
    if listed == expected {
        return Ok(());
    }
    Err(format!(
        "{} holds unexpected files {:?} and lacks {:?}",
        package.display(),
        listed.difference(expected).collect::<Vec<_>>(),
        expected.difference(listed).collect::<Vec<_>>()
    ))
}

fn check_deb() -> Result<(), String> {
    let deb = package("whmtoken", "deb")?;
    if is_installed()? {
        return Err(
            "whmtoken is already installed here; the check installs and removes it itself: \
             remove it first (dpkg -P whmtoken)"
                .into(),
        );
    }
    let (paths, files) = deb_contents(&deb)?;
    // cargo-deb adds Debian's copyright file.
    let mut expected = server_files("vendor-completions", "/usr/share/doc/whmtoken");
    expected.insert("/usr/share/doc/whmtoken/copyright".into());
    compare(&deb, &files, &expected)?;
    let before: BTreeSet<String> = paths.iter().filter(|p| exists(p)).cloned().collect();
    if let Some(clash) = files.iter().find(|p| exists(p)) {
        return Err(format!(
            "{clash} exists already; the check would overwrite it and then remove it"
        ));
    }
    // Removed whatever happened after `dpkg -i` began.
    let installed = run(Command::new("dpkg").arg("-i").arg(&deb)).and_then(|()| check_installed());
    let removed = remove(&paths, &before);
    installed.and(removed)?;
    eprintln!(
        "xtask: {}: installed, ran, removed (dpkg -r kept only {CONFIG}, dpkg -P removed it), nothing left behind",
        deb.display()
    );
    Ok(())
}

/// What the installed package does.
fn check_installed() -> Result<(), String> {
    for binary in SERVER_BINARIES {
        let version = output(Command::new(format!("/usr/sbin/{binary}")).arg("--version"))?;
        let expected = format!("{binary} (whmtoken) {}", env!("CARGO_PKG_VERSION"));
        if version.trim() != expected {
            return Err(format!(
                "/usr/sbin/{binary} --version: {version:?}, expected {expected:?}"
            ));
        }
    }
    let tree = crate::target_dir().join("dist-check");
    if tree.exists() {
        std::fs::remove_dir_all(&tree).map_err(|e| format!("{}: {e}", tree.display()))?;
    }
    let config = output(
        Command::new(release_dir().join(TESTING_BINARY))
            .args([
                "generate",
                "--resellers",
                "3",
                "--seed",
                "1",
                "--backend",
                "files",
                "--out",
            ])
            .arg(&tree),
    )?;
    let report = output(Command::new("/usr/sbin/convert_accesshash_to_token").args([
        "--json",
        "--all-resellers",
        "--config",
        config.trim(),
    ]))?;
    let report: serde_json::Value =
        serde_json::from_str(&report).map_err(|e| format!("the --json report: {e}"))?;
    if report["summary"]["converted"] != 3 {
        return Err(format!("expected 3 resellers converted: {report}"));
    }
    // The installed /etc/whmtoken.toml is all comments: the built-in default (cPanel's
    // files on /) applies, and this machine is not a cPanel server.
    let out = Command::new("/usr/sbin/convert_accesshash_to_token")
        .arg("--dry-run")
        .env_remove("WHMTOKEN_CONFIG")
        .output()
        .map_err(|e| format!("cannot run the installed converter: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(78) || stderr.contains(CONFIG) {
        return Err(format!(
            "with the installed {CONFIG}, expected the built-in default to be refused on this \
             machine (not a cPanel server, exit 78); got {}: {stderr}",
            out.status
        ));
    }
    eprintln!(
        "xtask: the installed binaries ran; the installed {CONFIG} means the default: {}",
        stderr.trim()
    );
    Ok(())
}

/// `dpkg -r`, then `dpkg -P`, checking what each leaves.
fn remove(paths: &BTreeSet<String>, before: &BTreeSet<String>) -> Result<(), String> {
    run(Command::new("dpkg").args(["-r", "whmtoken"]))?;
    let left: Vec<&String> = paths
        .iter()
        .filter(|p| exists(p) && !before.contains(*p))
        .collect();
    if left != [CONFIG] {
        let _ = run(Command::new("dpkg").args(["-P", "whmtoken"]));
        return Err(format!("dpkg -r left {left:?}; expected only {CONFIG}"));
    }
    run(Command::new("dpkg").args(["-P", "whmtoken"]))?;
    let left: Vec<&String> = paths
        .iter()
        .filter(|p| exists(p) && !before.contains(*p))
        .collect();
    if !left.is_empty() || is_installed()? {
        return Err(format!("dpkg -P left {left:?}"));
    }
    Ok(())
}

pub(crate) fn is_installed() -> Result<bool, String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}", "whmtoken"])
        .output()
        .map_err(|e| format!("cannot run dpkg-query: {e}"))?;
    Ok(out.status.success() && !String::from_utf8_lossy(&out.stdout).contains("not-installed"))
}

/// Every path in a DEB (files and folders), and its files, as absolute paths.
fn deb_contents(deb: &Path) -> Result<(BTreeSet<String>, BTreeSet<String>), String> {
    let listing = output(Command::new("dpkg-deb").arg("-c").arg(deb))?;
    let mut paths = BTreeSet::new();
    let mut files = BTreeSet::new();
    for line in listing.lines() {
        let Some(path) = line.split_whitespace().nth(5) else {
            continue;
        };
        let path = format!("/{}", path.trim_start_matches("./").trim_end_matches('/'));
        if path == "/" {
            continue;
        }
        if !line.starts_with('d') {
            files.insert(path.clone());
        }
        paths.insert(path);
    }
    Ok((paths, files))
}

fn exists(path: &str) -> bool {
    Path::new(path).symlink_metadata().is_ok()
}

/// The non-empty lines of a command's output (such as `rpm -qlp`'s paths), trimmed and
/// sorted.
fn sorted_lines(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

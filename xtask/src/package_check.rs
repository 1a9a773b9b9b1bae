//! What CI proves of the packages `cargo xtask dist` made (`cargo xtask ci`):
//!
//! - What they hold, as any user ([`check_contents`]). RPM (its header read by
//!   `rpm_header`, no `rpm` program needed): exactly the files the package should hold,
//!   owned by root, binaries 0755 and the rest 0644, no install or removal script, and
//!   `/etc/whmtoken.toml` its one config file. DEB (`dpkg-deb`): exactly the files, the
//!   control fields, `/etc/whmtoken.toml` its one conffile, and no maintainer script.
//! - The DEB installed, as root, in the throwaway root (`throwaway_root`:
//!   [`check_install`]): `dpkg -i`; the installed binaries print their versions, convert a
//!   fake server (`fake-server` of the dist build), and with the installed all-comments
//!   `/etc/whmtoken.toml` fall back to the built-in default; `dpkg -r` removes every file
//!   but the config file, and `dpkg -P` that one too, so that every path the package holds
//!   is as it was before. It refuses to start when `whmtoken` is already installed or one
//!   of its files already exists.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::dist::{
    SERVER_BINARIES, TESTING_BINARY, documented_commands, man_pages, package, release_dir,
};
use crate::rpm_header::{FILE_CONFIG, FILE_DOC, FILE_LICENSE, Header, tag};
use crate::{output, run};

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

/// What the packages hold: no root needed.
pub(crate) fn check_contents() -> Result<(), String> {
    let mut expected = server_files("site-functions", "/usr/share/licenses/whmtoken");
    expected.extend(
        [
            "/usr/share/doc/whmtoken",
            "/usr/share/licenses/whmtoken",
            "/usr/share/bash-completion",
            "/usr/share/bash-completion/completions",
            "/usr/share/zsh",
            "/usr/share/zsh/site-functions",
            "/usr/share/fish",
            "/usr/share/fish/vendor_completions.d",
        ]
        .map(String::from),
    );
    check_rpm("whmtoken", &expected, &[CONFIG])?;
    let testing_files: BTreeSet<String> = [
        format!("/usr/bin/{TESTING_BINARY}"),
        "/usr/share/licenses/whmtoken-testing/LICENSE-APACHE".into(),
        "/usr/share/licenses/whmtoken-testing/LICENSE-MIT".into(),
        "/usr/share/licenses/whmtoken-testing".into(),
    ]
    .into();
    check_rpm("whmtoken-testing", &testing_files, &[])?;
    // The DEBs: Debian's copyright file, and the licenses beside the other documents.
    let mut expected = server_files("vendor-completions", "/usr/share/doc/whmtoken");
    expected.insert("/usr/share/doc/whmtoken/copyright".into());
    check_deb("whmtoken", &expected, &[CONFIG])?;
    let expected: BTreeSet<String> = [
        format!("/usr/bin/{TESTING_BINARY}"),
        "/usr/share/doc/whmtoken-testing/LICENSE-APACHE".into(),
        "/usr/share/doc/whmtoken-testing/LICENSE-MIT".into(),
        "/usr/share/doc/whmtoken-testing/copyright".into(),
    ]
    .into();
    check_deb("whmtoken-testing", &expected, &[])
}

/// Whether a path is one of the binaries (mode 0755; everything else is 0644).
fn is_binary(path: &str) -> bool {
    path.starts_with("/usr/sbin/") || path.starts_with("/usr/bin/")
}

/// The RPM `name`: its name and version, exactly the `expected` files and folders (owned
/// by root, with their modes; the folders are those it owns), `config` its config files,
/// licenses marked `%license` and other documents `%doc`, and no script.
fn check_rpm(name: &str, expected: &BTreeSet<String>, config: &[&str]) -> Result<(), String> {
    let rpm = package(name, "rpm")?;
    let header = Header::read(&rpm)?;
    let shown = rpm.display();
    for (tag, value) in [
        (tag::NAME, name),
        (tag::VERSION, env!("CARGO_PKG_VERSION")),
        (tag::RELEASE, "1"),
        (tag::LICENSE, env!("CARGO_PKG_LICENSE")),
        (tag::ARCH, "x86_64"),
    ] {
        if header.string(tag) != Some(value) {
            return Err(format!(
                "{shown}: tag {tag} is {:?}, expected {value:?}",
                header.string(tag)
            ));
        }
    }
    let files = header.files()?;
    let listed: BTreeSet<String> = files.iter().map(|f| f.path.clone()).collect();
    compare(&rpm, &listed, expected)?;
    for file in &files {
        let mode = if file.mode & 0o170_000 == 0o040_000 {
            0o040_755
        } else if is_binary(&file.path) {
            0o100_755
        } else {
            0o100_644
        };
        if file.mode != mode || file.owner != ("root".into(), "root".into()) {
            return Err(format!(
                "{shown}: {} has mode {:o} and owner {:?}, expected {mode:o} and root",
                file.path, file.mode, file.owner
            ));
        }
    }
    let configs: Vec<&str> = files
        .iter()
        .filter(|f| f.flags & FILE_CONFIG != 0)
        .map(|f| f.path.as_str())
        .collect();
    if configs != config {
        return Err(format!(
            "{shown}: config files {configs:?}, expected {config:?}"
        ));
    }
    for file in files.iter().filter(|f| f.mode & 0o170_000 == 0o100_000) {
        let marked = |flag: u64| file.flags & flag == flag;
        let license = file.path.starts_with("/usr/share/licenses/");
        let doc =
            file.path.starts_with("/usr/share/doc/") || file.path.starts_with("/usr/share/man/");
        if marked(FILE_LICENSE) != license || marked(FILE_DOC) != doc {
            return Err(format!(
                "{shown}: {} has file flags {:#x}: a license should be %license (0x80) alone, \
                 documentation %doc (0x2)",
                file.path, file.flags
            ));
        }
    }
    let scripts = header.scripts();
    if !scripts.is_empty() {
        return Err(format!(
            "{shown}: installing should run nothing, but it has scripts (tags {scripts:?})"
        ));
    }
    eprintln!("xtask: {shown}: the expected files and modes, no scripts, config files {config:?}");
    Ok(())
}

/// The DEB `name`: exactly the `expected` files (owned by root, with their modes), its
/// control fields, `conffiles` its conffiles, and no maintainer script.
fn check_deb(name: &str, expected: &BTreeSet<String>, conffiles: &[&str]) -> Result<(), String> {
    let deb = package(name, "deb")?;
    let shown = deb.display();
    let (_, files) = deb_contents(&deb)?;
    compare(&deb, &files, expected)?;
    // `-rwxr-xr-x 0/0   5497256 2026-12-04 00:00 ./usr/sbin/whmtoken`: modes and owners.
    let listing = output(Command::new("dpkg-deb").arg("--contents").arg(&deb))?;
    for line in listing.lines().filter(|l| !l.starts_with('d')) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let path = words.last().map_or("", |p| p.trim_start_matches('.'));
        let mode = if is_binary(path) {
            "-rwxr-xr-x"
        } else {
            "-rw-r--r--"
        };
        if words.first() != Some(&mode) || !matches!(words.get(1), Some(&("0/0" | "root/root"))) {
            return Err(format!("{shown}: {line:?}: expected {mode} and owner root"));
        }
    }
    let control = output(Command::new("dpkg-deb").arg("--info").arg(&deb))?;
    // The control archive's members: `   19 bytes,   1 lines   [*]  NAME   …`.
    let members: Vec<&str> = control
        .lines()
        .filter(|l| l.contains(" bytes, "))
        .filter_map(|l| l.split_whitespace().skip(4).find(|w| *w != "*"))
        .collect();
    let scripts = [
        "preinst", "postinst", "prerm", "postrm", "config", "triggers",
    ];
    if let Some(script) = members.iter().find(|m| scripts.contains(m)) {
        return Err(format!(
            "{shown}: installing should run nothing, but it has {script}"
        ));
    }
    let field = |key: &str| {
        output(
            Command::new("dpkg-deb")
                .args(["--field"])
                .arg(&deb)
                .arg(key),
        )
    };
    let version = format!("{}-1", env!("CARGO_PKG_VERSION"));
    for (key, value) in [
        ("Package", name),
        ("Version", &version),
        ("Architecture", "amd64"),
        ("Depends", "libc6 (>= 2.17)"),
    ] {
        let found = field(key)?;
        if found.trim() != value {
            return Err(format!(
                "{shown}: {key} is {:?}, expected {value:?}",
                found.trim()
            ));
        }
    }
    let listed = if members.contains(&"conffiles") {
        output(
            Command::new("dpkg-deb")
                .args(["--info"])
                .arg(&deb)
                .arg("conffiles"),
        )?
    } else {
        String::new()
    };
    let listed: Vec<&str> = listed.lines().collect();
    if listed != conffiles {
        return Err(format!(
            "{shown}: conffiles {listed:?}, expected {conffiles:?}"
        ));
    }
    eprintln!("xtask: {shown}: the expected files and fields, no scripts, conffiles {conffiles:?}");
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

/// The DEB installed with `dpkg -i`, run, and removed with `dpkg -r` and `dpkg -P`, in
/// the root this runs in (the throwaway root: `throwaway_root`).
pub(crate) fn check_install() -> Result<(), String> {
    let deb = package("whmtoken", "deb")?;
    if is_installed()? {
        return Err(
            "whmtoken is already installed here; the check installs and removes it itself: \
             remove it first (dpkg -P whmtoken)"
                .into(),
        );
    }
    let (paths, files) = deb_contents(&deb)?;
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

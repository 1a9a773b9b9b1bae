//! What CI proves of the signed packages and repositories (`repo`), and of the RPM's
//! removal:
//!
//! - [`check_rpm_signatures`] (any user): `rpmkeys --checksig` passes on each RPM with the
//!   project's key imported into a database of its own, and fails without the key and on a
//!   copy with one byte of its payload changed.
//! - [`check_rpm_erase`] (root): the RPM installed with `rpm --root` into an empty folder
//!   and erased: nothing of the package is left, only the system's folders (which the EL
//!   family's `filesystem` package owns) and rpm's database.
//! - [`check_apt_repository`] (root, in the throwaway root): `apt-get` reads only the
//!   repository (its own lists, `signed-by` the project's key), installs `whmtoken` from it
//!   (the release build's bytes), and refuses a repository whose package, `Packages` or
//!   signed `InRelease` was changed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::dist::{SERVER_BINARIES, package, release_dir};
use crate::repo::{public_key, repo_dir};
use crate::{run, target_dir};

/// `rpmkeys --checksig` on each RPM: passes with the key, fails without it, and fails
/// on a tampered copy.
pub(crate) fn check_rpm_signatures() -> Result<(), String> {
    crate::tools::require(&[("rpmkeys", "rpm")])?;
    let work = fresh(&target_dir().join("dist-check-signatures"))?;
    let db = work.join("rpmdb");
    std::fs::create_dir_all(&db).map_err(|e| format!("{}: {e}", db.display()))?;
    let checksig = |rpm: &Path| {
        Command::new("rpmkeys")
            .arg("--dbpath")
            .arg(&db)
            .args(["--checksig", "--verbose"])
            .arg(rpm)
            .output()
            .map_err(|e| format!("cannot run rpmkeys: {e}"))
    };
    let rpms = [
        package("whmtoken", "rpm")?,
        package("whmtoken-testing", "rpm")?,
    ];
    let unknown = checksig(&rpms[0])?;
    if unknown.status.success() {
        return Err(format!(
            "{}: rpmkeys --checksig passed with no key imported: is it signed at all?",
            rpms[0].display()
        ));
    }
    run(Command::new("rpmkeys")
        .arg("--dbpath")
        .arg(&db)
        .arg("--import")
        .arg(public_key()))?;
    for rpm in &rpms {
        let checked = checksig(rpm)?;
        let text = String::from_utf8_lossy(&checked.stdout);
        if !checked.status.success() || !text.contains("Header V4 RSA/SHA256 Signature") {
            return Err(format!(
                "{}: rpmkeys --checksig with the project's key: {}\n{text}",
                rpm.display(),
                checked.status
            ));
        }
    }
    let tampered = work.join("tampered.rpm");
    let mut bytes = std::fs::read(&rpms[0]).map_err(|e| format!("{}: {e}", rpms[0].display()))?;
    let at = bytes.len() - 100;
    bytes[at] ^= 0x01;
    std::fs::write(&tampered, &bytes).map_err(|e| format!("{}: {e}", tampered.display()))?;
    if checksig(&tampered)?.status.success() {
        return Err(format!(
            "{}: one byte of the payload changed, and rpmkeys --checksig still passed",
            tampered.display()
        ));
    }
    eprintln!(
        "xtask: the RPMs' signatures check with the project's key (rpmkeys --checksig), and fail \
         without it and on a tampered copy"
    );
    Ok(())
}

/// The system's folders: on the EL family the `filesystem` package owns them, so the
/// RPM need not; `rpm --root` makes them in an empty root and `rpm -e` leaves them.
const SYSTEM_FOLDERS: [&str; 12] = [
    "/etc",
    "/usr",
    "/usr/bin",
    "/usr/sbin",
    "/usr/share",
    "/usr/share/doc",
    "/usr/share/licenses",
    "/usr/share/man",
    "/usr/share/man/man8",
    "/var",
    "/var/lib",
    "/var/lib/rpm",
];

/// Each RPM installed into an empty root with `rpm --root`, then erased: only the system's
/// folders and rpm's database are left.
pub(crate) fn check_rpm_erase() -> Result<(), String> {
    for name in ["whmtoken", "whmtoken-testing"] {
        let rpm = package(name, "rpm")?;
        let root = fresh(&target_dir().join("dist-check-rpm-root"))?;
        let rpm_in = |args: &[&str]| {
            run(Command::new("rpm")
                .arg("--root")
                .arg(&root)
                .args(["--dbpath", "/var/lib/rpm"])
                .args(args))
        };
        rpm_in(&["--initdb"])?;
        rpm_in(&["--import", &utf8(&public_key())?])?;
        // Debian's rpm refuses to install without --force-debian, which others lack.
        let help = crate::output(Command::new("rpm").args(["-i", "--help"]))?;
        let debian: &[&str] = if help.contains("--force-debian") {
            &["--force-debian"]
        } else {
            &[]
        };
        rpm_in(&[&["-i", "--nodeps"][..], debian, &[&utf8(&rpm)?]].concat())?;
        let installed = paths_under(&root)?;
        if !installed.contains("/etc/whmtoken.toml") && name == "whmtoken" {
            return Err(format!(
                "{}: rpm -i installed no config file",
                rpm.display()
            ));
        }
        rpm_in(&["-e", name])?;
        let left: Vec<String> = paths_under(&root)?
            .into_iter()
            .filter(|p| !SYSTEM_FOLDERS.contains(&p.as_str()) && !p.starts_with("/var/lib/rpm/"))
            .collect();
        if !left.is_empty() {
            return Err(format!(
                "{}: rpm -e left {left:?} in {} (a folder the package made but does not own?)",
                rpm.display(),
                root.display()
            ));
        }
    }
    eprintln!(
        "xtask: each RPM installed with rpm --root and erased: nothing of it left (its %license \
         files and its own folders included)"
    );
    Ok(())
}

/// Every path under `root`, as absolute paths inside it.
fn paths_under(root: &Path) -> Result<BTreeSet<String>, String> {
    let mut paths = BTreeSet::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
            let inside = path.strip_prefix(root).expect("under the root");
            paths.insert(format!("/{}", inside.display()));
            if path.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                pending.push(path);
            }
        }
    }
    Ok(paths)
}

/// apt-get, reading only the repository in `repo` (a `deb` folder) with lists and caches
/// of its own in `work`, installing into the root this runs in (the throwaway root).
struct Apt {
    work: PathBuf,
}

impl Apt {
    fn new(work: &Path, repo: &Path) -> Result<Self, String> {
        let work = fresh(work)?;
        for dir in ["lists/partial", "archives/partial", "parts"] {
            let dir = work.join(dir);
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let source = format!(
            "deb [signed-by={}] file:{} ./\n",
            utf8(&public_key())?,
            utf8(repo)?
        );
        let list = work.join("sources.list");
        std::fs::write(&list, source).map_err(|e| format!("{}: {e}", list.display()))?;
        Ok(Self { work })
    }

    fn run(&self, args: &[&str]) -> Result<(bool, String), String> {
        let at = |name: &str| self.work.join(name).display().to_string();
        let options = [
            format!("Dir::Etc::SourceList={}", at("sources.list")),
            format!("Dir::Etc::SourceParts={}", at("parts")),
            format!("Dir::State::Lists={}", at("lists")),
            format!("Dir::Cache::Archives={}", at("archives")),
            "Dir::Cache::pkgcache=".into(),
            "Dir::Cache::srcpkgcache=".into(),
            "APT::Sandbox::User=root".into(),
        ];
        let mut command = Command::new("apt-get");
        for option in &options {
            command.args(["-o", option]);
        }
        let out = command
            .args(["-y", "--no-install-recommends"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .map_err(|e| format!("cannot run apt-get: {e}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok((out.status.success(), text))
    }

    /// `apt-get update`, then `apt-get install whmtoken`: whether both succeeded.
    fn update_and_install(&self) -> Result<(bool, String), String> {
        let (updated, mut text) = self.run(&["update"])?;
        if !updated || text.contains("W: ") {
            return Ok((false, text));
        }
        let (installed, more) = self.run(&["install", "whmtoken"])?;
        text.push_str(&more);
        Ok((installed, text))
    }
}

/// In the throwaway root: `whmtoken` installed from the signed apt repository, and refused
/// from copies of it with a byte of the package, `Packages` or `InRelease` changed.
pub(crate) fn check_apt_repository() -> Result<(), String> {
    if crate::package_check::is_installed()? {
        return Err(
            "whmtoken is already installed here: remove it first (dpkg -P whmtoken)".into(),
        );
    }
    let work = target_dir().join("dist-check-apt");
    let deb_repo = repo_dir().join("deb");
    let (installed, text) = Apt::new(&work.join("signed"), &deb_repo)?.update_and_install()?;
    if !installed {
        return Err(format!(
            "apt-get from the signed repository failed:\n{text}"
        ));
    }
    for binary in SERVER_BINARIES {
        let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        if read(&Path::new("/usr/sbin").join(binary))? != read(&release_dir().join(binary))? {
            return Err(format!("/usr/sbin/{binary} is not the release build's"));
        }
    }
    run(Command::new("dpkg").args(["-P", "whmtoken"]))?;
    let deb = package("whmtoken", "deb")?;
    let deb_name = deb.file_name().and_then(|n| n.to_str()).unwrap_or("");
    // What apt says when it refuses each: a digest or size that does not match what the
    // signed index lists, or a signature that does not verify.
    for (what, file, reasons) in [
        (
            "the package",
            deb_name,
            &["Hash Sum mismatch", "Size mismatch"][..],
        ),
        (
            "Packages and Packages.gz",
            "Packages",
            &["Hash Sum mismatch", "File has unexpected size"][..],
        ),
        (
            "InRelease",
            "InRelease",
            &["BADSIG", "signatures were invalid", "is not signed"][..],
        ),
    ] {
        let copy = fresh(&work.join(format!("tampered-{file}")))?;
        for entry in
            std::fs::read_dir(&deb_repo).map_err(|e| format!("{}: {e}", deb_repo.display()))?
        {
            let path = entry.map_err(|e| e.to_string())?.path();
            let name = path.file_name().expect("a file");
            std::fs::copy(&path, copy.join(name))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        tamper(&copy, file)?;
        let apt = Apt::new(&work.join(format!("apt-{file}")), &copy)?;
        let (installed, text) = apt.update_and_install()?;
        if installed || crate::package_check::is_installed()? {
            let _ = run(Command::new("dpkg").args(["-P", "whmtoken"]));
            return Err(format!(
                "apt-get installed whmtoken from a repository whose {what} was changed:\n{text}"
            ));
        }
        if !reasons.iter().any(|r| text.contains(r)) {
            return Err(format!(
                "apt-get refused a repository whose {what} was changed, but not saying \
                 {reasons:?}:\n{text}"
            ));
        }
        let reason = reasons.iter().find(|r| text.contains(**r)).expect("found");
        eprintln!("xtask: {what} changed: apt-get refused it ({reason})");
    }
    eprintln!(
        "xtask: apt-get installed whmtoken from the signed repository (the release build's \
         bytes), and refused copies with a changed package, Packages or InRelease"
    );
    Ok(())
}

/// Changes `file` in the repository copy `folder`: a byte of a package's data; a word of
/// `Packages`' description (and `Packages.gz` made again from it); a word of
/// `InRelease`'s signed text (its description).
fn tamper(folder: &Path, file: &str) -> Result<(), String> {
    let path = folder.join(file);
    let mut bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if file.ends_with(".deb") {
        let at = bytes.len() - 200;
        bytes[at] ^= 0x01;
    } else {
        let text = String::from_utf8(bytes).map_err(|_| format!("{file} is not text"))?;
        let changed = text.replacen("Description: ", "Description: tampered ", 1);
        if changed == text {
            return Err(format!("{file}: nothing to change"));
        }
        bytes = changed.into_bytes();
    }
    std::fs::write(&path, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    if file == "Packages" {
        use std::io::Write as _;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let gz = gz
            .write_all(&bytes)
            .and_then(|()| gz.finish())
            .map_err(|e| format!("gzip: {e}"))?;
        let path = folder.join("Packages.gz");
        std::fs::write(&path, gz).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// `dir`, emptied (or made).
fn fresh(dir: &Path) -> Result<PathBuf, String> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir.to_owned())
}

fn utf8(path: &Path) -> Result<String, String> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))
}

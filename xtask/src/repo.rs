//! The packages signed, and laid out as repositories in `target/dist/repo/` (`cargo xtask
//! dist`):
//!
//! - `whmtoken.asc`: the project's public key, which every signature below is made with.
//! - `rpm/`: the RPMs, each signed with rpm's own signature (`rpmsign --addsign`: an
//!   OpenPGP signature of the header, which holds the payload's digest), and `repodata/`
//!   made by `createrepo_c`, its `repomd.xml` signed too (`repomd.xml.asc`). The RPMs in
//!   `target/dist/` are the same signed files.
//! - `deb/`: a flat apt repository (`deb [signed-by=…/whmtoken.asc] URL/deb ./`): the DEBs,
//!   `Packages` and `Packages.gz` written here, and `Release` with their sizes and digests,
//!   signed with gpg both inline (`InRelease`) and detached (`Release.gpg`).
//!
//! The key: the armored secret key in `$WHMTOKEN_SIGNING_KEY`, or in the file
//! `$WHMTOKEN_SIGNING_KEY_FILE` names (no passphrase: dist runs unattended). Without
//! either, a throwaway key is made for this build, and said so: CI signs with one. gpg
//! runs with its own home in `target/dist-gnupg`, made afresh each time, so the packager's
//! own keyring is never read or written. gpg, rpmsign (the `rpm` package) and
//! createrepo_c (`createrepo-c`) are installed with apt-get when missing and run as root
//! (CI), else named.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{output, run, target_dir};

/// The name the packages and the throwaway key carry: the project's.
pub(crate) const SIGNER: &str = "whmtoken project <packaging@whmtoken.invalid>";

/// The programs signing needs: (program, Debian package).
const TOOLS: [(&str, &str); 3] = [
    ("gpg", "gnupg"),
    ("rpmsign", "rpm"),
    ("createrepo_c", "createrepo-c"),
];

/// Where the repositories go: `repo/` beside the packages in `target/dist/`.
pub(crate) fn repo_dir() -> PathBuf {
    target_dir().join("dist").join("repo")
}

/// The project's public key beside the repositories.
pub(crate) fn public_key() -> PathBuf {
    repo_dir().join("whmtoken.asc")
}

/// Signs the `packages` (in place for the RPMs) and lays out the repositories.
pub(crate) fn sign_and_publish(packages: &[PathBuf]) -> Result<(), String> {
    crate::tools::require(&TOOLS)?;
    let gpg = Gpg::with_key()?;
    let repo = repo_dir();
    for folder in [repo.join("rpm"), repo.join("deb")] {
        std::fs::create_dir_all(&folder).map_err(|e| format!("{}: {e}", folder.display()))?;
    }
    let key = output(
        gpg.command()
            .args(["--armor", "--export", &gpg.fingerprint]),
    )?;
    write(&public_key(), key.as_bytes())?;
    for rpm in packages.iter().filter(|p| has_extension(p, "rpm")) {
        gpg.sign_rpm(rpm)?;
        copy_into(rpm, &repo.join("rpm"))?;
    }
    run(Command::new("createrepo_c")
        .args(["--quiet", "--no-database"])
        .arg(repo.join("rpm")))?;
    gpg.detach_sign(&repo.join("rpm/repodata/repomd.xml"), "repomd.xml.asc")?;
    let debs: Vec<&PathBuf> = packages
        .iter()
        .filter(|p| has_extension(p, "deb"))
        .collect();
    for deb in &debs {
        copy_into(deb, &repo.join("deb"))?;
    }
    write_apt_indexes(&repo.join("deb"), &debs)?;
    gpg.sign_release(&repo.join("deb"))?;
    eprintln!(
        "xtask: signed with key {}; the repositories and the public key are in {}",
        gpg.fingerprint,
        repo.display()
    );
    Ok(())
}

/// gpg with a home of its own holding one secret key.
struct Gpg {
    home: PathBuf,
    fingerprint: String,
}

impl Gpg {
    /// The packager's key (`$WHMTOKEN_SIGNING_KEY`, `$WHMTOKEN_SIGNING_KEY_FILE`), or a
    /// throwaway one.
    fn with_key() -> Result<Self, String> {
        let home = target_dir().join("dist-gnupg");
        if home.exists() {
            stop_agent(&home);
            std::fs::remove_dir_all(&home).map_err(|e| format!("{}: {e}", home.display()))?;
        }
        std::fs::create_dir_all(&home).map_err(|e| format!("{}: {e}", home.display()))?;
        std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(|e| format!("{}: {e}", home.display()))?;
        let mut gpg = Self {
            home,
            fingerprint: String::new(),
        };
        let given = std::env::var_os("WHMTOKEN_SIGNING_KEY").filter(|k| !k.is_empty());
        let file = std::env::var_os("WHMTOKEN_SIGNING_KEY_FILE").filter(|k| !k.is_empty());
        match (given, file) {
            (Some(key), _) => {
                let path = gpg.home.join("given.asc");
                write(&path, key.as_encoded_bytes())?;
                gpg.import(&path, "$WHMTOKEN_SIGNING_KEY")?;
            }
            (None, Some(file)) => {
                gpg.import(Path::new(&file), &format!("{}", Path::new(&file).display()))?
            }
            (None, None) => {
                run(gpg.command().args([
                    "--passphrase",
                    "",
                    "--quick-generate-key",
                    &SIGNER.replace(" <", " (throwaway key of one build) <"),
                    "rsa3072",
                    "sign",
                    "2d",
                ]))?;
                gpg.fingerprint = gpg.secret_fingerprint()?;
                eprintln!(
                    "xtask: no WHMTOKEN_SIGNING_KEY or WHMTOKEN_SIGNING_KEY_FILE: signing with a \
                     throwaway key made for this build ({}), which no server trusts: give the \
                     project's key to sign a release",
                    gpg.fingerprint
                );
                return Ok(gpg);
            }
        }
        gpg.fingerprint = gpg.secret_fingerprint()?;
        Ok(gpg)
    }

    fn command(&self) -> Command {
        let mut command = Command::new("gpg");
        command.arg("--homedir").arg(&self.home).args([
            "--batch",
            "--quiet",
            "--pinentry-mode",
            "loopback",
        ]);
        command
    }

    fn import(&self, key: &Path, named: &str) -> Result<(), String> {
        run(self.command().arg("--import").arg(key))
            .map_err(|e| format!("the signing key in {named}: {e}"))
    }

    /// The fingerprint of the one secret key.
    fn secret_fingerprint(&self) -> Result<String, String> {
        let listing = output(self.command().args(["--with-colons", "--list-secret-keys"]))?;
        // `sec:…` then its `fpr:::::::::FINGERPRINT:`; subkeys' fingerprints come later.
        let fingerprints: Vec<&str> = listing
            .lines()
            .filter_map(|l| l.strip_prefix("fpr:"))
            .filter_map(|l| l.split(':').nth(8))
            .collect();
        match fingerprints.first() {
            Some(fpr) if listing.lines().filter(|l| l.starts_with("sec:")).count() == 1 => {
                Ok((*fpr).to_owned())
            }
            _ => Err(format!(
                "the signing key: expected one secret key, found {}",
                listing.lines().filter(|l| l.starts_with("sec:")).count()
            )),
        }
    }

    /// rpm's own signature, added to the file in place.
    fn sign_rpm(&self, rpm: &Path) -> Result<(), String> {
        let home = self.home.to_str().ok_or("the gpg home is not UTF-8")?;
        // rpm's own idea of gpg's path differs between distributions (gpg2 on Debian's).
        let gpg = crate::tools::find("gpg").ok_or("gpg is not on the PATH")?;
        let gpg = gpg.to_str().ok_or("gpg's path is not UTF-8")?;
        run(Command::new("rpmsign")
            .args(["--define", &format!("__gpg {gpg}")])
            .args(["--define", &format!("_gpg_name {}", self.fingerprint)])
            .args(["--define", &format!("_gpg_path {home}")])
            .args(["--define", "_gpg_digest_algo sha256"])
            .arg("--addsign")
            .arg(rpm))
    }

    /// A detached signature of `file`, beside it as `name`: armored when `name` ends in
    /// `.asc`, else binary (as apt's `Release.gpg` is).
    fn detach_sign(&self, file: &Path, name: &str) -> Result<(), String> {
        let signature = file.with_file_name(name);
        let armor: &[&str] = if name.ends_with(".asc") {
            &["--armor"]
        } else {
            &[]
        };
        run(self
            .command()
            .args(["--local-user", &self.fingerprint, "--digest-algo", "SHA256"])
            .args(armor)
            .args(["--detach-sign", "--output"])
            .arg(&signature)
            .arg(file))
    }

    /// `InRelease` (signed inline) and `Release.gpg` (detached) of `folder/Release`.
    fn sign_release(&self, folder: &Path) -> Result<(), String> {
        let release = folder.join("Release");
        run(self
            .command()
            .args(["--local-user", &self.fingerprint, "--digest-algo", "SHA256"])
            .args(["--clearsign", "--output"])
            .arg(folder.join("InRelease"))
            .arg(&release))?;
        self.detach_sign(&release, "Release.gpg")
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        stop_agent(&self.home);
    }
}

/// Stops the gpg-agent that gpg started for the home `home`, if any.
fn stop_agent(home: &Path) {
    let _ = Command::new("gpgconf")
        .arg("--homedir")
        .arg(home)
        .args(["--kill", "all"])
        .status();
}

/// `Packages`, `Packages.gz` and `Release` of the flat apt repository in `folder`.
fn write_apt_indexes(folder: &Path, debs: &[&PathBuf]) -> Result<(), String> {
    let mut packages = String::new();
    for deb in debs {
        let control = output(Command::new("dpkg-deb").arg("--field").arg(deb))?;
        let bytes = std::fs::read(deb).map_err(|e| format!("{}: {e}", deb.display()))?;
        let name = deb
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or("a package has a name")?;
        packages.push_str(control.trim_end());
        packages.push_str(&format!(
            "\nFilename: ./{name}\nSize: {}\nSHA256: {}\n\n",
            bytes.len(),
            sha256_hex(&bytes)
        ));
    }
    let gz = {
        use std::io::Write as _;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(packages.as_bytes())
            .and_then(|()| gz.finish())
            .map_err(|e| format!("gzip: {e}"))?
    };
    write(&folder.join("Packages"), packages.as_bytes())?;
    write(&folder.join("Packages.gz"), &gz)?;
    let date = output(Command::new("date").args(["-u", "-R"]))?;
    let mut release = format!(
        "Origin: whmtoken project\nLabel: whmtoken\nArchitectures: amd64\nDate: {}\n\
         Description: whmtoken's packages, signed by the whmtoken project\nSHA256:\n",
        date.trim().replace("+0000", "UTC")
    );
    for (index, bytes) in [("Packages", packages.as_bytes()), ("Packages.gz", &gz)] {
        release.push_str(&format!(" {} {} {index}\n", sha256_hex(bytes), bytes.len()));
    }
    write(&folder.join("Release"), release.as_bytes())
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn has_extension(path: &Path, extension: &str) -> bool {
    path.extension().is_some_and(|x| x == extension)
}

fn copy_into(file: &Path, folder: &Path) -> Result<(), String> {
    let name = file.file_name().ok_or("a package has a name")?;
    std::fs::copy(file, folder.join(name))
        .map(drop)
        .map_err(|e| format!("{} into {}: {e}", file.display(), folder.display()))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

//! The DEB and RPM packages, made here with library crates (no packaging tool to install):
//! from each packaged crate's `Cargo.toml`, its `[package.metadata.deb]` (name,
//! maintainer, copyright, extended description, section, priority, depends, assets) and
//! `[package.metadata.generate-rpm]` (name, summary, assets with their modes and `config`
//! and `doc` flags), the keys cargo-deb and cargo-generate-rpm read, with the same meaning.
//!
//! - DEB: an `ar` archive (written here: a header line per member) of `debian-binary`,
//!   `control.tar.gz` (`control`, and `conffiles` naming every file under `/etc`) and
//!   `data.tar.gz` (the assets with their folders, owned by root, plus
//!   `/usr/share/doc/NAME/copyright`); tar and ar written here, gzip by `flate2`. No
//!   maintainer script.
//! - RPM: the `rpm` crate, gzip payload, requiring `/bin/sh` and the shared libraries and
//!   symbol versions the binaries need (read with `objdump -p`). No script.
//!
//! Every file's time is the `SOURCE_DATE_EPOCH` if set, else the build's: one time for all.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::output;

/// One file of a package: where it comes from, where it goes, its mode and flags.
#[derive(Clone, Debug)]
struct Asset {
    source: PathBuf,
    dest: String,
    mode: u32,
    config: bool,
    marked: Marked,
}

/// What an RPM marks a file as: documentation (`%doc`, `doc = true`), a license
/// (`%license`, `license = true`: installed even with `--nodocs`), or neither.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Marked {
    Plain,
    Doc,
    License,
}

/// A packaged crate's metadata.
struct Metadata {
    folder: PathBuf,
    /// Where the release binaries are (`target/release/…` in the metadata).
    release: PathBuf,
    crate_name: String,
    description: String,
    deb: toml::Table,
    rpm: toml::Table,
}

impl Metadata {
    fn read(folder: &Path, release: &Path) -> Result<Self, String> {
        let manifest = folder.join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest)
            .map_err(|e| format!("{}: {e}", manifest.display()))?;
        let toml: toml::Table = text
            .parse()
            .map_err(|e| format!("{}: {e}", manifest.display()))?;
        let package = toml.get("package").and_then(toml::Value::as_table);
        let field = |key: &str| {
            package
                .and_then(|p| p.get(key))
                .and_then(toml::Value::as_str)
                .ok_or_else(|| format!("{}: no package.{key}", manifest.display()))
        };
        let metadata = |key: &str| {
            package
                .and_then(|p| p.get("metadata"))
                .and_then(|m| m.get(key))
                .and_then(toml::Value::as_table)
                .cloned()
                .ok_or_else(|| format!("{}: no [package.metadata.{key}]", manifest.display()))
        };
        Ok(Self {
            folder: folder.to_owned(),
            release: release.to_owned(),
            crate_name: field("name")?.to_owned(),
            description: field("description")?.to_owned(),
            deb: metadata("deb")?,
            rpm: metadata("generate-rpm")?,
        })
    }

    fn deb_str(&self, key: &str) -> Result<&str, String> {
        text(&self.deb, key, "deb")
    }

    /// The DEB's assets, globs expanded, each destination a full path.
    fn deb_assets(&self) -> Result<Vec<Asset>, String> {
        let list = self.deb.get("assets").and_then(toml::Value::as_array);
        let mut assets = Vec::new();
        for entry in list.ok_or("[package.metadata.deb] has no assets")? {
            let fields: Vec<&str> = entry
                .as_array()
                .map(|a| a.iter().filter_map(toml::Value::as_str).collect())
                .unwrap_or_default();
            let [source, dest, mode] = fields[..] else {
                return Err(format!("a DEB asset is not [source, dest, mode]: {entry}"));
            };
            let dest = format!("/{dest}");
            let config = dest.starts_with("/etc/");
            assets.extend(self.expand(source, &dest, mode, config, Marked::Plain)?);
        }
        Ok(assets)
    }

    /// The RPM's assets, globs expanded.
    fn rpm_assets(&self) -> Result<Vec<Asset>, String> {
        let list = self.rpm.get("assets").and_then(toml::Value::as_array);
        let mut assets = Vec::new();
        for entry in list.ok_or("[package.metadata.generate-rpm] has no assets")? {
            let table = entry
                .as_table()
                .ok_or_else(|| format!("an RPM asset is not a table: {entry}"))?;
            let (source, dest, mode) = (
                text(table, "source", "RPM asset")?,
                text(table, "dest", "RPM asset")?,
                text(table, "mode", "RPM asset")?,
            );
            let config = table.contains_key("config");
            let flag = |key: &str| table.get(key).and_then(toml::Value::as_bool) == Some(true);
            let marked = match (flag("doc"), flag("license")) {
                (false, false) => Marked::Plain,
                (true, false) => Marked::Doc,
                (false, true) => Marked::License,
                (true, true) => return Err(format!("{dest}: both doc and license")),
            };
            assets.extend(self.expand(source, dest, mode, config, marked)?);
        }
        Ok(assets)
    }

    /// The folders the RPM owns (`dirs`): those its files create that no system package
    /// owns, so that `rpm -e` removes them.
    fn rpm_folders(&self) -> Result<Vec<&str>, String> {
        let list = self.rpm.get("dirs").and_then(toml::Value::as_array);
        list.ok_or("[package.metadata.generate-rpm] has no dirs")?
            .iter()
            .map(|d| {
                d.as_str()
                    .ok_or_else(|| format!("an RPM folder is not a string: {d}"))
            })
            .collect()
    }

    /// The files `source` names (its last part may be a `*` glob), going to `dest` (a
    /// folder when it ends with `/`). `target/release/` means the release build's folder.
    fn expand(
        &self,
        source: &str,
        dest: &str,
        mode: &str,
        config: bool,
        marked: Marked,
    ) -> Result<Vec<Asset>, String> {
        let mode = u32::from_str_radix(mode, 8).map_err(|e| format!("mode {mode}: {e}"))?;
        let source = match source.strip_prefix("target/release/") {
            Some(rest) => self.release.join(rest),
            None => self.folder.join(source),
        };
        let name = source
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("{}: no file name", source.display()))?;
        let sources = match name.split_once('*') {
            None => vec![source.clone()],
            Some((prefix, suffix)) => {
                let dir = source.parent().expect("a file in a folder");
                let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
                    .map_err(|e| format!("{}: {e}", dir.display()))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        p.is_file()
                            && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                                n.len() >= prefix.len() + suffix.len()
                                    && n.starts_with(prefix)
                                    && n.ends_with(suffix)
                            })
                    })
                    .collect();
                found.sort();
                if found.is_empty() {
                    return Err(format!("{}: matches no file", source.display()));
                }
                found
            }
        };
        sources
            .into_iter()
            .map(|source| {
                let file = source.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let dest = match dest.strip_suffix('/') {
                    Some(folder) => format!("{folder}/{file}"),
                    None => dest.to_owned(),
                };
                Ok(Asset {
                    source,
                    dest,
                    mode,
                    config,
                    marked,
                })
            })
            .collect()
    }
}

fn text<'a>(table: &'a toml::Table, key: &str, what: &str) -> Result<&'a str, String> {
    table
        .get(key)
        .and_then(toml::Value::as_str)
        .ok_or_else(|| format!("{what}: no {key}"))
}

/// The time every file and the packages are dated with.
fn timestamp() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        })
}

/// Makes the DEB and the RPM of the crate in `folder`, with the release binaries in
/// `release`, in `out`; returns their paths.
pub(crate) fn build(folder: &Path, release: &Path, out: &Path) -> Result<Vec<PathBuf>, String> {
    let metadata = Metadata::read(folder, release)?;
    let now = timestamp();
    Ok(vec![
        build_deb(&metadata, out, now)?,
        build_rpm(&metadata, out, now)?,
    ])
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn build_deb(metadata: &Metadata, out: &Path, now: u64) -> Result<PathBuf, String> {
    let name = metadata.deb_str("name")?;
    let version = format!("{}-1", env!("CARGO_PKG_VERSION"));
    let mut files: Vec<(String, u32, Vec<u8>)> = Vec::new();
    for asset in metadata.deb_assets()? {
        files.push((asset.dest, asset.mode, read(&asset.source)?));
    }
    let copyright = format!(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: {}\nCopyright: {}\nLicense: {}\n",
        metadata.crate_name,
        metadata.deb_str("copyright")?,
        env!("CARGO_PKG_LICENSE")
    );
    files.push((
        format!("/usr/share/doc/{name}/copyright"),
        0o644,
        copyright.into_bytes(),
    ));
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let installed_kb: u64 = files
        .iter()
        .map(|(_, _, bytes)| (bytes.len() as u64).div_ceil(1024) + 1)
        .sum();
    let mut control = format!(
        "Package: {name}\nVersion: {version}\nArchitecture: amd64\nSection: {}\nPriority: {}\n\
         Maintainer: {}\nInstalled-Size: {installed_kb}\nDepends: {}\nDescription: {}\n",
        metadata.deb_str("section")?,
        metadata.deb_str("priority")?,
        metadata.deb_str("maintainer")?,
        metadata.deb_str("depends")?,
        metadata.description,
    );
    for line in wrap(metadata.deb_str("extended-description")?, 78) {
        control.push_str(&format!(" {line}\n"));
    }
    let conffiles: String = files
        .iter()
        .filter(|(path, _, _)| path.starts_with("/etc/"))
        .map(|(path, _, _)| format!("{path}\n"))
        .collect();
    let mut control_files = vec![("/control".to_owned(), 0o644, control.into_bytes())];
    if !conffiles.is_empty() {
        control_files.push(("/conffiles".to_owned(), 0o644, conffiles.into_bytes()));
    }
    let members = [
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar.gz", tar_gz(&control_files, now)?),
        ("data.tar.gz", tar_gz(&files, now)?),
    ];
    let path = out.join(format!("{name}_{version}_amd64.deb"));
    std::fs::write(&path, ar(&members, now)).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// A gzipped tar of `files` (absolute paths, modes, contents) under `./`, each folder on
/// their way listed before its first file, everything owned by 0:0.
fn tar_gz(files: &[(String, u32, Vec<u8>)], now: u64) -> Result<Vec<u8>, String> {
    let mut tar = Vec::new();
    let mut listed = BTreeSet::new();
    for (path, mode, bytes) in files {
        let mut folders = Vec::new();
        let mut at = path.as_str();
        while let Some((parent, _)) = at.rsplit_once('/') {
            if !parent.is_empty() && listed.insert(parent.to_owned()) {
                folders.push(format!(".{parent}/"));
            }
            at = parent;
        }
        for folder in folders.iter().rev() {
            tar.extend(tar_header(folder, 0o755, 0, now, b'5')?);
        }
        tar.extend(tar_header(
            &format!(".{path}"),
            *mode,
            bytes.len(),
            now,
            b'0',
        )?);
        tar.extend(bytes);
        tar.resize(tar.len().next_multiple_of(512), 0);
    }
    // The end: two empty blocks.
    tar.resize(tar.len() + 1024, 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar)
        .and_then(|()| gz.finish())
        .map_err(|e| format!("gzip: {e}"))
}

/// A ustar header: name, mode, owner 0:0, size, time, checksum, type (`0` a file, `5` a
/// folder), magic; numbers in octal.
fn tar_header(
    name: &str,
    mode: u32,
    size: usize,
    time: u64,
    kind: u8,
) -> Result<[u8; 512], String> {
    if name.len() >= 100 {
        return Err(format!("{name}: too long a name for a tar header"));
    }
    let mut header = [0u8; 512];
    let mut put = |at: usize, bytes: &[u8]| header[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, name.as_bytes());
    put(100, format!("{mode:07o}\0").as_bytes());
    put(108, b"0000000\0");
    put(116, b"0000000\0");
    put(124, format!("{size:011o}\0").as_bytes());
    put(136, format!("{time:011o}\0").as_bytes());
    put(148, b"        ");
    put(156, &[kind]);
    put(257, b"ustar\x0000");
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    Ok(header)
}

/// `text`'s words in lines of at most `width` characters (a longer word alone on its line).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if line.len() + 1 + word.len() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_owned()),
        }
    }
    lines
}

/// An `ar` archive of `members`: the global header, then for each member a 60-byte header
/// (name, time, owner, group, mode, size, and a closing "`\n") and its bytes, padded to
/// an even length.
fn ar(members: &[(&str, Vec<u8>)], now: u64) -> Vec<u8> {
    let mut out = b"!<arch>\n".to_vec();
    for (name, bytes) in members {
        let header = format!(
            "{name:<16}{now:<12}{:<6}{:<6}{:<8o}{:<10}`\n",
            0,
            0,
            0o100_644,
            bytes.len()
        );
        debug_assert_eq!(header.len(), 60);
        out.extend(header.as_bytes());
        out.extend(bytes);
        if bytes.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

fn build_rpm(metadata: &Metadata, out: &Path, now: u64) -> Result<PathBuf, String> {
    let name = text(&metadata.rpm, "name", "[package.metadata.generate-rpm]")?;
    let summary = text(&metadata.rpm, "summary", "[package.metadata.generate-rpm]")?;
    let config = rpm::BuildConfig::default()
        .compression(rpm::CompressionWithLevel::Gzip(6))
        .source_date(u32::try_from(now).unwrap_or(u32::MAX));
    let mut builder = rpm::PackageBuilder::new(
        name,
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_LICENSE"),
        "x86_64",
        summary,
    );
    let maintainer = metadata.deb_str("maintainer")?;
    builder
        .using_config(config)
        .release("1")
        .packager(maintainer)
        .vendor(maintainer.split(" <").next().unwrap_or(maintainer));
    let assets = metadata.rpm_assets()?;
    for asset in &assets {
        let mut options = rpm::FileOptions::new(&asset.dest).mode(rpm::FileMode::regular(
            u16::try_from(asset.mode).map_err(|e| format!("mode {:o}: {e}", asset.mode))?,
        ));
        if asset.config {
            options = options.config().noreplace();
        }
        options = match asset.marked {
            Marked::Plain => options,
            Marked::Doc => options.doc(),
            Marked::License => options.license(),
        };
        builder
            .with_file(&asset.source, options)
            .map_err(|e| format!("{}: {e}", asset.source.display()))?;
    }
    for folder in metadata.rpm_folders()? {
        builder
            .with_dir_entry(rpm::FileOptions::dir(folder).mode(rpm::FileMode::dir(0o755)))
            .map_err(|e| format!("{folder}: {e}"))?;
    }
    builder.requires(rpm::Dependency::any("/bin/sh"));
    for requires in library_requires(&assets)? {
        builder.requires(rpm::Dependency::any(requires));
    }
    let package = builder
        .build()
        .map_err(|e| format!("the RPM {name}: {e}"))?;
    let path = out.join(format!("{name}-{}-1.x86_64.rpm", env!("CARGO_PKG_VERSION")));
    let mut file = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    package
        .write(&mut file)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.flush()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// What the binaries among `assets` need, as RPM requirements: each shared library
/// (`libc.so.6()(64bit)`) and each symbol version of one (`libc.so.6(GLIBC_2.17)(64bit)`),
/// read from `objdump -p`'s `NEEDED` lines and version references.
fn library_requires(assets: &[Asset]) -> Result<BTreeSet<String>, String> {
    let mut requires = BTreeSet::new();
    for asset in assets.iter().filter(|a| a.mode & 0o111 != 0) {
        let dump = output(Command::new("objdump").arg("-p").arg(&asset.source))?;
        requires.extend(elf_requires(&dump));
    }
    Ok(requires)
}

/// The requirements in one `objdump -p` output.
fn elf_requires(dump: &str) -> BTreeSet<String> {
    let mut requires = BTreeSet::new();
    let mut library = None;
    for line in dump.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["NEEDED", lib] => {
                requires.insert(format!("{lib}()(64bit)"));
            }
            ["required", "from", lib] => library = Some(lib.trim_end_matches(':')),
            [_, _, _, version] if version.starts_with("GLIBC_") || version.contains('_') => {
                if let Some(lib) = library {
                    requires.insert(format!("{lib}({version})(64bit)"));
                }
            }
            _ => {}
        }
    }
    requires
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as Debian's control files have them: the extended description of the
    /// `whmtoken` package, as cargo-deb laid it out.
    #[test]
    fn the_extended_description_is_wrapped_at_78() {
        let text = "convert_accesshash_to_token turns WHM access hashes into WHM API tokens that \
            accept the same secret, as cPanel's script of that name does, and is safe to \
            automate; whmtoken carries the migration as subcommands (convert, audit, verify, \
            retire, restore, runs).";
        assert_eq!(
            wrap(text, 78),
            [
                "convert_accesshash_to_token turns WHM access hashes into WHM API tokens that",
                "accept the same secret, as cPanel's script of that name does, and is safe to",
                "automate; whmtoken carries the migration as subcommands (convert, audit,",
                "verify, retire, restore, runs).",
            ]
        );
    }

    #[test]
    fn tar_and_ar_headers_have_their_sizes_and_checksum() {
        let header = tar_header("./etc/whmtoken.toml", 0o644, 708, 1, b'0').unwrap();
        assert_eq!(&header[..19], b"./etc/whmtoken.toml");
        assert_eq!(&header[124..136], b"00000001304\0");
        let sum: u32 = header[..148]
            .iter()
            .chain(&[b' '; 8])
            .chain(&header[156..])
            .map(|b| u32::from(*b))
            .sum();
        assert_eq!(&header[148..156], format!("{sum:06o}\0 ").as_bytes());
        assert!(tar_header(&"x".repeat(100), 0o644, 0, 1, b'0').is_err());
        let archive = ar(&[("debian-binary", b"2.0\n".to_vec()), ("odd", vec![1])], 7);
        assert_eq!(archive.len(), 8 + 60 + 4 + 60 + 2);
        assert!(
            archive[8..]
                .starts_with(b"debian-binary   7           0     0     100644  4         `\n")
        );
    }
}

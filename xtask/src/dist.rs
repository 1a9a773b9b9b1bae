//! `cargo xtask dist`: release binaries that run on glibc 2.17 and newer, and the packages
//! made of them, in `target/dist/`.
//!
//! - The binaries are built by cargo-zigbuild for `x86_64-unknown-linux-gnu.2.17` (zig's C
//!   compiler also builds the bundled SQLite). cargo-zigbuild and zig come from PyPI
//!   (`cargo-zigbuild`, `ziglang`), pinned, into a virtualenv in `target/tools/zig`.
//! - Each binary is checked: no symbol version above `GLIBC_2.17` in `objdump -T`, and
//!   `--version` runs here.
//! - The man pages (section 8: the binaries go to `/usr/sbin`) and the bash, zsh and fish
//!   completions are generated from the clap definitions the binaries parse with, into
//!   `whmtoken-assets/` beside the binaries, where the package metadata of `cli/Cargo.toml`
//!   takes them from.
//! - The packages are made in-process (`package` module) from the package metadata of
//!   each packaged crate's `Cargo.toml`.
//! - `whmtoken` (DEB and RPM): the two server binaries, man pages, completions,
//!   `/etc/whmtoken.toml` (all comments: `packaging/whmtoken.toml`), README, changelog and
//!   licenses. `whmtoken-testing`: `fake-server` alone.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use clap_complete::Shell;

use crate::{output, run, target_dir, workspace_root};

/// The platform of the packages, and the oldest glibc they run on.
pub(crate) const TARGET: &str = "x86_64-unknown-linux-gnu";
const GLIBC: (u32, u32) = (2, 17);

/// The tools, pinned: a new version may build differently.
const PYPI_TOOLS: [&str; 2] = ["cargo-zigbuild==0.24.1", "ziglang==0.17.1"];

/// The binaries of the `whmtoken` packages, and of `whmtoken-testing`.
pub(crate) const SERVER_BINARIES: [&str; 2] = ["convert_accesshash_to_token", "whmtoken"];
pub(crate) const TESTING_BINARY: &str = "fake-server";

/// The crates whose metadata describes a package: (cargo package, its folder).
const PACKAGES: [(&str, &str); 2] = [
    ("whmtoken-cli", "cli"),
    ("whmtoken-fake-server", "fake-server"),
];

/// Where the dist build leaves its binaries.
pub(crate) fn release_dir() -> PathBuf {
    target_dir().join(TARGET).join("release")
}

/// Where the packages go (and their repositories, `repo` module).
pub(crate) fn dist_dir() -> PathBuf {
    target_dir().join("dist")
}

/// Builds, checks and packages; returns the packages made.
pub(crate) fn dist() -> Result<Vec<PathBuf>, String> {
    ReleaseBuild::start(false)?.finish()?;
    package_release()
}

/// The release build (cargo-zigbuild), running; with `background`, its output goes to
/// `target/dist-build.log` (shown if it fails), so that `cargo xtask ci` runs it beside
/// the tests. Dropped unfinished, it is stopped.
pub(crate) struct ReleaseBuild {
    child: Option<Child>,
    log: Option<PathBuf>,
}

impl ReleaseBuild {
    pub(crate) fn start(background: bool) -> Result<Self, String> {
        let tools = Tools::install()?;
        let zig_target = format!("{TARGET}.{}.{}", GLIBC.0, GLIBC.1);
        let mut command = crate::cargo_command();
        command
            .args(["zigbuild", "--release", "--locked", "--target", &zig_target])
            .args(["-p", "whmtoken-cli", "-p", "whmtoken-fake-server", "--bins"])
            .env("PATH", tools.path()?)
            // The packages carry no debug information (symbol names stay, for backtraces).
            .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
            .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo")
            .current_dir(workspace_root());
        let log = if background {
            let log = target_dir().join("dist-build.log");
            let file =
                std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
            let copy = file
                .try_clone()
                .map_err(|e| format!("{}: {e}", log.display()))?;
            command.stdout(copy).stderr(file);
            Some(log)
        } else {
            None
        };
        let shown = format!("{command:?}");
        let child = command
            .spawn()
            .map_err(|e| format!("cannot run {shown}: {e}"))?;
        match &log {
            Some(log) => eprintln!(
                "xtask: started, in the background (its output in {}): {shown}",
                log.display()
            ),
            None => eprintln!("xtask: {shown}"),
        }
        Ok(Self {
            child: Some(child),
            log,
        })
    }

    /// Waits for the build; fails, with its output, if it failed.
    pub(crate) fn finish(mut self) -> Result<(), String> {
        let mut child = self.child.take().expect("finished once");
        let status = child
            .wait()
            .map_err(|e| format!("the release build: {e}"))?;
        if status.success() {
            return Ok(());
        }
        let output = self
            .log
            .as_ref()
            .and_then(|log| std::fs::read_to_string(log).ok())
            .unwrap_or_default();
        Err(format!("the release build failed ({status}){output}"))
    }
}

impl Drop for ReleaseBuild {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// After the release build: its binaries checked, the man pages and completions written,
/// and the packages made; returns the packages.
pub(crate) fn package_release() -> Result<Vec<PathBuf>, String> {
    let release = release_dir();
    for binary in SERVER_BINARIES.iter().chain([&TESTING_BINARY]) {
        let binary = release.join(binary);
        let highest = highest_glibc(&binary)?;
        if highest > GLIBC {
            return Err(format!(
                "{} needs GLIBC_{}.{}, above GLIBC_{}.{}",
                binary.display(),
                highest.0,
                highest.1,
                GLIBC.0,
                GLIBC.1
            ));
        }
        let version = output(Command::new(&binary).arg("--version"))?;
        eprintln!(
            "xtask: {}: highest symbol version GLIBC_{}.{}; {}",
            binary.display(),
            highest.0,
            highest.1,
            version.trim()
        );
    }
    write_assets(&release.join("whmtoken-assets"))?;
    let out = dist_dir();
    if out.exists() {
        std::fs::remove_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let started = std::time::Instant::now();
    for (_, folder) in PACKAGES {
        crate::package::build(&workspace_root().join(folder), &release, &out)?;
    }
    eprintln!(
        "xtask: the packages made in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let packages = package_files()?;
    for package in &packages {
        eprintln!("xtask: built {}", package.display());
    }
    crate::repo::sign_and_publish(&packages)?;
    Ok(packages)
}

/// The packages in `target/dist/`, in name order.
fn package_files() -> Result<Vec<PathBuf>, String> {
    let out = dist_dir();
    let mut packages: Vec<PathBuf> = std::fs::read_dir(&out)
        .map_err(|e| format!("{}: {e}", out.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb" || x == "rpm"))
        .collect();
    packages.sort();
    Ok(packages)
}

/// The package `name` (`whmtoken`, `whmtoken-testing`) of the given kind (`deb`, `rpm`).
pub(crate) fn package(name: &str, kind: &str) -> Result<PathBuf, String> {
    let separator = if kind == "deb" { '_' } else { '-' };
    package_files()?
        .into_iter()
        .find(|p| {
            let file = p.file_name().and_then(|f| f.to_str()).unwrap_or("");
            file.ends_with(&format!(".{kind}"))
                && file
                    .strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix(separator))
                    .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .ok_or_else(|| {
            format!(
                "no {name} .{kind} in {}: run cargo xtask dist",
                dist_dir().display()
            )
        })
}

/// The tools `dist` needs, installed on first use.
struct Tools {
    /// The virtualenv's `bin/` (cargo-zigbuild, and the Python that runs zig).
    venv_bin: PathBuf,
}

impl Tools {
    fn install() -> Result<Self, String> {
        let venv = workspace_root().join("target/tools/zig");
        let venv_bin = venv.join("bin");
        if !venv_bin.join("python").exists() {
            run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        }
        run(Command::new(venv_bin.join("python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(PYPI_TOOLS))?;
        Ok(Self { venv_bin })
    }

    /// `PATH` with the tools first.
    fn path(&self) -> Result<String, String> {
        let rest = std::env::var_os("PATH").unwrap_or_default();
        let paths = std::iter::once(self.venv_bin.clone()).chain(std::env::split_paths(&rest));
        let joined = std::env::join_paths(paths).map_err(|e| format!("PATH: {e}"))?;
        joined
            .into_string()
            .map_err(|_| "PATH is not UTF-8".to_owned())
    }
}

/// The highest `GLIBC_X.Y` symbol version `objdump -T` finds in `binary`.
pub(crate) fn highest_glibc(binary: &Path) -> Result<(u32, u32), String> {
    let symbols = output(Command::new("objdump").arg("-T").arg(binary))?;
    glibc_versions(&symbols)
        .max()
        .ok_or_else(|| format!("{}: no GLIBC symbol version at all", binary.display()))
}

/// Every `GLIBC_X.Y` (or `GLIBC_X.Y.Z`, read as X.Y) in `objdump -T` output.
fn glibc_versions(symbols: &str) -> impl Iterator<Item = (u32, u32)> + '_ {
    symbols
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|word| word.strip_prefix("GLIBC_"))
        .filter_map(|version| {
            let mut parts = version.split('.').map(str::parse::<u32>);
            match (parts.next(), parts.next()) {
                (Some(Ok(major)), Some(Ok(minor))) => Some((major, minor)),
                _ => None,
            }
        })
}

/// The commands the server packages document: (binary name, its clap command).
pub(crate) fn documented_commands() -> [(&'static str, clap::Command); 2] {
    [
        (
            "convert_accesshash_to_token",
            whmtoken_cli::converter_command(),
        ),
        ("whmtoken", whmtoken_cli::whmtoken_command()),
    ]
}

/// Writes the man pages, not gzipped, to `dir` (`cargo xtask man`: no release build).
pub(crate) fn write_man_pages(dir: &Path) -> Result<(), String> {
    let mut count = 0;
    for (_, command) in documented_commands() {
        for (file, text) in man_pages(command)? {
            write(&dir.join(file), &text)?;
            count += 1;
        }
    }
    eprintln!(
        "xtask: {count} man pages in {} (MANWIDTH=80 man -l {}/whmtoken-convert.8)",
        dir.display(),
        dir.display()
    );
    Ok(())
}

/// Writes the man pages (`man/NAME.8.gz`, gzipped as both Debian and the EL family ship
/// them, one per binary and per subcommand, such as `whmtoken-audit.8.gz`) and the completions (`bash/NAME`, `zsh/_NAME`, `fish/NAME.fish`).
fn write_assets(dir: &Path) -> Result<(), String> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    for (name, command) in documented_commands() {
        for (file, text) in man_pages(command.clone())? {
            let page = dir.join("man").join(file);
            write(&page, &text)?;
            run(Command::new("gzip")
                .args(["-9", "--no-name", "--force"])
                .arg(&page))?;
        }
        for (shell, folder, file) in [
            (Shell::Bash, "bash", name.to_owned()),
            (Shell::Zsh, "zsh", format!("_{name}")),
            (Shell::Fish, "fish", format!("{name}.fish")),
        ] {
            write(
                &dir.join(folder).join(file),
                &completion(shell, command.clone(), name),
            )?;
        }
    }
    Ok(())
}

/// The man pages of a command and of each of its subcommands: (file name, roff text).
/// `whmtoken convert`'s page lists the converter's options, from the definitions the
/// converter parses with ([`convert_as_parsed`]).
pub(crate) fn man_pages(command: clap::Command) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut command = convert_as_parsed(command);
    command.build();
    let mut pages = Vec::new();
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        pages.extend(man_pages(sub.clone())?);
    }
    let name = command
        .get_display_name()
        .unwrap_or(command.get_name())
        .to_owned();
    let mut text = Vec::new();
    clap_mangen::Man::new(command.clone())
        .section("8")
        .manual("System Administration")
        .source(format!("whmtoken {}", env!("CARGO_PKG_VERSION")))
        .render(&mut text)
        .map_err(|e| format!("man page of {name}: {e}"))?;
    let text = String::from_utf8(text).map_err(|e| format!("man page of {name}: {e}"))?;
    let text = repeated_in_synopsis(&command, &text);
    let statuses = whmtoken_cli::whmtoken_command()
        .get_after_help()
        .map(ToString::to_string)
        .unwrap_or_default();
    let text = crate::man::finish(&name, &statuses, &text)?;
    pages.push((format!("{name}.8"), text.into_bytes()));
    Ok(pages)
}

/// `roff` with each positional argument that takes several values shown so in SYNOPSIS
/// (`[USER]...`, `<INPUT>...`: clap_mangen shows `[USER]`, one user).
fn repeated_in_synopsis(command: &clap::Command, roff: &str) -> String {
    let repeated: Vec<String> = command
        .get_positionals()
        .filter(|arg| arg.get_num_args().is_some_and(|n| n.max_values() > 1))
        .filter_map(|arg| arg.get_value_names().and_then(|v| v.first()).cloned())
        .map(|name| name.to_string())
        .collect();
    let mut out = String::new();
    let mut in_synopsis = false;
    for line in roff.lines() {
        let mut line = line.to_owned();
        if in_synopsis && !line.starts_with('.') {
            for name in &repeated {
                for (open, close) in [("[", "]"), ("<", ">")] {
                    let shown = format!("{open}\\fI{name}\\fR{close}");
                    if !line.contains(&format!("{shown}...")) {
                        line = line.replace(&shown, &format!("{shown}..."));
                    }
                }
            }
        }
        if line.starts_with(".SH ") {
            in_synopsis = line == ".SH SYNOPSIS";
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// A shell's completion script for `name`.
pub(crate) fn completion(shell: Shell, command: clap::Command, name: &str) -> Vec<u8> {
    let mut command = completed_as_parsed(command);
    let mut text = Vec::new();
    clap_complete::generate(shell, &mut command, name, &mut text);
    text
}

/// The command as its completions should see it: `--acl` offers the built-in ACL names
/// (not file names), and `whmtoken convert`, which hands its arguments to the converter
/// unparsed, completes the converter's options.
fn completed_as_parsed(command: clap::Command) -> clap::Command {
    with_acl_names(convert_as_parsed(command))
}

/// `command` with `whmtoken convert`, which hands its arguments to the converter unparsed
/// (clap sees one `[ARGS]...`), replaced by the converter's own definitions (the ones
/// `convert_accesshash_to_token` parses with), named `convert`: its options cannot drift.
fn convert_as_parsed(mut command: clap::Command) -> clap::Command {
    if command.find_subcommand("convert").is_some() {
        let converter = whmtoken_cli::converter_command();
        // Its notes without the exit statuses (the page's EXIT STATUS): the ACL names.
        let acl_names = converter
            .get_after_long_help()
            .map(ToString::to_string)
            .and_then(|notes| {
                notes
                    .split_once("\n\nACL names")
                    .map(|(_, names)| format!("ACL names{names}"))
            });
        command = command.mut_subcommand("convert", |convert| {
            let about = convert.get_about().cloned().unwrap_or_default();
            let converter = converter
                .name("convert")
                .display_name("whmtoken-convert")
                .bin_name("whmtoken convert")
                .about(about)
                .after_help(None::<&str>);
            match acl_names {
                Some(names) => converter.after_long_help(names),
                None => converter.after_long_help(None::<&str>),
            }
        });
    }
    command
}

/// `command` and its subcommands with the ACL names as `--acl`'s possible values.
fn with_acl_names(mut command: clap::Command) -> clap::Command {
    let acl = command
        .get_arguments()
        .find(|arg| arg.get_long() == Some("acl"))
        .map(|arg| arg.get_id().clone());
    if let Some(id) = acl {
        let names = whmtoken_core::acl::BUILTIN_ACLS
            .into_iter()
            .chain([whmtoken_core::acl::ALL]);
        command = command.mut_arg(id, |arg| {
            arg.value_parser(clap::builder::PossibleValuesParser::new(names))
        });
    }
    let subcommands: Vec<String> = command
        .get_subcommands()
        .map(|sub| sub.get_name().to_owned())
        .collect();
    for name in subcommands {
        command = command.mut_subcommand(name, with_acl_names);
    }
    command
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let parent = path.parent().expect("a file in a folder");
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_versions_are_read_from_objdump_output() {
        let symbols = "\
0000000000000000      DF *UND*  0000000000000000 (GLIBC_2.2.5) memcpy
0000000000000000      DF *UND*  0000000000000000 (GLIBC_2.17) clock_gettime
0000000000000000      DF *UND*  0000000000000000  GLIBC_2.3.4 __fdelt_chk
0000000000000000  w   D  *UND*  0000000000000000  Base        __gmon_start__
";
        let versions: Vec<_> = glibc_versions(symbols).collect();
        assert_eq!(versions, [(2, 2), (2, 17), (2, 3)]);
        assert_eq!(glibc_versions(symbols).max(), Some((2, 17)));
        assert!(glibc_versions("(GLIBC_2.34) pthread_create").max() > Some(GLIBC));
    }

    /// What bash's completion function (as `cargo xtask dist` writes it) offers for the
    /// words typed so far, run in a folder holding one file (so that file names offered
    /// instead of ACL names would show).
    fn bash_completes(name: &str, words: &[&str]) -> Vec<String> {
        let command = documented_commands()
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("not-an-acl"), "").unwrap();
        let script = dir.path().join("completion.bash");
        std::fs::write(&script, completion(Shell::Bash, command, name)).unwrap();
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let cword = words.len() - 1;
        let program = format!(
            "source completion.bash\nCOMP_WORDS=({})\nCOMP_CWORD={cword}\n\
             COMP_LINE=\"${{COMP_WORDS[*]}}\"\nCOMP_POINT=${{#COMP_LINE}}\n\
             _{} {name} '{}' '{}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
            quoted.join(" "),
            name.replace('-', "__"),
            words[cword],
            words[cword - 1],
        );
        let out = std::process::Command::new("bash")
            .args(["--norc", "--noprofile", "-c", &program])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let mut offered: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect();
        offered.sort();
        offered
    }

    #[test]
    fn bash_offers_acl_names_after_acl() {
        let mut names: Vec<String> = whmtoken_core::acl::BUILTIN_ACLS
            .into_iter()
            .chain([whmtoken_core::acl::ALL])
            .map(String::from)
            .collect();
        names.sort();
        let converter = "convert_accesshash_to_token";
        assert_eq!(bash_completes(converter, &[converter, "--acl", ""]), names);
        assert_eq!(
            bash_completes("whmtoken", &["whmtoken", "convert", "--acl", ""]),
            names
        );
        let create: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|n| n.starts_with("create-"))
            .collect();
        assert_eq!(
            bash_completes(
                converter,
                &[converter, "--all-resellers", "--acl", "create-"]
            ),
            create
        );
        // Elsewhere, files are still offered where a path is taken.
        assert!(
            bash_completes(converter, &[converter, "--config", "not-"])
                .contains(&"not-an-acl".into())
        );
    }

    /// `whmtoken-convert(8)`'s page, rendered as the package ships it.
    fn convert_page() -> String {
        let pages = man_pages(whmtoken_cli::whmtoken_command()).unwrap();
        let (_, page) = pages
            .into_iter()
            .find(|(file, _)| file == "whmtoken-convert.8")
            .expect("whmtoken-convert.8");
        String::from_utf8(page).unwrap()
    }

    #[test]
    fn whmtoken_convert_lists_the_converters_options_as_options() {
        let page = convert_page();
        let options = page
            .split_once(".SH OPTIONS\n")
            .map(|(_, rest)| rest.split_once("\n.SH ").map_or(rest, |(o, _)| o))
            .expect("OPTIONS");
        // Every option the converter parses is an entry of OPTIONS (`.TP`, then its names).
        let converter = whmtoken_cli::converter_command();
        let longs: Vec<&str> = converter
            .get_arguments()
            .filter_map(|a| a.get_long())
            .collect();
        assert!(
            longs.contains(&"all-resellers") && longs.contains(&"acl"),
            "{longs:?}"
        );
        for long in longs {
            let entry = format!("\\-\\-{}", long.replace('-', "\\-"));
            assert!(
                options
                    .lines()
                    .any(|l| l.starts_with("\\fB") && l.contains(&entry)),
                "--{long} is not an entry of OPTIONS:\n{options}"
            );
        }
        assert!(!options.contains("[ARGS]"), "{options}");
        // The usage text is not in the page again as preformatted help that man re-flows;
        // the notes are the ACL names alone (the exit statuses are EXIT STATUS).
        assert!(
            !page.contains("Display this message\n   \\-\\-verbose"),
            "{page}"
        );
        assert!(!page.contains("Exit status: "), "{page}");
        assert!(page.contains("allow\\-emaillimits\\-pkgs"), "{page}");
    }

    #[test]
    fn man_pages_show_repeated_arguments_and_the_version_alone() {
        let mut pages = std::collections::BTreeMap::new();
        for (_, command) in documented_commands() {
            for (file, page) in man_pages(command).unwrap() {
                pages.insert(file, String::from_utf8(page).unwrap());
            }
        }
        let synopsis = |file: &str| {
            let page = &pages[file];
            let (_, rest) = page.split_once(".SH SYNOPSIS\n").unwrap();
            rest.split_once("\n.SH ").unwrap().0.to_owned()
        };
        for file in [
            "whmtoken-audit.8",
            "whmtoken-usage.8",
            "convert_accesshash_to_token.8",
        ] {
            assert!(
                synopsis(file).contains("[\\fIUSER\\fR]..."),
                "{file}: {}",
                synopsis(file)
            );
        }
        assert!(synopsis("whmtoken-report.8").contains("<\\fIINPUT\\fR>..."));
        assert!(synopsis("whmtoken-verify.8").contains("<\\fIUSER\\fR> "));
        let mut versions = 0;
        for (file, page) in &pages {
            if let Some((_, rest)) = page.split_once(".SH VERSION\n") {
                assert_eq!(
                    rest.lines().next(),
                    Some(env!("CARGO_PKG_VERSION")),
                    "{file}"
                );
                versions += 1;
            }
        }
        assert!(
            versions >= 2,
            "whmtoken.8 and the converter's have a VERSION"
        );
    }

    #[test]
    fn every_man_page_has_the_sections_and_no_hyphenation() {
        for (_, command) in documented_commands() {
            for (file, page) in man_pages(command).unwrap() {
                let page = String::from_utf8(page).unwrap();
                for section in crate::man::SECTIONS {
                    let header = [format!(".SH {section}\n"), format!(".SH \"{section}\"\n")];
                    assert!(
                        header.iter().any(|h| page.contains(h)),
                        "{file}: no {section}"
                    );
                }
                assert!(page.contains("\n.nh\n"), "{file}: hyphenation on");
            }
        }
    }

    #[test]
    fn every_binary_and_subcommand_has_a_man_page() {
        let mut files = Vec::new();
        for (_, command) in documented_commands() {
            files.extend(man_pages(command).unwrap().into_iter().map(|(f, _)| f));
        }
        files.sort();
        let names: Vec<_> = whmtoken_cli::whmtoken_command()
            .get_subcommands()
            .map(|s| format!("whmtoken-{}.8", s.get_name()))
            .chain(["convert_accesshash_to_token.8".into(), "whmtoken.8".into()])
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(files, names);
        assert!(files.contains(&"whmtoken-audit.8".to_owned()), "{files:?}");
    }

    /// The converter's man page says of each option what its `--help` says (cPanel's
    /// usage text and ours), and lists the exit statuses.
    #[test]
    fn the_converters_man_page_cannot_drift_from_its_help() {
        let pages = man_pages(whmtoken_cli::converter_command()).unwrap();
        let [(file, page)] = &pages[..] else {
            panic!("{pages:?}")
        };
        assert_eq!(file, "convert_accesshash_to_token.8");
        // roff escapes `-` as `\-`; words are what matter.
        let page = String::from_utf8_lossy(page).replace("\\-", "-");
        let words = |text: &str| -> Vec<String> {
            text.split_whitespace()
                .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_owned())
                .filter(|w| !w.is_empty())
                .collect()
        };
        let page_words = words(&page).join(" ");
        let help = whmtoken_cli::convert::HELP;
        let (options, notes) = help.split_once("\n\nExit status: ").unwrap();
        for line in options.lines().filter(|l| l.starts_with("   -")) {
            let (option, description) = line[3..].split_once("  ").unwrap();
            let long = option
                .rsplit("--")
                .next()
                .unwrap()
                .split(' ')
                .next()
                .unwrap();
            assert!(page.contains(&format!("--{long}")), "--{long} missing");
            let description = words(description).join(" ");
            assert!(page_words.contains(&description), "{description:?} missing");
        }
        for status in ["64 usage error", "65 at least one", "78 bad config file"] {
            assert!(
                notes.contains(status) && page_words.contains(status),
                "{status}"
            );
        }
    }

    /// `whmtoken`'s man pages come from the very command `whmtoken --help` prints: each
    /// subcommand's summary, and each of its options, is in them.
    #[test]
    fn whmtokens_man_pages_carry_every_subcommand_and_option() {
        let command = whmtoken_cli::whmtoken_command();
        let pages = man_pages(command.clone()).unwrap();
        let page = |name: &str| {
            let (_, text) = pages.iter().find(|(f, _)| f == name).unwrap();
            String::from_utf8_lossy(text).replace("\\-", "-")
        };
        let main = page("whmtoken.8");
        for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
            assert!(main.contains(sub.get_name()), "{}", sub.get_name());
            let sub_page = page(&format!("whmtoken-{}.8", sub.get_name()));
            for arg in sub.get_arguments().filter_map(|a| a.get_long()) {
                assert!(sub_page.contains(&format!("--{arg}")), "--{arg} missing");
            }
        }
    }

    #[test]
    fn completions_know_every_subcommand_and_the_converters_options() {
        let bash = completion(Shell::Bash, whmtoken_cli::whmtoken_command(), "whmtoken");
        let bash = String::from_utf8(bash).unwrap();
        for sub in ["convert", "audit", "verify", "--config"] {
            assert!(bash.contains(sub), "{sub}");
        }
        let fish = completion(
            Shell::Fish,
            whmtoken_cli::converter_command(),
            "convert_accesshash_to_token",
        );
        let fish = String::from_utf8(fish).unwrap();
        for option in ["all-resellers", "dry-run", "allow-ip", "lock-timeout"] {
            assert!(fish.contains(&format!("-l {option}")), "{option}: {fish}");
        }
    }
}

//! Tidy checks over every `.rs` file of the workspace, in the style of rust-analyzer's
//! `xtask/src/tidy.rs`; part of `cargo test --workspace`, so of `cargo xtask ci`.
//!
//! Files: every `.rs` file under the workspace root, skipping `.git` and every folder whose
//! name starts with `target` (`target/`, and the side target folders some builds use).
//!
//! Checks, each failing with the list of every offending `file:line`:
//!
//! - **Module docs**: the first non-empty line of each file starts with `//!`.
//! - **Only binaries and tests print**: `print!`, `println!`, `eprint!`, `eprintln!` and
//!   `dbg!` appear only in
//!   - binaries: `src/main.rs`, `src/bin/**`, `build.rs`, `examples/**`, and the whole
//!     `xtask/` crate;
//!   - test code: any file with a `tests` folder in its path; a file declared as
//!     `#[cfg(test)] mod NAME;` (its `NAME.rs` or `NAME/mod.rs`); and in other files, the
//!     inline module that follows a line `#[cfg(test)]` (other attributes may come between
//!     them): from its `mod NAME {` line to the line holding only its closing `}` at the
//!     same indentation, which `cargo fmt` guarantees.
//!
//!   Comment lines (starting with `//`) are not searched. Only the exact attribute
//!   `#[cfg(test)]` marks test code: a `#[cfg(test)]` function, or `cfg(all(test, ..))`,
//!   still counts as library code. A macro name counts only as a whole word, so
//!   `eprintln!` is not also a `println!`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The macros that write to the terminal, which library code leaves to the binaries.
const PRINT_MACROS: [&str; 5] = ["print!", "println!", "eprint!", "eprintln!", "dbg!"];

#[test]
fn every_file_opens_with_module_docs() {
    let mut offenders = Vec::new();
    for file in workspace_files() {
        let first = file
            .text
            .lines()
            .enumerate()
            .find(|(_, line)| !line.trim().is_empty());
        match first {
            Some((_, line)) if line.trim_start().starts_with("//!") => {}
            Some((index, line)) => offenders.push(format!(
                "{}:{}: opens with `{}`",
                file.name,
                index + 1,
                line.trim()
            )),
            None => offenders.push(format!("{}:1: empty file", file.name)),
        }
    }
    assert!(
        offenders.is_empty(),
        "\nEvery source file opens with a `//!` line saying what it is for; these do not:\n\n{}\n",
        offenders.join("\n")
    );
}

#[test]
fn only_binaries_and_tests_print() {
    let files = workspace_files();
    let test_modules = out_of_line_test_modules(&files);
    let mut offenders = Vec::new();
    for file in &files {
        if is_binary(&file.name) || is_test_file(&file.name) || test_modules.contains(&file.path) {
            continue;
        }
        for (line, found) in print_calls(&file.text) {
            offenders.push(format!("{}:{line}: {found}", file.name));
        }
    }
    assert!(
        offenders.is_empty(),
        "\nOnly binaries (src/main.rs, src/bin/, xtask/) and test code print; library code \
         returns its messages, or logs them:\n\n{}\n",
        offenders.join("\n")
    );
}

/// The scanner itself, on text made for it.
#[test]
fn print_calls_finds_library_prints_and_skips_test_modules_and_comments() {
    let text = r#"//! A module.

// println!("in a comment");
/// eprintln!("in a doc comment");
pub fn f() {
    println!("one");
    let _ = format!("not a print");
    std::eprint!("two");
    writeln!(out, "not a print either")?;
}

#[cfg(test)]
#[allow(clippy::print_stdout)]
mod tests {
    fn g() {
        println!("in tests");
    }
    // a `}` at another indentation does not close the module
}

pub fn h() {
    dbg!(1);
    eprintln!("three");
}

#[cfg(test)]
pub(crate) fn helper() {
    print!("a test-only function still counts");
}
"#;
    let found = print_calls(text);
    assert_eq!(
        found,
        [
            (6, "println!"),
            (8, "eprint!"),
            (22, "dbg!"),
            (23, "eprintln!"),
            (28, "print!")
        ]
    );
}

#[test]
fn binaries_tests_and_test_modules_are_recognized() {
    for binary in [
        "cli/src/main.rs",
        "fixtures/src/bin/fake-server.rs",
        "fixtures/src/bin/tool/main.rs",
        "xtask/src/bench.rs",
        "some/build.rs",
        "some/examples/demo.rs",
    ] {
        assert!(is_binary(binary), "{binary}");
    }
    for library in [
        "core/src/lib.rs",
        "cli/src/output.rs",
        "fixtures/src/main_menu.rs",
    ] {
        assert!(!is_binary(library), "{library}");
    }
    assert!(is_test_file("cli/tests/cli/dropin.rs"));
    assert!(!is_test_file("core/src/tests_helpers.rs"));

    let lib = SourceFile {
        path: PathBuf::from("/w/backend/src/lib.rs"),
        name: "backend/src/lib.rs".to_owned(),
        text: "//! Lib.\nmod a;\n#[cfg(test)]\nmod properties;\n".to_owned(),
    };
    let nested = SourceFile {
        path: PathBuf::from("/w/backend/src/lock.rs"),
        name: "backend/src/lock.rs".to_owned(),
        text: "//! Lock.\n#[cfg(test)]\n#[path = \"x.rs\"]\npub(crate) mod checks;\n".to_owned(),
    };
    let modules = out_of_line_test_modules(&[lib, nested]);
    let expected: BTreeSet<PathBuf> = [
        "/w/backend/src/properties.rs",
        "/w/backend/src/properties/mod.rs",
        "/w/backend/src/lock/checks.rs",
        "/w/backend/src/lock/checks/mod.rs",
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect();
    assert_eq!(modules, expected);
}

/// A source file: its absolute path, its name relative to the workspace (with `/`), its text.
struct SourceFile {
    path: PathBuf,
    name: String,
    text: String,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .to_owned()
}

/// Every `.rs` file of the workspace, sorted by name.
fn workspace_files() -> Vec<SourceFile> {
    let root = workspace_root();
    let mut paths = Vec::new();
    collect_rs_files(&root, &mut paths);
    paths.sort();
    assert!(
        !paths.is_empty(),
        "no .rs file found under {}",
        root.display()
    );
    paths
        .into_iter()
        .map(|path| {
            let text = fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            let name = path
                .strip_prefix(&root)
                .expect("under the root")
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            SourceFile { path, name, text }
        })
        .collect()
}

fn collect_rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries =
        fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // Not followed: symbolic links (file_type does not follow them).
        let kind = entry
            .file_type()
            .unwrap_or_else(|e| panic!("{}: {e}", entry.path().display()));
        if kind.is_dir() {
            if name != ".git" && !name.starts_with("target") {
                collect_rs_files(&entry.path(), out);
            }
        } else if kind.is_file() && name.ends_with(".rs") {
            out.push(entry.path());
        }
    }
}

/// Binaries may print: `src/main.rs`, `src/bin/**`, build scripts, examples, `xtask/`.
fn is_binary(name: &str) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    parts.first() == Some(&"xtask")
        || parts.ends_with(&["src", "main.rs"])
        || parts.windows(2).any(|w| w == ["src", "bin"])
        || parts.last() == Some(&"build.rs")
        || parts.contains(&"examples")
}

/// Test files: anything with a `tests` folder in its path.
fn is_test_file(name: &str) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    parts[..parts.len() - 1].contains(&"tests")
}

/// The item declared right after each `#[cfg(test)]` line of `text`, when it is a module:
/// `(index of the "#[cfg(test)]" line, index of the `mod` line, the module's name, inline)`.
fn test_modules(lines: &[&str]) -> Vec<(usize, usize, String, bool)> {
    let mut modules = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        if line.trim() != "#[cfg(test)]" {
            continue;
        }
        let item = lines[index + 1..].iter().enumerate().find(|(_, l)| {
            let l = l.trim();
            !(l.is_empty() || l.starts_with("#[") || l.starts_with("//"))
        });
        let Some((offset, item)) = item else { continue };
        let item = item.trim();
        let item = match item.strip_prefix("pub") {
            Some(rest) if rest.starts_with('(') => rest.split_once(')').map_or(rest, |(_, r)| r),
            Some(rest) => rest,
            None => item,
        }
        .trim_start();
        let Some(rest) = item.strip_prefix("mod ") else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let inline = rest.trim_end().ends_with('{');
        if !name.is_empty() && (inline || rest.trim_end().ends_with(';')) {
            modules.push((index, index + 1 + offset, name, inline));
        }
    }
    modules
}

/// The files of the modules declared `#[cfg(test)] mod NAME;`, both of the places each can
/// live (`NAME.rs` and `NAME/mod.rs`). A `#[path]` attribute is not followed.
fn out_of_line_test_modules(files: &[SourceFile]) -> BTreeSet<PathBuf> {
    let mut modules = BTreeSet::new();
    for file in files {
        let lines: Vec<&str> = file.text.lines().collect();
        let dir = file.path.parent().expect("a file has a folder");
        let stem = file.path.file_stem().expect("a file has a name");
        let owns_folder = ["lib", "main", "mod"].iter().any(|s| stem == *s);
        let base = if owns_folder {
            dir.to_owned()
        } else {
            dir.join(stem)
        };
        for (_, _, name, inline) in test_modules(&lines) {
            if !inline {
                modules.insert(base.join(format!("{name}.rs")));
                modules.insert(base.join(&name).join("mod.rs"));
            }
        }
    }
    modules
}

/// Each print macro called in `text` outside its inline `#[cfg(test)]` modules and its
/// comment lines: `(line number, macro)`.
fn print_calls(text: &str) -> Vec<(usize, &'static str)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut skipped = vec![false; lines.len()];
    for (attribute, module, _, inline) in test_modules(&lines) {
        if !inline {
            continue;
        }
        let indent = &lines[module][..lines[module].len() - lines[module].trim_start().len()];
        let close = format!("{indent}}}");
        let end = lines[module + 1..]
            .iter()
            .position(|l| l.trim_end() == close)
            .map_or(lines.len(), |offset| module + 1 + offset + 1);
        skipped[attribute..end].iter_mut().for_each(|s| *s = true);
    }
    let mut found = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        if skipped[index] || line.trim_start().starts_with("//") {
            continue;
        }
        for name in PRINT_MACROS {
            let hits = line.match_indices(name).filter(|(at, _)| {
                !line[..*at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_')
            });
            found.extend(hits.map(|_| (index + 1, name)));
        }
    }
    found
}

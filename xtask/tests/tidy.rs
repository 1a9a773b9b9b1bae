//! Tidy checks over the workspace, in the style of rust-analyzer's `xtask/src/tidy.rs`;
//! part of `cargo test --workspace`, so of `cargo xtask ci`. Each fails with the list of
//! every offence, and each has a test showing it fails on a planted one.
//!
//! - **The root holds what it should**: every entry at the workspace root is in
//!   [`ROOT_ENTRIES`] (`.git` and the `target*` folders aside), so debris is noticed.
//! - **Module docs**: the first non-empty line of each `.rs` file starts with `//!`.
//! - **Short functions**: no function over [`MAX_FUNCTION_LINES`] lines, and **short
//!   files**: no file over [`MAX_FILE_LINES`] lines, outside tests.
//! - **No import circle** between the files of a crate.
//! - **No unused dependency**: each dependency a crate's `Cargo.toml` names is used in
//!   its sources.
//! - **The floor's versions are the workspace's**: every package `bench/io-floor`'s lock
//!   file holds is locked at the same version in the workspace's.
//!
//! Test code is any file with a `tests` folder in its path, a file declared as
//! `#[cfg(test)] mod NAME;` (its `NAME.rs` or `NAME/mod.rs`), and in other files the module
//! that follows a line `#[cfg(test)]` (other attributes may come between them). What
//! clippy checks is left to clippy: the workspace's lints `print_stdout`, `print_stderr`
//! and `dbg_macro` keep printing to the binaries, with warnings denied in CI.
//!
//! The sources are scanned, not parsed: comments and the insides of string and character
//! literals are blanked first ([`code_only`]), and `cargo fmt`'s layout is relied on.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// What may stand at the workspace root besides the workspace's members (its crates, read
/// from `Cargo.toml`), `.git` and `target*`.
const ROOT_ENTRIES: [&str; 14] = [
    ".cargo",
    ".ci",
    ".gitignore",
    "ARCHITECTURE.md",
    "CHANGELOG.md",
    "Cargo.lock",
    "Cargo.toml",
    "LICENSE-APACHE",
    "LICENSE-MIT",
    "README.md",
    "bench",
    "contrib",
    "docs",
    "packaging",
];

/// The longest a function may be, from its `fn` line to its closing `}`.
const MAX_FUNCTION_LINES: usize = 100;

/// The longest a file may be, its test modules not counted.
const MAX_FILE_LINES: usize = 800;

#[test]
fn the_root_holds_only_what_it_should() {
    let offenders = unexpected_root_entries(&workspace_root());
    assert!(
        offenders.is_empty(),
        "\nThe workspace root holds entries not in tidy.rs's ROOT_ENTRIES (debris? else add \
         them there):\n\n{}\n",
        offenders.join("\n")
    );
}

#[test]
fn a_planted_debris_file_at_the_root_is_found() {
    let root = tempfile::tempdir().unwrap();
    let manifest = "[workspace]\nmembers = [\"core\", \"backend-toy\"]\n";
    fs::write(root.path().join("Cargo.toml"), manifest).unwrap();
    for entry in ["README.md", "core", "backend-toy"] {
        fs::write(root.path().join(entry), "").unwrap();
    }
    fs::create_dir(root.path().join("target-other")).unwrap();
    fs::create_dir(root.path().join(".git")).unwrap();
    assert!(unexpected_root_entries(root.path()).is_empty());
    fs::write(root.path().join("E.out"), "debris").unwrap();
    assert_eq!(unexpected_root_entries(root.path()), ["E.out"]);
}

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
fn no_function_is_over_100_lines_outside_tests() {
    let files = workspace_files();
    let test_files = out_of_line_test_modules(&files);
    let mut offenders = Vec::new();
    for file in files.iter().filter(|f| !is_test_code(f, &test_files)) {
        for (line, name, length) in long_functions(&file.text) {
            offenders.push(format!("{}:{line}: fn {name}: {length} lines", file.name));
        }
    }
    assert!(
        offenders.is_empty(),
        "\nFunctions outside tests are at most {MAX_FUNCTION_LINES} lines; these are longer \
         (split them):\n\n{}\n",
        offenders.join("\n")
    );
}

#[test]
fn a_planted_101_line_function_is_found() {
    let body = |lines: usize| "    let _ = 1;\n".repeat(lines - 2);
    let text = format!(
        "//! A module.\n\npub(crate) fn fits() {{\n{}}}\n\nfn too_long(\n    a: u8,\n) {{\n{}}}\n\n\
         #[cfg(test)]\nmod tests {{\n    fn long_test() {{\n{}    }}\n}}\n",
        body(100),
        body(99),
        body(200)
    );
    assert_eq!(long_functions(&text), [(104, "too_long".to_owned(), 101)]);
    // Braces in strings, characters and comments are not counted.
    let tricky = "fn f() {\n    let _ = \"}\";\n    let _ = '}';\n    // }\n}\nfn g();\n";
    assert!(long_functions(tricky).is_empty());
}

#[test]
fn no_file_is_over_800_lines_outside_tests() {
    let files = workspace_files();
    let test_files = out_of_line_test_modules(&files);
    let mut offenders = Vec::new();
    for file in files.iter().filter(|f| !is_test_code(f, &test_files)) {
        let length = non_test_lines(&file.text);
        if length > MAX_FILE_LINES {
            offenders.push(format!("{}: {length} lines", file.name));
        }
    }
    assert!(
        offenders.is_empty(),
        "\nFiles outside tests are at most {MAX_FILE_LINES} lines (their test modules not \
         counted); these are longer (split them):\n\n{}\n",
        offenders.join("\n")
    );
}

#[test]
fn a_planted_801_line_file_is_found() {
    let code = "fn f() {}\n".repeat(800);
    let tests = "#[cfg(test)]\nmod tests {\n    fn t() {}\n}\n";
    assert_eq!(non_test_lines(&format!("{code}{tests}")), 800);
    assert_eq!(non_test_lines(&format!("{code}fn g() {{}}\n{tests}")), 801);
}

#[test]
fn no_import_circle_between_the_files_of_a_crate() {
    let root = workspace_root();
    let mut offenders = Vec::new();
    for package in workspace_packages(&root) {
        let files = package_sources(&root, &package);
        for (circle, files) in import_circles(&files) {
            let files: Vec<String> = files.into_iter().collect();
            offenders.push(format!(
                "{package}: {} (the files in circles with each other: {})",
                circle.join(" -> "),
                files.join(", ")
            ));
        }
    }
    assert!(
        offenders.is_empty(),
        "\nFiles of a crate that use each other in a circle (a file may use its ancestor \
         modules and its own submodules; between others, the uses go one way):\n\n{}\n",
        offenders.join("\n")
    );
}

#[test]
fn a_planted_import_circle_is_found() {
    let crate_files = |a: &str, b: &str| -> BTreeMap<String, String> {
        [
            (
                "src/lib.rs",
                "//! Lib.\nmod a;\nmod b;\nmod c;\npub use a::A;\n",
            ),
            ("src/a.rs", a),
            ("src/b.rs", b),
            ("src/b/inner.rs", "//! Inner.\nuse super::super::a::A;\n"),
            (
                "src/c.rs",
                "//! C.\npub struct C;\nfn f() { let _ = crate::b::B; }\n",
            ),
        ]
        .into_iter()
        .map(|(name, text)| (name.to_owned(), text.to_owned()))
        .collect()
    };
    let b = "//! B.\nuse crate::c::{C, self};\nmod inner;\n";
    let circles = import_circles(&crate_files("//! A.\npub struct A;\n", b));
    assert_eq!(circles[0].0, ["src/b.rs", "src/c.rs", "src/b.rs"]);
    assert_eq!(circles.len(), 1);
    // a -> c -> b -> a, and b -> c: the shortest circle through the first file.
    let a = "//! A.\nuse crate::{c::C, lib_item};\n// use crate::b;\n";
    let b = "//! B.\nuse crate::c::{C, self};\nuse super::a;\nmod inner;\n";
    let circles = import_circles(&crate_files(a, b));
    assert_eq!(
        circles[0].0,
        ["src/a.rs", "src/c.rs", "src/b.rs", "src/a.rs"]
    );
    assert_eq!(circles[0].1.len(), 3);
    assert_eq!(circles.len(), 1);
    // A submodule using its parent, and the parent using it, is no circle.
    let nested = [
        (
            "src/main.rs",
            "//! Main.\nmod x;\nfn main() { x::run(); }\nfn helper() {}\n",
        ),
        (
            "src/x.rs",
            "//! X.\nmod y;\npub fn run() { crate::helper(); y::go(); }\n",
        ),
        ("src/x/y.rs", "//! Y.\nuse super::run;\npub fn go() {}\n"),
    ]
    .into_iter()
    .map(|(name, text)| (name.to_owned(), text.to_owned()))
    .collect();
    assert!(import_circles(&nested).is_empty());
}

#[test]
fn every_dependency_is_used() {
    let root = workspace_root();
    let mut offenders = Vec::new();
    for package in workspace_packages(&root) {
        let manifest = fs::read_to_string(root.join(&package).join("Cargo.toml")).unwrap();
        let files = package_sources(&root, &package);
        for name in unused_dependencies(&manifest, files.values().map(String::as_str)) {
            offenders.push(format!("{package}/Cargo.toml: {name}"));
        }
    }
    assert!(
        offenders.is_empty(),
        "\nDependencies no source of their crate uses (as `name::` or `use name`); remove \
         them:\n\n{}\n",
        offenders.join("\n")
    );
}

#[test]
fn a_planted_unused_dependency_is_found() {
    let manifest = r#"
[package]
name = "demo"

[dependencies]
serde = { workspace = true }
whmtoken-core.workspace = true
unused-crate = "1"
renamed = { package = "other", version = "1" }

[dev-dependencies]
tempfile = "3"

[target.'cfg(unix)'.dependencies]
rustix = "1"
"#;
    let sources = [
        "//! Lib.\nuse whmtoken_core::Report;\n#[derive(serde::Serialize)]\nstruct S;\n",
        "//! Test.\nfn t() { let _ = tempfile::tempdir(); rustix::process::getuid(); }\n",
        "//! Comments do not count: unused_crate::x, renamed::y\nconst S: &str = \"renamed::z\";\n",
    ];
    assert_eq!(
        unused_dependencies(manifest, sources.into_iter()),
        ["renamed", "unused-crate"]
    );
}

/// The bench's floor (`bench/io-floor`, outside the workspace, with its own lock file).
const FLOOR_LOCK: &str = "bench/io-floor/Cargo.lock";

#[test]
fn the_floor_locks_the_workspace_s_versions() {
    let root = workspace_root();
    let read = |path: &str| fs::read_to_string(root.join(path)).unwrap();
    let drift = version_drift(&read(FLOOR_LOCK), &read("Cargo.lock"));
    assert!(
        drift.is_empty(),
        "\n{FLOOR_LOCK} locks versions the workspace does not (copy Cargo.lock over it and \
         build the floor to prune it):\n\n{}\n",
        drift.join("\n")
    );
}

#[test]
fn a_planted_version_drift_is_found() {
    let workspace = "[[package]]\nname = \"sha2\"\nversion = \"0.10.9\"\n\n\
                     [[package]]\nname = \"serde\"\nversion = \"1.0.1\"\n";
    let floor = "[[package]]\nname = \"io-floor\"\nversion = \"0.1.0\"\n\n\
                 [[package]]\nname = \"sha2\"\nversion = \"0.10.8\"\n";
    assert_eq!(version_drift(floor, workspace), ["sha2 0.10.8"]);
    assert!(version_drift(workspace, workspace).is_empty());
}

/// The packages `floor` locks at a version `workspace` does not lock (the floor itself
/// aside), as `name version`.
fn version_drift(floor: &str, workspace: &str) -> Vec<String> {
    let locked = |text: &str| -> BTreeSet<(String, String)> {
        let mut packages = BTreeSet::new();
        let mut name = None;
        for line in text.lines() {
            let value = |key: &str| {
                line.strip_prefix(key)
                    .and_then(|rest| rest.strip_prefix(" = \""))
                    .and_then(|rest| rest.strip_suffix('"'))
                    .map(str::to_owned)
            };
            if let Some(n) = value("name") {
                name = Some(n);
            } else if let (Some(version), Some(n)) = (value("version"), name.take()) {
                packages.insert((n, version));
            }
        }
        packages
    };
    let workspace = locked(workspace);
    locked(floor)
        .into_iter()
        .filter(|(name, _)| name != "io-floor")
        .filter(|package| !workspace.contains(package))
        .map(|(name, version)| format!("{name} {version}"))
        .collect()
}

#[test]
fn code_only_blanks_comments_strings_and_characters() {
    let text = "let a = \"x{\\\"}\"; // }\nlet b = '{'; /* {\n} */ let c: &'static str = r#\"\"}\"#;\n\
                let d = br#\"{\"#; let e = b'}'; let f = \"}\";\n";
    let code = code_only(text);
    assert_eq!(code.lines().count(), text.lines().count());
    assert!(!code.contains('{') && !code.contains('}'), "{code}");
    assert!(code.contains("let c: &'static str"), "{code}");
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

/// The entries of `root` neither in [`ROOT_ENTRIES`] nor members of its workspace, `.git`
/// and `target*` aside, sorted.
fn unexpected_root_entries(root: &Path) -> Vec<String> {
    let members = workspace_packages(root);
    let entries = fs::read_dir(root).unwrap_or_else(|e| panic!("{}: {e}", root.display()));
    let mut offenders: Vec<String> = entries
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != ".git" && !name.starts_with("target"))
        .filter(|name| !ROOT_ENTRIES.contains(&name.as_str()) && !members.contains(name))
        .collect();
    offenders.sort();
    offenders
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
            let name = relative_name(&root, &path);
            SourceFile { path, name, text }
        })
        .collect()
}

fn relative_name(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .expect("under the root")
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// The `.rs` files under `dir`, skipping `.git` and every folder whose name starts with
/// `target` (`target/`, and the side target folders some builds use).
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

/// The workspace's packages: the folders of its `members`.
fn workspace_packages(root: &Path) -> Vec<String> {
    let manifest: toml::Table = fs::read_to_string(root.join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let members = manifest["workspace"]["members"].as_array().unwrap();
    members
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect()
}

/// A package's `.rs` files: name relative to the package folder, and text.
fn package_sources(root: &Path, package: &str) -> BTreeMap<String, String> {
    let folder = root.join(package);
    let mut paths = Vec::new();
    collect_rs_files(&folder, &mut paths);
    paths
        .into_iter()
        .map(|path| {
            let text = fs::read_to_string(&path).unwrap();
            (relative_name(&folder, &path), text)
        })
        .collect()
}

/// Whether a whole file is test code: in a `tests` folder, or a `#[cfg(test)] mod NAME;`.
fn is_test_code(file: &SourceFile, test_files: &BTreeSet<PathBuf>) -> bool {
    let parts: Vec<&str> = file.name.split('/').collect();
    parts[..parts.len() - 1].contains(&"tests") || test_files.contains(&file.path)
}

/// The files of the modules declared `#[cfg(test)] mod NAME;`, both of the places each can
/// live (`NAME.rs` and `NAME/mod.rs`). A `#[path]` attribute is not followed.
fn out_of_line_test_modules(files: &[SourceFile]) -> BTreeSet<PathBuf> {
    let mut modules = BTreeSet::new();
    for file in files {
        let dir = file.path.parent().expect("a file has a folder");
        let stem = file.path.file_stem().expect("a file has a name");
        let owns_folder = ["lib", "main", "mod"].iter().any(|s| stem == *s);
        let base = if owns_folder {
            dir.to_owned()
        } else {
            dir.join(stem)
        };
        for (_, name, inline) in test_modules(&code_only(&file.text)) {
            if !inline {
                modules.insert(base.join(format!("{name}.rs")));
                modules.insert(base.join(&name).join("mod.rs"));
            }
        }
    }
    modules
}

/// The modules declared right after a `#[cfg(test)]` line of `code` (blanked by
/// [`code_only`]): `(index of the "#[cfg(test)]" line, the module's name, inline)`.
fn test_modules(code: &str) -> Vec<(usize, String, bool)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut modules = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        if line.trim() != "#[cfg(test)]" {
            continue;
        }
        let item = lines[index + 1..]
            .iter()
            .map(|l| l.trim())
            .find(|l| !(l.is_empty() || l.starts_with("#[")));
        let Some(rest) = item
            .map(strip_visibility)
            .and_then(|i| i.strip_prefix("mod "))
        else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let inline = rest.trim_end().ends_with('{');
        if !name.is_empty() && (inline || rest.trim_end().ends_with(';')) {
            modules.push((index, name, inline));
        }
    }
    modules
}

/// `item` without a leading `pub`, `pub(crate)`, `pub(super)` or `pub(in …)`.
fn strip_visibility(item: &str) -> &str {
    match item.strip_prefix("pub") {
        Some(rest) if rest.starts_with('(') => rest.split_once(')').map_or(rest, |(_, r)| r),
        Some(rest) if rest.starts_with(' ') => rest,
        _ => item,
    }
    .trim_start()
}

/// Which lines of `text` belong to its inline `#[cfg(test)]` modules.
fn test_lines(code: &str) -> Vec<bool> {
    let lines: Vec<&str> = code.lines().collect();
    let mut mask = vec![false; lines.len()];
    for (attribute, _, inline) in test_modules(code) {
        if inline {
            let end = block_end(&lines, attribute).unwrap_or(lines.len() - 1);
            mask[attribute..=end].iter_mut().for_each(|m| *m = true);
        }
    }
    mask
}

/// The index of the line closing the first `{` block from line `start` on, counting
/// braces; `None` when a `;` ends the item before any `{`.
fn block_end(lines: &[&str], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut opened = false;
    for (index, line) in lines.iter().enumerate().skip(start) {
        for c in line.chars() {
            match c {
                '{' => {
                    depth += 1;
                    opened = true;
                }
                '}' => depth = depth.saturating_sub(1),
                ';' if !opened => return None,
                _ => {}
            }
            if opened && depth == 0 {
                return Some(index);
            }
        }
    }
    None
}

/// The number of lines of `text` outside its inline test modules.
fn non_test_lines(text: &str) -> usize {
    test_lines(&code_only(text)).iter().filter(|t| !**t).count()
}

/// The functions of `text` outside its inline test modules that are longer than
/// [`MAX_FUNCTION_LINES`]: `(line number, name, lines)`.
fn long_functions(text: &str) -> Vec<(usize, String, usize)> {
    let code = code_only(text);
    let lines: Vec<&str> = code.lines().collect();
    let in_tests = test_lines(&code);
    let mut found = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let Some(name) = function_name(line) else {
            continue;
        };
        if in_tests[index] {
            continue;
        }
        if let Some(end) = block_end(&lines, index) {
            let length = end - index + 1;
            if length > MAX_FUNCTION_LINES {
                found.push((index + 1, name, length));
            }
        }
    }
    found
}

/// The name of the function a line of code declares, if it declares one.
fn function_name(line: &str) -> Option<String> {
    let mut rest = strip_visibility(line.trim_start());
    for qualifier in ["const ", "async ", "unsafe "] {
        rest = rest.strip_prefix(qualifier).unwrap_or(rest);
    }
    if let Some(abi) = rest.strip_prefix("extern \"") {
        rest = abi.split_once("\" ").map_or(abi, |(_, r)| r);
    }
    let name: String = rest
        .strip_prefix("fn ")?
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// `text` with its comments and the insides of its string and character literals replaced
/// by spaces, line breaks kept: what is left is code.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && matches!(next, Some('"' | '#')) && starts_token(&chars, i) {
            let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
            if chars.get(i + 1 + hashes) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let close: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let body = i + 2 + hashes;
            let end = text_find(&chars, body, &close).unwrap_or(chars.len());
            out.push('r');
            out.extend(std::iter::repeat_n('#', hashes));
            out.push('"');
            out.extend(chars[body..end].iter().map(|c| blank(*c)));
            out.push_str(&close);
            i = (end + close.len()).min(chars.len());
        } else if c == '"' {
            out.push('"');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if let Some(c) = chars.get(i) {
                    out.push(blank(*c));
                }
                i += 1;
            }
            out.push('"');
            i += 1;
        } else if c == '\'' && (chars.get(i + 2) == Some(&'\'') || next == Some('\\')) {
            // A character literal ('x', '\n', '\u{..}'); otherwise a lifetime.
            let end = if next == Some('\\') {
                (i + 3..chars.len())
                    .find(|j| chars[*j] == '\'')
                    .unwrap_or(chars.len() - 1)
            } else {
                i + 2
            };
            out.push('\'');
            out.extend(std::iter::repeat_n(' ', end - i - 1));
            out.push('\'');
            i = end + 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Whether a raw string's `r` at `at` starts a token: nothing of an identifier before it,
/// or only the `b` of a raw byte string.
fn starts_token(chars: &[char], at: usize) -> bool {
    !is_ident_char(chars, at) || chars[at - 1] == 'b' && !is_ident_char(chars, at - 1)
}

/// Whether the character before `at` continues an identifier (so `r` at `at` is not a raw
/// string's prefix).
fn is_ident_char(chars: &[char], at: usize) -> bool {
    at > 0 && (chars[at - 1].is_alphanumeric() || chars[at - 1] == '_')
}

fn text_find(chars: &[char], from: usize, needle: &str) -> Option<usize> {
    let needle: Vec<char> = needle.chars().collect();
    (from..chars.len()).find(|i| chars[*i..].starts_with(&needle))
}

/// The import circles between the files of one package (`files`: name relative to the
/// package folder, text), each as the files in order, the first repeated at the end.
///
/// Each crate root (`src/lib.rs`, `src/main.rs`, `src/bin/*`, `tests/*`) gives a module
/// tree through its `mod NAME;` declarations. A file uses another when one of its paths
/// (`crate::…`, `super::…`, `self::…`, or a child module's name) reaches that file's
/// module, in a `use` or in code. Uses between a module and its ancestors or descendants
/// are not counted: a module may use its parent, and its parent it.
fn import_circles(files: &BTreeMap<String, String>) -> Vec<Circle> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for root in crate_roots(files) {
        let modules = module_tree(files, &root);
        for (path, file) in &modules {
            for used in used_modules(&files[file], path, &modules) {
                let related = used.starts_with(path) || path.starts_with(&used);
                let target = &modules[&used];
                if !related && target != file {
                    graph
                        .entry(file.clone())
                        .or_default()
                        .insert(target.clone());
                }
            }
        }
    }
    circles(&graph)
}

/// The crate roots among a package's files.
fn crate_roots(files: &BTreeMap<String, String>) -> Vec<String> {
    files
        .keys()
        .filter(|name| {
            let parts: Vec<&str> = name.split('/').collect();
            matches!(
                parts[..],
                ["src", "lib.rs" | "main.rs"]
                    | ["build.rs"]
                    | ["src", "bin", _]
                    | ["tests" | "benches" | "examples", _]
                    | ["src", "bin", _, "main.rs"]
                    | ["tests" | "benches" | "examples", _, "main.rs"]
            )
        })
        .cloned()
        .collect()
}

/// A module path (`[]` for the crate root) and the file it lives in.
type Modules = BTreeMap<Vec<String>, String>;

/// The modules of the crate rooted at `root`, with their files: followed through
/// `mod NAME;` (to `NAME.rs` or `NAME/mod.rs`); inline modules live in their file.
fn module_tree(files: &BTreeMap<String, String>, root: &str) -> Modules {
    let mut modules = Modules::new();
    let mut pending = vec![(Vec::<String>::new(), root.to_owned())];
    while let Some((path, file)) = pending.pop() {
        let Some(text) = files.get(&file) else {
            continue;
        };
        // A crate root and a `mod.rs` hold their children beside them; another file, in
        // the folder of its name.
        let (parent, name) = file.rsplit_once('/').unwrap_or(("", &file));
        let dir = if file == root || name == "mod.rs" {
            parent.to_owned()
        } else {
            format!("{parent}/{}", name.trim_end_matches(".rs"))
        };
        let code = code_only(text);
        for line in code.lines() {
            let Some(rest) = strip_visibility(line.trim()).strip_prefix("mod ") else {
                continue;
            };
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let mut child = path.clone();
            child.push(name.clone());
            if rest.trim_end().ends_with('{') {
                modules.insert(child, file.clone());
            } else if rest.trim_end().ends_with(';') {
                let join = |f: &str| {
                    if dir.is_empty() {
                        f.to_owned()
                    } else {
                        format!("{dir}/{f}")
                    }
                };
                let candidates = [join(&format!("{name}.rs")), join(&format!("{name}/mod.rs"))];
                if let Some(found) = candidates.into_iter().find(|c| files.contains_key(c)) {
                    pending.push((child, found));
                }
            }
        }
        modules.insert(path, file);
    }
    modules
}

/// The modules the file of module `here` uses (the deepest module each path reaches).
fn used_modules(text: &str, here: &[String], modules: &Modules) -> BTreeSet<Vec<String>> {
    let code = code_only(text);
    let chars: Vec<char> = code.chars().collect();
    let mut used = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let after_path = i > 1 && chars[i - 1] == ':' && chars[i - 2] == ':';
        if !chars[i].is_alphabetic() || is_ident_char(&chars, i) || after_path {
            i += 1;
            continue;
        }
        let (word, after) = identifier(&chars, i);
        let start = match word.as_str() {
            "crate" => Some(Vec::new()),
            "self" => Some(here.to_vec()),
            "super" => Some(here[..here.len().saturating_sub(1)].to_vec()),
            _ => {
                let mut child = here.to_vec();
                child.push(word.clone());
                modules.contains_key(&child).then_some(child)
            }
        };
        if let Some(start) = start.filter(|_| starts_with_at(&chars, after, "::")) {
            reached(&chars, after, start, modules, &mut used);
        }
        i = after.max(i + 1);
    }
    used
}

/// Follows the path continuing at `at` (after a segment that reached `module`), adding the
/// deepest module reached by each branch of a `{…}` group.
fn reached(
    chars: &[char],
    at: usize,
    module: Vec<String>,
    modules: &Modules,
    used: &mut BTreeSet<Vec<String>>,
) {
    let mut at = at;
    let mut module = module;
    loop {
        if !starts_with_at(chars, at, "::") {
            used.insert(module);
            return;
        }
        at = skip_space(chars, at + 2);
        if chars.get(at) == Some(&'{') {
            used.insert(module.clone());
            let mut depth = 0;
            let mut branch_start = at + 1;
            let mut j = at;
            while j < chars.len() {
                match chars[j] {
                    '{' => depth += 1,
                    '}' | ',' if depth == 1 => {
                        let branch = skip_space(chars, branch_start);
                        let (word, after) = identifier(chars, branch);
                        if !word.is_empty() {
                            let mut child = module.clone();
                            if word == "super" {
                                child.pop();
                            } else if word != "self" {
                                child.push(word);
                            }
                            if modules.contains_key(&child) {
                                reached(chars, after, child, modules, used);
                            }
                        }
                        branch_start = j + 1;
                        if chars[j] == '}' {
                            return;
                        }
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
                j += 1;
            }
            return;
        }
        let (word, after) = identifier(chars, at);
        let mut child = module.clone();
        if word == "super" {
            child.pop();
        } else {
            child.push(word);
        }
        if !modules.contains_key(&child) {
            used.insert(module);
            return;
        }
        module = child;
        at = after;
    }
}

fn identifier(chars: &[char], at: usize) -> (String, usize) {
    let word: String = chars[at.min(chars.len())..]
        .iter()
        .take_while(|c| c.is_alphanumeric() || **c == '_')
        .collect();
    let after = at + word.chars().count();
    (word, after)
}

fn skip_space(chars: &[char], mut at: usize) -> usize {
    while chars.get(at).is_some_and(|c| c.is_whitespace()) {
        at += 1;
    }
    at
}

fn starts_with_at(chars: &[char], at: usize, text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    chars.get(at..).is_some_and(|rest| rest.starts_with(&text))
}

/// A circle (its first node repeated at the end), and every node in circles with it.
type Circle = (Vec<String>, BTreeSet<String>);

/// The circles of a directed graph: for each strongly connected component of two or more
/// nodes, the shortest circle through its smallest node, and the component.
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Circle> {
    let next = |node: &String| graph.get(node).into_iter().flatten();
    let reachable = |from: &String| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(node) = stack.pop() {
            stack.extend(next(&node).filter(|n| seen.insert((*n).clone())).cloned());
        }
        seen
    };
    let reach: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|n| (n, reachable(n))).collect();
    let mut done = BTreeSet::new();
    let mut found = Vec::new();
    for (&node, from_node) in &reach {
        if done.contains(node) || !from_node.contains(node) {
            continue;
        }
        let component: BTreeSet<String> = from_node
            .iter()
            .filter(|other| reach.get(other).is_some_and(|r| r.contains(node)))
            .cloned()
            .collect();
        done.extend(component.iter().cloned());
        // Breadth first from `node` until it is reached again.
        let mut previous: BTreeMap<&String, &String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([node]);
        'search: while let Some(current) = queue.pop_front() {
            for following in next(current) {
                if following == node {
                    let mut circle = vec![node.clone()];
                    let mut at = current;
                    while at != node {
                        circle.push(at.clone());
                        at = previous[at];
                    }
                    circle[1..].reverse();
                    circle.push(node.clone());
                    found.push((circle, component));
                    break 'search;
                }
                if !previous.contains_key(following) {
                    previous.insert(following, current);
                    queue.push_back(following);
                }
            }
        }
    }
    found
}

/// The dependencies of a `Cargo.toml` (normal, dev, build, per target) that no source of
/// `sources` uses as `name::…`, `use name` or `extern crate name`, sorted.
fn unused_dependencies<'a>(manifest: &str, sources: impl Iterator<Item = &'a str>) -> Vec<String> {
    let manifest: toml::Table = manifest.parse().unwrap();
    let mut tables: Vec<&toml::Table> = Vec::new();
    let kinds = ["dependencies", "dev-dependencies", "build-dependencies"];
    for kind in kinds {
        tables.extend(manifest.get(kind).and_then(|t| t.as_table()));
    }
    for target in manifest
        .get("target")
        .and_then(|t| t.as_table())
        .into_iter()
        .flat_map(|t| t.values())
    {
        for kind in kinds {
            tables.extend(target.get(kind).and_then(|t| t.as_table()));
        }
    }
    let names: BTreeSet<&String> = tables.iter().flat_map(|t| t.keys()).collect();
    let code: Vec<String> = sources.map(code_only).collect();
    let mut unused: Vec<String> = names
        .into_iter()
        .filter(|name| {
            let rust = name.replace('-', "_");
            !code.iter().any(|code| uses_crate(code, &rust))
        })
        .cloned()
        .collect();
    unused.sort();
    unused
}

/// Whether `code` names the crate `rust_name`: `name::`, `use name` or `extern crate name`.
fn uses_crate(code: &str, rust_name: &str) -> bool {
    code.match_indices(rust_name).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = &code[at + rust_name.len()..];
        let starts = !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
        let ends = !after.starts_with(|c: char| c.is_alphanumeric() || c == '_');
        let prefix = code[..at].trim_end();
        starts
            && ends
            && (after.starts_with("::")
                || prefix.ends_with("use")
                || prefix.ends_with("extern crate"))
    })
}

//! The backend kinds are registered in one place, `whmtoken_backends::KINDS`, and every
//! list that must agree with it does: each `whmtoken-backend-*` crate of the workspace is
//! registered, with its cargo feature; no other source file names a backend crate (so no
//! second registry can exist); the command line's parser and `fake-server build` reach
//! every kind (their tests: `cli/src/config.rs`, `fake-server/tests/fake_server.rs`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use whmtoken_backends::KINDS;

/// The workspace root.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("backends/ sits in the workspace")
        .to_owned()
}

fn manifest(folder: &Path) -> toml::Table {
    let path = folder.join("Cargo.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    text.parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The workspace's members: (package name, folder).
fn members() -> Vec<(String, PathBuf)> {
    let root = manifest(&workspace());
    root["workspace"]["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|member| {
            let folder = workspace().join(member.as_str().expect("a path"));
            let name = manifest(&folder)["package"]["name"]
                .as_str()
                .expect("a name")
                .to_owned();
            (name, folder)
        })
        .collect()
}

/// The crate a kind's config type is in, as cargo names it (`whmtoken-backend-files`).
fn crate_of(config_type: &str) -> String {
    let (path, _) = config_type.split_once("::").expect("crate::Type");
    path.trim().replace('_', "-")
}

fn strings(value: &toml::Value) -> BTreeSet<&str> {
    let list = value.as_array().expect("a list");
    list.iter().map(|v| v.as_str().expect("a string")).collect()
}

#[test]
fn every_backend_crate_is_registered_once_with_its_feature() {
    let names: BTreeSet<&str> = KINDS.iter().map(|k| k.name).collect();
    assert_eq!(names.len(), KINDS.len(), "a kind registered twice");
    let registered: BTreeSet<String> = KINDS.iter().map(|k| crate_of(k.config_type())).collect();
    let backends: BTreeSet<String> = members()
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| name.starts_with("whmtoken-backend-"))
        .collect();
    assert_eq!(registered, backends, "registered kinds vs backend crates");

    let own = manifest(Path::new(env!("CARGO_MANIFEST_DIR")));
    let features = own["features"].as_table().expect("[features]");
    let all = strings(&features["all"]);
    let harness = strings(&features["harness"]);
    for kind in KINDS {
        let krate = crate_of(kind.config_type());
        let Some(feature) = features.get(kind.name) else {
            panic!(
                "the kind {} has no feature of its name in backends/Cargo.toml",
                kind.name
            )
        };
        assert_eq!(
            strings(feature),
            BTreeSet::from([format!("dep:{krate}").as_str()]),
            "the feature {} builds in {krate}",
            kind.name
        );
        assert!(all.contains(kind.name), "`all` lacks {}", kind.name);
        let forwarded = format!("{krate}?/harness");
        assert!(
            harness.contains(forwarded.as_str()),
            "`harness` lacks {forwarded}"
        );
        assert_eq!(
            own["dependencies"][&krate]["optional"].as_bool(),
            Some(true),
            "{krate}: an optional dependency"
        );
    }
    assert_eq!(all.len(), KINDS.len(), "`all` holds only the kinds");
}

/// The Rust files under `folder`, `target/` and hidden folders left out.
fn rust_files(folder: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(folder).expect("a folder") {
        let path = entry.expect("an entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() && name != "target" && !name.starts_with('.') {
            rust_files(&path, found);
        } else if name.ends_with(".rs") {
            found.push(path);
        }
    }
}

/// Code that is not a test: outside `tests/` folders, before a file's `#[cfg(test)]`,
/// comment lines left out.
fn non_test_code(path: &Path) -> String {
    if path.components().any(|c| c.as_os_str() == "tests") {
        return String::new();
    }
    let text = std::fs::read_to_string(path).expect("UTF-8 source");
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    code.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn only_the_registry_names_a_backend_crate() {
    let registry = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs");
    let crates: Vec<String> = KINDS
        .iter()
        .map(|k| crate_of(k.config_type()).replace('-', "_"))
        .collect();
    let mut files = Vec::new();
    rust_files(&workspace(), &mut files);
    let mut naming = BTreeSet::new();
    for (_, folder) in members() {
        let folder_name = folder.file_name().and_then(|n| n.to_str()).unwrap_or("");
        for file in files.iter().filter(|f| f.starts_with(&folder)) {
            let code = non_test_code(file);
            for krate in &crates {
                // A backend crate's own sources may name it.
                let own = krate.replace('_', "-").ends_with(folder_name);
                if !own && code.contains(krate.as_str()) {
                    naming.insert(file.clone());
                }
            }
        }
    }
    assert_eq!(
        naming,
        BTreeSet::from([registry]),
        "files naming a backend crate"
    );

    // Nor does any crate but the registry depend on one outside its dev-dependencies.
    for (name, folder) in members() {
        let manifest = manifest(&folder);
        for dependencies in normal_dependencies(&manifest) {
            for krate in &crates {
                let krate = krate.replace('_', "-");
                assert!(
                    name == "whmtoken-backends" || !dependencies.contains_key(&krate),
                    "{name} depends on {krate}: register it in whmtoken-backends instead"
                );
            }
        }
    }
}

/// A manifest's `[dependencies]` and every `[target.'…'.dependencies]`.
fn normal_dependencies(manifest: &toml::Table) -> Vec<&toml::Table> {
    let targets = manifest.get("target").and_then(|t| t.as_table());
    let per_target = targets
        .into_iter()
        .flat_map(|targets| targets.values())
        .filter_map(|target| target.get("dependencies"));
    manifest
        .get("dependencies")
        .into_iter()
        .chain(per_target)
        .filter_map(|d| d.as_table())
        .collect()
}

/// The converter's build has no seeding, dumping or HTTP code: the command line reaches
/// the kinds without `harness`, and depends on no test-support crate.
#[test]
fn the_command_line_never_enables_the_harness() {
    let cli = manifest(&workspace().join("cli"));
    let dependency = &cli["dependencies"]["whmtoken-backends"];
    let features = dependency.get("features").map(strings).unwrap_or_default();
    assert!(!features.contains("harness"), "{dependency}");
    for (name, enables) in cli["features"].as_table().expect("[features]") {
        for enabled in strings(enables) {
            assert!(
                !enabled.ends_with("/harness"),
                "cli feature {name}: {enabled}"
            );
        }
    }
    let dependencies = cli["dependencies"].as_table().expect("[dependencies]");
    for test_crate in ["whmtoken-fixtures", "whmtoken-fake-server"] {
        assert!(
            !dependencies.contains_key(test_crate),
            "cli depends on {test_crate}"
        );
    }
}

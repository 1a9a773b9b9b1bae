//! The file backend passes the conformance suite, on cPanel file trees built from scenarios.

use camino::Utf8Path;
use whmtoken_backend_files::{FilesBackend, FilesConfig};
use whmtoken_core::Backend;
use whmtoken_fixtures::Scenario;
use whmtoken_fixtures::conformance::{self, Harness};

struct Files;

impl Harness for Files {
    fn build(&self, scenario: &Scenario, dir: &Utf8Path) -> Box<dyn Backend> {
        scenario.build_files(dir);
        self.reopen(dir)
    }

    fn reopen(&self, dir: &Utf8Path) -> Box<dyn Backend> {
        let config = FilesConfig {
            root: dir.to_owned(),
        };
        Box::new(FilesBackend::open(&config).unwrap_or_else(|e| panic!("open {dir}: {e}")))
    }

    fn accounting_lines(&self, dir: &Utf8Path) -> Vec<String> {
        let path = dir.join("var/cpanel/accounting.log");
        match std::fs::read_to_string(&path) {
            Ok(text) => text.lines().map(str::to_owned).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("read {path}: {e}"),
        }
    }
}

#[test]
fn the_files_backend_conforms() {
    conformance::run_all(&Files);
}

//! The SQLite backend passes the conformance suite, on database files built from scenarios.

use camino::Utf8Path;
use serde_json::Value;
use whmtoken_backend_sqlite::{SqliteBackend, SqliteConfig};
use whmtoken_core::Backend;
use whmtoken_fixtures::Scenario;
use whmtoken_fixtures::conformance::{self, Harness};

struct Sqlite;

impl Sqlite {
    fn open(dir: &Utf8Path) -> SqliteBackend {
        let config = SqliteConfig {
            path: dir.join("server.db"),
        };
        SqliteBackend::open(&config).unwrap_or_else(|e| panic!("open {}: {e}", config.path))
    }
}

impl Harness for Sqlite {
    fn build(&self, scenario: &Scenario, dir: &Utf8Path) -> Box<dyn Backend> {
        scenario
            .build_sqlite(dir)
            .unwrap_or_else(|e| panic!("build {dir}: {e}"));
        self.reopen(dir)
    }

    fn reopen(&self, dir: &Utf8Path) -> Box<dyn Backend> {
        Box::new(Self::open(dir))
    }

    fn accounting_lines(&self, dir: &Utf8Path) -> Vec<String> {
        let dump = Self::open(dir).dump().expect("dump");
        let Value::Array(lines) = &dump["accounting"] else {
            panic!("`accounting` in the dump is not a list: {dump}");
        };
        lines
            .iter()
            .map(|line| {
                line.as_str()
                    .expect("an accounting line is a string")
                    .to_owned()
            })
            .collect()
    }
}

#[test]
fn the_sqlite_backend_conforms() {
    conformance::run_all(&Sqlite);
}

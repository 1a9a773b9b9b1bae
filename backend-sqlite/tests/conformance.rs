//! The SQLite backend passes the conformance suite, one test per check, on database files
//! built by its harness.

whmtoken_fixtures::conformance_tests!(whmtoken_backend_sqlite::SqliteConfig);

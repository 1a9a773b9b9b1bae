//! The file backend passes the conformance suite, one test per check, on cPanel file trees
//! built by its harness.

whmtoken_fixtures::conformance_tests!(whmtoken_backend_files::FilesConfig);

//! A SQLite server's logs folder, `<db stem>-logs` beside the database: found there, and a
//! log that is a symbolic link or a FIFO refused and named, never followed or waited on.

use std::io::Read;

use camino::Utf8PathBuf;
use whmtoken_backend_sqlite::{SqliteBackend, SqliteConfig};
use whmtoken_core::{Backend, BackendError};

#[test]
fn the_logs_are_beside_the_database_and_unsafe_files_refused() {
    let dir = tempfile::tempdir().unwrap();
    let dir = Utf8PathBuf::from_path_buf(dir.path().to_owned()).unwrap();
    let path = dir.join("fleet.db");
    drop(SqliteBackend::create(&path).unwrap());
    let backend = SqliteBackend::open(&SqliteConfig { path }).unwrap();
    let folder = dir.join("fleet-logs");
    assert_eq!(backend.log_folder(), Some(folder.clone()));
    let err = backend.logs(None).unwrap_err();
    assert!(matches!(err, BackendError::NotFound { .. }));
    assert!(err.to_string().contains("fleet-logs"), "{err}");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("api_tokens_log"), "a line\n").unwrap();
    std::fs::write(dir.join("elsewhere"), "secret\n").unwrap();
    std::os::unix::fs::symlink(dir.join("elsewhere"), folder.join("access_log")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        folder.join("access_log.1").as_std_path(),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_bits_truncate(0o600),
        0,
    )
    .unwrap();
    let logs = backend.logs(None).unwrap();
    let mut files = logs.files().unwrap();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["access_log", "access_log.1", "api_tokens_log"]);
    let refusal = |i: usize| logs.open(&files[i]).err().unwrap().to_string();
    assert!(refusal(0).contains("symbolic link"), "{}", refusal(0));
    assert!(refusal(1).contains("FIFO"), "{}", refusal(1));
    let mut text = String::new();
    logs.open(&files[2])
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "a line\n");
}

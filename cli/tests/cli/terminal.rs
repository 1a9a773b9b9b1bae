//! What a person at a terminal sees, through a pseudo-terminal: `whmtoken verify` hides the
//! secret while it is typed and gives the terminal back as it was, Ctrl-C included; the
//! converter's summary line shows on a terminal and never in a pipe.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::termios::LocalModes;
use whmtoken_fixtures::FakeServer;

use crate::{VECTOR_LINE, run, server_with_resellers, whmtoken};

/// A pseudo-terminal: the test reads and types on `master`; a child gets `slave` as its
/// terminal. Everything the terminal shows is collected in `shown`.
struct Pty {
    master: File,
    slave: File,
    shown: Arc<Mutex<Vec<u8>>>,
    reader: std::thread::JoinHandle<()>,
}

impl Pty {
    fn open() -> Self {
        use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
            .expect("a pseudo-terminal");
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let name = ptsname(&master, Vec::new()).unwrap();
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(rustix::fs::OFlags::NOCTTY.bits() as i32)
            .open(name.to_str().unwrap())
            .unwrap();
        let master = File::from(master);
        let shown = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().unwrap();
        let into = Arc::clone(&shown);
        let reader = std::thread::spawn(move || {
            let mut buf = [0; 4096];
            // Ends with EIO once no one holds the slave side.
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                into.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Self {
            master,
            slave,
            shown,
            reader,
        }
    }

    /// Everything the terminal showed, once every process that had it has ended.
    fn finish(self) -> String {
        drop(self.slave);
        self.reader.join().unwrap();
        String::from_utf8_lossy(&self.shown.lock().unwrap()).into_owned()
    }

    fn slave(&self) -> Stdio {
        Stdio::from(self.slave.try_clone().unwrap())
    }

    fn shown(&self) -> String {
        String::from_utf8_lossy(&self.shown.lock().unwrap()).into_owned()
    }

    /// Waits until the terminal has shown `text` (a generous bound, not a timing check).
    fn wait_for(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.shown().contains(text) {
            assert!(
                Instant::now() < deadline,
                "the terminal never showed {text:?}: {:?}",
                self.shown()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn type_in(&mut self, text: &str) {
        self.master.write_all(text.as_bytes()).unwrap();
    }

    fn echo(&self) -> bool {
        rustix::termios::tcgetattr(&self.slave)
            .unwrap()
            .local_modes
            .contains(LocalModes::ECHO)
    }
}

/// `whmtoken --config … verify root`, the pseudo-terminal its stdin and stderr and, when
/// util-linux's `setsid` is there, its controlling terminal (so that Ctrl-C typed on it is
/// a SIGINT, as in a shell); stdout a pipe. Returns the child and whether Ctrl-C is typed.
fn verify_on(pty: &Pty, server: &FakeServer) -> (Child, bool) {
    let whmtoken = env!("CARGO_BIN_EXE_whmtoken");
    let config = server.config_path();
    let args = ["--config", config.as_str(), "verify", "root"];
    let setsid = ["/usr/bin/setsid", "/bin/setsid"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let mut command = match setsid {
        Some(setsid) => {
            let mut c = Command::new(setsid);
            c.arg("--ctty").arg(whmtoken).args(args);
            c
        }
        None => {
            let mut c = Command::new(whmtoken);
            c.args(args);
            c
        }
    };
    let child = command
        .env_remove("WHMTOKEN_CONFIG")
        .env_remove("WHMTOKEN_LOG")
        .stdin(pty.slave())
        .stderr(pty.slave())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    (child, setsid.is_some())
}

const PROMPT: &str = "whmtoken verify: type root's secret (it is not shown as you type)";

#[test]
fn verify_hides_the_secret_typed_on_a_terminal_and_gives_the_echo_back() {
    let server = server_with_resellers();
    let converted = run(&server, &["root"]);
    assert_eq!(converted.code, 0, "{}", converted.stderr);
    let mut pty = Pty::open();
    assert!(pty.echo(), "a new terminal echoes");
    let (child, _) = verify_on(&pty, &server);
    pty.wait_for(PROMPT);
    assert!(!pty.echo(), "echo off while the secret is typed");
    let secret = VECTOR_LINE.trim_end();
    for _ in 0..30 {
        pty.type_in(&format!("{secret}\n"));
    }
    pty.type_in("\u{4}"); // Ctrl-D at the start of a line: the end of the secret
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", pty.shown());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.starts_with("accepted: root via token “accesshash-"),
        "{stdout}"
    );
    assert!(pty.echo(), "echo back on after the secret");
    assert!(
        !pty.shown().contains(&secret[..16]),
        "the secret never shown: {:?}",
        pty.shown()
    );
}

#[test]
fn ctrl_c_while_the_secret_is_typed_gives_the_echo_back() {
    let server = server_with_resellers();
    let mut pty = Pty::open();
    let (mut child, ctty) = verify_on(&pty, &server);
    pty.wait_for(PROMPT);
    assert!(!pty.echo(), "echo off while the secret is typed");
    pty.type_in("0011223344");
    if ctty {
        pty.type_in("\u{3}"); // Ctrl-C: the terminal sends SIGINT
    } else {
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(75), "{}", pty.shown());
    assert!(pty.echo(), "echo back on after Ctrl-C");
    pty.wait_for("interrupted; nothing was verified");
    assert!(!pty.shown().contains("0011223344"), "{:?}", pty.shown());
}

#[test]
fn verify_from_a_pipe_says_nothing_of_typing() {
    let server = server_with_resellers();
    let out = whmtoken(&server.config_path(), &["verify", "root"], VECTOR_LINE);
    assert_eq!(
        out.stderr, "",
        "no prompt when the secret comes from a pipe"
    );
}

/// The converter with `args`, its stderr on a pseudo-terminal and its stdout a pipe:
/// (exit status, stdout, what the terminal showed).
fn convert_on_terminal(program: &str, args: &[&str]) -> (i32, String, String) {
    let pty = Pty::open();
    let out = Command::new(program)
        .args(args)
        .env_remove("WHMTOKEN_CONFIG")
        .env_remove("WHMTOKEN_LOG")
        .stdin(Stdio::null())
        .stderr(pty.slave())
        .output()
        .unwrap();
    let code = out.status.code().unwrap();
    (code, String::from_utf8(out.stdout).unwrap(), pty.finish())
}

#[test]
fn the_drop_in_shows_its_summary_on_a_terminal_only_and_on_stderr() {
    let server = server_with_resellers();
    let config = server.config_path();
    let converter = env!("CARGO_BIN_EXE_convert_accesshash_to_token");
    let (code, stdout, shown) =
        convert_on_terminal(converter, &["--config", config.as_str(), "root", "ghost"]);
    assert_eq!(code, 65);
    assert_eq!(
        stdout, "",
        "stdout stays cPanel's: nothing without --verbose"
    );
    assert_eq!(
        shown,
        "error: ghost: User ghost is not a reseller.\r\n\
         Converted 1, already converted 0, failed 1, not attempted 0.\r\n"
    );
    // --verbose on a terminal: stdout is still cPanel's lines alone, the summary on stderr.
    let (code, stdout, shown) = convert_on_terminal(
        converter,
        &["--config", config.as_str(), "--verbose", "root", "res1"],
    );
    assert_eq!(code, 0);
    assert!(
        stdout.starts_with("Already imported accesshash for “root” as “accesshash-")
            && stdout
                .lines()
                .nth(1)
                .unwrap()
                .starts_with("Imported accesshash for “res1”")
            && stdout.lines().count() == 2,
        "{stdout}"
    );
    assert_eq!(
        shown,
        "Converted 1, already converted 1, failed 0, not attempted 0.\r\n"
    );
    // In a pipe (a script, cron), the output is cPanel's: no summary anywhere.
    let out = run(&server, &["--verbose", "root", "res1"]);
    assert_eq!(out.code, 0);
    assert_eq!(out.stderr, "");
    assert!(
        out.stdout
            .starts_with("Already imported accesshash for “root”")
            && out.stdout.lines().count() == 2,
        "{}",
        out.stdout
    );
    let out = run(&server, &["res2"]);
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("", ""));
    let out = run(&server, &["--json", "root"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (0, ""),
        "--json has its summary object only"
    );
}

#[test]
fn whmtoken_convert_ends_its_text_with_the_summary_when_it_printed_or_on_a_terminal() {
    let server = server_with_resellers();
    let config = server.config_path();
    // Nothing printed, not a terminal: silent.
    let out = whmtoken(&config, &["convert", "root"], "");
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{}", out.stderr);
    // --verbose lines: the summary ends them.
    let out = whmtoken(&config, &["convert", "--verbose", "root", "res1"], "");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert!(lines[0].starts_with("Already imported accesshash for “root”"));
    assert!(lines[1].starts_with("Imported accesshash for “res1”"));
    assert_eq!(
        lines[2],
        "Converted 1, already converted 1, failed 0, not attempted 0."
    );
    // An error line only: the summary follows on stdout.
    let out = whmtoken(&config, &["convert", "ghost"], "");
    assert_eq!(out.code, 65);
    assert_eq!(
        out.stdout,
        "Converted 0, already converted 0, failed 1, not attempted 0.\n"
    );
    // A dry run on a terminal, nothing else printed.
    let whmtoken = env!("CARGO_BIN_EXE_whmtoken");
    let (code, stdout, _) = convert_on_terminal(
        whmtoken,
        &["--config", config.as_str(), "convert", "--dry-run", "res2"],
    );
    assert_eq!(code, 0);
    assert_eq!(
        stdout,
        "Would convert 1, already converted 0, failed 0, not attempted 0.\n"
    );
}

#[test]
fn the_progress_bar_counts_a_dry_run_and_redraws_only_as_it_goes() {
    let dir = tempfile::tempdir().unwrap();
    let dir = camino::Utf8Path::from_path(dir.path()).unwrap();
    let config = whmtoken_fixtures::generate(3000, 0, 7)
        .build("sqlite", dir)
        .unwrap();
    let whmtoken = env!("CARGO_BIN_EXE_whmtoken");
    let (code, stdout, shown) = convert_on_terminal(
        whmtoken,
        &[
            "--config",
            config.as_str(),
            "convert",
            "--dry-run",
            "--all-resellers",
        ],
    );
    assert_eq!(code, 0, "{shown}");
    assert_eq!(
        stdout,
        "Would convert 3,000, already converted 0, failed 0, not attempted 0.\n"
    );
    // The bar ends at the run's count (a dry run imports nothing, its results count).
    assert!(shown.contains(" 3000/3000 users"), "{shown:?}");
    // It stepped aside for no result (none printed): redrawn a bounded number of times,
    // not once per user (about 500 KB for 3,000 users before).
    assert!(
        shown.len() < 60_000,
        "{} bytes on the terminal: {:?}",
        shown.len(),
        &shown[..shown.len().min(2000)]
    );
}

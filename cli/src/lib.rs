//! The command line of whmtoken: what `convert_accesshash_to_token` and `whmtoken` share.
//!
//! The binaries (`src/main.rs`, `src/bin/whmtoken.rs`) are one call each, to
//! [`converter_main`] and [`whmtoken_main`]: each hands the process's arguments to a command
//! here and turns the outcome into an exit status with [`exit`]. Test binaries that act as
//! these programs call the same functions. The commands write their output to stdout and
//! stderr themselves; nothing else in the workspace does.

mod args;
pub mod audit;
mod config;
pub mod convert;
mod dates;
mod error;
mod output;
pub mod report;
pub mod retire;
pub mod usage;
pub mod verify;
mod whmtoken;

use std::ffi::OsString;
use std::io::{self, Write};
use std::panic::UnwindSafe;
use std::process::ExitCode;

use whmtoken_core::error_chain;

pub use crate::args::command as converter_command;
pub use crate::error::{CliError, status};
pub use crate::whmtoken::{command as whmtoken_command, main as whmtoken_main};

/// `convert_accesshash_to_token` with the process's arguments: converts and returns the
/// exit status.
pub fn converter_main() -> ExitCode {
    exit(|| {
        let argv: Vec<OsString> = std::env::args_os().collect();
        if wants_version(&argv) {
            return print_version("convert_accesshash_to_token");
        }
        convert::run(argv)
    })
}

/// What every binary does around its command: files it creates are private (umask 077),
/// logs go to stderr when `WHMTOKEN_LOG` asks for them, a panic becomes one
/// `error: internal error (a bug): …` line and exit 70, and an error that stopped the run
/// becomes its `error:` line and exit status.
pub fn exit(command: impl FnOnce() -> Result<u8, CliError> + UnwindSafe) -> ExitCode {
    rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o077));
    no_core_dumps();
    init_logging();
    quiet_panics();
    let outcome = std::panic::catch_unwind(command);
    let mut stderr = io::stderr().lock();
    // A closed stderr loses the message, never the status.
    let code = match outcome {
        Ok(Ok(code)) => code,
        Err(payload) => {
            let _ = writeln!(
                stderr,
                "error: internal error (a bug): {}",
                panic_message(&*payload)
            );
            status::SOFTWARE
        }
        Ok(Err(CliError::Output(e))) if e.kind() == io::ErrorKind::BrokenPipe => {
            status::OK // --help into a closed pipe
        }
        Ok(Err(e @ CliError::Usage(_))) => {
            let _ = writeln!(stderr, "{e}\nInvalid usage. See --help\n");
            e.exit_status()
        }
        Ok(Err(e)) => {
            let _ = writeln!(stderr, "error: {}", error_chain(&e));
            e.exit_status()
        }
    };
    ExitCode::from(code)
}

/// Whether the converter's arguments (the program name first) ask for its version: only
/// the whole `--version` (or `-version`) and `-V`, among the options; `--ver` is still
/// `--verbose`, as in cPanel's script.
pub fn wants_version(argv: &[OsString]) -> bool {
    args::wants_version(argv)
}

/// Prints `PROGRAM (whmtoken) X.Y.Z` on stdout, what `--version` shows for every binary of
/// whmtoken, and returns the exit status.
pub fn print_version(program: &str) -> Result<u8, CliError> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{}", version_line(program))
        .and_then(|()| stdout.flush())
        .map_err(CliError::Output)?;
    Ok(status::OK)
}

/// `PROGRAM (whmtoken) X.Y.Z`.
pub fn version_line(program: &str) -> String {
    format!("{program} (whmtoken) {}", env!("CARGO_PKG_VERSION"))
}

/// Logs go to stderr, only when `WHMTOKEN_LOG` holds an env-filter (`debug`, `whmtoken_core=trace`).
/// A filter that cannot be read is ignored with one warning line, and warnings are logged.
/// Before any secret is read: the process is not dumpable and its core limit is zero, so
/// that a crash never writes an access hash into a core file (nor can another process of
/// the same user read its memory). Best effort: a refusal is logged, never fatal.
pub fn no_core_dumps() {
    use rustix::process::{DumpableBehavior, Resource, Rlimit};
    let none = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    if let Err(e) = rustix::process::setrlimit(Resource::Core, none) {
        tracing::warn!(error = %e, "cannot set the core file size limit to 0");
    }
    if let Err(e) = rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable) {
        tracing::warn!(error = %e, "cannot make the process not dumpable");
    }
}

fn init_logging() {
    let Ok(filter) = std::env::var("WHMTOKEN_LOG") else {
        return;
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|e| {
        let _ = writeln!(
            io::stderr(),
            "warning: WHMTOKEN_LOG=“{}” is not a log filter ({e}); it was ignored, and only warnings are logged",
            filter.escape_debug()
        );
        "warn".into()
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(false)
        // A log line that cannot be written (stderr closed) is lost; reporting that with
        // `eprintln!` would panic the run.
        .log_internal_errors(false)
        .init();
}

/// A panic prints nothing of its own: one that fails a single user is in that user's
/// result, and one that ends the run is one `error:` line from [`exit`] (exit 70). With
/// `RUST_BACKTRACE` set, Rust's own report (and backtrace) is printed as well.
fn quiet_panics() {
    if std::env::var_os("RUST_BACKTRACE").is_none() {
        std::panic::set_hook(Box::new(|_| {}));
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_run_can_write_no_core_file() {
        super::no_core_dumps();
        let core = rustix::process::getrlimit(rustix::process::Resource::Core);
        assert_eq!((core.current, core.maximum), (Some(0), Some(0)));
        assert_eq!(
            rustix::process::dumpable_behavior().unwrap(),
            rustix::process::DumpableBehavior::NotDumpable
        );
    }
}

//! `convert_accesshash_to_token`: a drop-in replacement for cPanel's script of that name.
//!
//! Reads the command line and the config file, opens the backend, plans and applies the
//! conversion through `whmtoken-core`, and prints the report. This binary is the only
//! place that prints.

mod args;
mod config;
mod error;
mod output;

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use jiff::Zoned;
use whmtoken_core::{Backend, Clock, Report, Restrictions, RunOptions, pipeline};

use crate::args::Args;
use crate::config::BackendConfig;
use crate::error::{CliError, status};

/// The real clock, in the server's local time zone (for accounting lines).
struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Zoned {
        Zoned::now()
    }
}

fn main() -> ExitCode {
    rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o077));
    init_logging();
    match run() {
        Ok(code) => code,
        Err(CliError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
            ExitCode::from(status::OK) // --help into a closed pipe
        }
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                if matches!(e, CliError::Usage(_)) {
                    eprintln!("{e}\nInvalid usage. See --help\n");
                } else {
                    eprintln!("error: {e}");
                }
            }
            e.exit_code()
        }
    }
}

/// Logs go to stderr, only when `WHMTOKEN_LOG` holds an env-filter (`debug`, `whmtoken_core=trace`).
fn init_logging() {
    let Ok(filter) = std::env::var("WHMTOKEN_LOG") else {
        return;
    };
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(false)
        .init();
}

fn run() -> Result<ExitCode, CliError> {
    let args = Args::try_parse_from(args::normalize(std::env::args_os())).map_err(usage_error)?;
    let mut stdout = io::stdout().lock();
    if args.help {
        stdout
            .write_all(args::HELP.as_bytes())
            .map_err(CliError::Output)?;
        return Ok(ExitCode::from(status::OK));
    }
    if args.all_resellers && !args.users.is_empty() {
        return Err(CliError::Usage(
            "--all-resellers processes every reseller; do not name users with it".into(),
        ));
    }
    let now = Zoned::now().timestamp().as_second();
    let options = run_options(&args, now)?;
    let lock_timeout = lock_timeout(&args)?;
    let backend = open_backend(config::load(args.config.as_deref())?, lock_timeout)?;

    #[allow(clippy::print_stderr)]
    for notice in backend.notices() {
        eprintln!("warning: {notice}");
    }
    let users = if args.all_resellers {
        backend
            .resellers()
            .map_err(|e| CliError::Config(format!("cannot list resellers: {e}")))?
    } else if args.users.is_empty() {
        vec!["root".to_owned()]
    } else {
        args.users.clone()
    };
    if options
        .restrictions
        .acls
        .iter()
        .flatten()
        .any(|a| a == whmtoken_core::acl::CREATE_USER_SESSION)
    {
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "warning: the ACL “create-user-session” lets a token open sessions that bypass the token's own restrictions"
            );
        }
    }
    let jobs = args.jobs.map_or_else(pipeline::default_jobs, usize::from);
    let report = convert(backend.as_ref(), &users, &options, jobs);
    let mut stderr = io::stderr().lock();
    let written = if args.json {
        output::json(
            &report,
            backend.kind(),
            args.dry_run,
            &mut stdout,
            &mut stderr,
        )
    } else {
        output::human(
            &report,
            args.verbose,
            args.dry_run,
            &mut stdout,
            &mut stderr,
        )
    };
    let printed = written.and_then(|()| stdout.flush());
    match printed {
        // Whoever closed the pipe has stopped reading: the status still tells the truth.
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => return Err(CliError::Output(e)),
        _ => {}
    }
    let failed = report.any_failed();
    Ok(ExitCode::from(if failed {
        status::SOME_FAILED
    } else {
        status::OK
    }))
}

fn convert(backend: &dyn Backend, users: &[String], options: &RunOptions, jobs: usize) -> Report {
    let clock = SystemClock;
    let plan = pipeline::plan(backend, users, options, &clock, &mut rand::rng(), jobs);
    if options.dry_run {
        plan.preview()
    } else {
        pipeline::apply(backend, plan, &clock, jobs)
    }
}

fn run_options(args: &Args, now: i64) -> Result<RunOptions, CliError> {
    let mut restrictions = Restrictions::default()
        .with_acls(&args.acls)
        .and_then(|r| r.with_allow_ips(&args.allow_ips))
        .map_err(CliError::Usage)?;
    if let Some(when) = &args.expires {
        restrictions = restrictions
            .with_expiry(when, now)
            .map_err(CliError::Usage)?;
    }
    Ok(RunOptions {
        replace: args.replace,
        restrictions,
        dry_run: args.dry_run,
    })
}

fn lock_timeout(args: &Args) -> Result<Duration, CliError> {
    match args.lock_timeout {
        None => Ok(whmtoken_core::backend::DEFAULT_LOCK_TIMEOUT),
        Some(secs) => Duration::try_from_secs_f64(secs).map_err(|_| {
            CliError::Usage(format!(
                "--lock-timeout {secs}: expected a number of seconds, 0 or more"
            ))
        }),
    }
}

fn open_backend(
    config: BackendConfig,
    lock_timeout: Duration,
) -> Result<Box<dyn Backend>, CliError> {
    let cannot_open =
        |e: whmtoken_core::BackendError| CliError::Config(format!("cannot open the backend: {e}"));
    match config {
        #[cfg(feature = "files")]
        BackendConfig::Files(files) => {
            if is_real_server_root(&files.root) && !running_as_root() {
                return Err(CliError::NotRoot);
            }
            let backend =
                whmtoken_backend_files::FilesBackend::open(&files).map_err(cannot_open)?;
            Ok(Box::new(backend.with_lock_timeout(lock_timeout)))
        }
        #[cfg(feature = "sqlite")]
        BackendConfig::Sqlite(sqlite) => {
            let backend =
                whmtoken_backend_sqlite::SqliteBackend::open(&sqlite).map_err(cannot_open)?;
            Ok(Box::new(backend.with_lock_timeout(lock_timeout)))
        }
    }
}

#[cfg(feature = "files")]
fn is_real_server_root(root: &camino::Utf8Path) -> bool {
    std::fs::canonicalize(root)
        .map(|p| p == std::path::Path::new("/"))
        .unwrap_or(root == "/")
}

/// Both the real and the effective uid must be 0, as cPanel's script requires.
#[cfg(feature = "files")]
fn running_as_root() -> bool {
    rustix::process::getuid().is_root() && rustix::process::geteuid().is_root()
}

/// Maps clap's errors to Getopt::Long-style messages.
fn usage_error(e: clap::Error) -> CliError {
    let option = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    let message = match e.kind() {
        ErrorKind::UnknownArgument => {
            let arg = option(ContextKind::InvalidArg).unwrap_or_default();
            let name = arg.trim_start_matches('-');
            let name = name.split_once('=').map_or(name, |(n, _)| n);
            format!("Unknown option: {name}")
        }
        _ => e
            .render()
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_owned(),
    };
    CliError::Usage(message)
}

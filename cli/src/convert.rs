//! The conversion: `convert_accesshash_to_token` and `whmtoken convert`.
//!
//! Reads the command line and the config file, opens the backend, plans and applies the
//! conversion through `whmtoken-core`, and writes the report.

use std::ffi::OsString;
use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use clap::Parser;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use jiff::Zoned;
use whmtoken_backends::SystemClock;
use whmtoken_core::pipeline::Progress;
use whmtoken_core::{Backend, Report, Restrictions, RunOptions, pipeline};

use crate::args::{self, Args};
use crate::config::{self, Settings};
use crate::error::{CliError, status};
use crate::output::{self, Summary};

/// The converter's usage text (`--help`).
pub const HELP: &str = args::HELP;

/// Runs a conversion with the converter's arguments `argv` (the program name first) and
/// returns the exit status; an error that stops the whole run is returned for the caller
/// to show.
pub fn run(argv: Vec<OsString>) -> Result<u8, CliError> {
    run_with_summary(argv, Summary::StderrOnTerminal)
}

/// [`run`], for `whmtoken convert`: the same, with the summary line ending stdout.
pub(crate) fn run_subcommand(argv: Vec<OsString>) -> Result<u8, CliError> {
    run_with_summary(argv, Summary::Stdout)
}

fn run_with_summary(argv: Vec<OsString>, summary: Summary) -> Result<u8, CliError> {
    // First of all: a signal while the config and the server's user lists are read stops
    // the run as one during the conversion does (exit 75), not as a kill.
    let stop = stop_on_signals();
    resolve(argv).and_then(|command| execute(command, stop, summary))
}

/// What the command line, the config file and the environment ask for.
enum Command {
    Help,
    Convert(Conversion),
}

/// A conversion, fully resolved: nothing left to read but the backend itself.
struct Conversion {
    settings: Settings,
    lock_timeout: Duration,
    users: Users,
    options: RunOptions,
    jobs: usize,
    json: bool,
    verbose: bool,
}

/// Whom to convert.
enum Users {
    AllResellers,
    Named(Vec<String>),
}

/// Reads the arguments, the config file and the environment; opens nothing.
fn resolve(argv: Vec<OsString>) -> Result<Command, CliError> {
    let args = Args::try_parse_from(args::normalize(argv)).map_err(usage_error)?;
    if args.help {
        return Ok(Command::Help);
    }
    let users = match (args.all_resellers, args.users.is_empty()) {
        (true, false) => {
            return Err(CliError::Usage(
                "--all-resellers processes every reseller; do not name users with it".into(),
            ));
        }
        (true, true) => Users::AllResellers,
        (false, true) => Users::Named(vec!["root".to_owned()]),
        (false, false) => Users::Named(args.users.clone()),
    };
    let now = Zoned::now().timestamp().as_second();
    let options = run_options(&args, now)?;
    let lock_timeout = lock_timeout(&args)?;
    let settings = config::load_settings(args.config.as_deref())?;
    settings.check_root()?;
    Ok(Command::Convert(Conversion {
        settings,
        lock_timeout,
        users,
        options,
        jobs: args.jobs.map_or_else(pipeline::default_jobs, usize::from),
        json: args.json,
        verbose: args.verbose,
    }))
}

/// Runs what [`resolve`] settled, prints its output, and returns the exit status.
fn execute(
    command: Command,
    stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    summary: Summary,
) -> Result<u8, CliError> {
    let mut stdout = io::stdout().lock();
    let conversion = match command {
        Command::Help => {
            stdout
                .write_all(args::HELP.as_bytes())
                .map_err(CliError::Output)?;
            return Ok(status::OK);
        }
        Command::Convert(conversion) => conversion,
    };
    let backend = conversion
        .settings
        .open(conversion.lock_timeout)
        .map_err(CliError::Open)?;
    let warned = warnings(backend.as_ref(), &conversion.options);
    let users = match conversion.users {
        Users::AllResellers => backend.resellers().map_err(CliError::Resellers)?,
        Users::Named(users) => users,
    };
    let mut options = conversion.options;
    options.stop = stop;
    let options = &options;
    let (report, written) = if conversion.json {
        let report = convert(
            backend.as_ref(),
            &users,
            options,
            conversion.jobs,
            &mut |_| {},
        );
        // Not locked for the run: worker threads log to stderr while it goes on.
        let mut stderr = io::stderr().lock();
        let written = output::json(
            &report,
            backend.kind(),
            (options.dry_run, conversion.verbose),
            &mut stdout,
            &mut stderr,
        );
        (report, written)
    } else {
        let mut printer = output::Human::new(
            conversion.verbose,
            options.dry_run,
            &mut stdout,
            io::stderr(),
        );
        if warned {
            printer.printed_before();
        }
        let bar = progress_bar(users.len());
        let mut stderr_status = Ok(());
        let report = convert(
            backend.as_ref(),
            &users,
            options,
            conversion.jobs,
            &mut progress(&bar, &mut printer, &mut stderr_status),
        );
        // Drawn once more where it ended (3000/3000, or where an interruption stopped it:
        // drawing is throttled, so the last step may not have shown), then cleared.
        bar.abandon();
        bar.finish_and_clear();
        // A closed stderr loses lines, never the run's status.
        drop(stderr_status);
        let finished = printer.finish(&report, summary);
        (report, finished)
    };
    match written.and_then(|()| stdout.flush()) {
        // Whoever closed the pipe has stopped reading: the status still tells the truth.
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(CliError::Output(e)),
        _ if report.interrupted() => Ok(status::TEMPORARY),
        _ if report.any_failed() => Ok(status::SOME_FAILED),
        _ => Ok(status::OK),
    }
}

/// Prints the warnings due before the run (the backend's notices, a dangerous ACL asked
/// for), and says whether there were any. Each lets the lock on stderr go: worker threads
/// log to stderr while the run goes on. A closed stderr loses a warning, never the run.
fn warnings(backend: &dyn Backend, options: &RunOptions) -> bool {
    let mut warned = false;
    for notice in backend.notices() {
        warned = true;
        let _ = writeln!(io::stderr(), "warning: {notice}");
    }
    if options
        .restrictions
        .acls
        .iter()
        .flatten()
        .any(|a| a == whmtoken_core::acl::CREATE_USER_SESSION)
    {
        warned = true;
        let _ = writeln!(
            io::stderr(),
            "warning: the ACL “create-user-session” lets a token open sessions that bypass the token's own restrictions"
        );
    }
    warned
}

/// What a text run does with each event: the bar counts the users finished (the imports
/// alone where a run plans first) and the results in order (a dry run imports nothing: its
/// results count), and steps aside only for a result that prints (a clear and a redraw
/// each time); the first error stderr gave goes to `stderr_status`.
fn progress<'a, O: Write, E: Write>(
    bar: &'a ProgressBar,
    printer: &'a mut output::Human<O, E>,
    stderr_status: &'a mut io::Result<()>,
) -> impl FnMut(Progress<'_>) + 'a {
    let mut ready = 0u64;
    move |event| match event {
        Progress::Finished { done, .. } => {
            if done as u64 > bar.position() {
                bar.set_position(done as u64);
            }
        }
        Progress::Ready(result) => {
            ready += 1;
            if ready > bar.position() {
                bar.set_position(ready);
            }
            let printed = if printer.prints(result) {
                bar.suspend(|| printer.result(result))
            } else {
                printer.result(result)
            };
            if stderr_status.is_ok() {
                *stderr_status = printed;
            }
        }
    }
}

/// Runs of at least this many users show a progress bar (on a terminal).
const PROGRESS_FROM: usize = 50;

/// A progress bar on stderr for a long run when stderr is a terminal; hidden otherwise.
fn progress_bar(users: usize) -> ProgressBar {
    if users < PROGRESS_FROM || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(users as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} users, {elapsed}") {
        bar.set_style(style);
    }
    bar
}

fn convert(
    backend: &dyn Backend,
    users: &[String],
    options: &RunOptions,
    jobs: usize,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Report {
    pipeline::run_each(
        backend,
        users,
        options,
        &SystemClock,
        &mut rand::rng(),
        jobs,
        progress,
    )
}

fn run_options(args: &Args, now: i64) -> Result<RunOptions, CliError> {
    let mut restrictions = Restrictions::default()
        .with_acls(&args.acls)
        .and_then(|r| r.with_allow_ips(&args.allow_ips))
        .map_err(CliError::restriction)?;
    if let Some(when) = &args.expires {
        restrictions = restrictions
            .with_expiry(when, now)
            .map_err(CliError::restriction)?;
    }
    Ok(RunOptions {
        replace: args.replace,
        restrictions,
        dry_run: args.dry_run,
        stop: None,
    })
}

/// The exit status of a run interrupted by a signal, and of a second signal, which ends
/// the process at once.
const INTERRUPTED: i32 = status::TEMPORARY as i32;

/// SIGINT, SIGTERM and SIGHUP set the returned flag: the pipeline starts no new user, lets
/// those being written finish, and reports the rest as interrupted. A second one ends the
/// process at once. `None` when the handlers cannot be installed (the run is then not
/// interruptible this way, as before).
fn stop_on_signals() -> Option<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use signal_hook::flag;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM, SIGHUP] {
        // The order matters: the shutdown is armed first, so it fires only on a second
        // signal, once the flag was set by the first.
        flag::register_conditional_shutdown(signal, INTERRUPTED, stop.clone()).ok()?;
        flag::register(signal, stop.clone()).ok()?;
    }
    Some(stop)
}

/// `--lock-timeout`, checked when parsed (`args::lock_timeout`), or the default.
fn lock_timeout(args: &Args) -> Result<Duration, CliError> {
    Ok(args
        .lock_timeout
        .unwrap_or(whmtoken_core::backend::DEFAULT_LOCK_TIMEOUT))
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
        // `--jobs 0: expected …`: the option as given and the parser's own words.
        ErrorKind::ValueValidation => {
            let arg = option(ContextKind::InvalidArg).unwrap_or_default();
            let name = arg.split_once(' ').map_or(arg.as_str(), |(n, _)| n);
            let value = option(ContextKind::InvalidValue).unwrap_or_default();
            let reason = std::error::Error::source(&e).map(ToString::to_string);
            format!("{name} {value}: {}", reason.unwrap_or_default())
        }
        // A value-taking option last on the line: Getopt::Long's own words.
        ErrorKind::InvalidValue if option(ContextKind::InvalidValue).as_deref() == Some("") => {
            let arg = option(ContextKind::InvalidArg).unwrap_or_default();
            let name = arg.split_once(' ').map_or(arg.as_str(), |(n, _)| n);
            format!(
                "Option {} requires an argument",
                name.trim_start_matches('-')
            )
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

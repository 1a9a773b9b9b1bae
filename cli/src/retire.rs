//! `whmtoken retire`, `whmtoken restore` and `whmtoken runs`: the migration's last step,
//! reversibly, through the backend's [`Retirement`] capability.
//!
//! Core runs them ([`whmtoken_core::retire::retire`], [`whmtoken_core::retire::restore`]):
//! it decides, sequences and words every status and refusal. This module parses the
//! options, prints the lines and the `--json` documents, and adds to a refusal how
//! `--force` goes ahead.

use std::io::{self, Write};
use std::time::Duration;

use camino::Utf8Path;
use serde_json::{Value, json};
use whmtoken_core::backend::DEFAULT_LOCK_TIMEOUT;
use whmtoken_core::retire::{
    self, Auth, AuthProblem, ChangeKind, Outcome, Problem, RestoreReport, RetireReport,
    RetireRequest, Retirement, RunId, Status,
};
use whmtoken_core::usage::Covered;
use whmtoken_core::{Backend, BackendError, findings_usage, pipeline};

use crate::config;

mod runs;
use crate::error::{CliError, status};
use crate::output::shown;
pub use runs::{RunsArgs, run_runs};
use whmtoken_backends::SystemClock;

/// `whmtoken retire [USER]... | --all-resellers | --setting-only --disable-accesshash-auth [-n] [--json] [--force]`
#[derive(Debug, clap::Args)]
pub struct RetireArgs {
    /// Accounts whose access hash to retire [default: root]
    #[arg(value_name = "USER", conflicts_with = "all_resellers")]
    pub users: Vec<String>,
    /// Retire the access hash of every reseller
    #[arg(long)]
    pub all_resellers: bool,
    /// Also turn access-hash authentication off (allow_deprecated_accesshash=0), unless an
    /// access hash on the server is not converted; decided first: when refused, nothing is
    /// retired
    #[arg(long)]
    pub disable_accesshash_auth: bool,
    /// With --disable-accesshash-auth: only turn the setting off (journaled, restorable),
    /// touching no .accesshash
    #[arg(
        long,
        requires = "disable_accesshash_auth",
        conflicts_with_all = ["users", "all_resellers"]
    )]
    pub setting_only: bool,
    /// Say what would be done, and change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Print one JSON document on stdout instead of lines
    #[arg(long)]
    pub json: bool,
    /// Turn access-hash authentication off even while access hashes are not converted
    #[arg(long)]
    pub force: bool,
    /// Wait at most this long for a lock held by another process (the run lock, the
    /// audit log's, cpanel.config's) (0 to 3600, default 30)
    #[arg(long, value_name = "SECS", allow_hyphen_values = true, value_parser = crate::args::lock_timeout)]
    pub lock_timeout: Option<Duration>,
    /// List every account not attempted, not only the first few
    #[arg(long)]
    pub verbose: bool,
}

/// `whmtoken restore RUN_ID [-n] [--json] [--force]`
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The run to undo, as `whmtoken runs` lists it
    #[arg(value_name = "RUN_ID")]
    pub run: String,
    /// Say what would be restored, and change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Print one JSON document on stdout instead of lines
    #[arg(long)]
    pub json: bool,
    /// Restore over an access hash that exists again (kept in the run's backup), or from a
    /// backup that no longer matches the journal
    #[arg(long)]
    pub force: bool,
    /// Wait at most this long for a lock held by another process (the run lock, the
    /// audit log's, cpanel.config's) (0 to 3600, default 30)
    #[arg(long, value_name = "SECS", allow_hyphen_values = true, value_parser = crate::args::lock_timeout)]
    pub lock_timeout: Option<Duration>,
    /// List every account not attempted, not only the first few
    #[arg(long)]
    pub verbose: bool,
}

/// The backend, opened from the config with `lock_timeout` (the default when `None`), and
/// its retirement capability.
fn open(
    config: Option<&Utf8Path>,
    lock_timeout: Option<Duration>,
) -> Result<Box<dyn Backend>, CliError> {
    let settings = config::load_settings(config)?;
    settings.check_root()?;
    let backend = settings
        .open(lock_timeout.unwrap_or(DEFAULT_LOCK_TIMEOUT))
        .map_err(CliError::Open)?;
    if backend.retirement().is_none() {
        return Err(CliError::Open(BackendError::Unsupported {
            backend: backend.kind(),
            operation: "retiring access hashes",
        }));
    }
    Ok(backend)
}

fn capability(backend: &dyn Backend) -> &dyn Retirement {
    backend.retirement().expect("checked when opened")
}

/// Retires, prints, and returns the exit status.
pub fn run_retire(args: RetireArgs, config: Option<&Utf8Path>) -> Result<u8, CliError> {
    let backend = open(config, args.lock_timeout)?;
    let backend = backend.as_ref();
    let mut stderr = io::stderr();
    for notice in backend.notices() {
        let _ = writeln!(stderr, "warning: {notice}");
    }
    let users = if args.setting_only {
        Vec::new()
    } else if args.all_resellers {
        backend.resellers().map_err(CliError::Resellers)?
    } else if args.users.is_empty() {
        vec!["root".to_owned()]
    } else {
        args.users.clone()
    };
    let request = RetireRequest {
        users,
        disable_auth: args.disable_accesshash_auth,
        force: args.force,
        dry_run: args.dry_run,
        jobs: pipeline::default_jobs(),
        seed: rand::random(),
    };
    let report = retire::retire(backend, capability(backend), &request, &SystemClock)
        .map_err(CliError::RunLock)?;
    let in_use = accesshashes_in_use(backend, &report);
    let run = report.run.as_ref();
    let mut out = io::BufWriter::new(io::stdout().lock());
    let written = if args.json {
        let doc = retire_document(&args, backend.kind(), &report, &in_use);
        serde_json::to_writer_pretty(&mut out, &doc)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        let summary = (!report.outcomes.is_empty()).then(|| retire_summary(&report, args.dry_run));
        report
            .outcomes
            .iter()
            .filter_map(|o| report_line(o, args.dry_run, run))
            .chain(auth_line(&args, run, report.auth))
            .chain(summary)
            .try_for_each(|line| writeln!(out, "{line}"))
    };
    print_problems(&mut stderr, report.outcomes.iter(), args.verbose);
    // The refusal (or, forced, the warning) names the clients that break.
    let level = if report.auth_problem.is_some() {
        "error"
    } else {
        "warning"
    };
    print_in_use(&mut stderr, level, &in_use, args.verbose);
    if let Some(problem) = &report.auth_problem {
        let line = match problem {
            AuthProblem::NotConverted { .. } => format!("{problem}, or use --force"),
            AuthProblem::Failed(_) => problem.to_string(),
        };
        let _ = writeln!(stderr, "error: {}", shown(&line));
    }
    finish(written.and_then(|()| out.flush()))?;
    Ok(if report.any_failed() {
        status::SOME_FAILED
    } else {
        status::OK
    })
}

/// An account whose access hash is not converted (or cannot be read to tell) and that the
/// server's logs show in use over the last 90 days.
struct InUse {
    user: String,
    /// Its access hash cannot be read to tell whether it is converted.
    unreadable: bool,
    usage: whmtoken_core::usage::CredentialUsage,
    /// The start of the logs' window (`N uses since`).
    since: i64,
}

impl InUse {
    /// `res1: access hash not converted and in use, …: 22 uses since …, from …`.
    fn line(&self) -> String {
        format!(
            "{}: access hash {} and in use, its clients break once access-hash authentication is off: {}",
            self.user,
            if self.unreadable {
                "that cannot be read to tell whether it is converted"
            } else {
                "not converted"
            },
            findings_usage::uses_text(&self.usage, self.since)
        )
    }

    /// `{"user", "unreadable", "since", "ok", "last", "clients": […], …}`, times in epoch
    /// seconds.
    fn json(&self) -> Value {
        let mut value = json!({
            "user": self.user,
            "unreadable": self.unreadable,
            "since": self.since,
        });
        crate::usage::credential_json(&self.usage, &mut value);
        value
    }
}

/// The accounts among `unconverted` whose access hash the server's logs show in use over
/// the last 90 days (none without logs), in the order of `unconverted` (root first, then
/// by name).
fn accesshashes_in_use(backend: &dyn Backend, report: &RetireReport) -> Vec<InUse> {
    if report.unconverted.is_empty() {
        return Vec::new();
    }
    let covered = report
        .unconverted
        .iter()
        .map(|user| Covered {
            user: user.clone(),
            tokens: Vec::new(),
        })
        .collect();
    let now = jiff::Timestamp::now().as_second();
    let Some(usage) = crate::usage::optional(backend, covered, now) else {
        return Vec::new();
    };
    report
        .unconverted
        .iter()
        .filter_map(|user| usage.accounts.iter().find(|a| &a.user == user))
        .filter(|a| a.accesshash.used())
        .map(|a| InUse {
            user: a.user.clone(),
            unreadable: report.unreadable.contains(&a.user),
            usage: a.accesshash.clone(),
            since: usage.window.from,
        })
        .collect()
}

/// The accounts in use, one `level: <line>` each for the first few (all with `verbose`),
/// then one line with how many more.
fn print_in_use(stderr: &mut impl Write, level: &str, in_use: &[InUse], verbose: bool) {
    let listed = if verbose { in_use.len() } else { FIRST_FEW };
    for account in in_use.iter().take(listed) {
        let _ = writeln!(stderr, "{level}: {}", shown(&account.line()));
    }
    if in_use.len() > listed {
        let _ = writeln!(
            stderr,
            "{level}: and {} more account(s) whose access hash is not converted and in use ({}); --verbose lists them",
            thousands(in_use.len() - listed),
            in_use[listed..]
                .iter()
                .take(FIRST_FEW)
                .map(|a| shown(&a.user))
                .collect::<Vec<_>>()
                .join(", ")
                + if in_use.len() - listed > FIRST_FEW {
                    ", …"
                } else {
                    ""
                }
        );
    }
}

/// The reason an outcome was not attempted (what follows `not attempted: `), or `None`.
fn not_attempted(o: &Outcome) -> Option<&str> {
    match &o.problem {
        Some(Problem::Failed(message)) => message.strip_prefix("not attempted: "),
        _ => None,
    }
}

/// How many accounts a line names in full before `and N more` (`--verbose`: all).
const FIRST_FEW: usize = 5;

/// Prints each problem as `error: <name>: <problem>` on stderr, except the outcomes not
/// attempted: one line for each reason, with how many and the first few names (all with
/// `verbose`), in the order the accounts were given.
fn print_problems<'a>(
    stderr: &mut impl Write,
    outcomes: impl Iterator<Item = &'a Outcome>,
    verbose: bool,
) {
    let mut skipped: Vec<(&str, Vec<&str>)> = Vec::new();
    for o in outcomes {
        if let Some(reason) = not_attempted(o) {
            match skipped.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, names)) => names.push(&o.name),
                None => skipped.push((reason, vec![&o.name])),
            }
        } else if let Some(problem) = &o.problem {
            let _ = writeln!(
                stderr,
                "error: {}: {}",
                shown(&o.name),
                shown(&problem_line(problem))
            );
        }
    }
    for (reason, names) in skipped {
        let shown_names: Vec<String> = names
            .iter()
            .take(if verbose { names.len() } else { FIRST_FEW })
            .map(|n| shown(n))
            .collect();
        let more = names.len() - shown_names.len();
        let more = if more > 0 {
            format!(" and {} more; --verbose lists them", thousands(more))
        } else {
            String::new()
        };
        let _ = writeln!(
            stderr,
            "error: not attempted, {} account(s) ({}{more}): {}",
            thousands(names.len()),
            shown_names.join(", "),
            shown(reason)
        );
    }
}

/// `n` with a comma between thousands: `1,997` (as every count in text output).
fn thousands(n: usize) -> String {
    crate::dates::count(n)
}

/// How many of `outcomes` have `status` (the failed ones not attempted counted apart).
fn count<'a>(outcomes: impl Iterator<Item = &'a Outcome>, status: Option<Status>) -> String {
    let n = outcomes
        .filter(|o| match status {
            Some(Status::Failed) => o.status == Status::Failed && not_attempted(o).is_none(),
            Some(s) => o.status == s,
            None => not_attempted(o).is_some(),
        })
        .count();
    thousands(n)
}

/// A retire run's last line: `Retired 1,997, already retired 2, …, not attempted 0.`
fn retire_summary(report: &RetireReport, dry_run: bool) -> String {
    let all = || report.outcomes.iter();
    format!(
        "{} {}, already retired {}, no access hash {}, not converted {}, failed {}, not attempted {}.",
        if dry_run { "Would retire" } else { "Retired" },
        count(all(), Some(Status::Retired)),
        count(all(), Some(Status::AlreadyRetired)),
        count(all(), Some(Status::NoAccessHash)),
        count(all(), Some(Status::NotConverted)),
        count(all(), Some(Status::Failed)),
        count(all(), None),
    )
}

/// A restore's last line: `Restored 3, already restored 0, failed 0, not attempted 0.`
fn restore_summary<'a>(
    outcomes: impl Iterator<Item = &'a Outcome> + Clone,
    dry_run: bool,
) -> String {
    format!(
        "{} {}, already restored {}, failed {}, not attempted {}.",
        if dry_run { "Would restore" } else { "Restored" },
        count(outcomes.clone(), Some(Status::Restored)),
        count(outcomes.clone(), Some(Status::AlreadyRestored)),
        count(outcomes.clone(), Some(Status::Failed)),
        count(outcomes, None),
    )
}

/// A problem as the command line shows it: a refusal says how `--force` goes ahead.
fn problem_line(problem: &Problem) -> String {
    match problem {
        Problem::Refused(refusal) => format!("{refusal}; --force {}", refusal.forcing()),
        other => other.to_string(),
    }
}

/// The line saying what became of the setting, when `--disable-accesshash-auth` was given
/// and it was not refused.
fn auth_line(args: &RetireArgs, run: Option<&RunId>, auth: Auth) -> Option<String> {
    match auth {
        _ if !args.disable_accesshash_auth => None,
        Auth::Disabled if args.dry_run => Some(
            "Would disable access-hash authentication (allow_deprecated_accesshash=0)".to_owned(),
        ),
        Auth::Disabled => Some(format!(
            "Disabled access-hash authentication (allow_deprecated_accesshash=0, run {})",
            run.map_or("", RunId::as_str)
        )),
        Auth::Unchanged => Some(
            "Access-hash authentication is already off (allow_deprecated_accesshash=0)".to_owned(),
        ),
        Auth::Refused => None,
    }
}

/// A `--json` document's `summary`: how many of `results` have each of `statuses`, the
/// failed ones not attempted counted apart (`not_attempted`), as the text summary counts
/// them.
fn summary<'a>(
    statuses: &[Status],
    results: impl Iterator<Item = &'a Outcome> + Clone,
) -> serde_json::Map<String, Value> {
    let mut counts: serde_json::Map<String, Value> = statuses
        .iter()
        .map(|s| {
            let n = results
                .clone()
                .filter(|o| o.status == *s && not_attempted(o).is_none())
                .count();
            (s.as_str().to_owned(), Value::from(n))
        })
        .collect();
    let skipped = results.filter(|o| not_attempted(o).is_some()).count();
    counts.insert("not_attempted".to_owned(), Value::from(skipped));
    counts
}

/// The `--json` document of a retire run (version 1); with `--disable-accesshash-auth`,
/// the access hashes not converted and in use (`accesshash_in_use`: one object each).
fn retire_document(
    args: &RetireArgs,
    backend: &str,
    report: &RetireReport,
    in_use: &[InUse],
) -> Value {
    let results: Vec<Value> = report
        .outcomes
        .iter()
        .map(|o| outcome_json(o, json!({"user": o.name})))
        .collect();
    let mut doc = json!({
        "version": 1,
        "dry_run": args.dry_run,
        "backend": backend,
        "run_id": report.run.as_ref().map(RunId::as_str),
        "results": results,
        "summary": summary(&Status::RETIRE, report.outcomes.iter()),
    });
    if args.disable_accesshash_auth {
        doc["accesshash_in_use"] = in_use.iter().map(InUse::json).collect();
    }
    doc["accesshash_auth"] = json!(report.auth.as_str());
    doc
}

/// `head` (the object naming what it is about) with the outcome's status and error.
fn outcome_json(o: &Outcome, mut head: Value) -> Value {
    head["status"] = json!(o.status.as_str());
    if let Some(problem) = &o.problem {
        head["error"] = json!(problem_line(problem));
    }
    head
}

fn report_line(o: &Outcome, dry_run: bool, run: Option<&RunId>) -> Option<String> {
    let user = shown(&o.name);
    Some(match o.status {
        Status::Retired if dry_run => format!("Would retire accesshash for “{user}”"),
        Status::Retired => format!(
            "Retired accesshash for “{user}” (backup in run {})",
            run.map_or("", RunId::as_str)
        ),
        Status::AlreadyRetired => format!("Already retired accesshash for “{user}”"),
        Status::NoAccessHash => format!("No accesshash for “{user}”"),
        _ => return None,
    })
}

/// A closed stdout (a pipe whose reader left) loses lines, never the status.
fn finish(written: io::Result<()>) -> Result<(), CliError> {
    match written {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(CliError::Output(e)),
        _ => Ok(()),
    }
}

/// Restores a run, prints, and returns the exit status.
pub fn run_restore(args: RestoreArgs, config: Option<&Utf8Path>) -> Result<u8, CliError> {
    let id = RunId::parse(&args.run).map_err(|e| CliError::Argument(e.to_string()))?;
    let backend = open(config, args.lock_timeout)?;
    // No such run: the id is wrong, not the disk (exit 64).
    if let Err(BackendError::NotFound { .. }) = capability(backend.as_ref()).journal(&id) {
        return Err(CliError::Argument(format!(
            "no run {} (whmtoken runs lists them)",
            id.as_str()
        )));
    }
    let report = retire::restore(
        capability(backend.as_ref()),
        &id,
        (args.force, args.dry_run),
        pipeline::default_jobs(),
        &SystemClock,
    )
    .map_err(|e| match e {
        BackendError::Locked { .. } => CliError::RunLock(e),
        e => CliError::Run(e),
    })?;
    let mut stderr = io::stderr();
    if let Some(problem) = &report.mark_problem {
        let _ = writeln!(stderr, "error: {}", shown(problem));
    }
    let mut out = io::BufWriter::new(io::stdout().lock());
    let written = if args.json {
        let doc = restore_document(&args, backend.kind(), &id, &report);
        serde_json::to_writer_pretty(&mut out, &doc)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        let outcomes = report.results.iter().map(|(_, o)| o);
        let summary = (!report.results.is_empty()).then(|| restore_summary(outcomes, args.dry_run));
        report
            .results
            .iter()
            .filter_map(|(kind, o)| restore_line(*kind, o, args.dry_run, &id))
            .chain(summary)
            .try_for_each(|line| writeln!(out, "{line}"))
    };
    print_problems(
        &mut stderr,
        report.results.iter().map(|(_, o)| o),
        args.verbose,
    );
    finish(written.and_then(|()| out.flush()))?;
    Ok(if report.any_failed() {
        status::SOME_FAILED
    } else {
        status::OK
    })
}

/// The `--json` document of a restore (version 1).
fn restore_document(
    args: &RestoreArgs,
    backend: &str,
    id: &RunId,
    report: &RestoreReport,
) -> Value {
    let list: Vec<Value> = report
        .results
        .iter()
        .map(|(kind, o)| {
            let head = match kind {
                ChangeKind::Accesshash => json!({"change": kind.as_str(), "user": o.name}),
                ChangeKind::Setting => json!({"change": kind.as_str(), "name": o.name}),
            };
            outcome_json(o, head)
        })
        .collect();
    json!({
        "version": 1,
        "dry_run": args.dry_run,
        "backend": backend,
        "run_id": id.as_str(),
        "results": list,
        "summary": summary(&Status::RESTORE, report.results.iter().map(|(_, o)| o)),
        "restored_at": report.marked.or(report.journal.restored_at),
    })
}

fn restore_line(kind: ChangeKind, o: &Outcome, dry_run: bool, id: &RunId) -> Option<String> {
    let name = shown(&o.name);
    Some(match (kind, o.status) {
        (ChangeKind::Accesshash, Status::Restored) if dry_run => {
            format!("Would restore accesshash for “{name}”")
        }
        (ChangeKind::Accesshash, Status::Restored) => {
            format!("Restored accesshash for “{name}” (run {id})")
        }
        (ChangeKind::Accesshash, Status::AlreadyRestored) => {
            format!("Already restored accesshash for “{name}”")
        }
        (ChangeKind::Setting, Status::Restored) if dry_run => {
            format!("Would restore {name} as it was before run {id}")
        }
        (ChangeKind::Setting, Status::Restored) => {
            format!("Restored {name} as it was before run {id}")
        }
        (ChangeKind::Setting, Status::AlreadyRestored) => format!("Already restored {name}"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_have_a_comma_between_thousands() {
        for (n, shown) in [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (1_997, "1,997"),
            (1_234_567, "1,234,567"),
        ] {
            assert_eq!(thousands(n), shown);
        }
    }
}

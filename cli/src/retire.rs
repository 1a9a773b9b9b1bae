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
    self, Auth, AuthProblem, ChangeKind, Journal, Outcome, Problem, Pruning, RestoreReport,
    RestoreState, RetireReport, RetireRequest, Retirement, RunId, Status,
};
use whmtoken_core::usage::Covered;
use whmtoken_core::{Backend, BackendError, findings_usage, pipeline};

use crate::config;
use crate::error::{CliError, status};
use crate::output::shown;
use whmtoken_backends::SystemClock;

/// `whmtoken retire [USER]... | --all-resellers | --setting-only [--disable-accesshash-auth] [-n] [--json] [--force]`
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

/// `whmtoken runs [--json] [--prune --older-than DURATION [--force] [-n]]`
#[derive(Debug, clap::Args)]
pub struct RunsArgs {
    /// Print one JSON document on stdout instead of lines
    #[arg(long)]
    pub json: bool,
    /// Remove the backups of restored runs begun longer ago than --older-than (journaled;
    /// such a run can no longer put an access hash back)
    #[arg(long, requires = "older_than")]
    pub prune: bool,
    /// With --prune: how long ago a run must have begun, a whole number and a unit: m
    /// (minutes), h (hours), d (days) or w (weeks), such as 90d
    #[arg(long, value_name = "DURATION", requires = "prune", value_parser = span)]
    pub older_than: Option<i64>,
    /// With --prune: prune runs that were not restored (or only partly) too
    #[arg(long, requires = "prune")]
    pub force: bool,
    /// With --prune: say what would be pruned, and change nothing
    #[arg(short = 'n', long, requires = "prune")]
    pub dry_run: bool,
    /// With --prune: wait at most this long for the run lock (0 to 3600, default 30)
    #[arg(long, value_name = "SECS", requires = "prune", allow_hyphen_values = true, value_parser = crate::args::lock_timeout)]
    pub lock_timeout: Option<Duration>,
}

/// `--older-than`: a whole number and a unit, `m`, `h`, `d` or `w`; in seconds.
fn span(text: &str) -> Result<i64, String> {
    let expected = || {
        "expected a whole number and a unit, m (minutes), h (hours), d (days) or w (weeks), such as 90d".to_owned()
    };
    let text = text.trim();
    let digits = text.trim_end_matches(|c: char| !c.is_ascii_digit());
    let per_unit: i64 = match text[digits.len()..].trim() {
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(expected()),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(expected());
    }
    digits
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(per_unit))
        .ok_or_else(expected)
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
    let in_use = accesshashes_in_use(backend, &report.unconverted);
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
    for line in &in_use {
        let _ = writeln!(stderr, "{level}: {}", shown(line));
    }
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

/// The accounts among `unconverted` whose access hash the server's logs show in use over
/// the last 90 days, each as a line naming its last clients (none without logs).
fn accesshashes_in_use(backend: &dyn Backend, unconverted: &[String]) -> Vec<String> {
    if unconverted.is_empty() {
        return Vec::new();
    }
    let covered = unconverted
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
    usage
        .accounts
        .iter()
        .filter(|a| a.accesshash.used())
        .map(|a| {
            format!(
                "{}: access hash not converted and in use, its clients break once access-hash authentication is off: {}",
                a.user,
                findings_usage::uses_text(&a.accesshash, usage.window.from)
            )
        })
        .collect()
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

/// `n` with a comma between thousands: `1,997`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
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

/// A `--json` document's `summary`: how many of `results` have each of `statuses`.
fn summary<'a>(
    statuses: &[Status],
    results: impl Iterator<Item = &'a Outcome> + Clone,
) -> serde_json::Map<String, Value> {
    statuses
        .iter()
        .map(|s| {
            let n = results.clone().filter(|o| o.status == *s).count();
            (s.as_str().to_owned(), Value::from(n))
        })
        .collect()
}

/// The `--json` document of a retire run (version 1); with `--disable-accesshash-auth`,
/// the access hashes not converted and in use (`in_use`).
fn retire_document(
    args: &RetireArgs,
    backend: &str,
    report: &RetireReport,
    in_use: &[String],
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
        doc["accesshash_in_use"] = json!(in_use);
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

/// Lists the runs, or prunes them (`--prune`).
pub fn run_runs(args: RunsArgs, config: Option<&Utf8Path>) -> Result<u8, CliError> {
    if let Some(older_than) = args.older_than.filter(|_| args.prune) {
        return run_prune(&args, older_than, config);
    }
    let backend = open(config, None)?;
    let journals = capability(backend.as_ref())
        .journals()
        .map_err(CliError::Run)?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    let written = if args.json {
        let runs: Vec<Value> = journals.iter().map(run_json).collect();
        let doc = json!({"version": 1, "backend": backend.kind(), "runs": runs});
        serde_json::to_writer_pretty(&mut out, &doc)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out))
    } else if journals.is_empty() {
        writeln!(out, "No retire runs on this server yet.")
    } else {
        journals
            .iter()
            .try_for_each(|j| writeln!(out, "{}", run_line(j)))
    };
    finish(written.and_then(|()| out.flush()))?;
    Ok(status::OK)
}

/// Prunes the runs' backups, prints, and returns the exit status.
fn run_prune(args: &RunsArgs, older_than: i64, config: Option<&Utf8Path>) -> Result<u8, CliError> {
    let backend = open(config, args.lock_timeout)?;
    let request = retire::PruneRequest {
        older_than,
        force: args.force,
        dry_run: args.dry_run,
    };
    let done =
        retire::prune(capability(backend.as_ref()), request, &SystemClock).map_err(
            |e| match e {
                BackendError::Locked { .. } => CliError::RunLock(e),
                e => CliError::Run(e),
            },
        )?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    let written = if args.json {
        let runs: Vec<Value> = done
            .iter()
            .map(|(id, pruning)| {
                let (status, extra) = match pruning {
                    Pruning::Pruned { removed } => ("pruned", json!({"removed": removed})),
                    Pruning::NotRestored(state) => ("kept", json!({"restore": state.as_str()})),
                    Pruning::AlreadyPruned(at) => ("already_pruned", json!({"pruned_at": at})),
                };
                let mut run = json!({"id": id.as_str(), "status": status});
                if let (Some(run), Some(extra)) = (run.as_object_mut(), extra.as_object()) {
                    run.extend(extra.clone());
                }
                run
            })
            .collect();
        let doc =
            json!({"version": 1, "dry_run": args.dry_run, "backend": backend.kind(), "runs": runs});
        serde_json::to_writer_pretty(&mut out, &doc)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        let pruned = done
            .iter()
            .filter(|(_, p)| matches!(p, Pruning::Pruned { .. }))
            .count();
        let kept = done
            .iter()
            .filter(|(_, p)| matches!(p, Pruning::NotRestored(_)))
            .count();
        let summary = format!(
            "{} {}, kept {} not restored.",
            if args.dry_run {
                "Would prune"
            } else {
                "Pruned"
            },
            thousands(pruned),
            thousands(kept)
        );
        done.iter()
            .filter_map(|(id, pruning)| prune_line(id, pruning, args.dry_run))
            .chain(std::iter::once(summary))
            .try_for_each(|line| writeln!(out, "{line}"))
    };
    finish(written.and_then(|()| out.flush()))?;
    Ok(status::OK)
}

fn prune_line(id: &RunId, pruning: &Pruning, dry_run: bool) -> Option<String> {
    Some(match pruning {
        Pruning::Pruned { .. } if dry_run => format!("Would prune the backups of run {id}"),
        Pruning::Pruned { removed } => format!(
            "Pruned the backups of run {id} ({} file(s))",
            removed.unwrap_or(0)
        ),
        Pruning::NotRestored(state) => format!(
            "Kept the backups of run {id}: {}; restore it first, or prune it with --force",
            match state {
                RestoreState::PartlyRestored => "only partly restored",
                _ => "not restored",
            }
        ),
        Pruning::AlreadyPruned(_) => return None,
    })
}

/// A time as text output shows it: `2026-12-03 21:19:22 UTC`.
fn time(epoch: i64) -> String {
    jiff::Timestamp::from_second(epoch).map_or_else(
        |_| epoch.to_string(),
        |t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// A run's changes a restore put back and did not: the accounts (and settings) each way,
/// accounts in the order the run was given them.
fn restored_split<'a>(j: &'a Journal) -> (Vec<&'a str>, Vec<&'a str>) {
    let accounts = j.retired_users().into_iter().map(|u| (u, false));
    let settings = j.settings().map(|s| (s.name.as_str(), true));
    let (back, not_back): (Vec<_>, Vec<_>) = accounts
        .chain(settings)
        .partition(|(name, setting)| j.is_restored(name, *setting));
    let names = |list: Vec<(&'a str, bool)>| list.into_iter().map(|(n, _)| n).collect();
    (names(back), names(not_back))
}

fn run_line(j: &Journal) -> String {
    let mut what = vec![format!("retired {} access hash(es)", j.retired())];
    what.extend(j.settings().map(|s| {
        format!(
            "{} {} → {}",
            s.name,
            s.old.as_deref().unwrap_or("unset"),
            s.new.as_deref().unwrap_or("unset")
        )
    }));
    let restored = match (j.restore_state(), j.restored_at) {
        (RestoreState::Restored, Some(at)) => format!("restored at {}", time(at)),
        (RestoreState::PartlyRestored, _) => {
            let (back, not_back) = restored_split(j);
            format!(
                "partly restored (restored: {}; not restored: {})",
                listed(&back),
                listed(&not_back)
            )
        }
        _ => "not restored".to_owned(),
    };
    let pruned = j
        .pruned_at
        .map(|at| format!(", backups pruned at {}", time(at)))
        .unwrap_or_default();
    format!(
        "{}  {}  {}  {}{pruned}",
        j.id,
        time(j.started),
        what.join(", "),
        restored
    )
}

/// Names as a line lists them, `none` for none.
fn listed(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names
            .iter()
            .map(|n| shown(n))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn run_json(j: &Journal) -> Value {
    let users = j.retired_users();
    let settings: Vec<Value> = j
        .settings()
        .map(|s| {
            json!({
                "name": s.name,
                "old": s.old,
                "new": s.new,
                "restored": j.is_restored(&s.name, true),
            })
        })
        .collect();
    let restored: Vec<&str> = users
        .iter()
        .copied()
        .filter(|u| j.is_restored(u, false))
        .collect();
    let not_restored: Vec<&str> = users
        .iter()
        .copied()
        .filter(|u| !j.is_restored(u, false))
        .collect();
    json!({
        "id": j.id.as_str(),
        "started": j.started,
        "command": j.command,
        "retired": users,
        "settings": settings,
        "restored_at": j.restored_at,
        "restore": j.restore_state().as_str(),
        "restored_users": restored,
        "not_restored_users": not_restored,
        "pruned_at": j.pruned_at,
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

    #[test]
    fn times_are_shown_in_utc_to_the_second() {
        assert_eq!(time(1_796_332_762), "2026-12-03 21:19:22 UTC");
    }
}

//! `whmtoken retire`, `whmtoken restore` and `whmtoken runs`: the migration's last step,
//! reversibly, through the backend's [`Retirement`] capability.
//!
//! `retire` decides every account first (reads only: a dry run stops there), then starts a
//! run (its journal written before the first change) and retires the converted access
//! hashes one account at a time, then, with `--disable-accesshash-auth`, turns
//! `allow_deprecated_accesshash` off unless an access hash on the server is not converted.

use std::collections::BTreeSet;
use std::io::{self, Write};

use camino::Utf8Path;
use jiff::Zoned;
use serde_json::{Value, json};
use whmtoken_core::backend::DEFAULT_LOCK_TIMEOUT;
use whmtoken_core::pipeline::UserError;
use whmtoken_core::retire::{
    self, Change, Journal, Restored, Retired, Retirement, RunId, Standing, standing,
};
use whmtoken_core::{Backend, BackendError, UserName, WhmRole, error_chain, parallel, pipeline};

use crate::config;
use crate::error::{CliError, status};
use crate::output::shown;

/// `whmtoken retire [USER]... | --all-resellers [--disable-accesshash-auth] [-n] [--json] [--force]`
#[derive(Debug, clap::Args)]
pub struct RetireArgs {
    /// Accounts whose access hash to retire [default: root]
    #[arg(value_name = "USER", conflicts_with = "all_resellers")]
    pub users: Vec<String>,
    /// Retire the access hash of every reseller
    #[arg(long)]
    pub all_resellers: bool,
    /// Then turn access-hash authentication off (allow_deprecated_accesshash=0), unless an
    /// access hash on the server is not converted
    #[arg(long)]
    pub disable_accesshash_auth: bool,
    /// Say what would be done, and change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Print one JSON document on stdout instead of lines
    #[arg(long)]
    pub json: bool,
    /// Turn access-hash authentication off even while access hashes are not converted
    #[arg(long)]
    pub force: bool,
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
}

/// `whmtoken runs [--json]`
#[derive(Debug, clap::Args)]
pub struct RunsArgs {
    /// Print one JSON document on stdout instead of lines
    #[arg(long)]
    pub json: bool,
}

/// One account's outcome.
#[derive(Debug)]
struct Outcome {
    user: String,
    status: &'static str,
    error: Option<String>,
}

const RETIRE_STATUSES: [&str; 5] = [
    "retired",
    "already_retired",
    "no_accesshash",
    "not_converted",
    "failed",
];

fn standing_status(s: Standing) -> &'static str {
    match s {
        Standing::Converted => "retired",
        Standing::NotConverted => "not_converted",
        Standing::AlreadyRetired => "already_retired",
        Standing::NoAccessHash => "no_accesshash",
    }
}

const NOT_CONVERTED: &str = "access hash not converted; run convert_accesshash_to_token first";

/// The backend, opened from the config, and its retirement capability.
fn open(config: Option<&Utf8Path>) -> Result<Box<dyn Backend>, CliError> {
    let settings = config::load_settings(config)?;
    settings.check_root()?;
    let backend = settings
        .open(DEFAULT_LOCK_TIMEOUT)
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

/// An account's name and where it stands, or why that could not be told.
type Decided = Result<(UserName, Standing), String>;

/// Where `raw` stands now, read only; an account that is neither root nor a reseller is
/// refused as the converter refuses it.
fn decide(backend: &dyn Backend, raw: &str) -> Decided {
    let user = UserName::new(raw).map_err(|e| e.to_string())?;
    if backend.role(&user).map_err(|e| error_chain(&e))? == WhmRole::NotReseller {
        return Err(UserError::NotReseller(user).to_string());
    }
    let hash = backend
        .read_access_hash(&user)
        .map_err(|e| error_chain(&e))?;
    let standing = standing(backend, &user, hash.as_ref()).map_err(|e| error_chain(&e))?;
    Ok((user, standing))
}

/// Retires, prints, and returns the exit status.
pub fn run_retire(args: RetireArgs, config: Option<&Utf8Path>) -> Result<u8, CliError> {
    let backend = open(config)?;
    let backend = backend.as_ref();
    let mut stderr = io::stderr();
    for notice in backend.notices() {
        let _ = writeln!(stderr, "warning: {notice}");
    }
    let listed = if args.all_resellers {
        backend.resellers().map_err(CliError::Resellers)?
    } else if args.users.is_empty() {
        vec!["root".to_owned()]
    } else {
        args.users.clone()
    };
    let mut seen = BTreeSet::new();
    let users: Vec<String> = listed
        .into_iter()
        .filter(|u| seen.insert(u.clone()))
        .collect();

    let retirement = capability(backend);
    let mut run: Option<RunId> = None;
    let start = |run: &mut Option<RunId>| -> Result<RunId, BackendError> {
        if let Some(id) = run {
            return Ok(id.clone());
        }
        let now = Zoned::now();
        let id = RunId::new(&now, &mut rand::rng());
        retirement.begin(&id, now.timestamp().as_second(), "retire")?;
        *run = Some(id.clone());
        Ok(id)
    };

    // Decided first, reading only: a dry run stops here, and a run that changes nothing
    // leaves no journal.
    let jobs = pipeline::default_jobs();
    let decided = parallel::map(&users, jobs, |raw| decide(backend, raw));
    let wanted = decided
        .iter()
        .any(|d| matches!(d, Ok((_, Standing::Converted))));
    let begun = if wanted && !args.dry_run {
        Some(start(&mut run).map_err(|e| error_chain(&e)))
    } else {
        None
    };
    let items: Vec<(&String, Decided)> = users.iter().zip(decided).collect();
    let outcomes = parallel::map(&items, jobs, |(raw, decided)| match (decided, &begun) {
        (Err(error), _) => failed(raw, error.clone()),
        (Ok((user, Standing::Converted)), Some(begun)) => match begun {
            Err(error) => failed(raw, format!("cannot start the run: {error}")),
            Ok(id) => retire_one(retirement, id, user),
        },
        (Ok((user, s @ (Standing::AlreadyRetired | Standing::NoAccessHash))), _)
            if !args.dry_run =>
        {
            finish_interrupted(retirement, user, *s)
        }
        (Ok((_, s)), _) => outcome(raw, standing_status(*s)),
    });
    let mut out = io::BufWriter::new(io::stdout().lock());
    let mut out_status = Ok(());
    if !args.json {
        for o in &outcomes {
            report_line(o, args.dry_run, run.as_ref(), &mut out, &mut out_status);
        }
    }

    let (auth, auth_error) = if args.disable_accesshash_auth {
        disable_auth(backend, &args, &outcomes, &mut run, &start)
    } else {
        ("unchanged", None)
    };
    if args.json {
        let doc = retire_document(&args, backend.kind(), run.as_ref(), &outcomes, auth);
        out_status = serde_json::to_writer_pretty(&mut out, &doc)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out));
    } else if let Some(line) = auth_line(&args, run.as_ref(), auth)
        && out_status.is_ok()
    {
        out_status = writeln!(out, "{line}");
    }
    for o in &outcomes {
        if let Some(error) = &o.error {
            let _ = writeln!(stderr, "error: {}: {}", shown(&o.user), shown(error));
        }
    }
    if let Some(error) = &auth_error {
        let _ = writeln!(stderr, "error: {}", shown(error));
    }
    finish(out_status.and_then(|()| out.flush()))?;
    let any_failed = outcomes.iter().any(|o| o.error.is_some()) || auth_error.is_some();
    Ok(if any_failed {
        status::SOME_FAILED
    } else {
        status::OK
    })
}

/// The line saying what became of the setting, when `--disable-accesshash-auth` was given
/// and it was not refused.
fn auth_line(args: &RetireArgs, run: Option<&RunId>, auth: &str) -> Option<String> {
    match auth {
        _ if !args.disable_accesshash_auth => None,
        "disabled" if args.dry_run => Some(
            "Would disable access-hash authentication (allow_deprecated_accesshash=0)".to_owned(),
        ),
        "disabled" => Some(format!(
            "Disabled access-hash authentication (allow_deprecated_accesshash=0, run {})",
            run.map_or("", RunId::as_str)
        )),
        "unchanged" => Some(
            "Access-hash authentication is already off (allow_deprecated_accesshash=0)".to_owned(),
        ),
        _ => None,
    }
}

/// The `--json` document of a retire run (version 1).
fn retire_document(
    args: &RetireArgs,
    backend: &str,
    run: Option<&RunId>,
    outcomes: &[Outcome],
    auth: &str,
) -> Value {
    let summary: serde_json::Map<String, Value> = RETIRE_STATUSES
        .iter()
        .map(|s| {
            let n = outcomes.iter().filter(|o| o.status == *s).count();
            ((*s).to_owned(), Value::from(n))
        })
        .collect();
    let results: Vec<Value> = outcomes.iter().map(outcome_json).collect();
    json!({
        "version": 1,
        "dry_run": args.dry_run,
        "backend": backend,
        "run_id": run.map(RunId::as_str),
        "results": results,
        "summary": summary,
        "accesshash_auth": auth,
    })
}

/// Retires `user` in run `id` and writes its audit line.
fn retire_one(retirement: &dyn Retirement, id: &RunId, user: &UserName) -> Outcome {
    let raw = user.as_str();
    match retirement.retire(id, user) {
        Err(e) => failed(raw, error_chain(&e)),
        Ok(Retired::Left(s)) => outcome(raw, standing_status(s)),
        Ok(Retired::Done(_)) => {
            let line = retire::accounting_line(&Zoned::now(), "RETIREACCESSHASH", raw, id);
            match retirement.append_accounting(&line) {
                Ok(()) => outcome(raw, "retired"),
                Err(e) => failed(
                    raw,
                    format!(
                        "retired, but the audit line was not written: {}",
                        error_chain(&e)
                    ),
                ),
            }
        }
    }
}

/// Finishes the retirement of `user` that a killed run left half done, with its audit
/// line under that run's id; the account's status stays `standing`'s.
fn finish_interrupted(retirement: &dyn Retirement, user: &UserName, standing: Standing) -> Outcome {
    let raw = user.as_str();
    match retirement.finish_interrupted(user) {
        Ok(None) => outcome(raw, standing_status(standing)),
        Ok(Some(id)) => {
            let line = retire::accounting_line(&Zoned::now(), "RETIREACCESSHASH", raw, &id);
            match retirement.append_accounting(&line) {
                Ok(()) => outcome(raw, standing_status(standing)),
                Err(e) => failed(
                    raw,
                    format!(
                        "retired, but the audit line was not written: {}",
                        error_chain(&e)
                    ),
                ),
            }
        }
        Err(e) => failed(raw, error_chain(&e)),
    }
}

/// `--disable-accesshash-auth`: `disabled`, `unchanged` or `refused`, and the error line.
fn disable_auth(
    backend: &dyn Backend,
    args: &RetireArgs,
    outcomes: &[Outcome],
    run: &mut Option<RunId>,
    start: &dyn Fn(&mut Option<RunId>) -> Result<RunId, BackendError>,
) -> (&'static str, Option<String>) {
    let settings = match backend.server_settings() {
        Ok(settings) => settings,
        Err(e) => {
            return (
                "refused",
                Some(format!(
                    "cannot read the server's settings: {}",
                    error_chain(&e)
                )),
            );
        }
    };
    if !settings.allow_deprecated_accesshash {
        return ("unchanged", None);
    }
    if !args.force {
        let blockers = blockers(backend, outcomes);
        if !blockers.is_empty() {
            let listed: Vec<String> = blockers.iter().take(10).map(|u| shown(u)).collect();
            let more = if blockers.len() > 10 { ", …" } else { "" };
            return (
                "refused",
                Some(format!(
                    "allow_deprecated_accesshash left on: {} account(s) still have an access hash that is not converted ({}{more}); their clients would break at once. Convert them first, or use --force",
                    blockers.len(),
                    listed.join(", ")
                )),
            );
        }
    }
    if args.dry_run {
        return ("disabled", None);
    }
    let retirement = capability(backend);
    let changed = start(run).and_then(|id| {
        let change = retirement.set_accesshash_auth(&id, false)?;
        if change.is_some() {
            let line = retire::accounting_line(&Zoned::now(), "DISABLEACCESSHASHAUTH", "root", &id);
            retirement.append_accounting(&line)?;
        }
        Ok(change)
    });
    match changed {
        Ok(Some(_)) => ("disabled", None),
        Ok(None) => ("unchanged", None),
        Err(e) => (
            "refused",
            Some(format!(
                "cannot disable access-hash authentication: {}",
                error_chain(&e)
            )),
        ),
    }
}

/// The accounts (root, every reseller, and those named) whose access hash would stop
/// working: not converted, or not readable to tell.
fn blockers(backend: &dyn Backend, outcomes: &[Outcome]) -> Vec<String> {
    let mut accounts: BTreeSet<String> = backend
        .resellers()
        .unwrap_or_default()
        .into_iter()
        .collect();
    accounts.insert("root".to_owned());
    accounts.extend(outcomes.iter().map(|o| o.user.clone()));
    accounts
        .into_iter()
        .filter(|raw| match decide(backend, raw) {
            Ok((_, s)) => s == Standing::NotConverted,
            // An account whose access hash cannot be read to tell; not one that does not
            // exist, nor one that WHM's API does not serve (not a reseller).
            Err(_) => UserName::new(raw).ok().is_some_and(|user| {
                backend.has_account(&user).unwrap_or(true)
                    && backend
                        .role(&user)
                        .map_or(true, |r| r != WhmRole::NotReseller)
            }),
        })
        .collect()
}

fn outcome(user: &str, status: &'static str) -> Outcome {
    Outcome {
        user: user.to_owned(),
        status,
        error: (status == "not_converted").then(|| NOT_CONVERTED.to_owned()),
    }
}

fn failed(user: &str, error: String) -> Outcome {
    Outcome {
        user: user.to_owned(),
        status: "failed",
        error: Some(error),
    }
}

fn outcome_json(o: &Outcome) -> Value {
    let mut v = json!({"user": o.user, "status": o.status});
    if let Some(error) = &o.error {
        v["error"] = json!(error);
    }
    v
}

fn report_line(
    o: &Outcome,
    dry_run: bool,
    run: Option<&RunId>,
    out: &mut impl Write,
    out_status: &mut io::Result<()>,
) {
    let user = shown(&o.user);
    let line = match o.status {
        "retired" if dry_run => format!("Would retire accesshash for “{user}”"),
        "retired" => format!(
            "Retired accesshash for “{user}” (backup in run {})",
            run.map_or("", RunId::as_str)
        ),
        "already_retired" => format!("Already retired accesshash for “{user}”"),
        "no_accesshash" => format!("No accesshash for “{user}”"),
        _ => return,
    };
    if out_status.is_ok() {
        *out_status = writeln!(out, "{line}");
    }
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
    let backend = open(config)?;
    let retirement = capability(backend.as_ref());
    let journal = retirement.journal(&id).map_err(CliError::Run)?;
    let changes: Vec<&Change> = journal.changes.iter().rev().collect();
    let results = parallel::map(&changes, pipeline::default_jobs(), |change| {
        let (what, name) = match change {
            Change::Accesshash(f) => ("accesshash", f.user.clone()),
            Change::Setting(s) => ("setting", s.name.clone()),
        };
        // Decided from a read first: nothing is locked or written for a change that is
        // back already.
        let restored = match retirement.restore_change(&id, change, args.force, true) {
            Ok(Restored::Restored) if !args.dry_run => {
                retirement.restore_change(&id, change, args.force, false)
            }
            checked => checked,
        };
        let (status, error) = match restored {
            Ok(Restored::Restored) => ("restored", None),
            Ok(Restored::AlreadyRestored) => ("already_restored", None),
            Err(e) => ("failed", Some(error_chain(&e))),
        };
        if status == "restored" && !args.dry_run {
            let (action, user) = match change {
                Change::Accesshash(f) => ("RESTOREACCESSHASH", f.user.as_str()),
                Change::Setting(_) => ("ENABLEACCESSHASHAUTH", "root"),
            };
            let line = retire::accounting_line(&Zoned::now(), action, user, &id);
            if let Err(e) = retirement.append_accounting(&line) {
                let _ = writeln!(io::stderr(), "warning: {}", shown(&error_chain(&e)));
            }
        }
        (what, name, status, error)
    });
    let changed = !args.dry_run && results.iter().any(|r| r.2 == "restored");
    let mut any_failed = results.iter().any(|r| r.3.is_some());
    let mut marked = None;
    if !args.dry_run && !any_failed && (changed || journal.restored_at.is_none()) {
        let at = Zoned::now().timestamp().as_second();
        match retirement.mark_restored(&id, at) {
            Ok(()) => marked = Some(at),
            Err(e) => {
                any_failed = true;
                let _ = writeln!(
                    io::stderr(),
                    "error: every change of run {id} is back, but the journal could not record it: {}",
                    shown(&error_chain(&e))
                );
            }
        }
    }
    let mut out = io::BufWriter::new(io::stdout().lock());
    let written = if args.json {
        let summary: serde_json::Map<String, Value> = ["restored", "already_restored", "failed"]
            .iter()
            .map(|s| {
                let n = results.iter().filter(|r| r.2 == *s).count();
                ((*s).to_owned(), Value::from(n))
            })
            .collect();
        let list: Vec<Value> = results
            .iter()
            .map(|(what, name, status, error)| {
                let key = if *what == "accesshash" {
                    "user"
                } else {
                    "name"
                };
                let mut v = json!({"change": what, key: name, "status": status});
                if let Some(error) = error {
                    v["error"] = json!(error);
                }
                v
            })
            .collect();
        let doc = json!({
            "version": 1,
            "dry_run": args.dry_run,
            "backend": backend.kind(),
            "run_id": id.as_str(),
            "results": list,
            "summary": summary,
            "restored_at": marked.or(journal.restored_at),
        });
        serde_json::to_writer_pretty(&mut out, &doc)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        results.iter().try_for_each(|(what, name, status, _)| {
            let name = shown(name);
            let line = match (*what, *status) {
                ("accesshash", "restored") if args.dry_run => {
                    format!("Would restore accesshash for “{name}”")
                }
                ("accesshash", "restored") => {
                    format!("Restored accesshash for “{name}” (run {id})")
                }
                ("accesshash", "already_restored") => {
                    format!("Already restored accesshash for “{name}”")
                }
                ("setting", "restored") if args.dry_run => {
                    format!("Would restore {name} as it was before run {id}")
                }
                ("setting", "restored") => format!("Restored {name} as it was before run {id}"),
                ("setting", "already_restored") => format!("Already restored {name}"),
                _ => return Ok(()),
            };
            writeln!(out, "{line}")
        })
    };
    for (_, name, _, error) in &results {
        if let Some(error) = error {
            let _ = writeln!(io::stderr(), "error: {}: {}", shown(name), shown(error));
        }
    }
    finish(written.and_then(|()| out.flush()))?;
    Ok(if any_failed {
        status::SOME_FAILED
    } else {
        status::OK
    })
}

/// Lists the runs.
pub fn run_runs(args: RunsArgs, config: Option<&Utf8Path>) -> Result<u8, CliError> {
    let backend = open(config)?;
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
    } else {
        journals
            .iter()
            .try_for_each(|j| writeln!(out, "{}", run_line(j)))
    };
    finish(written.and_then(|()| out.flush()))?;
    Ok(status::OK)
}

fn time(epoch: i64) -> String {
    jiff::Timestamp::from_second(epoch).map_or_else(|_| epoch.to_string(), |t| t.to_string())
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
    let restored = j.restored_at.map_or_else(
        || "not restored".to_owned(),
        |at| format!("restored at {}", time(at)),
    );
    format!(
        "{}  {}  {}  {}",
        j.id,
        time(j.started),
        what.join(", "),
        restored
    )
}

fn run_json(j: &Journal) -> Value {
    let users = j.retired_users();
    let settings: Vec<Value> = j
        .settings()
        .map(|s| json!({"name": s.name, "old": s.old, "new": s.new}))
        .collect();
    json!({
        "id": j.id.as_str(),
        "started": j.started,
        "command": j.command,
        "retired": users,
        "settings": settings,
        "restored_at": j.restored_at,
    })
}

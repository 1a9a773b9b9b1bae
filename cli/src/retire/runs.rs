//! `whmtoken runs`: the runs listed (what each changed, whether restored, in part or in
//! whole, whether its backups were pruned), and `--prune`, core's
//! [`whmtoken_core::retire::prune`] with its lines and `--json` document.

use std::io::{self, Write};
use std::time::Duration;

use camino::Utf8Path;
use serde_json::{Value, json};
use whmtoken_backends::SystemClock;
use whmtoken_core::BackendError;
use whmtoken_core::retire::{self, Journal, Pruning, RestoreState, RunId};

use super::{FIRST_FEW, capability, finish, open, thousands};
use crate::error::{CliError, status};
use crate::output::shown;

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
    /// With --prune: how long ago a run must have begun, a whole number (1 or more) and a
    /// unit: m (minutes), h (hours), d (days) or w (weeks), such as 90d
    #[arg(long, value_name = "DURATION", requires = "prune", value_parser = span)]
    pub older_than: Option<i64>,
    /// With --prune: prune runs that were not restored (or only partly) too
    #[arg(long, requires = "prune")]
    pub force: bool,
    /// With --prune: say what would be pruned, and change nothing
    #[arg(short = 'n', long, requires = "prune")]
    pub dry_run: bool,
    /// List every account of a partly restored run, not only the first few
    #[arg(long)]
    pub verbose: bool,
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
    match digits
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(per_unit))
    {
        // 0 would prune a run begun this very second, which the command that made it may
        // still be about to restore: refused, as a slip.
        Some(0) => Err("must be more than 0 (a run just begun is never pruned)".to_owned()),
        Some(seconds) => Ok(seconds),
        None => Err(expected()),
    }
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
            .try_for_each(|j| writeln!(out, "{}", run_line(j, args.verbose)))
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
                    Pruning::HoldsReplaced(users) => ("kept", json!({"replaced": users})),
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
    } else if done.is_empty() {
        let any = capability(backend.as_ref())
            .journals()
            .is_ok_and(|j| !j.is_empty());
        if any {
            writeln!(out, "No retire run begun that long ago; nothing to prune.")
        } else {
            writeln!(out, "No retire runs on this server yet.")
        }
    } else {
        let pruned = done
            .iter()
            .filter(|(_, p)| matches!(p, Pruning::Pruned { .. }))
            .count();
        let kept = |state: RestoreState| {
            done.iter()
                .filter(|(_, p)| *p == Pruning::NotRestored(state))
                .count()
        };
        let holding = done
            .iter()
            .filter(|(_, p)| matches!(p, Pruning::HoldsReplaced(_)))
            .count();
        let summary = format!(
            "{} {}, kept {} not restored and {} partly restored{}.",
            if args.dry_run {
                "Would prune"
            } else {
                "Pruned"
            },
            thousands(pruned),
            thousands(kept(RestoreState::NotRestored)),
            thousands(kept(RestoreState::PartlyRestored)),
            if holding > 0 {
                format!(
                    ", and {} holding replaced access hashes",
                    thousands(holding)
                )
            } else {
                String::new()
            }
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
        Pruning::Pruned { removed } if dry_run => {
            format!("Would prune the backups of run {id} ({removed} file(s))")
        }
        Pruning::Pruned { removed } => {
            format!("Pruned the backups of run {id} ({removed} file(s))")
        }
        Pruning::NotRestored(state) => format!(
            "Kept the backups of run {id}: {}; restore it first, or prune it with --force",
            match state {
                RestoreState::PartlyRestored => "only partly restored",
                _ => "not restored",
            }
        ),
        Pruning::HoldsReplaced(users) => format!(
            "Kept the backups of run {id}: they hold the only copy of the access hash a forced \
             restore replaced for {}; prune it with --force",
            users.join(", ")
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

fn run_line(j: &Journal, verbose: bool) -> String {
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
                "partly restored (not restored {}: {}; restored {}: {})",
                thousands(not_back.len()),
                listed(&not_back, verbose),
                thousands(back.len()),
                listed(&back, verbose)
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

/// Names as a line lists them, `none` for none; the first few and `and N more` unless
/// `verbose`.
fn listed(names: &[&str], verbose: bool) -> String {
    if names.is_empty() {
        return "none".to_owned();
    }
    let take = if verbose { names.len() } else { FIRST_FEW };
    let mut text = names
        .iter()
        .take(take)
        .map(|n| shown(n))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > take {
        text.push_str(&format!(
            " and {} more; --verbose lists them",
            thousands(names.len() - take)
        ));
    }
    text
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
    fn times_are_shown_in_utc_to_the_second() {
        assert_eq!(time(1_796_332_762), "2026-12-03 21:19:22 UTC");
    }

    #[test]
    fn older_than_is_a_whole_number_and_a_unit() {
        assert_eq!(span("90d"), Ok(90 * 86_400));
        assert_eq!(span("1m"), Ok(60));
        assert_eq!(span("2w"), Ok(14 * 86_400));
        for bad in [
            "",
            "d",
            "5",
            "5x",
            "-1d",
            "1.5h",
            "99999999999999999999w",
            "0m",
            "0d",
        ] {
            assert!(span(bad).is_err(), "{bad}");
        }
    }
}

//! The restore run: a retire run's changes undone, the settings first, then the accounts
//! in the order the run was given them, each decided from reads
//! ([`super::decide`]) before anything is written; the journal records what came back.
//! Every read and write is a backend primitive ([`Retirement`]); nothing here prints.

use crate::audit::RunAudit;
use crate::backend::{BackendError, Retirement};
use crate::clock::Clock;
use crate::error_chain::error_chain;
use crate::user::UserName;

use super::decide::{self, Problem, Restore, Status, setting_changed_meanwhile};
use super::records::{Change, Journal, Record, RetiredFile, RunId, SettingChange, content_sha512};
use super::run::{LineTurn, Outcome, fail, not_done};

/// What a change of a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Accesshash,
    Setting,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accesshash => "accesshash",
            Self::Setting => "setting",
        }
    }
}

/// What a restore did.
#[derive(Clone, Debug)]
pub struct RestoreReport {
    pub journal: Journal,
    /// One per change: the settings first, then the accounts in the order the run was
    /// given them; `Outcome::name` is the account or setting.
    pub results: Vec<(ChangeKind, Outcome)>,
    /// When the journal recorded the restore (this time).
    pub marked: Option<i64>,
    /// Every change is back, but the journal could not record it.
    pub mark_problem: Option<String>,
}

impl RestoreReport {
    pub fn any_failed(&self) -> bool {
        self.results.iter().any(|(_, o)| o.problem.is_some()) || self.mark_problem.is_some()
    }
}

/// Undoes run `id` (its settings first, then its accounts in the order the run was given
/// them), each change on the thread pool: decided from reads
/// first (nothing is locked or written for a change that is back already, nor in a dry
/// run), then put back; the journal marks the run restored once every change is back. All
/// of it under the server's run lock (not a dry run). The lock could not be taken or the
/// journal could not be read: `Err`.
pub fn restore(
    retirement: &dyn Retirement,
    id: &RunId,
    (force, dry_run): (bool, bool),
    jobs: usize,
    clock: &dyn Clock,
) -> Result<RestoreReport, BackendError> {
    let _lock = (!dry_run).then(|| retirement.lock_runs()).transpose()?;
    let journal = journal_confirmed(retirement, id)?;
    // The settings (changed last) first, then the accounts in the order the run was given
    // them (the journal's).
    let settings = journal
        .changes
        .iter()
        .rev()
        .filter(|c| matches!(c, Change::Setting(_)));
    let accounts = journal
        .changes
        .iter()
        .filter(|c| matches!(c, Change::Accesshash(_)));
    let changes: Vec<(usize, &Change)> = settings.chain(accounts).enumerate().collect();
    let audit = RunAudit::default();
    let results = crate::parallel::map(&changes, jobs, |(index, change)| {
        let turn = LineTurn::new(&audit, *index, retirement, clock);
        restore_change(retirement, &journal, change, (force, dry_run), &turn)
    });
    let changed = !dry_run && results.iter().any(|(_, o)| o.status == Status::Restored);
    let failed = results.iter().any(|(_, o)| o.problem.is_some());
    let (mut marked, mut mark_problem) = (None, None);
    if !dry_run && failed {
        mark_problem = record_partly_restored(retirement, id, &results).err();
    }
    if !dry_run && !failed && (changed || journal.restored_at.is_none()) {
        let at = clock.now().timestamp().as_second();
        match retirement.append(id, &Record::Restored { restored_at: at }) {
            Ok(()) => marked = Some(at),
            Err(e) => {
                mark_problem = Some(format!(
                    "every change of run {id} is back, but the journal could not record it: {}",
                    error_chain(&e)
                ));
            }
        }
    }
    Ok(RestoreReport {
        journal,
        results,
        marked,
        mark_problem,
    })
}

/// Records in run `id`'s journal each change a restore that did not put back every one
/// did put back (or found back); `Err`: the journal could not record it.
fn record_partly_restored(
    retirement: &dyn Retirement,
    id: &RunId,
    results: &[(ChangeKind, Outcome)],
) -> Result<(), String> {
    let back = results
        .iter()
        .filter(|(_, o)| matches!(o.status, Status::Restored | Status::AlreadyRestored));
    for (kind, o) in back {
        let record = match kind {
            ChangeKind::Accesshash => Record::RestoredAccount {
                restored_account: o.name.clone(),
            },
            ChangeKind::Setting => Record::RestoredSetting {
                restored_setting: o.name.clone(),
            },
        };
        retirement.append(id, &record).map_err(|e| {
            format!(
                "the journal of run {id} could not record what was restored: {}",
                error_chain(&e)
            )
        })?;
    }
    Ok(())
}

/// Run `id`'s journal, each removal that a later run finished ([`Record::Finished`], in
/// that run's own journal) counted as complete.
fn journal_confirmed(retirement: &dyn Retirement, id: &RunId) -> Result<Journal, BackendError> {
    let journal = retirement.journal(id)?;
    let unconfirmed = journal
        .changes
        .iter()
        .any(|c| matches!(c, Change::Accesshash(f) if f.unconfirmed));
    if !unconfirmed {
        return Ok(journal);
    }
    let mut journals: Vec<Journal> = retirement
        .journals()?
        .into_iter()
        .filter(|j| j.id != *id && j.finished.iter().any(|(_, run)| run == id))
        .collect();
    journals.push(journal);
    super::records::confirm_finished(&mut journals);
    Ok(journals.pop().expect("pushed above"))
}

/// Restores one change of `journal`'s run, its audit line written durably (in its turn)
/// before the change is made; a line that cannot be written leaves the change, and every
/// later one, undone.
fn restore_change(
    retirement: &dyn Retirement,
    journal: &Journal,
    change: &Change,
    (force, dry_run): (bool, bool),
    turn: &LineTurn<'_>,
) -> (ChangeKind, Outcome) {
    let id = &journal.id;
    let line = |(action, user): (&str, &str)| {
        turn.check()
            .and_then(|()| turn.write((action, user, id)))
            .map_err(|e| not_done("not restored", e))
    };
    let (kind, name, done) = match change {
        Change::Accesshash(f) => (
            ChangeKind::Accesshash,
            f.user.as_str(),
            restore_file(retirement, journal, f, (force, dry_run), &|| {
                line(("RESTOREACCESSHASH", &f.user))
            }),
        ),
        Change::Setting(s) => (
            ChangeKind::Setting,
            s.name.as_str(),
            restore_setting(retirement, s, (force, dry_run), &|| {
                line(("ENABLEACCESSHASHAUTH", "root"))
            }),
        ),
    };
    let outcome = match done {
        Ok(status) => Outcome::new(name, status),
        Err(problem) => Outcome {
            name: name.to_owned(),
            status: Status::Failed,
            problem: Some(problem),
        },
    };
    (kind, outcome)
}

/// An access hash put back from the run's backup, as [`decide::restore_settled`] and
/// [`decide::decide_restore`] say. A set-aside file is recovered only while the run's
/// records leave its removal unfinished: once it was recorded complete (by the run or a
/// later one), a file of that name is the tenant's, and left alone.
fn restore_file(
    retirement: &dyn Retirement,
    journal: &Journal,
    retired: &RetiredFile,
    (force, dry_run): (bool, bool),
    line: &dyn Fn() -> Result<(), Problem>,
) -> Result<Status, Problem> {
    let id = &journal.id;
    let user = UserName::new(&retired.user).map_err(|e| {
        fail(BackendError::Corrupt {
            location: format!("the journal of run {id}"),
            detail: e.to_string(),
        })
    })?;
    if let (Some(then), Some(now)) = (retired.uid, retirement.account_uid(&user).map_err(fail)?)
        && then != now
    {
        return Err(Problem::Failed(format!(
            "uid changed from {then} to {now} since run {id}; not restored"
        )));
    }
    let removal_unfinished = retired.unconfirmed || !journal.records_removals;
    let recovered = retired.set_aside.is_some()
        && removal_unfinished
        && retirement
            .recover_set_aside(retired, dry_run)
            .map_err(fail)?;
    let present = retirement.read_home(&user, retired.uid).map_err(fail)?;
    let present_sha = present.as_ref().map(|p| content_sha512(&p.content));
    if let Some(status) = decide::restore_settled(present_sha.as_deref(), retired, recovered) {
        return Ok(status);
    }
    let (backup_at, content) = match (
        retirement.backup(id, &format!("{user}.accesshash")),
        journal.pruned_at,
    ) {
        (Ok(backup), _) => backup,
        (Err(_), Some(at)) => {
            let at = jiff::Timestamp::from_second(at).map_or_else(
                |_| at.to_string(),
                |t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
            );
            return Err(Problem::Failed(format!(
                "the backups of run {id} were pruned at {at}; not restored"
            )));
        }
        (Err(e), None) => return Err(fail(e)),
    };
    let home = present.as_ref().map_or("", |p| p.location.as_str());
    let decided = decide::decide_restore(
        present_sha.as_deref(),
        retired,
        &content_sha512(&content),
        (&backup_at, home),
        force,
    );
    match decided {
        Restore::Refuse(refusal) => Err(Problem::Refused(refusal)),
        Restore::Already => Ok(Status::AlreadyRestored),
        Restore::Write { .. } if dry_run => Ok(Status::Restored),
        Restore::Write { replacing } => {
            line()?;
            if let (true, Some(present), Some(sha)) = (replacing, &present, &present_sha) {
                // Named by what it holds: kept once, however often it is replaced.
                let name = format!("{user}.accesshash.replaced-{}", &sha[..12]);
                retirement
                    .append(
                        id,
                        &Record::KeptReplaced {
                            kept_replaced: user.to_string(),
                        },
                    )
                    .map_err(fail)?;
                if retirement.backup(id, &name).is_err() {
                    retirement
                        .put_backup(id, &name, &present.content)
                        .map_err(fail)?;
                }
            }
            retirement
                .put_back(retired, &content, present_sha.as_deref())
                .map_err(fail)?;
            Ok(Status::Restored)
        }
    }
}

/// A setting put back as it was before the run.
fn restore_setting(
    retirement: &dyn Retirement,
    change: &SettingChange,
    (force, dry_run): (bool, bool),
    line: &dyn Fn() -> Result<(), Problem>,
) -> Result<Status, Problem> {
    let setting = retirement.setting().map_err(fail)?;
    let now = setting.value.as_deref();
    match decide::decide_setting_restore(now, change, &setting.location, force) {
        Restore::Already => Ok(Status::AlreadyRestored),
        Restore::Refuse(refusal) => Err(Problem::Refused(refusal)),
        Restore::Write { .. } if dry_run => Ok(Status::Restored),
        Restore::Write { .. } => {
            line()?;
            if retirement.restore_setting(now, change).map_err(fail)? {
                Ok(Status::Restored)
            } else {
                Err(Problem::Failed(setting_changed_meanwhile(
                    &setting.location,
                    &change.name,
                )))
            }
        }
    }
}

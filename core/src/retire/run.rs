//! The retire run: the loop over accounts on the thread pool, the setting decided first
//! and switched last, the journal begun before the first change, the audit lines in the
//! accounts' turn (their [`LineTurn`], which the restore run shares).
//! Decisions are [`super::decide`]'s; every read and write is a backend primitive
//! ([`Retirement`]); nothing here prints.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::audit::RunAudit;
use crate::backend::{Backend, BackendError, Retirement, WhmRole};
use crate::clock::Clock;
use crate::error_chain::error_chain;
use crate::pipeline::UserError;
use crate::secret::AccessHash;
use crate::user::UserName;

use super::decide::{
    self, Problem, Standing, Status, allows_access_hash, changed_while_retired,
    setting_changed_meanwhile,
};
use super::records::{
    ALLOW_DEPRECATED_ACCESSHASH, Change, Record, Removal, RetiredFile, RunId, SettingChange,
    accounting_line, content_sha512,
};

/// What a retire run is asked to do.
#[derive(Clone, Debug)]
pub struct RetireRequest {
    /// The accounts, as given (a name given twice is done once).
    pub users: Vec<String>,
    /// Then turn `allow_deprecated_accesshash` off, unless an access hash is not converted;
    /// that is decided first, and when it is refused nothing is retired.
    pub disable_auth: bool,
    /// Turn it off even then.
    pub force: bool,
    /// Decide only: nothing is written.
    pub dry_run: bool,
    pub jobs: usize,
    /// Seeds the run id's random characters.
    pub seed: u64,
}

/// What became of one account, or of one change of a restore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The account (a setting change: the setting's name).
    pub name: String,
    pub status: Status,
    pub problem: Option<Problem>,
}

impl Outcome {
    pub(super) fn new(name: &str, status: Status) -> Self {
        let problem = (status == Status::NotConverted).then_some(Problem::NotConverted);
        Self {
            name: name.to_owned(),
            status,
            problem,
        }
    }

    fn failed(name: &str, message: String) -> Self {
        Self {
            name: name.to_owned(),
            status: Status::Failed,
            problem: Some(Problem::Failed(message)),
        }
    }
}

/// What became of `allow_deprecated_accesshash`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// Not asked to change, or off already.
    Unchanged,
    /// Turned off (a dry run: would be).
    Disabled,
    /// Left on; the report says why.
    Refused,
}

impl Auth {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unchanged => "unchanged",
            Self::Disabled => "disabled",
            Self::Refused => "refused",
        }
    }
}

/// Why the setting was left on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthProblem {
    /// These accounts' access hashes are not converted, or cannot be read to tell
    /// (`unreadable`, a subset of `blockers`): their clients would break. Root first, then
    /// by name. Forcing it goes ahead.
    NotConverted {
        blockers: Vec<String>,
        unreadable: Vec<String>,
    },
    Failed(String),
}

/// How many names a refusal lists before `and N more`.
const NAMES_LISTED: usize = 5;

/// `n` names, the first few, then `and N more`: `(root, res1, …, res5 and 296 more)`.
fn listed(names: &[&String]) -> String {
    let shown: Vec<&str> = names
        .iter()
        .take(NAMES_LISTED)
        .map(|n| n.as_str())
        .collect();
    let more = names.len() - shown.len();
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

impl fmt::Display for AuthProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotConverted {
                blockers,
                unreadable,
            } => {
                let not_converted: Vec<&String> = blockers
                    .iter()
                    .filter(|b| !unreadable.contains(b))
                    .collect();
                let unreadable: Vec<&String> = unreadable.iter().collect();
                let mut parts = Vec::new();
                if !not_converted.is_empty() {
                    parts.push(format!(
                        "{} account(s) still have an access hash that is not converted ({})",
                        not_converted.len(),
                        listed(&not_converted)
                    ));
                }
                if !unreadable.is_empty() {
                    parts.push(format!(
                        "{} account(s) have an access hash that cannot be read to tell whether it is converted ({})",
                        unreadable.len(),
                        listed(&unreadable)
                    ));
                }
                let first = if unreadable.is_empty() {
                    "Convert them first"
                } else {
                    "Convert them (or make their .accesshash readable) first"
                };
                write!(
                    f,
                    "{ALLOW_DEPRECATED_ACCESSHASH} left on: {}; their clients would break at once. {first}",
                    parts.join(", and ")
                )
            }
            Self::Failed(message) => f.write_str(message),
        }
    }
}

/// What a retire run did.
#[derive(Clone, Debug)]
pub struct RetireReport {
    /// The run, when one was begun.
    pub run: Option<RunId>,
    /// One per account, in the order given.
    pub outcomes: Vec<Outcome>,
    pub auth: Auth,
    pub auth_problem: Option<AuthProblem>,
    /// With the setting to switch off: the accounts whose access hash is not converted
    /// (or cannot be read to tell), whether that refused the switch or it was forced; root
    /// first, then by name.
    pub unconverted: Vec<String>,
    /// Those of `unconverted` whose access hash cannot be read to tell.
    pub unreadable: Vec<String>,
}

impl RetireReport {
    pub fn any_failed(&self) -> bool {
        self.outcomes.iter().any(|o| o.problem.is_some()) || self.auth_problem.is_some()
    }
}

/// An account's name and where it stands, or why that could not be told.
type Decided = Result<(UserName, Standing), String>;

/// Where `raw` stands now, read only; an account that is neither root nor a reseller is
/// refused as the converter refuses it.
fn read_standing(backend: &dyn Backend, raw: &str) -> Decided {
    let user = UserName::new(raw).map_err(|e| e.to_string())?;
    let chain = |e: BackendError| error_chain(&e);
    if backend.role(&user).map_err(chain)? == WhmRole::NotReseller {
        return Err(UserError::NotReseller(user).to_string());
    }
    let hash = backend.read_access_hash(&user).map_err(chain)?;
    let tokens = backend.tokens(&user).map_err(chain)?;
    Ok((user, decide::decide(hash.as_ref(), &tokens)))
}

/// The run, begun at its first change.
struct Run<'a> {
    retirement: &'a dyn Retirement,
    clock: &'a dyn Clock,
    seed: u64,
    /// The accounts as given, recorded after the header.
    users: Vec<String>,
    id: Option<RunId>,
}

impl Run<'_> {
    fn start(&mut self) -> Result<RunId, BackendError> {
        if let Some(id) = &self.id {
            return Ok(id.clone());
        }
        let now = self.clock.now();
        let id = RunId::new(&now, &mut StdRng::seed_from_u64(self.seed));
        self.retirement
            .begin(&id, now.timestamp().as_second(), "retire")?;
        let users = Record::Users {
            users: std::mem::take(&mut self.users),
        };
        self.retirement.append(&id, &users)?;
        self.id = Some(id.clone());
        Ok(id)
    }
}

/// Retires the access hashes of `request.users` through `backend`'s [`Retirement`]:
/// every account decided first (reads only: a dry run stops there), then the run begun
/// and each converted one retired on the thread pool, then the setting switched. All of it
/// under the server's run lock (not a dry run); `Err`: it could not be taken, and nothing
/// was done.
pub fn retire(
    backend: &dyn Backend,
    retirement: &dyn Retirement,
    request: &RetireRequest,
    clock: &dyn Clock,
) -> Result<RetireReport, BackendError> {
    let _lock = (!request.dry_run)
        .then(|| retirement.lock_runs())
        .transpose()?;
    Ok(retire_locked(backend, retirement, request, clock))
}

/// [`retire`], the run lock held.
fn retire_locked(
    backend: &dyn Backend,
    retirement: &dyn Retirement,
    request: &RetireRequest,
    clock: &dyn Clock,
) -> RetireReport {
    let mut seen = BTreeSet::new();
    let users: Vec<&String> = request.users.iter().filter(|u| seen.insert(*u)).collect();
    let decided = crate::parallel::map(&users, request.jobs, |raw| read_standing(backend, raw));
    // The setting is decided first: when its switch is refused, nothing is changed.
    if request.disable_auth
        && let Some((auth, unconverted)) = auth_refused(backend, request, &users)
    {
        let outcomes = users
            .iter()
            .zip(decided)
            .map(|(raw, decided)| match decided {
                Err(error) => Outcome::failed(raw, error),
                Ok((_, Standing::Converted)) => Outcome::failed(raw, NOT_ATTEMPTED_REFUSED.into()),
                Ok((_, standing)) => Outcome::new(raw, Status::from(standing)),
            })
            .collect();
        return RetireReport {
            run: None,
            outcomes,
            auth: auth.0,
            auth_problem: auth.1,
            unconverted: unconverted.all,
            unreadable: unconverted.unreadable,
        };
    }
    let run = Mutex::new(Run {
        retirement,
        clock,
        seed: request.seed,
        users: users.iter().map(|u| (*u).clone()).collect(),
        id: None,
    });
    let start = || {
        run.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .start()
            .map_err(|e| error_chain(&e))
    };
    let wanted = decided
        .iter()
        .any(|d| matches!(d, Ok((_, Standing::Converted))));
    let begun = (wanted && !request.dry_run).then(start);
    let items: Vec<(usize, (&&String, Decided))> = users.iter().zip(decided).enumerate().collect();
    let audit = RunAudit::default();
    let retire_one = |(index, (raw, decided)): &(usize, (&&String, Decided))| {
        let turn = LineTurn::new(&audit, *index, retirement, clock);
        match (decided, &begun) {
            (Err(error), _) => Outcome::failed(raw, error.clone()),
            (Ok((user, Standing::Converted)), Some(begun)) => match begun {
                Err(error) => Outcome::failed(raw, format!("cannot start the run: {error}")),
                Ok(id) => retire_account(backend, retirement, id, user, &turn),
            },
            (Ok((user, s @ (Standing::AlreadyRetired | Standing::NoAccessHash))), _)
                if !request.dry_run =>
            {
                finish_interrupted(retirement, user, *s, (&turn, &start))
            }
            (Ok((_, s)), _) => Outcome::new(raw, Status::from(*s)),
        }
    };
    let outcomes = crate::parallel::map(&items, request.jobs, retire_one);
    let mut run = run.into_inner().unwrap_or_else(PoisonError::into_inner);
    let ((auth, auth_problem), unconverted) = if request.disable_auth {
        disable_auth(backend, request, &outcomes, (&mut run, &audit))
    } else {
        ((Auth::Unchanged, None), Blockers::default())
    };
    RetireReport {
        run: run.id,
        outcomes,
        auth,
        auth_problem,
        unconverted: unconverted.all,
        unreadable: unconverted.unreadable,
    }
}

/// One account's (or change's) turn to write its audit line: lines are written in the
/// accounts' order whatever `jobs` is, each durable before the change it records, and once
/// one could not be written no later change of the run is made. A turn not taken passes
/// when dropped.
pub(super) struct LineTurn<'a> {
    audit: &'a RunAudit,
    index: usize,
    taken: Cell<bool>,
    retirement: &'a dyn Retirement,
    clock: &'a dyn Clock,
}

impl<'a> LineTurn<'a> {
    pub(super) fn new(
        audit: &'a RunAudit,
        index: usize,
        retirement: &'a dyn Retirement,
        clock: &'a dyn Clock,
    ) -> Self {
        Self {
            audit,
            index,
            taken: Cell::new(false),
            retirement,
            clock,
        }
    }

    /// `Err` (not attempted) once a line of the run could not be written.
    pub(super) fn check(&self) -> Result<(), String> {
        self.audit.check().map_err(|e| e.to_string())
    }

    /// Writes the line of `action` on `user` in run `id` durably, in this turn; `Err`: why
    /// it was not (and nothing more of the run is to be changed).
    pub(super) fn write(&self, (action, user, id): (&str, &str, &RunId)) -> Result<(), String> {
        assert!(!self.taken.replace(true), "one line per turn");
        self.audit.turns.in_turn(self.index, || {
            self.check()?;
            let line = accounting_line(&self.clock.now(), action, user, id);
            self.retirement.append_accounting(&line).map_err(|e| {
                self.audit.fail(&e);
                format!("its audit line could not be written: {}", error_chain(&e))
            })
        })
    }
}

/// A change left undone because its line could not be written (`what`: `not retired`),
/// or not attempted at all after an earlier line failed.
pub(super) fn not_done(what: &str, error: String) -> Problem {
    if error.starts_with("not attempted") {
        Problem::Failed(error)
    } else {
        Problem::Failed(format!("{what}: {error}"))
    }
}

impl Drop for LineTurn<'_> {
    fn drop(&mut self) {
        if !self.taken.get() {
            self.audit.turns.in_turn(self.index, || ());
        }
    }
}

/// Retires `user` in run `id`: read and decided again, its audit line written (durable,
/// in its turn), backed up and journaled (both durable), removed only if unchanged, its
/// removal journaled.
fn retire_account(
    backend: &dyn Backend,
    retirement: &dyn Retirement,
    id: &RunId,
    user: &UserName,
    turn: &LineTurn<'_>,
) -> Outcome {
    let raw = user.as_str();
    match retire_steps(backend, retirement, id, user, turn) {
        Err(problem) => Outcome::failed(raw, problem.to_string()),
        Ok(status) => Outcome::new(raw, status),
    }
}

/// Appends the audit line of `action` on `user` in run `id` durably; `Err`: why it was not.
fn audit_line(
    retirement: &dyn Retirement,
    clock: &dyn Clock,
    (action, user, id): (&str, &str, &RunId),
) -> Result<(), String> {
    let line = accounting_line(&clock.now(), action, user, id);
    retirement
        .append_accounting(&line)
        .map_err(|e| format!("its audit line could not be written: {}", error_chain(&e)))
}

/// A backend's error, as one line.
pub(super) fn fail(e: BackendError) -> Problem {
    Problem::Failed(error_chain(&e))
}

/// The steps of [`retire_account`].
fn retire_steps(
    backend: &dyn Backend,
    retirement: &dyn Retirement,
    id: &RunId,
    user: &UserName,
    turn: &LineTurn<'_>,
) -> Result<Status, Problem> {
    turn.check().map_err(Problem::Failed)?;
    let held = retirement.read_home(user, None).map_err(fail)?;
    let hash = held
        .as_ref()
        .map(|h| AccessHash::from_bytes(h.content.to_vec()));
    let standing = decide::decide(hash.as_ref(), &backend.tokens(user).map_err(fail)?);
    drop(hash);
    let Some(held) = held.filter(|_| standing == Standing::Converted) else {
        return Ok(Status::from(standing));
    };
    // The audit line first (durable, in its turn): a log that cannot be written stops
    // the account before its secret is copied anywhere. Then backup and journal entry
    // (both durable), then the access hash may go, provided it is what was backed up.
    turn.write(("RETIREACCESSHASH", user.as_str(), id))
        .map_err(|e| not_done("not retired", e))?;
    let backup = retirement
        .put_backup(id, &format!("{user}.accesshash"), &held.content)
        .map_err(fail)?;
    let retired = RetiredFile {
        user: user.to_string(),
        path: held.location.clone(),
        sha512: content_sha512(&held.content),
        size: held.content.len() as u64,
        mode: held.mode,
        uid: held.uid,
        gid: held.gid,
        mtime: held.mtime,
        mtime_nsec: held.mtime_nsec,
        backup,
        set_aside: retirement.set_aside_name(id),
        unconfirmed: false,
    };
    drop(held);
    retirement
        .append(id, &Record::Change(Change::Accesshash(retired.clone())))
        .map_err(fail)?;
    match retirement.remove_if_unchanged(id, &retired).map_err(fail)? {
        Removal::Removed => {
            let removed = Record::Removed {
                removed: user.to_string(),
            };
            retirement.append(id, &removed).map_err(fail)?;
            Ok(Status::Retired)
        }
        Removal::Gone => Ok(Status::AlreadyRetired),
        Removal::Changed { location } => Err(Problem::Failed(changed_while_retired(&location))),
    }
}

/// Finishes the retirement of `user` that a killed run left half done; the account's
/// status stays `standing`'s. No audit line: the killed run wrote its own, durably, before
/// it set the file aside, and a removal has one line. Nothing is finished once a line of
/// this run could not be written.
fn finish_interrupted(
    retirement: &dyn Retirement,
    user: &UserName,
    standing: Standing,
    (turn, start): (&LineTurn<'_>, &dyn Fn() -> Result<RunId, String>),
) -> Outcome {
    let raw = user.as_str();
    if turn.check().is_err() {
        return Outcome::new(raw, Status::from(standing));
    }
    let finished = match retirement.finish_interrupted(user) {
        Ok(None) => return Outcome::new(raw, Status::from(standing)),
        Ok(Some(old)) => old,
        Err(e) => return Outcome::failed(raw, error_chain(&e)),
    };
    // Recorded in this run's journal, naming the run that began it.
    let record = Record::Finished {
        finished: raw.to_owned(),
        run: finished.clone(),
    };
    let recorded =
        start().and_then(|id| retirement.append(&id, &record).map_err(|e| error_chain(&e)));
    match recorded {
        Ok(()) => Outcome::new(raw, Status::from(standing)),
        Err(e) => Outcome::failed(raw, format!("retired, but not recorded: {e}")),
    }
}

/// What became of the setting and why, with the accounts whose access hash is not
/// converted.
type AuthDecided = ((Auth, Option<AuthProblem>), Blockers);

/// The accounts whose access hash would stop working (root first, then by name), and
/// those of them whose access hash cannot be read to tell.
#[derive(Default)]
struct Blockers {
    all: Vec<String>,
    unreadable: Vec<String>,
}

impl Blockers {
    fn problem(&self) -> AuthProblem {
        AuthProblem::NotConverted {
            blockers: self.all.clone(),
            unreadable: self.unreadable.clone(),
        }
    }
}

/// The error of an account left alone because the setting's switch was refused.
pub const NOT_ATTEMPTED_REFUSED: &str =
    "not attempted: access-hash authentication cannot be turned off, so nothing was retired";

/// The setting's switch, decided before any change: `Some` (refused, and why; with the
/// accounts whose access hash is not converted) when it would be refused, or when the
/// server's settings cannot be read to tell.
fn auth_refused(
    backend: &dyn Backend,
    request: &RetireRequest,
    users: &[&String],
) -> Option<AuthDecided> {
    let settings = match backend.server_settings() {
        Ok(settings) => settings,
        Err(e) => {
            let message = format!("cannot read the server's settings: {}", error_chain(&e));
            return Some((
                (Auth::Refused, Some(AuthProblem::Failed(message))),
                Blockers::default(),
            ));
        }
    };
    if !settings.allow_deprecated_accesshash {
        return None;
    }
    let names: Vec<String> = users.iter().map(|u| (*u).clone()).collect();
    let blockers = blockers(backend, &names);
    if request.force || blockers.all.is_empty() {
        return None;
    }
    Some(((Auth::Refused, Some(blockers.problem())), blockers))
}

/// The setting switched off, unless an access hash would stop working (or `force`); with
/// the accounts whose access hash would.
fn disable_auth(
    backend: &dyn Backend,
    request: &RetireRequest,
    outcomes: &[Outcome],
    (run, audit): (&mut Run<'_>, &RunAudit),
) -> AuthDecided {
    let failed = |message: String| (Auth::Refused, Some(AuthProblem::Failed(message)));
    let settings = match backend.server_settings() {
        Ok(settings) => settings,
        Err(e) => {
            let message = format!("cannot read the server's settings: {}", error_chain(&e));
            return (failed(message), Blockers::default());
        }
    };
    if !settings.allow_deprecated_accesshash {
        return ((Auth::Unchanged, None), Blockers::default());
    }
    let names: Vec<String> = outcomes.iter().map(|o| o.name.clone()).collect();
    let blockers = blockers(backend, &names);
    if !request.force && !blockers.all.is_empty() {
        return ((Auth::Refused, Some(blockers.problem())), blockers);
    }
    if request.dry_run {
        return ((Auth::Disabled, None), blockers);
    }
    if let Err(e) = audit.check() {
        let message = format!("cannot disable access-hash authentication: {e}");
        return (failed(message), blockers);
    }
    let outcome = match switch_off(run) {
        Ok(Some(_)) => (Auth::Disabled, None),
        Ok(None) => (Auth::Unchanged, None),
        Err(e) => failed(format!("cannot disable access-hash authentication: {e}")),
    };
    (outcome, blockers)
}

/// Turns the setting off in the run: its old value journaled first, then the write, then
/// the audit line. `None`: it was off already.
fn switch_off(run: &mut Run<'_>) -> Result<Option<SettingChange>, String> {
    let chain = |e: BackendError| error_chain(&e);
    let r = run.retirement;
    let setting = r.setting().map_err(chain)?;
    if !allows_access_hash(setting.value.as_deref()) {
        return Ok(None);
    }
    let id = run.start().map_err(chain)?;
    let change = SettingChange {
        name: ALLOW_DEPRECATED_ACCESSHASH.to_owned(),
        old: setting.value.clone(),
        new: Some("0".to_owned()),
        lines: setting.lines.clone(),
    };
    r.append(&id, &Record::Change(Change::Setting(change.clone())))
        .map_err(chain)?;
    audit_line(r, run.clock, ("DISABLEACCESSHASHAUTH", "root", &id))?;
    if !r
        .set_setting(change.old.as_deref(), change.new.as_deref())
        .map_err(chain)?
    {
        return Err(setting_changed_meanwhile(&setting.location, &change.name));
    }
    Ok(Some(change))
}

/// The accounts (root, every reseller, and those named) whose access hash would stop
/// working: not converted, or not readable to tell; root first, then by name (as `audit`
/// lists them).
fn blockers(backend: &dyn Backend, named: &[String]) -> Blockers {
    let mut accounts: BTreeSet<String> = backend
        .resellers()
        .unwrap_or_default()
        .into_iter()
        .collect();
    accounts.extend(named.iter().cloned());
    accounts.remove("root");
    let mut found = Blockers::default();
    for raw in std::iter::once("root".to_owned()).chain(accounts) {
        match read_standing(backend, &raw) {
            Ok((_, Standing::NotConverted)) => found.all.push(raw),
            Ok(_) => {}
            // An account whose access hash cannot be read to tell; not one that does not
            // exist, nor one that WHM's API does not serve (not a reseller).
            Err(_)
                if UserName::new(&raw).ok().is_some_and(|user| {
                    backend.has_account(&user).unwrap_or(true)
                        && backend
                            .role(&user)
                            .map_or(true, |r| r != WhmRole::NotReseller)
                }) =>
            {
                found.unreadable.push(raw.clone());
                found.all.push(raw);
            }
            Err(_) => {}
        }
    }
    found
}

//! The conversion pipeline: [`plan`] reads and checks every user, [`apply`] writes;
//! [`run_each`] does both for a real run, the planning of some users overlapping the
//! writes of others where the backend writes in batches or chunks.
//!
//! Both return one result per user, in the order the users were given; a failure for one
//! user never stops the others. The pipeline owns the worker threads (`jobs` of them), and
//! a panic while working on one user fails that user alone. A dry run is a plan turned
//! into a report with [`Plan::preview`]: it makes every read and check a real run makes
//! and writes nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rand::{Rng, RngExt};

use crate::acl::Privileges;
use crate::audit::{AuditTurn, RunAudit};
use crate::backend::{Backend, BackendError, BatchImport, ChunkImport, ImportItem, Reads, WhmRole};
use crate::clock::Clock;
use crate::import::{Decision, ImportRequest};
use crate::parallel;
use crate::restrictions::Restrictions;
use crate::user::{InvalidUserName, UserName};

mod run;

pub use run::run_each;

/// What the caller asked for, beyond the list of users.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Replace an entry that already holds the key, as cPanel's script does.
    pub replace: bool,
    /// Restrictions for newly written entries.
    pub restrictions: Restrictions,
    /// Read the existing tokens during planning, so that [`Plan::preview`] can tell what a
    /// real run would do. A real run decides under the backend's lock instead.
    pub dry_run: bool,
    /// Set (by a signal handler, say) to stop the run: no user is started after it is set,
    /// the users being written finish, and the others are [`Status::Interrupted`].
    pub stop: Option<Arc<AtomicBool>>,
}

impl RunOptions {
    fn stopped(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|stop| stop.load(Ordering::SeqCst))
    }
}

/// A sensible number of threads for writes that mostly wait on the disk: several per core,
/// so that different users' fsyncs overlap, and each shared fsync of the token folder and
/// of the audit log (`backend-files`' group commits) serves many users.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(8, |n| (n.get() * 8).clamp(8, 32))
}

/// A user's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    Converted,
    Replaced,
    AlreadyConverted,
    NoAccesshash,
    Failed,
    /// Not attempted: the run was stopped before this user was started.
    Interrupted,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Self::Converted,
        Self::Replaced,
        Self::AlreadyConverted,
        Self::NoAccesshash,
        Self::Failed,
        Self::Interrupted,
    ];

    /// The name used in `--json` output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Converted => "converted",
            Self::Replaced => "replaced",
            Self::AlreadyConverted => "already_converted",
            Self::NoAccesshash => "no_accesshash",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
        }
    }
}

/// Why one user could not be converted. The messages are those of cPanel's script where it
/// has one.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error(transparent)]
    InvalidName(#[from] InvalidUserName),
    #[error("User {0} is not a reseller.")]
    NotReseller(UserName),
    #[error("There was a problem loading the accesshash.")]
    EmptyAccessHash,
    #[error("cannot grant ACL “{acl}”: {user} does not hold it")]
    AclNotHeld { user: UserName, acl: String },
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("not attempted: interrupted")]
    Interrupted,
}

/// One user's line in the report.
#[derive(Debug)]
pub struct UserResult {
    /// The user as given (it may not be a valid name).
    pub user: String,
    pub status: Status,
    pub token_name: Option<String>,
    /// The first 12 hex characters of the key, once the access hash was read.
    pub token_hash_prefix: Option<String>,
    /// When restrictions (ACLs, expiry, allow-list) were asked for: whether the user's
    /// token has them (`false`: the token already existed and was kept as it was).
    pub restrictions_applied: Option<bool>,
    pub error: Option<UserError>,
}

impl UserResult {
    fn new(user: &str, status: Status) -> Self {
        Self {
            user: user.to_owned(),
            status,
            token_name: None,
            token_hash_prefix: None,
            restrictions_applied: None,
            error: None,
        }
    }

    fn interrupted(user: &str) -> Self {
        Self {
            error: Some(UserError::Interrupted),
            ..Self::new(user, Status::Interrupted)
        }
    }

    fn failed(user: &str, prefix: Option<String>, error: impl Into<UserError>) -> Self {
        Self {
            token_hash_prefix: prefix,
            error: Some(error.into()),
            ..Self::new(user, Status::Failed)
        }
    }
}

/// The per-user results of a run, in processing order.
#[derive(Debug, Default)]
pub struct Report {
    pub results: Vec<UserResult>,
}

impl Report {
    pub fn count(&self, status: Status) -> usize {
        self.results.iter().filter(|r| r.status == status).count()
    }

    pub fn any_failed(&self) -> bool {
        self.count(Status::Failed) > 0
    }

    /// Whether the run was stopped before every user was attempted.
    pub fn interrupted(&self) -> bool {
        self.count(Status::Interrupted) > 0
    }
}

/// A user ready to be written, or already settled during planning.
#[derive(Debug)]
enum Planned {
    Settled(UserResult),
    Import {
        user: UserName,
        request: ImportRequest,
        /// Only in dry runs; boxed, as a real run plans many of these without one.
        preview: Option<Box<Decision>>,
    },
}

/// What a run will do, user by user.
#[derive(Debug)]
pub struct Plan {
    items: Vec<Planned>,
    stop: Option<Arc<AtomicBool>>,
}

/// Reads and checks every user in `users` (each at most once, first occurrence kept), on
/// up to `jobs` threads; the plan keeps the users' order.
pub fn plan(
    backend: &dyn Backend,
    users: &[String],
    options: &RunOptions,
    clock: &dyn Clock,
    rng: &mut impl Rng,
    jobs: usize,
) -> Plan {
    let unique = unique_users(users, rng);
    let session = backend.read_session();
    let reads: &dyn Reads = session.as_deref().unwrap_or(backend);
    let items = parallel::map(&unique, jobs, |&(raw, suffix_seed)| {
        if options.stopped() {
            return Planned::Settled(UserResult::interrupted(raw));
        }
        plan_user(reads, raw, options, clock, suffix_seed)
    });
    Plan {
        items,
        stop: options.stop.clone(),
    }
}

/// Each user once (its first occurrence), in the order given, with the seed of its
/// fallback token names.
fn unique_users<'u>(users: &'u [String], rng: &mut impl Rng) -> Vec<(&'u str, u64)> {
    let mut seen = std::collections::HashSet::new();
    users
        .iter()
        .filter(|u| seen.insert(u.as_str()))
        .map(|u| (u.as_str(), rng.random()))
        .collect()
}

fn plan_user(
    backend: &dyn Reads,
    raw: &str,
    options: &RunOptions,
    clock: &dyn Clock,
    suffix_seed: u64,
) -> Planned {
    let settle = Planned::Settled;
    let user = match UserName::new(raw) {
        Ok(user) => user,
        Err(e) => return settle(UserResult::failed(raw, None, e)),
    };
    let (role, access_hash) = match backend.role_and_access_hash(&user) {
        Ok(read) => read,
        Err(e) => return settle(UserResult::failed(raw, None, e)),
    };
    let privileges = match role {
        WhmRole::Root => Privileges::All,
        WhmRole::Reseller(privileges) => privileges,
        WhmRole::NotReseller => {
            return settle(UserResult::failed(raw, None, UserError::NotReseller(user)));
        }
    };
    let hash = match access_hash.map(|access_hash| access_hash.token_hash()) {
        None => return settle(UserResult::new(raw, Status::NoAccesshash)),
        Some(Some(hash)) => hash,
        Some(None) => return settle(UserResult::failed(raw, None, UserError::EmptyAccessHash)),
    };
    let prefix = Some(hash.prefix().to_owned());
    tracing::debug!(user = %user, key = %hash, "access hash read");
    let ungranted = options
        .restrictions
        .acls
        .iter()
        .flatten()
        .find(|acl| !privileges.holds(acl));
    if let Some(acl) = ungranted {
        let error = UserError::AclNotHeld {
            user,
            acl: acl.clone(),
        };
        return settle(UserResult::failed(raw, prefix, error));
    }
    let now = clock.now().timestamp().as_second();
    let request = ImportRequest::new(
        hash,
        now,
        options.restrictions.clone(),
        options.replace,
        suffix_seed,
    );
    let preview = if options.dry_run {
        let decided = backend
            .tokens(&user)
            .map_err(UserError::from)
            .and_then(|tokens| {
                request
                    .decide(&tokens)
                    .map_err(|e| BackendError::from(e).into())
            });
        match decided {
            Ok(decision) => Some(Box::new(decision)),
            Err(e) => return settle(UserResult::failed(raw, prefix, e)),
        }
    } else {
        None
    };
    Planned::Import {
        user,
        request,
        preview,
    }
}

impl Plan {
    /// What a real run would report, without writing anything. Only meaningful for a plan
    /// made with [`RunOptions::dry_run`].
    pub fn preview(self) -> Report {
        let results = self
            .items
            .into_iter()
            .map(|item| match item {
                Planned::Settled(result) => result,
                Planned::Import {
                    user,
                    request,
                    preview,
                } => {
                    let decision = preview.expect("a dry-run plan previews every import");
                    decided(user.as_str(), &request, &decision)
                }
            })
            .collect();
        Report { results }
    }
}

/// Results that come in any order, handed over in the users' order: each as soon as it and
/// every earlier one are known.
struct InOrder {
    slots: Vec<Option<UserResult>>,
    /// How many have been handed over.
    streamed: usize,
}

impl InOrder {
    fn new(users: usize) -> Self {
        Self {
            slots: (0..users).map(|_| None).collect(),
            streamed: 0,
        }
    }

    /// The result of the user at `index`, and every one now ready after it, to `progress`.
    fn put(&mut self, index: usize, result: UserResult, progress: &mut dyn FnMut(Progress<'_>)) {
        self.slots[index] = Some(result);
        while let Some(Some(result)) = self.slots.get(self.streamed) {
            progress(Progress::Ready(result));
            self.streamed += 1;
        }
    }

    fn into_report(self) -> Report {
        let results = self
            .slots
            .into_iter()
            .map(|slot| slot.expect("every user has a result"))
            .collect();
        Report { results }
    }
}

/// Writes every planned import and audits each entry written, on up to `jobs` threads
/// where the backend allows it; results keep the users' order.
pub fn apply(backend: &dyn Backend, plan: Plan, clock: &dyn Clock, jobs: usize) -> Report {
    apply_each(backend, plan, clock, jobs, &mut |_| {})
}

/// What [`apply_each`] and [`run_each`] tell their caller while they run.
#[derive(Debug)]
pub enum Progress<'a> {
    /// One more user's import finished (in any order): `done` of `total`. In [`run_each`]
    /// through a [`BatchImport`] or a [`ChunkImport`], every user counts, those settled
    /// while planning included, and `total` is the number of users.
    Finished { done: usize, total: usize },
    /// The next user's result, in the users' order, as soon as it and every earlier one
    /// are known.
    Ready(&'a UserResult),
}

/// [`apply`], telling `progress` about each import as it finishes and handing over each
/// result, in the users' order, as soon as it is known: output can stream while the run
/// goes on.
pub fn apply_each(
    backend: &dyn Backend,
    plan: Plan,
    clock: &dyn Clock,
    jobs: usize,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Report {
    let mut results = InOrder::new(plan.items.len());
    let mut items = Vec::new();
    // For each import, the index of its user.
    let mut slot_of = Vec::new();
    for (index, planned) in plan.items.into_iter().enumerate() {
        match planned {
            Planned::Settled(result) => results.put(index, result, progress),
            Planned::Import { user, request, .. } => {
                items.push(ImportItem { user, request });
                slot_of.push(index);
            }
        }
    }
    let total = items.len();
    let mut done = 0;
    let stop = plan.stop.as_deref();
    import_each(backend, &items, clock, jobs, stop, &mut |index, outcome| {
        done += 1;
        progress(Progress::Finished { done, total });
        let item = &items[index];
        let result = match outcome {
            Some(outcome) => imported(item, outcome),
            None => UserResult::interrupted(item.user.as_str()),
        };
        results.put(slot_of[index], result, progress);
    });
    results.into_report()
}

/// Every item's import and audit record, one outcome per item in the items' order: in the
/// backend's batches where it offers them, otherwise one user at a time on up to `jobs`
/// threads. A panic fails only the user (or the batch) it happened in.
pub fn import_all(
    backend: &dyn Backend,
    items: &[ImportItem],
    clock: &dyn Clock,
    jobs: usize,
) -> Vec<Result<Decision, BackendError>> {
    let mut outcomes: Vec<Option<_>> = items.iter().map(|_| None).collect();
    import_each(backend, items, clock, jobs, None, &mut |index, outcome| {
        outcomes[index] = outcome;
    });
    outcomes
        .into_iter()
        .map(|outcome| outcome.expect("one outcome per item, none stopped"))
        .collect()
}

/// The most users handed to a backend's [`BatchImport`] at once: a stop is honoured
/// between such slices (SQLite commits each in one transaction, a fraction of a second).
pub const BATCH_USERS: usize = 5_000;

/// [`import_all`], handing each item's outcome to `ready` (on the calling thread, in
/// completion order) as soon as it is known; once `stop` is set no item is started, and
/// an item not started is handed over as `None`.
fn import_each(
    backend: &dyn Backend,
    items: &[ImportItem],
    clock: &dyn Clock,
    jobs: usize,
    stop: Option<&AtomicBool>,
    ready: &mut dyn FnMut(usize, Option<Result<Decision, BackendError>>),
) {
    let stopped = || stop.is_some_and(|stop| stop.load(Ordering::SeqCst));
    match backend.batch() {
        Some(batch) => {
            for (slice, from) in items.chunks(BATCH_USERS).zip((0..).step_by(BATCH_USERS)) {
                if stopped() {
                    (from..from + slice.len()).for_each(|index| ready(index, None));
                    continue;
                }
                let outcomes = import_batch(batch, slice, clock);
                for (offset, outcome) in outcomes.into_iter().enumerate() {
                    ready(from + offset, Some(outcome));
                }
            }
        }
        None => match backend.chunks() {
            Some(chunks) => import_chunks(chunks, items, clock, jobs, &stopped, ready),
            None => {
                let run = RunAudit::default();
                parallel::for_each_ready(
                    items,
                    jobs,
                    |index, item| {
                        if stopped() {
                            // Not started; its turn still passes, for the users after it.
                            run.turns.in_turn(index, || ());
                            return None;
                        }
                        Some(import_one(backend, item, clock, &run, index))
                    },
                    ready,
                );
            }
        },
    }
}

/// The most users one worker thread writes at once through a backend's [`ChunkImport`].
pub const CHUNK_USERS: usize = 16;

/// The chunks of `users` consecutive users, each of [`chunk_users`].
fn chunk_ranges(users: usize, jobs: usize) -> Vec<std::ops::Range<usize>> {
    let size = chunk_users(users, jobs);
    (0..users)
        .step_by(size)
        .map(|from| from..(from + size).min(users))
        .collect()
}

/// How many consecutive users each chunk holds: enough for every thread to have one (a
/// few users on many threads stay one or two per chunk), at most [`CHUNK_USERS`]; one with
/// a single job, which is serial.
fn chunk_users(users: usize, jobs: usize) -> usize {
    if jobs <= 1 {
        return 1;
    }
    users.div_ceil(jobs).clamp(1, CHUNK_USERS)
}

/// [`import_each`] through a backend's [`ChunkImport`]: consecutive users in chunks, one
/// chunk at a time per worker thread, each handed to the backend until every user of it
/// has an outcome (the backend may settle a first part of it at a time), each outcome
/// handed over as soon as it is known. Once `stopped`, no user is started; a panic fails
/// the users of the chunk it happened in that had no outcome yet.
fn import_chunks(
    chunks: &dyn ChunkImport,
    items: &[ImportItem],
    clock: &dyn Clock,
    jobs: usize,
    stopped: &(dyn Fn() -> bool + Sync),
    ready: &mut dyn FnMut(usize, Option<Result<Decision, BackendError>>),
) {
    let ranges = chunk_ranges(items.len(), jobs);
    let run = RunAudit::default();
    parallel::for_each_emitting(
        &ranges,
        jobs,
        |_, range, emit| {
            let turns: Vec<AuditTurn<'_>> = range
                .clone()
                .map(|index| AuditTurn::in_run(clock, &run, index))
                .collect();
            let chunk = &items[range.clone()];
            import_chunk_calls(
                chunks,
                chunk,
                &turns,
                &run,
                stopped,
                &mut |offset, outcome| {
                    emit((range.start + offset, outcome));
                },
            );
        },
        |(index, outcome)| ready(index, outcome),
    );
}

/// Hands `items` (consecutive users, `turns` theirs) to the backend until each has an
/// outcome, handing each to `emit` with its offset as soon as it is known: `None` for an
/// item not started because the run was `stopped`. A panic fails the items without an
/// outcome yet; every turn not taken then passes on, in order.
fn import_chunk_calls(
    chunks: &dyn ChunkImport,
    items: &[ImportItem],
    turns: &[AuditTurn<'_>],
    run: &RunAudit,
    stopped: &(dyn Fn() -> bool + Sync),
    emit: &mut dyn FnMut(usize, Option<Result<Decision, BackendError>>),
) {
    let mut from = 0;
    while from < items.len() {
        if stopped() {
            (from..items.len()).for_each(|offset| emit(offset, None));
            break;
        }
        let (rest, rest_turns) = (&items[from..], &turns[from..]);
        let outcomes =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match run.check() {
                Ok(()) => chunks.import_chunk(rest, rest_turns, stopped),
                Err(_) => rest
                    .iter()
                    .map(|_| Err(run.check().expect_err("a failed run stays failed")))
                    .collect(),
            }))
            .ok()
            .filter(|outcomes| (1..=rest.len()).contains(&outcomes.len()))
            .unwrap_or_else(|| rest.iter().map(|item| Err(internal_error(item))).collect());
        let settled = from..from + outcomes.len();
        for outcome in outcomes {
            emit(from, Some(outcome));
            from += 1;
        }
        // Those that failed before their records: their turns pass on before the next call.
        turns[settled].iter().for_each(AuditTurn::pass);
    }
    // Not started: the turns pass on, in order.
    turns.iter().for_each(AuditTurn::pass);
}

/// One outcome per item, whatever the backend does: a panic (a bug) fails the whole slice,
/// and an item it returned no outcome for is an internal error.
fn import_batch(
    batch: &dyn BatchImport,
    items: &[ImportItem],
    clock: &dyn Clock,
) -> Vec<Result<Decision, BackendError>> {
    let outcomes = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        batch.import_batch(items, clock)
    }))
    .unwrap_or_default();
    let mut outcomes = outcomes.into_iter();
    items
        .iter()
        .map(|item| outcomes.next().unwrap_or_else(|| Err(internal_error(item))))
        .collect()
}

/// Imports one item on a worker thread; its audit record is written in its turn, so that
/// audit lines follow the order users were given, whatever `--jobs` is. Once a record of
/// the run could not be written, the item is not attempted.
fn import_one(
    backend: &dyn Backend,
    item: &ImportItem,
    clock: &dyn Clock,
    run: &RunAudit,
    index: usize,
) -> Result<Decision, BackendError> {
    let turn = AuditTurn::in_run(clock, run, index);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run.check()?;
        backend.import(&item.user, &item.request, &turn)
    }))
    .unwrap_or_else(|_| Err(internal_error(item)));
    if !turn.taken() {
        // Failed before its record: the turn passes on to the users after it.
        run.turns.in_turn(index, || ());
    }
    outcome
}

/// A user's failure when a panic (a bug) interrupted its planning.
fn planning_panicked(raw: &str) -> UserResult {
    let error = BackendError::Other {
        backend: "pipeline",
        source: format!("internal error while reading {raw}").into(),
    };
    UserResult::failed(raw, None, error)
}

/// A user's failure when a panic (a bug) interrupted its import.
fn internal_error(item: &ImportItem) -> BackendError {
    BackendError::Other {
        backend: "pipeline",
        source: format!("internal error while importing for {}", item.user).into(),
    }
}

fn imported(item: &ImportItem, outcome: Result<Decision, BackendError>) -> UserResult {
    let user = item.user.as_str();
    match outcome {
        Err(e) => UserResult::failed(user, Some(item.request.hash.prefix().to_owned()), e),
        Ok(decision) => {
            if let Decision::Write { entry, .. } = &decision {
                tracing::info!(user = %item.user, key = %item.request.hash, name = %entry.name, "token stored");
            }
            decided(user, &item.request, &decision)
        }
    }
}

fn decided(user: &str, request: &ImportRequest, decision: &Decision) -> UserResult {
    let status = match decision {
        Decision::AlreadyPresent { .. } => Status::AlreadyConverted,
        Decision::Write { replaces: true, .. } => Status::Replaced,
        Decision::Write {
            replaces: false, ..
        } => Status::Converted,
    };
    let asked = request.restrictions != Restrictions::default();
    UserResult {
        token_name: Some(decision.token_name().to_owned()),
        token_hash_prefix: Some(request.hash.prefix().to_owned()),
        restrictions_applied: asked.then_some(status != Status::AlreadyConverted),
        ..UserResult::new(user, status)
    }
}

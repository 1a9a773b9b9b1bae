//! A real run, planning and writing together: slice by slice beside a backend's batches,
//! chunk by chunk on the worker threads of a backend that writes chunks, otherwise the
//! whole plan and then its writes.

use rand::Rng;

use super::{
    BATCH_USERS, InOrder, Planned, Progress, Report, RunOptions, UserResult, apply_each,
    chunk_ranges, import_batch, import_chunk_calls, imported, plan, plan_user, planning_panicked,
    unique_users,
};
use crate::audit::{AuditTurn, RunAudit};
use crate::backend::{Backend, BatchImport, ChunkImport, ImportItem, Reads};
use crate::clock::Clock;
use crate::parallel;

/// A run: plans and writes every user in `users` (each at most once), telling `progress`
/// as [`apply_each`] does. Through a backend's [`BatchImport`], each slice of users is
/// planned while the slice before it is written; through its [`ChunkImport`], each worker
/// thread plans a chunk of users just before it writes them, so that the reads of one
/// chunk overlap the flushes of another (either way `Finished` counts every user, planned
/// failures included); otherwise [`plan`], then [`apply_each`]. A dry run
/// ([`RunOptions::dry_run`]) writes nothing: its report is the plan's
/// [`preview`](super::Plan::preview), each result handed over in order.
pub fn run_each(
    backend: &dyn Backend,
    users: &[String],
    options: &RunOptions,
    clock: &dyn Clock,
    rng: &mut impl Rng,
    jobs: usize,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Report {
    if options.dry_run {
        let report = plan(backend, users, options, clock, rng, jobs).preview();
        for result in &report.results {
            progress(Progress::Ready(result));
        }
        return report;
    }
    match (backend.batch(), backend.chunks()) {
        (Some(batch), _) => {
            plan_and_import_batches(backend, batch, users, options, clock, rng, progress)
        }
        (None, Some(chunks)) => {
            plan_and_import_chunks(backend, chunks, users, options, clock, rng, jobs, progress)
        }
        (None, None) => {
            let plan = plan(backend, users, options, clock, rng, jobs);
            apply_each(backend, plan, clock, jobs, progress)
        }
    }
}

/// Plans one user as [`plan`] does, unless the run was stopped; a panic (a bug) fails
/// that user alone.
fn plan_guarded(
    reads: &dyn Reads,
    (raw, suffix_seed): (&str, u64),
    options: &RunOptions,
    clock: &dyn Clock,
) -> Planned {
    if options.stopped() {
        return Planned::Settled(UserResult::interrupted(raw));
    }
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        plan_user(reads, raw, options, clock, suffix_seed)
    }))
    .unwrap_or_else(|_| Planned::Settled(planning_panicked(raw)))
}

/// [`run_each`] through a [`BatchImport`]: slices of users (see [`batch_slices`]), each
/// planned on a thread of its own, through a read session of its own (so that no read
/// transaction outlives its slice), while the slice before it is written on the calling
/// thread. One planning thread keeps ahead: planning a slice takes a fraction of the time
/// its writes do. Should that thread not be had, each slice is planned then written in
/// turn.
#[allow(clippy::too_many_arguments)]
fn plan_and_import_batches(
    backend: &dyn Backend,
    batch: &dyn BatchImport,
    users: &[String],
    options: &RunOptions,
    clock: &dyn Clock,
    rng: &mut impl Rng,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Report {
    let unique = unique_users(users, rng);
    let total = unique.len();
    let plan_slice = |slice: &[(&str, u64)]| -> Vec<Planned> {
        // A panic (a bug) outside a user's own planning fails the slice's users alone.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let session = backend.read_session();
            let reads: &dyn Reads = session.as_deref().unwrap_or(backend);
            slice
                .iter()
                .map(|&user| plan_guarded(reads, user, options, clock))
                .collect()
        }))
        .unwrap_or_else(|_| {
            let failed = |(raw, _): &(&str, u64)| Planned::Settled(planning_panicked(raw));
            slice.iter().map(failed).collect()
        })
    };
    let mut results = Vec::with_capacity(total);
    let mut write_slice = |planned: Vec<Planned>| {
        let from = results.len();
        let mut items = Vec::new();
        let mut slot_of = Vec::new();
        for planned in planned {
            match planned {
                Planned::Settled(result) => results.push(result),
                Planned::Import { user, request, .. } => {
                    slot_of.push(results.len());
                    results.push(UserResult::interrupted(user.as_str()));
                    items.push(ImportItem { user, request });
                }
            }
        }
        if !items.is_empty() && !options.stopped() {
            let outcomes = import_batch(batch, &items, clock);
            for ((item, outcome), slot) in items.iter().zip(outcomes).zip(slot_of) {
                results[slot] = imported(item, outcome);
            }
        }
        for (done, result) in (from + 1..).zip(&results[from..]) {
            progress(Progress::Finished { done, total });
            progress(Progress::Ready(result));
        }
    };
    let slices = batch_slices(&unique);
    std::thread::scope(|scope| {
        let (send, receive) = std::sync::mpsc::sync_channel(1);
        let plan_slice = &plan_slice;
        let ahead = slices.clone();
        let planner = std::thread::Builder::new().spawn_scoped(scope, move || {
            for slice in ahead {
                if send.send(plan_slice(slice)).is_err() {
                    return;
                }
            }
        });
        match planner {
            Ok(_) => receive.into_iter().for_each(&mut write_slice),
            Err(_) => slices
                .into_iter()
                .for_each(|slice| write_slice(plan_slice(slice))),
        }
    });
    Report { results }
}

/// The slices a batch run plans and writes: [`BATCH_USERS`] users each, after smaller
/// ones (an eighth, a quarter, half of that), so that the first writes start once a few
/// hundred users are planned instead of thousands.
fn batch_slices<T>(all: &[T]) -> Vec<&[T]> {
    let mut slices = Vec::new();
    let (mut rest, mut size) = (all, BATCH_USERS / 8);
    while !rest.is_empty() {
        let (slice, after) = rest.split_at(size.min(rest.len()));
        slices.push(slice);
        (rest, size) = (after, (size * 2).min(BATCH_USERS));
    }
    slices
}

/// [`run_each`] through a [`ChunkImport`]: chunks of consecutive users, each planned then
/// imported by one worker thread; the audit turns are the users' (a user settled while
/// planning gives its turn up at once).
#[allow(clippy::too_many_arguments)]
fn plan_and_import_chunks(
    backend: &dyn Backend,
    chunks: &dyn ChunkImport,
    users: &[String],
    options: &RunOptions,
    clock: &dyn Clock,
    rng: &mut impl Rng,
    jobs: usize,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Report {
    let unique = unique_users(users, rng);
    let session = backend.read_session();
    let reads: &dyn Reads = session.as_deref().unwrap_or(backend);
    let ranges = chunk_ranges(unique.len(), jobs);
    let run = RunAudit::default();
    let stopped = || options.stopped();
    let (total, mut done) = (unique.len(), 0);
    let mut results = InOrder::new(total);
    parallel::for_each_emitting(
        &ranges,
        jobs,
        |_, range, emit| {
            let (mut items, mut at) = (Vec::new(), Vec::new());
            for index in range.clone() {
                // A user settled here (a panic included) gives its turn up.
                match plan_guarded(reads, unique[index], options, clock) {
                    Planned::Settled(result) => {
                        run.turns.skip(index);
                        emit((index, result));
                    }
                    Planned::Import { user, request, .. } => {
                        items.push(ImportItem { user, request });
                        at.push(index);
                    }
                }
            }
            let turns: Vec<AuditTurn<'_>> = at
                .iter()
                .map(|&index| AuditTurn::in_run(clock, &run, index))
                .collect();
            import_chunk_calls(chunks, &items, &turns, &run, &stopped, &mut |k, outcome| {
                let item = &items[k];
                let result = match outcome {
                    Some(outcome) => imported(item, outcome),
                    None => UserResult::interrupted(item.user.as_str()),
                };
                emit((at[k], result));
            });
        },
        |(index, result)| {
            done += 1;
            progress(Progress::Finished { done, total });
            results.put(index, result, progress);
        },
    );
    results.into_report()
}

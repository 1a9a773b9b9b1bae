//! The audit record written for every token the converter stores (and every token the
//! fake WHM creates or revokes), and the turn in which an import writes it: before its
//! token becomes visible, in the order users were given.

use std::cell::Cell;
use std::collections::{BTreeSet, HashMap};
use std::fmt::{self, Write as _};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Mutex, PoisonError};
use std::thread::Thread;

use jiff::Zoned;

use crate::clock::Clock;
use crate::error::BackendError;
use crate::error_chain;
use crate::import::Decision;
use crate::user::UserName;

/// What happened to a token, as `accounting.log` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditAction {
    /// `CREATEAPITOKEN`: the converter's, and WHM's `api_token_create`.
    CreateApiToken,
    /// `REVOKEAPITOKEN`: WHM's `api_token_revoke`.
    RevokeApiToken,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateApiToken => "CREATEAPITOKEN",
            Self::RevokeApiToken => "REVOKEAPITOKEN",
        }
    }
}

/// One token event, as cPanel's `accounting.log` records it (reference 2.8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    pub time: Zoned,
    pub action: AuditAction,
    /// Who acted (cPanel's `REMOTE_USER`): root for the converter, which only root runs;
    /// the caller for the fake WHM.
    pub actor: UserName,
    pub user: UserName,
    /// The name actually stored (cPanel's script logs a different one; we do not).
    pub token_name: String,
}

impl AuditEvent {
    /// `<Perl scalar localtime>:<ACTION>:<actor>:<user>:not-applicable:<token name>`,
    /// without the line feed.
    pub fn accounting_line(&self) -> String {
        const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let time = &self.time;
        let fields = [
            self.action.as_str(),
            self.actor.as_str(),
            self.user.as_str(),
            "not-applicable",
            &self.token_name,
        ];
        let mut line =
            String::with_capacity(25 + fields.iter().map(|f| f.len() + 1).sum::<usize>());
        // What strftime's "%a %b %e %H:%M:%S %Y" gives, without parsing a format per line.
        line.push_str(DAYS[usize::from(time.weekday().to_monday_zero_offset().unsigned_abs())]);
        line.push(' ');
        line.push_str(MONTHS[usize::from(time.month().unsigned_abs() - 1)]);
        for (separator, n, pad) in [
            (' ', time.day(), ' '),
            (' ', time.hour(), '0'),
            (':', time.minute(), '0'),
            (':', time.second(), '0'),
        ] {
            line.push(separator);
            push_two_digits(&mut line, n, pad);
        }
        // Writing to a `String` cannot fail. Four digits, sign included, as `%Y` has them.
        let _ = write!(line, " {:04}", time.year());
        for field in fields {
            line.push(':');
            line.push_str(field);
        }
        line
    }
}

/// `n` (0 to 99) in two digits, the first `pad` when it would be a zero.
fn push_two_digits(line: &mut String, n: i8, pad: char) {
    let n = n.unsigned_abs();
    line.push(match n / 10 {
        0 => pad,
        tens => char::from(b'0' + tens),
    });
    line.push(char::from(b'0' + n % 10));
}

/// What [`Backend::import`](crate::Backend::import) is handed to write the audit record of
/// its decision: no token without a durable record naming it.
///
/// An import calls [`record`](Self::record) once, after deciding and before the decision is
/// visible (before the rename, the commit); when it fails, the import stores nothing and
/// returns its error. A record that `record` only appended and that the backend makes
/// durable afterwards (sharing one fsync among users) is reported with
/// [`durable`](Self::durable). Within a run, records are written in the users' order, and
/// once one could not be written, no later import of the run stores anything.
///
/// `record` waits until every earlier user of the run has written its record, so an
/// import must not hold, while calling it, a lock that another user's import needs. A
/// backend that serializes every write behind one lock takes that lock inside
/// [`hold`](Self::hold) instead.
pub struct AuditTurn<'a> {
    clock: &'a dyn Clock,
    run: Option<(&'a RunAudit, usize)>,
    taken: Cell<bool>,
    /// Inside [`hold`](Self::hold): the turn is already this import's.
    holding: Cell<bool>,
    /// Refuses every record (see [`refusing`](Self::refusing)).
    refusal: Option<(String, String)>,
    /// Who the record names as acting; root when `None`.
    actor: Option<UserName>,
}

impl fmt::Debug for AuditTurn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditTurn")
            .field("index", &self.run.map(|(_, index)| index))
            .field("taken", &self.taken.get())
            .finish_non_exhaustive()
    }
}

impl<'a> AuditTurn<'a> {
    /// The turn of an import made on its own, outside a run: records are timed by `clock`.
    pub fn alone(clock: &'a dyn Clock) -> Self {
        Self {
            clock,
            run: None,
            taken: Cell::new(false),
            holding: Cell::new(false),
            refusal: None,
            actor: None,
        }
    }

    /// The same turn, its record naming `actor` as the user who acted instead of root (the
    /// fake WHM's `api_token_create`, called by a reseller).
    pub fn acting_as(self, actor: UserName) -> Self {
        Self {
            actor: Some(actor),
            ..self
        }
    }

    /// A turn whose record is refused as after an earlier record of its run failed: what a
    /// conformance test hands an import to check that it then stores nothing.
    pub fn refusing(clock: &'a dyn Clock, log: &str, cause: &str) -> Self {
        Self {
            refusal: Some((log.to_owned(), cause.to_owned())),
            ..Self::alone(clock)
        }
    }

    pub(crate) fn in_run(clock: &'a dyn Clock, run: &'a RunAudit, index: usize) -> Self {
        Self {
            clock,
            run: Some((run, index)),
            taken: Cell::new(false),
            holding: Cell::new(false),
            refusal: None,
            actor: None,
        }
    }

    /// Whether this import's turn was taken ([`record`](Self::record) or
    /// [`hold`](Self::hold) was called).
    pub(crate) fn taken(&self) -> bool {
        self.taken.get()
    }

    /// Passes the turn on without a record: what an import that failed before its record
    /// does (the pipeline does it for [`Backend::import`](crate::Backend::import); a
    /// [`ChunkImport`](crate::backend::ChunkImport) does it for each item that failed
    /// before a later item records). Nothing once the turn was taken.
    pub fn pass(&self) {
        if self.taken.replace(true) {
            return;
        }
        if let Some((run, index)) = self.run {
            run.turns.in_turn(index, || ());
        }
    }

    /// Runs the whole of an import in its turn: for a backend whose imports all take one
    /// lock, which it takes inside `f`. [`record`](Self::record), called within `f`, then
    /// does not wait.
    pub fn hold<T>(&self, f: impl FnOnce() -> T) -> T {
        assert!(!self.taken.replace(true), "an import takes its turn once");
        let held = || {
            self.holding.set(true);
            let value = f();
            self.holding.set(false);
            value
        };
        match self.run {
            Some((run, index)) => run.turns.in_turn(index, held),
            None => held(),
        }
    }

    /// Writes, through `write`, the record that `decision` calls for (one for an entry
    /// written, none for a key already present), once every earlier user of the run has
    /// written theirs. After an earlier record of the run failed, an entry to write is
    /// refused with [`BackendError::AuditUnavailable`] and `write` is not called.
    pub fn record(
        &self,
        user: &UserName,
        decision: &Decision,
        write: &mut dyn FnMut(&AuditEvent) -> Result<(), BackendError>,
    ) -> Result<(), BackendError> {
        let holding = self.holding.get();
        assert!(
            holding || !self.taken.replace(true),
            "an import records its audit once"
        );
        let Decision::Write { entry, .. } = decision else {
            if let Some((run, index)) = self.run
                && !holding
            {
                run.turns.in_turn(index, || ());
            }
            return Ok(());
        };
        if let Some((location, cause)) = &self.refusal {
            return Err(BackendError::AuditUnavailable {
                location: location.clone(),
                cause: cause.clone(),
            });
        }
        let mut append = || {
            write(&AuditEvent {
                time: self.clock.now(),
                action: AuditAction::CreateApiToken,
                actor: self.actor.clone().unwrap_or_else(UserName::root),
                user: user.clone(),
                token_name: entry.name.clone(),
            })
        };
        let mut append_in_run = |run: &RunAudit| {
            run.check()?;
            append().inspect_err(|e| run.fail(e))
        };
        match self.run {
            None => append(),
            // Already in its turn, inside `hold`.
            Some((run, _)) if holding => append_in_run(run),
            Some((run, index)) => run.turns.in_turn(index, || append_in_run(run)),
        }
    }

    /// `Err` ([`BackendError::AuditUnavailable`]) once a record of this import's run could
    /// not be written: a backend that writes the records of several users in one commit
    /// checks it before each commit, so that nothing more is written after a failure.
    pub fn check_run(&self) -> Result<(), BackendError> {
        self.run.map_or(Ok(()), |(run, _)| run.check())
    }

    /// Passes on whether the record appended by [`record`](Self::record) was made durable;
    /// a failure stops the run's later imports as a failed `record` does.
    pub fn durable(&self, synced: Result<(), BackendError>) -> Result<(), BackendError> {
        if let (Err(e), Some((run, _))) = (&synced, self.run) {
            run.fail(e);
        }
        synced
    }
}

/// The audit side of one run: the users' turns, and the first failure to write a record.
#[derive(Debug, Default)]
pub(crate) struct RunAudit {
    pub(crate) turns: Turns,
    unavailable: Mutex<Option<(String, String)>>,
}

impl RunAudit {
    /// `Err` once a record of this run could not be written.
    pub(crate) fn check(&self) -> Result<(), BackendError> {
        let unavailable = self
            .unavailable
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match unavailable.as_ref() {
            Some((location, cause)) => Err(BackendError::AuditUnavailable {
                location: location.clone(),
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    pub(crate) fn fail(&self, error: &BackendError) {
        let mut unavailable = self
            .unavailable
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if unavailable.is_none() {
            *unavailable = Some(where_and_why(error));
        }
    }
}

/// The audit log an error is about and what went wrong with it, without repeating the log.
fn where_and_why(error: &BackendError) -> (String, String) {
    match error {
        BackendError::Locked { location, .. } => (
            location
                .strip_suffix(".lock")
                .unwrap_or(location)
                .to_owned(),
            "it is locked by another process".to_owned(),
        ),
        BackendError::Io { location, source } => (location.clone(), error_chain(source)),
        BackendError::UnsafeToWrite { location, detail }
        | BackendError::Unsafe { location, detail }
        | BackendError::Corrupt { location, detail } => (location.clone(), detail.clone()),
        BackendError::AuditUnavailable { location, cause } => (location.clone(), cause.clone()),
        other => ("of this backend".to_owned(), error_chain(other)),
    }
}

/// Turns taken in the items' order: item `i` runs its part once items `0..i` have run
/// theirs, or given theirs up ([`skip`](Self::skip)). Items are handed to workers in order,
/// so every earlier item is already being worked on and its turn comes, provided that every
/// item takes or gives up its turn on every path, a panic's included.
///
/// A worker waiting for its turn sleeps until that turn comes: the one finishing a turn
/// wakes the next turn's worker alone, not every waiting worker (each of which would wake
/// only to sleep again: with 16 workers, about 15 wake-ups per user).
#[derive(Debug, Default)]
pub(crate) struct Turns {
    state: Mutex<TurnState>,
}

#[derive(Debug, Default)]
struct TurnState {
    next: usize,
    /// The workers asleep, by the turn each waits for.
    waiting: HashMap<usize, Thread>,
    /// Turns given up ahead of time ([`Turns::skip`]): passed over when they come.
    skipped: BTreeSet<usize>,
}

impl TurnState {
    /// The turn passes on, over the turns given up, and wakes the worker whose turn it is.
    fn advance(&mut self) {
        self.next += 1;
        while self.skipped.remove(&self.next) {
            self.next += 1;
        }
        if let Some(next) = self.waiting.get(&self.next) {
            next.unpark();
        }
    }
}

impl Turns {
    /// Runs `f` in turn `index`; the turn passes on even when `f` panics.
    pub(crate) fn in_turn<T>(&self, index: usize, f: impl FnOnce() -> T) -> T {
        let lock = || self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut state = lock();
        while state.next != index {
            state.waiting.insert(index, std::thread::current());
            drop(state);
            // Woken when this turn comes (or for nothing: then it sleeps again).
            std::thread::park();
            state = lock();
        }
        state.waiting.remove(&index);
        // Nobody else runs until the turn passes on: it is this worker's alone.
        drop(state);
        let value = catch_unwind(AssertUnwindSafe(f));
        lock().advance();
        value.unwrap_or_else(|panic| resume_unwind(panic))
    }

    /// Gives turn `index` up without waiting for it: an item that will write nothing (a
    /// user settled while planning). The turns before it are not waited for.
    pub(crate) fn skip(&self, index: usize) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        debug_assert!(index >= state.next, "turn {index} was already taken");
        if state.next == index {
            state.advance();
        } else {
            state.skipped.insert(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, FixedClock};

    #[test]
    fn matches_perls_scalar_localtime() {
        let event = AuditEvent {
            time: FixedClock::at(1_433_165_599).now(), // 2015-06-01 13:33:19 UTC
            action: AuditAction::CreateApiToken,
            actor: UserName::root(),
            user: UserName::new("res1").unwrap(),
            token_name: "accesshash-1433165599".into(),
        };
        assert_eq!(
            event.accounting_line(),
            "Mon Jun  1 13:33:19 2015:CREATEAPITOKEN:root:res1:not-applicable:accesshash-1433165599"
        );
    }

    #[test]
    fn times_read_as_strftime_writes_them_on_every_weekday_month_and_day() {
        // About 900 days, each at another time of day, and years of fewer digits than four.
        let far = [-50, -2, 2, 999].map(|year| {
            jiff::civil::date(year, 2, 3)
                .at(4, 5, 6, 0)
                .to_zoned(jiff::tz::TimeZone::UTC)
                .unwrap()
        });
        let near = (0..900).map(|step| FixedClock::at(1_700_000_000 + step * 97_261).now());
        for time in far.into_iter().chain(near) {
            let event = AuditEvent {
                time,
                action: AuditAction::CreateApiToken,
                actor: UserName::root(),
                user: UserName::new("res1").unwrap(),
                token_name: "t".into(),
            };
            let want = event.time.strftime("%a %b %e %H:%M:%S %Y").to_string();
            assert_eq!(
                event.accounting_line(),
                format!("{want}:CREATEAPITOKEN:root:res1:not-applicable:t")
            );
        }
    }

    #[test]
    fn skipped_turns_are_passed_over_without_waiting_for_the_ones_before() {
        let turns = Turns::default();
        let order = Mutex::new(Vec::new());
        // Given up ahead of their turn, and at their turn.
        turns.skip(2);
        turns.skip(3);
        std::thread::scope(|scope| {
            scope.spawn(|| turns.in_turn(4, || order.lock().unwrap().push(4)));
            scope.spawn(|| turns.in_turn(1, || order.lock().unwrap().push(1)));
            turns.in_turn(0, || order.lock().unwrap().push(0));
        });
        turns.skip(5);
        turns.in_turn(6, || order.lock().unwrap().push(6));
        assert_eq!(*order.lock().unwrap(), [0, 1, 4, 6]);
    }

    #[test]
    fn turns_run_in_order_whatever_the_workers_and_pass_on_after_a_panic() {
        let turns = Turns::default();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let order = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    loop {
                        let index = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        if index >= 300 {
                            return;
                        }
                        if index.is_multiple_of(7) {
                            std::thread::yield_now();
                        }
                        let ran = catch_unwind(AssertUnwindSafe(|| {
                            turns.in_turn(index, || {
                                assert!(index != 150, "a panic in turn 150");
                                order.lock().unwrap().push(index);
                            });
                        }));
                        assert_eq!(ran.is_err(), index == 150);
                    }
                });
            }
        });
        let expected: Vec<usize> = (0..300).filter(|&i| i != 150).collect();
        assert_eq!(*order.lock().unwrap(), expected);
    }
}

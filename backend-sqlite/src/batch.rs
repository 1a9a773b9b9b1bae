//! A whole run's imports in a few `BEGIN IMMEDIATE` transactions: one fsync per chunk of
//! users instead of two per user, with prepared statements. One user's failure undoes
//! nothing of the others': a failed decision writes nothing, and should a write fail, the
//! chunk is rolled back and done again with a savepoint around each user.
//!
//! While the writing connection holds the write lock, a second connection reads each
//! user's tokens and decides on another thread, a few hundred users ahead of the writes,
//! handing its decisions over in groups, each group tagged with its first user. Its read
//! transaction starts after the write lock was taken, so it sees exactly what the writer
//! sees: nobody else can commit meanwhile, and the writer's own changes are to other users
//! (a run holds each user once).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use rusqlite::{Connection, Statement, Transaction, TransactionBehavior, params};
use whmtoken_core::{AuditEvent, BackendError, Clock, Decision, ImportItem};

use crate::error::{BACKEND, Site};
use crate::open;
use crate::tokens::{SELECT_TOKENS, UPSERT_TOKEN, read_with};

/// Users committed together: what a run hands over at once. Bounds how much one failed
/// commit can take with it, and how long a signal waits.
const CHUNK: usize = whmtoken_core::pipeline::BATCH_USERS;

type Outcome = Result<Decision, BackendError>;

/// Every item's outcome. Once a chunk could not begin because another process held the
/// write lock past the timeout, `gave_up_waiting` is set, and this chunk's users and every
/// later one's fail with that error at once.
pub(crate) fn import_all(
    conn: &mut Connection,
    site: &Site,
    items: &[ImportItem],
    clock: &dyn Clock,
    gave_up_waiting: &AtomicBool,
) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(items.len());
    // Without a second connection, the writing one reads too.
    let mut reader = open::reader(site).ok();
    for chunk in items.chunks(CHUNK) {
        if gave_up_waiting.load(Ordering::SeqCst) {
            outcomes.extend(chunk.iter().map(|_| Err(site.locked())));
            continue;
        }
        let mut attempt =
            |guarded| import_chunk(conn, reader.as_mut(), site, chunk, clock, guarded);
        let done = match attempt(false) {
            Ok(None) => attempt(true),
            other => other,
        };
        match done {
            Ok(done) => outcomes.extend(done.expect("a guarded chunk always completes")),
            // The transaction itself failed: nothing of this chunk was stored.
            Err(e) => match site.sql(None, e) {
                BackendError::Locked { .. } => {
                    gave_up_waiting.store(true, Ordering::SeqCst);
                    outcomes.extend(chunk.iter().map(|_| Err(site.locked())));
                }
                error => outcomes.extend(chunk.iter().map(|_| Err(nothing_stored(&error)))),
            },
        }
    }
    outcomes
}

/// The statements one chunk uses, prepared once.
struct Statements<'t> {
    upsert: Statement<'t>,
    audit: Statement<'t>,
}

/// Imports a chunk in one transaction. Unguarded, it gives up (`Ok(None)`, everything
/// rolled back) at the first failed write; guarded, it wraps each user in a savepoint.
fn import_chunk(
    conn: &mut Connection,
    reader: Option<&mut Connection>,
    site: &Site,
    chunk: &[ImportItem],
    clock: &dyn Clock,
    guarded: bool,
) -> rusqlite::Result<Option<Vec<Outcome>>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let outcomes = std::thread::scope(|scope| {
        let decisions = match reader {
            Some(reader) => {
                let (send, receive) = sync_channel(GROUPS_AHEAD);
                scope.spawn(move || decide_ahead(reader, site, chunk, &send));
                Decisions::Ahead {
                    receive,
                    group: Vec::new().into_iter(),
                    next: 0,
                }
            }
            None => Decisions::Here(tx.prepare(SELECT_TOKENS)?),
        };
        write_chunk(&tx, decisions, site, chunk, clock, guarded)
        // Leaving the scope waits for the reader, which stops once `decisions` is gone.
    })?;
    if outcomes.is_some() {
        tx.commit()?;
    }
    Ok(outcomes)
}

/// How many decisions the reading thread hands over at once: one wake-up of the writer
/// (or of the reader, when it is ahead) per group, not per user.
const GROUP: usize = 64;

/// How many groups the reading connection may run ahead of the writes.
const GROUPS_AHEAD: usize = 4;

/// A group of consecutive decisions, with the index in the chunk of its first user.
type Group = (usize, Vec<Outcome>);

/// Where the decisions of a chunk come from.
enum Decisions<'t> {
    /// Made on another thread, in the chunk's order, handed over in groups; `next` is the
    /// index of the user the next decision held is for.
    Ahead {
        receive: Receiver<Group>,
        group: std::vec::IntoIter<Outcome>,
        next: usize,
    },
    /// Made here, through the writing transaction.
    Here(Statement<'t>),
}

impl Decisions<'_> {
    /// The decision for `item`, the chunk's user at `index` (asked for in order).
    fn next(
        &mut self,
        site: &Site,
        index: usize,
        item: &ImportItem,
    ) -> Result<Decision, BackendError> {
        match self {
            Self::Ahead {
                receive,
                group,
                next,
            } => loop {
                if *next == index
                    && let Some(decision) = group.next()
                {
                    *next += 1;
                    break decision;
                }
                match receive.recv() {
                    // A decision is only ever applied to the user it was made for.
                    Ok((first, decided)) if first == index => {
                        (*group, *next) = (decided.into_iter(), first);
                    }
                    Ok(_) => break Err(nothing_stored(&"the reading connection lost its place")),
                    Err(_) => break Err(nothing_stored(&"the reading connection stopped early")),
                }
            },
            Self::Here(select) => decide(select, site, item),
        }
    }
}

fn decide(
    select: &mut Statement<'_>,
    site: &Site,
    item: &ImportItem,
) -> Result<Decision, BackendError> {
    let tokens = read_with(select, site, item.user.as_str())?;
    Ok(item.request.decide(&tokens)?)
}

/// Sends a decision for each user of `chunk`, in order and in groups, read in a
/// transaction of `reader`'s own; stops when the writer stops listening.
fn decide_ahead(
    reader: &mut Connection,
    site: &Site,
    chunk: &[ImportItem],
    send: &SyncSender<Group>,
) {
    let tx = match reader.transaction() {
        Ok(tx) => tx,
        Err(e) => return fail_all(send, chunk, &site.sql(None, e)),
    };
    let mut select = match tx.prepare(SELECT_TOKENS) {
        Ok(select) => select,
        Err(e) => return fail_all(send, chunk, &site.sql(Some("tokens"), e)),
    };
    for (first, group) in (0..).step_by(GROUP).zip(chunk.chunks(GROUP)) {
        let decided = group
            .iter()
            .map(|item| decide(&mut select, site, item))
            .collect();
        if send.send((first, decided)).is_err() {
            return;
        }
    }
    // Dropping `tx` ends the read transaction; it changed nothing.
}

fn fail_all(send: &SyncSender<Group>, chunk: &[ImportItem], error: &BackendError) {
    // The writer stopped listening or has them all: either way, nothing more to do.
    let _ = send.send((
        0,
        chunk.iter().map(|_| Err(nothing_stored(error))).collect(),
    ));
}

/// A user's failure when the batch could not get as far as writing for it.
fn nothing_stored(why: &dyn std::fmt::Display) -> BackendError {
    BackendError::Other {
        backend: BACKEND,
        source: format!("nothing was stored: {why}").into(),
    }
}

fn write_chunk(
    tx: &Transaction<'_>,
    mut decisions: Decisions<'_>,
    site: &Site,
    chunk: &[ImportItem],
    clock: &dyn Clock,
    guarded: bool,
) -> rusqlite::Result<Option<Vec<Outcome>>> {
    let mut outcomes = Vec::with_capacity(chunk.len());
    {
        let mut statements = Statements {
            upsert: tx.prepare(UPSERT_TOKEN)?,
            audit: tx.prepare("INSERT INTO accounting (line) VALUES (?1)")?,
        };
        for (index, item) in chunk.iter().enumerate() {
            let decision = match decisions.next(site, index, item) {
                Ok(decision) => decision,
                Err(e) => {
                    outcomes.push(Err(e));
                    continue;
                }
            };
            if let Decision::Write { entry, .. } = &decision {
                let written = if guarded {
                    in_savepoint(tx, || write(&mut statements, site, item, entry, clock))?
                } else {
                    write(&mut statements, site, item, entry, clock)
                };
                match written {
                    Ok(()) => {}
                    Err(_) if !guarded => return Ok(None), // the caller rolls back
                    Err(e) => {
                        outcomes.push(Err(e));
                        continue;
                    }
                }
            }
            outcomes.push(Ok(decision));
        }
    }
    Ok(Some(outcomes))
}

fn write(
    statements: &mut Statements<'_>,
    site: &Site,
    item: &ImportItem,
    entry: &whmtoken_core::TokenEntry,
    clock: &dyn Clock,
) -> Result<(), BackendError> {
    let user = item.user.as_str();
    statements
        .upsert
        .execute(params![
            user,
            item.request.hash.as_str(),
            serde_json::to_string(entry).expect("an entry is always valid JSON")
        ])
        .map_err(|e| site.sql_for(Some("tokens"), Some(user), e))?;
    let event = AuditEvent {
        time: clock.now(),
        action: whmtoken_core::AuditAction::CreateApiToken,
        actor: whmtoken_core::UserName::root(),
        user: item.user.clone(),
        token_name: entry.name.clone(),
    };
    statements
        .audit
        .execute([event.accounting_line()])
        .map_err(|e| site.sql(Some("accounting"), e))?;
    Ok(())
}

/// Runs `f` in a savepoint, rolled back when `f` fails.
fn in_savepoint(
    tx: &Transaction<'_>,
    f: impl FnOnce() -> Result<(), BackendError>,
) -> rusqlite::Result<Result<(), BackendError>> {
    tx.execute_batch("SAVEPOINT import_one")?;
    let result = f();
    let end = if result.is_ok() {
        "RELEASE import_one"
    } else {
        "ROLLBACK TO import_one; RELEASE import_one"
    };
    tx.execute_batch(end)?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use whmtoken_core::{ImportRequest, Restrictions, TokenHash, UserName};

    fn item(name: &str) -> ImportItem {
        let hash = TokenHash::parse(&"ab".repeat(64)).expect("128 hex digits");
        ImportItem {
            user: UserName::new(name).expect("a valid name"),
            request: ImportRequest::new(hash, 0, Restrictions::default(), false, 0),
        }
    }

    fn decided(name: &str) -> Outcome {
        Err(nothing_stored(&format!("made for {name}")))
    }

    #[test]
    fn a_decision_is_never_applied_to_a_user_it_was_not_made_for() {
        let site = Site::new(
            camino::Utf8Path::new("server.db"),
            std::time::Duration::ZERO,
        );
        let users = [item("res1"), item("res2"), item("res3"), item("res4")];
        let (send, receive) = sync_channel(4);
        // A group one decision short, then the group that follows it.
        send.send((0, vec![decided("res1")])).unwrap();
        send.send((2, vec![decided("res3"), decided("res4")]))
            .unwrap();
        drop(send);
        let mut decisions = Decisions::Ahead {
            receive,
            group: Vec::new().into_iter(),
            next: 0,
        };
        let told: Vec<String> = users
            .iter()
            .enumerate()
            .map(|(index, user)| {
                let error = decisions.next(&site, index, user).unwrap_err();
                format!("{error:?}")
            })
            .collect();
        assert!(told[0].contains("made for res1"), "{told:?}");
        for (index, error) in told.iter().enumerate().skip(1) {
            assert!(
                !error.contains("made for"),
                "user {index} was given another user's decision: {told:?}"
            );
        }
    }
}

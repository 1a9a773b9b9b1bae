//! A whole run's imports in a few `BEGIN IMMEDIATE` transactions: one fsync per chunk of
//! users instead of two per user, with prepared statements. One user's failure undoes
//! nothing of the others': a failed decision writes nothing, and should a write fail, the
//! chunk is rolled back and done again with a savepoint around each user.

use rusqlite::{Connection, Statement, Transaction, TransactionBehavior, params};
use whmtoken_core::{AuditEvent, BackendError, Clock, Decision, ImportItem, Imported};

use crate::error::Site;
use crate::tokens::{SELECT_TOKENS, UPSERT_TOKEN, read_with};

/// Users committed together. Bounds how much one failed commit can take with it.
const CHUNK: usize = 5_000;

type Outcome = Result<Imported, BackendError>;

pub(crate) fn import_all(
    conn: &mut Connection,
    site: &Site,
    items: &[ImportItem],
    clock: &dyn Clock,
) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(items.len());
    for chunk in items.chunks(CHUNK) {
        let done = match import_chunk(conn, site, chunk, clock, false) {
            Ok(None) => import_chunk(conn, site, chunk, clock, true),
            other => other,
        };
        match done {
            Ok(done) => outcomes.extend(done.expect("a guarded chunk always completes")),
            // The transaction itself failed: nothing of this chunk was stored.
            Err(e) => {
                let message = site.sql(None, e).to_string();
                outcomes.extend(chunk.iter().map(|_| {
                    let source = format!("nothing was stored: {message}").into();
                    Err(BackendError::Other {
                        backend: "sqlite",
                        source,
                    })
                }));
            }
        }
    }
    outcomes
}

/// The statements one chunk uses, prepared once.
struct Statements<'t> {
    select: Statement<'t>,
    upsert: Statement<'t>,
    audit: Statement<'t>,
}

/// Imports a chunk in one transaction. Unguarded, it gives up (`Ok(None)`, everything
/// rolled back) at the first failed write; guarded, it wraps each user in a savepoint.
fn import_chunk(
    conn: &mut Connection,
    site: &Site,
    chunk: &[ImportItem],
    clock: &dyn Clock,
    guarded: bool,
) -> rusqlite::Result<Option<Vec<Outcome>>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outcomes = Vec::with_capacity(chunk.len());
    {
        let mut statements = Statements {
            select: tx.prepare(SELECT_TOKENS)?,
            upsert: tx.prepare(UPSERT_TOKEN)?,
            audit: tx.prepare("INSERT INTO accounting (line) VALUES (?1)")?,
        };
        for item in chunk {
            let decision = read_with(&mut statements.select, site, item.user.as_str())
                .and_then(|tokens| Ok(item.request.decide(&tokens)?));
            let decision = match decision {
                Ok(decision) => decision,
                Err(e) => {
                    outcomes.push(Err(e));
                    continue;
                }
            };
            if let Decision::Write { entry, .. } = &decision {
                let written = if guarded {
                    in_savepoint(&tx, || write(&mut statements, site, item, entry, clock))?
                } else {
                    write(&mut statements, site, item, entry, clock)
                };
                match written {
                    Ok(()) => {}
                    Err(_) if !guarded => return Ok(None), // dropping `tx` rolls back
                    Err(e) => {
                        outcomes.push(Err(e));
                        continue;
                    }
                }
            }
            outcomes.push(Ok(Imported {
                decision,
                audit: Ok(()),
            }));
        }
    }
    tx.commit()?;
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
            entry.to_json().to_string()
        ])
        .map_err(|e| site.sql_for(Some("tokens"), Some(user), e))?;
    let event = AuditEvent {
        time: clock.now(),
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

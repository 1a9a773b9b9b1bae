//! A whole run's imports in a few `BEGIN IMMEDIATE` transactions: one fsync per chunk of
//! users instead of two per user, with prepared statements, and a savepoint per user so
//! that one user's failure undoes nothing of the others'.

use rusqlite::{Connection, TransactionBehavior, params};
use whmtoken_core::{AuditEvent, BackendError, Clock, Decision, ImportItem, Imported};

use crate::error::Site;
use crate::tokens::{SELECT_TOKENS, UPSERT_TOKEN, read_with};

/// Users committed together. Bounds how much one failed commit can take with it.
const CHUNK: usize = 5_000;

pub(crate) fn import_all(
    conn: &mut Connection,
    site: &Site,
    items: &[ImportItem],
    clock: &dyn Clock,
) -> Vec<Result<Imported, BackendError>> {
    let mut outcomes = Vec::with_capacity(items.len());
    for chunk in items.chunks(CHUNK) {
        match import_chunk(conn, site, chunk, clock) {
            Ok(done) => outcomes.extend(done),
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

fn import_chunk(
    conn: &mut Connection,
    site: &Site,
    chunk: &[ImportItem],
    clock: &dyn Clock,
) -> rusqlite::Result<Vec<Result<Imported, BackendError>>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let outcomes = {
        let mut select = tx.prepare(SELECT_TOKENS)?;
        let mut upsert = tx.prepare(UPSERT_TOKEN)?;
        let mut audit = tx.prepare("INSERT INTO accounting (line) VALUES (?1)")?;
        chunk
            .iter()
            .map(|item| {
                let user = item.user.as_str();
                tx.execute_batch("SAVEPOINT import_one")
                    .map_err(|e| site.sql(None, e))?;
                let attempt = (|| {
                    let decision = item.request.decide(&read_with(&mut select, site, user)?)?;
                    if let Decision::Write { entry, .. } = &decision {
                        let sql = |e| site.sql_for(Some("tokens"), Some(user), e);
                        upsert
                            .execute(params![
                                user,
                                item.request.hash.as_str(),
                                entry.to_json().to_string()
                            ])
                            .map_err(sql)?;
                        let event = AuditEvent {
                            time: clock.now(),
                            user: item.user.clone(),
                            token_name: entry.name.clone(),
                        };
                        audit
                            .execute([event.accounting_line()])
                            .map_err(|e| site.sql(Some("accounting"), e))?;
                    }
                    Ok(Imported {
                        decision,
                        audit: Ok(()),
                    })
                })();
                let end = if attempt.is_ok() {
                    "RELEASE import_one"
                } else {
                    "ROLLBACK TO import_one; RELEASE import_one"
                };
                tx.execute_batch(end).map_err(|e| site.sql(None, e))?;
                attempt
            })
            .collect()
    };
    tx.commit()?;
    Ok(outcomes)
}

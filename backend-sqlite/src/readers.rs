//! Extra connections for reads made from several threads at once. A read session (a run's
//! planning) owns a pool of them: each thread can read through a connection of its own,
//! each in its own read transaction, instead of queueing for the one connection that also
//! writes. They are closed with the session, so their page caches do not outlive the
//! planning.

use std::ops::Deref;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use rusqlite::Connection;

use crate::error::Site;
use crate::open;

#[derive(Debug)]
pub(crate) struct Readers {
    pool: Mutex<Pool>,
    /// Signalled when a reader goes back to the idle ones.
    returned: Condvar,
    max: usize,
}

#[derive(Debug, Default)]
struct Pool {
    /// Connections inside a read transaction that no thread is using right now.
    idle: Vec<Connection>,
    /// Connections opened and not yet closed, idle or in use.
    opened: usize,
    /// Whether opening one failed: no more are tried.
    failed: bool,
}

/// A reader in use; it goes back to the idle ones when dropped.
pub(crate) struct Reader<'r> {
    readers: &'r Readers,
    conn: Option<Connection>,
}

impl Readers {
    /// At most `max` extra connections: more than the machine's cores gains nothing, as
    /// the reads are CPU work once the pages are cached.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            pool: Mutex::new(Pool::default()),
            returned: Condvar::new(),
            max: max.max(1),
        }
    }

    fn pool(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends every reader's read transaction and closes it. Called when the session ends,
    /// when no reader is in use (each borrows the pool).
    pub(crate) fn close(&self) {
        let mut pool = self.pool();
        for conn in std::mem::take(&mut pool.idle) {
            // A read transaction has nothing to commit: whatever happens, closing ends it.
            let _ = conn.execute_batch("COMMIT");
            pool.opened -= 1;
        }
    }

    /// A connection in a read transaction: an idle one, a new one while fewer than `max`
    /// are open, or else the next one returned. `None` only when none could be opened:
    /// the caller then reads through the main connection.
    pub(crate) fn checkout(&self, site: &Site) -> Option<Reader<'_>> {
        let mut pool = self.pool();
        let conn = loop {
            if let Some(conn) = pool.idle.pop() {
                break conn;
            }
            if pool.opened < self.max && !pool.failed {
                pool.opened += 1;
                drop(pool);
                let opened = open_in_read_transaction(site);
                pool = self.pool();
                match opened {
                    Some(conn) => break conn,
                    None => {
                        pool.opened -= 1;
                        pool.failed = true;
                        // Whoever waits for a reader may now be waiting for none.
                        self.returned.notify_all();
                    }
                }
            }
            if pool.opened == 0 {
                return None;
            }
            pool = self
                .returned
                .wait(pool)
                .unwrap_or_else(PoisonError::into_inner);
        };
        Some(Reader {
            readers: self,
            conn: Some(conn),
        })
    }
}

fn open_in_read_transaction(site: &Site) -> Option<Connection> {
    open::reader(site)
        .ok()
        .filter(|conn| conn.execute_batch("BEGIN DEFERRED").is_ok())
}

impl Deref for Reader<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("held until dropped")
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        self.readers.pool().idle.push(conn);
        self.readers.returned.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn nobody_waits_for_a_reader_when_none_can_be_opened() {
        let site = Site::new(
            camino::Utf8Path::new("/nonexistent/whmtoken/server.db"),
            Duration::ZERO,
        );
        for _ in 0..50 {
            let readers = Arc::new(Readers::new(1));
            let (done, finished) = std::sync::mpsc::channel();
            for _ in 0..4 {
                let (readers, site, done) = (Arc::clone(&readers), site.clone(), done.clone());
                // Not scoped: a checkout that never returns must fail the test, not hang it.
                std::thread::spawn(move || done.send(readers.checkout(&site).is_none()));
            }
            for _ in 0..4 {
                let none = finished
                    .recv_timeout(Duration::from_secs(10))
                    .expect("a checkout waited for a reader that can never come");
                assert!(none, "a reader opened on a database that does not exist");
            }
        }
    }
}

//! Extra connections for reads made from several threads at once. A read session (a run's
//! planning) owns a pool of them: each thread can read through a connection of its own,
//! each in its own read transaction, instead of queueing for the one connection that also
//! writes. They are closed with the session, so their page caches do not outlive the
//! planning.

use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use rusqlite::Connection;

use crate::error::Site;
use crate::open;

#[derive(Debug)]
pub(crate) struct Readers {
    /// Connections inside a read transaction that no thread is using right now.
    idle: Mutex<Vec<Connection>>,
    /// Connections opened and not yet closed, idle or in use.
    opened: AtomicUsize,
    max: usize,
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
            idle: Mutex::new(Vec::new()),
            opened: AtomicUsize::new(0),
            max,
        }
    }

    /// Ends every reader's read transaction and closes it. Called when the session ends,
    /// when no reader is in use (each borrows the pool).
    pub(crate) fn close(&self) {
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(PoisonError::into_inner));
        for conn in idle {
            // A read transaction has nothing to commit: whatever happens, closing ends it.
            let _ = conn.execute_batch("COMMIT");
            self.opened.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// A connection in a read transaction, or `None` when all readers are in use or a new
    /// one cannot be opened: the caller then reads through the main connection.
    pub(crate) fn checkout(&self, site: &Site) -> Option<Reader<'_>> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.open(site)?,
        };
        Some(Reader {
            readers: self,
            conn: Some(conn),
        })
    }

    fn open(&self, site: &Site) -> Option<Connection> {
        let claimed = self
            .opened
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok();
        if !claimed {
            return None;
        }
        let conn = open::reader(site)
            .ok()
            .filter(|conn| conn.execute_batch("BEGIN DEFERRED").is_ok());
        if conn.is_none() {
            self.opened.fetch_sub(1, Ordering::SeqCst);
        }
        conn
    }
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
        self.readers
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(conn);
    }
}

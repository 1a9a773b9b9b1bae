//! A bound on the token-file bytes held in memory at once: a run over many huge token files
//! (up to 16 MiB each, parsed at a few bytes of memory per byte) on many threads waits for
//! memory instead of multiplying it. Files of ordinary size never wait.

use std::sync::{Condvar, Mutex, PoisonError};

/// Bytes of token files being read or written at once, at most.
pub(crate) const READ_BUDGET: u64 = 64 << 20;

#[derive(Debug)]
pub(crate) struct ReadBudget {
    available: Mutex<Available>,
    freed: Condvar,
    total: u64,
}

/// Bytes taken from a [`ReadBudget`], given back when dropped.
#[derive(Debug)]
pub(crate) struct Taken<'a> {
    budget: &'a ReadBudget,
    bytes: u64,
}

/// The bytes not taken, and how many takers wait for more: a release wakes them only when
/// there are some (a wake-up is a system call even when nobody sleeps).
#[derive(Debug)]
struct Available {
    bytes: u64,
    waiting: usize,
}

impl ReadBudget {
    pub(crate) fn new(total: u64) -> Self {
        Self {
            available: Mutex::new(Available {
                bytes: total,
                waiting: 0,
            }),
            freed: Condvar::new(),
            total,
        }
    }

    /// Waits until `bytes` (at most the whole budget, so that one file larger than it still
    /// goes through, alone) are free, and takes them.
    pub(crate) fn take(&self, bytes: u64) -> Taken<'_> {
        let bytes = bytes.min(self.total);
        let mut available = self
            .available
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while available.bytes < bytes {
            available.waiting += 1;
            available = self
                .freed
                .wait(available)
                .unwrap_or_else(PoisonError::into_inner);
            available.waiting -= 1;
        }
        available.bytes -= bytes;
        Taken {
            budget: self,
            bytes,
        }
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        let mut available = self
            .budget
            .available
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        available.bytes += self.bytes;
        if available.waiting > 0 {
            self.budget.freed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takers_wait_for_bytes_given_back_and_a_huge_one_goes_alone() {
        let budget = ReadBudget::new(100);
        let a = budget.take(60);
        let huge = std::thread::scope(|scope| {
            let waiter = scope.spawn(|| {
                let t = budget.take(1_000);
                t.bytes
            });
            std::thread::sleep(std::time::Duration::from_millis(20));
            assert!(
                !waiter.is_finished(),
                "it waits while 60 of 100 bytes are out"
            );
            drop(a);
            waiter.join().unwrap()
        });
        assert_eq!(huge, 100, "capped at the whole budget");
        assert_eq!(
            budget.available.lock().unwrap().bytes,
            100,
            "all given back"
        );
    }
}

//! A bounded, order-preserving parallel map over a slice, on scoped threads.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Applies `f` to every item on up to `jobs` threads; the results keep the items' order.
/// With `jobs <= 1` (or a single item) everything runs on the calling thread.
pub fn map<T: Sync, R: Send>(items: &[T], jobs: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = jobs.min(items.len());
    if workers <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(index) else { break };
                    let result = f(item);
                    *slots[index]
                        .lock()
                        .expect("no worker panics while holding a slot") = Some(result);
                }
            });
        }
    });
    slots
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .expect("slot lock")
                .expect("every item was processed")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_keep_the_input_order_whatever_the_parallelism() {
        let items: Vec<u32> = (0..500).collect();
        for jobs in [0, 1, 2, 7, 1000] {
            let out = super::map(&items, jobs, |n| {
                if n % 17 == 0 {
                    std::thread::yield_now();
                }
                n * 2
            });
            assert_eq!(
                out,
                items.iter().map(|n| n * 2).collect::<Vec<_>>(),
                "jobs = {jobs}"
            );
        }
    }
}

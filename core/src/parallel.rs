//! A bounded, order-preserving parallel map over a slice, on scoped threads, optionally
//! telling the calling thread about each result as it is ready.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

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

/// Applies `f` to every item (and its index) on up to `jobs` threads, taking items in
/// their order, and hands each result, with its index, to `ready` on the calling thread as
/// soon as it is computed (in completion order, not the items' order).
pub fn for_each_ready<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    f: impl Fn(usize, &T) -> R + Sync,
    mut ready: impl FnMut(usize, R),
) {
    let workers = jobs.min(items.len());
    if workers <= 1 {
        for (index, item) in items.iter().enumerate() {
            ready(index, f(index, item));
        }
        return;
    }
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let (send, receive) = mpsc::channel();
        for _ in 0..workers {
            let send = send.clone();
            let (next, f) = (&next, &f);
            scope.spawn(move || {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(index) else { break };
                    if send.send((index, f(index, item))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(send);
        for (index, result) in receive {
            ready(index, result);
        }
    });
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

    #[test]
    fn ready_sees_every_result_once_with_its_index() {
        let items: Vec<u32> = (0..300).collect();
        for jobs in [1, 4] {
            let mut seen = Vec::new();
            super::for_each_ready(&items, jobs, |_, n| n * 3, |index, r| seen.push((index, r)));
            seen.sort_unstable();
            assert_eq!(
                seen,
                items
                    .iter()
                    .map(|n| (*n as usize, n * 3))
                    .collect::<Vec<_>>()
            );
        }
    }
}

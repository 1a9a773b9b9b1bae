//! A bounded, order-preserving parallel map over a slice, on scoped threads, optionally
//! telling the calling thread about each result as it is ready.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

/// Applies `f` to every item on up to `jobs` threads; the results keep the items' order.
/// With `jobs <= 1` (or a single item) everything runs on the calling thread.
pub fn map<T: Sync, R: Send>(items: &[T], jobs: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let mut slots: Vec<Option<R>> = items.iter().map(|_| None).collect();
    for_each_ready(
        items,
        jobs,
        |_, item| f(item),
        |index, result| {
            slots[index] = Some(result);
        },
    );
    slots
        .into_iter()
        .map(|slot| slot.expect("every item was processed"))
        .collect()
}

/// Applies `f` to every item (and its index) on up to `jobs` threads, taking items in
/// their order, and hands each result, with its index, to `ready` on the calling thread as
/// soon as it is computed (in completion order, not the items' order). Should no thread
/// be had (the process limit reached), the calling thread does the work itself.
pub fn for_each_ready<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    f: impl Fn(usize, &T) -> R + Sync,
    mut ready: impl FnMut(usize, R),
) {
    let next = AtomicUsize::new(0);
    let take = || {
        let index = next.fetch_add(1, Ordering::Relaxed);
        items.get(index).map(|item| (index, item))
    };
    let workers = jobs.min(items.len());
    if workers <= 1 {
        while let Some((index, item)) = take() {
            ready(index, f(index, item));
        }
        return;
    }
    std::thread::scope(|scope| {
        let (send, receive) = mpsc::channel();
        let mut spawned = 0;
        for _ in 0..workers {
            let send = send.clone();
            let (take, f) = (&take, &f);
            let worker = std::thread::Builder::new().spawn_scoped(scope, move || {
                while let Some((index, item)) = take() {
                    if send.send((index, f(index, item))).is_err() {
                        break;
                    }
                }
            });
            match worker {
                Ok(_) => spawned += 1,
                Err(e) => {
                    tracing::warn!(error = %e, spawned, "cannot start another thread; going on with fewer");
                    break;
                }
            }
        }
        drop(send);
        if spawned == 0 {
            while let Some((index, item)) = take() {
                ready(index, f(index, item));
            }
        }
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

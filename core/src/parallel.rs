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
    for_each_emitting(
        items,
        jobs,
        |index, item, emit| emit((index, f(index, item))),
        |(index, result)| ready(index, result),
    );
}

/// [`for_each_ready`] for work that yields its results in parts: `f` hands each to `emit`
/// (any number of them per item) and `ready` gets each on the calling thread as soon as it
/// is emitted.
pub fn for_each_emitting<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    f: impl Fn(usize, &T, &mut dyn FnMut(R)) + Sync,
    mut ready: impl FnMut(R),
) {
    let next = AtomicUsize::new(0);
    let take = || {
        let index = next.fetch_add(1, Ordering::Relaxed);
        items.get(index).map(|item| (index, item))
    };
    let workers = jobs.min(items.len());
    let on_this_thread = |ready: &mut dyn FnMut(R)| {
        while let Some((index, item)) = take() {
            f(index, item, ready);
        }
    };
    if workers <= 1 {
        on_this_thread(&mut ready);
        return;
    }
    std::thread::scope(|scope| {
        let (send, receive) = mpsc::channel();
        let mut spawned = 0;
        for _ in 0..workers {
            let send = send.clone();
            let (take, f) = (&take, &f);
            let worker = std::thread::Builder::new().spawn_scoped(scope, move || {
                // Once the calling thread stopped receiving (it panicked), no item is started.
                let closed = std::cell::Cell::new(false);
                let mut emit = |result| {
                    if send.send(result).is_err() {
                        closed.set(true);
                    }
                };
                while let Some((index, item)) = take() {
                    f(index, item, &mut emit);
                    if closed.get() {
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
            on_this_thread(&mut ready);
        }
        for result in receive {
            ready(result);
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

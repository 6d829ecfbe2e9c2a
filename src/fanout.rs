//! Bounded parallel fan-out over hosts.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use tokio::sync::Semaphore;

/// A boxed, type-erased future of one item's work.
type Work<'a, T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + 'a>>;

/// Default number of hosts worked on at once.
pub const DEFAULT_PARALLEL: usize = 32;

/// Runs `f` on every item with at most `parallel` running at once (0 is treated as 1)
/// and returns every item with its own result, in input order. One item failing never
/// stops or cancels the others.
///
/// The futures run concurrently on the calling task (no spawn), so they may borrow
/// from the caller; the work is I/O bound (SSH), so that is enough.
pub async fn run<I, T, E, F, Fut>(items: Vec<I>, parallel: usize, f: F) -> Vec<(I, Result<T, E>)>
where
    I: Clone,
    F: Fn(I) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let permits = Arc::new(Semaphore::new(parallel.max(1)));
    let mut pending: Vec<Option<Work<'_, T, E>>> = Vec::new();
    let f = &f;
    for item in &items {
        let permits = Arc::clone(&permits);
        let item = item.clone();
        pending.push(Some(Box::pin(async move {
            // The semaphore is never closed, so acquire only fails if it were; then
            // running without a permit is still correct, only less bounded.
            let _permit = permits.acquire().await.ok();
            f(item).await
        })));
    }
    let mut results: Vec<Option<Result<T, E>>> = items.iter().map(|_| None).collect();
    let mut remaining = pending.len();
    std::future::poll_fn(|cx| {
        for (slot, result) in pending.iter_mut().zip(results.iter_mut()) {
            if let Some(fut) = slot
                && let Poll::Ready(out) = fut.as_mut().poll(cx)
            {
                *result = Some(out);
                *slot = None;
                remaining -= 1;
            }
        }
        if remaining == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    items
        .into_iter()
        .zip(results)
        .filter_map(|(item, result)| result.map(|r| (item, r)))
        .collect()
}

/// True when every outcome succeeded (the run's exit status is non-zero otherwise).
pub fn all_ok<I, T, E>(outcomes: &[(I, Result<T, E>)]) -> bool {
    outcomes.iter().all(|(_, r)| r.is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn keeps_order_and_isolates_failures() {
        let items: Vec<u32> = (0..20).collect();
        let out = run(items, 4, |i| async move {
            tokio::time::sleep(Duration::from_millis(u64::from(20 - i))).await;
            if i % 3 == 0 {
                Err(format!("host {i} failed"))
            } else {
                Ok(i * 10)
            }
        })
        .await;
        assert_eq!(out.len(), 20);
        for (idx, (item, result)) in out.iter().enumerate() {
            assert_eq!(*item as usize, idx);
            if item % 3 == 0 {
                assert_eq!(result, &Err(format!("host {item} failed")));
            } else {
                assert_eq!(result, &Ok(item * 10));
            }
        }
        assert!(!all_ok(&out));
    }

    #[tokio::test]
    async fn respects_the_bound_and_runs_in_parallel() {
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let start = Instant::now();
        let out = run((0..12).collect::<Vec<u32>>(), 3, |_| {
            let running = &running;
            let peak = &peak;
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, ()>(())
            }
        })
        .await;
        assert!(all_ok(&out));
        assert_eq!(peak.load(Ordering::SeqCst), 3);
        // 12 items, 3 at a time, 50 ms each: about 200 ms, far below 600 ms serial.
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn zero_parallel_still_runs() {
        let out = run(vec!["a", "b"], 0, |s| async move { Ok::<_, ()>(s.len()) }).await;
        assert_eq!(out, vec![("a", Ok(1)), ("b", Ok(1))]);
    }
}

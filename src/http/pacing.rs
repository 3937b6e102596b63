//! Client-side pacing below the platforms' limits (DESIGN §1.5), so a normal run draws no 429 of its own
//! making. Limiters allow no burst: Zoom and Rocket.Chat count in windows we cannot see, and a burst that
//! fits a token bucket can still overflow their window. What each platform's limits are lives with its
//! source (`sources::zoom::pacing`, the Rocket.Chat client).

use super::ApiError;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

tokio::task_local! {
    /// How much work the window behind a request still has (rows left to walk, or `u64::MAX` before its
    /// first page announced a total). The account's pacer hands its next slot to the window with the most
    /// left: a window's pages must follow one another, so a long window started late would otherwise walk
    /// alone at one page per reply latency once the short ones are done, far under the allowed rate.
    pub static WORK_LEFT: u64;
}

/// How far under the allowed rate we pace. Exact spacing is not enough: the server counts arrivals, and
/// any request that reaches it a few milliseconds sooner (relative to its predecessor ten requests back)
/// than the others puts N+1 arrivals in one window. The sandbox's enforced limits showed 429s at 0% margin;
/// 5% absorbs 50 ms of jitter at 10/s and 3 s at 10/min, and keeps us at 95% of the allowed rate.
const PACING_MARGIN: f64 = 1.05;

/// One request per `period` (stretched by the margin), no burst; `None` when the rate asked for is 0 (no
/// limit).
pub fn steady_limiter(requests: u32, per: Duration) -> Option<DefaultDirectRateLimiter> {
    let requests = NonZeroU32::new(requests)?;
    let period = per.mul_f64(PACING_MARGIN) / requests.get();
    let quota =
        Quota::with_period(period.max(Duration::from_micros(1)))?.allow_burst(NonZeroU32::MIN);
    Some(RateLimiter::direct(quota))
}

/// A limiter and the queue in front of it: the waiter with the most work left goes first.
pub struct Paced {
    limiter: DefaultDirectRateLimiter,
    queue: Mutex<BTreeSet<(std::cmp::Reverse<u64>, u64)>>,
    next_ticket: AtomicU64,
    turn: Notify,
}

impl Paced {
    pub fn new(limiter: DefaultDirectRateLimiter) -> Paced {
        Paced {
            limiter,
            queue: Mutex::new(BTreeSet::new()),
            next_ticket: AtomicU64::new(0),
            turn: Notify::new(),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, BTreeSet<(std::cmp::Reverse<u64>, u64)>> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits for this request's turn, then for the limiter's next slot.
    pub async fn until_ready(&self, cancel: &CancellationToken) -> Result<(), ApiError> {
        let work_left = WORK_LEFT.try_with(|left| *left).unwrap_or(u64::MAX);
        let entry = (
            std::cmp::Reverse(work_left),
            self.next_ticket.fetch_add(1, Ordering::Relaxed),
        );
        self.queue().insert(entry);
        // Leaves the queue however the wait ends (a slot, a cancel, a dropped request), and wakes the next.
        let _leave = Leave { paced: self, entry };
        loop {
            let turn = self.turn.notified();
            if self.queue().first() == Some(&entry) {
                tokio::select! {
                    _ = cancel.cancelled() => return Err(ApiError::Cancelled),
                    _ = self.limiter.until_ready() => return Ok(()),
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return Err(ApiError::Cancelled),
                _ = turn => {}
            }
        }
    }
}

struct Leave<'a> {
    paced: &'a Paced,
    entry: (std::cmp::Reverse<u64>, u64),
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.paced.queue().remove(&self.entry);
        self.paced.turn.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two requests wait for the same slot: the window with the most rows left gets it first, whatever the
    /// order they arrived in.
    #[tokio::test]
    async fn the_waiter_with_the_most_work_left_goes_first() {
        let paced = std::sync::Arc::new(Paced::new(
            steady_limiter(20, Duration::from_secs(1)).expect("a limit"),
        ));
        let cancel = CancellationToken::new();
        paced.until_ready(&cancel).await.expect("the free slot");
        let order = std::sync::Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for work in [5_u64, 100] {
            let (waiter, order, cancel) = (paced.clone(), order.clone(), cancel.clone());
            waiters.push(tokio::spawn(WORK_LEFT.scope(work, async move {
                waiter.until_ready(&cancel).await.expect("a slot");
                order.lock().expect("order").push(work);
            })));
            // The next waiter registers only after this one is queued.
            while paced.queue().len() < waiters.len() {
                tokio::task::yield_now().await;
            }
        }
        for waiter in waiters {
            waiter.await.expect("waiter");
        }
        assert_eq!(*order.lock().expect("order"), [100, 5]);
        assert!(paced.queue().is_empty());
    }

    #[test]
    fn zero_means_no_limit() {
        assert!(steady_limiter(0, Duration::from_secs(1)).is_none());
        assert!(steady_limiter(10, Duration::from_secs(60)).is_some());
    }
}

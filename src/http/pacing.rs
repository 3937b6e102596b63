//! Client-side pacing below the platforms' limits (DESIGN §1.5), so a normal run draws no 429 of its own
//! making. Limiters allow no burst: Zoom and Rocket.Chat count in windows we cannot see, and a burst that
//! fits a token bucket can still overflow their window. What each platform's limits are lives with its
//! source (`sources::zoom::pacing`, the Rocket.Chat client).

use super::ApiError;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
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
    let quota = Quota::with_period(spacing(requests, per)?)?.allow_burst(NonZeroU32::MIN);
    Some(RateLimiter::direct(quota))
}

/// The time [`steady_limiter`] keeps between two requests; `None` when the rate asked for is 0 (no limit).
pub fn spacing(requests: u32, per: Duration) -> Option<Duration> {
    let requests = NonZeroU32::new(requests)?;
    let period = per.mul_f64(PACING_MARGIN) / requests.get();
    Some(period.max(Duration::from_micros(1)))
}

/// How long a request may wait behind windows with more work left before it goes first. A Zoom page
/// token lives 15 minutes from the page that issued it: strict most-work-first would hold a nearly finished
/// window's next page until every bigger window had caught down to it, which on a large account's first
/// collection is longer than that, so its token would expire and the window restart from page 1. Two
/// minutes is far inside the token's life and costs the long windows one slot now and then.
const MAX_WAIT: Duration = Duration::from_secs(120);

/// A limiter and the queue in front of it: the waiter with the most work left goes first, unless one has
/// waited longer than [`MAX_WAIT`] (those go first, oldest first).
pub struct Paced {
    limiter: DefaultDirectRateLimiter,
    queue: Mutex<Vec<Waiter>>,
    next_ticket: AtomicU64,
    turn: Notify,
    max_wait: Duration,
}

#[derive(Clone, Copy)]
struct Waiter {
    work_left: u64,
    /// Arrival order, which also breaks ties between equal work.
    ticket: u64,
    since: Instant,
}

impl Paced {
    pub fn new(limiter: DefaultDirectRateLimiter) -> Paced {
        Paced::with_max_wait(limiter, MAX_WAIT)
    }

    fn with_max_wait(limiter: DefaultDirectRateLimiter, max_wait: Duration) -> Paced {
        Paced {
            limiter,
            queue: Mutex::new(Vec::new()),
            next_ticket: AtomicU64::new(0),
            turn: Notify::new(),
            max_wait,
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Waiter>> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whose turn it is. The queue holds one entry per worker waiting (a few dozen at most), so a scan is
    /// cheaper than keeping two orders in step.
    fn head(&self) -> Option<u64> {
        let queue = self.queue();
        let overdue = queue
            .iter()
            .filter(|w| w.since.elapsed() >= self.max_wait)
            .min_by_key(|w| w.ticket);
        let most_work = || {
            queue
                .iter()
                .max_by_key(|w| (w.work_left, std::cmp::Reverse(w.ticket)))
        };
        overdue.or_else(most_work).map(|w| w.ticket)
    }

    /// Waits for this request's turn, then for the limiter's next slot.
    pub async fn until_ready(&self, cancel: &CancellationToken) -> Result<(), ApiError> {
        let work_left = WORK_LEFT.try_with(|left| *left).unwrap_or(u64::MAX);
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        let since = Instant::now();
        self.queue().push(Waiter {
            work_left,
            ticket,
            since,
        });
        // Leaves the queue however the wait ends (a slot, a cancel, a dropped request), and wakes the next.
        let _leave = Leave {
            paced: self,
            ticket,
        };
        loop {
            let turn = self.turn.notified();
            if self.head() == Some(ticket) {
                tokio::select! {
                    _ = cancel.cancelled() => return Err(ApiError::Cancelled),
                    _ = self.limiter.until_ready() => return Ok(()),
                }
            }
            // Woken by every departure from the queue, and on its own when this waiter becomes overdue.
            let overdue_in = self.max_wait.saturating_sub(since.elapsed());
            tokio::select! {
                _ = cancel.cancelled() => return Err(ApiError::Cancelled),
                _ = turn => {}
                _ = tokio::time::sleep(overdue_in), if !overdue_in.is_zero() => {}
            }
        }
    }
}

struct Leave<'a> {
    paced: &'a Paced,
    ticket: u64,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.paced.queue().retain(|w| w.ticket != self.ticket);
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

    /// Windows with more work left always waiting (each asks again the moment it is served) would hold
    /// a nearly finished window back until they were all done; past `max_wait` it goes first.
    #[tokio::test]
    async fn a_waiter_past_max_wait_goes_before_bigger_windows() {
        let limiter = steady_limiter(100, Duration::from_secs(1)).expect("a limit");
        let paced = std::sync::Arc::new(Paced::with_max_wait(limiter, Duration::from_millis(50)));
        let cancel = CancellationToken::new();
        let order = std::sync::Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let (paced, order, cancel) = (paced.clone(), order.clone(), cancel.clone());
            tasks.push(tokio::spawn(WORK_LEFT.scope(1_000, async move {
                for _ in 0..30 {
                    paced.until_ready(&cancel).await.expect("a slot");
                    order.lock().expect("order").push(1_000);
                }
            })));
        }
        // The small window arrives once the big ones are queued, so it is never first by arrival alone.
        while paced.queue().len() < 3 {
            tokio::task::yield_now().await;
        }
        let (small, small_order) = (paced.clone(), order.clone());
        tasks.push(tokio::spawn(WORK_LEFT.scope(1, async move {
            small.until_ready(&cancel).await.expect("a slot");
            small_order.lock().expect("order").push(1);
        })));
        for task in tasks {
            task.await.expect("task");
        }
        let order = order.lock().expect("order");
        let served_at = order.iter().position(|&work| work == 1).expect("served");
        assert!(
            served_at < 60,
            "served {served_at}th of {}: it waited for the bigger windows to finish",
            order.len()
        );
    }

    #[test]
    fn zero_means_no_limit() {
        assert!(steady_limiter(0, Duration::from_secs(1)).is_none());
        assert!(steady_limiter(10, Duration::from_secs(60)).is_some());
    }
}

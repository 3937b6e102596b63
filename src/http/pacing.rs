//! Client-side pacing below the platforms' limits (DESIGN §1.5), so a normal run draws no 429 of its own
//! making. Limiters allow no burst: Zoom and Rocket.Chat count in windows we cannot see, and a burst that
//! fits a token bucket can still overflow their window.

use super::ApiError;
use crate::config::ResolvedLimits;
use chrono::{DateTime, Duration as ChronoDuration, NaiveDate, NaiveTime, Utc};
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

/// Zoom's rate-limit categories (research/zoom-api.md §4); calls are counted per category and account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Category {
    /// `/report/users`, `/videosdk/sessions/{id}/users`.
    Heavy,
    /// `/videosdk/sessions`.
    ResourceIntensive,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Heavy => "heavy",
            Category::ResourceIntensive => "resource_intensive",
        }
    }
}

/// How far under the allowed rate we pace. Exact spacing is not enough: the server counts arrivals, and
/// any request that reaches it a few milliseconds sooner (relative to its predecessor ten requests back)
/// than the others puts N+1 arrivals in one window. The sandbox's enforced limits showed 429s at 0% margin;
/// 5% absorbs 50 ms of jitter at 10/s and 3 s at 10/min, and keeps us at 95% of the allowed rate.
const PACING_MARGIN: f64 = 1.05;

/// One request per `period` (stretched by the margin), no burst; `None` when the configured rate is 0 (no
/// limit).
pub fn steady_limiter(requests: u32, per: Duration) -> Option<DefaultDirectRateLimiter> {
    let requests = NonZeroU32::new(requests)?;
    let period = per.mul_f64(PACING_MARGIN) / requests.get();
    let quota =
        Quota::with_period(period.max(Duration::from_micros(1)))?.allow_burst(NonZeroU32::MIN);
    Some(RateLimiter::direct(quota))
}

/// The pacing of one Zoom account: a limiter per category and the daily pool they share.
pub struct ZoomPacer {
    heavy: Option<Paced>,
    resource_intensive: Option<Paced>,
    daily: Option<DailyBudget>,
}

/// A limiter and the queue in front of it: the waiter with the most work left goes first.
struct Paced {
    limiter: DefaultDirectRateLimiter,
    queue: Mutex<BTreeSet<(std::cmp::Reverse<u64>, u64)>>,
    next_ticket: AtomicU64,
    turn: Notify,
}

impl Paced {
    fn new(limiter: DefaultDirectRateLimiter) -> Paced {
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
    async fn until_ready(&self, cancel: &CancellationToken) -> Result<(), ApiError> {
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

struct DailyBudget {
    limit: u32,
    used: Mutex<(NaiveDate, u32)>,
}

impl ZoomPacer {
    pub fn new(limits: ResolvedLimits) -> ZoomPacer {
        ZoomPacer {
            heavy: steady_limiter(limits.heavy_per_second, Duration::from_secs(1)).map(Paced::new),
            resource_intensive: steady_limiter(
                limits.resource_intensive_per_minute,
                Duration::from_secs(60),
            )
            .map(Paced::new),
            daily: (limits.daily_requests > 0).then(|| DailyBudget {
                limit: limits.daily_requests,
                used: Mutex::new((Utc::now().date_naive(), 0)),
            }),
        }
    }

    /// Waits for the category's next slot and counts the request against the daily pool. When the pool is
    /// spent, the account is treated as daily-limited until 00:00 UTC without sending anything.
    pub async fn acquire(
        &self,
        category: Category,
        what: &str,
        cancel: &CancellationToken,
    ) -> Result<(), ApiError> {
        let limiter = match category {
            Category::Heavy => self.heavy.as_ref(),
            Category::ResourceIntensive => self.resource_intensive.as_ref(),
        };
        if let Some(paced) = limiter {
            paced.until_ready(cancel).await?;
        }
        if let Some(daily) = &self.daily {
            let today = Utc::now().date_naive();
            let mut used = daily
                .used
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if used.0 != today {
                *used = (today, 0);
            }
            if used.1 >= daily.limit {
                return Err(ApiError::DailyLimit {
                    what: format!(
                        "{what} (rollcall's own count of the daily pool of {})",
                        daily.limit
                    ),
                    until: next_utc_midnight(Utc::now()),
                });
            }
            used.1 += 1;
        }
        Ok(())
    }
}

/// Zoom's daily pool resets at 00:00 UTC. A pause may reach this far past it, for clock skew between Zoom
/// and us; never further, whatever a server says.
pub fn daily_reset_margin() -> ChronoDuration {
    ChronoDuration::minutes(5)
}

/// A `Retry-After` in the past (a skewed clock on either side) means the server believes the reset has
/// come: pausing this long lets it settle without giving up a day of collection.
fn past_retry_pause() -> ChronoDuration {
    ChronoDuration::minutes(1)
}

pub fn next_utc_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    (now.date_naive() + ChronoDuration::days(1))
        .and_time(NaiveTime::MIN)
        .and_utc()
}

/// The latest a daily-limit pause begun at `now` may last.
pub fn latest_daily_pause(now: DateTime<Utc>) -> DateTime<Utc> {
    next_utc_midnight(now) + daily_reset_margin()
}

/// The end of a daily-limit pause, from the 429's `Retry-After` (if any) and the time it arrived: without
/// one, the next 00:00 UTC; a past one, a minute from now; a future one as asked, but never past the next
/// 00:00 UTC plus [`daily_reset_margin`], so no reply can wedge an account for longer than a day.
pub fn daily_pause_until(asked: Option<DateTime<Utc>>, now: DateTime<Utc>) -> DateTime<Utc> {
    let latest = latest_daily_pause(now);
    match asked {
        None => next_utc_midnight(now),
        Some(at) if at <= now => now + past_retry_pause(),
        Some(at) => at.min(latest),
    }
}

#[cfg(test)]
mod tests {

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

    use super::*;

    #[tokio::test]
    async fn the_daily_pool_stops_requests_once_spent() {
        let pacer = ZoomPacer::new(ResolvedLimits {
            heavy_per_second: 0,
            resource_intensive_per_minute: 0,
            daily_requests: 2,
        });
        let cancel = CancellationToken::new();
        assert!(pacer.acquire(Category::Heavy, "t", &cancel).await.is_ok());
        assert!(pacer
            .acquire(Category::ResourceIntensive, "t", &cancel)
            .await
            .is_ok());
        assert!(matches!(
            pacer.acquire(Category::Heavy, "t", &cancel).await,
            Err(ApiError::DailyLimit { .. })
        ));
    }

    #[test]
    fn daily_pauses_end_by_the_next_reset_plus_the_margin() {
        let at = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .unwrap()
        };
        let now = at("2026-03-10T17:30:00Z");
        let midnight = at("2026-03-11T00:00:00Z");
        assert_eq!(daily_pause_until(None, now), midnight);
        assert_eq!(
            daily_pause_until(Some(at("2027-03-10T00:00:00Z")), now),
            at("2026-03-11T00:05:00Z"),
            "a year ahead is cut to the reset plus the margin"
        );
        assert_eq!(
            daily_pause_until(Some(at("2026-03-11T00:03:00Z")), now),
            at("2026-03-11T00:03:00Z"),
            "inside the margin, as asked"
        );
        assert_eq!(
            daily_pause_until(Some(at("2026-03-10T18:00:00Z")), now),
            at("2026-03-10T18:00:00Z"),
            "a shorter pause is kept"
        );
        assert_eq!(
            daily_pause_until(Some(at("2026-03-09T00:00:00Z")), now),
            at("2026-03-10T17:31:00Z"),
            "a past Retry-After pauses a minute"
        );
        let late = at("2026-03-10T23:59:59Z");
        assert_eq!(
            daily_pause_until(Some(at("2026-12-31T00:00:00Z")), late),
            at("2026-03-11T00:05:00Z")
        );
    }

    #[test]
    fn zero_means_no_limit() {
        assert!(steady_limiter(0, Duration::from_secs(1)).is_none());
        assert!(steady_limiter(10, Duration::from_secs(60)).is_some());
    }
}

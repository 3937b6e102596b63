//! Zoom's limits on one account (research/zoom-api.md §4): a pacer per rate category, the daily pool the
//! categories share, and when a daily-limit pause ends.

use crate::config::ResolvedLimits;
use crate::http::pacing::{steady_limiter, Paced};
use crate::http::ApiError;
use crate::store::request_counts::RequestLedger;
use chrono::{DateTime, Duration as ChronoDuration, NaiveDate, NaiveTime, Utc};
use std::sync::Mutex;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

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

/// The pacing of one Zoom account: a limiter per category and the daily pool they share.
pub struct ZoomPacer {
    heavy: Option<Paced>,
    resource_intensive: Option<Paced>,
    daily: Option<DailyBudget>,
}

struct DailyBudget {
    limit: u32,
    used: Mutex<(NaiveDate, u32)>,
}

impl DailyBudget {
    /// Counts one request against the pool, or refuses it once the pool is spent (the account is then
    /// treated as daily-limited until 00:00 UTC without sending anything).
    async fn spend(
        &self,
        account: &str,
        ledger: Option<&RequestLedger>,
        what: &str,
    ) -> Result<(), ApiError> {
        let today = Utc::now().date_naive();
        // The request about to go is counted by the ledger when it is sent, so it is not in `shared` yet.
        let shared = match ledger {
            Some(ledger) => ledger.used_today(account).await.ok(),
            None => None,
        };
        let mut used = self
            .used
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if used.0 != today {
            *used = (today, 0);
        }
        // A database that cannot be read falls back to this process's own count, never to no limit.
        let spent = shared.map_or(u64::from(used.1), |n| n.max(0) as u64);
        if spent >= u64::from(self.limit) {
            return Err(ApiError::DailyLimit {
                what: format!(
                    "{what} (rollcall's own count of the daily pool of {})",
                    self.limit
                ),
                until: next_utc_midnight(Utc::now()),
            });
        }
        used.1 += 1;
        Ok(())
    }
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
    /// With a `ledger`, the pool is the account's requests today by every replica (read from PostgreSQL
    /// when this process took the account); without one, this process's own count.
    pub async fn acquire(
        &self,
        category: Category,
        what: &str,
        account: &str,
        ledger: Option<&RequestLedger>,
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
            daily.spend(account, ledger, what).await?;
        }
        Ok(())
    }
}

/// What [`ZoomPacer`] paces an account with `limits` to in the categories its streams send in, for the
/// engine's account leases and `status`.
pub fn rate_budget(
    limits: ResolvedLimits,
    categories: &[Category],
) -> crate::sources::build::RateBudget {
    let rate = |category: &Category| match category {
        Category::Heavy => (
            category.as_str(),
            limits.heavy_per_second,
            Duration::from_secs(1),
        ),
        Category::ResourceIntensive => (
            category.as_str(),
            limits.resource_intensive_per_minute,
            Duration::from_secs(60),
        ),
    };
    crate::sources::build::RateBudget {
        rates: categories.iter().map(rate).collect(),
        daily_requests: (limits.daily_requests > 0).then_some(limits.daily_requests),
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
    use super::*;

    #[tokio::test]
    async fn the_daily_pool_stops_requests_once_spent() {
        let pacer = ZoomPacer::new(ResolvedLimits {
            heavy_per_second: 0,
            resource_intensive_per_minute: 0,
            daily_requests: 2,
        });
        let cancel = CancellationToken::new();
        assert!(pacer
            .acquire(Category::Heavy, "t", "a", None, &cancel)
            .await
            .is_ok());
        assert!(pacer
            .acquire(Category::ResourceIntensive, "t", "a", None, &cancel)
            .await
            .is_ok());
        assert!(matches!(
            pacer
                .acquire(Category::Heavy, "t", "a", None, &cancel)
                .await,
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
}

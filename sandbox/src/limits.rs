//! Zoom's per-account rate limits (research/zoom-api.md §4, DESIGN §7), enforced for the accounts whose spec
//! asks for them, so a client's pacing can be checked against a server that refuses what Zoom would refuse.
//!
//! Per account and category: Heavy (`/report/users`, `/report/daily`, `/videosdk/sessions/{id}/users`,
//! `/videosdk/report/daily`) at most N requests in any one-second window, Resource-intensive
//! (`/videosdk/sessions`) at most M in any sixty-second window, and one daily pool shared by both that
//! resets at 00:00 UTC. Only requests the real handler answers are
//! counted: refused ones (429s) and faults do not use up anything, so a scripted fault never shifts the
//! limits a test expects.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Days, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use crate::lock;
use crate::reply::Reply;
use crate::requests::Endpoint;
use crate::zoom::errors;

/// The plan sets the defaults: Pro, or Business and above (Business, Education, Enterprise, Partners).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZoomPlan {
    #[default]
    Pro,
    Business,
}

/// An account's limits: the plan's, with any of them replaced. `0` turns that limit off.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoomRateLimits {
    #[serde(default)]
    pub plan: ZoomPlan,
    /// Heavy requests in any one-second window (Pro 10, Business 40).
    #[serde(default)]
    pub heavy_per_second: Option<u32>,
    /// Resource-intensive requests in any sixty-second window (Pro 10, Business 20).
    #[serde(default)]
    pub resource_intensive_per_minute: Option<u32>,
    /// Heavy + Resource-intensive requests per UTC day (Pro 30,000, Business 60,000).
    #[serde(default)]
    pub daily_requests: Option<u32>,
}

impl ZoomRateLimits {
    /// The plan's limits, unchanged.
    pub fn plan(plan: ZoomPlan) -> Self {
        Self {
            plan,
            ..Self::default()
        }
    }

    /// (Heavy per second, Resource-intensive per minute, daily pool).
    fn resolve(&self) -> (u32, u32, u32) {
        let (heavy, ri, daily) = match self.plan {
            ZoomPlan::Pro => (10, 10, 30_000),
            ZoomPlan::Business => (40, 20, 60_000),
        };
        (
            self.heavy_per_second.unwrap_or(heavy),
            self.resource_intensive_per_minute.unwrap_or(ri),
            self.daily_requests.unwrap_or(daily),
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Category {
    Heavy,
    ResourceIntensive,
}

impl Category {
    /// The rate category Zoom counts `endpoint` in; `None` for what Zoom does not limit this way.
    pub fn of(endpoint: Endpoint) -> Option<Self> {
        match endpoint {
            Endpoint::ReportUsers
            | Endpoint::SdkSessionUsers
            | Endpoint::ReportDaily
            | Endpoint::SdkReportDaily => Some(Category::Heavy),
            Endpoint::SdkSessions => Some(Category::ResourceIntensive),
            Endpoint::OauthToken | Endpoint::RcActiveUsers => None,
        }
    }

    /// The value of `X-RateLimit-Category`.
    fn header(self) -> &'static str {
        match self {
            Category::Heavy => "Heavy",
            Category::ResourceIntensive => "Resource-intensive",
        }
    }

    fn window(self) -> Duration {
        match self {
            Category::Heavy => Duration::from_secs(1),
            Category::ResourceIntensive => Duration::from_secs(60),
        }
    }
}

/// The counters of one account.
pub(crate) struct AccountLimiter {
    heavy_per_second: u32,
    resource_intensive_per_minute: u32,
    daily_requests: u32,
    state: Mutex<Counters>,
}

struct Counters {
    /// When the admitted requests of the last window were answered, oldest first.
    heavy: VecDeque<Instant>,
    resource_intensive: VecDeque<Instant>,
    /// The UTC day `used` counts, so the pool resets at 00:00 UTC.
    day: NaiveDate,
    used: u32,
}

impl AccountLimiter {
    pub fn new(limits: &ZoomRateLimits) -> Self {
        let (heavy, ri, daily) = limits.resolve();
        Self {
            heavy_per_second: heavy,
            resource_intensive_per_minute: ri,
            daily_requests: daily,
            state: Mutex::new(Counters {
                heavy: VecDeque::new(),
                resource_intensive: VecDeque::new(),
                day: Utc::now().date_naive(),
                used: 0,
            }),
        }
    }

    /// Counts one request of `category` and returns `None`, or returns the 429 Zoom sends instead (which
    /// counts nothing).
    pub fn count_or_refuse(&self, category: Category) -> Option<Reply> {
        self.count_or_refuse_at(category, Instant::now(), Utc::now())
    }

    fn count_or_refuse_at(
        &self,
        category: Category,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Option<Reply> {
        let mut counters = lock(&self.state);
        let today = wall.date_naive();
        if counters.day != today {
            counters.day = today;
            counters.used = 0;
        }
        // A spent pool answers Daily-limit whatever the per-second window says, as Zoom does: the client
        // must learn that waiting a second will not help.
        if self.daily_requests > 0 && counters.used >= self.daily_requests {
            let reset = today
                .checked_add_days(Days::new(1))
                .unwrap_or(today)
                .and_time(NaiveTime::MIN)
                .and_utc();
            return Some(errors::daily_limited(
                category.header(),
                self.daily_requests,
                reset,
            ));
        }
        let limit = match category {
            Category::Heavy => self.heavy_per_second,
            Category::ResourceIntensive => self.resource_intensive_per_minute,
        };
        if limit > 0 {
            let window = category.window();
            let times = match category {
                Category::Heavy => &mut counters.heavy,
                Category::ResourceIntensive => &mut counters.resource_intensive,
            };
            // A request exactly one window older no longer counts: the window is half-open, so a client
            // spacing its requests exactly 1/N apart is never refused.
            while times
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= window)
            {
                times.pop_front();
            }
            if times.len() >= limit as usize {
                return Some(errors::qps_limited(category.header(), limit));
            }
            times.push_back(now);
        }
        counters.used = counters.used.saturating_add(1);
        None
    }
}

/// The limiters of every account that has `rate_limits`, indexed like the sandbox's account lists.
pub(crate) struct RateLimiters {
    zoom: Vec<Option<AccountLimiter>>,
    videosdk: Vec<Option<AccountLimiter>>,
}

impl RateLimiters {
    pub fn new(
        zoom: &[crate::config::ZoomAccountSpec],
        videosdk: &[crate::videosdk::VideoSdkAccountSpec],
    ) -> Self {
        Self {
            zoom: zoom
                .iter()
                .map(|s| s.rate_limits.as_ref().map(AccountLimiter::new))
                .collect(),
            videosdk: videosdk
                .iter()
                .map(|s| s.rate_limits.as_ref().map(AccountLimiter::new))
                .collect(),
        }
    }

    /// `account` indexes the Zoom accounts for the report and the Video SDK accounts for `/videosdk/*`;
    /// `None` (no valid credential) is never counted: Zoom cannot tell whose it is either.
    pub fn count_or_refuse(&self, endpoint: Endpoint, account: Option<usize>) -> Option<Reply> {
        let (Some(category), Some(account)) = (Category::of(endpoint), account) else {
            return None;
        };
        let accounts = match endpoint {
            Endpoint::ReportUsers | Endpoint::ReportDaily => &self.zoom,
            _ => &self.videosdk,
        };
        match accounts.get(account) {
            Some(Some(limiter)) => limiter.count_or_refuse(category),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn header(reply: &Reply, name: &str) -> String {
        reply
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn the_window_is_sliding_and_half_open() {
        let limiter = AccountLimiter::new(&ZoomRateLimits {
            heavy_per_second: Some(3),
            ..ZoomRateLimits::default()
        });
        let t0 = Instant::now();
        let wall = Utc::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        for ms in [0, 400, 800] {
            assert!(limiter
                .count_or_refuse_at(Category::Heavy, at(ms), wall)
                .is_none());
        }
        let refused = limiter
            .count_or_refuse_at(Category::Heavy, at(999), wall)
            .unwrap();
        assert_eq!(refused.status.as_u16(), 429);
        assert_eq!(header(&refused, "x-ratelimit-type"), "QPS");
        assert_eq!(header(&refused, "x-ratelimit-limit"), "3");
        // The request at 0 leaves the window at exactly 1000 ms; the refused one at 999 counted nothing.
        assert!(limiter
            .count_or_refuse_at(Category::Heavy, at(1000), wall)
            .is_none());
        assert!(limiter
            .count_or_refuse_at(Category::Heavy, at(1001), wall)
            .is_some());
        // Resource-intensive is counted apart from Heavy.
        assert!(limiter
            .count_or_refuse_at(Category::ResourceIntensive, at(1001), wall)
            .is_none());
    }

    #[test]
    fn the_daily_pool_is_shared_and_resets_at_midnight_utc() {
        let limiter = AccountLimiter::new(&ZoomRateLimits {
            heavy_per_second: Some(0),
            resource_intensive_per_minute: Some(0),
            daily_requests: Some(2),
            ..ZoomRateLimits::default()
        });
        let now = Instant::now();
        let day = Utc.with_ymd_and_hms(2024, 5, 30, 23, 59, 0).unwrap();
        assert!(limiter
            .count_or_refuse_at(Category::Heavy, now, day)
            .is_none());
        assert!(limiter
            .count_or_refuse_at(Category::ResourceIntensive, now, day)
            .is_none());
        let refused = limiter
            .count_or_refuse_at(Category::Heavy, now, day)
            .unwrap();
        assert_eq!(header(&refused, "x-ratelimit-type"), "Daily-limit");
        assert_eq!(header(&refused, "retry-after"), "2024-05-31T00:00:00Z");
        let next = Utc.with_ymd_and_hms(2024, 5, 31, 0, 0, 1).unwrap();
        assert!(limiter
            .count_or_refuse_at(Category::Heavy, now, next)
            .is_none());
    }

    #[test]
    fn plans_and_overrides_resolve() {
        assert_eq!(ZoomRateLimits::default().resolve(), (10, 10, 30_000));
        assert_eq!(
            ZoomRateLimits::plan(ZoomPlan::Business).resolve(),
            (40, 20, 60_000)
        );
        let limits: ZoomRateLimits =
            toml::from_str("plan = \"business\"\nheavy_per_second = 20").unwrap();
        assert_eq!(limits.resolve(), (20, 20, 60_000));
        assert!(toml::from_str::<ZoomRateLimits>("plan = \"gold\"").is_err());
    }
}

//! Zoom Video SDK: past sessions per calendar month and, for every ended session, its users.
//!
//! Two streams. `zoom_sdk_sessions` walks the session list of a month; each list page upserts its
//! sessions and, in the same transaction, plans one `zoom_sdk_session_users` window per ended session
//! (scope = session id, the month's bounds). A crash can therefore never leave a stored session without
//! its pending child. A month is complete when its list window and every child window are complete (or
//! unreachable: Zoom no longer has that session, see `SdkSessionUsers::unreachable`)
//! (view `rollcall.zoom_sdk_months`); until then `collect` exits 1, because the children are due windows
//! of their own stream and are counted with the list's.

pub mod jwt;
pub mod mirror;
pub mod path;
pub mod session_users;
pub mod sessions;

use super::client::{ZoomAuth, ZoomClient};
use super::daily_usage::{DailyUsage, Report};
use super::months::MonthWindows;
use super::pacing::{Category, ZoomPacer};
use crate::config::VideoSdkAccount;
use crate::engine::BuiltSource;
use crate::http::{ApiError, HttpClient, RetryPolicy};
use crate::sources::build::{BuildContext, SourceConfig, Verdict};
use chrono::{DateTime, NaiveDate, Utc};
use jwt::{JwtAuth, JwtCredentials};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The client of `videosdk[index]`: JWT auth and the account's own pacer.
pub fn client(
    index: usize,
    account: &VideoSdkAccount,
    http: &HttpClient,
    retry: RetryPolicy,
) -> Arc<ZoomClient> {
    let auth = JwtAuth::new(JwtCredentials {
        api_key: account.api_key.clone(),
        api_secret: account.api_secret.clone(),
        config_keys: format!("videosdk[{index}].api_key and videosdk[{index}].api_secret"),
        account_name: account.name.clone(),
    });
    Arc::new(ZoomClient::new(
        account.name.clone(),
        account.api_url.clone(),
        http.clone(),
        ZoomAuth::Jwt(auth),
        ZoomPacer::new(account.limits.resolve(account.plan)),
        retry,
    ))
}

/// A JWT is only judged by the API, so one request proves it. The smallest one that needs the credentials:
/// today's past sessions, one per page. Nothing is written.
async fn verify(client: &ZoomClient) -> Result<(), ApiError> {
    let today = crate::clock::now().date_naive().to_string();
    let query = [
        ("type", "past"),
        ("from", today.as_str()),
        ("to", today.as_str()),
        ("page_size", "1"),
    ];
    client
        .get_json::<Value>(
            "/videosdk/sessions",
            &query,
            Category::ResourceIntensive,
            &CancellationToken::new(),
        )
        .await
        .map(|_| ())
}

impl SourceConfig for VideoSdkAccount {
    fn name(&self) -> &str {
        &self.name
    }

    fn rate_budget(&self) -> crate::sources::build::RateBudget {
        // The session lists are Resource-intensive; users and daily usage Heavy.
        crate::sources::zoom::pacing::rate_budget(
            self.limits.resolve(self.plan),
            &[Category::Heavy, Category::ResourceIntensive],
        )
    }

    fn section(&self) -> &'static str {
        "videosdk"
    }

    fn chosen_streams(&self) -> Option<&[String]> {
        self.streams.as_deref()
    }

    fn covered_stream(&self) -> &'static str {
        sessions::STREAM
    }

    fn other_covered_streams(&self) -> &'static [&'static str] {
        &[super::daily_usage::SDK_STREAM]
    }

    /// Without retries: the one request is the whole check, and its first answer is the verdict.
    fn verify<'a>(&'a self, index: usize, http: &'a HttpClient, _: RetryPolicy) -> Verdict<'a> {
        Box::pin(async move {
            let client = client(index, self, http, RetryPolicy::new(0, Duration::ZERO));
            super::build::credentials_verdict(verify(&client).await)
        })
    }

    /// The daily usage report, the session list and the session users, sharing one client (one JWT
    /// cache, one pacer).
    fn build(&self, index: usize, cx: &BuildContext<'_>) -> Vec<BuiltSource> {
        let client = client(index, self, cx.http, cx.retry);
        let months = MonthWindows::for_run(cx, self.settle_days, self.horizon_days);
        let daily = DailyUsage {
            client: client.clone(),
            report: Report::VideoSdk,
            account: self.name.clone(),
            months: months.clone(),
        };
        let list = sessions::SdkSessions {
            client: client.clone(),
            account: self.name.clone(),
            page_size: self.page_size,
            months: months.clone(),
            run: cx.run.clone(),
        };
        let users = session_users::SdkSessionUsers {
            client,
            account: self.name.clone(),
            page_size: self.page_size,
            // The users walk no months of their own: no backfill bounds, the list's horizon and finality.
            months: MonthWindows {
                from: None,
                to: None,
                ..months
            },
            run: cx.run.clone(),
        };
        let built = vec![
            BuiltSource::new(Arc::new(daily)),
            // A month is complete only with its children, so they count with the list either way.
            BuiltSource::new(Arc::new(list)).counts_with(session_users::STREAM),
            BuiltSource::new(Arc::new(users)).after(sessions::STREAM),
        ];
        crate::sources::build::chosen(self, built)
    }

    fn backfill_streams(&self) -> &'static [&'static str] {
        &[sessions::STREAM, super::daily_usage::SDK_STREAM]
    }

    fn backfill_refusal(&self, from: NaiveDate, now: DateTime<Utc>) -> Option<String> {
        super::months::horizon_refusal("videosdk account", &self.name, self.horizon_days, from, now)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Plan, ZoomLimits};
    use crate::sources::zoom::pacing::{Category, ZoomPacer};
    use std::time::{Duration, Instant};
    use tokio_util::sync::CancellationToken;

    /// The list is Resource-intensive: a Pro account's pacer lets 10 a minute through, one every 6 s, so a
    /// normal run cannot draw a 429 from `/videosdk/sessions`. Shown at 600 a minute to stay fast.
    #[tokio::test]
    async fn the_session_list_is_paced_per_minute() {
        assert_eq!(
            ZoomLimits::default()
                .resolve(Plan::Pro)
                .resource_intensive_per_minute,
            10
        );
        let limits = ZoomLimits {
            resource_intensive_per_minute: Some(600),
            heavy_per_second: Some(0),
            daily_requests: Some(0),
        };
        let pacer = ZoomPacer::new(limits.resolve(Plan::Pro));
        let cancel = CancellationToken::new();
        let started = Instant::now();
        for _ in 0..4 {
            pacer
                .acquire(Category::ResourceIntensive, "t", "a", None, &cancel)
                .await
                .unwrap();
        }
        assert!(
            started.elapsed() >= Duration::from_millis(290),
            "{:?}",
            started.elapsed()
        );
    }
}

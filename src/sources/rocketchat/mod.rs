//! Rocket.Chat: daily active users from the engagement dashboard, kept beyond the ~45 days the server
//! remembers (research/rocketchat-api.md).

pub mod active_users;
pub mod client;
pub mod days;

use crate::config::RocketChatWorkspace;
use crate::engine::BuiltSource;
use crate::http::{HttpClient, RetryPolicy};
use crate::sources::build::{BuildContext, SourceConfig, Verdict};
use active_users::ActiveUsers;
use chrono::{DateTime, NaiveDate, Utc};
use client::{ClientSettings, RocketChatClient};
use std::sync::Arc;

/// The client of `rocketchat[index]`, with its own pacing.
pub fn client(
    index: usize,
    workspace: &RocketChatWorkspace,
    http: &HttpClient,
    retry: RetryPolicy,
) -> Arc<RocketChatClient> {
    let settings = ClientSettings {
        workspace: workspace.name.clone(),
        index,
        url: workspace.url.clone(),
        user_id: workspace.user_id.clone(),
        auth_token: workspace.auth_token.clone(),
        requests_per_minute: workspace.requests_per_minute,
        retry,
    };
    Arc::new(RocketChatClient::new(settings, http.clone()))
}

impl SourceConfig for RocketChatWorkspace {
    fn name(&self) -> &str {
        &self.name
    }

    fn rate_budget(&self) -> crate::sources::build::RateBudget {
        client::rate_budget(self.requests_per_minute)
    }

    fn section(&self) -> &'static str {
        "rocketchat"
    }

    fn chosen_streams(&self) -> Option<&[String]> {
        self.streams.as_deref()
    }

    fn covered_stream(&self) -> &'static str {
        active_users::STREAM
    }

    /// The server buckets days in its own zone (`timezone`).
    fn today(&self, now: DateTime<Utc>) -> NaiveDate {
        now.with_timezone(&self.timezone).date_naive()
    }

    fn verify<'a>(&'a self, index: usize, http: &'a HttpClient, retry: RetryPolicy) -> Verdict<'a> {
        Box::pin(async move {
            let users = verify(&client(index, self, http, retry), self.timezone).await;
            users.map_err(|err| err.to_string()).map(|users| {
                format!(
                    "credentials, permission and license accepted ({users} active users yesterday)"
                )
            })
        })
    }

    fn build(&self, index: usize, cx: &BuildContext<'_>) -> Vec<BuiltSource> {
        let client = client(index, self, cx.http, cx.retry);
        let source = ActiveUsers::new(client, self, cx.run, cx.from, cx.to);
        crate::sources::build::chosen(self, vec![BuiltSource::new(Arc::new(source))])
    }

    fn backfill_streams(&self) -> &'static [&'static str] {
        &[active_users::STREAM]
    }

    fn backfill_refusal(&self, from: NaiveDate, now: DateTime<Utc>) -> Option<String> {
        let today = self.today(now);
        let oldest = today - chrono::Duration::days(i64::from(self.retention_days));
        (from < oldest).then(|| {
            format!(
                "rocketchat workspace \"{}\": --from {from} is before {oldest}, the oldest day the server still holds (retention_days = {}); those days are not requested",
                self.name, self.retention_days,
            )
        })
    }
}

/// What the check asks: yesterday's active users, which proves the credentials, the
/// `view-engagement-dashboard` permission and the license in one call. Returns yesterday's count.
async fn verify(
    client: &RocketChatClient,
    timezone: chrono_tz::Tz,
) -> Result<usize, crate::http::ApiError> {
    let yesterday =
        crate::clock::now().with_timezone(&timezone).date_naive() - chrono::Duration::days(1);
    let (start, end) = days::request_bounds(yesterday, yesterday, timezone);
    let body = client
        .active_users(&start, &end, &tokio_util::sync::CancellationToken::new())
        .await?;
    let days = body.get("month").and_then(serde_json::Value::as_array);
    match (body.get("success"), days) {
        (Some(serde_json::Value::Bool(true)), Some(days)) => Ok(days
            .iter()
            .filter_map(|d| d.get("usersList").and_then(serde_json::Value::as_array))
            .map(Vec::len)
            .sum()),
        _ => Err(crate::http::ApiError::Malformed {
            what: format!(
                "rocketchat workspace \"{}\": GET {}",
                client.workspace,
                client::ACTIVE_USERS_PATH
            ),
            message: "the answer has no success: true and month array".into(),
        }),
    }
}

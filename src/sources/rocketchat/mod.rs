//! Rocket.Chat: daily active users from the engagement dashboard, kept beyond the ~45 days the server
//! remembers (research/rocketchat-api.md).

pub mod active_users;
pub mod client;
pub mod days;

use crate::config::Config;
use crate::http::RetryPolicy;
use client::{ClientSettings, RocketChatClient};
use std::sync::Arc;
use std::time::Duration;

/// One client per `[[rocketchat]]` workspace, with its config index (for errors naming its keys).
pub fn clients(
    config: &Config,
    http: &crate::http::HttpClient,
) -> Vec<(usize, Arc<RocketChatClient>)> {
    let retry = RetryPolicy::new(
        config.collector.max_retries,
        Duration::from_millis(config.collector.retry_base_ms),
    );
    config
        .rocketchat
        .iter()
        .enumerate()
        .map(|(index, ws)| {
            let settings = ClientSettings {
                workspace: ws.name.clone(),
                index,
                url: ws.url.clone(),
                user_id: ws.user_id.clone(),
                auth_token: ws.auth_token.clone(),
                requests_per_minute: ws.requests_per_minute,
                retry,
            };
            (
                index,
                Arc::new(RocketChatClient::new(settings, http.clone())),
            )
        })
        .collect()
}

/// What `rollcall check` asks: yesterday's active users, which proves the credentials, the
/// `view-engagement-dashboard` permission and the license in one call. Returns yesterday's count.
pub async fn verify(
    client: &RocketChatClient,
    timezone: chrono_tz::Tz,
) -> Result<usize, crate::http::ApiError> {
    let yesterday =
        chrono::Utc::now().with_timezone(&timezone).date_naive() - chrono::Duration::days(1);
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

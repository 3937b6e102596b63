//! A Rocket.Chat REST client for one workspace: `X-User-Id` + `X-Auth-Token` headers, pacing below the
//! per-route limit (steady, and from `X-RateLimit-Remaining`/`-Reset`), retries of transient failures, and
//! Rocket.Chat's error bodies mapped onto [`ApiError`] (research/rocketchat-api.md §2-3).

use crate::http::pacing::steady_limiter;
use crate::http::{
    header, status_error, with_retries, ApiError, ErrorBody, HttpClient, Meter, RetryPolicy,
};
use chrono::{DateTime, TimeZone, Utc};
use governor::DefaultDirectRateLimiter;
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::sync::Mutex;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Rocket.Chat's default: 10 calls per 60 s per route (and client IP).
pub const DEFAULT_REQUESTS_PER_MINUTE: u32 = 10;

/// The server's limiter counts in 60-second intervals, so no announced reset is further away than this;
/// a larger value is a clock problem and is not waited for.
const MAX_RESET_WAIT: Duration = Duration::from_secs(65);

/// The rate category Rocket.Chat's requests count in (`rollcall_requests_total`, `status`).
pub const CATEGORY: &str = "rocketchat";

/// What the client paces a workspace to: `requests_per_minute` (the server's default when unset); no
/// daily pool.
pub fn rate_budget(requests_per_minute: Option<u32>) -> crate::sources::build::RateBudget {
    crate::sources::build::RateBudget {
        rates: vec![(
            CATEGORY,
            requests_per_minute.unwrap_or(DEFAULT_REQUESTS_PER_MINUTE),
            Duration::from_secs(60),
        )],
        daily_requests: None,
    }
}

pub const ACTIVE_USERS_PATH: &str = "/api/v1/engagement-dashboard/users/active-users";

pub struct RocketChatClient {
    pub workspace: String,
    /// `rocketchat[i]`, for errors that name the keys to fix.
    config_key: String,
    url: String,
    user_id: String,
    auth_token: SecretString,
    http: HttpClient,
    limiter: Option<DefaultDirectRateLimiter>,
    retry: RetryPolicy,
    /// Set when the server said no calls are left until its reset (epoch ms).
    blocked_until: Mutex<Option<DateTime<Utc>>>,
}

pub struct ClientSettings {
    pub workspace: String,
    pub index: usize,
    pub url: String,
    pub user_id: String,
    pub auth_token: SecretString,
    /// `None`: the server's default; 0: no pacing.
    pub requests_per_minute: Option<u32>,
    pub retry: RetryPolicy,
}

impl RocketChatClient {
    pub fn new(settings: ClientSettings, http: HttpClient) -> RocketChatClient {
        let per_minute = settings
            .requests_per_minute
            .unwrap_or(DEFAULT_REQUESTS_PER_MINUTE);
        RocketChatClient {
            workspace: settings.workspace,
            config_key: format!("rocketchat[{}]", settings.index),
            url: settings.url.trim_end_matches('/').to_string(),
            user_id: settings.user_id,
            auth_token: settings.auth_token,
            http,
            limiter: steady_limiter(per_minute, Duration::from_secs(60)),
            retry: settings.retry,
            blocked_until: Mutex::new(None),
        }
    }

    /// GETs the active users between two instants (already in `toISOString` form) and returns the parsed
    /// JSON body, whatever its shape: the caller validates it.
    pub async fn active_users(
        &self,
        start: &str,
        end: &str,
        cancel: &CancellationToken,
    ) -> Result<Value, ApiError> {
        let what = format!(
            "rocketchat workspace \"{}\": GET {ACTIVE_USERS_PATH} {start}..{end}",
            self.workspace
        );
        let url = format!("{}{ACTIVE_USERS_PATH}", self.url);
        let query = [("start", start), ("end", end)];
        with_retries(self.retry, cancel, || {
            self.attempt(&url, &query, &what, cancel)
        })
        .await
    }

    async fn attempt(
        &self,
        url: &str,
        query: &[(&str, &str)],
        what: &str,
        cancel: &CancellationToken,
    ) -> Result<Value, ApiError> {
        self.pace(cancel).await?;
        let request = self
            .http
            .get(url)
            .query(query)
            .header("X-User-Id", &self.user_id)
            .header("X-Auth-Token", self.auth_token.expose_secret());
        let meter = Meter {
            account: &self.workspace,
            category: CATEGORY,
        };
        let reply = self.http.send(request, what, Some(meter)).await?;
        self.note_limit(&reply.headers);
        if reply.is_success() {
            return reply.json(what).and_then(|body| {
                with_month_list(body).map_err(|message| ApiError::Malformed {
                    what: what.to_string(),
                    message,
                })
            });
        }
        Err(classify(
            what,
            &self.config_key,
            reply.status,
            &reply.headers,
            &reply.error_body(),
            &reply.body,
        ))
    }

    /// Waits out an exhausted server-side budget, then for the steady limiter's next slot.
    async fn pace(&self, cancel: &CancellationToken) -> Result<(), ApiError> {
        let blocked = *self
            .blocked_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(wait) = blocked.and_then(|until| (until - Utc::now()).to_std().ok()) {
            tracing::debug!(
                workspace = %self.workspace,
                wait_ms = wait.as_millis() as u64,
                "no calls left on the route until the server's reset; waiting"
            );
            tokio::select! {
                _ = cancel.cancelled() => return Err(ApiError::Cancelled),
                _ = tokio::time::sleep(wait.min(MAX_RESET_WAIT)) => {}
            }
        }
        if let Some(limiter) = &self.limiter {
            tokio::select! {
                _ = cancel.cancelled() => return Err(ApiError::Cancelled),
                _ = limiter.until_ready() => {}
            }
        }
        Ok(())
    }

    /// Remembers the reset when the server says no calls are left, so the next call waits for it instead
    /// of drawing a 429.
    fn note_limit(&self, headers: &HeaderMap) {
        let remaining =
            header(headers, "x-ratelimit-remaining").and_then(|v| v.parse::<u64>().ok());
        let until = match remaining {
            Some(0) => reset_at(headers),
            _ => None,
        };
        *self
            .blocked_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = until;
    }
}

/// A 200 whose `month` is missing, `null` or not an array proves nothing about the days asked for: it is
/// a malformed page (retried, then the window fails), never a window in which nobody was active.
fn with_month_list(body: Value) -> Result<Value, String> {
    match body.get("month") {
        Some(Value::Array(_)) => Ok(body),
        None => Err("the month list is missing".into()),
        Some(other) => Err(format!(
            "the month list is {}, not an array",
            crate::sources::zoom::fields::json_kind(other)
        )),
    }
}

fn classify(
    what: &str,
    config_key: &str,
    status: u16,
    headers: &HeaderMap,
    error: &ErrorBody,
    body: &[u8],
) -> ApiError {
    let message = error.message(body);
    let error_type = error.error_type.clone().unwrap_or_default();
    let what = what.to_string();
    match status {
        401 => ApiError::AuthRejected {
            what,
            key: format!("{config_key}.user_id and {config_key}.auth_token"),
            message: format!("HTTP 401: {message}"),
        },
        403 => ApiError::Rejected {
            what,
            message: format!(
                "HTTP 403: {message}; the user of {config_key}.user_id needs the view-engagement-dashboard permission"
            ),
        },
        400 if error_type == "error-action-not-allowed"
            || message.contains("error-action-not-allowed")
            || message.contains("enterprise feature") =>
        {
            ApiError::Rejected {
                what,
                message: format!(
                    "HTTP 400: {message}; the workspace lacks the engagement-dashboard license module (an Enterprise feature), so it has no active-users data to collect"
                ),
            }
        }
        400 if error_type == "error-invalid-params" || message.contains("Match error") => {
            ApiError::Rejected {
                what,
                message: format!(
                    "HTTP 400: {message}; the server refused rollcall's start/end (a rollcall bug: please report it)"
                ),
            }
        }
        404 => ApiError::Rejected {
            what,
            message: format!(
                "HTTP 404: {message}; check {config_key}.url (the server's base URL, without /api/v1) and that the engagement dashboard is enabled"
            ),
        },
        429 => ApiError::Status {
            what,
            status,
            code: None,
            message,
            retry_after: retry_after(headers, error, body),
        },
        // Rocket.Chat's codes are not numbers worth quoting: the message names the error.
        _ => status_error(&what, status, None, message),
    }
}

/// `X-RateLimit-Reset` is an epoch in milliseconds (not seconds) on Rocket.Chat.
fn reset_at(headers: &HeaderMap) -> Option<DateTime<Utc>> {
    let ms = header(headers, "x-ratelimit-reset")?.parse::<i64>().ok()?;
    Utc.timestamp_millis_opt(ms).single()
}

/// How long a 429 asks to wait: until `X-RateLimit-Reset`, else the "wait N seconds" of the body.
fn retry_after(headers: &HeaderMap, error: &ErrorBody, body: &[u8]) -> Option<Duration> {
    if let Some(at) = reset_at(headers) {
        return Some((at - Utc::now()).to_std().unwrap_or_default());
    }
    let text = error.message(body);
    let after = text.split("wait ").nth(1)?;
    let secs: u64 = after
        .split_whitespace()
        .next()?
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify_body(status: u16, headers: &HeaderMap, body: &str) -> ApiError {
        let body = body.as_bytes();
        classify(
            "t",
            "rocketchat[1]",
            status,
            headers,
            &ErrorBody::parse(body),
            body,
        )
    }

    #[test]
    fn each_refusal_names_what_to_fix() {
        let none = HeaderMap::new();
        let err = classify_body(
            401,
            &none,
            r#"{"success":false,"error":"You must be logged in to do this."}"#,
        );
        assert!(err.stops_account());
        assert!(err
            .to_string()
            .contains("rocketchat[1].user_id and rocketchat[1].auth_token"));
        let err = classify_body(
            403,
            &none,
            r#"{"success":false,"error":"User does not have the permissions required for this action [error-unauthorized]"}"#,
        );
        assert!(!err.is_transient() && err.to_string().contains("view-engagement-dashboard"));
        let err = classify_body(
            400,
            &none,
            r#"{"success":false,"error":"This is an enterprise feature [error-action-not-allowed]","errorType":"error-action-not-allowed"}"#,
        );
        assert!(!err.is_transient() && err.to_string().contains("license"));
        let err = classify_body(404, &none, "Not Found");
        assert!(err.to_string().contains("rocketchat[1].url"));
        let err = classify_body(
            400,
            &none,
            r#"{"success":false,"error":"Match error: Failed Match.Where validation in field start"}"#,
        );
        assert!(!err.is_transient() && err.to_string().contains("rollcall bug"));
        assert!(classify_body(502, &none, "<html>").is_transient());
    }

    #[test]
    fn error_texts_quoted_from_a_body_are_bounded() {
        let body = format!(r#"{{"success":false,"error":"{}"}}"#, "z".repeat(100_000));
        let text = classify_body(418, &HeaderMap::new(), &body).to_string();
        assert!(
            text.len() < crate::http::MAX_QUOTED_BYTES + 64,
            "{}",
            text.len()
        );
        assert!(text.ends_with('…'));
        let html = "<html>".repeat(10_000);
        let text = classify_body(502, &HeaderMap::new(), &html).to_string();
        assert!(
            text.len() < crate::http::MAX_QUOTED_BYTES + 64,
            "{}",
            text.len()
        );
    }

    #[test]
    fn a_429_waits_for_the_reset_in_ms_or_the_seconds_in_the_body() {
        let body = r#"{"success":false,"error":"Error, too many requests. Please slow down. You must wait 7 seconds before trying this endpoint again. [error-too-many-requests]"}"#;
        let err = classify_body(429, &HeaderMap::new(), body);
        assert!(err.is_transient());
        assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
        let mut headers = HeaderMap::new();
        let reset = Utc::now().timestamp_millis() + 3_000;
        headers.insert("x-ratelimit-reset", reset.to_string().parse().unwrap());
        let asked = classify_body(429, &headers, body).retry_after().unwrap();
        assert!(asked > Duration::from_millis(2_000) && asked <= Duration::from_millis(3_000));
    }
}

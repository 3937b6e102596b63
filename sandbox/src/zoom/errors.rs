//! Zoom-shaped error bodies (see research/zoom-api.md §1 "Errors", §3a, §4).

use axum::http::StatusCode;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use crate::reply::Reply;

pub(crate) fn zoom_error(status: StatusCode, code: u32, message: &str) -> Reply {
    Reply::json(status, &json!({ "code": code, "message": message }))
}

/// Zoom's validation failure: code 300 plus the offending field.
pub(crate) fn invalid_field(field: &str, message: &str) -> Reply {
    Reply::json(
        StatusCode::BAD_REQUEST,
        &json!({
            "code": 300,
            "message": "Invalid field.",
            "errors": [{ "field": field, "message": message }],
        }),
    )
}

pub(crate) fn bad_request(message: &str) -> Reply {
    zoom_error(StatusCode::BAD_REQUEST, 300, message)
}

pub(crate) fn invalid_access_token() -> Reply {
    zoom_error(StatusCode::UNAUTHORIZED, 124, "Invalid access token.")
}

pub(crate) fn expired_access_token() -> Reply {
    zoom_error(StatusCode::UNAUTHORIZED, 124, "Access token is expired.")
}

pub(crate) fn page_token_invalid() -> Reply {
    bad_request("The next page token is invalid or expired.")
}

pub(crate) fn outside_horizon() -> Reply {
    bad_request("Only provide report in recent 6 months")
}

pub(crate) fn server_error() -> Reply {
    zoom_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        500,
        "Internal server error",
    )
}

/// OAuth errors use a different shape from the REST API's.
pub(crate) fn oauth_error(status: StatusCode, error: &str, reason: &str) -> Reply {
    Reply::json(status, &json!({ "reason": reason, "error": error }))
}

pub(crate) fn rate_limit_qps(headers: bool) -> Reply {
    if headers {
        qps_limited("Heavy", 10)
    } else {
        qps_body()
    }
}

/// A per-second refusal that says when to come back, as Zoom's `Retry-After` does: an absolute time.
pub(crate) fn rate_limit_qps_until(at: DateTime<Utc>) -> Reply {
    qps_limited("Heavy", 10).with_header(
        "retry-after",
        &at.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

fn qps_body() -> Reply {
    zoom_error(
        StatusCode::TOO_MANY_REQUESTS,
        429,
        "You have reached the maximum per-second rate limit for this API. Try again later.",
    )
}

/// A per-window refusal with Zoom's headers. Zoom documents one body for the QPS type, so the per-minute
/// (Resource-intensive) window gets it too; the category header tells them apart.
pub(crate) fn qps_limited(category: &str, limit: u32) -> Reply {
    qps_body()
        .with_header("x-ratelimit-category", category)
        .with_header("x-ratelimit-type", "QPS")
        .with_header("x-ratelimit-limit", &limit.to_string())
        .with_header("x-ratelimit-remaining", "0")
}

pub(crate) fn rate_limit_daily(retry_after: Option<DateTime<Utc>>) -> Reply {
    daily_reply("Heavy", 30_000, retry_after)
}

/// The daily pool is spent until `reset` (00:00 UTC).
pub(crate) fn daily_limited(category: &str, limit: u32, reset: DateTime<Utc>) -> Reply {
    daily_reply(category, limit, Some(reset))
}

fn daily_reply(category: &str, limit: u32, retry_after: Option<DateTime<Utc>>) -> Reply {
    let reply = zoom_error(
        StatusCode::TOO_MANY_REQUESTS,
        429,
        "You have reached the maximum daily rate limit for this API. Refer to the response \
         header for details on when you can make another request.",
    )
    .with_header("x-ratelimit-category", category)
    .with_header("x-ratelimit-type", "Daily-limit")
    .with_header("x-ratelimit-limit", &limit.to_string())
    .with_header("x-ratelimit-remaining", "0");
    match retry_after {
        // An absolute time, not seconds: Zoom's format (research §4).
        Some(at) => reply.with_header(
            "retry-after",
            &at.to_rfc3339_opts(SecondsFormat::Secs, true),
        ),
        None => reply,
    }
}

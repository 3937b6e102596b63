//! `GET /api/v1/engagement-dashboard/users/active-users?start&end`, with the server's order of checks:
//! license, query schema, authentication, rate limit, permission, the exact date format, then the answer.
// Every check hands back the finished error reply; it is built once per request and moved straight into
// the response, so boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::errors;
use super::{RcState, Workspace};
use crate::api::{self, parse_pairs};
use crate::reply::Reply;
use crate::requests::{Endpoint, RequestMeta};
use crate::server::ConnHandle;
use crate::{lock, Shared};

/// A request spanning more days than this is refused, so a typo cannot make the sandbox scan for ages.
const MAX_SPAN_DAYS: i64 = 400;

pub(crate) async fn handler(
    State(state): State<Arc<Shared>>,
    Path(workspace): Path<String>,
    conn: Option<Extension<ConnHandle>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = parse_pairs(query.as_deref().unwrap_or_default().as_bytes());
    let meta = RequestMeta {
        endpoint: Endpoint::RcActiveUsers,
        account_id: Some(workspace.clone()),
        report_type: None,
        query: query.clone(),
        page: None,
        // Rocket.Chat's per-route limit is its own (see rocketchat/), not Zoom's categories.
        rate_account: None,
        session_id: None,
    };
    let (state, headers, query, workspace) = (&*state, &headers, &query, &workspace);
    api::respond(state, meta, conn.map(|c| c.0), move |_clamp| async move {
        match serve(state, workspace, headers, query) {
            Ok(reply) | Err(reply) => reply,
        }
    })
    .await
}

fn serve(
    state: &Shared,
    workspace: &str,
    headers: &HeaderMap,
    query: &BTreeMap<String, String>,
) -> Result<Reply, Reply> {
    let rc = &state.rocketchat;
    let Some(ws) = rc.workspace(workspace) else {
        return Err(errors::not_found(&format!(
            "/rocketchat/{workspace}/api/v1/engagement-dashboard/users/active-users"
        )));
    };
    if !ws.spec.licensed {
        return Err(errors::not_licensed());
    }
    let (start_text, end_text) = schema_check(query)?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("x-user-id") != Some(ws.spec.user_id.as_str())
        || header("x-auth-token") != Some(ws.spec.auth_token.as_str())
    {
        return Err(errors::unauthorized());
    }
    let limit_headers = rate_limit(ws)?;
    if !ws.spec.permitted {
        return Err(with_headers(errors::forbidden(), &limit_headers));
    }
    let start = iso_instant(start_text).ok_or_else(|| errors::match_error("start"))?;
    let end = iso_instant(end_text).ok_or_else(|| errors::match_error("end"))?;
    // The server throws the time of day away: both ends are whole local days, inclusive.
    let first = start.with_timezone(&ws.tz).date_naive();
    let last = end.with_timezone(&ws.tz).date_naive();
    if (last - first).num_days() > MAX_SPAN_DAYS {
        return Err(errors::invalid_params(&format!(
            "the sandbox serves at most {MAX_SPAN_DAYS} days per request"
        )));
    }
    let body = json!({ "month": entries(rc, state, ws, first, last), "success": true });
    Ok(with_headers(
        Reply::json(StatusCode::OK, &body),
        &limit_headers,
    ))
}

/// One entry per day that has a user, newest first, as the aggregation's `$sort` leaves them.
fn entries(
    rc: &RcState,
    state: &Shared,
    ws: &Workspace,
    first: NaiveDate,
    last: NaiveDate,
) -> Vec<Value> {
    let today = rc.today(state, ws);
    let mut out = Vec::new();
    let mut day = last;
    while day >= first {
        let users = rc.users_on(ws, today, day);
        if !users.is_empty() {
            out.push(json!({
                "usersList": users.iter().collect::<Vec<_>>(),
                "users": users.len(),
                "day": day.day(),
                "month": day.month(),
                "year": day.year(),
            }));
        }
        match day.pred_opt() {
            Some(prev) => day = prev,
            None => break,
        }
    }
    out
}

/// ajv: `start` and `end` required, nothing else allowed, both `date-time`.
fn schema_check(query: &BTreeMap<String, String>) -> Result<(&str, &str), Reply> {
    if let Some(extra) = query.keys().find(|k| *k != "start" && *k != "end") {
        return Err(errors::invalid_params(&format!(
            "must NOT have additional properties '{extra}'"
        )));
    }
    let field = |name: &str| -> Result<&str, Reply> {
        let value = query.get(name).ok_or_else(|| {
            errors::invalid_params(&format!("must have required property '{name}'"))
        })?;
        DateTime::parse_from_rfc3339(value)
            .map(|_| value.as_str())
            .map_err(|_| {
                errors::invalid_params(&format!("/{name} must match format \"date-time\""))
            })
    };
    Ok((field("start")?, field("end")?))
}

/// Only what JavaScript's `Date.prototype.toISOString()` prints passes: `YYYY-MM-DDTHH:mm:ss.sssZ`.
fn iso_instant(text: &str) -> Option<DateTime<Utc>> {
    let parsed = DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc);
    (parsed.to_rfc3339_opts(SecondsFormat::Millis, true) == text).then_some(parsed)
}

type LimitHeaders = Vec<(&'static str, String)>;

/// Counts the call; a call over the limit gets 429 with the wait in the body, and every checked call
/// carries `X-RateLimit-Limit`, `-Remaining` and `-Reset` (epoch milliseconds).
fn rate_limit(ws: &Workspace) -> Result<LimitHeaders, Reply> {
    let limit = ws.spec.rate_limit_calls;
    if limit == 0 {
        return Ok(Vec::new());
    }
    let window_ms = i64::try_from(ws.spec.rate_limit_window_ms).unwrap_or(i64::MAX);
    let now = Utc::now().timestamp_millis();
    let mut rate = lock(&ws.rate);
    if rate.used == 0 || now >= rate.started_ms.saturating_add(window_ms) {
        rate.started_ms = now;
        rate.used = 0;
    }
    rate.used += 1;
    let reset = rate.started_ms.saturating_add(window_ms);
    let headers = vec![
        ("x-ratelimit-limit", limit.to_string()),
        (
            "x-ratelimit-remaining",
            limit.saturating_sub(rate.used).to_string(),
        ),
        ("x-ratelimit-reset", reset.to_string()),
    ];
    if rate.used > limit {
        let wait_secs = u64::try_from((reset - now + 999) / 1000)
            .unwrap_or(1)
            .max(1);
        return Err(with_headers(errors::too_many_requests(wait_secs), &headers));
    }
    Ok(headers)
}

fn with_headers(mut reply: Reply, headers: &LimitHeaders) -> Reply {
    for (name, value) in headers {
        reply = reply.with_header(name, value);
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_to_iso_string_output_passes() {
        assert!(iso_instant("2024-01-01T05:00:00.000Z").is_some());
        assert!(iso_instant("2024-01-01T05:00:00Z").is_none());
        assert!(iso_instant("2024-01-01T05:00:00.000+00:00").is_none());
        assert!(iso_instant("2024-01-01T05:00:00.0000Z").is_none());
    }
}

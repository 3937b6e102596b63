//! The path every API request takes: fault rules, then the rate limits, then the real answer, then the log.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::faults::FaultKind;
use crate::reply::Reply;
use crate::requests::RequestMeta;
use crate::server::ConnHandle;
use crate::zoom::errors;
use crate::Shared;

/// Query string or form pairs; a repeated key keeps its last value.
pub(crate) fn parse_pairs(input: &[u8]) -> BTreeMap<String, String> {
    form_urlencoded::parse(input).into_owned().collect()
}

/// Answers `meta` with `real` unless a fault rule says otherwise. `real` gets
/// the days to move the response's `from` by (the `ClampFrom` fault).
pub(crate) async fn respond<F, Fut>(
    state: &Shared,
    meta: RequestMeta,
    conn: Option<ConnHandle>,
    real: F,
) -> Response
where
    F: FnOnce(Option<u32>) -> Fut,
    Fut: Future<Output = Reply>,
{
    let fault = state.faults.pick(&meta);
    let mut clamp = None;
    match &fault {
        None
        | Some(FaultKind::TruncatedBody)
        | Some(FaultKind::MalformedJson)
        | Some(FaultKind::HostileData)
        | Some(FaultKind::Patch { .. })
        | Some(FaultKind::EchoPageToken)
        | Some(FaultKind::OversizedBody { .. })
        | Some(FaultKind::ExpiresIn { .. }) => {}
        Some(FaultKind::ClampFrom { days }) => clamp = Some(*days),
        Some(FaultKind::Delay { ms }) => {
            // Shutting down answers at once rather than holding the server up.
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(*ms)) => {}
                () = state.shutdown.cancelled() => {}
            }
        }
        Some(FaultKind::Hang) => {
            log(state, &meta, 0, fault.as_ref());
            // Ends when the client goes away (hyper drops this future) or at shutdown.
            state.shutdown.cancelled().await;
            return abandon(conn).await;
        }
        Some(FaultKind::DropConnection) => {
            log(state, &meta, 0, fault.as_ref());
            return abandon(conn).await;
        }
        Some(FaultKind::Status { status, body }) => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return finish(
                state,
                &meta,
                Reply::raw(status, body.clone()),
                fault.as_ref(),
            );
        }
        Some(FaultKind::ServerError) => {
            return finish(state, &meta, errors::server_error(), fault.as_ref());
        }
        Some(FaultKind::RateLimitQps { headers }) => {
            return finish(
                state,
                &meta,
                errors::rate_limit_qps(*headers),
                fault.as_ref(),
            );
        }
        Some(FaultKind::RateLimitQpsRetryAfter { seconds }) => {
            let at = chrono::Utc::now() + chrono::Duration::seconds(*seconds as i64);
            return finish(
                state,
                &meta,
                errors::rate_limit_qps_until(at),
                fault.as_ref(),
            );
        }
        Some(FaultKind::RateLimitQpsRetryAfterText { value }) => {
            let reply = errors::rate_limit_qps(true).with_header("retry-after", value);
            return finish(state, &meta, reply, fault.as_ref());
        }
        Some(FaultKind::RateLimitDaily { retry_after }) => {
            let reply = errors::rate_limit_daily(*retry_after);
            return finish(state, &meta, reply, fault.as_ref());
        }
        Some(FaultKind::ExpiredPageToken) => {
            return finish(state, &meta, errors::page_token_invalid(), fault.as_ref());
        }
    }
    // After the faults, so a scripted fault neither counts nor is hidden by a limit; before the real
    // handler, because what it answers is what Zoom counts.
    if let Some(refused) = state
        .limits
        .count_or_refuse(meta.endpoint, meta.rate_account)
    {
        return finish(state, &meta, refused, fault.as_ref());
    }
    if !state.reply_latency.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(state.reply_latency) => {}
            () = state.shutdown.cancelled() => {}
        }
    }
    let mut reply = real(clamp).await;
    match &fault {
        Some(FaultKind::TruncatedBody) => {
            reply.body = reply.body.slice(..reply.body.len() / 2);
        }
        Some(FaultKind::HostileData) => {
            reply.body = hostile(&reply.body);
        }
        Some(FaultKind::Patch { set, remove }) if reply.status == StatusCode::OK => {
            reply.body = patch(&reply.body, set, remove);
        }
        Some(FaultKind::EchoPageToken) if reply.status == StatusCode::OK => {
            if let Some(sent) = meta.query.get("next_page_token") {
                let sent = serde_json::Value::String(sent.clone());
                reply.body = with_field(&reply.body, "next_page_token", sent);
            }
        }
        Some(FaultKind::OversizedBody { bytes }) => {
            reply.body = padded(&reply.body, *bytes);
        }
        Some(FaultKind::ExpiresIn { expires_in }) => {
            reply.body = with_field(&reply.body, "expires_in", expires_in.clone());
        }
        Some(FaultKind::MalformedJson) => {
            // What a misbehaving proxy in front of the API might send.
            reply = Reply::raw(
                StatusCode::OK,
                Bytes::from_static(b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
            );
        }
        _ => {}
    }
    finish(state, &meta, reply, fault.as_ref())
}

fn finish(state: &Shared, meta: &RequestMeta, reply: Reply, fault: Option<&FaultKind>) -> Response {
    let seq = log(state, meta, reply.status.as_u16(), fault);
    let mut response = reply.into_response();
    // Zoom's support asks for this header; it also ties a response to its log record.
    if let Ok(v) = HeaderValue::from_str(&format!("sbx-{seq}")) {
        response.headers_mut().insert("x-zm-trackingid", v);
    }
    response
}

fn log(state: &Shared, meta: &RequestMeta, status: u16, fault: Option<&FaultKind>) -> u64 {
    let seq = state.log.push(meta, status);
    tracing::debug!(
        seq,
        endpoint = ?meta.endpoint,
        account = meta.account_id.as_deref().unwrap_or("-"),
        page = ?meta.page,
        status,
        fault = ?fault,
        "api request"
    );
    seq
}

/// Closes the connection without a response and never returns.
async fn abandon(conn: Option<ConnHandle>) -> Response {
    if let Some(conn) = conn {
        conn.kill();
    }
    std::future::pending().await
}

/// Rewrites every row of a page's `users` array the way real-world data goes wrong; anything that is not
/// such a page is left as it is.
fn hostile(body: &Bytes) -> Bytes {
    let Ok(mut page) = serde_json::from_slice::<serde_json::Value>(body) else {
        return body.clone();
    };
    let Some(users) = page.get_mut("users").and_then(|u| u.as_array_mut()) else {
        return body.clone();
    };
    for user in users.iter_mut() {
        let Some(row) = user.as_object_mut() else {
            continue;
        };
        for key in ["user_name", "name"] {
            if let Some(serde_json::Value::String(text)) = row.get_mut(key) {
                text.push_str("\u{0}nul");
            }
        }
        row.insert(
            "dept".into(),
            serde_json::Value::String("D".repeat(100_000)),
        );
        for key in ["meetings", "participants", "meeting_minutes"] {
            if let Some(n) = row.get(key).and_then(|v| v.as_i64()) {
                row.insert(key.into(), serde_json::Value::String(n.to_string()));
            }
        }
        row.insert("custom_attributes".into(), serde_json::Value::Null);
        row.insert(
            "unexpected\u{0}key".into(),
            serde_json::json!({"nested": [1, "two\u{0}", null, {"deep": true}]}),
        );
    }
    serde_json::to_vec(&page)
        .map(Bytes::from)
        .unwrap_or_else(|_| body.clone())
}

/// Applies a `Patch` fault to a JSON page; a body that is not JSON is left as it is.
fn patch(body: &Bytes, set: &[(String, serde_json::Value)], remove: &[String]) -> Bytes {
    let Ok(mut page) = serde_json::from_slice::<serde_json::Value>(body) else {
        return body.clone();
    };
    for (pointer, value) in set {
        if let Some(slot) = page.pointer_mut(pointer) {
            *slot = value.clone();
        } else if let Some((parent, key)) = pointer.rsplit_once('/') {
            if let Some(serde_json::Value::Object(map)) = page.pointer_mut(parent) {
                map.insert(key.replace("~1", "/").replace("~0", "~"), value.clone());
            }
        }
    }
    for pointer in remove {
        let Some((parent, key)) = pointer.rsplit_once('/') else {
            continue;
        };
        match page.pointer_mut(parent) {
            Some(serde_json::Value::Object(map)) => {
                map.remove(&key.replace("~1", "/").replace("~0", "~"));
            }
            Some(serde_json::Value::Array(items)) => {
                if let Ok(index) = key.parse::<usize>() {
                    if index < items.len() {
                        items.remove(index);
                    }
                }
            }
            _ => {}
        }
    }
    serde_json::to_vec(&page)
        .map(Bytes::from)
        .unwrap_or_else(|_| body.clone())
}

/// The object `body` with a `padding` string making it at least `bytes` long; anything else as it is.
fn padded(body: &Bytes, bytes: usize) -> Bytes {
    let fill = bytes.saturating_sub(body.len());
    with_field(body, "padding", serde_json::Value::String("p".repeat(fill)))
}

/// The object `body` with `key` set to `value`; anything that is not a JSON object is left as it is.
fn with_field(body: &Bytes, key: &str, value: serde_json::Value) -> Bytes {
    let Ok(serde_json::Value::Object(mut object)) = serde_json::from_slice(body) else {
        return body.clone();
    };
    object.insert(key.to_owned(), value);
    serde_json::to_vec(&object)
        .map(Bytes::from)
        .unwrap_or_else(|_| body.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_keeps_the_page_valid_and_makes_it_large() {
        let page = Bytes::from_static(br#"{"users":[{"id":"a"}],"next_page_token":""}"#);
        let big = padded(&page, 3_000_000);
        assert!(big.len() >= 3_000_000);
        let value: serde_json::Value = serde_json::from_slice(&big).unwrap();
        assert_eq!(value["users"][0]["id"], "a");
        let token = with_field(
            &Bytes::from_static(br#"{"access_token":"t","expires_in":3599}"#),
            "expires_in",
            serde_json::json!(0),
        );
        let value: serde_json::Value = serde_json::from_slice(&token).unwrap();
        assert_eq!(value["expires_in"], 0);
    }
}

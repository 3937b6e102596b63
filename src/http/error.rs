use super::body::{quote_bounded, MAX_QUOTED_BYTES};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::time::Duration;

/// What went wrong talking to an API, classified by what the collector should do about it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Timeouts, refused or reset connections, bodies cut off: worth retrying.
    #[error("{what}: {message}")]
    Transport { what: String, message: String },

    /// A 200 whose body is not the JSON we expect: retried, since a proxy or an overloaded server produces them.
    #[error("{what}: malformed response body: {message}")]
    Malformed { what: String, message: String },

    /// A non-success status. `retry_after` is set when the server said when to come back.
    #[error("{what}: HTTP {status}{}: {message}", code.map(|c| format!(" (code {c})")).unwrap_or_default())]
    Status {
        what: String,
        status: u16,
        code: Option<i64>,
        message: String,
        retry_after: Option<Duration>,
    },

    /// The account's daily request budget is spent; nothing may be sent for it until `until`.
    #[error("{what}: daily API limit reached; the account is paused until {until}")]
    DailyLimit { what: String, until: DateTime<Utc> },

    /// The page token was refused (Zoom code 300): the window must be walked again from page 1.
    #[error("{what}: the page token is invalid or expired")]
    PageTokenExpired { what: String },

    /// Credentials were refused; `key` names the settings to fix. Never retried within a run.
    #[error("{what}: credentials rejected ({message}); check {key}")]
    AuthRejected {
        what: String,
        key: String,
        message: String,
    },

    /// The API refused for a reason retrying cannot fix (permission, plan, bad request).
    #[error("{what}: {message}")]
    Rejected { what: String, message: String },

    /// A 404: what was asked for is not there. Either the API says so of the resource (its `code` and
    /// `message`, e.g. Zoom's 3001 "Session does not exist: {id}"), or `api_url` is wrong. Never retried;
    /// a source that knows what the API means by it for one window may record that window unreachable.
    #[error("{what}: HTTP 404{}: {message}; check api_url", code.map(|c| format!(" (code {c})")).unwrap_or_default())]
    NotFound {
        what: String,
        code: Option<i64>,
        message: String,
    },

    /// An id the API serves that cannot be put in a URL path as itself; requesting anything else would
    /// collect another resource's data under its name. Fails the one window, not the account.
    #[error(transparent)]
    Unaddressable(#[from] Unaddressable),

    #[error("interrupted by shutdown")]
    Cancelled,
}

/// Why an id cannot be sent as a path segment.
#[derive(Debug, thiserror::Error)]
#[error("{kind} id {} cannot be addressed in a URL: {reason}", quote_bounded(&format!("{id:?}")))]
pub struct Unaddressable {
    /// What the id names, e.g. "session".
    pub kind: &'static str,
    pub id: String,
    pub reason: &'static str,
}

impl ApiError {
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Transport { .. } | ApiError::Malformed { .. } => true,
            ApiError::Status { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            _ => false,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Errors after which no further request of the same account can succeed in this run.
    pub fn stops_account(&self) -> bool {
        matches!(
            self,
            ApiError::AuthRejected { .. } | ApiError::DailyLimit { .. }
        )
    }
}

/// The shapes error bodies come in: Zoom `{code, message}`, Zoom OAuth `{reason, error}`, Rocket.Chat
/// `{success, error, errorType}`, and variants such as `{status, errorCode}`. Every field is optional so an
/// unexpected body never turns into a parse failure of its own.
#[derive(Debug, Default, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub code: Option<serde_json::Value>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub error: Option<serde_json::Value>,
    #[serde(default, rename = "errorType")]
    pub error_type: Option<String>,
    #[serde(default, rename = "errorCode")]
    pub error_code: Option<serde_json::Value>,
}

impl ErrorBody {
    pub fn parse(body: &[u8]) -> ErrorBody {
        serde_json::from_slice(body).unwrap_or_default()
    }

    pub fn code(&self) -> Option<i64> {
        let value = self.code.as_ref().or(self.error_code.as_ref())?;
        value
            .as_i64()
            .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
    }

    /// A one-line human message, bounded ([`quote_bounded`]) so a hostile body cannot flood the logs or
    /// `collection_windows.last_error`.
    pub fn message(&self, body: &[u8]) -> String {
        let text = self
            .message
            .clone()
            .or_else(|| self.reason.clone())
            .or_else(|| match &self.error {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(other) => Some(other.to_string()),
                None => None,
            })
            .unwrap_or_else(|| {
                // Only the head is ever shown: no need to decode a megabyte of body.
                let head = &body[..body.len().min(MAX_QUOTED_BYTES * 4)];
                String::from_utf8_lossy(head).into_owned()
            });
        quote_bounded(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_reads_every_known_shape() {
        let zoom = ErrorBody::parse(
            br#"{"code":300,"message":"The next page token is invalid or expired."}"#,
        );
        assert_eq!(zoom.code(), Some(300));
        assert_eq!(
            zoom.message(b""),
            "The next page token is invalid or expired."
        );
        let oauth = ErrorBody::parse(
            br#"{"reason":"Invalid client_id or client_secret","error":"invalid_client"}"#,
        );
        assert_eq!(oauth.message(b""), "Invalid client_id or client_secret");
        let odd = ErrorBody::parse(br#"{"status":false,"errorCode":"401"}"#);
        assert_eq!(odd.code(), Some(401));
        let garbage = ErrorBody::parse(b"<html>bad gateway</html>");
        assert_eq!(garbage.code(), None);
        assert_eq!(
            garbage.message(b"<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
    }

    #[test]
    fn an_unaddressable_id_fails_its_window_only() {
        let err = ApiError::from(Unaddressable {
            kind: "session",
            id: "a\0b".into(),
            reason: "it holds NUL",
        });
        assert!(!err.is_transient() && !err.stops_account());
        assert_eq!(
            err.to_string(),
            r#"session id "a\0b" cannot be addressed in a URL: it holds NUL"#
        );
    }

    #[test]
    fn long_messages_are_bounded_and_single_line() {
        let body = format!(r#"{{"code":1,"message":"a\nb{}"}}"#, "ß".repeat(10_000));
        let out = ErrorBody::parse(body.as_bytes()).message(body.as_bytes());
        assert!(!out.contains('\n'));
        assert!(out.ends_with('…'));
        assert!(out.len() <= MAX_QUOTED_BYTES + '…'.len_utf8());
        let garbage = vec![b'x'; 5_000_000];
        let out = ErrorBody::default().message(&garbage);
        assert_eq!(out.len(), MAX_QUOTED_BYTES + '…'.len_utf8());
    }
}

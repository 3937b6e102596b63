//! The one request skeleton every API client shares: send, count the reply in the metrics, read the body
//! under the cap, and turn a transport failure into [`ApiError`]. Each client keeps only what is its own:
//! its auth headers, its pacing and what its platform's statuses mean.

use super::{ApiError, ErrorBody, HttpClient};
use crate::observe;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;

/// Which `rollcall_requests_total` series a request counts in.
#[derive(Clone, Copy, Debug)]
pub struct Meter<'a> {
    pub account: &'a str,
    pub category: &'static str,
}

/// A reply read whole (under `http.max_body_mib`): what classification needs and nothing streamed.
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as `T`; a body that does not parse is a malformed page, retried like a transient failure.
    pub fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| super::malformed_json(what, &e))
    }

    pub fn error_body(&self) -> ErrorBody {
        ErrorBody::parse(&self.body)
    }

    /// A header's value, trimmed; `None` when absent or not text.
    pub fn header(&self, name: &str) -> Option<String> {
        header(&self.headers, name)
    }
}

pub fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

impl HttpClient {
    /// Sends `request` and reads its reply. `meter` is `None` for token mints: they belong to no rate
    /// category and the request counters are the API's calls.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
        meter: Option<Meter<'_>>,
    ) -> Result<Reply, ApiError> {
        if let (Some(m), Some(ledger)) = (meter, &self.ledger) {
            ledger.record(m.account, m.category);
        }
        let count = |outcome| {
            if let Some(m) = meter {
                observe::request(m.account, m.category, outcome);
            }
        };
        let response = request.send().await.map_err(|e| {
            count("transport");
            ApiError::Transport {
                what: what.to_string(),
                message: describe_transport_error(&e),
            }
        })?;
        let status = response.status().as_u16();
        count(observe::status_outcome(status));
        let headers = response.headers().clone();
        let body = super::body::read_body(response, self.body_cap, what).await?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

/// What a status no platform gives a meaning of its own comes to: a server-side failure is retried, any
/// other refusal is final for the window.
pub fn status_error(what: &str, status: u16, code: Option<i64>, message: String) -> ApiError {
    if status >= 500 || status == 408 {
        ApiError::Status {
            what: what.to_string(),
            status,
            code,
            message,
            retry_after: None,
        }
    } else {
        ApiError::Rejected {
            what: what.to_string(),
            message: format!("HTTP {status}{}: {message}", code_suffix(code)),
        }
    }
}

/// ` (code N)` after a status, when the platform gave a code.
pub fn code_suffix(code: Option<i64>) -> String {
    code.map(|c| format!(" (code {c})")).unwrap_or_default()
}

/// Describes a transport error without echoing the URL: query strings can carry page tokens.
pub fn describe_transport_error(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else if err.is_body() || err.is_decode() {
        "the response body was cut off"
    } else if err.is_request() {
        "the request failed"
    } else {
        "transport error"
    };
    let mut detail = String::new();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        detail = cause.to_string();
        source = cause.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind} ({detail})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_failures_are_retried_and_other_refusals_final() {
        let failed = status_error("GET /x", 503, None, "down".into());
        assert!(failed.is_transient());
        assert_eq!(failed.to_string(), "GET /x: HTTP 503: down");
        let refused = status_error("GET /x", 418, Some(7), "teapot".into());
        assert!(!refused.is_transient() && !refused.stops_account());
        assert_eq!(refused.to_string(), "GET /x: HTTP 418 (code 7): teapot");
    }
}

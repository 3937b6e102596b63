//! A Zoom REST client for one account: bearer auth with one re-mint on 401, retries of transient failures,
//! and Zoom's error vocabulary mapped onto [`ApiError`].

use super::auth::{AccessToken, S2sAuth};
use super::pacing::{daily_pause_until, Category, ZoomPacer};
use super::videosdk::jwt::JwtAuth;
use crate::http::{
    code_suffix, header, status_error, with_retries, ApiError, ErrorBody, HttpClient, Meter,
    RetryPolicy,
};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use reqwest::header::HeaderMap;
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

/// How a Zoom account proves itself: S2S OAuth for the Meeting API (host reports); the Video SDK API's
/// locally signed JWT is the other variant.
pub enum ZoomAuth {
    S2s(S2sAuth),
    Jwt(JwtAuth),
}

impl ZoomAuth {
    async fn token(&self) -> Result<AccessToken, ApiError> {
        match self {
            ZoomAuth::S2s(auth) => auth.token().await,
            ZoomAuth::Jwt(auth) => auth.token(),
        }
    }

    async fn invalidate(&self, rejected: &AccessToken) {
        match self {
            ZoomAuth::S2s(auth) => auth.invalidate(rejected).await,
            ZoomAuth::Jwt(auth) => auth.invalidate(rejected),
        }
    }

    /// A JWT is only checked by the API itself, so a second 401 is the account's credentials being wrong:
    /// the error must stop the account and name the keys to fix, as a refused S2S mint does.
    fn rejected(
        &self,
        what: &str,
        status: u16,
        error: &ErrorBody,
        body: &[u8],
    ) -> Option<ApiError> {
        match self {
            ZoomAuth::S2s(_) => None,
            ZoomAuth::Jwt(auth) => Some(ApiError::AuthRejected {
                what: what.to_string(),
                key: auth.config_keys().to_string(),
                message: format!(
                    "HTTP {status}{}: {}; the API JWT signed with the API secret was refused twice",
                    code_suffix(error.code()),
                    error.message(body)
                ),
            }),
        }
    }
}

pub struct ZoomClient {
    pub account_name: String,
    api_url: String,
    http: HttpClient,
    auth: ZoomAuth,
    pacer: ZoomPacer,
    retry: RetryPolicy,
}

impl ZoomClient {
    pub fn new(
        account_name: String,
        api_url: String,
        http: HttpClient,
        auth: ZoomAuth,
        pacer: ZoomPacer,
        retry: RetryPolicy,
    ) -> ZoomClient {
        ZoomClient {
            account_name,
            api_url: api_url.trim_end_matches('/').to_string(),
            http,
            auth,
            pacer,
            retry,
        }
    }

    /// Mints (or reuses) a token: what `rollcall check` uses to prove the credentials.
    pub async fn verify_credentials(&self) -> Result<(), ApiError> {
        self.auth.token().await.map(|_| ())
    }

    /// GETs `path` (relative to `api_url`, already percent-encoded) and parses the JSON body. Every
    /// attempt, retries included, waits for a slot of `category` first.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        category: Category,
        cancel: &CancellationToken,
    ) -> Result<T, ApiError> {
        let what = format!("zoom account \"{}\": GET {path}", self.account_name);
        let url = format!("{}{path}", self.api_url);
        with_retries(self.retry, cancel, || {
            self.attempt(&url, query, category, &what, cancel)
        })
        .await
    }

    async fn attempt<T: DeserializeOwned>(
        &self,
        url: &str,
        query: &[(&str, &str)],
        category: Category,
        what: &str,
        cancel: &CancellationToken,
    ) -> Result<T, ApiError> {
        // A token refused after it worked (for any worker) was revoked or expired: mint again, however
        // many workers shared it. Only tokens refused at their very first use, twice, mean the credentials
        // are wrong. The bound on re-mints only keeps a server that revokes every token after a few uses
        // from holding one worker forever; other workers progress meanwhile.
        let mut refused_fresh = 0;
        let mut refused_after_use = 0;
        loop {
            let token = self.auth.token().await?;
            self.pacer
                .acquire(
                    category,
                    what,
                    &self.account_name,
                    self.http.ledger().map(|l| l.as_ref()),
                    cancel,
                )
                .await?;
            let request = self
                .http
                .get(url)
                .query(query)
                .bearer_auth(token.value.expose_secret());
            let meter = Meter {
                account: &self.account_name,
                category: category.as_str(),
            };
            let first_use = token.begin_use();
            let reply = self.http.send(request, what, Some(meter)).await?;
            if first_use {
                token.first_use_answered(reply.status != 401);
            }
            if reply.is_success() {
                return reply.json(what);
            }
            let (status, body) = (reply.status, &reply.body);
            let error = reply.error_body();
            if status == 401 {
                let fresh_refused =
                    first_use || token.refused_at_first_use(FIRST_USE_PATIENCE).await;
                let retry = if fresh_refused {
                    refused_fresh += 1;
                    refused_fresh < 2
                } else {
                    refused_after_use += 1;
                    refused_after_use <= MAX_REMINTS_AFTER_USE
                };
                if retry {
                    self.auth.invalidate(&token).await;
                    continue;
                }
            }
            if status == 401 {
                if let Some(rejected) = self.auth.rejected(what, status, &error, body) {
                    return Err(rejected);
                }
            }
            if let Some(track) = reply.header("x-zm-trackingid") {
                tracing::debug!(tracking_id = track, status, "Zoom error response");
            }
            return Err(classify(what, status, &reply.headers, &error, body));
        }
    }
}

/// Re-mints in one attempt for tokens refused after they had worked.
const MAX_REMINTS_AFTER_USE: u32 = 100;

/// How long a refused request waits to learn whether the token's first use (another worker's request
/// still in flight) was accepted.
const FIRST_USE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

fn classify(
    what: &str,
    status: u16,
    headers: &HeaderMap,
    error: &ErrorBody,
    body: &[u8],
) -> ApiError {
    let code = error.code();
    let message = error.message(body);
    let what = what.to_string();
    match status {
        429 => {
            let limit_type = header(headers, "x-ratelimit-type").unwrap_or_default();
            let retry_at = header(headers, "retry-after").and_then(parse_retry_after);
            if limit_type.eq_ignore_ascii_case("daily-limit") {
                // Clamped here, when the 429 arrives: a `Retry-After` a year ahead must not wedge the account.
                ApiError::DailyLimit {
                    what,
                    until: daily_pause_until(retry_at, Utc::now()),
                }
            } else {
                ApiError::Status {
                    what,
                    status,
                    code,
                    message,
                    retry_after: retry_at.and_then(|at| (at - Utc::now()).to_std().ok()),
                }
            }
        }
        400 | 404 if code == Some(300) && message.to_ascii_lowercase().contains("token") => {
            ApiError::PageTokenExpired { what }
        }
        401 => ApiError::Rejected {
            what,
            message: format!(
                "HTTP 401{}: {message}; the app's token was refused twice: check that the Server-to-Server OAuth app is activated and has the report:read:admin scope",
                code_suffix(code)
            ),
        },
        400 if code == Some(200) => ApiError::Rejected {
            what,
            message: format!("{message} (Zoom code 200: the account needs a Pro or higher plan and the app the report:read:admin scope)"),
        },
        404 => ApiError::NotFound {
            what,
            code,
            message,
        },
        _ => status_error(&what, status, code, message),
    }
}

/// Zoom sends `Retry-After` as an absolute ISO-8601 time; plain seconds are accepted too. Checked
/// arithmetic: the header is the server's word, and a number past chrono's range (`99999999999999`) must
/// read as "no usable time", not panic the worker that holds a window's lease.
fn parse_retry_after(value: String) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(&value) {
        return Some(at.with_timezone(&Utc));
    }
    let secs = value.trim().parse::<i64>().ok()?;
    Utc::now().checked_add_signed(ChronoDuration::try_seconds(secs)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_iso_and_seconds() {
        let at = parse_retry_after("2020-05-31T00:00:00Z".into());
        assert_eq!(
            at.map(|a| a.to_rfc3339()),
            Some("2020-05-31T00:00:00+00:00".into())
        );
        assert!(parse_retry_after("30".into()).is_some());
        assert!(parse_retry_after("soon".into()).is_none());
        for huge in ["99999999999999", "-99999999999999", "9223372036854775807"] {
            assert!(parse_retry_after(huge.into()).is_none(), "{huge}");
        }
    }

    #[test]
    fn daily_limit_without_headers_pauses_until_midnight_utc() {
        let err = classify("t", 429, &HeaderMap::new(), &ErrorBody::default(), b"");
        assert!(matches!(err, ApiError::Status { status: 429, .. }));
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-type", "Daily-limit".parse().unwrap());
        match classify("t", 429, &headers, &ErrorBody::default(), b"") {
            ApiError::DailyLimit { until, .. } => {
                assert_eq!(until, super::super::pacing::next_utc_midnight(Utc::now()))
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_daily_limit_retry_after_a_year_ahead_is_clamped_to_the_next_reset() {
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-type", "Daily-limit".parse().unwrap());
        let far = (Utc::now() + ChronoDuration::days(365)).to_rfc3339();
        headers.insert("retry-after", far.parse().unwrap());
        let before = Utc::now();
        match classify("t", 429, &headers, &ErrorBody::default(), b"") {
            ApiError::DailyLimit { until, .. } => {
                let latest = super::super::pacing::next_utc_midnight(Utc::now())
                    + super::super::pacing::daily_reset_margin();
                assert!(until <= latest && until > before, "{until}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn error_texts_quoted_from_a_body_are_bounded() {
        let body = format!(r#"{{"code":1234,"message":"{}"}}"#, "ü".repeat(5000));
        let err = classify(
            "t",
            400,
            &HeaderMap::new(),
            &ErrorBody::parse(body.as_bytes()),
            body.as_bytes(),
        );
        let text = err.to_string();
        assert!(
            text.len() < crate::http::MAX_QUOTED_BYTES + 64,
            "{}",
            text.len()
        );
        assert!(text.contains('…'));
    }

    #[test]
    fn code_300_about_the_token_restarts_the_window() {
        let body = br#"{"code":300,"message":"The next page token is invalid or expired."}"#;
        let err = classify("t", 400, &HeaderMap::new(), &ErrorBody::parse(body), body);
        assert!(matches!(err, ApiError::PageTokenExpired { .. }));
        let body = br#"{"code":300,"message":"Only provide report in recent 6 months"}"#;
        let err = classify("t", 400, &HeaderMap::new(), &ErrorBody::parse(body), body);
        assert!(matches!(err, ApiError::Rejected { .. }));
    }

    #[test]
    fn a_404_keeps_zooms_code_and_message() {
        let body = br#"{"code":3001,"message":"Session does not exist: ab/c=="}"#;
        let err = classify("t", 404, &HeaderMap::new(), &ErrorBody::parse(body), body);
        assert!(
            matches!(&err, ApiError::NotFound { code: Some(3001), message, .. } if message == "Session does not exist: ab/c=="),
            "{err:?}"
        );
        assert!(!err.is_transient());
        assert_eq!(
            err.to_string(),
            "t: HTTP 404 (code 3001): Session does not exist: ab/c==; check api_url"
        );
    }
}

//! Server-to-Server OAuth (DESIGN §7): one cached token per account, minted by one task at a time, refreshed
//! a minute before it expires. Concurrent mints have invalidated each other's tokens on Zoom
//! (research/zoom-api.md §6.9), hence the single flight.

use crate::http::{ApiError, HttpClient};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Mutex};

const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// What Zoom documents (3600 s), less a second; used when `expires_in` is absent or unreadable.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3599);

/// The shortest lifetime believed. A served 0 or 5 s would otherwise mean a mint before every request
/// (and a flood of mints, which Zoom answers by invalidating tokens); if the token really dies sooner,
/// the API's 401 makes the client mint again once, which is the cost of being wrong.
const MIN_LIFETIME: Duration = Duration::from_secs(120);

/// The longest lifetime believed. Zoom's tokens live an hour; a day bounds a nonsense value (`1e30`,
/// `u64::MAX`) so the arithmetic cannot overflow and a rotated secret is noticed within a day at worst.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The lifetime a token response claims, clamped to [`MIN_LIFETIME`, `MAX_LIFETIME`]. Numbers (integer or
/// not, negative included) and numeric strings are read; anything else means Zoom's default.
fn lifetime(expires_in: Option<&Value>) -> Duration {
    let seconds = match expires_in {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match seconds {
        Some(s) if s.is_finite() => {
            let clamped = s.clamp(MIN_LIFETIME.as_secs_f64(), MAX_LIFETIME.as_secs_f64());
            Duration::from_secs_f64(clamped)
        }
        _ => DEFAULT_LIFETIME,
    }
}

/// How long before its end a token is replaced: a minute, or a quarter of a short lifetime, so a token
/// that lives two minutes is still used for ninety seconds rather than re-minted at every request.
fn refresh_margin(lifetime: Duration) -> Duration {
    REFRESH_MARGIN.min(lifetime / 4)
}

pub struct S2sCredentials {
    pub oauth_url: String,
    pub account_id: String,
    pub client_id: String,
    pub client_secret: SecretString,
    /// The config keys to name when Zoom refuses these credentials, e.g. `zoom[1].client_id`.
    pub config_keys: String,
    pub account_name: String,
}

/// A bearer token shared by every worker of an account. Its clones share what the API said of its first
/// use, which is the only answer that tells wrong credentials (refused at once) from a token revoked or
/// expired after it worked.
#[derive(Clone)]
pub struct AccessToken {
    pub value: SecretString,
    expires_at: Instant,
    /// Requests that carried it so far.
    sent: Arc<AtomicU64>,
    /// `None` until the API answered its first use: `Some(true)` accepted (any answer but a 401),
    /// `Some(false)` refused with a 401.
    first_use: Arc<watch::Sender<Option<bool>>>,
}

impl AccessToken {
    /// A bearer value minted elsewhere (the Video SDK JWT), valid until `expires_at`.
    pub fn new(value: SecretString, expires_at: Instant) -> AccessToken {
        AccessToken {
            value,
            expires_at,
            sent: Arc::new(AtomicU64::new(0)),
            first_use: Arc::new(watch::Sender::new(None)),
        }
    }

    pub fn expires_at(&self) -> Instant {
        self.expires_at
    }

    /// Counts a request about to carry the token; true for its first use anywhere.
    pub fn begin_use(&self) -> bool {
        self.sent.fetch_add(1, Ordering::Relaxed) == 0
    }

    /// The API answered the first use of this token: `accepted` unless it was a 401.
    pub fn first_use_answered(&self, accepted: bool) {
        self.first_use.send_if_modified(|verdict| {
            let unknown = verdict.is_none();
            if unknown {
                *verdict = Some(accepted);
            }
            unknown
        });
    }

    /// Whether the token's first use was refused, waiting up to `patience` for that answer when another
    /// worker's request still carries it. `false` when it worked or the answer never came (a transport
    /// failure tells nothing about the token).
    pub async fn refused_at_first_use(&self, patience: Duration) -> bool {
        let mut answers = self.first_use.subscribe();
        let verdict = tokio::time::timeout(patience, answers.wait_for(Option::is_some)).await;
        matches!(verdict, Ok(Ok(answer)) if *answer == Some(false))
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

pub struct S2sAuth {
    credentials: S2sCredentials,
    http: HttpClient,
    /// The token and when to replace it.
    cached: Mutex<Option<(AccessToken, Instant)>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    /// Read leniently: a string, a float or a huge number must not fail the mint (see [`lifetime`]).
    #[serde(default)]
    expires_in: Option<Value>,
}

impl S2sAuth {
    pub fn new(credentials: S2sCredentials, http: HttpClient) -> S2sAuth {
        S2sAuth {
            credentials,
            http,
            cached: Mutex::new(None),
        }
    }

    /// A token valid for at least another minute, minting one if needed.
    pub async fn token(&self) -> Result<AccessToken, ApiError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, refresh_at)) = cached.as_ref() {
            if *refresh_at > Instant::now() {
                return Ok(token.clone());
            }
        }
        let (fresh, refresh_at) = self.mint().await?;
        *cached = Some((fresh.clone(), refresh_at));
        Ok(fresh)
    }

    /// Forgets `rejected` so the next `token()` mints again; a token another task already replaced is kept.
    pub async fn invalidate(&self, rejected: &AccessToken) {
        let mut cached = self.cached.lock().await;
        if cached
            .as_ref()
            .is_some_and(|(t, _)| t.value.expose_secret() == rejected.value.expose_secret())
        {
            *cached = None;
        }
    }

    /// A fresh token and the instant to replace it.
    async fn mint(&self) -> Result<(AccessToken, Instant), ApiError> {
        let c = &self.credentials;
        let what = format!(
            "zoom account \"{}\": minting an access token",
            c.account_name
        );
        let request = self
            .http
            .post(&c.oauth_url)
            .basic_auth(&c.client_id, Some(c.client_secret.expose_secret()))
            .form(&[
                ("grant_type", "account_credentials"),
                ("account_id", c.account_id.as_str()),
            ]);
        let reply = self.http.send(request, &what, None).await?;
        if reply.is_success() {
            let parsed: TokenResponse = reply.json(&what)?;
            if parsed.access_token.is_empty() {
                return Err(ApiError::Malformed {
                    what,
                    message: "empty access_token".into(),
                });
            }
            let lifetime = lifetime(parsed.expires_in.as_ref());
            tracing::debug!(
                account = %c.account_name,
                lifetime_secs = lifetime.as_secs(),
                "minted a Zoom access token"
            );
            let now = Instant::now();
            let token = AccessToken::new(SecretString::from(parsed.access_token), now + lifetime);
            return Ok((token, now + lifetime - refresh_margin(lifetime)));
        }
        let error = reply.error_body();
        let message = format!("HTTP {}: {}", reply.status, error.message(&reply.body));
        match reply.status {
            400 | 401 | 403 => Err(ApiError::AuthRejected {
                what,
                key: c.config_keys.clone(),
                message,
            }),
            // A mint refused for any other reason (a 429, a 5xx, a moved URL) is the server's failure, not
            // the credentials': the account is not stopped.
            status => Err(ApiError::Status {
                what,
                status,
                code: error.code(),
                message,
                retry_after: None,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lifetimes_are_clamped_to_a_sane_range() {
        let secs = |v: Value| lifetime(Some(&v)).as_secs();
        assert_eq!(secs(json!(3600)), 3600);
        assert_eq!(secs(json!("3600")), 3600);
        assert_eq!(secs(json!(0)), 120);
        assert_eq!(secs(json!(5)), 120);
        assert_eq!(secs(json!(-30)), 120);
        assert_eq!(secs(json!(1e30)), 86_400);
        assert_eq!(secs(json!(u64::MAX)), 86_400);
        assert_eq!(secs(json!(i64::MIN)), 120);
        assert_eq!(secs(json!("soon")), 3599);
        assert_eq!(secs(json!(null)), 3599);
        assert_eq!(secs(json!({"s": 1})), 3599);
        assert_eq!(lifetime(None).as_secs(), 3599);
    }

    #[test]
    fn short_lifetimes_get_a_proportional_refresh_margin() {
        assert_eq!(refresh_margin(Duration::from_secs(3599)), REFRESH_MARGIN);
        assert_eq!(
            refresh_margin(MIN_LIFETIME),
            Duration::from_secs(30),
            "a two-minute token is used for ninety seconds"
        );
        assert!(refresh_margin(MIN_LIFETIME) < MIN_LIFETIME);
    }
}

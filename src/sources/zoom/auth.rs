//! Server-to-Server OAuth (DESIGN §7): one cached token per account, minted by one task at a time, refreshed
//! a minute before it expires. Concurrent mints have invalidated each other's tokens on Zoom
//! (research/zoom-api.md §6.9), hence the single flight.

use crate::http::{describe_transport_error, ApiError, ErrorBody};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

const REFRESH_MARGIN: Duration = Duration::from_secs(60);

pub struct S2sCredentials {
    pub oauth_url: String,
    pub account_id: String,
    pub client_id: String,
    pub client_secret: SecretString,
    /// The config keys to name when Zoom refuses these credentials, e.g. `zoom[1].client_id`.
    pub config_keys: String,
    pub account_name: String,
}

#[derive(Clone)]
pub struct AccessToken {
    pub value: SecretString,
    expires_at: Instant,
}

impl AccessToken {
    /// A bearer value minted elsewhere (the Video SDK JWT), valid until `expires_at`.
    pub fn new(value: SecretString, expires_at: Instant) -> AccessToken {
        AccessToken { value, expires_at }
    }

    pub fn expires_at(&self) -> Instant {
        self.expires_at
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

pub struct S2sAuth {
    credentials: S2sCredentials,
    http: reqwest::Client,
    cached: Mutex<Option<AccessToken>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl S2sAuth {
    pub fn new(credentials: S2sCredentials, http: reqwest::Client) -> S2sAuth {
        S2sAuth {
            credentials,
            http,
            cached: Mutex::new(None),
        }
    }

    /// A token valid for at least another minute, minting one if needed.
    pub async fn token(&self) -> Result<AccessToken, ApiError> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref() {
            if token.expires_at > Instant::now() + REFRESH_MARGIN {
                return Ok(token.clone());
            }
        }
        let fresh = self.mint().await?;
        *cached = Some(fresh.clone());
        Ok(fresh)
    }

    /// Forgets `rejected` so the next `token()` mints again; a token another task already replaced is kept.
    pub async fn invalidate(&self, rejected: &AccessToken) {
        let mut cached = self.cached.lock().await;
        if cached
            .as_ref()
            .is_some_and(|t| t.value.expose_secret() == rejected.value.expose_secret())
        {
            *cached = None;
        }
    }

    async fn mint(&self) -> Result<AccessToken, ApiError> {
        let c = &self.credentials;
        let what = format!(
            "zoom account \"{}\": minting an access token",
            c.account_name
        );
        let response = self
            .http
            .post(&c.oauth_url)
            .basic_auth(&c.client_id, Some(c.client_secret.expose_secret()))
            .form(&[
                ("grant_type", "account_credentials"),
                ("account_id", c.account_id.as_str()),
            ])
            .send()
            .await
            .map_err(|e| ApiError::Transport {
                what: what.clone(),
                message: describe_transport_error(&e),
            })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| ApiError::Transport {
            what: what.clone(),
            message: describe_transport_error(&e),
        })?;
        if status.is_success() {
            let parsed: TokenResponse =
                serde_json::from_slice(&body).map_err(|e| ApiError::Malformed {
                    what: what.clone(),
                    message: e.to_string(),
                })?;
            if parsed.access_token.is_empty() {
                return Err(ApiError::Malformed {
                    what,
                    message: "empty access_token".into(),
                });
            }
            tracing::debug!(account = %c.account_name, "minted a Zoom access token");
            return Ok(AccessToken {
                value: SecretString::from(parsed.access_token),
                expires_at: Instant::now() + Duration::from_secs(parsed.expires_in.unwrap_or(3599)),
            });
        }
        let error = ErrorBody::parse(&body);
        let message = format!("HTTP {}: {}", status.as_u16(), error.message(&body));
        match status.as_u16() {
            400 | 401 | 403 => Err(ApiError::AuthRejected {
                what,
                key: c.config_keys.clone(),
                message,
            }),
            429 => Err(ApiError::Status {
                what,
                status: 429,
                code: error.code(),
                message,
                retry_after: None,
            }),
            s => Err(ApiError::Status {
                what,
                status: s,
                code: error.code(),
                message,
                retry_after: None,
            }),
        }
    }
}

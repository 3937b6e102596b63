//! The Video SDK API's bearer (DESIGN §7, research/zoom-api.md §3b): an HS256 JWT with `iss` = API key,
//! signed locally with the API secret. Nothing is sent to obtain it, so the secret never leaves the process;
//! it is cached and reused until a few minutes before `exp`, as Zoom's own SDK does.

use crate::http::ApiError;
use crate::sources::zoom::auth::AccessToken;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Zoom suggests at most one hour, counted from `iat`.
const LIFETIME: Duration = Duration::from_secs(3600);
/// `iat` is set this far in the past, as Zoom's own samples do: Zoom refuses a token issued in its future,
/// so a host clock a few seconds ahead of Zoom's would otherwise draw 401s that read as wrong credentials.
const IAT_BACKDATE: Duration = Duration::from_secs(30);
/// A token this close to `exp` is replaced, so a slow page never carries one that dies in flight.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

pub struct JwtCredentials {
    pub api_key: String,
    pub api_secret: SecretString,
    /// The config keys to name when Zoom refuses the token, e.g. `videosdk[0].api_key and ...api_secret`.
    pub config_keys: String,
    pub account_name: String,
}

pub struct JwtAuth {
    credentials: JwtCredentials,
    cached: Mutex<Option<AccessToken>>,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    iat: i64,
    exp: i64,
}

impl JwtAuth {
    pub fn new(credentials: JwtCredentials) -> JwtAuth {
        JwtAuth {
            credentials,
            cached: Mutex::new(None),
        }
    }

    pub fn config_keys(&self) -> &str {
        &self.credentials.config_keys
    }

    /// The cached token while it has more than the margin left, a freshly signed one otherwise.
    pub fn token(&self) -> Result<AccessToken, ApiError> {
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(token) = cached.as_ref() {
            if token.expires_at() > Instant::now() + REFRESH_MARGIN {
                return Ok(token.clone());
            }
        }
        let fresh = self.sign()?;
        *cached = Some(fresh.clone());
        Ok(fresh)
    }

    /// Forgets `rejected` so the next `token()` signs anew (the 401 re-try path).
    pub fn invalidate(&self, rejected: &AccessToken) {
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if cached
            .as_ref()
            .is_some_and(|t| t.value.expose_secret() == rejected.value.expose_secret())
        {
            *cached = None;
        }
    }

    fn sign(&self) -> Result<AccessToken, ApiError> {
        let c = &self.credentials;
        // Real time, not rollcall's calendar: the token is checked by Zoom's clock.
        let iat = chrono::Utc::now().timestamp() - IAT_BACKDATE.as_secs() as i64;
        let claims = Claims {
            iss: &c.api_key,
            iat,
            exp: iat + LIFETIME.as_secs() as i64,
        };
        let key = EncodingKey::from_secret(c.api_secret.expose_secret().as_bytes());
        let jwt =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).map_err(|e| {
                ApiError::Rejected {
                    what: format!(
                        "videosdk account \"{}\": signing the API JWT",
                        c.account_name
                    ),
                    message: e.to_string(),
                }
            })?;
        tracing::debug!(account = %c.account_name, "signed a Video SDK API JWT");
        Ok(AccessToken::new(
            SecretString::from(jwt),
            Instant::now() + (LIFETIME - IAT_BACKDATE),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Decoded {
        iss: String,
        iat: i64,
        exp: i64,
    }

    fn auth(secret: &str) -> JwtAuth {
        JwtAuth::new(JwtCredentials {
            api_key: "key-1".into(),
            api_secret: SecretString::from(secret.to_string()),
            config_keys: "videosdk[0].api_key".into(),
            account_name: "sdk".into(),
        })
    }

    #[test]
    fn token_is_hs256_with_iss_and_an_exp_at_most_an_hour_ahead() {
        let auth = auth("s3cret");
        let token = auth.token().unwrap();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&["key-1"]);
        let decoded = jsonwebtoken::decode::<Decoded>(
            token.value.expose_secret(),
            &DecodingKey::from_secret(b"s3cret"),
            &validation,
        )
        .unwrap()
        .claims;
        assert_eq!(decoded.iss, "key-1");
        assert!(decoded.exp - decoded.iat <= 3600 && decoded.exp > decoded.iat);
        let now = chrono::Utc::now().timestamp();
        assert!(
            (now - 31..=now - 29).contains(&decoded.iat),
            "iat is backdated 30 s: {} vs now {now}",
            decoded.iat
        );
        assert!(decoded.exp <= now + 3600, "exp stays within an hour of now");
        assert!(jsonwebtoken::decode::<Decoded>(
            token.value.expose_secret(),
            &DecodingKey::from_secret(b"other"),
            &validation,
        )
        .is_err());
    }

    #[test]
    fn the_token_is_reused_until_invalidated() {
        let auth = auth("s3cret");
        let first = auth.token().unwrap();
        let again = auth.token().unwrap();
        assert_eq!(first.value.expose_secret(), again.value.expose_secret());
        assert_eq!(first.expires_at(), again.expires_at());
        auth.invalidate(&first);
        let fresh = auth.token().unwrap();
        assert!(fresh.expires_at() > first.expires_at());
        assert!(!format!("{fresh:?}").contains(fresh.value.expose_secret()));
    }
}

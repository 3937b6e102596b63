//! Checks the Video SDK API JWT as Zoom does: HS256 signed with the account's API secret, `iss` = API
//! key, `exp` in the future and `iat` not in the future, both by the sandbox's own token clock (which a
//! test may set behind the collector's). A bad signature, an unknown key and an `iat` ahead of the clock
//! get "Invalid access token.", an expired token "Access token is expired." (all 401, code 124).

use axum::http::{header, HeaderMap};
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::SdkState;

pub(crate) enum JwtCheck {
    Valid(usize),
    Expired(usize),
    /// The account the token claims to be from, when its `iss` names one.
    Invalid(Option<usize>),
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    exp: Option<i64>,
}

pub(crate) fn check(state: &SdkState, headers: &HeaderMap, now: i64) -> JwtCheck {
    let Some(token) = bearer(headers) else {
        return JwtCheck::Invalid(None);
    };
    // The issuer picks the secret, so it is read before the signature can be checked.
    let mut peek = Validation::new(Algorithm::HS256);
    peek.insecure_disable_signature_validation();
    peek.validate_exp = false;
    peek.required_spec_claims.clear();
    let iss = decode::<Claims>(token, &DecodingKey::from_secret(b""), &peek)
        .ok()
        .and_then(|t| t.claims.iss);
    let Some(account) = iss.as_deref().and_then(|k| state.account_by_key(k)) else {
        return JwtCheck::Invalid(None);
    };
    let spec = &state.accounts[account].spec;
    // Times are checked below against the sandbox's token clock, not the library's system clock.
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_exp = false;
    validation.set_required_spec_claims(&["exp", "iss"]);
    validation.set_issuer(&[spec.api_key.as_str()]);
    match decode::<Claims>(
        token,
        &DecodingKey::from_secret(spec.api_secret.as_bytes()),
        &validation,
    ) {
        Ok(t) if t.claims.iat.is_some_and(|iat| iat > now) => JwtCheck::Invalid(Some(account)),
        Ok(t) if t.claims.exp.is_none_or(|exp| exp <= now) => JwtCheck::Expired(account),
        Ok(_) => JwtCheck::Valid(account),
        Err(_) => JwtCheck::Invalid(Some(account)),
    }
}

impl JwtCheck {
    /// The account to log the request under.
    pub fn account(&self) -> Option<usize> {
        match self {
            JwtCheck::Valid(a) | JwtCheck::Expired(a) | JwtCheck::Invalid(Some(a)) => Some(*a),
            JwtCheck::Invalid(None) => None,
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

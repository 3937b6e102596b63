//! Checks the Video SDK API JWT as Zoom does: HS256 signed with the account's API secret, `iss` = API
//! key, `exp` in the future. A bad signature and an unknown key get "Invalid access token.", an expired
//! token "Access token is expired." (both 401, code 124).

use axum::http::{header, HeaderMap};
use jsonwebtoken::{decode, errors::ErrorKind, Algorithm, DecodingKey, Validation};
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
}

pub(crate) fn check(state: &SdkState, headers: &HeaderMap) -> JwtCheck {
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
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "iss"]);
    validation.set_issuer(&[spec.api_key.as_str()]);
    match decode::<Claims>(
        token,
        &DecodingKey::from_secret(spec.api_secret.as_bytes()),
        &validation,
    ) {
        Ok(_) => JwtCheck::Valid(account),
        Err(err) if matches!(err.kind(), ErrorKind::ExpiredSignature) => JwtCheck::Expired(account),
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

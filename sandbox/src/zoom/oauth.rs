//! `POST /oauth/token`: Server-to-Server OAuth (research/zoom-api.md §3a).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::json;

use crate::api::{self, parse_pairs};
use crate::reply::Reply;
use crate::requests::{Endpoint, RequestMeta};
use crate::server::ConnHandle;
use crate::zoom::errors::oauth_error;
use crate::Shared;

pub(crate) async fn token(
    State(state): State<Arc<Shared>>,
    conn: Option<Extension<ConnHandle>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    // Zoom accepts the parameters in the query string or the form body; both are in use.
    let mut params = parse_pairs(query.as_deref().unwrap_or_default().as_bytes());
    params.extend(parse_pairs(&body));
    let mut logged = params.clone();
    // Some OAuth clients put the secret in the body; the log must not keep it.
    logged.remove("client_secret");
    let meta = RequestMeta {
        endpoint: Endpoint::OauthToken,
        account_id: params.get("account_id").cloned(),
        report_type: None,
        query: logged,
        page: None,
        rate_account: None,
        session_id: None,
    };
    api::respond(&state, meta, conn.map(|c| c.0), |_| async {
        mint(&state, &headers, &params)
    })
    .await
}

fn mint(state: &Shared, headers: &HeaderMap, params: &BTreeMap<String, String>) -> Reply {
    let zoom = &state.zoom;
    let account = basic_credentials(headers).and_then(|(id, secret)| {
        let i = zoom.account_by_client(&id)?;
        (zoom.accounts[i].spec.client_secret == secret).then_some(i)
    });
    let Some(account) = account else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Invalid client_id or client_secret",
        );
    };
    match params.get("grant_type").map(String::as_str) {
        Some("account_credentials") => {}
        Some(other) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("Unsupported grant type: {other}"),
            )
        }
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Missing grant type",
            )
        }
    }
    let Some(account_id) = params.get("account_id") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing account_id",
        );
    };
    // The client id names one account; another account's id is as unknown as a made-up one.
    if zoom.accounts[account].spec.account_id != *account_id {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Invalid account_id",
        );
    }
    let token = zoom.mint_access_token(account);
    Reply::json(
        StatusCode::OK,
        &json!({
            "access_token": token,
            "token_type": "bearer",
            "expires_in": zoom.access_token_ttl.as_secs(),
            "scope": "report:read:admin",
            "api_url": state.base_url,
        }),
    )
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

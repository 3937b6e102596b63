//! The two Video SDK endpoints, with Zoom's validation, horizon, page tokens and error bodies.
// The `Err` of these helpers is the error response itself, built once per refused request: boxing it would
// only add an allocation.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::Extension;
use chrono::{NaiveDate, Utc};
use percent_encoding::percent_decode_str;
use serde::Serialize;

use super::data::{SessionRow, SessionSlot, UserRow};
use super::jwt::{self, JwtCheck};
use crate::api::{self, parse_pairs};
use crate::data::last_of_month;
use crate::page_token::PageToken;
use crate::reply::Reply;
use crate::requests::{Endpoint, RequestMeta};
use crate::server::ConnHandle;
use crate::zoom::errors::{
    expired_access_token, invalid_access_token, invalid_field, page_token_invalid, zoom_error,
};
use crate::zoom::reports::{check_month_range, horizon};
use crate::Shared;

const DEFAULT_PAGE_SIZE: u32 = 30;
const MAX_PAGE_SIZE: u32 = 300;
const LIST: &str = "sdk_sessions";
const USERS: &str = "sdk_session_users";

#[derive(Serialize)]
struct SessionsPage<'a> {
    from: String,
    to: String,
    page_size: u32,
    next_page_token: String,
    sessions: &'a [SessionRow],
}

#[derive(Serialize)]
struct UsersPage<'a> {
    page_size: u32,
    next_page_token: String,
    users: &'a [UserRow],
}

fn meta(
    state: &Shared,
    endpoint: Endpoint,
    auth: &JwtCheck,
    query: &BTreeMap<String, String>,
) -> RequestMeta {
    let page = match query.get("next_page_token").filter(|t| !t.is_empty()) {
        None => Some(1),
        Some(t) => state.zoom.page_tokens.decode(t).map(|t| t.p),
    };
    RequestMeta {
        endpoint,
        account_id: auth
            .account()
            .map(|a| state.videosdk.accounts[a].spec.api_key.clone()),
        report_type: None,
        query: query.clone(),
        page,
        rate_account: match auth {
            JwtCheck::Valid(a) => Some(*a),
            JwtCheck::Expired(_) | JwtCheck::Invalid(_) => None,
        },
        session_id: None,
    }
}

pub(crate) async fn list_sessions(
    State(state): State<Arc<Shared>>,
    conn: Option<Extension<ConnHandle>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = parse_pairs(query.as_deref().unwrap_or_default().as_bytes());
    let auth = jwt::check(&state.videosdk, &headers, state.token_clock());
    let meta = meta(&state, Endpoint::SdkSessions, &auth, &query);
    let (state, query) = (&*state, &query);
    api::respond(state, meta, conn.map(|c| c.0), move |clamp| async move {
        match sessions(state, auth, query, clamp) {
            Ok(reply) | Err(reply) => reply,
        }
    })
    .await
}

pub(crate) async fn session_users(
    State(state): State<Arc<Shared>>,
    conn: Option<Extension<ConnHandle>>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(query): RawQuery,
) -> Response {
    let query = parse_pairs(query.as_deref().unwrap_or_default().as_bytes());
    let auth = jwt::check(&state.videosdk, &headers, state.token_clock());
    let mut meta = meta(&state, Endpoint::SdkSessionUsers, &auth, &query);
    meta.session_id = session_id_from(uri.path()).ok();
    let (state, query) = (&*state, &query);
    api::respond(state, meta, conn.map(|c| c.0), move |_| async move {
        match users(state, auth, uri.path(), query) {
            Ok(reply) | Err(reply) => reply,
        }
    })
    .await
}

pub(super) fn authorised(auth: JwtCheck) -> Result<usize, Reply> {
    match auth {
        JwtCheck::Valid(a) => Ok(a),
        JwtCheck::Expired(_) => Err(expired_access_token()),
        JwtCheck::Invalid(_) => Err(invalid_access_token()),
    }
}

/// `past`, or `None` for `live` (Zoom's default when `type` is absent): nothing is live in the sandbox.
fn past(query: &BTreeMap<String, String>) -> Result<bool, Reply> {
    match query.get("type").map(String::as_str) {
        None | Some("live") => Ok(false),
        Some("past") => Ok(true),
        Some(t) => Err(invalid_field(
            "type",
            &format!("Invalid value '{t}': expected 'past' or 'live'."),
        )),
    }
}

fn page_size(query: &BTreeMap<String, String>) -> Result<u32, Reply> {
    match query.get("page_size") {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(s) => match s.parse::<u32>() {
            Ok(n) if n >= 1 => Ok(n.min(MAX_PAGE_SIZE)),
            _ => Err(invalid_field(
                "page_size",
                &format!("Invalid value '{s}': expected a positive integer."),
            )),
        },
    }
}

/// Zoom's dates are exactly `yyyy-mm-dd`.
fn date(field: &str, query: &BTreeMap<String, String>) -> Result<NaiveDate, Reply> {
    let Some(s) = query.get(field) else {
        return Err(invalid_field(
            field,
            &format!("Required field '{field}' is missing."),
        ));
    };
    let shaped = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    shaped
        .then(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        .flatten()
        .ok_or_else(|| {
            invalid_field(
                field,
                &format!("Invalid date '{s}': expected the format yyyy-mm-dd."),
            )
        })
}

/// The cursor a page token carries, if it belongs to exactly this query and is still fresh.
fn cursor(
    state: &Shared,
    query: &BTreeMap<String, String>,
    expect: &PageToken,
) -> Result<(u32, u64), Reply> {
    let Some(t) = query.get("next_page_token").filter(|t| !t.is_empty()) else {
        return Ok((1, 0));
    };
    let zoom = &state.zoom;
    let ttl_ms = i64::try_from(zoom.page_token_ttl.as_millis()).unwrap_or(i64::MAX);
    let now_ms = Utc::now().timestamp_millis();
    zoom.page_tokens
        .decode(t)
        .filter(|t| {
            (&t.a, &t.t, &t.f, &t.to, t.s)
                == (&expect.a, &expect.t, &expect.f, &expect.to, expect.s)
                && t.e == zoom.page_epoch()
                && now_ms.saturating_sub(t.i) < ttl_ms
        })
        .map(|t| (t.p, t.c))
        .ok_or_else(page_token_invalid)
}

fn token(state: &Shared, base: &PageToken, page: u32, next: u64) -> String {
    state.zoom.page_tokens.encode(&PageToken {
        p: page.saturating_add(1),
        c: next,
        e: state.zoom.page_epoch(),
        i: Utc::now().timestamp_millis(),
        ..base.clone()
    })
}

fn sessions(
    state: &Shared,
    auth: JwtCheck,
    query: &BTreeMap<String, String>,
    clamp_days: Option<u32>,
) -> Result<Reply, Reply> {
    let account = authorised(auth)?;
    let is_past = past(query)?;
    let from = date("from", query)?;
    let to = date("to", query)?;
    let size = page_size(query)?;
    check_month_range(
        from,
        to,
        state.today(),
        "The date range defined by the from and to parameters should only be a one month range.",
    )?;
    let sdk = &state.videosdk;
    let acct = &sdk.accounts[account];
    let base = PageToken {
        a: acct.spec.api_key.clone(),
        t: LIST.to_owned(),
        f: from.to_string(),
        to: to.to_string(),
        s: size,
        p: 0,
        c: 0,
        r: 0,
        e: 0,
        i: 0,
    };
    let (page, start) = cursor(state, query, &base)?;
    let month = crate::data::first_of_month(from);
    let mut rows = Vec::new();
    let mut next = None;
    if is_past {
        let n = month_len(state, account, month);
        let mut index = u32::try_from(start).unwrap_or(u32::MAX);
        while index < n {
            let Some((slot, id)) = session_at(state, account, month, index) else {
                break;
            };
            let day = slot.start.date_naive();
            if day >= from && day <= to {
                if rows.len() == size as usize {
                    next = Some(u64::from(index));
                    break;
                }
                let open = sdk.is_open(account, &id);
                rows.push(acct.session(&slot, open, id));
            }
            index += 1;
        }
    }
    let shown_from = match clamp_days {
        Some(days) => from
            .checked_add_days(chrono::Days::new(u64::from(days)))
            .unwrap_or(from),
        None => from,
    };
    Ok(Reply::json(
        StatusCode::OK,
        &SessionsPage {
            from: shown_from.to_string(),
            to: to.to_string(),
            page_size: size,
            next_page_token: next
                .map(|c| token(state, &base, page, c))
                .unwrap_or_default(),
            sessions: &rows,
        },
    ))
}

/// The generated sessions of the month, then (in today's month) the extra ones.
fn month_len(state: &Shared, account: usize, month: NaiveDate) -> u32 {
    let generated = state.videosdk.accounts[account].spec.sessions_per_month;
    if month == crate::data::first_of_month(state.today()) {
        let extra = u32::try_from(state.videosdk.extras(account).len()).unwrap_or(u32::MAX);
        generated.saturating_add(extra)
    } else {
        generated
    }
}

/// The session at `index` of the month's listing order, with its id.
fn session_at(
    state: &Shared,
    account: usize,
    month: NaiveDate,
    index: u32,
) -> Option<(SessionSlot, String)> {
    let acct = &state.videosdk.accounts[account];
    let n = acct.spec.sessions_per_month;
    if index < n {
        let id = acct.session_id(month, index);
        let slot = state
            .videosdk
            .served_slot(account, &id, acct.slot(month, index));
        return Some((slot, id));
    }
    if month != crate::data::first_of_month(state.today()) {
        return None;
    }
    let k = index - n;
    let id = state.videosdk.extras(account).into_iter().nth(k as usize)?;
    let slot = state
        .videosdk
        .served_slot(account, &id, acct.extra_slot(month, k));
    Some((slot, id))
}

/// The slot of a session id the account serves: an extra one, or a generated one.
fn find_session(state: &Shared, account: usize, id: &str) -> Option<SessionSlot> {
    let acct = &state.videosdk.accounts[account];
    if let Some(k) = state.videosdk.extras(account).iter().position(|e| e == id) {
        let month = crate::data::first_of_month(state.today());
        let slot = acct.extra_slot(month, u32::try_from(k).ok()?);
        return Some(state.videosdk.served_slot(account, id, slot));
    }
    let (month, index) = acct.parse_session_id(id)?;
    Some(
        state
            .videosdk
            .served_slot(account, id, acct.slot(month, index)),
    )
}

fn no_such_session(id: &str) -> Reply {
    zoom_error(
        StatusCode::NOT_FOUND,
        3001,
        &format!("Session does not exist: {id}"),
    )
}

/// Zoom's gateway decodes the segment once before routing, so an id starting with `/` or holding `//`
/// only survives when it was encoded twice; a second layer of encoding is then decoded by the API.
fn session_id_from(path: &str) -> Result<String, Reply> {
    let segment = path
        .strip_prefix("/v2/videosdk/sessions/")
        .and_then(|rest| rest.strip_suffix("/users"))
        .unwrap_or_default();
    let once = percent_decode_str(segment).decode_utf8_lossy().into_owned();
    if once.starts_with('/') || once.contains("//") {
        return Err(no_such_session(&once.replace("//", "/")));
    }
    // A gateway normalises the decoded path: a `.` or `..` component is gone before the API sees it.
    if once.split('/').any(|part| part == "." || part == "..") {
        return Err(no_such_session(&once));
    }
    if once.contains('%') {
        return Ok(percent_decode_str(&once).decode_utf8_lossy().into_owned());
    }
    Ok(once)
}

fn users(
    state: &Shared,
    auth: JwtCheck,
    path: &str,
    query: &BTreeMap<String, String>,
) -> Result<Reply, Reply> {
    let account = authorised(auth)?;
    let id = session_id_from(path)?;
    let is_past = past(query)?;
    let size = page_size(query)?;
    let sdk = &state.videosdk;
    let acct = &sdk.accounts[account];
    let today = state.today();
    let slot = find_session(state, account, &id).ok_or_else(|| no_such_session(&id))?;
    // Zoom keeps six months; a session that has not happened yet does not exist either.
    if slot.start.date_naive() < horizon(today) || slot.start.date_naive() > today {
        return Err(no_such_session(&id));
    }
    let base = PageToken {
        a: acct.spec.api_key.clone(),
        t: USERS.to_owned(),
        f: id.clone(),
        to: String::new(),
        s: size,
        p: 0,
        c: 0,
        r: 0,
        e: 0,
        i: 0,
    };
    let (page, start) = cursor(state, query, &base)?;
    let all = if is_past {
        acct.users(&slot, sdk.is_open(account, &id))
    } else {
        Vec::new()
    };
    let start = usize::try_from(start).unwrap_or(usize::MAX).min(all.len());
    let end = start.saturating_add(size as usize).min(all.len());
    let next = (end < all.len()).then(|| token(state, &base, page, end as u64));
    Ok(Reply::json(
        StatusCode::OK,
        &UsersPage {
            page_size: size,
            next_page_token: next.unwrap_or_default(),
            users: &all[start..end],
        },
    ))
}

/// What a full walk returns right now, for tests: the month's sessions, or one session's users.
pub(crate) fn month_truth(
    state: &Shared,
    account: usize,
    month: NaiveDate,
) -> Vec<serde_json::Value> {
    let Some(acct) = state.videosdk.accounts.get(account) else {
        return Vec::new();
    };
    let month = crate::data::first_of_month(month);
    let to = last_of_month(month).min(state.today());
    (0..month_len(state, account, month))
        .filter_map(|i| session_at(state, account, month, i))
        .filter(|(s, _)| s.start.date_naive() <= to)
        .map(|(s, id)| {
            let open = state.videosdk.is_open(account, &id);
            acct.session(&s, open, id)
        })
        .filter_map(|row| serde_json::to_value(row).ok())
        .collect()
}

pub(crate) fn users_truth(state: &Shared, account: usize, id: &str) -> Vec<serde_json::Value> {
    let Some(acct) = state.videosdk.accounts.get(account) else {
        return Vec::new();
    };
    let Some(slot) = find_session(state, account, id) else {
        return Vec::new();
    };
    acct.users(&slot, state.videosdk.is_open(account, id))
        .into_iter()
        .filter_map(|row| serde_json::to_value(row).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_decoded_as_zoom_does() {
        let path = |seg: &str| format!("/v2/videosdk/sessions/{seg}/users");
        assert_eq!(
            session_id_from(&path("%252Fab%252F%252Fc%252Bd%253D%253D")).ok(),
            Some("/ab//c+d==".to_owned())
        );
        assert_eq!(
            session_id_from(&path("sfk%2FaOFJ%3D%3D")).ok(),
            Some("sfk/aOFJ==".to_owned())
        );
        assert!(session_id_from(&path("%2Fab%2F%2Fc%2Bd%3D%3D")).is_err());
        assert!(session_id_from(&path("x%2F..%2Fy")).is_err());
        assert_eq!(
            session_id_from(&path("x%252F%252E%252E%252Fy")).ok(),
            Some("x/../y".to_owned())
        );
        assert_eq!(
            session_id_from(&path("%252E%252E")).ok(),
            Some("..".to_owned())
        );
        assert_eq!(session_id_from(&path("%2525")).ok(), Some("%".to_owned()));
        assert_eq!(
            session_id_from(&path("a%25252Fb")).ok(),
            Some("a%2Fb".to_owned())
        );
        assert_eq!(session_id_from(&path("a+b")).ok(), Some("a+b".to_owned()));
    }
}

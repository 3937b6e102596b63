//! `GET /v2/report/daily?year&month`: the account's usage per day of a month (research/zoom-api.md §2e).
//! Also the `year`/`month` validation and horizon the Video SDK's daily report shares.
// The `Err` of these helpers is the error response itself, built once per refused request.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use chrono::{Datelike, NaiveDate};
use serde_json::{json, Value};

use crate::api::{self, parse_pairs};
use crate::data::{hash, last_of_month};
use crate::reply::Reply;
use crate::requests::{Endpoint, RequestMeta};
use crate::server::ConnHandle;
use crate::zoom::errors::{bad_request, expired_access_token, invalid_access_token, invalid_field};
use crate::zoom::reports::horizon;
use crate::zoom::users::account_key;
use crate::zoom::TokenState;
use crate::Shared;

const SALT_DAILY: u64 = 0xda11_0001;

/// Zoom's refusal of a month it no longer (or not yet) serves, as its neighbouring report documents it.
pub(crate) fn outside_daily_horizon() -> Reply {
    bad_request(
        "Daily report can only be provided for a month that falls within the recent 6 months.",
    )
}

/// The month a daily report request names, and the days it can serve: from the month's first or the
/// horizon day, whichever is later, to the month's last or today. `year` and `month` are required
/// integers, and the month must end on or after the horizon (the month that straddles it is served from
/// the horizon day on, as Zoom still has those days) and not be in the future.
pub(crate) fn requested_month(
    query: &BTreeMap<String, String>,
    today: NaiveDate,
) -> Result<(NaiveDate, NaiveDate, NaiveDate), Reply> {
    let number = |field: &str| -> Result<u32, Reply> {
        let Some(s) = query.get(field) else {
            return Err(invalid_field(
                field,
                &format!("Required field '{field}' is missing."),
            ));
        };
        s.parse::<u32>().map_err(|_| {
            invalid_field(field, &format!("Invalid value '{s}': expected an integer."))
        })
    };
    let (year, month) = (number("year")?, number("month")?);
    if !(1..=12).contains(&month) {
        return Err(invalid_field(
            "month",
            &format!("Invalid value '{month}': expected 1 to 12."),
        ));
    }
    let first = i32::try_from(year)
        .ok()
        .and_then(|y| NaiveDate::from_ymd_opt(y, month, 1))
        .ok_or_else(|| invalid_field("year", &format!("Invalid value '{year}'.")))?;
    if first > today || last_of_month(first) < horizon(today) {
        return Err(outside_daily_horizon());
    }
    Ok((
        first,
        first.max(horizon(today)),
        last_of_month(first).min(today),
    ))
}

/// The served reply: `{year, month, dates}`.
pub(crate) fn daily_reply(first: NaiveDate, dates: Vec<Value>) -> Reply {
    Reply::json(
        StatusCode::OK,
        &json!({ "year": first.year(), "month": first.month(), "dates": dates }),
    )
}

/// Every day of the month up to `to` is listed, quiet days with zeros: the numbers are a pure function of
/// the seed, the account and the day, and scale with the account's users.
pub(crate) fn days(
    seed: u64,
    account_id: &str,
    users: u64,
    first: NaiveDate,
    to: NaiveDate,
) -> Vec<Value> {
    let key = account_key(account_id);
    first
        .iter_days()
        .take_while(|d| *d <= to)
        .map(|day| {
            let h = hash(&[
                seed,
                key,
                SALT_DAILY,
                u64::from(day.num_days_from_ce() as u32),
            ]);
            let weekend = day.weekday().number_from_monday() > 5;
            // Most weekend days are quiet, so the report has zero days as Zoom's does.
            let meetings = if weekend && h % 3 != 0 {
                0
            } else {
                h % (users / 20 + 4)
            };
            let participants = meetings * (2 + (h >> 16) % 5);
            let minutes = participants * (15 + (h >> 24) % 45);
            let new_users = if meetings == 0 { 0 } else { (h >> 32) % 3 };
            json!({
                "date": day.format("%Y-%m-%d").to_string(),
                "new_users": new_users,
                "meetings": meetings,
                "participants": participants,
                "meeting_minutes": minutes,
            })
        })
        .collect()
}

/// What `/report/daily` serves for that account and month now (any day names the month); empty for
/// unknown accounts.
pub(crate) fn truth(state: &Shared, account_id: &str, month: NaiveDate) -> Vec<Value> {
    let zoom = &state.zoom;
    let Some(a) = zoom.account_index(account_id) else {
        return Vec::new();
    };
    let first = crate::data::first_of_month(month);
    let to = last_of_month(first).min(state.today());
    days(
        zoom.seed,
        account_id,
        zoom.accounts[a].spec.users,
        first.max(horizon(state.today())),
        to,
    )
}

pub(crate) async fn report_daily(
    State(state): State<Arc<Shared>>,
    conn: Option<Extension<ConnHandle>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = parse_pairs(query.as_deref().unwrap_or_default().as_bytes());
    let zoom = &state.zoom;
    let token = bearer(&headers).and_then(|t| zoom.use_access_token(t));
    let account = token.as_ref().map(|t| match t {
        TokenState::Valid(a) | TokenState::Expired(a) => *a,
    });
    let meta = RequestMeta {
        endpoint: Endpoint::ReportDaily,
        account_id: account.map(|a| zoom.accounts[a].spec.account_id.clone()),
        report_type: None,
        query: query.clone(),
        page: Some(1),
        // Zoom refuses an expired token before counting it against any limit.
        rate_account: match token {
            Some(TokenState::Valid(a)) => Some(a),
            Some(TokenState::Expired(_)) | None => None,
        },
        session_id: None,
    };
    let (state, query) = (&*state, &query);
    api::respond(state, meta, conn.map(|c| c.0), move |_| async move {
        match serve(state, token, query) {
            Ok(reply) | Err(reply) => reply,
        }
    })
    .await
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn serve(
    state: &Shared,
    token: Option<TokenState>,
    query: &BTreeMap<String, String>,
) -> Result<Reply, Reply> {
    let account = match token {
        None => return Err(invalid_access_token()),
        Some(TokenState::Expired(_)) => return Err(expired_access_token()),
        Some(TokenState::Valid(a)) => a,
    };
    let (first, from, to) = requested_month(query, state.today())?;
    let spec = &state.zoom.accounts[account].spec;
    Ok(daily_reply(
        first,
        days(state.zoom.seed, &spec.account_id, spec.users, from, to),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn q(year: &str, month: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("year".to_owned(), year.to_owned()),
            ("month".to_owned(), month.to_owned()),
        ])
    }

    #[test]
    fn months_outside_the_six_served_are_refused() {
        let today = d("2026-11-24");
        assert_eq!(
            requested_month(&q("2026", "11"), today).ok(),
            Some((d("2026-11-01"), d("2026-11-01"), d("2026-11-24")))
        );
        assert_eq!(
            requested_month(&q("2026", "6"), today).ok(),
            Some((d("2026-06-01"), d("2026-06-01"), d("2026-06-30")))
        );
        // May straddles the horizon 2026-05-25: served from that day on.
        assert_eq!(
            requested_month(&q("2026", "5"), today).ok(),
            Some((d("2026-05-01"), d("2026-05-25"), d("2026-05-31")))
        );
        // April ended before the horizon; December has not begun.
        for (y, m) in [("2026", "4"), ("2026", "12"), ("2026", "13"), ("x", "1")] {
            let refused = requested_month(&q(y, m), today).err().unwrap();
            assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{y}-{m}");
        }
    }

    #[test]
    fn days_are_deterministic_and_cover_the_range() {
        let a = days(7, "acme-account", 500, d("2026-11-01"), d("2026-11-24"));
        assert_eq!(a.len(), 24);
        assert_eq!(
            a,
            days(7, "acme-account", 500, d("2026-11-01"), d("2026-11-24"))
        );
        assert!(a.iter().any(|d| d["meetings"] == 0));
        assert!(a.iter().any(|d| d["meetings"].as_u64() > Some(0)));
    }
}

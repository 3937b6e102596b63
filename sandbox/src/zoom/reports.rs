//! `GET /v2/report/users`: the active/inactive host report (research/zoom-api.md §1).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use chrono::{Months, NaiveDate, Utc};
use serde::Serialize;

use crate::api::{self, parse_pairs};
use crate::data::{first_of_month, last_of_month};
use crate::page_token::PageToken;
use crate::reply::Reply;
use crate::requests::{Endpoint, RequestMeta};
use crate::server::ConnHandle;
use crate::zoom::errors::{
    bad_request, expired_access_token, invalid_access_token, invalid_field, outside_horizon,
    page_token_invalid, server_error,
};
use crate::zoom::users::UserRow;
use crate::zoom::{ReportType, TokenState};
use crate::Shared;

const DEFAULT_PAGE_SIZE: u32 = 30;
const MAX_PAGE_SIZE: u32 = 300;

/// What a full walk of one month must return, for comparing with what a client stored.
#[derive(Clone, Debug, Serialize)]
pub struct ReportTruth {
    pub total_records: u64,
    pub total_meetings: u64,
    pub total_participants: u64,
    pub total_meeting_minutes: u64,
    /// Exactly the JSON user objects served, in serving order.
    pub users: Vec<serde_json::Value>,
}

#[derive(Serialize)]
struct ReportPage<'a> {
    from: String,
    to: String,
    page_count: u64,
    page_number: u32,
    page_size: u32,
    total_records: u64,
    next_page_token: String,
    total_meetings: u64,
    total_participants: u64,
    total_meeting_minutes: u64,
    users: &'a [UserRow],
}

pub(crate) async fn report_users(
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
    // Zoom refuses an expired token before counting it against any limit.
    let rate_account = match token {
        Some(TokenState::Valid(a)) => Some(a),
        Some(TokenState::Expired(_)) | None => None,
    };
    let report_type = match query.get("type") {
        None => Some(ReportType::Active),
        Some(t) => ReportType::parse(t),
    };
    let page = match query.get("next_page_token").filter(|t| !t.is_empty()) {
        None => Some(1),
        Some(t) => zoom.page_tokens.decode(t).map(|t| t.p),
    };
    let meta = RequestMeta {
        endpoint: Endpoint::ReportUsers,
        account_id: account.map(|a| zoom.accounts[a].spec.account_id.clone()),
        report_type,
        query: query.clone(),
        page,
        rate_account,
        session_id: None,
    };
    let (state, headers, query) = (&*state, &headers, &query);
    api::respond(state, meta, conn.map(|c| c.0), move |clamp| async move {
        match serve(state, headers, query, clamp).await {
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

/// Zoom's dates are exactly `yyyy-mm-dd`; chrono alone would accept `2024-6-1`.
/// The error is the message for Zoom's "Invalid field." body.
fn parse_date(field: &str, query: &BTreeMap<String, String>) -> Result<NaiveDate, String> {
    let Some(s) = query.get(field) else {
        return Err(format!("Required field '{field}' is missing."));
    };
    let shaped = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    shaped
        .then(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        .flatten()
        .ok_or_else(|| format!("Invalid date '{s}': expected the format yyyy-mm-dd."))
}

/// The earliest `from` Zoom serves: six calendar months back (day clamped to
/// the month's length) plus one day (DESIGN §3).
/// Zoom's checks on a monthly report range, in Zoom's order: `from <= to <= today`, within one calendar
/// month (`range_message` is the endpoint's own wording), and not before the six-month horizon.
// The error is the reply itself, built once per refused request; boxing it buys nothing here.
#[allow(clippy::result_large_err)]
pub(crate) fn check_month_range(
    from: NaiveDate,
    to: NaiveDate,
    today: NaiveDate,
    range_message: &str,
) -> Result<(), Reply> {
    if from > to {
        return Err(invalid_field("to", "'to' must not be before 'from'."));
    }
    if to > today {
        return Err(invalid_field(
            "to",
            &format!("'to' must not be after today ({today})."),
        ));
    }
    if to > last_of_month(from) {
        return Err(bad_request(range_message));
    }
    if from < horizon(today) {
        return Err(outside_horizon());
    }
    Ok(())
}

pub(crate) fn horizon(today: NaiveDate) -> NaiveDate {
    today
        .checked_sub_months(Months::new(6))
        .and_then(|d| d.succ_opt())
        .unwrap_or(NaiveDate::MIN)
}

async fn serve(
    state: &Shared,
    headers: &HeaderMap,
    query: &BTreeMap<String, String>,
    clamp_days: Option<u32>,
) -> Result<Reply, Reply> {
    let zoom = &state.zoom;
    let account = match bearer(headers).and_then(|t| zoom.access_token(t)) {
        None => return Err(invalid_access_token()),
        Some(TokenState::Expired(_)) => return Err(expired_access_token()),
        Some(TokenState::Valid(a)) => a,
    };
    let report_type = match query.get("type") {
        None => ReportType::Active,
        Some(t) => ReportType::parse(t).ok_or_else(|| {
            invalid_field(
                "type",
                &format!("Invalid value '{t}': expected 'active' or 'inactive'."),
            )
        })?,
    };
    let from = parse_date("from", query).map_err(|m| invalid_field("from", &m))?;
    let to = parse_date("to", query).map_err(|m| invalid_field("to", &m))?;
    let page_size = match query.get("page_size") {
        None => DEFAULT_PAGE_SIZE,
        Some(s) => match s.parse::<u32>() {
            Ok(n) if n >= 1 => n.min(MAX_PAGE_SIZE),
            _ => {
                return Err(invalid_field(
                    "page_size",
                    &format!("Invalid value '{s}': expected a positive integer."),
                ))
            }
        },
    };
    check_month_range(
        from,
        to,
        state.today(),
        "The date range defined by the from and to parameters should only be one month.",
    )?;

    let from_s = from.format("%Y-%m-%d").to_string();
    let to_s = to.format("%Y-%m-%d").to_string();
    let account_id = &zoom.accounts[account].spec.account_id;
    let now_ms = Utc::now().timestamp_millis();
    let (page, cursor, rank) = match query.get("next_page_token").filter(|t| !t.is_empty()) {
        None => (1, 0, 0),
        Some(t) => {
            let ttl_ms = i64::try_from(zoom.page_token_ttl.as_millis()).unwrap_or(i64::MAX);
            let token = zoom
                .page_tokens
                .decode(t)
                .filter(|t| {
                    t.a == *account_id
                        && t.t == report_type.as_str()
                        && t.f == from_s
                        && t.to == to_s
                        && t.s == page_size
                        && t.e == zoom.page_epoch()
                        && now_ms.saturating_sub(t.i) < ttl_ms
                })
                .ok_or_else(page_token_invalid)?;
            (token.p, token.c, token.r)
        }
    };

    let month = first_of_month(from);
    let base = zoom.base_totals(account, month).await.map_err(|err| {
        tracing::error!(%err, "cannot compute report totals");
        server_error()
    })?;
    let view = zoom.view(account, month).ok_or_else(server_error)?;
    let totals = view.apply_overrides(base).get(report_type);
    // Stopping at the total saves scanning the tail of the account after the last row.
    let limit = totals
        .records
        .saturating_sub(rank)
        .min(u64::from(page_size));
    let (rows, end) = view.scan(report_type, cursor, limit as usize);
    let served = rank + rows.len() as u64;
    let next_page_token = if served >= totals.records || end >= view.users() {
        String::new()
    } else {
        zoom.page_tokens.encode(&PageToken {
            a: account_id.clone(),
            t: report_type.as_str().to_owned(),
            f: from_s.clone(),
            to: to_s.clone(),
            s: page_size,
            p: page.saturating_add(1),
            c: end,
            r: served,
            e: zoom.page_epoch(),
            i: now_ms,
        })
    };
    let shown_from = match clamp_days {
        Some(days) => from
            .checked_add_days(chrono::Days::new(u64::from(days)))
            .unwrap_or(from)
            .format("%Y-%m-%d")
            .to_string(),
        None => from_s,
    };
    Ok(Reply::json(
        StatusCode::OK,
        &ReportPage {
            from: shown_from,
            to: to_s,
            page_count: totals.records.div_ceil(u64::from(page_size)),
            page_number: page,
            page_size,
            total_records: totals.records,
            next_page_token,
            total_meetings: totals.meetings,
            total_participants: totals.participants,
            total_meeting_minutes: totals.minutes,
            users: &rows,
        },
    ))
}

/// A full walk of the month, materialised: for tests and small accounts.
pub(crate) fn truth(
    state: &Shared,
    account: usize,
    month: NaiveDate,
    t: ReportType,
) -> ReportTruth {
    let mut truth = ReportTruth {
        total_records: 0,
        total_meetings: 0,
        total_participants: 0,
        total_meeting_minutes: 0,
        users: Vec::new(),
    };
    let Some(view) = state.zoom.view(account, first_of_month(month)) else {
        return truth;
    };
    let (rows, _) = view.scan(t, 0, usize::MAX);
    for row in &rows {
        truth.total_records += 1;
        truth.total_meetings += row.meetings;
        truth.total_participants += row.participants;
        truth.total_meeting_minutes += row.meeting_minutes;
    }
    truth.users = rows
        .iter()
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect();
    truth
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn horizon_clamps_the_day() {
        assert_eq!(horizon(d(2024, 8, 15)), d(2024, 2, 16));
        assert_eq!(horizon(d(2024, 8, 31)), d(2024, 3, 1));
        assert_eq!(horizon(d(2025, 1, 1)), d(2024, 7, 2));
    }

    #[test]
    fn dates_are_strict() {
        let q = |v: &str| BTreeMap::from([("from".to_owned(), v.to_owned())]);
        assert!(parse_date("from", &q("2024-06-01")).is_ok());
        assert!(parse_date("from", &q("2024-6-1")).is_err());
        assert!(parse_date("from", &q("2024-02-30")).is_err());
        assert!(parse_date("from", &BTreeMap::new()).is_err());
    }
}

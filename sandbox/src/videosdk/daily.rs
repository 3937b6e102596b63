//! `GET /v2/videosdk/report/daily?year&month`: the Video SDK usage per day, derived from the very sessions
//! the session list serves, so the two reports agree unless a test makes a day disagree
//! (`Control::set_sdk_daily_sessions`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Extension;
use chrono::NaiveDate;
use serde_json::{json, Value};

use super::api::authorised;
use super::jwt::{self, JwtCheck};
use crate::api::{self, parse_pairs};
use crate::data::{first_of_month, last_of_month};
use crate::lock;
use crate::reply::Reply;
use crate::requests::{Endpoint, RequestMeta};
use crate::server::ConnHandle;
use crate::zoom::daily::{daily_reply, requested_month};
use crate::zoom::reports::horizon;
use crate::Shared;

/// Sessions, users and minutes per day of sessions starting from `from` to `to` (one month). A day without
/// sessions is not listed (the case the collector must not read as zero before the month is final), unless
/// an override gives it a count.
fn days(state: &Shared, account: usize, from: NaiveDate, to: NaiveDate) -> Vec<Value> {
    let first = first_of_month(from);
    let sdk = &state.videosdk;
    let Some(acct) = sdk.accounts.get(account) else {
        return Vec::new();
    };
    let mut per_day: BTreeMap<NaiveDate, (u64, u64, u64)> = BTreeMap::new();
    for index in 0..acct.spec.sessions_per_month {
        let slot = acct.slot(first, index);
        let day = slot.start.date_naive();
        if day < from || day > to {
            continue;
        }
        let id = acct.session_id(first, index);
        let row = acct.session(&slot, sdk.is_open(account, &id), id.clone());
        let entry = per_day.entry(day).or_default();
        entry.0 += 1;
        entry.1 += u64::from(row.user_count);
        entry.2 += (slot.end - slot.start).num_minutes().max(0) as u64;
    }
    let overrides: HashMap<NaiveDate, u64> = lock(&sdk.daily_sessions)
        .iter()
        .filter(|((a, day), _)| *a == account && *day >= from && *day <= to)
        .map(|((_, day), n)| (*day, *n))
        .collect();
    for (day, sessions) in overrides {
        per_day.entry(day).or_default().0 = sessions;
    }
    per_day
        .into_iter()
        .map(|(day, (sessions, users, minutes))| {
            json!({
                "date": day.format("%Y-%m-%d").to_string(),
                "sessions": sessions,
                "users": users,
                "session_minutes": minutes,
            })
        })
        .collect()
}

/// What the endpoint serves for that account and month now (any day names the month).
pub(crate) fn truth(state: &Shared, account: usize, month: NaiveDate) -> Vec<Value> {
    let first = first_of_month(month);
    days(
        state,
        account,
        first.max(horizon(state.today())),
        last_of_month(first).min(state.today()),
    )
}

pub(crate) async fn report_daily(
    State(state): State<Arc<Shared>>,
    conn: Option<Extension<ConnHandle>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = parse_pairs(query.as_deref().unwrap_or_default().as_bytes());
    let auth = jwt::check(&state.videosdk, &headers, state.token_clock());
    let meta = RequestMeta {
        endpoint: Endpoint::SdkReportDaily,
        account_id: auth
            .account()
            .map(|a| state.videosdk.accounts[a].spec.api_key.clone()),
        report_type: None,
        query: query.clone(),
        page: Some(1),
        rate_account: match &auth {
            JwtCheck::Valid(a) => Some(*a),
            JwtCheck::Expired(_) | JwtCheck::Invalid(_) => None,
        },
        session_id: None,
    };
    let (state, query) = (&*state, &query);
    api::respond(state, meta, conn.map(|c| c.0), move |_| async move {
        match serve(state, auth, query) {
            Ok(reply) | Err(reply) => reply,
        }
    })
    .await
}

// The `Err` is the error response itself, built once per refused request.
#[allow(clippy::result_large_err)]
fn serve(state: &Shared, auth: JwtCheck, query: &BTreeMap<String, String>) -> Result<Reply, Reply> {
    let account = authorised(auth)?;
    let (first, from, to) = requested_month(query, state.today())?;
    Ok(daily_reply(first, days(state, account, from, to)))
}

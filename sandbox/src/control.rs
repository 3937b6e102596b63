//! Steering the sandbox: in-process (`Control`) and over HTTP under
//! `/_sandbox/`, for the demo, benchmarks and manual testing in another process.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::json;

use crate::data::first_of_month;
use crate::faults::FaultRule;
use crate::requests::RequestRecord;
use crate::zoom::users::{account_key, user_id};
use crate::zoom::{reports, ReportTruth, ReportType};
use crate::Shared;

/// A cheap handle on a running sandbox's state.
#[derive(Clone)]
pub struct Control {
    pub(crate) state: Arc<Shared>,
}

impl Control {
    /// Rules are checked in the order added; the first that matches fires.
    pub fn add_fault(&self, rule: FaultRule) {
        self.state.faults.add(rule);
    }

    pub fn clear_faults(&self) {
        self.state.faults.clear();
    }

    /// The rules still in place (a rule whose `times` ran out shows `times: 0`).
    pub fn faults(&self) -> Vec<FaultRule> {
        self.state.faults.list()
    }

    /// Every page token issued so far is now invalid, as if 15 minutes had passed.
    pub fn expire_page_tokens(&self) {
        self.state.zoom.expire_page_tokens();
    }

    /// Every access token issued so far is now expired (401 "Access token is expired.").
    pub fn expire_access_tokens(&self) {
        self.state.zoom.expire_access_tokens();
    }

    /// Every API request received (OAuth and reports), in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state.log.all()
    }

    pub fn clear_requests(&self) {
        self.state.log.clear();
    }

    /// The first logged record matching `pred`, including ones logged before
    /// the call; `None` after `timeout`.
    pub async fn wait_for_request(
        &self,
        pred: impl Fn(&RequestRecord) -> bool,
        timeout: Duration,
    ) -> Option<RequestRecord> {
        self.state.log.wait_for(pred, timeout).await
    }

    /// From now on every access token is revoked once it has carried `uses` API requests (0: never), as
    /// Zoom revokes a token when the app is re-authorised or another mint invalidates it.
    pub fn revoke_access_tokens_after(&self, uses: u64) {
        self.state.zoom.revoke_access_tokens_after(uses);
    }

    /// Successful OAuth mints for that account.
    pub fn token_mints(&self, account_id: &str) -> u64 {
        self.state.zoom.token_mints(account_id)
    }

    /// Makes user `user_index` of the account active or inactive in that month
    /// (any day of the month names it). Unknown accounts and users are ignored.
    pub fn set_user_type(
        &self,
        account_id: &str,
        month: NaiveDate,
        user_index: u64,
        t: ReportType,
    ) {
        let zoom = &self.state.zoom;
        let done = zoom
            .account_index(account_id)
            .is_some_and(|a| zoom.set_user_type(a, first_of_month(month), user_index, t));
        if !done {
            tracing::warn!(
                account_id,
                user_index,
                "set_user_type: no such account or user"
            );
        }
    }

    /// What a full walk of that month must return right now. It materialises
    /// the month, so keep it to accounts of test size. Unknown accounts are empty.
    pub fn report_truth(&self, account_id: &str, month: NaiveDate, t: ReportType) -> ReportTruth {
        let account = self
            .state
            .zoom
            .account_index(account_id)
            .unwrap_or(usize::MAX);
        reports::truth(&self.state, account, month, t)
    }

    /// The `dates` a `/report/daily` request for that month returns now (any day names the month);
    /// empty for unknown accounts.
    pub fn daily_usage(&self, account_id: &str, month: NaiveDate) -> Vec<serde_json::Value> {
        crate::zoom::daily::truth(&self.state, account_id, month)
    }

    /// The `id` served for that user (the same in every month).
    pub fn user_id(&self, account_id: &str, user_index: u64) -> String {
        user_id(self.state.zoom.seed, account_key(account_id), user_index)
    }
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/faults",
            post(add_fault).get(list_faults).delete(clear_faults),
        )
        .route("/expire_page_tokens", post(expire_page_tokens))
        .route("/expire_access_tokens", post(expire_access_tokens))
        .route("/requests", get(requests).delete(clear_requests))
        .route("/truth/zoom/report_users", get(truth))
        .route("/truth/zoom/daily", get(daily_truth))
        .route("/zoom/user_type", post(set_user_type))
        .route("/zoom/token_mints", get(token_mints))
        .route("/zoom/user_id", get(get_user_id))
        .merge(crate::rocketchat::control_routes())
        .merge(crate::videosdk::control_routes())
}

fn control(state: Arc<Shared>) -> Control {
    Control { state }
}

fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Parses a JSON body; the error names the problem (axum's `Json` rejection
/// is plain text, and the control routes answer JSON).
fn parse_body<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|err| format!("invalid JSON body: {err}"))
}

fn parse_query<T: for<'de> Deserialize<'de>>(
    query: Result<Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, String> {
    query.map(|Query(q)| q).map_err(|err| err.body_text())
}

async fn add_fault(State(state): State<Arc<Shared>>, body: Bytes) -> Response {
    match parse_body::<FaultRule>(&body) {
        Ok(rule) => {
            control(state).add_fault(rule);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(message) => problem(StatusCode::BAD_REQUEST, message),
    }
}

async fn list_faults(State(state): State<Arc<Shared>>) -> Response {
    Json(control(state).faults()).into_response()
}

async fn clear_faults(State(state): State<Arc<Shared>>) -> StatusCode {
    control(state).clear_faults();
    StatusCode::NO_CONTENT
}

async fn expire_page_tokens(State(state): State<Arc<Shared>>) -> StatusCode {
    control(state).expire_page_tokens();
    StatusCode::NO_CONTENT
}

async fn expire_access_tokens(State(state): State<Arc<Shared>>) -> StatusCode {
    control(state).expire_access_tokens();
    StatusCode::NO_CONTENT
}

async fn requests(State(state): State<Arc<Shared>>) -> Response {
    Json(control(state).requests()).into_response()
}

async fn clear_requests(State(state): State<Arc<Shared>>) -> StatusCode {
    control(state).clear_requests();
    StatusCode::NO_CONTENT
}

/// A truth query's Zoom account (its index) and month, or the 400/404 naming what is wrong.
fn zoom_account_month(
    state: &Shared,
    account_id: &str,
    month: &str,
) -> Result<(usize, NaiveDate), (StatusCode, String)> {
    let Some(month) = parse_month(month) else {
        let message = "month: expected YYYY-MM-01".to_owned();
        return Err((StatusCode::BAD_REQUEST, message));
    };
    match state.zoom.account_index(account_id) {
        Some(account) => Ok((account, month)),
        None => Err((
            StatusCode::NOT_FOUND,
            format!("no Zoom account {account_id:?}"),
        )),
    }
}

/// `YYYY-MM-DD` (any day names its month) or `YYYY-MM`.
fn parse_month(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d"))
        .ok()
        .map(first_of_month)
}

#[derive(Deserialize)]
struct DailyTruthQuery {
    account_id: String,
    month: String,
}

async fn daily_truth(
    State(state): State<Arc<Shared>>,
    query: Result<Query<DailyTruthQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match parse_query(query) {
        Ok(q) => q,
        Err(message) => return problem(StatusCode::BAD_REQUEST, message),
    };
    let month = match zoom_account_month(&state, &q.account_id, &q.month) {
        Ok((_, month)) => month,
        Err((status, message)) => return problem(status, message),
    };
    Json(control(state).daily_usage(&q.account_id, month)).into_response()
}

#[derive(Deserialize)]
struct TruthQuery {
    account_id: String,
    month: String,
    #[serde(rename = "type", default = "active")]
    report_type: ReportType,
}

fn active() -> ReportType {
    ReportType::Active
}

async fn truth(
    State(state): State<Arc<Shared>>,
    query: Result<Query<TruthQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match parse_query(query) {
        Ok(q) => q,
        Err(message) => return problem(StatusCode::BAD_REQUEST, message),
    };
    let (account, month) = match zoom_account_month(&state, &q.account_id, &q.month) {
        Ok(found) => found,
        Err((status, message)) => return problem(status, message),
    };
    // Materialising a month is a long scan for big accounts.
    let result =
        tokio::task::spawn_blocking(move || reports::truth(&state, account, month, q.report_type))
            .await;
    match result {
        Ok(truth) => Json(truth).into_response(),
        Err(err) => problem(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserTypeBody {
    account_id: String,
    month: String,
    user_index: u64,
    #[serde(rename = "type")]
    report_type: ReportType,
}

async fn set_user_type(State(state): State<Arc<Shared>>, body: Bytes) -> Response {
    let body = match parse_body::<UserTypeBody>(&body) {
        Ok(b) => b,
        Err(message) => return problem(StatusCode::BAD_REQUEST, message),
    };
    let Some(month) = parse_month(&body.month) else {
        return problem(StatusCode::BAD_REQUEST, "month: expected YYYY-MM-01");
    };
    let zoom = &state.zoom;
    let Some(account) = zoom.account_index(&body.account_id) else {
        return problem(
            StatusCode::NOT_FOUND,
            format!("no Zoom account {:?}", body.account_id),
        );
    };
    if zoom.set_user_type(account, month, body.user_index, body.report_type) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        problem(
            StatusCode::BAD_REQUEST,
            format!(
                "user_index: {} is not below the account's {} users",
                body.user_index, zoom.accounts[account].spec.users
            ),
        )
    }
}

#[derive(Deserialize)]
struct AccountQuery {
    account_id: String,
}

async fn token_mints(
    State(state): State<Arc<Shared>>,
    query: Result<Query<AccountQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    match parse_query(query) {
        Ok(q) => {
            let mints = control(state).token_mints(&q.account_id);
            Json(json!({ "account_id": q.account_id, "mints": mints })).into_response()
        }
        Err(message) => problem(StatusCode::BAD_REQUEST, message),
    }
}

#[derive(Deserialize)]
struct UserIdQuery {
    account_id: String,
    user_index: u64,
}

async fn get_user_id(
    State(state): State<Arc<Shared>>,
    query: Result<Query<UserIdQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    match parse_query(query) {
        Ok(q) => {
            let id = control(state).user_id(&q.account_id, q.user_index);
            Json(json!({ "account_id": q.account_id, "user_index": q.user_index, "id": id }))
                .into_response()
        }
        Err(message) => problem(StatusCode::BAD_REQUEST, message),
    }
}

//! Ground truth and steering for the Video SDK fake, in-process and under `/_sandbox/`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{month_truth, users_truth};
use crate::control::Control;
use crate::lock;
use crate::Shared;

impl Control {
    /// The sessions a full `type=past` walk of that month returns now (any day names the month).
    pub fn sdk_sessions(&self, api_key: &str, month: NaiveDate) -> Vec<Value> {
        match self.state.videosdk.account_by_key(api_key) {
            Some(a) => month_truth(&self.state, a, month),
            None => Vec::new(),
        }
    }

    /// The users (one object per join) a full walk of that session returns now.
    pub fn sdk_session_users(&self, api_key: &str, session_id: &str) -> Vec<Value> {
        match self.state.videosdk.account_by_key(api_key) {
            Some(a) => users_truth(&self.state, a, session_id),
            None => Vec::new(),
        }
    }

    /// The `dates` a `/videosdk/report/daily` request for that month returns now (any day names the month).
    pub fn sdk_daily_usage(&self, api_key: &str, month: NaiveDate) -> Vec<Value> {
        match self.state.videosdk.account_by_key(api_key) {
            Some(a) => super::daily::truth(&self.state, a, month),
            None => Vec::new(),
        }
    }

    /// Makes the daily report count `sessions` on `day` whatever the session list serves (`None`: agree
    /// with the list again). False for an unknown account.
    pub fn set_sdk_daily_sessions(
        &self,
        api_key: &str,
        day: NaiveDate,
        sessions: Option<u64>,
    ) -> bool {
        let sdk = &self.state.videosdk;
        let Some(a) = sdk.account_by_key(api_key) else {
            return false;
        };
        let mut overrides = lock(&sdk.daily_sessions);
        match sessions {
            Some(n) => overrides.insert((a, day), n),
            None => overrides.remove(&(a, day)),
        };
        true
    }

    /// Adds a session with exactly this id to the account's current month (served after the generated
    /// ones, with its own users), for ids the generator never makes: `.`, `..`, `%`, NUL. False for an
    /// unknown account.
    pub fn add_sdk_session(&self, api_key: &str, session_id: &str) -> bool {
        let sdk = &self.state.videosdk;
        let Some(a) = sdk.account_by_key(api_key) else {
            return false;
        };
        let mut extra = lock(&sdk.extra);
        if !extra.iter().any(|(b, id)| *b == a && id == session_id) {
            extra.push((a, session_id.to_owned()));
        }
        true
    }

    /// Serves the session as having run `minutes` longer than generated (0: as generated): a later
    /// `end_time`, as when Zoom corrects a session's end after first listing it. False for unknown ids.
    pub fn set_sdk_session_extended(&self, api_key: &str, session_id: &str, minutes: i64) -> bool {
        let sdk = &self.state.videosdk;
        let Some(a) = sdk.account_by_key(api_key) else {
            return false;
        };
        if sdk.accounts[a].parse_session_id(session_id).is_none() {
            return false;
        }
        let mut extended = lock(&sdk.extended);
        if minutes == 0 {
            extended.remove(&(a, session_id.to_owned()));
        } else {
            extended.insert((a, session_id.to_owned()), minutes);
        }
        true
    }

    /// Serves the session as still running (no `end_time`) or as ended again. False for unknown ids.
    pub fn set_sdk_session_open(&self, api_key: &str, session_id: &str, open: bool) -> bool {
        let sdk = &self.state.videosdk;
        let Some(a) = sdk.account_by_key(api_key) else {
            return false;
        };
        if sdk.accounts[a].parse_session_id(session_id).is_none() {
            return false;
        }
        let mut set = lock(&sdk.open);
        if open {
            set.insert((a, session_id.to_owned()));
        } else {
            set.remove(&(a, session_id.to_owned()));
        }
        true
    }
}

pub(crate) fn control_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/truth/videosdk/sessions", get(sessions))
        .route("/truth/videosdk/session_users", get(session_users))
        .route("/videosdk/session_open", post(session_open))
        .route("/truth/videosdk/daily", get(daily))
        .route("/videosdk/extra_session", post(extra_session))
        .route("/videosdk/daily_sessions", post(daily_sessions))
}

fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

#[derive(Deserialize)]
struct MonthQuery {
    api_key: String,
    month: NaiveDate,
}

async fn sessions(
    State(state): State<Arc<Shared>>,
    query: Result<Query<MonthQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    match query {
        Ok(Query(q)) => Json(Control { state }.sdk_sessions(&q.api_key, q.month)).into_response(),
        Err(err) => problem(StatusCode::BAD_REQUEST, err.body_text()),
    }
}

#[derive(Deserialize)]
struct SessionQuery {
    api_key: String,
    session_id: String,
}

async fn daily(
    State(state): State<Arc<Shared>>,
    query: Result<Query<MonthQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    match query {
        Ok(Query(q)) => {
            Json(Control { state }.sdk_daily_usage(&q.api_key, q.month)).into_response()
        }
        Err(err) => problem(StatusCode::BAD_REQUEST, err.body_text()),
    }
}

async fn session_users(
    State(state): State<Arc<Shared>>,
    query: Result<Query<SessionQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    match query {
        Ok(Query(q)) => {
            Json(Control { state }.sdk_session_users(&q.api_key, &q.session_id)).into_response()
        }
        Err(err) => problem(StatusCode::BAD_REQUEST, err.body_text()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenBody {
    api_key: String,
    session_id: String,
    open: bool,
}

async fn session_open(State(state): State<Arc<Shared>>, body: Bytes) -> Response {
    let body: OpenBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(err) => return problem(StatusCode::BAD_REQUEST, format!("invalid JSON body: {err}")),
    };
    if (Control { state }).set_sdk_session_open(&body.api_key, &body.session_id, body.open) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        problem(StatusCode::NOT_FOUND, "no such account or session")
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtraBody {
    api_key: String,
    session_id: String,
}

async fn extra_session(State(state): State<Arc<Shared>>, body: Bytes) -> Response {
    let body: ExtraBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(err) => return problem(StatusCode::BAD_REQUEST, format!("invalid JSON body: {err}")),
    };
    if (Control { state }).add_sdk_session(&body.api_key, &body.session_id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        problem(StatusCode::NOT_FOUND, "no such account")
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DailySessionsBody {
    api_key: String,
    day: NaiveDate,
    /// `null` makes the day agree with the session list again.
    sessions: Option<u64>,
}

async fn daily_sessions(State(state): State<Arc<Shared>>, body: Bytes) -> Response {
    let body: DailySessionsBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(err) => return problem(StatusCode::BAD_REQUEST, format!("invalid JSON body: {err}")),
    };
    if (Control { state }).set_sdk_daily_sessions(&body.api_key, body.day, body.sessions) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        problem(StatusCode::NOT_FOUND, "no such account")
    }
}

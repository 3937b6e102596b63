//! Test hooks for the fake Rocket.Chat: its ground truth and changes to it, in-process and under
//! `/_sandbox/rocketchat/`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::json;

use crate::{Control, Shared};

impl Control {
    /// The workspace's "today": its local date (or the pinned `today`); `None` for an unknown workspace.
    pub fn rc_today(&self, workspace: &str) -> Option<NaiveDate> {
        let rc = &self.state.rocketchat;
        rc.workspace(workspace).map(|ws| rc.today(&self.state, ws))
    }

    /// The user ids the server holds for that local day right now, sorted; empty for a day with no
    /// sessions, a future day, a day past retention or an unknown workspace.
    pub fn rc_truth(&self, workspace: &str, day: NaiveDate) -> Vec<String> {
        let rc = &self.state.rocketchat;
        let Some(ws) = rc.workspace(workspace) else {
            return Vec::new();
        };
        let today = rc.today(&self.state, ws);
        rc.users_on(ws, today, day).into_iter().collect()
    }

    /// Gives `user_id` a session on that day (late aggregation of a day still in the lookback).
    /// `false` for an unknown workspace.
    pub fn rc_add_user(&self, workspace: &str, day: NaiveDate, user_id: &str) -> bool {
        self.rc_edit(workspace, day, |users| {
            users.insert(user_id.to_string());
        })
    }

    /// Forgets every session of that day, as the TTL index eventually does.
    pub fn rc_clear_day(&self, workspace: &str, day: NaiveDate) -> bool {
        self.rc_edit(workspace, day, |users| users.clear())
    }

    fn rc_edit(
        &self,
        workspace: &str,
        day: NaiveDate,
        edit: impl FnOnce(&mut std::collections::BTreeSet<String>),
    ) -> bool {
        let rc = &self.state.rocketchat;
        let Some(ws) = rc.workspace(workspace) else {
            tracing::warn!(workspace, "rc edit: no such workspace");
            return false;
        };
        let today = rc.today(&self.state, ws);
        rc.edit_day(ws, today, day, edit);
        true
    }
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/rocketchat/truth", get(truth))
        .route("/rocketchat/add_user", post(add_user))
        .route("/rocketchat/clear_day", post(clear_day))
}

fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

#[derive(Deserialize)]
struct DayQuery {
    workspace: String,
    day: NaiveDate,
}

async fn truth(
    State(state): State<Arc<Shared>>,
    query: Result<Query<DayQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(err) => return problem(StatusCode::BAD_REQUEST, err.body_text()),
    };
    let control = Control { state };
    if control.rc_today(&q.workspace).is_none() {
        return problem(
            StatusCode::NOT_FOUND,
            format!("no Rocket.Chat workspace {:?}", q.workspace),
        );
    }
    let users = control.rc_truth(&q.workspace, q.day);
    Json(
        json!({ "workspace": q.workspace, "day": q.day, "users": users.len(), "usersList": users }),
    )
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddUserBody {
    workspace: String,
    day: NaiveDate,
    user_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClearDayBody {
    workspace: String,
    day: NaiveDate,
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|err| format!("invalid JSON body: {err}"))
}

fn done(found: bool, workspace: &str) -> Response {
    if found {
        StatusCode::NO_CONTENT.into_response()
    } else {
        problem(
            StatusCode::NOT_FOUND,
            format!("no Rocket.Chat workspace {workspace:?}"),
        )
    }
}

async fn add_user(State(state): State<Arc<Shared>>, body: Bytes) -> Response {
    match parse::<AddUserBody>(&body) {
        Ok(b) => done(
            Control { state }.rc_add_user(&b.workspace, b.day, &b.user_id),
            &b.workspace,
        ),
        Err(message) => problem(StatusCode::BAD_REQUEST, message),
    }
}

async fn clear_day(State(state): State<Arc<Shared>>, body: Bytes) -> Response {
    match parse::<ClearDayBody>(&body) {
        Ok(b) => done(
            Control { state }.rc_clear_day(&b.workspace, b.day),
            &b.workspace,
        ),
        Err(message) => problem(StatusCode::BAD_REQUEST, message),
    }
}

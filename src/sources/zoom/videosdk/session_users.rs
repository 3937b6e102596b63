//! `GET /videosdk/sessions/{id}/users?type=past`: one child window per ended session (scope = the session
//! id, the parent month's bounds), planned by the session list in the page that stored the session.
//! Heavy. Rows are keyed `(account, session_id, user_id, join_time)`, so a rejoin is a row of its own.

use super::mirror;
use super::path::session_segment;
use crate::engine::{Finished, PageMeta, RunContext, Shrink, Source, StoredRows, Tx};
use crate::http::ApiError;
use crate::sources::zoom::client::ZoomClient;
use crate::sources::zoom::fields::{field, id, page_token, required_list, text, timestamp};
use crate::sources::zoom::months::{self, MonthWindows};
use crate::sources::zoom::pacing::Category;
use crate::store::text::clean_json;
use crate::store::windows::{PlannedWindow, Retirement, Window};
use crate::store::StoreError;
use chrono::{DateTime, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const STREAM: &str = "zoom_sdk_session_users";

/// Zoom's code with a 404 for a session it does not have: "Session does not exist: {id}".
const SESSION_DOES_NOT_EXIST: i64 = 3001;

pub struct SdkSessionUsers {
    pub client: Arc<ZoomClient>,
    pub account: String,
    pub page_size: u32,
    /// Its months: horizon and finality (the list plans them).
    pub months: MonthWindows,
    /// The collection run it walks for.
    pub run: RunContext,
}

/// One users walk's request (`type=past` is constant).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UsersRequest {
    page_size: u32,
    /// The UTC date the walk began on, which decides its finality. Absent in parameters stored by an
    /// older binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    day: Option<chrono::NaiveDate>,
    /// The session's end as the list last served it when the walk began: the users of a session that ended
    /// more than `settle_days` before `day` no longer change. Absent when not known (and in parameters
    /// stored by an older binary): the month's rule alone decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ended: Option<DateTime<Utc>>,
}

pub struct UsersPage {
    body: UsersBody,
    users: Result<Vec<SessionUser>, String>,
}

#[derive(Deserialize)]
struct UsersBody {
    #[serde(default, deserialize_with = "page_token")]
    next_page_token: Option<String>,
    #[serde(deserialize_with = "required_list")]
    users: Vec<Value>,
}

#[derive(Debug)]
struct SessionUser {
    user_id: String,
    /// `None` when Zoom left it out; the key then uses the session's start (see `key_join_time`).
    join_time: Option<DateTime<Utc>>,
    texts: [Option<String>; 13],
    leave_time: Option<DateTime<Utc>>,
    audio_call: Option<Value>,
    raw: Value,
}

/// The text columns, in the order of `SessionUser::texts` and of the INSERT below.
const TEXT_FIELDS: [&str; 13] = [
    "name",
    "user_key",
    "participant_uuid",
    "device",
    "ip_address",
    "location",
    "network_type",
    "microphone",
    "speaker",
    "camera",
    "data_center",
    "connection_type",
    "client",
];

impl SessionUser {
    fn from_raw(mut raw: Value, index: usize) -> Result<SessionUser, String> {
        clean_json(&mut raw);
        // `id` is per join in Zoom's webhooks; `participant_uuid` is the documented fallback identity.
        let Some(user_id) = id(field(&raw, "id")).or_else(|| id(field(&raw, "participant_uuid")))
        else {
            return Err(format!(
                "users[{index}] has neither id nor participant_uuid"
            ));
        };
        Ok(SessionUser {
            user_id,
            join_time: timestamp(field(&raw, "join_time")),
            texts: TEXT_FIELDS.map(|name| text(field(&raw, name))),
            leave_time: timestamp(field(&raw, "leave_time")),
            audio_call: field(&raw, "audio_call").cloned(),
            raw,
        })
    }
}

impl Source for SdkSessionUsers {
    type Page = UsersPage;
    type Params = UsersRequest;

    fn account(&self) -> &str {
        &self.account
    }

    fn stream(&self) -> &'static str {
        STREAM
    }

    /// Children are planned by the session list, in the transaction that stores their session.
    fn plan(&self) -> Vec<PlannedWindow> {
        Vec::new()
    }

    /// Final when the parent month is (children of a final month are final), or once the session ended
    /// more than `settle_days` before the walk's day, whatever its month: a session's users do not change
    /// after it ended, so a run in steady state asks only for sessions that still can.
    fn is_final(&self, window: &Window, params: &UsersRequest) -> bool {
        let day = params.day.unwrap_or(self.months.today);
        self.months.is_final(window, Some(day))
            || params.ended.is_some_and(|ended| {
                months::is_final(ended.date_naive(), day, self.months.settle_days)
            })
    }

    /// The users list announces no total: no single walk proves a join gone, whether or not it settles
    /// the session.
    fn confirms_every_shrink(&self) -> bool {
        true
    }

    fn stored_rows(&self, window: &Window) -> Vec<StoredRows> {
        vec![mirror::stored_rows(
            &self.account,
            mirror::Scope::Session(&window.scope),
        )]
    }

    /// Stored joins of the session this walk did not list.
    async fn shrinks(
        &self,
        tx: &mut Tx,
        window: &Window,
        walk_id: Uuid,
        last_page: &UsersPage,
    ) -> Result<Option<Shrink>, StoreError> {
        let (mut ids, mut joins) = (Vec::new(), Vec::new());
        if let Ok(users) = &last_page.users {
            let fallback = key_join_time(tx, &self.account, window).await?;
            for user in users {
                ids.push(user.user_id.clone());
                joins.push(user.join_time.unwrap_or(fallback));
            }
        }
        mirror::shrink(
            tx,
            &self.account,
            mirror::Scope::Session(&window.scope),
            walk_id,
            mirror::LastPage::Joins(&ids, &joins),
        )
        .await
    }

    /// Children are not planned by their own stream, so the months' horizon rule retires them here: a
    /// child of a month Zoom no longer serves is never requested.
    fn retirement(&self) -> Option<Retirement> {
        Some(self.months.retirement())
    }

    fn params(&self, window: &Window) -> UsersRequest {
        UsersRequest {
            page_size: self.page_size,
            day: Some(self.months.today),
            ended: window.scope_ended_at,
        }
    }

    async fn fetch(
        &self,
        window: &Window,
        params: &UsersRequest,
        page_token: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<UsersPage, ApiError> {
        let path = format!(
            "/videosdk/sessions/{}/users",
            session_segment(&window.scope)?
        );
        let page_size = params.page_size.to_string();
        let mut query = vec![("type", "past"), ("page_size", page_size.as_str())];
        if let Some(token) = page_token {
            query.push(("next_page_token", token));
        }
        let mut body: UsersBody = self
            .client
            .get_json(&path, &query, Category::Heavy, cancel)
            .await?;
        let users = std::mem::take(&mut body.users)
            .into_iter()
            .enumerate()
            .map(|(i, raw)| SessionUser::from_raw(raw, i))
            .collect();
        Ok(UsersPage { body, users })
    }

    /// Zoom answers 404 code 3001 "Session does not exist: {id}" for a session it no longer has
    /// (research/zoom-api.md §2d). Failing would hold the month back for good once it is final (it is
    /// never listed again, so nothing would ever retry or retire the child): the window is recorded
    /// unreachable, its stored joins kept. Any other 404 (a wrong `api_url`) still fails.
    fn unreachable(&self, window: &Window, error: &ApiError) -> Option<String> {
        match error {
            ApiError::NotFound {
                code: Some(code @ SESSION_DOES_NOT_EXIST),
                message,
                ..
            } => Some(format!(
                "Zoom no longer has session {:?}: HTTP 404 (code {code}): {message}; its stored users are kept and it is not requested again unless a list walk lists it again",
                window.scope
            )),
            _ => None,
        }
    }

    fn inspect(&self, _window: &Window, page: &UsersPage) -> Result<PageMeta, String> {
        if let Err(problem) = &page.users {
            return Err(format!("malformed session users page: {problem}"));
        }
        Ok(PageMeta {
            next_page_token: page.body.next_page_token.clone(),
            expected_total: None,
        })
    }

    async fn write_page(
        &self,
        tx: &mut Tx,
        window: &Window,
        walk_id: Uuid,
        page: &UsersPage,
    ) -> Result<i64, StoreError> {
        let Ok(users) = &page.users else {
            return Ok(0);
        };
        if users.is_empty() {
            return Ok(0);
        }
        let fallback = key_join_time(tx, &self.account, window).await?;
        upsert_users(tx, &self.account, &window.scope, walk_id, users, fallback).await
    }

    async fn finish(
        &self,
        tx: &mut Tx,
        window: &Window,
        walk_id: Uuid,
        _last_page: &UsersPage,
        is_final: bool,
    ) -> Result<Result<Finished, String>, StoreError> {
        // A list page that served the session with another end while this walk ran may have planned it
        // again: the pages read before say nothing about the later part of the session.
        let is_final = is_final && end_unchanged(tx, window.id).await?;
        // The engine lets a walk get here only if it removes nothing, or if a walk of a run at least 12
        // hours after the first one that would have removed these agrees.
        let gone = mirror::gone(
            tx,
            &self.account,
            mirror::Scope::Session(&window.scope),
            walk_id,
        )
        .await?;
        if !gone.is_empty() {
            tracing::info!(session = %window.scope, removed = gone.len(),
                "joins no longer listed, confirmed by a run at least 12 hours after the first, were removed");
        }
        let seen: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM rollcall.zoom_sdk_session_users
              WHERE account = $1 AND session_id = $2 AND walk_id = $3",
        )
        .bind(&self.account)
        .bind(&window.scope)
        .bind(walk_id)
        .fetch_one(&mut **tx)
        .await?;
        Ok(Ok(Finished {
            rows: seen,
            is_final,
        }))
    }
}

/// Whether the session's end the list last served is still the one this walk began with (its stored
/// parameters). Locks the window row: a list page that changes the end either committed before (and this
/// sees it) or waits for this walk's transaction and then makes the window non-final itself.
async fn end_unchanged(tx: &mut Tx, window_id: i64) -> Result<bool, StoreError> {
    let same: Option<bool> = sqlx::query_scalar(
        "SELECT scope_ended_at IS NOT DISTINCT FROM (walk_params->>'ended')::timestamptz
           FROM rollcall.collection_windows WHERE id = $1 FOR UPDATE",
    )
    .bind(window_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(same.unwrap_or(false))
}

/// The key's `join_time` when Zoom leaves it out: the session's start (a real instant of that session,
/// unlike an epoch sentinel), or the month's first instant if the session has none. `raw` shows it was
/// absent.
async fn key_join_time(
    tx: &mut Tx,
    account: &str,
    window: &Window,
) -> Result<DateTime<Utc>, StoreError> {
    let start: Option<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT start_time FROM rollcall.zoom_sdk_sessions WHERE account = $1 AND session_id = $2",
    )
    .bind(account)
    .bind(&window.scope)
    .fetch_optional(&mut **tx)
    .await?
    .flatten();
    Ok(start.unwrap_or_else(|| window.window_start.and_time(NaiveTime::MIN).and_utc()))
}

async fn upsert_users(
    tx: &mut Tx,
    account: &str,
    session_id: &str,
    walk_id: Uuid,
    users: &[SessionUser],
    fallback_join: DateTime<Utc>,
) -> Result<i64, StoreError> {
    // One statement may not update a row twice: a join served twice keeps its last copy.
    let mut last: HashMap<(&str, DateTime<Utc>), usize> = HashMap::with_capacity(users.len());
    for (i, u) in users.iter().enumerate() {
        last.insert(
            (u.user_id.as_str(), u.join_time.unwrap_or(fallback_join)),
            i,
        );
    }
    let unique: Vec<&SessionUser> = users
        .iter()
        .enumerate()
        .filter(|(i, u)| {
            last.get(&(u.user_id.as_str(), u.join_time.unwrap_or(fallback_join))) == Some(i)
        })
        .map(|(_, u)| u)
        .collect();
    let ids: Vec<String> = unique.iter().map(|u| u.user_id.clone()).collect();
    let joins: Vec<DateTime<Utc>> = unique
        .iter()
        .map(|u| u.join_time.unwrap_or(fallback_join))
        .collect();
    let column = |k: usize| {
        unique
            .iter()
            .map(|u| u.texts[k].clone())
            .collect::<Vec<_>>()
    };
    let leaves: Vec<Option<DateTime<Utc>>> = unique.iter().map(|u| u.leave_time).collect();
    let audio: Vec<Option<Value>> = unique.iter().map(|u| u.audio_call.clone()).collect();
    let raws: Vec<Value> = unique.iter().map(|u| u.raw.clone()).collect();
    let mut query = sqlx::query(
        "INSERT INTO rollcall.zoom_sdk_session_users
           (account, session_id, user_id, join_time, name, user_key, participant_uuid, device, ip_address,
            location, network_type, microphone, speaker, camera, data_center, connection_type, client,
            leave_time, audio_call, raw, collected_at, walk_id)
         SELECT $1, $2, u.*, now(), $3
           FROM UNNEST($4::text[], $5::timestamptz[], $6::text[], $7::text[], $8::text[], $9::text[],
                       $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
                       $16::text[], $17::text[], $18::text[], $19::timestamptz[], $20::jsonb[],
                       $21::jsonb[]) AS u
         ON CONFLICT (account, session_id, user_id, join_time) DO UPDATE
           SET name = EXCLUDED.name, user_key = EXCLUDED.user_key,
               participant_uuid = EXCLUDED.participant_uuid, device = EXCLUDED.device,
               ip_address = EXCLUDED.ip_address, location = EXCLUDED.location,
               network_type = EXCLUDED.network_type, microphone = EXCLUDED.microphone,
               speaker = EXCLUDED.speaker, camera = EXCLUDED.camera, data_center = EXCLUDED.data_center,
               connection_type = EXCLUDED.connection_type, client = EXCLUDED.client,
               leave_time = EXCLUDED.leave_time, audio_call = EXCLUDED.audio_call, raw = EXCLUDED.raw,
               collected_at = EXCLUDED.collected_at, walk_id = EXCLUDED.walk_id,
               missing_since = NULL, missing_run = NULL",
    )
    .bind(account)
    .bind(session_id)
    .bind(walk_id)
    .bind(&ids)
    .bind(&joins);
    for k in 0..TEXT_FIELDS.len() {
        query = query.bind(column(k));
    }
    query
        .bind(&leaves)
        .bind(&audio)
        .bind(&raws)
        .execute(&mut **tx)
        .await?;
    Ok(unique.len() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn users_keep_every_field_and_the_extras() {
        let raw = json!({"id": "u1", "name": "Zoë", "device": "Mac", "join_time": "2021-12-07T05:42:28Z",
            "leave_time": "2021-12-07T06:00:00Z", "participant_uuid": "p-1", "client": "web",
            "audio_call": [{"call_number": "1", "call_type": "in", "zoom_number": "2"}], "version": "1.2"});
        let u = SessionUser::from_raw(raw, 0).unwrap();
        assert_eq!(u.user_id, "u1");
        assert_eq!(u.texts[0].as_deref(), Some("Zoë"));
        assert_eq!(u.texts[2].as_deref(), Some("p-1"));
        assert_eq!(u.texts[12].as_deref(), Some("web"));
        assert!(u.audio_call.as_ref().is_some_and(Value::is_array));
        assert_eq!(u.raw["version"], json!("1.2"));
        let no_id = SessionUser::from_raw(json!({"participant_uuid": "p-9"}), 0).unwrap();
        assert_eq!((no_id.user_id.as_str(), no_id.join_time), ("p-9", None));
        assert!(SessionUser::from_raw(json!({"name": "x"}), 3)
            .unwrap_err()
            .contains("users[3]"));
    }
}

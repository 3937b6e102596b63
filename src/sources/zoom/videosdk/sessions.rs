//! `GET /videosdk/sessions?type=past&from&to`: one calendar-month window per account (scope `''`).
//! Resource-intensive (10 requests a minute on Pro), paced by the account's `ZoomPacer`.

use super::{mirror, session_users};
use crate::engine::{Finished, PageMeta, RunContext, Shrink, Source, StoredRows, Tx};
use crate::http::ApiError;
use crate::sources::zoom::client::ZoomClient;
use crate::sources::zoom::fields::{
    boolean, field, id, int, page_token, required_list, text, timestamp,
};
use crate::sources::zoom::months::{self, MonthRequest, MonthWindows};
use crate::sources::zoom::pacing::Category;
use crate::store::text::clean_json;
use crate::store::windows::{self, PlannedWindow, Retirement, Window};
use crate::store::StoreError;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const STREAM: &str = "zoom_sdk_sessions";

pub struct SdkSessions {
    pub client: Arc<ZoomClient>,
    pub account: String,
    pub page_size: u32,
    /// Its months: planning, horizon, finality.
    pub months: MonthWindows,
    /// The collection run it walks for.
    pub run: RunContext,
}

pub struct SessionsPage {
    requested_from: NaiveDate,
    requested_to: NaiveDate,
    body: SessionsBody,
    sessions: Result<Vec<SdkSession>, String>,
}

#[derive(Deserialize)]
struct SessionsBody {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default, deserialize_with = "page_token")]
    next_page_token: Option<String>,
    #[serde(deserialize_with = "required_list")]
    sessions: Vec<Value>,
}

#[derive(Debug)]
pub struct SdkSession {
    pub session_id: String,
    session_name: Option<String>,
    session_key: Option<String>,
    start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    duration: Option<String>,
    user_count: Option<i64>,
    has_voip: Option<bool>,
    has_video: Option<bool>,
    has_screen_share: Option<bool>,
    has_recording: Option<bool>,
    has_pstn: Option<bool>,
    has_session_summary: Option<bool>,
    raw: Value,
}

impl SdkSession {
    pub fn from_raw(mut raw: Value, index: usize) -> Result<SdkSession, String> {
        clean_json(&mut raw);
        let Some(session_id) = id(field(&raw, "id")) else {
            return Err(format!("sessions[{index}] has no id"));
        };
        let f = |name| field(&raw, name);
        Ok(SdkSession {
            session_name: text(f("session_name")),
            session_key: text(f("session_key")),
            start_time: timestamp(f("start_time")),
            end_time: timestamp(f("end_time")),
            duration: text(f("duration")),
            user_count: int(f("user_count")),
            has_voip: boolean(f("has_voip")),
            has_video: boolean(f("has_video")),
            has_screen_share: boolean(f("has_screen_share")),
            has_recording: boolean(f("has_recording")),
            has_pstn: boolean(f("has_pstn")),
            has_session_summary: boolean(f("has_session_summary")),
            session_id,
            raw,
        })
    }

    /// Derived from the timestamps, because the served `duration` is text ("30:00", "01:02:03").
    fn duration_seconds(&self) -> Option<i64> {
        Some((self.end_time? - self.start_time?).num_seconds())
    }
}

impl Source for SdkSessions {
    type Page = SessionsPage;
    type Params = MonthRequest;

    fn account(&self) -> &str {
        &self.account
    }

    fn stream(&self) -> &'static str {
        STREAM
    }

    fn plan(&self) -> Vec<PlannedWindow> {
        self.months.plan_from_horizon(&[""])
    }

    fn is_final(&self, window: &Window, params: &MonthRequest) -> bool {
        self.months.is_final(window, params.day)
    }

    /// The list announces no total: no single walk proves a session gone, whether or not it settles the
    /// month.
    fn confirms_every_shrink(&self) -> bool {
        true
    }

    fn stored_rows(&self, window: &Window) -> Vec<StoredRows> {
        vec![mirror::stored_rows(
            &self.account,
            mirror::Scope::Month(month_of(window)),
        )]
    }

    /// Stored sessions of the month this walk did not list.
    async fn shrinks(
        &self,
        tx: &mut Tx,
        window: &Window,
        walk_id: Uuid,
        last_page: &SessionsPage,
    ) -> Result<Option<Shrink>, StoreError> {
        let ids: Vec<String> = match &last_page.sessions {
            Ok(sessions) => sessions.iter().map(|s| s.session_id.clone()).collect(),
            Err(_) => Vec::new(),
        };
        mirror::shrink(
            tx,
            &self.account,
            mirror::Scope::Month(month_of(window)),
            walk_id,
            mirror::LastPage::Sessions(&ids),
        )
        .await
    }

    fn retirement(&self) -> Option<Retirement> {
        Some(self.months.retirement())
    }

    fn params(&self, window: &Window) -> MonthRequest {
        self.months.request(window, self.page_size)
    }

    async fn fetch(
        &self,
        _window: &Window,
        params: &MonthRequest,
        page_token: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<SessionsPage, ApiError> {
        let (from, to) = (params.from, params.to);
        let (from_text, to_text, page_size) = (
            from.to_string(),
            to.to_string(),
            params.page_size.to_string(),
        );
        let mut query = vec![
            ("type", "past"),
            ("from", from_text.as_str()),
            ("to", to_text.as_str()),
            ("page_size", page_size.as_str()),
        ];
        if let Some(token) = page_token {
            query.push(("next_page_token", token));
        }
        let mut body: SessionsBody = self
            .client
            .get_json(
                "/videosdk/sessions",
                &query,
                Category::ResourceIntensive,
                cancel,
            )
            .await?;
        let sessions = std::mem::take(&mut body.sessions)
            .into_iter()
            .enumerate()
            .map(|(i, raw)| SdkSession::from_raw(raw, i))
            .collect();
        Ok(SessionsPage {
            requested_from: from,
            requested_to: to,
            body,
            sessions,
        })
    }

    fn unreachable(&self, window: &Window, error: &ApiError) -> Option<String> {
        months::refused_from_day(window, error)
    }

    fn inspect(&self, _window: &Window, page: &SessionsPage) -> Result<PageMeta, String> {
        months::check_served_range(
            page.body.from.as_deref(),
            page.body.to.as_deref(),
            page.requested_from,
            page.requested_to,
        )?;
        if let Err(problem) = &page.sessions {
            return Err(format!("malformed session list page: {problem}"));
        }
        // The list announces no total (research/zoom-api.md §2a): the last page is the only proof.
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
        page: &SessionsPage,
    ) -> Result<i64, StoreError> {
        let Ok(sessions) = &page.sessions else {
            return Ok(0);
        };
        let unique = last_of_each(sessions);
        upsert_sessions(tx, &self.account, window, walk_id, &unique).await?;
        let (ended, ends): (Vec<String>, Vec<Option<DateTime<Utc>>>) = unique
            .iter()
            .filter(|s| s.end_time.is_some())
            .map(|s| (s.session_id.clone(), s.end_time))
            .unzip();
        windows::plan_children(tx, window, session_users::STREAM, &ended, &ends).await?;
        Ok(unique.len() as i64)
    }

    async fn finish(
        &self,
        tx: &mut Tx,
        window: &Window,
        walk_id: Uuid,
        _last_page: &SessionsPage,
        is_final: bool,
    ) -> Result<Result<Finished, String>, StoreError> {
        let (seen, open): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE end_time IS NULL) FROM rollcall.zoom_sdk_sessions
              WHERE account = $1 AND month = $2 AND walk_id = $3",
        )
        .bind(&self.account)
        .bind(month_of(window))
        .bind(walk_id)
        .fetch_one(&mut **tx)
        .await?;
        let mut is_final = is_final;
        if is_final && open > 0 {
            // A final month is never listed again, so a session without end_time would never get its
            // users. Zoom may report the end late: for 7 days after the month settled the month stays
            // open (complete, not final) and is listed again by every run. After that the session is
            // recorded as ended at an unknown time, its users are walked, and the month can complete; a
            // later walk that serves its end_time updates the row.
            let grace = self.months.settle_days.saturating_add(ENDLESS_GRACE_DAYS);
            if months::is_final(window.window_end, self.months.today, grace) {
                let endless: Vec<String> = sqlx::query_scalar(
                    "UPDATE rollcall.zoom_sdk_sessions SET end_time_unknown = true
                      WHERE account = $1 AND month = $2 AND walk_id = $3 AND end_time IS NULL
                  RETURNING session_id",
                )
                .bind(&self.account)
                .bind(month_of(window))
                .bind(walk_id)
                .fetch_all(&mut **tx)
                .await?;
                let unknown = vec![None; endless.len()];
                windows::plan_children(tx, window, session_users::STREAM, &endless, &unknown)
                    .await?;
                tracing::warn!(sessions = endless.len(),
                    "sessions still without end_time 7 days after their month settled are recorded as ended at an unknown time; their users are collected");
            } else {
                tracing::info!(sessions = open,
                    "the month has settled but sessions have no end_time yet; it stays open and is listed again next run");
                is_final = false;
            }
        }
        // The engine lets a walk get here only if it removes nothing, or if a walk of a run at least 12
        // hours after the first one that would have removed these agrees.
        let gone = mirror::gone(
            tx,
            &self.account,
            mirror::Scope::Month(month_of(window)),
            walk_id,
        )
        .await?;
        if !gone.is_empty() {
            tracing::info!(sessions = gone.len(),
                "sessions no longer listed, confirmed by a run at least 12 hours after the first, were removed with their users");
            remove_sessions(tx, window, &gone).await?;
        }
        Ok(Ok(Finished {
            rows: seen,
            is_final,
        }))
    }
}

/// The calendar month a list window's sessions are stored under: a window walked from the horizon day
/// covers the end of its month only.
fn month_of(window: &Window) -> NaiveDate {
    months::first_of_month(window.window_start)
}

/// Days after a month settled during which a session Zoom lists without `end_time` holds the month open.
pub const ENDLESS_GRACE_DAYS: u32 = 7;

/// PostgreSQL refuses to update one row twice in a statement: a session served twice keeps its last copy.
/// Removes the users of sessions confirmed gone, and their users windows, in the list page's
/// transaction. The windows go first: a users walk of another process that is writing a page of one of
/// them then either committed before (its joins are visible to the delete that follows, which takes
/// them) or fails its checkpoint on the deleted window and rolls its joins back. Deleting the joins first
/// would miss joins committed between the two statements and leave them without a session or a window.
pub async fn remove_sessions(tx: &mut Tx, list: &Window, ids: &[String]) -> Result<(), StoreError> {
    windows::forget_children(tx, list, ids).await?;
    sqlx::query(
        "DELETE FROM rollcall.zoom_sdk_session_users WHERE account = $1 AND session_id = ANY($2)",
    )
    .bind(&list.account)
    .bind(ids)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn last_of_each(sessions: &[SdkSession]) -> Vec<&SdkSession> {
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(sessions.len());
    for (i, s) in sessions.iter().enumerate() {
        last.insert(s.session_id.as_str(), i);
    }
    sessions
        .iter()
        .enumerate()
        .filter(|(i, s)| last.get(s.session_id.as_str()) == Some(i))
        .map(|(_, s)| s)
        .collect()
}

async fn upsert_sessions(
    tx: &mut Tx,
    account: &str,
    window: &Window,
    walk_id: Uuid,
    sessions: &[&SdkSession],
) -> Result<(), StoreError> {
    if sessions.is_empty() {
        return Ok(());
    }
    let texts =
        |f: fn(&SdkSession) -> Option<String>| sessions.iter().map(|s| f(s)).collect::<Vec<_>>();
    let bools =
        |f: fn(&SdkSession) -> Option<bool>| sessions.iter().map(|s| f(s)).collect::<Vec<_>>();
    let times = |f: fn(&SdkSession) -> Option<DateTime<Utc>>| {
        sessions.iter().map(|s| f(s)).collect::<Vec<_>>()
    };
    let ids: Vec<String> = sessions.iter().map(|s| s.session_id.clone()).collect();
    let seconds: Vec<Option<i64>> = sessions.iter().map(|s| s.duration_seconds()).collect();
    let counts: Vec<Option<i64>> = sessions.iter().map(|s| s.user_count).collect();
    let raws: Vec<Value> = sessions.iter().map(|s| s.raw.clone()).collect();
    sqlx::query(
        "INSERT INTO rollcall.zoom_sdk_sessions
           (account, month, session_id, session_name, session_key, start_time, end_time, duration,
            duration_seconds, user_count, has_voip, has_video, has_screen_share, has_recording, has_pstn,
            has_session_summary, raw, collected_at, walk_id)
         SELECT $1, $2, s.*, now(), $3
           FROM UNNEST($4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::timestamptz[], $9::text[],
                       $10::int8[], $11::int8[], $12::bool[], $13::bool[], $14::bool[], $15::bool[],
                       $16::bool[], $17::bool[], $18::jsonb[]) AS s
         ON CONFLICT (account, session_id) DO UPDATE
           SET month = EXCLUDED.month, session_name = EXCLUDED.session_name,
               session_key = EXCLUDED.session_key, start_time = EXCLUDED.start_time,
               end_time = EXCLUDED.end_time, duration = EXCLUDED.duration,
               duration_seconds = EXCLUDED.duration_seconds, user_count = EXCLUDED.user_count,
               has_voip = EXCLUDED.has_voip, has_video = EXCLUDED.has_video,
               has_screen_share = EXCLUDED.has_screen_share, has_recording = EXCLUDED.has_recording,
               has_pstn = EXCLUDED.has_pstn, has_session_summary = EXCLUDED.has_session_summary,
               raw = EXCLUDED.raw, collected_at = EXCLUDED.collected_at, walk_id = EXCLUDED.walk_id,
               missing_since = NULL, missing_run = NULL,
               end_time_unknown = zoom_sdk_sessions.end_time_unknown AND EXCLUDED.end_time IS NULL",
    )
    .bind(account)
    .bind(month_of(window))
    .bind(walk_id)
    .bind(&ids)
    .bind(texts(|s| s.session_name.clone()))
    .bind(texts(|s| s.session_key.clone()))
    .bind(times(|s| s.start_time))
    .bind(times(|s| s.end_time))
    .bind(texts(|s| s.duration.clone()))
    .bind(&seconds)
    .bind(&counts)
    .bind(bools(|s| s.has_voip))
    .bind(bools(|s| s.has_video))
    .bind(bools(|s| s.has_screen_share))
    .bind(bools(|s| s.has_recording))
    .bind(bools(|s| s.has_pstn))
    .bind(bools(|s| s.has_session_summary))
    .bind(&raws)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sessions_keep_raw_and_derive_seconds_from_the_timestamps() {
        let raw = json!({"id": "/ab//c+d==", "session_name": "Daily\u{0}", "start_time": "2021-12-07T05:42:28Z",
            "end_time": "2021-12-07T06:12:28Z", "duration": "30:00", "user_count": "3", "has_voip": true,
            "has_video": "false", "room": {"kept": 1}});
        let s = SdkSession::from_raw(raw, 0).unwrap();
        assert_eq!(s.session_id, "/ab//c+d==");
        assert_eq!(s.duration_seconds(), Some(1800));
        assert_eq!(s.duration.as_deref(), Some("30:00"));
        assert_eq!(s.user_count, Some(3));
        assert_eq!(s.has_video, Some(false));
        assert_eq!(s.session_name.as_deref(), Some("Daily\u{FFFD}"));
        assert_eq!(s.raw["room"]["kept"], json!(1));
        let open =
            SdkSession::from_raw(json!({"id": "x", "start_time": "2021-12-07T05:42:28Z"}), 0)
                .unwrap();
        assert_eq!((open.end_time, open.duration_seconds()), (None, None));
        assert!(SdkSession::from_raw(json!({"session_name": "n"}), 2)
            .unwrap_err()
            .contains("sessions[2]"));
    }
}

//! Rocket.Chat daily active users (`GET /api/v1/engagement-dashboard/users/active-users`): one request
//! per window of local days, checked whole before anything is written, then the window's days that are not
//! yet final are replaced exactly in the transaction that completes the window.

use super::client::RocketChatClient;
use super::days;
use crate::config::RocketChatWorkspace;
use crate::engine::RunContext;
use crate::engine::{Finished, PageMeta, Shrink, Source, Tx};
use crate::http::ApiError;
use crate::store::text::clean_str;
use crate::store::windows::{Edge, PlannedWindow, Retirement, Window};
use crate::store::StoreError;
use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const STREAM: &str = "rc_active_users";

pub struct ActiveUsers {
    pub client: Arc<RocketChatClient>,
    pub account: String,
    pub timezone: chrono_tz::Tz,
    pub window_days: u32,
    pub lookback_days: u32,
    pub retention_days: u32,
    /// The workspace's local date when this run started: the fetch and finality read the same one.
    pub today: NaiveDate,
    /// Backfill bounds (`--from`, `--to`); by default the server's retention .. yesterday.
    pub plan_from: Option<NaiveDate>,
    pub plan_to: Option<NaiveDate>,
    /// A refusal no retry or other window can fix (permission, license, URL): later windows of this run
    /// fail with it without another request.
    refused: Mutex<Option<String>>,
}

/// One walk's request: the days of the window that may be asked for when it starts (`None`: none may).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DaysRequest {
    span: Option<(NaiveDate, NaiveDate)>,
    /// The workspace's local date when the walk began: which days it finalizes is decided from it.
    /// Absent in parameters stored by an older binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    today: Option<NaiveDate>,
}

/// One window's answer. `span` is `None` when nothing of the window may be requested any more.
pub struct DaysPage {
    span: Option<(NaiveDate, NaiveDate)>,
    today: NaiveDate,
    body: Value,
}

/// One day of a checked answer.
struct Day {
    day: NaiveDate,
    users: Vec<String>,
}

impl ActiveUsers {
    /// `plan_from`/`plan_to` are the backfill bounds; `None` means retention .. yesterday.
    pub fn new(
        client: Arc<RocketChatClient>,
        workspace: &RocketChatWorkspace,
        run: &RunContext,
        plan_from: Option<NaiveDate>,
        plan_to: Option<NaiveDate>,
    ) -> ActiveUsers {
        ActiveUsers {
            client,
            account: workspace.name.clone(),
            timezone: workspace.timezone,
            window_days: workspace.window_days,
            lookback_days: workspace.lookback_days,
            retention_days: workspace.retention_days,
            today: run.today_in(workspace.timezone),
            plan_from,
            plan_to,
            refused: Mutex::new(None),
        }
    }

    fn today(&self) -> NaiveDate {
        self.today
    }

    fn refused(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.refused
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Source for ActiveUsers {
    type Page = DaysPage;
    type Params = DaysRequest;

    fn account(&self) -> &str {
        &self.account
    }

    fn stream(&self) -> &'static str {
        STREAM
    }

    fn plan(&self) -> Vec<PlannedWindow> {
        days::plan(
            self.today(),
            self.window_days,
            self.retention_days,
            self.plan_from,
            self.plan_to,
        )
    }

    fn is_final(&self, window: &Window, params: &DaysRequest) -> bool {
        let today = params.today.unwrap_or(self.today());
        days::day_is_final(window.window_end, today, self.lookback_days)
    }

    /// Days become final one by one: a walk finalizes something when the first day it asks for is final.
    fn finalizes(&self, _window: &Window, params: &DaysRequest) -> bool {
        let today = params.today.unwrap_or(self.today());
        params
            .span
            .is_some_and(|(first, _)| days::day_is_final(first, today, self.lookback_days))
    }

    /// Among the days this walk makes final (not stored final yet): a stored user the answer leaves out,
    /// or a stored count higher than the answer's. Counted in users over those days.
    async fn shrinks(
        &self,
        tx: &mut Tx,
        _window: &Window,
        _walk_id: Uuid,
        last_page: &DaysPage,
    ) -> Result<Option<Shrink>, StoreError> {
        let (Some((first, last)), Ok(served)) = (last_page.span, check(last_page)) else {
            return Ok(None);
        };
        let mut finalizing = Vec::new();
        let mut day = first;
        while day <= last && days::day_is_final(day, last_page.today, self.lookback_days) {
            finalizing.push(day);
            day += Duration::days(1);
        }
        let (mut served_days, mut served_ids, mut day_list, mut day_counts) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for d in served.iter().filter(|d| finalizing.contains(&d.day)) {
            served_days.extend(std::iter::repeat_n(d.day, d.users.len()));
            served_ids.extend(d.users.iter().cloned());
            day_list.push(d.day);
            day_counts.push(d.users.len() as i64);
        }
        let (stored, removed, lowered): (i64, i64, bool) = sqlx::query_as(
            "WITH open AS (SELECT day, users FROM rollcall.rc_active_users
                            WHERE account = $1 AND day = ANY($2) AND NOT is_final),
                  served AS (SELECT * FROM UNNEST($3::date[], $4::text[]) AS s(day, user_id)),
                  counts AS (SELECT * FROM UNNEST($5::date[], $6::int8[]) AS c(day, users))
             SELECT coalesce((SELECT sum(users) FROM open), 0)::int8,
                    (SELECT count(*) FROM rollcall.rc_active_user_days u JOIN open USING (day)
                      WHERE u.account = $1
                        AND NOT EXISTS (SELECT 1 FROM served s WHERE s.day = u.day AND s.user_id = u.user_id)),
                    EXISTS (SELECT 1 FROM open o LEFT JOIN counts c USING (day)
                             WHERE o.users > coalesce(c.users, 0))",
        )
        .bind(&self.account)
        .bind(&finalizing)
        .bind(&served_days)
        .bind(&served_ids)
        .bind(&day_list)
        .bind(&day_counts)
        .fetch_one(&mut **tx)
        .await?;
        Ok((removed > 0 || lowered).then_some(Shrink {
            stored,
            walked: served_ids.len() as i64,
        }))
    }

    /// A block whose every day is older than the server holds is retired; its stored days are kept as
    /// they are (final or not).
    fn retirement(&self) -> Option<Retirement> {
        let before = days::oldest_served(self.today(), self.retention_days);
        Some(Retirement {
            edge: Edge::End,
            before,
            reason: format!(
                "Rocket.Chat no longer holds these days: all are before {before} (today minus retention_days); stored days are kept"
            ),
        })
    }

    /// One window at a time: the route allows about 10 calls a minute, which concurrency cannot raise,
    /// and the client follows `X-RateLimit-Remaining` from one answer to the next request.
    fn max_windows_in_flight(&self) -> Option<usize> {
        Some(1)
    }

    fn params(&self, window: &Window) -> DaysRequest {
        DaysRequest {
            span: days::request_span(
                window.window_start,
                window.window_end,
                self.today(),
                self.retention_days,
            ),
            today: Some(self.today()),
        }
    }

    async fn fetch(
        &self,
        _window: &Window,
        params: &DaysRequest,
        _page_token: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<DaysPage, ApiError> {
        let today = params.today.unwrap_or(self.today());
        let span = params.span;
        let Some((first, last)) = span else {
            // Every day of the window is past retention (or not yet over): nothing to ask, nothing to
            // write; the window completes so that it can become final.
            return Ok(DaysPage {
                span,
                today,
                body: Value::Null,
            });
        };
        if let Some(message) = self.refused().clone() {
            return Err(ApiError::Rejected {
                what: format!("rocketchat workspace \"{}\"", self.account),
                message: format!("not requested: {message}"),
            });
        }
        let (start, end) = days::request_bounds(first, last, self.timezone);
        let body = match self.client.active_users(&start, &end, cancel).await {
            Ok(body) => body,
            Err(ApiError::Rejected { what, message }) => {
                *self.refused() = Some(message.clone());
                return Err(ApiError::Rejected { what, message });
            }
            Err(other) => return Err(other),
        };
        Ok(DaysPage { span, today, body })
    }

    fn inspect(&self, _window: &Window, page: &DaysPage) -> Result<PageMeta, String> {
        // The body check is the proof here; the API announces no total of its own, and a window
        // straddling the finality edge keeps final days that may differ from what is served now.
        check(page)?;
        Ok(PageMeta {
            next_page_token: None,
            expected_total: None,
        })
    }

    async fn write_page(
        &self,
        tx: &mut Tx,
        _window: &Window,
        _walk_id: Uuid,
        page: &DaysPage,
    ) -> Result<i64, StoreError> {
        let Some((first, last)) = page.span else {
            return Ok(0);
        };
        // inspect() accepted this page, so the check cannot fail here; a failure writes nothing.
        let Ok(served) = check(page) else {
            return Ok(0);
        };
        replace_days(
            tx,
            &self.account,
            (first, last),
            served,
            page.today,
            self.lookback_days,
        )
        .await
    }

    async fn finish(
        &self,
        tx: &mut Tx,
        _window: &Window,
        _walk_id: Uuid,
        last_page: &DaysPage,
        is_final: bool,
    ) -> Result<Result<Finished, String>, StoreError> {
        let Some((first, last)) = last_page.span else {
            return Ok(Ok(Finished { rows: 0, is_final }));
        };
        let held: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM rollcall.rc_active_user_days
              WHERE account = $1 AND day BETWEEN $2 AND $3",
        )
        .bind(&self.account)
        .bind(first)
        .bind(last)
        .fetch_one(&mut **tx)
        .await?;
        Ok(Ok(Finished {
            rows: held,
            is_final,
        }))
    }
}

/// Checks the body against the request: `success` true, a `month` array whose entries each name a valid
/// date inside the requested days, `users == usersList.len()`, no day twice, no id twice in a day. The
/// order of entries is not relied on.
fn check(page: &DaysPage) -> Result<Vec<Day>, String> {
    let Some((first, last)) = page.span else {
        return Ok(Vec::new());
    };
    let body = &page.body;
    if body.get("success") != Some(&Value::Bool(true)) {
        return Err(format!(
            "malformed active-users body: success is {}, not true",
            body.get("success")
                .map_or("missing".into(), Value::to_string)
        ));
    }
    let entries = body
        .get("month")
        .and_then(Value::as_array)
        .ok_or("malformed active-users body: month is not an array")?;
    let mut seen_days = HashSet::new();
    let mut out = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let field = |name: &str| entry.get(name).and_then(Value::as_i64);
        let (Some(year), Some(month), Some(day)) = (field("year"), field("month"), field("day"))
        else {
            return Err(format!(
                "malformed active-users body: month[{i}] lacks an integer year, month or day"
            ));
        };
        let date = i32::try_from(year)
            .ok()
            .zip(u32::try_from(month).ok())
            .zip(u32::try_from(day).ok())
            .and_then(|((y, m), d)| NaiveDate::from_ymd_opt(y, m, d))
            .ok_or_else(|| {
                format!(
                    "malformed active-users body: month[{i}] is not a date ({year}-{month}-{day})"
                )
            })?;
        if date < first || date > last {
            return Err(format!(
                "active-users answered for {date}, outside the requested days {first}..{last}"
            ));
        }
        if !seen_days.insert(date) {
            return Err(format!("active-users listed {date} twice"));
        }
        let list = entry
            .get("usersList")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("malformed active-users body: {date} has no usersList array"))?;
        let mut users = Vec::with_capacity(list.len());
        let mut ids = HashSet::with_capacity(list.len());
        for id in list {
            let id = match id.as_str() {
                Some(s) if !s.is_empty() => clean_str(s).into_owned(),
                _ => {
                    return Err(format!(
                        "malformed active-users body: {date} has a user id that is not a non-empty string"
                    ))
                }
            };
            if !ids.insert(id.clone()) {
                return Err(format!("active-users listed user {id} twice on {date}"));
            }
            users.push(id);
        }
        let count = entry.get("users").and_then(Value::as_i64);
        if count != Some(users.len() as i64) {
            return Err(format!(
                "active-users says users={} for {date} but usersList holds {}",
                count.map_or("(missing)".into(), |c| c.to_string()),
                users.len()
            ));
        }
        out.push(Day { day: date, users });
    }
    Ok(out)
}

/// Replaces the requested days that are not yet stored as final: their user rows are deleted and
/// inserted again, their count upserted (0 for a day the answer left out). Days stored as final are left
/// exactly as they are, even if the server now says otherwise (it may have expired them). Returns the user
/// rows written.
async fn replace_days(
    tx: &mut Tx,
    account: &str,
    (first, last): (NaiveDate, NaiveDate),
    served: Vec<Day>,
    today: NaiveDate,
    lookback_days: u32,
) -> Result<i64, StoreError> {
    let frozen: Vec<NaiveDate> = sqlx::query_scalar(
        "SELECT day FROM rollcall.rc_active_users
          WHERE account = $1 AND day BETWEEN $2 AND $3 AND is_final",
    )
    .bind(account)
    .bind(first)
    .bind(last)
    .fetch_all(&mut **tx)
    .await?;
    let frozen: HashSet<NaiveDate> = frozen.into_iter().collect();
    let mut by_day: BTreeMap<NaiveDate, Vec<String>> =
        served.into_iter().map(|d| (d.day, d.users)).collect();
    let mut open_days = Vec::new();
    let mut counts = Vec::new();
    let mut finals = Vec::new();
    let (mut user_days, mut user_ids) = (Vec::new(), Vec::new());
    let mut day = first;
    while day <= last {
        if !frozen.contains(&day) {
            let users = by_day.remove(&day).unwrap_or_default();
            open_days.push(day);
            counts.push(users.len() as i32);
            finals.push(days::day_is_final(day, today, lookback_days));
            user_days.extend(std::iter::repeat_n(day, users.len()));
            user_ids.extend(users);
        }
        day += Duration::days(1);
    }
    if open_days.is_empty() {
        return Ok(0);
    }
    sqlx::query("DELETE FROM rollcall.rc_active_user_days WHERE account = $1 AND day = ANY($2)")
        .bind(account)
        .bind(&open_days)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO rollcall.rc_active_user_days (account, day, user_id)
         SELECT $1, u.day, u.user_id FROM UNNEST($2::date[], $3::text[]) AS u(day, user_id)",
    )
    .bind(account)
    .bind(&user_days)
    .bind(&user_ids)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO rollcall.rc_active_users (account, day, users, is_final, collected_at)
         SELECT $1, d.day, d.users, d.is_final, now()
           FROM UNNEST($2::date[], $3::int4[], $4::bool[]) AS d(day, users, is_final)
         ON CONFLICT (account, day) DO UPDATE
           SET users = EXCLUDED.users, is_final = EXCLUDED.is_final, collected_at = EXCLUDED.collected_at
         WHERE NOT rc_active_users.is_final",
    )
    .bind(account)
    .bind(&open_days)
    .bind(&counts)
    .bind(&finals)
    .execute(&mut **tx)
    .await?;
    Ok(user_ids.len() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn page(body: Value) -> DaysPage {
        DaysPage {
            span: Some(("2024-03-01".parse().unwrap(), "2024-03-07".parse().unwrap())),
            today: "2024-03-20".parse().unwrap(),
            body,
        }
    }

    fn entry(day: u32, ids: &[&str]) -> Value {
        json!({"day": day, "month": 3, "year": 2024, "users": ids.len(), "usersList": ids})
    }

    #[test]
    fn a_sound_body_passes_in_any_order() {
        let days = check(&page(
            json!({"success": true, "month": [entry(5, &["b"]), entry(1, &["a", "x\u{0}"])]}),
        ))
        .unwrap();
        assert_eq!(days.len(), 2);
        assert_eq!(days[1].users, ["a", "x\u{FFFD}"]);
        assert!(check(&page(json!({"success": true, "month": []})))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn every_contradiction_is_refused_with_its_reason() {
        let cases = [
            (json!({"success": false, "month": []}), "success"),
            (json!({"month": []}), "success"),
            (json!({"success": true}), "not an array"),
            (
                json!({"success": true, "month": [entry(8, &["a"])]}),
                "outside",
            ),
            (
                json!({"success": true, "month": [{"day": 31, "month": 2, "year": 2024, "users": 0, "usersList": []}]}),
                "not a date",
            ),
            (
                json!({"success": true, "month": [{"day": "1", "month": 3, "year": 2024, "users": 0, "usersList": []}]}),
                "integer",
            ),
            (
                json!({"success": true, "month": [entry(2, &["a"]), entry(2, &["b"])]}),
                "twice",
            ),
            (
                json!({"success": true, "month": [entry(2, &["a", "a"])]}),
                "twice",
            ),
            (
                json!({"success": true, "month": [{"day": 2, "month": 3, "year": 2024, "users": 3, "usersList": ["a"]}]}),
                "users=3",
            ),
            (
                json!({"success": true, "month": [{"day": 2, "month": 3, "year": 2024, "users": 1, "usersList": [7]}]}),
                "not a non-empty string",
            ),
        ];
        for (body, reason) in cases {
            let err = check(&page(body.clone())).err().unwrap_or_default();
            assert!(err.contains(reason), "{body}: {err}");
        }
    }
}

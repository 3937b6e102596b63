//! Zoom active/inactive host reports (`GET /report/users`): one calendar-month window per report type.

use super::client::ZoomClient;
use super::fields::{field, int, page_token, required_list, text, timestamp};
use super::months::{self, MonthRequest, MonthWindows};
use super::pacing::Category;
use crate::engine::{Finished, PageMeta, Shrink, Source, StoredRows, Tx};
use crate::http::ApiError;
use crate::store::text::clean_json;
use crate::store::windows::{PlannedWindow, Retirement, Window};
use crate::store::StoreError;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const STREAM: &str = "zoom_host_report";
pub const REPORT_TYPES: [&str; 2] = ["active", "inactive"];

pub struct HostReports {
    pub client: Arc<ZoomClient>,
    pub account: String,
    pub page_size: u32,
    /// Its months: planning, horizon, finality.
    pub months: MonthWindows,
}

/// One report walk's request: the month's range and the report type.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReportRequest {
    #[serde(rename = "type")]
    report_type: String,
    #[serde(flatten)]
    month: MonthRequest,
}

/// A page as fetched, with the request it answers so `inspect` can check Zoom did not clamp the range.
pub struct ReportPage {
    requested_from: NaiveDate,
    requested_to: NaiveDate,
    body: ReportBody,
    users: Result<HostColumns, String>,
}

#[derive(Deserialize)]
struct ReportBody {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    total_records: Option<Value>,
    #[serde(default)]
    total_meetings: Option<Value>,
    #[serde(default)]
    total_participants: Option<Value>,
    #[serde(default)]
    total_meeting_minutes: Option<Value>,
    #[serde(default, deserialize_with = "page_token")]
    next_page_token: Option<String>,
    #[serde(deserialize_with = "required_list")]
    users: Vec<Value>,
}

/// One report row, typed for the columns analysts query; the served JSON is kept whole in `raw`.
#[derive(Debug)]
pub struct HostUser {
    user_id: String,
    email: Option<String>,
    user_name: Option<String>,
    user_type: Option<i32>,
    dept: Option<String>,
    meetings: Option<i64>,
    participants: Option<i64>,
    meeting_minutes: Option<i64>,
    custom_attributes: Option<Value>,
    create_time: Option<DateTime<Utc>>,
    last_login_time: Option<DateTime<Utc>>,
    last_client_version: Option<String>,
    raw: Value,
}

impl HostUser {
    fn from_raw(mut raw: Value, index: usize) -> Result<HostUser, String> {
        clean_json(&mut raw);
        let field = |name: &str| field(&raw, name);
        let user_id = match field("id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(format!("users[{index}] has no id")),
        };
        Ok(HostUser {
            email: text(field("email")),
            user_name: text(field("user_name")),
            user_type: int(field("type")).and_then(|t| i32::try_from(t).ok()),
            dept: text(field("dept")),
            meetings: int(field("meetings")),
            participants: int(field("participants")),
            meeting_minutes: int(field("meeting_minutes")),
            custom_attributes: field("custom_attributes").cloned(),
            create_time: timestamp(field("create_time")),
            last_login_time: timestamp(field("last_login_time")),
            last_client_version: text(field("last_client_version")),
            user_id,
            raw,
        })
    }
}

impl Source for HostReports {
    type Page = ReportPage;
    type Params = ReportRequest;

    fn account(&self) -> &str {
        &self.account
    }

    fn stream(&self) -> &'static str {
        STREAM
    }

    fn plan(&self) -> Vec<PlannedWindow> {
        self.months.plan(&REPORT_TYPES)
    }

    fn retirement(&self) -> Option<Retirement> {
        Some(self.months.retirement())
    }

    fn is_final(&self, window: &Window, params: &ReportRequest) -> bool {
        self.months.is_final(window, params.month.day)
    }

    /// A report of more than one page is written page by page: the users are set aside before a walk
    /// that settles the month, and a user's meetings, participants or minutes lowered by it (on any page)
    /// count as a shrink, like a user it no longer lists.
    fn stored_rows(&self, window: &Window) -> Vec<StoredRows> {
        vec![StoredRows {
            table: "zoom_host_report_users",
            key: &["account", "month", "report_type", "user_id"],
            scope: vec![
                ("account", json!(self.account)),
                ("month", json!(window.window_start)),
                ("report_type", json!(window.scope)),
            ],
            counts: &["meetings", "participants", "meeting_minutes"],
        }]
    }

    /// Stored users of the month this walk did not list (its earlier pages are tagged with `walk_id`,
    /// the last page's users are not written yet), or a total lower than the stored one.
    async fn shrinks(
        &self,
        tx: &mut Tx,
        window: &Window,
        walk_id: Uuid,
        last_page: &ReportPage,
    ) -> Result<Option<Shrink>, StoreError> {
        let empty = Vec::new();
        let last_ids = last_page.users.as_ref().map_or(&empty, |c| &c.ids);
        let (stored, removed, walked): (i64, i64, i64) = sqlx::query_as(
            "WITH stored AS (SELECT user_id, walk_id FROM rollcall.zoom_host_report_users
                              WHERE account = $1 AND month = $2 AND report_type = $3)
             SELECT (SELECT count(*) FROM stored),
                    (SELECT count(*) FROM stored
                      WHERE walk_id IS DISTINCT FROM $4 AND user_id <> ALL($5::text[])),
                    (SELECT count(*) FROM (SELECT user_id FROM stored WHERE walk_id = $4
                                           UNION SELECT unnest($5::text[])) AS walked)",
        )
        .bind(&self.account)
        .bind(window.window_start)
        .bind(&window.scope)
        .bind(walk_id)
        .bind(last_ids)
        .fetch_one(&mut **tx)
        .await?;
        let body = &last_page.body;
        let lower_total: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM rollcall.zoom_host_reports
                             WHERE account = $1 AND month = $2 AND report_type = $3
                               AND (total_records > coalesce($4, -1)
                                    OR total_meetings > coalesce($5, -1)
                                    OR total_participants > coalesce($6, -1)
                                    OR total_meeting_minutes > coalesce($7, -1)))",
        )
        .bind(&self.account)
        .bind(window.window_start)
        .bind(&window.scope)
        .bind(int(body.total_records.as_ref()))
        .bind(int(body.total_meetings.as_ref()))
        .bind(int(body.total_participants.as_ref()))
        .bind(int(body.total_meeting_minutes.as_ref()))
        .fetch_one(&mut **tx)
        .await?;
        Ok((removed > 0 || lower_total).then_some(Shrink { stored, walked }))
    }

    fn params(&self, window: &Window) -> ReportRequest {
        ReportRequest {
            report_type: window.scope.clone(),
            month: self.months.request(window, self.page_size),
        }
    }

    async fn fetch(
        &self,
        _window: &Window,
        params: &ReportRequest,
        page_token: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<ReportPage, ApiError> {
        let (from, to) = (params.month.from, params.month.to);
        let (from_text, to_text, page_size) = (
            from.to_string(),
            to.to_string(),
            params.month.page_size.to_string(),
        );
        let mut query = vec![
            ("type", params.report_type.as_str()),
            ("from", from_text.as_str()),
            ("to", to_text.as_str()),
            ("page_size", page_size.as_str()),
        ];
        if let Some(token) = page_token {
            query.push(("next_page_token", token));
        }
        let mut body: ReportBody = self
            .client
            .get_json("/report/users", &query, Category::Heavy, cancel)
            .await?;
        let users = std::mem::take(&mut body.users)
            .into_iter()
            .enumerate()
            .map(|(i, raw)| HostUser::from_raw(raw, i))
            .collect::<Result<Vec<_>, _>>()
            .map(HostColumns::from_rows);
        Ok(ReportPage {
            requested_from: from,
            requested_to: to,
            body,
            users,
        })
    }

    fn inspect(&self, _window: &Window, page: &ReportPage) -> Result<PageMeta, String> {
        months::check_served_range(
            page.body.from.as_deref(),
            page.body.to.as_deref(),
            page.requested_from,
            page.requested_to,
        )?;
        if let Err(problem) = &page.users {
            return Err(format!("malformed report page: {problem}"));
        }
        let expected_total = int(page.body.total_records.as_ref());
        if expected_total.is_none() {
            return Err("malformed report page: total_records is missing".into());
        }
        Ok(PageMeta {
            next_page_token: page.body.next_page_token.clone(),
            expected_total,
        })
    }

    async fn write_page(
        &self,
        tx: &mut Tx,
        window: &Window,
        walk_id: Uuid,
        page: &ReportPage,
    ) -> Result<i64, StoreError> {
        let Ok(users) = &page.users else {
            return Ok(0);
        };
        upsert_users(tx, &self.account, window, walk_id, users).await
    }

    async fn finish(
        &self,
        tx: &mut Tx,
        window: &Window,
        walk_id: Uuid,
        last_page: &ReportPage,
        is_final: bool,
    ) -> Result<Result<Finished, String>, StoreError> {
        let seen: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM rollcall.zoom_host_report_users
              WHERE account = $1 AND month = $2 AND report_type = $3 AND walk_id = $4",
        )
        .bind(&self.account)
        .bind(window.window_start)
        .bind(&window.scope)
        .bind(walk_id)
        .fetch_one(&mut **tx)
        .await?;
        // The engine compares `seen` with `total_records` and rolls all of this back if they differ.
        let total = int(last_page.body.total_records.as_ref()).unwrap_or(seen);
        sqlx::query(
            "DELETE FROM rollcall.zoom_host_report_users
              WHERE account = $1 AND month = $2 AND report_type = $3 AND walk_id <> $4",
        )
        .bind(&self.account)
        .bind(window.window_start)
        .bind(&window.scope)
        .bind(walk_id)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO rollcall.zoom_host_reports
               (account, month, report_type, from_date, to_date, total_records, total_meetings,
                total_participants, total_meeting_minutes, is_final, collected_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now())
             ON CONFLICT (account, month, report_type) DO UPDATE
               SET from_date = EXCLUDED.from_date, to_date = EXCLUDED.to_date,
                   total_records = EXCLUDED.total_records, total_meetings = EXCLUDED.total_meetings,
                   total_participants = EXCLUDED.total_participants,
                   total_meeting_minutes = EXCLUDED.total_meeting_minutes, is_final = EXCLUDED.is_final,
                   collected_at = EXCLUDED.collected_at",
        )
        .bind(&self.account)
        .bind(window.window_start)
        .bind(&window.scope)
        .bind(last_page.requested_from)
        .bind(last_page.requested_to)
        .bind(total)
        .bind(int(last_page.body.total_meetings.as_ref()))
        .bind(int(last_page.body.total_participants.as_ref()))
        .bind(int(last_page.body.total_meeting_minutes.as_ref()))
        .bind(is_final)
        .execute(&mut **tx)
        .await?;
        Ok(Ok(Finished {
            rows: seen,
            is_final,
        }))
    }
}

/// A page's rows as the column arrays of its UNNEST upsert, built once when the page is parsed so the
/// write binds them without copying. A user served twice in one page keeps its last occurrence, since
/// PostgreSQL refuses to update a row twice in one statement. JSON columns are held as compact JSON text,
/// not as `Value` trees: a tree costs several times its text, and with many windows in flight the pages
/// waiting to be written are most of the collector's memory.
pub struct HostColumns {
    ids: Vec<String>,
    emails: Vec<Option<String>>,
    names: Vec<Option<String>>,
    types: Vec<Option<i32>>,
    depts: Vec<Option<String>>,
    meetings: Vec<Option<i64>>,
    participants: Vec<Option<i64>>,
    minutes: Vec<Option<i64>>,
    attributes: Vec<Option<String>>,
    created: Vec<Option<DateTime<Utc>>>,
    logins: Vec<Option<DateTime<Utc>>>,
    versions: Vec<Option<String>>,
    raws: Vec<String>,
}

impl HostColumns {
    fn from_rows(rows: Vec<HostUser>) -> HostColumns {
        let mut last_index: HashMap<String, usize> = HashMap::with_capacity(rows.len());
        for (i, user) in rows.iter().enumerate() {
            last_index.insert(user.user_id.clone(), i);
        }
        let n = last_index.len();
        let mut c = HostColumns {
            ids: Vec::with_capacity(n),
            emails: Vec::with_capacity(n),
            names: Vec::with_capacity(n),
            types: Vec::with_capacity(n),
            depts: Vec::with_capacity(n),
            meetings: Vec::with_capacity(n),
            participants: Vec::with_capacity(n),
            minutes: Vec::with_capacity(n),
            attributes: Vec::with_capacity(n),
            created: Vec::with_capacity(n),
            logins: Vec::with_capacity(n),
            versions: Vec::with_capacity(n),
            raws: Vec::with_capacity(n),
        };
        for (i, u) in rows.into_iter().enumerate() {
            if last_index.get(&u.user_id) != Some(&i) {
                continue;
            }
            c.ids.push(u.user_id);
            c.emails.push(u.email);
            c.names.push(u.user_name);
            c.types.push(u.user_type);
            c.depts.push(u.dept);
            c.meetings.push(u.meetings);
            c.participants.push(u.participants);
            c.minutes.push(u.meeting_minutes);
            c.attributes
                .push(u.custom_attributes.as_ref().map(Value::to_string));
            c.created.push(u.create_time);
            c.logins.push(u.last_login_time);
            c.versions.push(u.last_client_version);
            c.raws.push(u.raw.to_string());
        }
        c
    }
}

/// One UNNEST upsert per page: one statement, one round trip, whatever the page size.
async fn upsert_users(
    tx: &mut Tx,
    account: &str,
    window: &Window,
    walk_id: Uuid,
    c: &HostColumns,
) -> Result<i64, StoreError> {
    if c.ids.is_empty() {
        return Ok(0);
    }
    sqlx::query(
        "INSERT INTO rollcall.zoom_host_report_users
           (account, month, report_type, user_id, email, user_name, user_type, dept, meetings, participants,
            meeting_minutes, custom_attributes, create_time, last_login_time, last_client_version, raw,
            first_seen_at, last_seen_at, walk_id)
         SELECT $1, $2, $3, u.id, u.email, u.user_name, u.user_type, u.dept, u.meetings, u.participants,
                u.meeting_minutes, u.custom_attributes::jsonb, u.create_time, u.last_login_time,
                u.last_client_version, u.raw::jsonb, now(), now(), $4
           FROM UNNEST($5::text[], $6::text[], $7::text[], $8::int4[], $9::text[], $10::int8[], $11::int8[],
                       $12::int8[], $13::text[], $14::timestamptz[], $15::timestamptz[], $16::text[],
                       $17::text[])
             AS u(id, email, user_name, user_type, dept, meetings, participants, meeting_minutes,
                  custom_attributes, create_time, last_login_time, last_client_version, raw)
         ON CONFLICT (account, month, report_type, user_id) DO UPDATE
           SET email = EXCLUDED.email, user_name = EXCLUDED.user_name, user_type = EXCLUDED.user_type,
               dept = EXCLUDED.dept, meetings = EXCLUDED.meetings, participants = EXCLUDED.participants,
               meeting_minutes = EXCLUDED.meeting_minutes, custom_attributes = EXCLUDED.custom_attributes,
               create_time = EXCLUDED.create_time, last_login_time = EXCLUDED.last_login_time,
               last_client_version = EXCLUDED.last_client_version, raw = EXCLUDED.raw,
               last_seen_at = EXCLUDED.last_seen_at, walk_id = EXCLUDED.walk_id",
    )
    .bind(account)
    .bind(window.window_start)
    .bind(&window.scope)
    .bind(walk_id)
    .bind(&c.ids)
    .bind(&c.emails)
    .bind(&c.names)
    .bind(&c.types)
    .bind(&c.depts)
    .bind(&c.meetings)
    .bind(&c.participants)
    .bind(&c.minutes)
    .bind(&c.attributes)
    .bind(&c.created)
    .bind(&c.logins)
    .bind(&c.versions)
    .bind(&c.raws)
    .execute(&mut **tx)
    .await?;
    Ok(c.ids.len() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_are_typed_leniently_and_raw_is_kept() {
        let raw = json!({"id": "u1", "email": "a@b.c", "type": "2", "meetings": 3.0, "participants": null,
            "custom_attributes": [{"key": "k", "name": "n", "value": "v"}], "create_time": "2019-09-13T16:20:30Z",
            "dept": "R&D\u{0}", "extra": {"kept": true}});
        let user = HostUser::from_raw(raw, 0).unwrap();
        assert_eq!(user.user_type, Some(2));
        assert_eq!(user.meetings, Some(3));
        assert_eq!(user.participants, None);
        assert_eq!(user.dept.as_deref(), Some("R&D\u{FFFD}"));
        assert!(user.custom_attributes.unwrap().is_array());
        assert!(user.create_time.is_some());
        assert_eq!(user.raw["extra"]["kept"], json!(true));
        assert_eq!(user.raw["dept"], json!("R&D\u{FFFD}"));
        assert!(HostUser::from_raw(json!({"email": "x"}), 4)
            .unwrap_err()
            .contains("users[4]"));
    }
}

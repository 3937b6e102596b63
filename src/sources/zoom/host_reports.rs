//! Zoom active/inactive host reports (`GET /report/users`): one calendar-month window per report type.

use super::client::ZoomClient;
use super::fields::{field, int, page_token, required_raw_list, text, timestamp};
use super::months::{self, MonthRequest, MonthWindows};
use super::pacing::Category;
use crate::engine::{Finished, PageMeta, Shrink, Source, StoredRows, Tx};
use crate::http::ApiError;
use crate::store::text::clean_json;
use crate::store::windows::{PlannedWindow, Retirement, Window};
use crate::store::StoreError;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
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
    #[serde(deserialize_with = "required_raw_list")]
    users: Vec<Box<RawValue>>,
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
    /// JSON text, as `raw`.
    custom_attributes: Option<String>,
    create_time: Option<DateTime<Utc>>,
    last_login_time: Option<DateTime<Utc>>,
    last_client_version: Option<String>,
    /// The row as served (JSON text; U+0000 replaced).
    raw: String,
}

/// The fields of a row that rollcall types, each still as served: only these are parsed, the rest of the
/// row is skipped over and kept as text.
#[derive(Deserialize)]
struct RawFields<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    email: Option<&'a RawValue>,
    #[serde(borrow, default)]
    user_name: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "type")]
    user_type: Option<&'a RawValue>,
    #[serde(borrow, default)]
    dept: Option<&'a RawValue>,
    #[serde(borrow, default)]
    meetings: Option<&'a RawValue>,
    #[serde(borrow, default)]
    participants: Option<&'a RawValue>,
    #[serde(borrow, default)]
    meeting_minutes: Option<&'a RawValue>,
    #[serde(borrow, default)]
    custom_attributes: Option<&'a RawValue>,
    #[serde(borrow, default)]
    create_time: Option<&'a RawValue>,
    #[serde(borrow, default)]
    last_login_time: Option<&'a RawValue>,
    #[serde(borrow, default)]
    last_client_version: Option<&'a RawValue>,
}

impl HostUser {
    /// A served row, typed from its text. A row that is not a plain object of unique keys, or that holds
    /// U+0000 (escaped, the only way JSON can), goes through [`HostUser::from_raw`], whose rules these
    /// are: the same fields, typed the same lenient way.
    fn from_served(served: &RawValue, index: usize) -> Result<HostUser, String> {
        let text_of = served.get();
        // A derived struct also reads an array positionally: only an object takes this path.
        let fields = if text_of.contains("\\u0000") || !text_of.trim_start().starts_with('{') {
            None
        } else {
            serde_json::from_str::<RawFields<'_>>(text_of).ok()
        };
        let Some(f) = fields else {
            let raw: Value = serde_json::from_str(text_of)
                .map_err(|e| format!("users[{index}] is not JSON: {e}"))?;
            return HostUser::from_raw(raw, index);
        };
        let value = |r: Option<&RawValue>| -> Option<Value> {
            r.and_then(|r| serde_json::from_str::<Value>(r.get()).ok())
                .filter(|v| !v.is_null())
        };
        let user_id = match value(f.id) {
            Some(Value::String(s)) if !s.is_empty() => s,
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(format!("users[{index}] has no id")),
        };
        Ok(HostUser {
            email: text(value(f.email).as_ref()),
            user_name: text(value(f.user_name).as_ref()),
            user_type: int(value(f.user_type).as_ref()).and_then(|t| i32::try_from(t).ok()),
            dept: text(value(f.dept).as_ref()),
            meetings: int(value(f.meetings).as_ref()),
            participants: int(value(f.participants).as_ref()),
            meeting_minutes: int(value(f.meeting_minutes).as_ref()),
            custom_attributes: f
                .custom_attributes
                .filter(|r| r.get().trim() != "null")
                .map(|r| r.get().to_string()),
            create_time: timestamp(value(f.create_time).as_ref()),
            last_login_time: timestamp(value(f.last_login_time).as_ref()),
            last_client_version: text(value(f.last_client_version).as_ref()),
            user_id,
            raw: text_of.to_string(),
        })
    }

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
            custom_attributes: field("custom_attributes").map(Value::to_string),
            create_time: timestamp(field("create_time")),
            last_login_time: timestamp(field("last_login_time")),
            last_client_version: text(field("last_client_version")),
            user_id,
            raw: raw.to_string(),
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
        // One pass over the window's stored rows, then the last page's ids looked up by key: the window can
        // hold tens of thousands of hosts, so comparing every stored id with every listed one (or
        // materializing the rows to count them three times) cost more than the page's own upsert.
        let (stored, removed, walked): (i64, i64, i64) = sqlx::query_as(
            "WITH window_rows AS (
                 SELECT count(*) AS stored,
                        count(*) FILTER (WHERE walk_id <> $4) AS stale,
                        count(*) FILTER (WHERE walk_id = $4) AS seen
                   FROM rollcall.zoom_host_report_users
                  WHERE account = $1 AND month = $2 AND report_type = $3),
                  listed AS (
                 SELECT count(*) FILTER (WHERE walk_id <> $4) AS stale,
                        count(*) FILTER (WHERE walk_id = $4) AS seen
                   FROM rollcall.zoom_host_report_users
                  WHERE account = $1 AND month = $2 AND report_type = $3 AND user_id = ANY($5::text[]))
             SELECT w.stored,
                    w.stale - l.stale,
                    w.seen + (SELECT count(DISTINCT id) FROM unnest($5::text[]) AS id) - l.seen
               FROM window_rows w, listed l",
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
            .iter()
            .enumerate()
            .map(|(i, raw)| HostUser::from_served(raw, i))
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
        // One pass counts both; the DELETE (a second pass) runs only when the walk left rows behind, which
        // a first collection and most later walks never do.
        let (seen, left_behind): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE walk_id = $4), count(*) FILTER (WHERE walk_id <> $4)
               FROM rollcall.zoom_host_report_users
              WHERE account = $1 AND month = $2 AND report_type = $3",
        )
        .bind(&self.account)
        .bind(window.window_start)
        .bind(&window.scope)
        .bind(walk_id)
        .fetch_one(&mut **tx)
        .await?;
        // The engine compares `seen` with `total_records` and rolls all of this back if they differ.
        let total = int(last_page.body.total_records.as_ref()).unwrap_or(seen);
        if left_behind > 0 {
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
        }
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
            c.attributes.push(u.custom_attributes);
            c.created.push(u.create_time);
            c.logins.push(u.last_login_time);
            c.versions.push(u.last_client_version);
            c.raws.push(u.raw);
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
        let served = RawValue::from_string(raw.to_string()).unwrap();
        let user = HostUser::from_served(&served, 0).unwrap();
        assert_eq!(user.user_type, Some(2));
        assert_eq!(user.meetings, Some(3));
        assert_eq!(user.participants, None);
        assert_eq!(user.dept.as_deref(), Some("R&D\u{FFFD}"));
        let attributes: Value = serde_json::from_str(&user.custom_attributes.unwrap()).unwrap();
        assert!(attributes.is_array());
        assert!(user.create_time.is_some());
        let stored: Value = serde_json::from_str(&user.raw).unwrap();
        assert_eq!(stored["extra"]["kept"], json!(true));
        assert_eq!(stored["dept"], json!("R&D\u{FFFD}"));
        let missing = RawValue::from_string(json!({"email": "x"}).to_string()).unwrap();
        assert!(HostUser::from_served(&missing, 4)
            .unwrap_err()
            .contains("users[4]"));
    }

    /// The text path and the tree path type a row alike, whatever shape its fields are served in.
    #[test]
    fn served_text_is_typed_as_the_tree_would_be() {
        let rows = [
            json!({"id": 42, "email": 7, "user_name": true, "type": 2.0, "meetings": "12", "participants": 1e3,
                   "meeting_minutes": null, "custom_attributes": null, "create_time": " 2019-09-13T16:20:30Z ",
                   "last_login_time": 5, "last_client_version": "5.1", "dept": "a\\u0000b"}),
            json!({"id": "u", "type": "x", "meetings": 1.5, "custom_attributes": {"a": [1, 2]}, "unknown": [{}]}),
            json!({"id": ""}),
            json!(["not", "an", "object"]),
        ];
        for row in rows {
            let served = RawValue::from_string(row.to_string()).unwrap();
            let fast = HostUser::from_served(&served, 1);
            let slow = HostUser::from_raw(row.clone(), 1);
            match (fast, slow) {
                (Ok(f), Ok(s)) => {
                    assert_eq!(
                        format!(
                            "{:?}",
                            (&f.user_id, &f.email, &f.user_name, f.user_type, &f.dept)
                        ),
                        format!(
                            "{:?}",
                            (&s.user_id, &s.email, &s.user_name, s.user_type, &s.dept)
                        )
                    );
                    assert_eq!(
                        (f.meetings, f.participants, f.meeting_minutes),
                        (s.meetings, s.participants, s.meeting_minutes)
                    );
                    assert_eq!(
                        (f.create_time, f.last_login_time, &f.last_client_version),
                        (s.create_time, s.last_login_time, &s.last_client_version)
                    );
                    let parse = |t: &Option<String>| {
                        t.as_deref()
                            .map(|t| serde_json::from_str::<Value>(t).unwrap())
                    };
                    assert_eq!(parse(&f.custom_attributes), parse(&s.custom_attributes));
                    assert_eq!(
                        serde_json::from_str::<Value>(&f.raw).unwrap(),
                        serde_json::from_str::<Value>(&s.raw).unwrap()
                    );
                }
                (Err(f), Err(s)) => assert_eq!(f, s),
                (f, s) => panic!("{row}: {f:?} against {s:?}"),
            }
        }
        // A key served twice: the last one counts, as in the tree.
        let twice =
            RawValue::from_string(r#"{"id": "a", "meetings": 1, "meetings": 2}"#.into()).unwrap();
        assert_eq!(HostUser::from_served(&twice, 0).unwrap().meetings, Some(2));
    }
}

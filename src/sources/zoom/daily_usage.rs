//! Zoom's daily usage reports, one request per calendar month (research/zoom-api.md §2e):
//! `GET /report/daily?year&month` for a `[[zoom]]` account (stream `zoom_daily_usage`) and
//! `GET /videosdk/report/daily?year&month` for a `[[videosdk]]` account (stream `zoom_sdk_daily_usage`).
//!
//! Both are month windows with the host reports' horizon and finality (`months`), scope `''`, and one page
//! each. Whether Zoom lists a day without usage is undocumented, so a day it leaves out is stored as zeros
//! only once the month is final (Zoom can no longer add it); before that it has no row, since an absent day
//! may still be reported. The window is a mirror of the walk: a stored day of the month the reply no longer
//! lists is deleted (or zeroed, when final) in the transaction that completes the window.

use super::client::ZoomClient;
use super::fields::{field, int, required_list};
use super::months::{self, first_of_month, last_of_month, MonthWindows};
use super::pacing::Category;
use crate::engine::{Finished, PageMeta, Shrink, Source, Tx};
use crate::http::ApiError;
use crate::store::text::clean_json;
use crate::store::windows::{PlannedWindow, Retirement, Window};
use crate::store::StoreError;
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const STREAM: &str = "zoom_daily_usage";
pub const SDK_STREAM: &str = "zoom_sdk_daily_usage";

/// Which of the two reports a source collects: they differ only in path, table and metric names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    /// The Meetings API's account usage, for a `[[zoom]]` account (S2S OAuth).
    Meetings,
    /// The Video SDK's usage, for a `[[videosdk]]` account (JWT).
    VideoSdk,
}

impl Report {
    pub fn stream(self) -> &'static str {
        match self {
            Report::Meetings => STREAM,
            Report::VideoSdk => SDK_STREAM,
        }
    }

    fn path(self) -> &'static str {
        match self {
            Report::Meetings => "/report/daily",
            Report::VideoSdk => "/videosdk/report/daily",
        }
    }

    fn table(self) -> &'static str {
        match self {
            Report::Meetings => "rollcall.zoom_daily_usage",
            Report::VideoSdk => "rollcall.zoom_sdk_daily_usage",
        }
    }

    /// The served field names of a day's numbers, which are also the table's column names.
    pub fn metrics(self) -> &'static [&'static str] {
        match self {
            Report::Meetings => &["new_users", "meetings", "participants", "meeting_minutes"],
            Report::VideoSdk => &["sessions", "users", "session_minutes"],
        }
    }
}

pub struct DailyUsage {
    pub client: Arc<ZoomClient>,
    pub report: Report,
    pub account: String,
    /// Its months: planning, horizon, finality.
    pub months: MonthWindows,
}

/// One month's request. `to` is not sent (Zoom takes year and month) but fixes, at the walk's start, the
/// last day that can hold usage: the month's last day, or today for the current month.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DailyRequest {
    pub year: i32,
    pub month: u32,
    pub to: NaiveDate,
    /// The UTC date the walk began on, which decides its finality. Absent in parameters stored by an
    /// older binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<NaiveDate>,
}

pub struct DailyPage {
    request: DailyRequest,
    body: DailyBody,
    days: Result<Vec<Day>, String>,
}

#[derive(Deserialize)]
struct DailyBody {
    #[serde(default)]
    year: Option<Value>,
    #[serde(default)]
    month: Option<Value>,
    #[serde(deserialize_with = "required_list")]
    dates: Vec<Value>,
}

#[derive(Debug)]
struct Day {
    day: NaiveDate,
    metrics: Vec<Option<i64>>,
    raw: Value,
}

/// The served days of the month `from` is in, typed. A day outside the month, a missing or unreadable
/// `date`, or a day served twice makes the page malformed: such a reply proves nothing about the month.
/// Days after `to` (later today, or a future day Zoom lists ahead of time) cannot hold usage yet and are
/// left out, and so are days before `from` (a window walked from the horizon day: those days are past
/// what Zoom vouches for). Numbers are typed leniently: a missing or odd one is NULL, and `raw` keeps what
/// was served.
fn parse_days(
    served: Vec<Value>,
    from: NaiveDate,
    to: NaiveDate,
    metrics: &[&str],
) -> Result<Vec<Day>, String> {
    let month_start = first_of_month(from);
    let month_end = last_of_month(month_start);
    let mut seen = BTreeSet::new();
    let mut days = Vec::with_capacity(served.len());
    for (i, mut raw) in served.into_iter().enumerate() {
        clean_json(&mut raw);
        let day = match field(&raw, "date") {
            // chrono alone would accept `2026-6-1`; Zoom's dates are exactly yyyy-mm-dd.
            Some(Value::String(s)) => Some(s.as_str())
                .filter(|s| s.len() == 10)
                .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
                .ok_or_else(|| format!("dates[{i}].date is not a yyyy-mm-dd date"))?,
            _ => return Err(format!("dates[{i}] has no date")),
        };
        if day < month_start || day > month_end {
            return Err(format!(
                "dates[{i}] is {day}, outside the requested month {}",
                month_start.format("%Y-%m")
            ));
        }
        if !seen.insert(day) {
            return Err(format!("dates[{i}]: {day} is served twice"));
        }
        if day > to || day < from {
            continue;
        }
        days.push(Day {
            day,
            metrics: metrics.iter().map(|m| int(field(&raw, m))).collect(),
            raw,
        });
    }
    Ok(days)
}

impl Source for DailyUsage {
    type Page = DailyPage;
    type Params = DailyRequest;

    fn account(&self) -> &str {
        &self.account
    }

    fn stream(&self) -> &'static str {
        self.report.stream()
    }

    fn plan(&self) -> Vec<PlannedWindow> {
        self.months.plan_from_horizon(&[""])
    }

    fn retirement(&self) -> Option<Retirement> {
        Some(self.months.retirement())
    }

    fn is_final(&self, window: &Window, params: &DailyRequest) -> bool {
        self.months.is_final(window, params.day)
    }

    /// A stored day of the month the reply leaves out (it would be deleted, or zeroed in a final month)
    /// unless it already holds nothing, or a listed day with a number lower than the stored one (a number
    /// the reply lacks counts as lower). Counted in days: stored days of the month, days listed.
    async fn shrinks(
        &self,
        tx: &mut Tx,
        window: &Window,
        _walk_id: Uuid,
        last_page: &DailyPage,
    ) -> Result<Option<Shrink>, StoreError> {
        let Ok(days) = &last_page.days else {
            return Ok(None);
        };
        let metrics = self.report.metrics();
        let listed: Vec<NaiveDate> = days.iter().map(|d| d.day).collect();
        let arrays: Vec<String> = (0..metrics.len())
            .map(|i| format!("${}::int8[]", i + 5))
            .collect();
        let held = metrics
            .iter()
            .map(|m| format!("coalesce(s.{m}, 0) <> 0"))
            .collect::<Vec<_>>()
            .join(" OR ");
        let lower = metrics
            .iter()
            .map(|m| format!("coalesce(u.{m}, -1) < coalesce(s.{m}, -1)"))
            .collect::<Vec<_>>()
            .join(" OR ");
        let sql = format!(
            "WITH u AS (SELECT * FROM UNNEST($4::date[], {arrays}) AS u(day, {columns})),
                  s AS (SELECT * FROM {table} WHERE account = $1 AND day BETWEEN $2 AND $3)
             SELECT (SELECT count(*) FROM s),
                    EXISTS (SELECT 1 FROM s WHERE s.day <> ALL($4::date[]) AND (s.raw IS NOT NULL OR {held}))
                    OR EXISTS (SELECT 1 FROM s JOIN u USING (day) WHERE {lower})",
            table = self.report.table(),
            arrays = arrays.join(", "),
            columns = metrics.join(", "),
        );
        let mut query = sqlx::query_as::<_, (i64, bool)>(&sql)
            .bind(&self.account)
            .bind(window.window_start)
            .bind(window.window_end)
            .bind(&listed);
        for i in 0..metrics.len() {
            let column: Vec<Option<i64>> = days
                .iter()
                .map(|d| d.metrics.get(i).copied().flatten())
                .collect();
            query = query.bind(column);
        }
        let (stored, shrinks) = query.fetch_one(&mut **tx).await?;
        Ok(shrinks.then_some(Shrink {
            stored,
            walked: listed.len() as i64,
        }))
    }

    fn params(&self, window: &Window) -> DailyRequest {
        DailyRequest {
            year: window.window_start.year(),
            month: window.window_start.month(),
            to: months::request_to(window.window_end, self.months.today),
            day: Some(self.months.today),
        }
    }

    async fn fetch(
        &self,
        window: &Window,
        params: &DailyRequest,
        _page_token: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<DailyPage, ApiError> {
        let (year, month) = (params.year.to_string(), params.month.to_string());
        let query = [("year", year.as_str()), ("month", month.as_str())];
        let mut body: DailyBody = self
            .client
            .get_json(self.report.path(), &query, Category::Heavy, cancel)
            .await?;
        let days = parse_days(
            std::mem::take(&mut body.dates),
            window.window_start,
            params.to,
            self.report.metrics(),
        );
        Ok(DailyPage {
            request: params.clone(),
            body,
            days,
        })
    }

    fn unreachable(&self, window: &Window, error: &ApiError) -> Option<String> {
        months::refused_from_day(window, error)
    }

    fn inspect(&self, _window: &Window, page: &DailyPage) -> Result<PageMeta, String> {
        let served = (int(page.body.year.as_ref()), int(page.body.month.as_ref()));
        let asked = (
            Some(i64::from(page.request.year)),
            Some(i64::from(page.request.month)),
        );
        if served != asked {
            let show =
                |v: Option<i64>| v.map_or_else(|| "(missing)".to_string(), |v| v.to_string());
            return Err(format!(
                "Zoom answered for year={} month={} but {}-{:02} was requested; nothing of it is stored",
                show(served.0),
                show(served.1),
                page.request.year,
                page.request.month
            ));
        }
        if let Err(problem) = &page.days {
            return Err(format!("malformed daily report: {problem}"));
        }
        // One page: the report is not paginated, and its days are checked one by one instead of a total.
        Ok(PageMeta {
            next_page_token: None,
            expected_total: None,
        })
    }

    async fn write_page(
        &self,
        tx: &mut Tx,
        window: &Window,
        _walk_id: Uuid,
        page: &DailyPage,
    ) -> Result<i64, StoreError> {
        let Ok(days) = &page.days else {
            return Ok(0);
        };
        let is_final = self.is_final(window, &page.request);
        upsert_days(tx, self.report, &self.account, is_final, days).await
    }

    async fn finish(
        &self,
        tx: &mut Tx,
        window: &Window,
        _walk_id: Uuid,
        last_page: &DailyPage,
        is_final: bool,
    ) -> Result<Result<Finished, String>, StoreError> {
        let Ok(days) = &last_page.days else {
            return Ok(Err("malformed daily report".into()));
        };
        let listed: Vec<NaiveDate> = days.iter().map(|d| d.day).collect();
        let table = self.report.table();
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE account = $1 AND day BETWEEN $2 AND $3 AND day <> ALL($4::date[])"
        ))
        .bind(&self.account)
        .bind(window.window_start)
        .bind(window.window_end)
        .bind(&listed)
        .execute(&mut **tx)
        .await?;
        let mut held = listed.len() as i64;
        if is_final {
            let columns = self.report.metrics().join(", ");
            let zeros = vec!["0"; self.report.metrics().len()].join(", ");
            let filled = sqlx::query(&format!(
                "INSERT INTO {table} (account, day, {columns}, is_final, raw, collected_at)
                 SELECT $1, g::date, {zeros}, true, NULL, now()
                   FROM generate_series($2::date, $3::date, interval '1 day') AS g
                  WHERE g::date <> ALL($4::date[])"
            ))
            .bind(&self.account)
            .bind(window.window_start)
            .bind(last_page.request.to)
            .bind(&listed)
            .execute(&mut **tx)
            .await?;
            held += filled.rows_affected() as i64;
        }
        Ok(Ok(Finished {
            rows: held,
            is_final,
        }))
    }
}

/// One UNNEST upsert for the month's days.
async fn upsert_days(
    tx: &mut Tx,
    report: Report,
    account: &str,
    is_final: bool,
    days: &[Day],
) -> Result<i64, StoreError> {
    if days.is_empty() {
        return Ok(0);
    }
    let metrics = report.metrics();
    let columns = metrics.join(", ");
    let arrays: Vec<String> = (0..metrics.len())
        .map(|i| format!("${}::int8[]", i + 5))
        .collect();
    let updates: Vec<String> = metrics
        .iter()
        .map(|m| format!("{m} = EXCLUDED.{m}"))
        .collect();
    let sql = format!(
        "INSERT INTO {table} (account, day, is_final, raw, {columns}, collected_at)
         SELECT $1, u.day, $2::bool, u.raw, {columns}, now()
           FROM UNNEST($3::date[], $4::jsonb[], {arrays}) AS u(day, raw, {columns})
         ON CONFLICT (account, day) DO UPDATE
           SET {updates}, is_final = EXCLUDED.is_final, raw = EXCLUDED.raw,
               collected_at = EXCLUDED.collected_at",
        table = report.table(),
        arrays = arrays.join(", "),
        updates = updates.join(", "),
    );
    let dates: Vec<NaiveDate> = days.iter().map(|d| d.day).collect();
    let raws: Vec<Value> = days.iter().map(|d| d.raw.clone()).collect();
    let mut query = sqlx::query(&sql)
        .bind(account)
        .bind(is_final)
        .bind(dates)
        .bind(raws);
    for i in 0..metrics.len() {
        let column: Vec<Option<i64>> = days
            .iter()
            .map(|d| d.metrics.get(i).copied().flatten())
            .collect();
        query = query.bind(column);
    }
    query.execute(&mut **tx).await?;
    Ok(days.len() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn days_are_typed_leniently_and_days_after_the_range_are_left_out() {
        let served = vec![
            json!({"date": "2026-11-01", "sessions": 3, "users": "7", "session_minutes": 12.0, "x": true}),
            json!({"date": "2026-11-02", "sessions": null}),
            json!({"date": "2026-11-25", "sessions": 0, "users": 0, "session_minutes": 0}),
        ];
        let metrics = Report::VideoSdk.metrics();
        let days = parse_days(served, d("2026-11-01"), d("2026-11-24"), metrics).unwrap();
        assert_eq!(days.len(), 2);
        assert_eq!(days[0].metrics, vec![Some(3), Some(7), Some(12)]);
        assert_eq!(days[0].raw["x"], json!(true));
        assert_eq!(days[1].metrics, vec![None, None, None]);
    }

    #[test]
    fn a_day_outside_the_month_twice_or_without_a_date_is_malformed() {
        let metrics = Report::Meetings.metrics();
        let (start, to) = (d("2026-10-01"), d("2026-10-31"));
        let outside = vec![json!({"date": "2026-11-01", "meetings": 1})];
        assert!(parse_days(outside, start, to, metrics)
            .unwrap_err()
            .contains("outside"));
        let twice = vec![json!({"date": "2026-10-03"}), json!({"date": "2026-10-03"})];
        assert!(parse_days(twice, start, to, metrics)
            .unwrap_err()
            .contains("twice"));
        let undated = vec![json!({"meetings": 1})];
        assert!(parse_days(undated, start, to, metrics)
            .unwrap_err()
            .contains("no date"));
        let odd = vec![json!({"date": "2026-10-3"})];
        assert!(parse_days(odd, start, to, metrics).is_err());
    }
}

//! `rollcall coverage`: which history is held, as a matrix of account/stream rows by month columns, for
//! people (glyphs, coloured on a terminal) and scripts (`--json`).
//!
//! One cell per calendar month, whatever the stream's window size: a Zoom month is one or two windows
//! (host reports: active and inactive; Video SDK: the session list and, folded into it, the users window of
//! every session), a Rocket.Chat month is every block of `window_days` days that overlaps it. The cell shows
//! the state that matters most for "can I trust this month": a problem outranks success, and success
//! needs every window.

use crate::store::StoreError;
use chrono::{Datelike, Duration, Months, NaiveDate};
use serde::Serialize;
use sqlx::PgPool;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// The streams that get a row, in display order. `zoom_sdk_session_users` has none: its windows are
/// folded into their month's `zoom_sdk_sessions` cell, as `zoom_sdk_months` does. The daily usage
/// streams are one window a month, so a cell is that window.
pub const ROW_STREAMS: [&str; 5] = [
    "zoom_host_report",
    "zoom_daily_usage",
    "zoom_sdk_sessions",
    "zoom_sdk_daily_usage",
    "rc_active_users",
];

/// What one month of one stream holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CellState {
    /// Every window complete and final: never walked again, never changes.
    Final,
    /// Every window complete, some not final yet: later runs may still update it.
    Complete,
    /// A Video SDK month whose list is walked but some session's users are not collected yet.
    AwaitingChildren,
    /// Complete but not final: the walk that would have made it final shrinks what is stored, so nothing
    /// of it was applied; a walk of a run at least 12 hours later must agree (DESIGN principle 8).
    AwaitingConfirmation,
    Running,
    Failed,
    Pending,
    /// Every window complete, but the month is held from the API horizon's day on only: its first days
    /// had passed Zoom's six months before rollcall first asked (a first collection, a new account).
    FromHorizon,
    /// Unreachable and nothing ever stored: the platform forgot it before rollcall held it.
    Lost,
    /// Unreachable (retired past the horizon) with its rows kept, every window of it walked to completion.
    Retired,
    /// Some of the month held and some not: a month with a lost window beside held ones, a retired window
    /// whose walk stored pages but never completed, or a Rocket.Chat month with days no window covers
    /// (before the first run's retention edge).
    Partial,
    /// No window planned for the month.
    None,
}

impl CellState {
    pub const ALL: [CellState; 12] = [
        CellState::Final,
        CellState::Complete,
        CellState::FromHorizon,
        CellState::AwaitingChildren,
        CellState::AwaitingConfirmation,
        CellState::Running,
        CellState::Failed,
        CellState::Pending,
        CellState::Lost,
        CellState::Retired,
        CellState::Partial,
        CellState::None,
    ];

    /// ASCII on purpose: the plain output is what scripts grep and terminals without Unicode fonts show.
    pub fn glyph(self) -> char {
        match self {
            CellState::Final => '#',
            CellState::Complete => '+',
            CellState::AwaitingChildren => 'c',
            CellState::AwaitingConfirmation => '?',
            CellState::Running => 'r',
            CellState::Failed => '!',
            CellState::Pending => '.',
            CellState::FromHorizon => 'h',
            CellState::Lost => 'x',
            CellState::Retired => 'u',
            CellState::Partial => '~',
            CellState::None => '-',
        }
    }

    pub fn meaning(self) -> &'static str {
        match self {
            CellState::Final => "final: complete and settled, never rewritten",
            CellState::Complete => "complete, not final yet (walked again until it settles)",
            CellState::AwaitingChildren => {
                "awaiting children (Video SDK session users not all collected)"
            }
            CellState::AwaitingConfirmation => {
                "awaiting confirmation: a reply would shrink stored history; kept until a run 12 h later agrees"
            }
            CellState::Running => "running or interrupted",
            CellState::Failed => "failed (retried next run)",
            CellState::Pending => "pending (planned, never walked)",
            CellState::FromHorizon => {
                "held from the horizon day on: the month's first days were past Zoom's six months when rollcall first asked"
            }
            CellState::Lost => "unreachable, never held: lost upstream before rollcall ran",
            CellState::Retired => "unreachable, held: past the API's horizon, rows kept",
            CellState::Partial => "partly held (some windows or days lost or never collected)",
            CellState::None => "nothing planned",
        }
    }

    /// ANSI SGR parameters for the glyph on a terminal.
    fn colour(self) -> &'static str {
        match self {
            CellState::Final => "32",
            CellState::Complete => "36",
            CellState::AwaitingChildren => "33",
            CellState::AwaitingConfirmation => "1;33",
            CellState::Running => "34",
            CellState::Failed => "1;31",
            CellState::Pending => "37",
            CellState::FromHorizon => "32",
            CellState::Lost => "35",
            CellState::Retired => "2;33",
            CellState::Partial => "33",
            CellState::None => "2",
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Coverage {
    pub today: NaiveDate,
    /// The columns, oldest first, as `YYYY-MM`.
    pub months: Vec<String>,
    pub accounts: Vec<AccountCoverage>,
}

#[derive(Debug, Serialize)]
pub struct AccountCoverage {
    pub account: String,
    pub streams: Vec<StreamCoverage>,
}

#[derive(Debug, Serialize)]
pub struct StreamCoverage {
    pub stream: String,
    pub months: Vec<MonthCell>,
    /// The account's `streams` key leaves the stream out: its empty months are not missing history.
    pub left_out: bool,
}

#[derive(Debug, Serialize)]
pub struct MonthCell {
    pub month: String,
    pub state: CellState,
    /// When the cell awaits confirmation: what is stored and what the disputed walks saw, summed over its
    /// disputed windows (rows, or days for daily usage).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub awaiting_confirmation: Option<Counts>,
}

/// Both counts of a dispute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub stored: i64,
    pub walked: i64,
}

/// What to show. `accounts` are the configured (account, stream) rows, shown even before anything is
/// planned for them; accounts only the database knows (removed from the config) are shown too.
pub struct Request {
    pub configured: Vec<(String, String)>,
    pub account: Option<String>,
    pub stream: Option<String>,
    pub months: u32,
    /// The UTC date: the columns end with its month.
    pub today: NaiveDate,
    /// Accounts whose "today" is another date: a Rocket.Chat workspace's local date in its `timezone`,
    /// which decides whether its month has ended. Others take `today`.
    pub local_today: BTreeMap<String, NaiveDate>,
    /// (account, row stream) the account's `streams` key leaves out: shown as not configured.
    pub left_out: BTreeSet<(String, String)>,
}

#[derive(sqlx::FromRow)]
struct WindowRow {
    account: String,
    stream: String,
    window_start: NaiveDate,
    window_end: NaiveDate,
    state: String,
    is_final: bool,
    /// A walk of the window completed: the whole range was held at least once, and completion only ever
    /// replaces rows with a newer complete walk's.
    held: bool,
    /// Some rows of the window are stored: with `held` false, a walk stored pages and never finished.
    stored: bool,
    /// Awaiting confirmation, with both counts; `None` when not disputed.
    stored_count: Option<i64>,
    walked_count: Option<i64>,
}

/// The first days of the last `n` months up to today's, oldest first.
pub fn month_columns(today: NaiveDate, n: u32) -> Vec<NaiveDate> {
    let this = today.with_day(1).unwrap_or(today);
    (0..n)
        .rev()
        .filter_map(|back| this.checked_sub_months(Months::new(back)))
        .collect()
}

fn month_end(month: NaiveDate) -> NaiveDate {
    month
        .checked_add_months(Months::new(1))
        .map_or(month, |next| next - Duration::days(1))
}

/// Which row a window's stream belongs to.
fn row_stream(stream: &str) -> &str {
    if stream == "zoom_sdk_session_users" {
        "zoom_sdk_sessions"
    } else {
        stream
    }
}

pub async fn load(pool: &PgPool, request: &Request) -> Result<Coverage, StoreError> {
    let columns = month_columns(request.today, request.months.max(1));
    let (Some(&first), Some(&last)) = (columns.first(), columns.last()) else {
        return Ok(Coverage {
            today: request.today,
            months: Vec::new(),
            accounts: Vec::new(),
        });
    };
    let last_day = month_end(last);
    // "Held" asks whether a walk of the window ever completed, "stored" whether any of its rows are here:
    // a retired window whose walk never finished (a host-report month interrupted after a page, a session's
    // users that failed) keeps only part of its range, whatever rows it stored. A host report's totals row
    // is written by its completed walk with the range asked: one that stops before the month's end (the
    // current month, completed mid-month and retired before another walk) holds part of the month. The data
    // tables, not the window's counters, say what is stored: a retired window's `rows` describe its last
    // walk only.
    let mut windows = sqlx::query_as::<_, WindowRow>(
        "SELECT w.account, w.stream, w.window_start, w.window_end, w.state, w.is_final,
                CASE w.stream
                    WHEN 'zoom_host_report' THEN
                        EXISTS (SELECT 1 FROM rollcall.zoom_host_reports r
                                 WHERE r.account = w.account AND r.month = w.window_start
                                   AND r.report_type = w.scope AND r.to_date >= w.window_end)
                    ELSE w.completed_at IS NOT NULL END AS held,
                CASE w.stream
                    WHEN 'zoom_host_report' THEN
                        EXISTS (SELECT 1 FROM rollcall.zoom_host_report_users u
                                 WHERE u.account = w.account AND u.month = w.window_start
                                   AND u.report_type = w.scope)
                        OR EXISTS (SELECT 1 FROM rollcall.zoom_host_reports r
                                    WHERE r.account = w.account AND r.month = w.window_start
                                      AND r.report_type = w.scope)
                    WHEN 'zoom_sdk_sessions' THEN
                        EXISTS (SELECT 1 FROM rollcall.zoom_sdk_sessions s
                                 WHERE s.account = w.account AND s.month = w.window_start)
                    WHEN 'zoom_sdk_session_users' THEN
                        EXISTS (SELECT 1 FROM rollcall.zoom_sdk_session_users u
                                 WHERE u.account = w.account AND u.session_id = w.scope)
                    WHEN 'rc_active_users' THEN
                        EXISTS (SELECT 1 FROM rollcall.rc_active_users d
                                 WHERE d.account = w.account AND d.day BETWEEN w.window_start AND w.window_end)
                    WHEN 'zoom_daily_usage' THEN
                        EXISTS (SELECT 1 FROM rollcall.zoom_daily_usage d
                                 WHERE d.account = w.account AND d.day BETWEEN w.window_start AND w.window_end)
                    WHEN 'zoom_sdk_daily_usage' THEN
                        EXISTS (SELECT 1 FROM rollcall.zoom_sdk_daily_usage d
                                 WHERE d.account = w.account AND d.day BETWEEN w.window_start AND w.window_end)
                    ELSE false END AS stored,
                -- Through to_jsonb: coverage reads schemas older than these columns too.
                CASE WHEN to_jsonb(w) ->> 'disputed_since' IS NOT NULL AND NOT w.is_final
                     THEN coalesce((to_jsonb(w) ->> 'stored_count')::int8, 0) END AS stored_count,
                CASE WHEN to_jsonb(w) ->> 'disputed_since' IS NOT NULL AND NOT w.is_final
                     THEN coalesce((to_jsonb(w) ->> 'walked_count')::int8, 0) END AS walked_count
           FROM rollcall.collection_windows w
          WHERE w.window_end >= $1 AND w.window_start <= $2
            AND ($3::text IS NULL OR w.account = $3)",
    )
    .bind(first)
    .bind(last_day)
    .bind(request.account.as_deref())
    .fetch_all(pool)
    .await?;
    settle_gone_sessions(&mut windows);
    let known: Vec<(String, String)> = sqlx::query_as(
        "SELECT DISTINCT account, stream FROM rollcall.collection_windows
          WHERE $1::text IS NULL OR account = $1",
    )
    .bind(request.account.as_deref())
    .fetch_all(pool)
    .await?;
    let rc_days: Vec<(String, NaiveDate, i64)> = sqlx::query_as(
        "SELECT account, date_trunc('month', day)::date, count(*)
           FROM rollcall.rc_active_users
          WHERE day BETWEEN $1 AND $2
          GROUP BY account, date_trunc('month', day)",
    )
    .bind(first)
    .bind(last_day)
    .fetch_all(pool)
    .await?;
    let rc_days: BTreeMap<(String, NaiveDate), i64> = rc_days
        .into_iter()
        .map(|(account, month, days)| ((account, month), days))
        .collect();

    let wanted_stream = request.stream.as_deref().map(row_stream);
    let rows: BTreeSet<(String, usize)> = request
        .configured
        .iter()
        .cloned()
        .chain(known)
        .filter(|(account, _)| request.account.as_ref().is_none_or(|a| a == account))
        .filter_map(|(account, stream)| {
            let stream = row_stream(&stream);
            if wanted_stream.is_some_and(|w| w != stream) {
                return None;
            }
            ROW_STREAMS
                .iter()
                .position(|s| *s == stream)
                .map(|order| (account, order))
        })
        .collect();

    let mut accounts: Vec<AccountCoverage> = Vec::new();
    for (account, order) in rows {
        let stream = ROW_STREAMS[order];
        let months = columns
            .iter()
            .map(|&month| {
                let end = month_end(month);
                let cell: Vec<&WindowRow> = windows
                    .iter()
                    .filter(|w| {
                        w.account == account
                            && row_stream(&w.stream) == stream
                            && w.window_start <= end
                            && w.window_end >= month
                    })
                    .collect();
                let mut state = fold(&cell);
                let today = request
                    .local_today
                    .get(&account)
                    .copied()
                    .unwrap_or(request.today);
                // A month still running in the workspace's time zone has its today (never requested)
                // and later days missing by design.
                if stream == "rc_active_users" && end < today {
                    let held = rc_days.get(&(account.clone(), month)).copied().unwrap_or(0);
                    let days = i64::from(end.day());
                    if held < days
                        && matches!(
                            state,
                            CellState::Final | CellState::Complete | CellState::Retired
                        )
                    {
                        state = CellState::Partial;
                    }
                }
                let awaiting_confirmation = (state == CellState::AwaitingConfirmation).then(|| {
                    cell.iter().fold(Counts::default(), |sum, w| Counts {
                        stored: sum.stored + w.stored_count.unwrap_or(0),
                        walked: sum.walked + w.walked_count.unwrap_or(0),
                    })
                });
                MonthCell {
                    month: month.format("%Y-%m").to_string(),
                    state,
                    awaiting_confirmation,
                }
            })
            .collect();
        let entry = StreamCoverage {
            stream: stream.to_string(),
            months,
            left_out: request
                .left_out
                .contains(&(account.clone(), stream.to_string())),
        };
        match accounts.last_mut() {
            Some(a) if a.account == account => a.streams.push(entry),
            _ => accounts.push(AccountCoverage {
                account,
                streams: vec![entry],
            }),
        }
    }
    Ok(Coverage {
        today: request.today,
        months: columns
            .iter()
            .map(|m| m.format("%Y-%m").to_string())
            .collect(),
        accounts,
    })
}

/// A session's users window that is unreachable while its month's list is not was recorded so because
/// Zoom no longer has the session (404 code 3001): nothing is missing that could still be collected, and
/// it is never requested again, so it counts as complete and final. Its month is not past the horizon,
/// which is what an unreachable window in a cell otherwise means.
fn settle_gone_sessions(windows: &mut [WindowRow]) {
    let retired_lists: BTreeSet<(String, NaiveDate)> = windows
        .iter()
        .filter(|w| w.stream == "zoom_sdk_sessions" && w.state == "unreachable")
        .map(|w| (w.account.clone(), w.window_start))
        .collect();
    for w in windows.iter_mut() {
        if w.stream == "zoom_sdk_session_users"
            && w.state == "unreachable"
            && !retired_lists.contains(&(w.account.clone(), w.window_start))
        {
            w.state = "complete".to_string();
            w.is_final = true;
        }
    }
}

/// A Zoom month walked from the horizon day (its window starts after the 1st) is held from that day on:
/// a whole-month window an older binary recorded unreachable beside it, never walked, takes nothing from
/// it. Its cell is [`CellState::FromHorizon`] once what it holds is complete.
fn fold(windows: &[&WindowRow]) -> CellState {
    let from_day = windows
        .iter()
        .any(|w| w.stream != "rc_active_users" && w.window_start.day() != 1);
    if !from_day {
        return fold_whole(windows);
    }
    let held: Vec<&WindowRow> = windows
        .iter()
        .copied()
        .filter(|w| w.state != "unreachable" || w.held || w.stored || w.window_start.day() != 1)
        .collect();
    match fold_whole(&held) {
        CellState::Final | CellState::Complete => CellState::FromHorizon,
        state => state,
    }
}

/// The windows of one cell, summed up: anything in progress or broken outranks what is held, because
/// that is what an operator must act on; success needs every window.
fn fold_whole(windows: &[&WindowRow]) -> CellState {
    if windows.is_empty() {
        return CellState::None;
    }
    let any = |state: &str| windows.iter().any(|w| w.state == state);
    for (state, cell) in [
        ("failed", CellState::Failed),
        ("running", CellState::Running),
        ("awaiting_children", CellState::AwaitingChildren),
        ("pending", CellState::Pending),
    ] {
        if any(state) {
            return cell;
        }
    }
    if windows.iter().any(|w| w.stored_count.is_some()) {
        return CellState::AwaitingConfirmation;
    }
    let unreachable: Vec<&&WindowRow> = windows
        .iter()
        .filter(|w| w.state == "unreachable")
        .collect();
    let complete = windows.iter().filter(|w| w.state == "complete").count();
    if complete + unreachable.len() < windows.len() {
        // A state this binary does not know (a newer rollcall wrote it): not vouched for.
        return CellState::Pending;
    }
    if unreachable.is_empty() {
        return if windows.iter().all(|w| w.is_final) {
            CellState::Final
        } else {
            CellState::Complete
        };
    }
    let held = unreachable.iter().filter(|w| w.held).count();
    let stored = unreachable.iter().filter(|w| w.stored).count();
    if held == unreachable.len() {
        CellState::Retired
    } else if held == 0 && stored == 0 && complete == 0 {
        CellState::Lost
    } else {
        CellState::Partial
    }
}

/// The matrix with a legend. `colour` wraps each glyph in ANSI codes (a terminal without NO_COLOR).
pub fn render(coverage: &Coverage, colour: bool) -> String {
    let mut out = String::new();
    if coverage.accounts.is_empty() {
        out.push_str("no accounts configured or collected yet\n");
        return out;
    }
    let account_width = coverage
        .accounts
        .iter()
        .map(|a| a.account.chars().count())
        .max()
        .unwrap_or(0)
        .max("ACCOUNT".len());
    // As wide as the streams shown, so the common matrix keeps its layout when no daily usage row shows.
    let stream_width = coverage
        .accounts
        .iter()
        .flat_map(|a| a.streams.iter().map(|s| s.stream.len()))
        .max()
        .unwrap_or(0)
        .max("STREAM".len());
    let pad = account_width + 1 + stream_width + 1;
    // Years only where they change, so twelve columns of three characters stay readable.
    let mut years = format!("{:pad$}", "");
    let mut header = format!("{:<account_width$} {:<stream_width$} ", "ACCOUNT", "STREAM");
    let mut previous_year = None;
    for month in &coverage.months {
        let (year, mm) = month.split_once('-').unwrap_or((month.as_str(), ""));
        if previous_year != Some(year) {
            let _ = write!(years, "'{:<2}", year.get(2..).unwrap_or(year));
            previous_year = Some(year);
        } else {
            years.push_str("   ");
        }
        let _ = write!(header, "{mm:>2} ");
    }
    let _ = writeln!(out, "{}", years.trim_end());
    let _ = writeln!(out, "{}", header.trim_end());
    for account in &coverage.accounts {
        for stream in &account.streams {
            let mut line = format!(
                "{:<account_width$} {:<stream_width$} ",
                account.account, stream.stream
            );
            for cell in &stream.months {
                let glyph = cell.state.glyph();
                if colour {
                    let _ = write!(line, " \x1b[{}m{glyph}\x1b[0m ", cell.state.colour());
                } else {
                    let _ = write!(line, " {glyph} ");
                }
            }
            if stream.left_out {
                line.push_str("  not configured (left out by streams)");
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    out.push('\n');
    for state in CellState::ALL {
        let glyph = state.glyph();
        if colour {
            let _ = writeln!(
                out,
                "  \x1b[{}m{glyph}\x1b[0m  {}",
                state.colour(),
                state.meaning()
            );
        } else {
            let _ = writeln!(out, "  {glyph}  {}", state.meaning());
        }
    }
    let mut first = true;
    for account in &coverage.accounts {
        for stream in &account.streams {
            for cell in &stream.months {
                if let Some(counts) = cell.awaiting_confirmation {
                    if first {
                        out.push_str("\nawaiting confirmation (stored is kept until a run 12 h later agrees):\n");
                        first = false;
                    }
                    let _ = writeln!(
                        out,
                        "  {} {} {}: stored {}, walked {}",
                        account.account, stream.stream, cell.month, counts.stored, counts.walked
                    );
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(state: &str, is_final: bool, held: bool) -> WindowRow {
        WindowRow {
            account: "a".into(),
            stream: "zoom_host_report".into(),
            window_start: NaiveDate::MIN,
            window_end: NaiveDate::MIN,
            state: state.into(),
            is_final,
            held,
            stored: held,
            stored_count: None,
            walked_count: None,
        }
    }

    /// A retired window whose walk stored pages and never completed.
    fn interrupted() -> WindowRow {
        WindowRow {
            stored: true,
            ..w("unreachable", false, false)
        }
    }

    /// A retired window whose completed walk found nothing.
    fn empty_but_walked() -> WindowRow {
        WindowRow {
            stored: false,
            ..w("unreachable", false, true)
        }
    }

    #[test]
    fn a_problem_outranks_what_is_held_and_success_needs_every_window() {
        let cases = [
            (vec![], CellState::None),
            (
                vec![w("complete", true, true), w("complete", true, true)],
                CellState::Final,
            ),
            (
                vec![w("complete", true, true), w("complete", false, true)],
                CellState::Complete,
            ),
            (
                vec![w("complete", true, true), w("failed", false, false)],
                CellState::Failed,
            ),
            (
                vec![w("pending", false, false), w("running", false, false)],
                CellState::Running,
            ),
            (
                vec![w("awaiting_children", false, true)],
                CellState::AwaitingChildren,
            ),
            (vec![w("unreachable", false, false)], CellState::Lost),
            (
                vec![w("unreachable", false, true), w("unreachable", false, true)],
                CellState::Retired,
            ),
            (
                vec![
                    w("unreachable", false, true),
                    w("unreachable", false, false),
                ],
                CellState::Partial,
            ),
            (
                vec![w("complete", true, true), w("unreachable", false, false)],
                CellState::Partial,
            ),
            // Rows stored by a walk that never completed are part of the range, not all of it.
            (vec![interrupted()], CellState::Partial),
            (
                vec![w("unreachable", false, true), interrupted()],
                CellState::Partial,
            ),
            (
                vec![empty_but_walked(), empty_but_walked()],
                CellState::Retired,
            ),
            (
                vec![empty_but_walked(), w("unreachable", false, false)],
                CellState::Partial,
            ),
        ];
        for (windows, want) in cases {
            let refs: Vec<&WindowRow> = windows.iter().collect();
            assert_eq!(fold(&refs), want);
        }
    }

    #[test]
    fn a_month_walked_from_the_horizon_day_is_held_from_it() {
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 6, d).expect("date");
        let from = |state: &str, held: bool| WindowRow {
            stream: "zoom_sdk_sessions".into(),
            window_start: day(8),
            window_end: day(30),
            ..w(state, true, held)
        };
        let whole_lost = WindowRow {
            stream: "zoom_sdk_sessions".into(),
            window_start: day(1),
            window_end: day(30),
            ..w("unreachable", false, false)
        };
        let cases = [
            (vec![from("complete", true)], CellState::FromHorizon),
            (vec![from("running", false)], CellState::Running),
            (
                vec![from("complete", true), whole_lost],
                CellState::FromHorizon,
            ),
            // Refused by Zoom: recorded unreachable, nothing held.
            (vec![from("unreachable", false)], CellState::Lost),
        ];
        for (windows, want) in cases {
            let refs: Vec<&WindowRow> = windows.iter().collect();
            assert_eq!(fold(&refs), want);
        }
    }

    #[test]
    fn columns_are_the_last_n_months_oldest_first() {
        let today = NaiveDate::from_ymd_opt(2026, 2, 14).expect("date");
        let cols: Vec<String> = month_columns(today, 3)
            .iter()
            .map(|m| m.to_string())
            .collect();
        assert_eq!(cols, ["2025-12-01", "2026-01-01", "2026-02-01"]);
    }
}

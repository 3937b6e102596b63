//! `rollcall status`: windows per account and stream, for people (a table) and scripts (`--json`).

use crate::store::lease_owner::replica_of;
use crate::store::StoreError;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgPool;
use std::fmt::Write;

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct StreamStatus {
    pub account: String,
    pub stream: String,
    pub complete: i64,
    /// Walked and verified, waiting for child windows (a Video SDK month's session users).
    pub awaiting_children: i64,
    pub running: i64,
    pub pending: i64,
    pub failed: i64,
    pub unreachable: i64,
    pub final_windows: i64,
    pub rows: i64,
    pub oldest_complete: Option<NaiveDate>,
    pub newest_complete: Option<NaiveDate>,
    pub last_completed_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub paused_until: Option<DateTime<Utc>>,
    /// The stream's `running` windows and who holds each: with several replicas, which one walks what
    /// (and whose lease a dead replica left behind). A field of each stream, not a new top level, so the
    /// array scripts already read keeps its shape.
    #[sqlx(skip)]
    pub running_windows: Vec<RunningWindow>,
    /// The account's `streams` key leaves the stream out: not configured, so what its windows lack is
    /// not missing history ([`mark_left_out`]).
    #[sqlx(skip)]
    pub left_out: bool,
    /// Windows awaiting confirmation: a walk would have made them final while shrinking what is stored,
    /// so nothing of it was applied (DESIGN principle 8). Complete but not final until a walk of a run
    /// at least 12 hours later agrees, or one agrees with what is stored.
    #[sqlx(skip)]
    pub awaiting_confirmation: Vec<DisputedWindow>,
    /// The account's rate category this stream sends in, today: requests by every replica, the daily
    /// pool, and what is left to walk ([`super::budget`]).
    #[sqlx(skip)]
    pub budget: Option<super::budget::CategoryBudget>,
}

/// Gives each stream the budget line of its account's category.
pub fn attach_budget(rows: &mut [StreamStatus], lines: &[super::budget::CategoryBudget]) {
    for row in rows {
        let category = super::budget::category_of(&row.stream);
        row.budget = lines
            .iter()
            .find(|l| l.account == row.account && l.category == category)
            .cloned();
    }
}

/// Marks the rows of streams the configured account leaves out with its `streams` key.
pub fn mark_left_out(rows: &mut [StreamStatus], config: &crate::config::Config) {
    for row in rows {
        row.left_out = crate::sources::build::accounts(config)
            .any(|(_, a)| a.name() == row.account && a.leaves_out(&row.stream));
    }
}

/// A window awaiting confirmation, with both counts (rows, or days for daily usage).
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct DisputedWindow {
    #[serde(skip)]
    pub account: String,
    #[serde(skip)]
    pub stream: String,
    pub scope: String,
    pub window_start: NaiveDate,
    pub window_end: NaiveDate,
    /// What is stored for the window (kept as it is).
    pub stored: i64,
    /// What the disputed walk saw.
    pub walked: i64,
    /// The start of the run whose walk was disputed first.
    pub since: DateTime<Utc>,
}

/// A `running` window and its lease.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct RunningWindow {
    #[serde(skip)]
    pub account: String,
    #[serde(skip)]
    pub stream: String,
    pub scope: String,
    pub window_start: NaiveDate,
    pub window_end: NaiveDate,
    pub pages: i32,
    /// The full owner id (`collection_windows.lease_owner`); `None` when the walk was interrupted and
    /// released (it resumes at the next claim).
    pub lease_owner: Option<String>,
    /// `host:pid` of the holder, the `replica` label of `/metrics`.
    #[sqlx(skip)]
    pub replica: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    /// The holder stopped renewing (it died or hangs): any replica may take the window over now.
    pub lease_expired: bool,
}

pub async fn load(pool: &PgPool) -> Result<Vec<StreamStatus>, StoreError> {
    let rows = sqlx::query_as::<_, StreamStatus>(
        "SELECT w.account, w.stream,
                count(*) FILTER (WHERE state = 'complete') AS complete,
                count(*) FILTER (WHERE state = 'awaiting_children') AS awaiting_children,
                count(*) FILTER (WHERE state = 'running') AS running,
                count(*) FILTER (WHERE state = 'pending') AS pending,
                count(*) FILTER (WHERE state = 'failed') AS failed,
                count(*) FILTER (WHERE state = 'unreachable') AS unreachable,
                count(*) FILTER (WHERE is_final) AS final_windows,
                coalesce(sum(rows) FILTER (WHERE state = 'complete'), 0)::bigint AS rows,
                min(window_start) FILTER (WHERE state = 'complete') AS oldest_complete,
                -- The current month or block is held only up to its last walk, not to its nominal end:
                -- a Zoom walk asks up to its UTC today; a Rocket.Chat walk asks up to the workspace's
                -- local yesterday, which its request (walk_params span: first and last day) records.
                -- A span of null asked for nothing; a walk without walk_params falls back to UTC dates.
                max(CASE WHEN stream <> 'rc_active_users'
                         THEN least(window_end, (completed_at AT TIME ZONE 'UTC')::date)
                         WHEN walk_params -> 'span' IS NOT NULL THEN (walk_params -> 'span' ->> 1)::date
                         ELSE least(window_end, (completed_at AT TIME ZONE 'UTC')::date - 1) END)
                    FILTER (WHERE state = 'complete') AS newest_complete,
                max(completed_at) AS last_completed_at,
                (array_agg(last_error ORDER BY updated_at DESC)
                   FILTER (WHERE last_error IS NOT NULL AND state IN ('failed', 'running', 'pending')))[1]
                   AS last_error,
                (SELECT until FROM rollcall.account_pauses p WHERE p.account = w.account AND until > now())
                   AS paused_until
           FROM rollcall.collection_windows w
          GROUP BY w.account, w.stream
          ORDER BY w.account, w.stream",
    )
    .fetch_all(pool)
    .await?;
    let mut rows = rows;
    for running in running_windows(pool).await? {
        if let Some(row) = rows
            .iter_mut()
            .find(|r| r.account == running.account && r.stream == running.stream)
        {
            row.running_windows.push(running);
        }
    }
    for disputed in disputed_windows(pool).await? {
        if let Some(row) = rows
            .iter_mut()
            .find(|r| r.account == disputed.account && r.stream == disputed.stream)
        {
            row.awaiting_confirmation.push(disputed);
        }
    }
    Ok(rows)
}

/// Read through `to_jsonb` so that `status` still reads a schema older than the dispute columns
/// (they are then absent, and so is every dispute). A final window is not awaiting anything, even if an
/// older binary, which knows nothing of disputes, finalized it and left the mark behind.
async fn disputed_windows(pool: &PgPool) -> Result<Vec<DisputedWindow>, StoreError> {
    let rows = sqlx::query_as::<_, DisputedWindow>(
        "SELECT account, stream, scope, window_start, window_end,
                coalesce((to_jsonb(w) ->> 'stored_count')::int8, 0) AS stored,
                coalesce((to_jsonb(w) ->> 'walked_count')::int8, 0) AS walked,
                (to_jsonb(w) ->> 'disputed_since')::timestamptz AS since
           FROM rollcall.collection_windows w
          WHERE to_jsonb(w) ->> 'disputed_since' IS NOT NULL AND NOT w.is_final
          ORDER BY account, stream, window_start, scope",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

async fn running_windows(pool: &PgPool) -> Result<Vec<RunningWindow>, StoreError> {
    let mut rows = sqlx::query_as::<_, RunningWindow>(
        "SELECT account, stream, scope, window_start, window_end, pages, lease_owner, lease_until,
                coalesce(lease_until < now(), false) AS lease_expired
           FROM rollcall.collection_windows
          WHERE state = 'running'
          ORDER BY account, stream, window_start, scope",
    )
    .fetch_all(pool)
    .await?;
    for row in &mut rows {
        row.replica = row.lease_owner.as_deref().and_then(replica_of);
    }
    Ok(rows)
}

pub fn render_table(rows: &[StreamStatus]) -> String {
    if rows.is_empty() {
        return "no windows yet: run `rollcall collect`\n".into();
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:<24} {:>8} {:>8} {:>7} {:>7} {:>6} {:>11} {:>10}  {:<23}  last error",
        "ACCOUNT",
        "STREAM",
        "COMPLETE",
        "AWAITING",
        "RUNNING",
        "PENDING",
        "FAILED",
        "UNREACHABLE",
        "ROWS",
        "HELD"
    );
    for r in rows {
        let held = match (r.oldest_complete, r.newest_complete) {
            (Some(a), Some(b)) => format!("{a}..{b}"),
            _ => "-".into(),
        };
        let mut note = r.last_error.clone().unwrap_or_default();
        if let Some(until) = r.paused_until {
            note = format!("PAUSED until {until}; {note}");
        }
        if r.left_out {
            note = format!("not configured (left out by streams); {note}");
        }
        let note: String = note.chars().take(120).collect();
        let _ = writeln!(
            out,
            "{:<16} {:<24} {:>8} {:>8} {:>7} {:>7} {:>6} {:>11} {:>10}  {:<23}  {}",
            r.account,
            r.stream,
            r.complete,
            r.awaiting_children,
            r.running,
            r.pending,
            r.failed,
            r.unreachable,
            r.rows,
            held,
            note
        );
    }
    out.push_str(&render_running(rows));
    out.push_str(&render_disputed(rows));
    out
}

/// One line per window awaiting confirmation under the table, with both counts.
fn render_disputed(rows: &[StreamStatus]) -> String {
    let disputed: Vec<&DisputedWindow> =
        rows.iter().flat_map(|r| &r.awaiting_confirmation).collect();
    if disputed.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n");
    let _ = writeln!(
        out,
        "{:<16} {:<24} {:<12} {:<23} {:>8} {:>8}  SINCE (complete, not final: a walk of a run 12 h later must agree)",
        "AWAITING CONFIRM", "STREAM", "SCOPE", "WINDOW", "STORED", "WALKED"
    );
    for w in disputed {
        let scope: String = w.scope.chars().take(12).collect();
        let _ = writeln!(
            out,
            "{:<16} {:<24} {:<12} {:<23} {:>8} {:>8}  {}",
            w.account,
            w.stream,
            scope,
            format!("{}..{}", w.window_start, w.window_end),
            w.stored,
            w.walked,
            w.since
        );
    }
    out
}

/// One `HELD BY` line per running window under the table, so an operator sees which replica walks what,
/// and which leases a dead replica left to expire.
fn render_running(rows: &[StreamStatus]) -> String {
    let running: Vec<&RunningWindow> = rows.iter().flat_map(|r| &r.running_windows).collect();
    if running.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n");
    let _ = writeln!(
        out,
        "{:<16} {:<24} {:<12} {:<23} {:>5}  HELD BY",
        "RUNNING", "STREAM", "SCOPE", "WINDOW", "PAGES"
    );
    for w in running {
        let holder = match (&w.lease_owner, &w.lease_until) {
            (None, _) | (_, None) => "nobody: interrupted, resumes at the next claim".to_string(),
            (Some(owner), Some(until)) => {
                let who = w.replica.clone().unwrap_or_else(|| owner.clone());
                if w.lease_expired {
                    format!("{who} (lease expired {until}: free to take over)")
                } else {
                    format!("{who} until {until}")
                }
            }
        };
        // Video SDK scopes are session ids: long, so cut for the table (the JSON has them whole).
        let scope: String = w.scope.chars().take(12).collect();
        let _ = writeln!(
            out,
            "{:<16} {:<24} {:<12} {:<23} {:>5}  {}",
            w.account,
            w.stream,
            scope,
            format!("{}..{}", w.window_start, w.window_end),
            w.pages,
            holder
        );
    }
    out
}

/// Per Video SDK account: the days of its daily usage report whose session count disagrees with the
/// stored session list, and the days the report gave no session count for (nothing to compare: neither
/// agreement nor disagreement).
#[derive(Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Reconciliation {
    pub account: String,
    pub disagreeing: i64,
    pub uncounted: i64,
}

/// The [`Reconciliation`] of every Video SDK account with a daily report. Empty when the schema predates
/// the view (`status` reads older databases too).
pub async fn reconciliation(pool: &PgPool) -> Result<Vec<Reconciliation>, StoreError> {
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('rollcall.zoom_sdk_reconciliation') IS NOT NULL")
            .fetch_one(pool)
            .await?;
    if !exists {
        return Ok(Vec::new());
    }
    let rows = sqlx::query_as(
        "SELECT account,
                count(*) FILTER (WHERE difference <> 0) AS disagreeing,
                count(*) FILTER (WHERE sessions_reported IS NULL) AS uncounted
           FROM rollcall.zoom_sdk_reconciliation GROUP BY account ORDER BY account",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// The lines appended under the table, one per Video SDK account with a daily report.
pub fn render_reconciliation(rows: &[Reconciliation]) -> String {
    let days = |n: i64| if n == 1 { "day" } else { "days" };
    let mut out = String::new();
    for r in rows {
        let _ = write!(
            out,
            "{}: {} {} where the daily report and the stored session list disagree (rollcall.zoom_sdk_reconciliation)",
            r.account,
            r.disagreeing,
            days(r.disagreeing)
        );
        if r.uncounted > 0 {
            let _ = write!(
                out,
                "; {} {} the daily report gave no session count for",
                r.uncounted,
                days(r.uncounted)
            );
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(running_windows: Vec<RunningWindow>) -> StreamStatus {
        StreamStatus {
            account: "acme".into(),
            stream: "zoom_host_report".into(),
            complete: 1,
            awaiting_children: 0,
            running: running_windows.len() as i64,
            pending: 0,
            failed: 0,
            unreachable: 0,
            final_windows: 1,
            rows: 10,
            oldest_complete: None,
            newest_complete: None,
            last_completed_at: None,
            last_error: None,
            paused_until: None,
            running_windows,
            left_out: false,
            awaiting_confirmation: Vec::new(),
            budget: None,
        }
    }

    fn window(scope: &str, owner: Option<&str>, expired: bool) -> RunningWindow {
        RunningWindow {
            account: "acme".into(),
            stream: "zoom_host_report".into(),
            scope: scope.into(),
            window_start: NaiveDate::from_ymd_opt(2026, 5, 1).unwrap_or_default(),
            window_end: NaiveDate::from_ymd_opt(2026, 5, 31).unwrap_or_default(),
            pages: 2,
            lease_owner: owner.map(str::to_string),
            replica: owner.and_then(replica_of),
            lease_until: owner.map(|_| DateTime::<Utc>::UNIX_EPOCH),
            lease_expired: expired,
        }
    }

    #[test]
    fn days_without_a_session_count_are_told_apart_from_disagreements() {
        let line = |disagreeing, uncounted| {
            render_reconciliation(&[Reconciliation {
                account: "studio".into(),
                disagreeing,
                uncounted,
            }])
        };
        assert_eq!(
            line(1, 0),
            "studio: 1 day where the daily report and the stored session list disagree (rollcall.zoom_sdk_reconciliation)\n"
        );
        assert_eq!(
            line(0, 2),
            "studio: 0 days where the daily report and the stored session list disagree (rollcall.zoom_sdk_reconciliation); 2 days the daily report gave no session count for\n"
        );
    }

    #[test]
    fn running_windows_name_their_holder() {
        let owner = "rc2:pod-7:1:5000:4026531836:7a4964e4-1278-4752-aca7-70a2988b6abb:abcd1234";
        let table = render_table(&[stream(vec![
            window("active", Some(owner), false),
            window("inactive", Some(owner), true),
            window("x", None, false),
        ])]);
        let lines: Vec<&str> = table.lines().collect();
        let held = |scope: &str| {
            lines
                .iter()
                .find(|l| l.starts_with("acme ") && l.contains(&format!(" {scope} ")))
                .map(|l| l.to_string())
                .unwrap_or_default()
        };
        assert!(table.contains("HELD BY"), "{table}");
        assert!(held("active").contains("pod-7:1 until"), "{table}");
        assert!(
            held("inactive").contains("pod-7:1 (lease expired"),
            "{table}"
        );
        assert!(held("x").contains("nobody: interrupted"), "{table}");
        assert!(!render_table(&[stream(Vec::new())]).contains("HELD BY"));
    }
}

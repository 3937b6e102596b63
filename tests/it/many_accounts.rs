//! Hundreds of accounts in one process: 300 Zoom accounts and 50 Video SDK accounts, one `collect`, every
//! window complete and exact against the sandbox, within the run-wide bound on windows in flight, and
//! every account served early (no account waits for the others to finish).

use crate::common::*;
use chrono::{DateTime, NaiveDate, Utc};
use rollcall_sandbox::{Endpoint, ReportType, SandboxConfig, VideoSdkAccountSpec, ZoomAccountSpec};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

const ZOOM_ACCOUNTS: usize = 300;
const SDK_ACCOUNTS: usize = 50;
/// Small enough that an account's inactive report (about 60 % of 8 users) needs two pages.
const PAGE_SIZE: u32 = 4;
/// Below the number of streams (750), so the bound is really what schedules the run.
const MAX_WINDOWS_IN_FLIGHT: usize = 48;

#[tokio::test(flavor = "multi_thread")]
async fn hundreds_of_accounts_complete_exactly_and_fairly_in_one_collect() {
    let started = std::time::Instant::now();
    let zoom: Vec<ZoomAccountSpec> = (0..ZOOM_ACCOUNTS)
        .map(|i| zoom_account(&format!("z{i:03}"), 8))
        .collect();
    let sdk: Vec<VideoSdkAccountSpec> = (0..SDK_ACCOUNTS)
        .map(|i| VideoSdkAccountSpec {
            users_per_session: 3,
            ..sdk_account(&format!("s{i:02}"), 2)
        })
        .collect();
    let sandbox = rollcall_sandbox::spawn(SandboxConfig {
        listen: "127.0.0.1:0".into(),
        seed: 7,
        zoom: zoom.clone(),
        videosdk: sdk.clone(),
        ..sandbox_defaults()
    })
    .await
    .expect("sandbox");
    let control = sandbox.control();
    let mut app = TestApp::new(sandbox)
        .await
        .zoom(&zoom, PAGE_SIZE)
        .videosdk(&sdk, PAGE_SIZE);
    app.config.collector.max_windows_in_flight = MAX_WINDOWS_IN_FLIGHT as u32;
    let db = &app.db;

    let collected = std::time::Instant::now();
    let outcome = app.collect_all().await;
    let collect_secs = collected.elapsed().as_secs_f64();
    assert!(outcome.all_complete(), "{}", incomplete(&outcome));

    // Every window of every account and stream is complete (or unreachable, never requested).
    let open: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT account, stream, state FROM rollcall.collection_windows
          WHERE state NOT IN ('complete', 'unreachable') LIMIT 10",
    )
    .fetch_all(&db.pool)
    .await
    .expect("open windows");
    assert!(open.is_empty(), "windows not complete: {open:?}");
    let months = reachable_months().len() as i64;
    let per_stream: Vec<(String, i64)> = sqlx::query_as(
        "SELECT stream, count(*) FROM rollcall.collection_windows WHERE state = 'complete'
          GROUP BY stream ORDER BY stream",
    )
    .fetch_all(&db.pool)
    .await
    .expect("complete windows");
    let per_stream: BTreeMap<String, i64> = per_stream.into_iter().collect();
    let (z, s) = (ZOOM_ACCOUNTS as i64, SDK_ACCOUNTS as i64);
    assert_eq!(per_stream.get("zoom_host_report"), Some(&(z * months * 2)));
    // Per session and per day: the month straddling the horizon too, from the horizon day.
    let day_months = day_months().len() as i64;
    assert_eq!(per_stream.get("zoom_daily_usage"), Some(&(z * day_months)));
    assert_eq!(per_stream.get("zoom_sdk_sessions"), Some(&(s * day_months)));
    assert_eq!(
        per_stream.get("zoom_sdk_daily_usage"),
        Some(&(s * day_months))
    );

    assert_host_reports_mirror(db, &control, &zoom).await;
    let ended_sessions = assert_sdk_mirror_all(db, &control, &sdk).await;
    assert_eq!(
        per_stream.get("zoom_sdk_session_users"),
        Some(&(ended_sessions as i64)),
        "one users window per ended session"
    );
    // A full comparison (raw rows, rejoins) for a sample; the whole set is compared above by rows.
    for spec in [&sdk[0], &sdk[SDK_ACCOUNTS - 1]] {
        assert_sdk_mirror(&db.pool, &control, spec).await;
    }
    for spec in [&zoom[0], &zoom[ZOOM_ACCOUNTS / 2], &zoom[ZOOM_ACCOUNTS - 1]] {
        assert_mirror(&db.pool, &control, spec).await;
    }

    // No duplicate: every page of every window was asked once (no window walked twice, no retry).
    let mut asked: HashMap<String, u32> = HashMap::new();
    for r in control.requests() {
        if matches!(r.endpoint, Endpoint::OauthToken) {
            continue;
        }
        let mut query = r.query.clone();
        query.remove("next_page_token");
        let key = format!(
            "{:?} {:?} {:?} {:?} {:?}",
            r.endpoint, r.account_id, query, r.page, r.session_id
        );
        *asked.entry(key).or_default() += 1;
    }
    let twice: Vec<_> = asked.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "requested more than once: {twice:?}");

    // Fairness. Order all complete windows by completion time; the instant a quarter of them were
    // complete must find every account with at least one complete window of its own. Slots go round the
    // streams in turn (after every stream planned), so each account's first window completes in the first
    // round, about one window in nine here; without the planning-first rule the last accounts started
    // at about 43 %.
    let done: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT account, completed_at FROM rollcall.collection_windows
          WHERE state = 'complete' ORDER BY completed_at",
    )
    .fetch_all(&db.pool)
    .await
    .expect("completion times");
    let quarter = done[done.len() / 4].1;
    let mut first: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
    for (account, at) in &done {
        first.entry(account.as_str()).or_insert(*at);
    }
    assert_eq!(first.len(), ZOOM_ACCOUNTS + SDK_ACCOUNTS, "every account");
    let (last_account, last_first) = first
        .iter()
        .max_by_key(|(_, at)| **at)
        .map(|(a, at)| (a.to_string(), *at))
        .expect("accounts");
    let done_before_last = done.iter().filter(|(_, at)| *at < last_first).count();
    let share = done_before_last as f64 / done.len() as f64;
    eprintln!(
        "many_accounts: {} windows, collect {collect_secs:.1} s, test {:.1} s; the last account to get a \
         complete window ({last_account}) got it when {:.1} % of all windows were complete",
        done.len(),
        started.elapsed().as_secs_f64(),
        share * 100.0
    );
    assert!(
        last_first <= quarter,
        "{last_account} had no complete window until {:.1} % of all windows were complete",
        share * 100.0
    );

    // The run-wide bound held: never more than MAX_WINDOWS_IN_FLIGHT walks at once. A walk starts at
    // its page 1 (`started_at`) and ends at completion, so count overlaps of those spans.
    let spans: Vec<(DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT started_at, completed_at FROM rollcall.collection_windows
          WHERE state = 'complete' AND stream <> 'zoom_sdk_sessions'",
    )
    .fetch_all(&db.pool)
    .await
    .expect("spans");
    let mut edges: Vec<(DateTime<Utc>, i32)> = spans
        .iter()
        .flat_map(|(s, e)| [(*s, 1), (*e, -1)])
        .collect();
    // An end and a start at the same instant: the end first (the slot was freed before it was reused).
    edges.sort();
    let (mut now, mut most) = (0, 0);
    for (_, delta) in edges {
        now += delta;
        most = most.max(now);
    }
    assert!(
        most <= MAX_WINDOWS_IN_FLIGHT as i32,
        "{most} windows walked at once, bound {MAX_WINDOWS_IN_FLIGHT}"
    );
    assert!(most > 1, "windows were walked concurrently ({most})");
}

/// The outcomes that are not clean, rather than 750 that are.
fn incomplete(report: &RunReport) -> String {
    let bad: Vec<_> = report
        .outcomes
        .iter()
        .filter(|o| o.failed > 0 || o.stopped.is_some() || o.interrupted)
        .take(20)
        .collect();
    format!("{} incomplete windows; {bad:?}", report.incomplete)
}

/// Every host report of every account, compared row by row (raw JSON) and by totals with the sandbox, in
/// two queries instead of one per window.
async fn assert_host_reports_mirror(
    db: &TestDb,
    control: &rollcall_sandbox::Control,
    zoom: &[ZoomAccountSpec],
) {
    type Key = (String, NaiveDate, String);
    let rows: Vec<(String, NaiveDate, String, String, Value)> = sqlx::query_as(
        "SELECT account, month, report_type, user_id, raw FROM rollcall.zoom_host_report_users",
    )
    .fetch_all(&db.pool)
    .await
    .expect("users");
    let mut stored: BTreeMap<Key, BTreeMap<String, Value>> = BTreeMap::new();
    for (account, month, t, user, raw) in rows {
        stored
            .entry((account, month, t))
            .or_default()
            .insert(user, raw);
    }
    let totals: Vec<(String, NaiveDate, String, i64)> = sqlx::query_as(
        "SELECT account, month, report_type, total_records FROM rollcall.zoom_host_reports",
    )
    .fetch_all(&db.pool)
    .await
    .expect("totals");
    let totals: BTreeMap<Key, i64> = totals
        .into_iter()
        .map(|(a, m, t, n)| ((a, m, t), n))
        .collect();
    let mut expected_windows = 0;
    for spec in zoom {
        let account = account_name(spec);
        for month in reachable_months() {
            for t in [ReportType::Active, ReportType::Inactive] {
                let truth = control.report_truth(&spec.account_id, month, t);
                let want: BTreeMap<String, Value> = truth
                    .users
                    .iter()
                    .map(|u| (u["id"].as_str().expect("id").to_string(), u.clone()))
                    .collect();
                let key = (account.clone(), month, type_name(t).to_string());
                let got = stored.get(&key).cloned().unwrap_or_default();
                assert!(got == want, "{key:?}: rows differ from the sandbox");
                assert_eq!(
                    totals.get(&key),
                    Some(&(truth.total_records as i64)),
                    "{key:?}: total"
                );
                expected_windows += 1;
            }
        }
    }
    assert_eq!(totals.len(), expected_windows, "no totals row of its own");
}

/// Every Video SDK session and join of every account, by row (raw JSON): returns the ended sessions.
async fn assert_sdk_mirror_all(
    db: &TestDb,
    control: &rollcall_sandbox::Control,
    sdk: &[VideoSdkAccountSpec],
) -> usize {
    let sessions: Vec<(String, String, Value)> = sqlx::query_as(
        "SELECT account, session_id, raw FROM rollcall.zoom_sdk_sessions WHERE missing_since IS NULL",
    )
    .fetch_all(&db.pool)
    .await
    .expect("sessions");
    let mut stored_sessions: BTreeMap<(String, String), Value> = BTreeMap::new();
    for (account, id, raw) in sessions {
        stored_sessions.insert((account, id), raw);
    }
    let users: Vec<(String, String, Value)> =
        sqlx::query_as("SELECT account, session_id, raw FROM rollcall.zoom_sdk_session_users")
            .fetch_all(&db.pool)
            .await
            .expect("users");
    let mut stored_users: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (account, id, raw) in users {
        stored_users
            .entry((account, id))
            .or_default()
            .push(raw.to_string());
    }
    let mut expected_sessions = BTreeMap::new();
    let mut expected_users: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut ended = 0;
    for spec in sdk {
        let account = sdk_name(spec);
        for (month, from) in day_months() {
            for session in sdk_sessions_from(control, &spec.api_key, month, from) {
                let id = session["id"].as_str().expect("id").to_string();
                if session.get("end_time").is_some() {
                    ended += 1;
                    let mut joins: Vec<String> = control
                        .sdk_session_users(&spec.api_key, &id)
                        .iter()
                        .map(Value::to_string)
                        .collect();
                    joins.sort();
                    if !joins.is_empty() {
                        expected_users.insert((account.clone(), id.clone()), joins);
                    }
                }
                expected_sessions.insert((account.clone(), id), session);
            }
        }
    }
    assert_eq!(stored_sessions.len(), expected_sessions.len(), "sessions");
    assert!(
        stored_sessions == expected_sessions,
        "sessions differ from the sandbox"
    );
    for joins in stored_users.values_mut() {
        joins.sort();
    }
    assert_eq!(
        stored_users.values().map(Vec::len).sum::<usize>(),
        expected_users.values().map(Vec::len).sum::<usize>(),
        "session users"
    );
    assert!(
        stored_users == expected_users,
        "session users differ from the sandbox"
    );
    ended
}

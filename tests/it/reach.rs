//! Reach: the month that straddles Zoom's horizon (its 1st before the horizon day, its end after) is
//! walked from the horizon day for the streams whose rows are per session or per day, on a first
//! collection and for an account added later; host reports keep whole months. Runs on a day whose horizon
//! falls mid-month (the 15th of the suite's month), with rollcall's run and the sandbox on that calendar.

use crate::common::*;
use chrono::{Datelike, Duration, Months, NaiveDate, NaiveTime};
use rollcall::commands::coverage::{self, CellState};
use rollcall_sandbox::{
    Endpoint, FaultKind, FaultRule, Sandbox, SandboxConfig, VideoSdkAccountSpec, ZoomAccountSpec,
};
use std::collections::BTreeSet;

/// The 15th of the suite's month: Zoom's horizon then is the 16th, six months back.
fn mid_month_day() -> NaiveDate {
    today().with_day(15).expect("the 15th")
}

fn horizon(day: NaiveDate) -> NaiveDate {
    day.checked_sub_months(Months::new(6)).expect("date math") + Duration::days(1)
}

fn last_of_month(first: NaiveDate) -> NaiveDate {
    first
        .checked_add_months(Months::new(1))
        .and_then(|next| next.pred_opt())
        .expect("date math")
}

fn noon(day: NaiveDate) -> chrono::DateTime<chrono::Utc> {
    day.and_time(NaiveTime::from_hms_opt(12, 0, 0).expect("noon"))
        .and_utc()
}

/// A sandbox whose today is `day`, with the same seed (the same history) whichever day it serves.
async fn sandbox_on(
    day: NaiveDate,
    zoom: Vec<ZoomAccountSpec>,
    sdk: Vec<VideoSdkAccountSpec>,
) -> Sandbox {
    rollcall_sandbox::spawn(SandboxConfig {
        listen: "127.0.0.1:0".into(),
        seed: 7,
        zoom,
        videosdk: sdk,
        calendar_shift_days: (day - chrono::Utc::now().date_naive()).num_days(),
        ..sandbox_defaults()
    })
    .await
    .expect("start sandbox")
}

/// (window_start, window_end, state, last_error) of an account's stream, oldest first.
async fn windows_of(
    app: &TestApp,
    account: &str,
    stream: &str,
) -> Vec<(NaiveDate, NaiveDate, String, Option<String>)> {
    sqlx::query_as(
        "SELECT window_start, window_end, state, last_error FROM rollcall.collection_windows
          WHERE account = $1 AND stream = $2 ORDER BY window_start, scope",
    )
    .bind(account)
    .bind(stream)
    .fetch_all(app.pool())
    .await
    .expect("windows")
}

async fn stored_days(
    app: &TestApp,
    table: &str,
    account: &str,
    month: NaiveDate,
) -> Vec<NaiveDate> {
    sqlx::query_scalar(&format!(
        "SELECT day FROM {table} WHERE account = $1 AND day BETWEEN $2 AND $3 ORDER BY day"
    ))
    .bind(account)
    .bind(month)
    .bind(last_of_month(month))
    .fetch_all(app.pool())
    .await
    .expect("days")
}

async fn stored_sessions(app: &TestApp, account: &str, month: NaiveDate) -> BTreeSet<String> {
    sqlx::query_scalar::<_, String>(
        "SELECT session_id FROM rollcall.zoom_sdk_sessions WHERE account = $1 AND month = $2",
    )
    .bind(account)
    .bind(month)
    .fetch_all(app.pool())
    .await
    .expect("sessions")
    .into_iter()
    .collect()
}

/// The sandbox's sessions of `month` that started on or after `from`.
fn served_sessions(
    sandbox: &Sandbox,
    api_key: &str,
    month: NaiveDate,
    from: NaiveDate,
) -> BTreeSet<String> {
    sandbox
        .control()
        .sdk_sessions(api_key, month)
        .iter()
        .filter(|s| {
            s["start_time"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t.date_naive() >= from)
        })
        .filter_map(|s| s["id"].as_str().map(str::to_string))
        .collect()
}

async fn cell(
    app: &TestApp,
    account: &str,
    stream: &str,
    today: NaiveDate,
    month: NaiveDate,
) -> CellState {
    let shown = coverage::load(
        app.pool(),
        &coverage::Request {
            configured: Vec::new(),
            account: Some(account.to_string()),
            stream: Some(stream.to_string()),
            months: 12,
            today,
            local_today: Default::default(),
            left_out: Default::default(),
        },
    )
    .await
    .expect("coverage");
    let wanted = month.format("%Y-%m").to_string();
    shown.accounts[0].streams[0]
        .months
        .iter()
        .find(|c| c.month == wanted)
        .map(|c| c.state)
        .expect("the month's cell")
}

#[tokio::test]
async fn the_month_straddling_the_horizon_is_walked_from_the_horizon_day() {
    let day = mid_month_day();
    let h = horizon(day);
    let (month, end) = (
        h.with_day(1).expect("first"),
        last_of_month(h.with_day(1).expect("first")),
    );
    assert!(h.day() != 1, "the horizon falls mid-month");
    let zoom = zoom_account("reach", 40);
    let sdk = sdk_account("reach", 120);
    let sandbox = sandbox_on(day, vec![zoom.clone()], vec![sdk.clone()]).await;
    let mut app = TestApp::new(sandbox)
        .await
        .zoom(std::slice::from_ref(&zoom), 300)
        .videosdk(std::slice::from_ref(&sdk), 300);
    let (zname, sname) = (account_name(&zoom), sdk_name(&sdk));
    app.collect_at(Default::default(), noon(day)).await;

    // Sessions, users and both daily usage reports: a window of its own from the horizon day, complete.
    for (account, stream) in [
        (&sname, "zoom_sdk_sessions"),
        (&sname, "zoom_sdk_daily_usage"),
        (&zname, "zoom_daily_usage"),
    ] {
        let windows = windows_of(&app, account, stream).await;
        assert_eq!(
            (windows[0].0, windows[0].1, windows[0].2.as_str()),
            (h, end, "complete"),
            "{stream}: {windows:?}"
        );
        assert!(
            windows.iter().all(|w| w.0 >= h),
            "{stream}: nothing older: {windows:?}"
        );
    }
    // Host reports keep whole months: the straddling month is unreachable as a whole.
    let reports = windows_of(&app, &zname, "zoom_host_report").await;
    assert!(
        reports
            .iter()
            .filter(|w| w.0 == month)
            .all(|w| w.1 == end && w.2 == "unreachable")
            && reports.iter().any(|w| w.0 == month),
        "{reports:?}"
    );

    // The sessions Zoom lists from the horizon day on, under their calendar month, and their users.
    let served = served_sessions(&app.sandbox, &sdk.api_key, month, h);
    assert!(
        served.len() > 5,
        "the sandbox holds sessions after the horizon day: {served:?}"
    );
    assert_eq!(stored_sessions(&app, &sname, month).await, served);
    let users: Vec<(String, i64)> = sqlx::query_as(
        "SELECT session_id, count(*) FROM rollcall.zoom_sdk_session_users
          WHERE account = $1 AND session_id = ANY($2) GROUP BY session_id",
    )
    .bind(&sname)
    .bind(served.iter().cloned().collect::<Vec<_>>())
    .fetch_all(app.pool())
    .await
    .expect("users");
    for (session, count) in &users {
        let truth = app.control().sdk_session_users(&sdk.api_key, session).len() as i64;
        assert_eq!(*count, truth, "users of {session}");
    }
    assert!(
        users.len() * 2 > served.len(),
        "most sessions have users: {users:?}"
    );
    let view: (NaiveDate, bool) = sqlx::query_as(
        "SELECT held_from, complete FROM rollcall.zoom_sdk_months WHERE account = $1 AND month = $2",
    )
    .bind(&sname)
    .bind(month)
    .fetch_one(app.pool())
    .await
    .expect("zoom_sdk_months names the calendar month");
    assert_eq!(view, (h, true));
    let users_windows = windows_of(&app, &sname, "zoom_sdk_session_users").await;
    assert!(users_windows
        .iter()
        .filter(|w| w.1 == end)
        .all(|w| w.0 == h && w.2 == "complete"));

    // Every day from the horizon day to the month's end (a final month: days Zoom leaves out are zeros).
    let every_day: Vec<NaiveDate> = h.iter_days().take_while(|d| *d <= end).collect();
    assert_eq!(
        stored_days(&app, "rollcall.zoom_daily_usage", &zname, month).await,
        every_day
    );
    assert_eq!(
        stored_days(&app, "rollcall.zoom_sdk_daily_usage", &sname, month).await,
        every_day
    );

    // coverage: held from the horizon day, not lost; the host reports' month is lost as before.
    for (account, stream) in [
        (&sname, "zoom_sdk_sessions"),
        (&sname, "zoom_sdk_daily_usage"),
        (&zname, "zoom_daily_usage"),
    ] {
        assert_eq!(
            cell(&app, account, stream, day, month).await,
            CellState::FromHorizon,
            "{stream}"
        );
    }
    assert_eq!(
        cell(&app, &zname, "zoom_host_report", day, month).await,
        CellState::Lost
    );
    let text = coverage::render(
        &coverage::load(
            app.pool(),
            &coverage::Request {
                configured: Vec::new(),
                account: None,
                stream: None,
                months: 12,
                today: day,
                local_today: Default::default(),
                left_out: Default::default(),
            },
        )
        .await
        .expect("coverage"),
        false,
    );
    assert!(text.contains("  h  held from the horizon day on"), "{text}");

    // Three days later the horizon has moved on: the window keeps what it holds and no narrower one is
    // added; an account added now gets the straddling month from the new horizon day.
    let later = day + Duration::days(3);
    let fresh = sdk_account("fresh", 120);
    let sandbox = sandbox_on(later, vec![zoom.clone()], vec![sdk.clone(), fresh.clone()]).await;
    app.config.zoom = vec![zoom_config(&sandbox, &zoom, 300)];
    app.config.videosdk = vec![
        sdk_config(&sandbox, &sdk, 300),
        sdk_config(&sandbox, &fresh, 300),
    ];
    app.sandbox = sandbox;
    app.collect_at(Default::default(), noon(later)).await;
    for (account, stream) in [
        (&sname, "zoom_sdk_sessions"),
        (&sname, "zoom_sdk_daily_usage"),
        (&zname, "zoom_daily_usage"),
    ] {
        let of_month: Vec<_> = windows_of(&app, account, stream)
            .await
            .into_iter()
            .filter(|w| w.1 == end)
            .collect();
        assert_eq!(of_month.len(), 1, "{stream}: {of_month:?}");
        assert_eq!(
            (of_month[0].0, of_month[0].2.as_str()),
            (h, "complete"),
            "{stream}"
        );
        assert_eq!(
            cell(&app, account, stream, later, month).await,
            CellState::FromHorizon
        );
    }
    assert_eq!(stored_sessions(&app, &sname, month).await, served, "kept");
    assert_eq!(
        stored_days(&app, "rollcall.zoom_daily_usage", &zname, month).await,
        every_day
    );
    let moved = horizon(later);
    let fname = sdk_name(&fresh);
    let windows = windows_of(&app, &fname, "zoom_sdk_sessions").await;
    assert_eq!(
        (windows[0].0, windows[0].1, windows[0].2.as_str()),
        (moved, end, "complete")
    );
    assert_eq!(
        stored_sessions(&app, &fname, month).await,
        served_sessions(&app.sandbox, &fresh.api_key, month, moved)
    );
    let every_day: Vec<NaiveDate> = moved.iter_days().take_while(|d| *d <= end).collect();
    assert_eq!(
        stored_days(&app, "rollcall.zoom_sdk_daily_usage", &fname, month).await,
        every_day
    );
}

#[tokio::test]
async fn a_refused_straddling_month_is_recorded_unreachable_with_zooms_answer() {
    let day = mid_month_day();
    let h = horizon(day);
    let zoom = zoom_account("refused", 40);
    let sdk = sdk_account("refused", 60);
    let sandbox = sandbox_on(day, vec![zoom.clone()], vec![sdk.clone()]).await;
    // One window at a time, oldest first: the first request of each stream is the straddling month's.
    for (endpoint, message) in [
        (
            Endpoint::SdkSessions,
            "Only provide report in recent 6 months",
        ),
        (
            Endpoint::SdkReportDaily,
            "Daily report can only be provided for a month that falls within the recent 6 months.",
        ),
        (
            Endpoint::ReportDaily,
            "Daily report can only be provided for a month that falls within the recent 6 months.",
        ),
    ] {
        sandbox.control().add_fault(
            FaultRule::on(
                endpoint,
                FaultKind::Status {
                    status: 400,
                    body: serde_json::json!({"code": 300, "message": message}).to_string(),
                },
            )
            .times(1),
        );
    }
    let mut app = TestApp::new(sandbox)
        .await
        .zoom(std::slice::from_ref(&zoom), 300)
        .videosdk(std::slice::from_ref(&sdk), 300);
    app.config.collector.windows_in_flight = 1;
    app.collect_at(Default::default(), noon(day)).await;
    let (zname, sname) = (account_name(&zoom), sdk_name(&sdk));
    for (account, stream, message) in [
        (
            &sname,
            "zoom_sdk_sessions",
            "Only provide report in recent 6 months",
        ),
        (
            &sname,
            "zoom_sdk_daily_usage",
            "falls within the recent 6 months",
        ),
        (
            &zname,
            "zoom_daily_usage",
            "falls within the recent 6 months",
        ),
    ] {
        let windows = windows_of(&app, account, stream).await;
        assert_eq!(
            (windows[0].0, windows[0].2.as_str()),
            (h, "unreachable"),
            "{stream}: {windows:?}"
        );
        let error = windows[0].3.clone().unwrap_or_default();
        assert!(
            error.contains(message) && error.contains("code 300"),
            "{stream}: {error}"
        );
        // Nothing else changes: the other months are collected as usual.
        assert!(
            windows[1..].iter().all(|w| w.2 == "complete"),
            "{stream}: {windows:?}"
        );
    }
    let month = h.with_day(1).expect("first");
    assert!(stored_sessions(&app, &sname, month).await.is_empty());
    assert!(
        stored_days(&app, "rollcall.zoom_daily_usage", &zname, month)
            .await
            .is_empty()
    );
    assert_eq!(
        cell(&app, &sname, "zoom_sdk_sessions", day, month).await,
        CellState::Lost
    );

    // A later run does not ask again.
    app.control().clear_requests();
    app.collect_at(Default::default(), noon(day) + Duration::hours(1))
        .await;
    let asked: Vec<_> = app
        .control()
        .requests()
        .into_iter()
        .filter(|r| r.query.get("from").map(String::as_str) == Some(h.to_string().as_str()))
        .collect();
    assert!(asked.is_empty(), "{asked:?}");
    assert_eq!(
        windows_of(&app, &sname, "zoom_sdk_sessions").await[0].2,
        "unreachable"
    );
}

//! A Video SDK session's users window becomes final once the session ended more than `settle_days` before
//! the walk's day, whatever its month: a second run asks only for the users of sessions that can still
//! change (ended within `settle_days`, new, or whose end Zoom now serves differently), while the session
//! list of the open month is still walked every run.
//!
//! Each test runs on a calendar of its own: the sandbox serves a fixed today, and rollcall's runs start at
//! injected instants on the same days, so the result does not depend on the date the suite runs on.

use crate::common::*;
use chrono::{DateTime, NaiveDate, Utc};
use rollcall_sandbox::{Endpoint, Sandbox, SandboxConfig, VideoSdkAccountSpec};
use std::collections::BTreeSet;

/// Mid-month, so that the month before is final and only the current one is open.
fn day_one() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 12).expect("a date")
}

fn at(day: NaiveDate, hour: u32) -> DateTime<Utc> {
    day.and_hms_opt(hour, 0, 0).expect("a time").and_utc()
}

async fn sandbox_on(today: NaiveDate, spec: &VideoSdkAccountSpec) -> Sandbox {
    rollcall_sandbox::spawn(SandboxConfig {
        listen: "127.0.0.1:0".into(),
        seed: 7,
        today: Some(today),
        videosdk: vec![spec.clone()],
        ..SandboxConfig::default()
    })
    .await
    .expect("start sandbox")
}

/// Serves the same data on a later day, as Zoom a day later: a fresh sandbox (same seed) whose today is
/// `today`, with the session end changes the test made carried over by the caller.
async fn move_sandbox(app: &mut TestApp, spec: &VideoSdkAccountSpec, today: NaiveDate) {
    let next = sandbox_on(today, spec).await;
    let old = std::mem::replace(&mut app.sandbox, next);
    old.shutdown().await;
    app.config.videosdk[0].api_url = app.sandbox.zoom_api_url();
}

/// The sessions whose users the sandbox was asked for since the log was last cleared.
fn users_asked(app: &TestApp) -> BTreeSet<String> {
    app.control()
        .requests()
        .into_iter()
        .filter(|r| r.endpoint == Endpoint::SdkSessionUsers && r.status == 200)
        .filter_map(|r| r.session_id)
        .collect()
}

/// The current month's sessions as the sandbox serves them now: (id, end day).
fn ended_sessions(
    app: &TestApp,
    spec: &VideoSdkAccountSpec,
    month: NaiveDate,
) -> Vec<(String, NaiveDate)> {
    app.control()
        .sdk_sessions(&spec.api_key, month)
        .iter()
        .filter_map(|s| {
            let id = s["id"].as_str()?.to_string();
            let end: DateTime<Utc> = s["end_time"].as_str()?.parse().ok()?;
            Some((id, end.date_naive()))
        })
        .collect()
}

async fn users_window(app: &TestApp, session: &str) -> (String, bool) {
    sqlx::query_as(
        "SELECT state, is_final FROM rollcall.collection_windows
          WHERE stream = 'zoom_sdk_session_users' AND scope = $1",
    )
    .bind(session)
    .fetch_one(app.pool())
    .await
    .expect("the session's users window")
}

#[tokio::test]
async fn a_run_a_day_later_asks_only_for_the_users_of_sessions_that_can_still_change() {
    let spec = sdk_account("settled", 62);
    let (day1, day2) = (day_one(), day_one().succ_opt().expect("a date"));
    let month = NaiveDate::from_ymd_opt(2026, 3, 1).expect("a date");
    let mut app = TestApp::new(sandbox_on(day1, &spec).await)
        .await
        .videosdk(std::slice::from_ref(&spec), 300);
    let first = app.collect_at(Selection::default(), at(day1, 12)).await;
    assert!(first.all_complete(), "{first:?}");
    let listed_on_day1: BTreeSet<String> = ended_sessions(&app, &spec, month)
        .into_iter()
        .map(|(id, _)| id)
        .collect();

    move_sandbox(&mut app, &spec, day2).await;
    let second = app.collect_at(Selection::default(), at(day2, 12)).await;
    assert!(second.all_complete(), "{second:?}");

    let asked = users_asked(&app);
    let sessions = ended_sessions(&app, &spec, month);
    // Final since run 1: ended more than settle_days (2) before its day.
    let settled: Vec<&String> = sessions
        .iter()
        .filter(|(_, end)| (day1 - *end).num_days() > 2)
        .map(|(id, _)| id)
        .collect();
    // Walked by run 1 before they settled, or new since: asked again, and final once they ended more
    // than settle_days before run 2's day.
    let recent: Vec<&String> = sessions
        .iter()
        .filter(|(_, end)| (day1 - *end).num_days() <= 2)
        .map(|(id, _)| id)
        .collect();
    assert!(
        settled.len() >= 10 && recent.len() >= 4,
        "{} {}",
        settled.len(),
        recent.len()
    );
    let settled_asked = settled.iter().filter(|id| asked.contains(**id)).count();
    assert_eq!(
        settled_asked, 0,
        "sessions of the open month that ended more than settle_days ago are not asked again"
    );
    for id in &recent {
        assert!(
            asked.contains(*id),
            "{id}: ended within settle_days, asked again"
        );
    }
    assert!(
        sessions
            .iter()
            .any(|(id, end)| *end == day1 && asked.contains(id)),
        "a session that ended yesterday is asked again"
    );
    assert!(
        recent.iter().any(|id| !listed_on_day1.contains(*id)),
        "the new day's sessions are listed and their users asked"
    );
    assert_eq!(
        asked.len(),
        recent.len(),
        "nothing else is asked: the older months are final"
    );
    let list_pages = app
        .control()
        .requests()
        .iter()
        .filter(|r| {
            r.endpoint == Endpoint::SdkSessions && r.query.get("from") == Some(&month.to_string())
        })
        .count();
    assert_eq!(list_pages, 1, "the open month's list is walked every run");

    for id in &settled {
        assert_eq!(
            users_window(&app, id).await,
            ("complete".into(), true),
            "{id}"
        );
    }
    for (id, end) in &sessions {
        let settled_now = (day2 - *end).num_days() > 2;
        assert_eq!(
            users_window(&app, id).await,
            ("complete".into(), settled_now),
            "{id}"
        );
    }
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rollcall.zoom_sdk_session_users u
           JOIN rollcall.zoom_sdk_sessions s USING (account, session_id) WHERE s.month = $1",
    )
    .bind(month)
    .fetch_one(app.pool())
    .await
    .expect("count");
    let served: usize = sessions
        .iter()
        .map(|(id, _)| app.control().sdk_session_users(&spec.api_key, id).len())
        .sum();
    assert_eq!(stored as usize, served, "every join of the month is stored");
}

#[tokio::test]
async fn a_settled_session_whose_end_changes_upstream_is_asked_again() {
    let spec = sdk_account("moved", 62);
    let (day1, day2) = (day_one(), day_one().succ_opt().expect("a date"));
    let month = NaiveDate::from_ymd_opt(2026, 3, 1).expect("a date");
    let mut app = TestApp::new(sandbox_on(day1, &spec).await)
        .await
        .videosdk(std::slice::from_ref(&spec), 300);
    app.collect_at(Selection::default(), at(day1, 12)).await;
    let (session, _) = ended_sessions(&app, &spec, month)
        .into_iter()
        .find(|(_, end)| (day1 - *end).num_days() > 2)
        .expect("a session that ended long before");
    assert_eq!(
        users_window(&app, &session).await,
        ("complete".into(), true)
    );

    move_sandbox(&mut app, &spec, day2).await;
    app.collect_at(Selection::default(), at(day2, 8)).await;
    assert!(!users_asked(&app).contains(&session), "settled: not asked");

    // Zoom now serves a later end for it: its users may have changed since they were walked.
    assert!(app
        .control()
        .set_sdk_session_extended(&spec.api_key, &session, 45));
    app.control().clear_requests();
    let third = app.collect_at(Selection::default(), at(day2, 20)).await;
    assert!(third.all_complete(), "{third:?}");
    assert!(
        users_asked(&app).contains(&session),
        "its end changed: asked again"
    );
    assert_eq!(
        users_window(&app, &session).await,
        ("complete".into(), true)
    );
    let truth = app.control().sdk_session_users(&spec.api_key, &session);
    let (stored_end, latest_leave): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
        sqlx::query_as(
            "SELECT s.end_time, (SELECT max(leave_time) FROM rollcall.zoom_sdk_session_users u
                              WHERE u.account = s.account AND u.session_id = s.session_id)
           FROM rollcall.zoom_sdk_sessions s WHERE s.session_id = $1",
        )
        .bind(&session)
        .fetch_one(app.pool())
        .await
        .expect("the session");
    let served_leave = truth
        .iter()
        .filter_map(|u| u["leave_time"].as_str()?.parse::<DateTime<Utc>>().ok())
        .max();
    assert_eq!(
        latest_leave, served_leave,
        "the users as Zoom serves them now"
    );
    let served_end = app
        .control()
        .sdk_sessions(&spec.api_key, month)
        .iter()
        .find(|s| s["id"].as_str() == Some(session.as_str()))
        .and_then(|s| s["end_time"].as_str()?.parse::<DateTime<Utc>>().ok());
    assert_eq!(stored_end, served_end, "the session's new end is stored");

    app.control().clear_requests();
    app.collect_at(Selection::default(), at(day2, 22)).await;
    assert!(
        !users_asked(&app).contains(&session),
        "settled again: not asked"
    );
}

//! Rocket.Chat daily active users end to end: collection in-process, the real sandbox over HTTP, a real
//! PostgreSQL; the real `rollcall` binary where it is killed mid-run and for `check`.

use crate::common::*;
use chrono::{DateTime, Duration as Days, NaiveDate, Timelike};
use rollcall_sandbox::{
    Control, Endpoint, FaultKind, FaultRule, RequestRecord, RocketChatWorkspaceSpec,
};
use std::collections::BTreeMap;
use std::time::Duration;

const RETENTION: i64 = 44;

fn rc_fault(workspace: &str, kind: FaultKind) -> FaultRule {
    FaultRule::on(Endpoint::RcActiveUsers, kind).account(workspace)
}

fn rc_requests(control: &Control, workspace: &str) -> Vec<RequestRecord> {
    control
        .requests()
        .into_iter()
        .filter(|r| {
            r.endpoint == Endpoint::RcActiveUsers && r.account_id.as_deref() == Some(workspace)
        })
        .collect()
}

/// The local first and last day a request asked for, after checking both ends are exact local day edges
/// in `toISOString` form.
fn requested_days(record: &RequestRecord, tz: chrono_tz::Tz) -> (NaiveDate, NaiveDate) {
    let parse = |key: &str| {
        let text = record.query.get(key).expect("start and end are sent");
        assert_eq!(text.len(), 24, "{key}={text} is YYYY-MM-DDTHH:mm:ss.sssZ");
        assert!(text.ends_with('Z'), "{key}={text} ends with Z");
        DateTime::parse_from_rfc3339(text)
            .expect("an RFC 3339 instant")
            .with_timezone(&tz)
    };
    let (start, end) = (parse("start"), parse("end"));
    assert_eq!(
        (
            start.hour(),
            start.minute(),
            start.second(),
            start.timestamp_subsec_millis()
        ),
        (0, 0, 0, 0),
        "start is local midnight: {start}"
    );
    assert_eq!(
        (
            end.hour(),
            end.minute(),
            end.second(),
            end.timestamp_subsec_millis()
        ),
        (23, 59, 59, 999),
        "end is local 23:59:59.999: {end}"
    );
    assert_eq!(record.query.len(), 2, "only start and end are sent");
    (start.date_naive(), end.date_naive())
}

async fn snapshot(
    db: &TestDb,
    workspace: &str,
) -> (
    BTreeMap<NaiveDate, Vec<String>>,
    BTreeMap<NaiveDate, (i32, bool)>,
) {
    (
        rc_stored(&db.pool, workspace).await,
        rc_counts(&db.pool, workspace).await,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn mirrors_44_days_in_utc_and_new_york_and_a_second_run_rewalks_only_the_lookback() {
    let specs = vec![
        RocketChatWorkspaceSpec::new("chat", "UTC"),
        RocketChatWorkspaceSpec::new("nychat", "America/New_York"),
    ];
    let sandbox = rc_sandbox(specs.clone()).await;
    let control = sandbox.control();
    // A day nobody used chat: absent from the answer, stored as 0.
    let quiet = control.rc_today("nychat").expect("workspace") - Days::days(9);
    control.rc_clear_day("nychat", quiet);
    let app = TestApp::new(sandbox).await.rocketchat(&specs);
    let db = &app.db;

    let started = std::time::Instant::now();
    let first = app.collect_all().await;
    assert!(first.all_complete(), "first collect: {first:?}");
    let first_secs = started.elapsed().as_secs_f64();
    for spec in &specs {
        rc_assert_mirror(&db.pool, &control, &spec.name, RETENTION).await;
    }
    assert_eq!(
        rc_counts(&db.pool, "nychat").await.get(&quiet),
        Some(&(0, true))
    );

    for spec in &specs {
        let tz: chrono_tz::Tz = spec.timezone.parse().expect("zone");
        let today = control.rc_today(&spec.name).expect("workspace");
        let requests = rc_requests(&control, &spec.name);
        let windows: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM rollcall.collection_windows WHERE account = $1 AND stream = 'rc_active_users'",
        )
        .bind(&spec.name)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(requests.len() as i64, windows, "one request per window");
        assert!(requests.len() <= 8, "{} requests", requests.len());
        let mut covered = Vec::new();
        for r in &requests {
            assert_eq!(r.status, 200);
            let (a, b) = requested_days(r, tz);
            assert!(a <= b && b < today, "today is never requested: {a}..{b}");
            assert!(
                a >= today - Days::days(RETENTION),
                "nothing past retention: {a}"
            );
            let mut d = a;
            while d <= b {
                covered.push(d);
                d += Days::days(1);
            }
        }
        covered.sort();
        let expected: Vec<NaiveDate> = (1..=RETENTION)
            .rev()
            .map(|b| today - Days::days(b))
            .collect();
        assert_eq!(covered, expected, "every day asked exactly once");
    }

    // Analysts' views agree with the sandbox for a whole ISO week and with the daily table.
    let today = control.rc_today("chat").expect("workspace");
    let monday = {
        let mut d = today - Days::days(14);
        while d.format("%u").to_string() != "1" {
            d -= Days::days(1);
        }
        d
    };
    let mut week_users: Vec<String> = (0..7)
        .flat_map(|i| control.rc_truth("chat", monday + Days::days(i)))
        .collect();
    week_users.sort();
    week_users.dedup();
    let wau: (i32, i32) = sqlx::query_as(
        "SELECT active_users, days_collected FROM rollcall.rc_weekly_active_users WHERE account = 'chat' AND week_start = $1",
    )
    .bind(monday)
    .fetch_one(&db.pool)
    .await
    .expect("a WAU row for a collected week");
    assert_eq!(wau, (week_users.len() as i32, 7));
    let dau_mismatch: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rollcall.rc_daily_active_users v JOIN rollcall.rc_active_users t USING (account, day)
          WHERE v.active_users <> t.users",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(dau_mismatch, 0);
    let months: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rollcall.rc_monthly_active_users WHERE account = 'nychat' AND active_users > 0",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(months >= 2, "44 days span at least two months");

    let before: Vec<_> = [snapshot(db, "chat").await, snapshot(db, "nychat").await].to_vec();
    control.clear_requests();
    let second = app.collect_all().await;
    assert!(second.all_complete(), "second collect: {second:?}");
    let after: Vec<_> = [snapshot(db, "chat").await, snapshot(db, "nychat").await].to_vec();
    assert_eq!(before, after, "a replay adds and changes nothing");
    for spec in &specs {
        let tz: chrono_tz::Tz = spec.timezone.parse().expect("zone");
        let today = control.rc_today(&spec.name).expect("workspace");
        let requests = rc_requests(&control, &spec.name);
        assert!(
            (1..=2).contains(&requests.len()),
            "{}: the lookback lies in one or two windows, got {} requests",
            spec.name,
            requests.len()
        );
        for r in &requests {
            let (a, b) = requested_days(r, tz);
            assert!(
                b == today - Days::days(1) || b >= today - Days::days(4),
                "{a}..{b}"
            );
            assert!(
                a > today - Days::days(4 + 7),
                "only windows holding lookback days: {a}..{b}"
            );
        }
    }
    eprintln!("first run of two workspaces: {first_secs:.2} s");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lookback_day_gains_users_and_a_final_day_never_changes() {
    let spec = RocketChatWorkspaceSpec::new("chat", "America/New_York");
    let sandbox = rc_sandbox(vec![spec.clone()]).await;
    let control = sandbox.control();
    let app = TestApp::new(sandbox)
        .await
        .rocketchat(std::slice::from_ref(&spec));
    let db = &app.db;

    let first = app.collect_all().await;
    assert!(first.all_complete(), "first collect: {first:?}");
    let (stored_before, counts_before) = snapshot(db, "chat").await;

    let today = control.rc_today("chat").expect("workspace");
    let late = [today - Days::days(1), today - Days::days(4)];
    for day in late {
        assert!(control.rc_add_user("chat", day, "lateAggregatedUser1"));
    }
    // Every final day a re-walked window can hold (its first day is at most 10 days back), plus an old
    // one: the server forgets them; rollcall must not.
    let dropped: Vec<NaiveDate> = (5..=10)
        .chain([30])
        .map(|b| today - Days::days(b))
        .collect();
    for day in &dropped {
        assert!(control.rc_clear_day("chat", *day));
        assert_eq!(
            counts_before.get(day).map(|c| c.1),
            Some(true),
            "{day} is final"
        );
    }
    control.clear_requests();

    let second = app.collect_all().await;
    assert!(second.all_complete(), "second collect: {second:?}");
    let (stored_after, counts_after) = snapshot(db, "chat").await;
    for day in late {
        assert!(
            stored_after[&day].contains(&"lateAggregatedUser1".to_string()),
            "{day} gained its late user"
        );
        assert_eq!(
            counts_after[&day].0,
            control.rc_truth("chat", day).len() as i32
        );
    }
    for day in &dropped {
        assert_eq!(
            stored_after.get(day),
            stored_before.get(day),
            "{day}: users kept"
        );
        assert_eq!(
            counts_after.get(day),
            counts_before.get(day),
            "{day}: count kept"
        );
    }
    let untouched: Vec<_> = counts_after
        .iter()
        .filter(|(d, _)| !late.contains(d))
        .collect();
    let expected: Vec<_> = counts_before
        .iter()
        .filter(|(d, _)| !late.contains(d))
        .collect();
    assert_eq!(untouched, expected, "nothing else changed");
    let requests = rc_requests(&control, "chat");
    assert!(
        (1..=2).contains(&requests.len()),
        "{} requests",
        requests.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_run_then_rerun_is_exact() {
    let spec = RocketChatWorkspaceSpec::new("chat", "UTC");
    let sandbox = rc_sandbox(vec![spec.clone()]).await;
    let control = sandbox.control();
    let app = TestApp::new(sandbox)
        .await
        .rocketchat(std::slice::from_ref(&spec));
    let db = &app.db;
    // Two windows are answered, the third hangs until the process is killed.
    control.add_fault(rc_fault("chat", FaultKind::Delay { ms: 0 }).times(2));
    control.add_fault(rc_fault("chat", FaultKind::Hang).times(1));

    let config = app.write_config();
    let mut child = rollcall(&config.path, &["collect"]).spawn().expect("spawn");
    let hung = control
        .wait_for_request(
            |r| r.endpoint == Endpoint::RcActiveUsers && r.status == 0,
            Duration::from_secs(60),
        )
        .await;
    assert!(hung.is_some(), "rollcall reached the third window");
    child.start_kill().expect("SIGKILL");
    let _ = child.wait().await;

    let states: Vec<(String,)> = sqlx::query_as(
        "SELECT state FROM rollcall.collection_windows WHERE account = 'chat' ORDER BY window_start",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let states: Vec<&str> = states.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        &states[..3],
        ["complete", "complete", "running"],
        "{states:?}"
    );
    assert!(states[3..].iter().all(|s| *s == "pending"), "{states:?}");

    control.clear_faults();
    let rerun = app.collect_all().await;
    assert!(rerun.all_complete(), "rerun: {rerun:?}");
    rc_assert_mirror(&db.pool, &control, "chat", RETENTION).await;
}

// Logs captured for this test alone (see `with_logs`).
#[test]
fn each_refusal_is_named_writes_nothing_and_is_not_retried() {
    with_logs("info", |logs| async move {
        let good = RocketChatWorkspaceSpec::new("good", "UTC");
        let badtoken = RocketChatWorkspaceSpec::new("badtoken", "UTC");
        let noperm = RocketChatWorkspaceSpec {
            permitted: false,
            ..RocketChatWorkspaceSpec::new("noperm", "UTC")
        };
        let nolicense = RocketChatWorkspaceSpec {
            licensed: false,
            ..RocketChatWorkspaceSpec::new("nolicense", "UTC")
        };
        let sandbox = rc_sandbox(vec![
            good.clone(),
            badtoken.clone(),
            noperm.clone(),
            nolicense.clone(),
        ])
        .await;
        let control = sandbox.control();
        let wrong_token = RocketChatWorkspaceSpec {
            auth_token: "not-the-token".into(),
            ..badtoken.clone()
        };
        let wrong_url = RocketChatWorkspaceSpec::new("nosuchworkspace", "UTC");
        let app = TestApp::new(sandbox).await.rocketchat(&[
            good,
            wrong_token,
            noperm,
            nolicense,
            wrong_url,
        ]);
        let db = &app.db;

        let check = app.cli(&["check"]).await;
        assert_eq!(check.code, 1, "check: {}", check.output());
        let shown = check.output();
        for needle in [
            "rocketchat[0] \"good\": credentials, permission and license accepted",
            "rocketchat[1].user_id and rocketchat[1].auth_token",
            "view-engagement-dashboard",
            "license",
            "rocketchat[4].url",
        ] {
            assert!(
                shown.contains(needle),
                "check output names {needle:?}:\n{shown}"
            );
        }
        assert!(
            !shown.contains("not-the-token") && !shown.contains("pat-s3cr3t"),
            "no secret shown"
        );
        control.clear_requests();

        let collect = app.collect_all().await;
        assert!(!collect.all_complete(), "collect: {collect:?}");
        rc_assert_mirror(&db.pool, &control, "good", RETENTION).await;
        let expectations = [
            (
                "badtoken",
                "rocketchat[1].user_id and rocketchat[1].auth_token",
            ),
            ("noperm", "view-engagement-dashboard"),
            ("nolicense", "engagement-dashboard license"),
            ("nosuchworkspace", "check rocketchat[4].url"),
        ];
        for (workspace, named) in expectations {
            assert_eq!(
                rc_requests(&control, workspace).len(),
                1,
                "{workspace}: one request, no retry, no further window requested"
            );
            let rows: i64 = sqlx::query_scalar(
                "SELECT (SELECT count(*) FROM rollcall.rc_active_users WHERE account = $1)
                      + (SELECT count(*) FROM rollcall.rc_active_user_days WHERE account = $1)",
            )
            .bind(workspace)
            .fetch_one(&db.pool)
            .await
            .unwrap();
            assert_eq!(rows, 0, "{workspace}: nothing written");
            let errors: Vec<(String, Option<String>)> = sqlx::query_as(
                "SELECT state, last_error FROM rollcall.collection_windows WHERE account = $1 AND state <> 'pending'",
            )
            .bind(workspace)
            .fetch_all(&db.pool)
            .await
            .unwrap();
            assert!(!errors.is_empty(), "{workspace}: a failed window");
            for (state, error) in errors {
                assert_eq!(state, "failed");
                let error = error.unwrap_or_default();
                assert!(error.contains(named), "{workspace}: {error}");
            }
        }
        assert!(
            !format!("{}{collect:?}", logs.text()).contains("not-the-token"),
            "no secret logged"
        );
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_dropped_connections_and_429s_are_retried_then_complete() {
    let spec = RocketChatWorkspaceSpec::new("chat", "UTC");
    let sandbox = rc_sandbox(vec![spec.clone()]).await;
    let control = sandbox.control();
    let app = TestApp::new(sandbox)
        .await
        .rocketchat(std::slice::from_ref(&spec));
    let db = &app.db;
    control.add_fault(rc_fault("chat", FaultKind::ServerError).times(1));
    control.add_fault(rc_fault("chat", FaultKind::Status {
            status: 429,
            body: r#"{"success":false,"error":"Error, too many requests. Please slow down. You must wait 1 seconds before trying this endpoint again. [error-too-many-requests]"}"#.into(),
        },
    ).times(1));
    // The first window's third attempt succeeds; the second window is cut off twice (max_retries = 2).
    control.add_fault(rc_fault("chat", FaultKind::Delay { ms: 0 }).times(1));
    control.add_fault(rc_fault("chat", FaultKind::DropConnection).times(1));
    control.add_fault(rc_fault("chat", FaultKind::TruncatedBody).times(1));

    let started = std::time::Instant::now();
    let collect = app.collect_all().await;
    assert!(collect.all_complete(), "collect: {collect:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the 429's wait was honoured"
    );
    rc_assert_mirror(&db.pool, &control, "chat", RETENTION).await;
    let statuses: Vec<u16> = rc_requests(&control, "chat")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(&statuses[..6], [500, 429, 200, 0, 200, 200], "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_contradicts_itself_writes_nothing_and_the_window_stays_incomplete() {
    let spec = RocketChatWorkspaceSpec::new("chat", "UTC");
    let sandbox = rc_sandbox(vec![spec.clone()]).await;
    let control = sandbox.control();
    let app = TestApp::new(sandbox)
        .await
        .rocketchat(std::slice::from_ref(&spec));
    let db = &app.db;
    let bodies = [
        (r#"{"success":false,"month":[]}"#, "success"),
        (
            r#"{"success":true,"month":[{"day":1,"month":1,"year":1999,"users":1,"usersList":["a"]}]}"#,
            "outside the requested days",
        ),
    ];
    for (body, _) in &bodies {
        control.add_fault(
            rc_fault(
                "chat",
                FaultKind::Status {
                    status: 200,
                    body: (*body).into(),
                },
            )
            .times(1),
        );
    }

    let first = app.collect_all().await;
    assert!(!first.all_complete(), "collect: {first:?}");
    let windows: Vec<(NaiveDate, NaiveDate, String, Option<String>)> = sqlx::query_as(
        "SELECT window_start, window_end, state, last_error FROM rollcall.collection_windows
          WHERE account = 'chat' ORDER BY window_start",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    for (i, (_, reason)) in bodies.iter().enumerate() {
        let (start, end, state, error) = &windows[i];
        assert_eq!(state, "failed");
        assert!(
            error.as_deref().unwrap_or_default().contains(reason),
            "{error:?}"
        );
        let rows: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM rollcall.rc_active_users WHERE account = 'chat' AND day BETWEEN $1 AND $2",
        )
        .bind(start)
        .bind(end)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(rows, 0, "nothing of {start}..{end} written");
    }
    assert!(windows[2..].iter().all(|w| w.2 == "complete"));

    let second = app.collect_all().await;
    assert!(second.all_complete(), "second collect: {second:?}");
    rc_assert_mirror(&db.pool, &control, "chat", RETENTION).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pacing_follows_the_servers_rate_limit_headers() {
    let spec = RocketChatWorkspaceSpec {
        rate_limit_calls: 3,
        rate_limit_window_ms: 1_500,
        ..RocketChatWorkspaceSpec::new("chat", "Europe/Berlin")
    };
    let sandbox = rc_sandbox(vec![spec.clone()]).await;
    let control = sandbox.control();
    let app = TestApp::new(sandbox)
        .await
        .rocketchat(std::slice::from_ref(&spec));
    let db = &app.db;

    // Someone else spent the route's budget: the first call draws a 429 and waits for X-RateLimit-Reset;
    // afterwards X-RateLimit-Remaining keeps rollcall below the limit.
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let response = http
            .get(format!(
                "{}/api/v1/engagement-dashboard/users/active-users?start=2024-01-01T00:00:00.000Z&end=2024-01-01T23:59:59.999Z",
                app.sandbox.rocketchat_url("chat")
            ))
            .header("X-User-Id", &spec.user_id)
            .header("X-Auth-Token", &spec.auth_token)
            .send()
            .await
            .expect("direct request");
        assert_eq!(response.status().as_u16(), 200);
        assert!(response.headers().contains_key("x-ratelimit-reset"));
    }
    control.clear_requests();
    let started = std::time::Instant::now();
    let collect = app.collect_all().await;
    let elapsed = started.elapsed();
    assert!(collect.all_complete(), "collect: {collect:?}");
    rc_assert_mirror(&db.pool, &control, "chat", RETENTION).await;
    let statuses: Vec<u16> = rc_requests(&control, "chat")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses[0], 429, "{statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        1,
        "after the first 429 the headers keep rollcall under the limit: {statuses:?}"
    );
    let windows = statuses.len() - 1;
    let min_intervals = (windows as u32).div_ceil(3) - 1;
    assert!(
        elapsed >= Duration::from_millis(1_500) * min_intervals,
        "{windows} calls at 3 per 1.5 s took {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_steady_limiter_spaces_calls_when_configured() {
    let spec = RocketChatWorkspaceSpec::new("chat", "UTC");
    let sandbox = rc_sandbox(vec![spec.clone()]).await;
    let control = sandbox.control();
    let mut app = TestApp::new(sandbox)
        .await
        .rocketchat(std::slice::from_ref(&spec));
    app.config.rocketchat[0].requests_per_minute = Some(600);
    let started = std::time::Instant::now();
    let collect = app.collect_all().await;
    assert!(collect.all_complete(), "collect: {collect:?}");
    let calls = rc_requests(&control, "chat").len() as u32;
    // 600 per minute is one call per 100 ms, without bursts.
    assert!(
        started.elapsed() >= Duration::from_millis(100) * (calls - 1),
        "{calls} calls in {:?}",
        started.elapsed()
    );
}

//! No reply the collector cannot prove may delete, finalize or wedge history: oversized bodies, a daily-limit
//! `Retry-After` a year ahead, nonsense OAuth lifetimes and session ids that look like path syntax. Collection
//! in-process, the real sandbox over HTTP, PostgreSQL, assertions on rows.

use crate::common::*;
use chrono::{DateTime, Utc};
use rollcall_sandbox::{Endpoint, FaultKind, FaultRule, ReportType};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// The latest end a daily-limit pause begun now may have: the next 00:00 UTC plus the 5-minute margin.
fn latest_pause() -> DateTime<Utc> {
    let midnight = (Utc::now().date_naive() + chrono::Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    midnight + chrono::Duration::minutes(5)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_page_fails_its_windows_by_name_and_writes_nothing_of_them() {
    let specs = vec![zoom_account("acme", 60)];
    let mut app = TestApp::new(sandbox(specs.clone()).await)
        .await
        .zoom(&specs, 300);
    app.config.http.max_body_mib = 1;
    let (db, control) = (&app.db, app.control());
    // Every active report page comes padded to 3 MiB; the inactive ones are served as they are.
    control.add_fault(
        FaultRule::on(
            Endpoint::ReportUsers,
            FaultKind::OversizedBody { bytes: 3 << 20 },
        )
        .report_type(ReportType::Active),
    );
    let outcome = app.collect_all().await;
    assert!(!outcome.all_complete(), "{outcome:?}");

    assert!(
        control
            .requests()
            .iter()
            .any(|r| r.endpoint == Endpoint::ReportUsers && r.status == 200),
        "the oversized pages were served"
    );
    let windows = window_states(&db.pool, "acme").await;
    let months = reachable_months();
    for (month, scope, state, error) in &windows {
        if !months.contains(month) {
            continue;
        }
        match scope.as_str() {
            "active" => {
                assert_eq!(state, "failed", "{month} active");
                let error = error.as_deref().unwrap_or_default();
                assert!(
                    error.contains("body larger than http.max_body_mib = 1 MiB"),
                    "{month}: {error}"
                );
            }
            _ => assert_eq!(state, "complete", "{month} {scope}: {error:?}"),
        }
    }
    let active_rows: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM rollcall.zoom_host_report_users WHERE report_type = 'active')
              + (SELECT count(*) FROM rollcall.zoom_host_reports WHERE report_type = 'active')",
    )
    .fetch_one(&db.pool)
    .await
    .expect("count");
    assert_eq!(active_rows, 0, "nothing of an oversized page is written");
    for month in months {
        let truth = control.report_truth(&specs[0].account_id, month, ReportType::Inactive);
        let stored = stored_users(&db.pool, "acme", month, "inactive").await;
        assert_eq!(
            stored.len() as u64,
            truth.total_records,
            "{month}: the other windows are complete"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_rocketchat_body_fails_its_window_by_name() {
    let spec = rollcall_sandbox::RocketChatWorkspaceSpec::new("chat", "UTC");
    let mut app = TestApp::new(rc_sandbox(vec![spec.clone()]).await)
        .await
        .rocketchat(&[spec]);
    app.config.http.max_body_mib = 1;
    // One window at a time, so the three padded answers are one window's request and its retries.
    app.config.collector.windows_in_flight = 1;
    let (db, control) = (&app.db, app.control());
    // The first request and its two retries (the test config's max_retries) come padded to 2 MiB.
    control.add_fault(
        FaultRule::on(
            Endpoint::RcActiveUsers,
            FaultKind::OversizedBody { bytes: 2 << 20 },
        )
        .times(3),
    );
    let outcome = app.collect_all().await;
    assert!(!outcome.all_complete(), "{outcome:?}");
    let windows: Vec<(chrono::NaiveDate, chrono::NaiveDate, String, Option<String>)> =
        sqlx::query_as(
            "SELECT window_start, window_end, state, last_error FROM rollcall.collection_windows
              WHERE account = 'chat'",
        )
        .fetch_all(&db.pool)
        .await
        .expect("windows");
    let failed: Vec<_> = windows.iter().filter(|w| w.2 == "failed").collect();
    assert_eq!(failed.len(), 1, "{windows:?}");
    let (start, end, _, error) = failed[0];
    assert!(
        error
            .as_deref()
            .unwrap_or_default()
            .contains("body larger than http.max_body_mib = 1 MiB"),
        "{error:?}"
    );
    assert!(
        windows.iter().all(|w| w.2 == "failed" || w.2 == "complete"),
        "the other windows complete: {windows:?}"
    );
    let written: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rollcall.rc_active_users WHERE account = 'chat' AND day BETWEEN $1 AND $2",
    )
    .bind(start)
    .bind(end)
    .fetch_one(&db.pool)
    .await
    .expect("count");
    assert_eq!(written, 0, "nothing of the oversized window is written");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daily_limit_a_year_ahead_pauses_only_until_the_next_reset() {
    let specs = vec![zoom_account("acme", 20)];
    let app = TestApp::new(sandbox(specs.clone()).await)
        .await
        .zoom(&specs, 300);
    let (db, control) = (&app.db, app.control());
    let a_year = Utc::now() + chrono::Duration::days(365);
    control.add_fault(FaultRule::on(
        Endpoint::ReportUsers,
        FaultKind::RateLimitDaily {
            retry_after: Some(a_year),
        },
    ));
    let before = Utc::now();
    let outcome = app.collect_all().await;
    assert!(!outcome.all_complete(), "{outcome:?}");
    let until: DateTime<Utc> =
        sqlx::query_scalar("SELECT until FROM rollcall.account_pauses WHERE account = 'acme'")
            .fetch_one(&db.pool)
            .await
            .expect("the pause is stored");
    assert!(
        until > before && until <= latest_pause(),
        "paused until {until}, not a year"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_later_shorter_pause_replaces_a_longer_one_and_none_outlives_the_reset() {
    let db = TestDb::create().await;
    rollcall::store::MIGRATOR
        .run(&db.pool)
        .await
        .expect("migrate");
    let stored = || async {
        sqlx::query_scalar::<_, DateTime<Utc>>(
            "SELECT until FROM rollcall.account_pauses WHERE account = 'acme'",
        )
        .fetch_one(&db.pool)
        .await
        .expect("a pause")
    };
    let a_year = Utc::now() + chrono::Duration::days(365);
    rollcall::store::pauses::pause(&db.pool, "acme", a_year, "daily limit")
        .await
        .expect("pause");
    let long = stored().await;
    assert!(long <= latest_pause(), "clamped on the way in: {long}");

    let shorter = Utc::now() + chrono::Duration::seconds(90);
    rollcall::store::pauses::pause(&db.pool, "acme", shorter, "daily limit again")
        .await
        .expect("pause");
    let now_stored = stored().await;
    assert!(
        (now_stored - shorter.min(latest_pause()))
            .num_milliseconds()
            .abs()
            < 5,
        "the later, shorter pause wins: {now_stored} vs {shorter}"
    );
    assert!(now_stored < long || long <= shorter);
}

/// The run's result (an error for a panicked task, where the binary would have printed "panicked"), the
/// token mints and the pages requested.
async fn collect_with_expires_in(
    expires_in: Value,
) -> (Result<RunReport, CollectError>, u64, usize) {
    let specs = vec![zoom_account("acme", 60)];
    let app = TestApp::new(sandbox(specs.clone()).await)
        .await
        .zoom(&specs, 10);
    let control = app.control();
    control.add_fault(FaultRule::on(
        Endpoint::OauthToken,
        FaultKind::ExpiresIn { expires_in },
    ));
    let outcome = app.try_collect(Selection::default()).await;
    if outcome.as_ref().is_ok_and(RunReport::all_complete) {
        assert_mirror(app.pool(), &control, &specs[0]).await;
    }
    let pages = control
        .requests()
        .iter()
        .filter(|r| r.endpoint == Endpoint::ReportUsers)
        .count();
    (outcome, control.token_mints("acme-account"), pages)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_zero_or_one_second_token_lifetime_does_not_mint_before_every_request() {
    for expires_in in [json!(0), json!(1)] {
        let (outcome, mints, pages) = collect_with_expires_in(expires_in.clone()).await;
        assert!(
            outcome.as_ref().is_ok_and(RunReport::all_complete),
            "{expires_in}: {outcome:?}"
        );
        assert!(
            pages > 20,
            "{expires_in}: a multi-page collection ({pages})"
        );
        assert!(
            (1..=2).contains(&mints),
            "{expires_in}: {mints} mints for {pages} pages"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_or_odd_token_lifetime_neither_panics_nor_stops_collection() {
    for expires_in in [
        json!(1e30),
        json!(u64::MAX),
        json!(-3600),
        json!("3600"),
        json!("forever"),
    ] {
        let (outcome, mints, _) = collect_with_expires_in(expires_in.clone()).await;
        assert!(
            !matches!(outcome, Err(CollectError::Task(_))),
            "{expires_in}: panicked: {outcome:?}"
        );
        assert!(
            outcome.as_ref().is_ok_and(RunReport::all_complete),
            "{expires_in}: {outcome:?}"
        );
        assert!((1..=2).contains(&mints), "{expires_in}: {mints} mints");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn session_ids_are_addressed_as_themselves_or_fail_their_window_by_name() {
    let specs = vec![sdk_account("studio", 3)];
    let sandbox = sdk_sandbox(specs.clone()).await;
    let control = sandbox.control();
    let awkward = [".", "..", "a%2Fb", "%", "x/../y", "a/./b"];
    let nul = "nul\0id";
    for id in awkward.iter().chain([&nul]) {
        assert!(control.add_sdk_session(&specs[0].api_key, id));
    }
    let app = TestApp::new(sandbox).await.videosdk(&specs, 4);
    let db = &app.db;
    let outcome = app.collect_all().await;
    assert!(
        !outcome.all_complete(),
        "the NUL session's window fails: {outcome:?}"
    );

    for id in awkward {
        let want: BTreeSet<String> = control
            .sdk_session_users(&specs[0].api_key, id)
            .iter()
            .map(Value::to_string)
            .collect();
        assert!(!want.is_empty(), "{id:?} has users in the sandbox");
        let got: BTreeSet<String> = sqlx::query_scalar::<_, Value>(
            "SELECT raw FROM rollcall.zoom_sdk_session_users WHERE account = 'studio' AND session_id = $1",
        )
        .bind(id)
        .fetch_all(&db.pool)
        .await
        .expect("users")
        .iter()
        .map(Value::to_string)
        .collect();
        assert_eq!(got, want, "{id:?}: its own users, under its own id");
    }

    // The sandbox was asked for exactly the sessions it serves, each named as itself.
    let served: BTreeSet<String> = day_months()
        .into_iter()
        .flat_map(|(month, from)| sdk_sessions_from(&control, &specs[0].api_key, month, from))
        .filter_map(|s| s["id"].as_str().map(str::to_string))
        .collect();
    let users_requests: Vec<_> = control
        .requests()
        .into_iter()
        .filter(|r| r.endpoint == Endpoint::SdkSessionUsers)
        .collect();
    assert!(
        users_requests.iter().all(|r| r.status == 200),
        "every users request named a session the API knows"
    );
    let asked: BTreeSet<String> = users_requests
        .iter()
        .map(|r| {
            r.session_id
                .clone()
                .expect("a session id read from the path")
        })
        .collect();
    for id in awkward {
        assert!(asked.contains(id), "{id:?} was requested as itself");
    }
    assert!(!asked.contains(nul), "a NUL id is never requested");
    assert!(
        asked.iter().all(|id| served.contains(id)),
        "no request for another session: {:?}",
        asked.difference(&served).collect::<Vec<_>>()
    );

    let stored_nul = nul.replace('\0', "\u{FFFD}");
    let windows: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT scope, state, last_error FROM rollcall.collection_windows
          WHERE account = 'studio' AND stream = 'zoom_sdk_session_users'",
    )
    .fetch_all(&db.pool)
    .await
    .expect("windows");
    assert!(windows.len() > awkward.len(), "{windows:?}");
    for (scope, state, error) in &windows {
        if *scope == stored_nul {
            assert_eq!(state, "failed");
            let error = error.as_deref().unwrap_or_default();
            assert!(
                error.contains("cannot be addressed in a URL") && error.contains("U+FFFD"),
                "{error}"
            );
        } else {
            assert_eq!(state, "complete", "{scope:?}: {error:?}");
        }
    }
    let nul_users: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rollcall.zoom_sdk_session_users WHERE session_id = $1",
    )
    .bind(&stored_nul)
    .fetch_one(&db.pool)
    .await
    .expect("count");
    assert_eq!(nul_users, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_token_handed_back_again_fails_its_window_instead_of_walking_in_circles() {
    // 24 active users, 10 a page: three pages a month, so page 2 hands out a token of its own.
    let specs = vec![zoom_account("acme", 60)];
    let mut app = TestApp::new(sandbox(specs.clone()).await)
        .await
        .zoom(&specs, 10);
    // Were the loop not caught, the walk would stop here at the latest instead of hanging the test.
    app.config.zoom[0].limits.daily_requests = Some(400);
    let (db, control) = (&app.db, app.control());
    control.add_fault(
        FaultRule::on(Endpoint::ReportUsers, FaultKind::EchoPageToken)
            .report_type(ReportType::Active)
            .page(2),
    );
    let outcome = app.collect_all().await;
    assert!(!outcome.all_complete(), "{outcome:?}");

    let months = reachable_months();
    let requests = control.requests();
    for month in &months {
        let active_page = |page: u32| {
            requests
                .iter()
                .filter(|r| r.endpoint == Endpoint::ReportUsers && r.page == Some(page))
                .filter(|r| r.query.get("type").map(String::as_str) == Some("active"))
                .filter(|r| r.query.get("from") == Some(&month.to_string()))
                .count()
        };
        assert_eq!(
            (active_page(2), active_page(3)),
            (1, 0),
            "{month}: the echoed token is followed once, never again"
        );
    }
    for (month, scope, state, error) in window_states(&db.pool, "acme").await {
        if !months.contains(&month) || !["active", "inactive"].contains(&scope.as_str()) {
            continue;
        }
        let error = error.unwrap_or_default();
        match scope.as_str() {
            "active" => {
                assert_eq!(state, "failed", "{month} active");
                assert!(error.contains("already followed"), "{month}: {error}");
            }
            _ => assert_eq!(state, "complete", "{month} {scope}: {error}"),
        }
    }

    // A server that pages properly again is walked from page 1 and mirrored exactly.
    control.clear_faults();
    let again = app.collect_all().await;
    assert!(again.all_complete(), "{again:?}");
    assert_mirror(&db.pool, &control, &specs[0]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_after_no_clock_can_hold_is_retried_without_panicking_or_holding_a_lease() {
    let specs = vec![zoom_account("acme", 60)];
    let mut app = TestApp::new(sandbox(specs.clone()).await)
        .await
        .zoom(&specs, 10);
    app.config.collector.lease_secs = 3;
    let (db, control) = (&app.db, app.control());
    let hostile = [
        "99999999999999",
        "-99999999999999",
        "9223372036854775807",
        "soon",
    ];
    // One hostile 429 per request at most (a page, a report type): its one retry goes through, whatever
    // order the windows are walked in.
    let places = [
        (2, ReportType::Active),
        (2, ReportType::Inactive),
        (3, ReportType::Active),
        (3, ReportType::Inactive),
    ];
    for (value, (page, report_type)) in hostile.into_iter().zip(places) {
        let kind = FaultKind::RateLimitQpsRetryAfterText {
            value: value.to_owned(),
        };
        let rule = FaultRule::on(Endpoint::ReportUsers, kind)
            .page(page)
            .report_type(report_type)
            .times(1);
        control.add_fault(rule);
    }
    let outcome = app.collect_all().await;
    assert!(outcome.all_complete(), "each 429 is retried: {outcome:?}");
    let refused = control
        .requests()
        .iter()
        .filter(|r| r.endpoint == Endpoint::ReportUsers && r.status == 429)
        .count();
    assert_eq!(refused, hostile.len(), "every hostile header was served");
    assert_mirror(&db.pool, &control, &specs[0]).await;
    let held: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rollcall.collection_windows WHERE lease_until > now() OR state = 'running'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("leases");
    assert_eq!(held, 0, "no window is left running or leased after the run");
}

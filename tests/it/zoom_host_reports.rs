//! Zoom host reports end to end: collection in-process, the real sandbox over HTTP, a real PostgreSQL; the
//! real `rollcall` binary where a process is killed or the CLI's exit code is the point.

use crate::common::*;
use rollcall_sandbox::{Endpoint, FaultKind, FaultRule, ReportType};
use std::time::Duration;

fn fault(kind: FaultKind) -> FaultRule {
    FaultRule::on(Endpoint::ReportUsers, kind)
}

#[tokio::test(flavor = "multi_thread")]
async fn full_collection_mirrors_the_sandbox_and_a_second_run_changes_nothing() {
    let specs = vec![zoom_account("acme", 730), zoom_account("empty", 0)];
    let app = TestApp::new(sandbox(specs.clone()).await)
        .await
        .zoom(&specs, 100);
    let (db, control) = (&app.db, app.control());

    let first = app.collect_all().await;
    assert!(first.all_complete(), "first collect: {first:?}");
    for spec in &specs {
        assert_mirror(app.pool(), &control, spec).await;
    }
    let walked_pages = control
        .requests()
        .iter()
        .filter(|r| {
            r.endpoint == Endpoint::ReportUsers && r.account_id.as_deref() == Some("acme-account")
        })
        .count();
    assert!(
        walked_pages > reachable_months().len() * 2,
        "several pages per month were walked"
    );
    assert!(control
        .requests()
        .iter()
        .filter(|r| r.endpoint == Endpoint::ReportUsers)
        .all(|r| r.query.contains_key("type")
            && r.query.get("page_size").map(String::as_str) == Some("100")));
    assert!(
        control.token_mints("acme-account") <= 1,
        "one cached token serves the whole run"
    );

    let before: Vec<(String, String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "SELECT account, user_id, first_seen_at FROM rollcall.zoom_host_report_users ORDER BY 1, 2, 3",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let finals: Vec<(chrono::NaiveDate,)> = sqlx::query_as(
        "SELECT DISTINCT window_start FROM rollcall.collection_windows WHERE is_final AND state = 'complete'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(!finals.is_empty(), "past months are final after their walk");
    control.clear_requests();

    let second = app.collect_all().await;
    assert!(second.all_complete(), "second collect: {second:?}");
    for spec in &specs {
        assert_mirror(app.pool(), &control, spec).await;
    }
    let after: Vec<(String, String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "SELECT account, user_id, first_seen_at FROM rollcall.zoom_host_report_users ORDER BY 1, 2, 3",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(before, after, "rows and their first_seen_at are unchanged");
    for request in control
        .requests()
        .iter()
        .filter(|r| r.endpoint == Endpoint::ReportUsers)
    {
        let from = request.query.get("from").cloned().unwrap_or_default();
        assert!(
            !finals.iter().any(|(month,)| month.to_string() == from),
            "final month {from} was requested again"
        );
    }

    let status = app.cli(&["status", "--json"]).await;
    assert_eq!(status.code, 0, "{}", status.output());
    let parsed: serde_json::Value =
        serde_json::from_str(&status.stdout).expect("status --json is JSON");
    assert!(parsed
        .as_array()
        .is_some_and(|rows| rows.iter().any(|r| r["account"] == "acme")));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_window_then_rerun_is_exact() {
    sigkill_then_rerun(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_window_with_an_expired_page_token_is_exact() {
    sigkill_then_rerun(true).await;
}

async fn sigkill_then_rerun(expire_tokens: bool) {
    let specs = vec![zoom_account("acme", 900)];
    let app = TestApp::new(sandbox(specs.clone()).await)
        .await
        .zoom(&specs, 50);
    let (db, control) = (&app.db, app.control());
    let config = app.write_config();
    control.add_fault(fault(FaultKind::Hang).page(3).times(1));

    // One window at a time: this test follows one window's checkpoint and token (the chaos test in
    // resilience.rs kills concurrent walks).
    let mut child = rollcall(&config.path, &["collect"])
        .env("ROLLCALL__COLLECTOR__WINDOWS_IN_FLIGHT", "1")
        .spawn()
        .expect("spawn");
    let hung = control
        .wait_for_request(
            |r| r.endpoint == Endpoint::ReportUsers && r.page == Some(3),
            Duration::from_secs(60),
        )
        .await;
    assert!(hung.is_some(), "rollcall reached page 3");
    // The walker asks for the next page while it commits the one before: wait (bounded) for page 2's
    // commit, so the kill lands with exactly two pages checkpointed however loaded the machine is.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        let checkpointed: Option<i32> = sqlx::query_scalar(
            "SELECT max(pages) FROM rollcall.collection_windows
              WHERE account = 'acme' AND stream = 'zoom_host_report' AND state = 'running'",
        )
        .fetch_one(&db.pool)
        .await
        .expect("poll the checkpoint");
        if checkpointed >= Some(2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.start_kill().expect("SIGKILL");
    let _ = child.wait().await;

    let (state, pages): (String, i32) = sqlx::query_as(
        "SELECT state, pages FROM rollcall.collection_windows
          WHERE account = 'acme' AND stream = 'zoom_host_report' AND state = 'running'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("one window is left running");
    assert_eq!(
        (state.as_str(), pages),
        ("running", 2),
        "two pages were checkpointed"
    );

    control.clear_faults();
    if expire_tokens {
        control.expire_page_tokens();
    }
    // The rerun is another process, as in production: the killed one's lease is taken over at once.
    let rerun = app.collect_all().await;
    assert!(rerun.all_complete(), "rerun: {rerun:?}");
    assert_mirror(app.pool(), &control, &specs[0]).await;
    if expire_tokens {
        assert!(control
            .requests()
            .iter()
            .any(|r| r.endpoint == Endpoint::ReportUsers && r.status == 400));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_500_on_a_middle_page_leaves_the_window_incomplete_until_the_next_run() {
    fault_on_middle_page(FaultKind::ServerError, "500").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_truncated_body_on_a_middle_page_leaves_the_window_incomplete_until_the_next_run() {
    fault_on_middle_page(FaultKind::TruncatedBody, "malformed").await;
}

async fn fault_on_middle_page(kind: FaultKind, error_mentions: &str) {
    let specs = vec![zoom_account("acme", 500)];
    let app = TestApp::new(sandbox(specs.clone()).await)
        .await
        .zoom(&specs, 100);
    let (db, control) = (&app.db, app.control());
    control.add_fault(fault(kind).page(2).report_type(ReportType::Inactive));

    let first = app.collect_all().await;
    assert!(!first.all_complete(), "{first:?}");
    let states = window_states(&db.pool, "acme").await;
    let inactive: Vec<_> = states
        .iter()
        .filter(|(start, scope, _, _)| scope == "inactive" && reachable_months().contains(start))
        .collect();
    assert!(!inactive.is_empty());
    for (start, _, state, error) in &inactive {
        assert_eq!(state, "failed", "{start}");
        let error = error.clone().unwrap_or_default();
        assert!(error.contains(error_mentions), "{start}: {error}");
    }
    let completed_inactive: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rollcall.zoom_host_reports WHERE account = 'acme' AND report_type = 'inactive'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        completed_inactive, 0,
        "no failed month has its totals written"
    );

    control.clear_faults();
    let second = app.collect_all().await;
    assert!(second.all_complete(), "{second:?}");
    assert_mirror(app.pool(), &control, &specs[0]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clamped_from_leaves_the_window_failed() {
    let specs = vec![zoom_account("acme", 50)];
    let app = TestApp::new(sandbox(specs.clone()).await)
        .await
        .zoom(&specs, 300);
    let (db, control) = (&app.db, app.control());
    control.add_fault(fault(FaultKind::ClampFrom { days: 3 }).report_type(ReportType::Active));
    let outcome = app.collect_all().await;
    assert!(!outcome.all_complete(), "{outcome:?}");
    for (start, scope, state, error) in window_states(&db.pool, "acme").await {
        if !reachable_months().contains(&start) {
            continue;
        }
        if scope == "active" {
            assert_eq!(state, "failed", "{start}");
            assert!(error.unwrap_or_default().contains("clamped"));
        } else {
            assert_eq!(state, "complete", "{start}");
        }
    }
    let active_rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rollcall.zoom_host_report_users WHERE report_type = 'active'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(active_rows, 0, "nothing of a clamped page is written");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_who_becomes_active_ends_only_under_active() {
    let specs = vec![zoom_account("acme", 120)];
    let app = TestApp::new(sandbox(specs.clone()).await)
        .await
        .zoom(&specs, 50);
    let (db, control) = (&app.db, app.control());
    let first = app.collect_all().await;
    assert!(first.all_complete(), "{first:?}");

    let month = *reachable_months().last().expect("current month");
    let inactive = control.report_truth("acme-account", month, ReportType::Inactive);
    let mover = (0..120u64)
        .find(|i| {
            let id = control.user_id("acme-account", *i);
            inactive.users.iter().any(|u| u["id"] == id.as_str())
        })
        .expect("an inactive user this month");
    let mover_id = control.user_id("acme-account", mover);
    assert!(stored_users(&db.pool, "acme", month, "inactive")
        .await
        .contains_key(&mover_id));

    control.set_user_type("acme-account", month, mover, ReportType::Active);
    let second = app.collect_all().await;
    assert!(second.all_complete(), "{second:?}");
    assert!(stored_users(&db.pool, "acme", month, "active")
        .await
        .contains_key(&mover_id));
    assert!(!stored_users(&db.pool, "acme", month, "inactive")
        .await
        .contains_key(&mover_id));
    assert_mirror(app.pool(), &control, &specs[0]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_credential_fails_only_its_account() {
    let specs = vec![zoom_account("acme", 60), zoom_account("other", 60)];
    let mut wrong = specs.clone();
    wrong[1].client_secret = "not-the-secret".into();
    let app = TestApp::new(sandbox(specs.clone()).await)
        .await
        .zoom(&wrong, 300);
    let (db, control) = (&app.db, app.control());
    let outcome = app.collect_all().await;
    assert!(!outcome.all_complete(), "{outcome:?}");
    // What `collect` prints for a stopped stream.
    let stopped: String = outcome
        .outcomes
        .iter()
        .filter_map(|o| o.stopped.clone())
        .collect();
    assert!(stopped.contains("zoom[1].client_id"), "{outcome:?}");
    assert!(!format!("{outcome:?}").contains("not-the-secret"));
    assert_mirror(app.pool(), &control, &specs[0]).await;
    let other_rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rollcall.zoom_host_report_users WHERE account = 'other'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(other_rows, 0);

    let check = app.cli(&["check"]).await;
    assert_eq!(check.code, 1, "{}", check.output());
    assert!(check.stdout.contains("ok    zoom[0]"), "{}", check.stdout);
    assert!(check.stdout.contains("FAIL  zoom[1]"), "{}", check.stdout);
}

// Logs captured for this test alone (see `with_logs`).
#[test]
fn secrets_and_tokens_never_reach_the_output() {
    with_logs("trace", |logs| async move {
        let specs = vec![zoom_account("acme", 40)];
        let app = TestApp::new(sandbox(specs.clone()).await)
            .await
            .zoom(&specs, 300);
        let outcome = app.collect_all().await;
        assert!(outcome.all_complete(), "{outcome:?}");
        let output = format!("{}\n{outcome:?}", logs.text());
        assert!(output.contains("acme"), "the trace was captured");
        assert!(
            !output.contains(&specs[0].client_secret),
            "client secret leaked"
        );
        assert!(!output.contains("sbx."), "an access token leaked");
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_configs_exit_2_name_the_key_and_write_nothing() {
    let specs = vec![zoom_account("acme", 10)];
    let app = TestApp::new(sandbox(specs.clone()).await)
        .await
        .zoom(&specs, 300);
    let db = &app.db;
    let config = app.write_config();
    // What the typed config cannot hold: an unknown plan and a misspelt key, as a user might write them.
    let mut text = std::fs::read_to_string(&config.path).expect("read config");
    text.push_str(
        "[[zoom]]\nname = \"second\"\naccount_id = \"a\"\nclient_id = \"b\"\nclient_secret = \"hunter2-secret\"\nplan = \"gold\"\nclinet_id = \"typo\"\n",
    );
    std::fs::write(&config.path, text).expect("write config");
    for command in [&["collect"][..], &["migrate"], &["status"], &["check"]] {
        let outcome = run(&config.path, command).await;
        assert_eq!(outcome.code, 2, "{command:?}: {}", outcome.output());
        assert!(
            outcome.stderr.contains("zoom[1].plan"),
            "{}",
            outcome.stderr
        );
        assert!(
            outcome.stderr.contains("zoom[1].clinet_id"),
            "{}",
            outcome.stderr
        );
        assert!(!outcome.output().contains("hunter2-secret"));
    }
    assert!(!db.has_schema().await, "nothing was written");

    let bad_args = run(&config.path, &["collect", "--stream", "zoom_everything"]).await;
    assert_eq!(bad_args.code, 2);
    let bad_date = run(&config.path, &["backfill", "--from", "2026-13-01"]).await;
    assert_eq!(bad_date.code, 2);
    assert!(
        bad_date.stderr.contains("2026-13-01"),
        "{}",
        bad_date.stderr
    );
    assert!(!db.has_schema().await, "nothing was written");
}

#[tokio::test(flavor = "multi_thread")]
async fn backfill_refuses_by_name_what_zoom_no_longer_serves() {
    let specs = vec![zoom_account("acme", 30)];
    let app = TestApp::new(sandbox(specs.clone()).await)
        .await
        .zoom(&specs, 300);
    let (db, control) = (&app.db, app.control());
    let oldest = reachable_months()[0];
    let too_old = oldest
        .checked_sub_months(chrono::Months::new(3))
        .expect("date math");

    let backfill = Selection {
        from: Some(too_old),
        ..Selection::default()
    };
    // What `backfill` prints before it collects.
    let refused = collector::refused_by_horizon(&app.config, &backfill, too_old).join("\n");
    let outcome = app.collect(backfill).await;
    assert!(outcome.all_complete(), "{outcome:?}");
    assert!(
        refused.contains(&format!("--from {too_old}")) && refused.contains("acme"),
        "the refusal names the date and the account: {refused}"
    );
    let unreachable: Vec<(chrono::NaiveDate,)> = sqlx::query_as(
        "SELECT DISTINCT window_start FROM rollcall.collection_windows WHERE state = 'unreachable' ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        unreachable.len(),
        3,
        "the months from --from up to the horizon: {unreachable:?}"
    );
    assert_eq!(unreachable[0].0, too_old);
    assert!(
        control
            .requests()
            .iter()
            .filter(|r| r.endpoint == Endpoint::ReportUsers)
            .all(|r| r.status == 200),
        "no month beyond the horizon was requested"
    );
    assert_mirror(app.pool(), &control, &specs[0]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_access_token_expired_mid_walk_is_minted_again_once() {
    let specs = vec![zoom_account("acme", 400)];
    let app = TestApp::new(sandbox(specs.clone()).await)
        .await
        .zoom(&specs, 100);
    let control = app.control();
    // Page 2 of the first window is held back while the token is revoked, so page 3 meets a 401.
    control.add_fault(fault(FaultKind::Delay { ms: 300 }).page(2).times(1));
    let (outcome, ()) = tokio::join!(app.collect_all(), async {
        let held = control
            .wait_for_request(
                |r| r.endpoint == Endpoint::ReportUsers && r.page == Some(2),
                Duration::from_secs(30),
            )
            .await;
        assert!(held.is_some());
        control.expire_access_tokens();
    });
    assert!(outcome.all_complete(), "{outcome:?}");
    assert!(
        control.requests().iter().any(|r| r.status == 401),
        "the expired token was refused once"
    );
    assert_eq!(
        control.token_mints("acme-account"),
        2,
        "one re-mint, not one per request"
    );
    assert_mirror(app.pool(), &control, &specs[0]).await;
}

//! The engine walks several windows of an account at once, inside the account's own budget: collection
//! in-process, the real sandbox (with a reply latency, as real Zoom has) and PostgreSQL.

use crate::common::*;
use chrono::{DateTime, Utc};
use rollcall_sandbox::{Endpoint, FaultKind, FaultRule, SandboxConfig};
use std::collections::BTreeMap;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn windows_of_one_account_are_walked_at_once_with_each_windows_pages_in_order() {
    let specs = vec![zoom_account("acme", 600)];
    let sandbox = rollcall_sandbox::spawn(SandboxConfig {
        listen: "127.0.0.1:0".into(),
        seed: 7,
        zoom: specs.clone(),
        reply_latency_ms: 40,
        ..sandbox_defaults()
    })
    .await
    .expect("sandbox");
    let app = TestApp::new(sandbox).await.zoom(&specs, 50);
    let (db, control) = (&app.db, app.control());

    let outcome = app.collect_all().await;
    assert!(outcome.all_complete(), "{outcome:?}");
    assert_mirror(&db.pool, &control, &specs[0]).await;

    // Walks overlap: at some instant several windows of the one account were being walked.
    let spans: Vec<(DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT started_at, completed_at FROM rollcall.collection_windows
          WHERE stream = 'zoom_host_report' AND state = 'complete'",
    )
    .fetch_all(&db.pool)
    .await
    .expect("spans");
    let most_at_once = spans
        .iter()
        .map(|(start, _)| {
            spans
                .iter()
                .filter(|(s, e)| s <= start && start < e)
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(
        most_at_once >= 4,
        "{most_at_once} windows at once; {} windows",
        spans.len()
    );

    // Inside a window the pages follow the token chain: 1, 2, 3, ... in the order they were asked.
    let mut pages: BTreeMap<(String, String), Vec<u32>> = BTreeMap::new();
    for r in control
        .requests()
        .iter()
        .filter(|r| r.endpoint == Endpoint::ReportUsers)
    {
        let key = (
            r.query.get("type").cloned().unwrap_or_default(),
            r.query.get("from").cloned().unwrap_or_default(),
        );
        pages.entry(key).or_default().push(r.page.unwrap_or(0));
    }
    assert!(pages.len() >= 12, "{} windows requested", pages.len());
    for (window, asked) in &pages {
        let expected: Vec<u32> = (1..=asked.len() as u32).collect();
        assert_eq!(
            asked, &expected,
            "{window:?}: pages in token order, once each"
        );
    }
}

/// One account that never answers does not hold back another: the other's windows all complete while the
/// first is still waiting.
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_account_does_not_hold_back_another() {
    let specs = vec![zoom_account("stuck", 60), zoom_account("fine", 300)];
    let app = TestApp::new(sandbox(specs.clone()).await)
        .await
        .zoom(&specs, 50);
    let (db, control) = (&app.db, app.control());
    control
        .add_fault(FaultRule::on(Endpoint::ReportUsers, FaultKind::Hang).account("stuck-account"));
    // The run never ends while an account hangs: it is dropped (its tasks aborted) once the other
    // account is done.
    tokio::select! {
        report = app.collect_all() => panic!("the run ended while an account hangs: {report:?}"),
        () = fine_account_completes(db) => {}
    }
    let stuck_done: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rollcall.collection_windows
          WHERE account = 'stuck' AND stream = 'zoom_host_report' AND state = 'complete'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("count");
    assert_eq!(stuck_done, 0, "the stuck account is still waiting");
    assert_mirror(&db.pool, &control, &specs[1]).await;
}

async fn fine_account_completes(db: &TestDb) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut interval = tokio::time::interval(Duration::from_millis(200));
    loop {
        interval.tick().await;
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM rollcall.collection_windows
              WHERE account = 'fine' AND stream = 'zoom_host_report'
                AND state NOT IN ('complete', 'unreachable')",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap_or(i64::MAX);
        let planned: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM rollcall.collection_windows
              WHERE account = 'fine' AND stream = 'zoom_host_report'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap_or(0);
        if planned > 0 && open == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the fine account finished while the stuck one hangs"
        );
    }
}

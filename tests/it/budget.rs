//! Replicas share each account's budget: one replica at a time sends an account's requests (its lease), so
//! any number of `rollcall` processes together stay within the account's rate, and every request is
//! counted once in `rollcall.request_counts`, whoever sent it. (The achieved rate is measured by
//! `bench/run.sh replicas`; tests assert no timing.)

use crate::common::*;
use rollcall_sandbox::{Endpoint, FaultKind, FaultRule, ReportType};
use std::time::Duration;

/// Low enough that the pacer sets the pace; three processes at this rate each would draw 429s.
const HEAVY_PER_SECOND: u32 = 20;

/// An account whose Heavy limit the sandbox enforces, and an app collecting it at that limit.
async fn enforced_account(users: u64) -> (TestApp, rollcall_sandbox::ZoomAccountSpec) {
    let (mut app, spec) = app_on_enforced_heavy_limit("shared", users, 11, HEAVY_PER_SECOND).await;
    app.config.collector.lease_secs = 6;
    (app, spec)
}

/// Every API request the sandbox answered for the account (token mints are not API calls).
fn api_requests(
    control: &rollcall_sandbox::Control,
    account_id: &str,
) -> Vec<rollcall_sandbox::RequestRecord> {
    control
        .requests()
        .into_iter()
        .filter(|r| r.endpoint != Endpoint::OauthToken)
        .filter(|r| r.account_id.as_deref() == Some(account_id))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_on_one_account_stay_within_its_rate_and_count_every_request_once() {
    let (app, spec) = enforced_account(300).await;
    let (db, control) = (&app.db, app.control());
    let config = app.write_config();
    assert_eq!(run(&config.path, &["migrate"]).await.code, 0);

    let replicas: Vec<_> = (0..3)
        .map(|_| {
            rollcall(&config.path, &["collect"])
                .spawn()
                .expect("spawn replica")
        })
        .collect();
    for replica in replicas {
        let outcome = finish(replica).await;
        assert_eq!(outcome.code, 0, "{}", outcome.output());
    }

    let requests = api_requests(&control, &spec.account_id);
    let refused = requests.iter().filter(|r| r.status == 429).count();
    assert_eq!(
        refused,
        0,
        "429s with three replicas at {HEAVY_PER_SECOND}/s; answer times (ms): {:?}",
        requests.iter().map(|r| r.at_ms).collect::<Vec<_>>()
    );
    assert!(
        requests.len() > 2 * HEAVY_PER_SECOND as usize,
        "the collection spans more than two seconds of Heavy traffic ({} requests)",
        requests.len()
    );
    assert_mirror(&db.pool, &control, &spec).await;

    // Each request the sandbox saw is counted once, by whichever replica sent it, on today's row.
    let counted: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(requests), 0)::bigint FROM rollcall.request_counts
          WHERE account = $1 AND day = $2",
    )
    .bind(account_name(&spec))
    .bind(today())
    .fetch_one(&db.pool)
    .await
    .expect("request counts");
    assert_eq!(counted, requests.len() as i64);
    // `status` shows that sum (every replica's) against the Pro plan's daily pool, in text and JSON.
    let status = run(&config.path, &["status", "--json"]).await;
    assert_eq!(status.code, 0, "{}", status.output());
    let rows: Vec<serde_json::Value> = serde_json::from_str(&status.stdout).expect("status --json");
    let heavy = rows
        .iter()
        .find(|r| r["stream"] == "zoom_host_report")
        .map(|r| r["budget"].clone())
        .expect("the host report's row");
    assert_eq!(heavy["category"], "heavy", "{heavy}");
    assert_eq!(heavy["requests_today"], counted, "{heavy}");
    assert_eq!(heavy["daily_pool"], 30_000, "{heavy}");
    assert_eq!(heavy["requests_left"], 0, "{heavy}");
    let text = run(&config.path, &["status"]).await.stdout;
    let line = text
        .lines()
        .find(|l| l.starts_with("shared ") && l.contains(" heavy "))
        .unwrap_or_else(|| panic!("no budget line in:\n{text}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[2], counted.to_string(), "{line}");
    assert_eq!(fields[3], "30000", "{line}");
    // Every replica let the account go when it was done.
    let held: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rollcall.account_leases WHERE lease_owner IS NOT NULL",
    )
    .fetch_one(&db.pool)
    .await
    .expect("leases");
    assert_eq!(held, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_replicas_account_is_finished_by_another() {
    let (app, spec) = enforced_account(200).await;
    let (db, control) = (&app.db, app.control());
    // Slow pages: the first replica is still walking when it is killed.
    control.add_fault(FaultRule::on(
        Endpoint::ReportUsers,
        FaultKind::Delay { ms: 150 },
    ));
    let config = app.write_config();
    assert_eq!(run(&config.path, &["migrate"]).await.code, 0);

    let first = rollcall(&config.path, &["collect"])
        .spawn()
        .expect("spawn first");
    let first_pid = first.id().expect("pid");
    // Wait until the first replica holds the account and has written a page.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let holder: Option<String> = sqlx::query_scalar(
            "SELECT lease_owner FROM rollcall.account_leases WHERE lease_owner IS NOT NULL",
        )
        .fetch_optional(&db.pool)
        .await
        .unwrap_or(None);
        let pages: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(pages), 0)::bigint FROM rollcall.collection_windows",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap_or(0);
        if holder.is_some() && pages > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first replica never took the account"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = rollcall(&config.path, &["collect"])
        .spawn()
        .expect("spawn second");
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &first_pid.to_string()])
        .status();
    let _ = finish(first).await;

    let outcome = finish(second).await;
    assert_eq!(outcome.code, 0, "{}", outcome.output());
    assert_mirror(&db.pool, &control, &spec).await;
    let refused = api_requests(&control, &spec.account_id)
        .iter()
        .filter(|r| r.status == 429)
        .count();
    assert_eq!(refused, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn status_tells_what_an_unfinished_first_collection_still_needs() {
    let spec = zoom_account("half", 95);
    let sandbox = sandbox(vec![spec.clone()]).await;
    let control = sandbox.control();
    let app = TestApp::new(sandbox)
        .await
        .zoom(std::slice::from_ref(&spec), 10);
    // Every host report's second page fails for good: each window stops after its first page, which
    // announced the report's size.
    control.add_fault(FaultRule::on(Endpoint::ReportUsers, FaultKind::ServerError).page(2));
    let collected = app.collect_all().await;
    assert!(!collected.all_complete());

    let lines = rollcall::commands::budget::load(&app.db.pool, &app.config, today())
        .await
        .expect("budget");
    let heavy = lines
        .iter()
        .find(|l| l.category == "heavy")
        .expect("the heavy line");
    // A failed walk starts again from page 1: each report needs all its pages, ceil(total / 10).
    let mut left = 0;
    for month in reachable_months() {
        for report in [ReportType::Active, ReportType::Inactive] {
            let total = control
                .report_truth(&spec.account_id, month, report)
                .total_records;
            left += total.div_ceil(10).max(1) as i64;
        }
    }
    assert!(left > 0);
    assert_eq!(heavy.requests_left, left, "{heavy:?}");
    assert_eq!(heavy.windows_without_total, 0, "{heavy:?}");
    // Pro paces Heavy at 10/s plus the margin: the time left follows from the requests left.
    let seconds = heavy.seconds_left.expect("a paced category");
    assert!(seconds >= (left as u64).div_ceil(10), "{heavy:?}");
    let sent: i64 = control
        .requests()
        .iter()
        .filter(|r| r.endpoint != Endpoint::OauthToken)
        .count() as i64;
    assert_eq!(heavy.requests_today, sent, "{heavy:?}");
}

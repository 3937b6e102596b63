//! Several `rollcall run` processes against one PostgreSQL share the work and never walk a window twice.

mod common;

use common::*;
use rollcall_sandbox::{Endpoint, FaultKind, FaultRule};
use std::collections::BTreeMap;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_walk_every_window_exactly_once_between_them() {
    let db = TestDb::create().await;
    let specs = vec![zoom_account("acme", 600), zoom_account("globex", 600)];
    let sandbox = sandbox(specs.clone()).await;
    let control = sandbox.control();
    let config = write_config(&db, &sandbox, &specs, 100);
    // Slow pages keep both replicas busy at once, so they really compete for windows.
    control.add_fault(FaultRule {
        endpoint: Some(Endpoint::ReportUsers),
        account_id: None,
        report_type: None,
        page: None,
        times: None,
        probability: None,
        kind: FaultKind::Delay { ms: 30 },
    });
    // The schema must exist before both replicas race to create it.
    assert_eq!(run(&config.path, &["migrate"]).await.code, 0);

    let mut replicas = Vec::new();
    for _ in 0..2 {
        let mut cmd = rollcall(&config.path, &["run"]);
        // Both replicas are triggered by the same tick, as in production; not by their own start.
        cmd.env("ROLLCALL__SCHEDULE__CRON", "*/2 * * * * *")
            .env("ROLLCALL__SCHEDULE__RUN_ON_START", "false")
            .env(
                "ROLLCALL__HTTP__LISTEN",
                format!("127.0.0.1:{}", free_port()),
            );
        replicas.push(cmd.spawn().expect("spawn replica"));
    }

    // Per account and month: the two host reports and the daily usage report.
    let due = (reachable_months().len() * 3 * specs.len()) as i64;
    // Poll the shared table (the replicas' only common ground) until every window is complete.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    loop {
        poll.tick().await;
        let complete: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM rollcall.collection_windows WHERE state = 'complete'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap_or(0);
        if complete >= due {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "replicas did not finish: {complete}/{due}"
        );
    }

    let mut logs = Vec::new();
    for child in replicas {
        let pid = child.id().expect("pid").to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        let outcome = finish(child).await;
        assert_eq!(outcome.code, 0, "{}", outcome.output());
        logs.push(outcome.stderr);
    }

    // Each window's walk starts with exactly one first-page request: two would mean two walkers. Later
    // ticks walk the current (not yet final) month again, by design, so only final months are counted.
    let finals: Vec<(String, chrono::NaiveDate, String)> = sqlx::query_as(
        "SELECT account, window_start, scope FROM rollcall.collection_windows
          WHERE is_final AND stream IN ('zoom_host_report', 'zoom_daily_usage')",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(!finals.is_empty());
    let is_final = |account: &str, from: &str, scope: &str| {
        finals.iter().any(|(a, start, s)| {
            format!("{a}-account") == account && start.to_string() == from && s == scope
        })
    };
    let mut first_pages: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for r in control.requests().iter() {
        let account = r.account_id.clone().unwrap_or_default();
        let (from, scope) = match r.endpoint {
            Endpoint::ReportUsers => (
                r.query.get("from").cloned().unwrap_or_default(),
                r.query.get("type").cloned().unwrap_or_default(),
            ),
            // One request a month, named by year and month; its window's scope is ''.
            Endpoint::ReportDaily => {
                let part = |k: &str| r.query.get(k).and_then(|v| v.parse::<u32>().ok());
                match (part("year"), part("month")) {
                    (Some(y), Some(m)) => (format!("{y}-{m:02}-01"), String::new()),
                    _ => continue,
                }
            }
            _ => continue,
        };
        if r.page == Some(1) && is_final(&account, &from, &scope) {
            *first_pages.entry((account, scope, from)).or_default() += 1;
        }
    }
    assert_eq!(first_pages.len(), finals.len());
    assert!(
        first_pages.values().all(|n| *n == 1),
        "a window was walked twice: {first_pages:?}"
    );
    for (i, log) in logs.iter().enumerate() {
        assert!(
            log.contains("window complete"),
            "replica {i} did some of the work:\n{log}"
        );
    }
    for spec in &specs {
        assert_mirror(&db.pool, &control, spec).await;
    }
}

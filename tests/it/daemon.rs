//! `rollcall run`: cron ticks never overlap a running collection, /healthz answers, SIGTERM exits 0 and
//! leaves nothing half-written.

use crate::common::*;
use rollcall_sandbox::{Endpoint, FaultKind, FaultRule};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test(flavor = "multi_thread")]
async fn ticks_during_a_collection_are_skipped_and_sigterm_exits_cleanly() {
    let specs = vec![zoom_account("acme", 400)];
    let sandbox = sandbox(specs.clone()).await;
    let control = sandbox.control();
    let app = TestApp::new(sandbox).await.zoom(&specs, 100);
    let db = &app.db;
    let config = app.write_config();
    // Slow pages make one collection outlast several one-second ticks.
    control.add_fault(FaultRule::on(
        Endpoint::ReportUsers,
        FaultKind::Delay { ms: 400 },
    ));
    let port = free_port();
    let mut cmd = rollcall(&config.path, &["run"]);
    cmd.env("ROLLCALL__SCHEDULE__CRON", "* * * * * *")
        .env("ROLLCALL__HTTP__LISTEN", format!("127.0.0.1:{port}"));
    let mut child = cmd.spawn().expect("spawn rollcall run");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();

    let mut log = Vec::new();
    let saw_skip = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            let skipped = line.contains("schedule tick skipped");
            log.push(line);
            if skipped {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(
        saw_skip,
        "a tick during a collection is skipped: {}",
        log.join("\n")
    );

    let health = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .expect("healthz answers");
    assert_eq!(health.status().as_u16(), 200);
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("metrics answers")
        .text()
        .await
        .expect("metrics body");
    assert!(metrics.contains("rollcall_windows{"), "{metrics}");

    assert_eq!(sigterm(&mut child).await, Some(0));

    let leased: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rollcall.collection_windows WHERE lease_owner IS NOT NULL",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(leased, 0, "leases are released on shutdown");

    control.clear_faults();
    let rerun = app.collect_all().await;
    assert!(rerun.all_complete(), "{rerun:?}");
    assert_mirror(&db.pool, &control, &specs[0]).await;
}

/// The value of the `rollcall_windows` gauge for one stream and state in a `/metrics` body.
fn windows_gauge(metrics: &str, stream: &str, state: &str) -> Option<f64> {
    let (stream, state) = (format!("stream=\"{stream}\""), format!("state=\"{state}\""));
    metrics
        .lines()
        .filter(|l| l.starts_with("rollcall_windows{") && l.contains(&stream) && l.contains(&state))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_window_state_that_empties_reads_zero_on_metrics() {
    let specs = vec![zoom_account("acme", 60)];
    let mut app = TestApp::new(sandbox(specs.clone()).await)
        .await
        .zoom(&specs, 50);
    let (db, control) = (&app.db, app.control());
    control.add_fault(
        FaultRule::on(Endpoint::ReportUsers, FaultKind::ServerError)
            .report_type(rollcall_sandbox::ReportType::Inactive),
    );
    let first = app.collect_all().await;
    assert!(!first.all_complete(), "{first:?}");
    // The daemon only serves /metrics here: no collection starts while the test looks.
    app.config.schedule.run_on_start = false;
    app.config.schedule.cron = "0 0 0 1 1 *".into();
    let config = app.write_config();
    let port = free_port();
    let mut child = rollcall(&config.path, &["run"])
        .env("ROLLCALL__HTTP__LISTEN", format!("127.0.0.1:{port}"))
        .spawn()
        .expect("spawn rollcall run");
    let url = format!("http://127.0.0.1:{port}/metrics");
    let scrape = || async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut poll = tokio::time::interval(Duration::from_millis(100));
        loop {
            poll.tick().await;
            if let Ok(reply) = reqwest::get(&url).await {
                return reply.text().await.expect("metrics body");
            }
            assert!(tokio::time::Instant::now() < deadline, "/metrics answers");
        }
    };
    let failed = windows_gauge(&scrape().await, "zoom_host_report", "failed");
    assert!(
        failed.is_some_and(|n| n > 0.0),
        "failed windows: {failed:?}"
    );

    // Whatever ended the failures (here: the rows say so), the gauge follows the table down to 0.
    sqlx::query("UPDATE rollcall.collection_windows SET state = 'complete' WHERE state = 'failed'")
        .execute(&db.pool)
        .await
        .expect("settle");
    let metrics = scrape().await;
    assert_eq!(
        windows_gauge(&metrics, "zoom_host_report", "failed"),
        Some(0.0),
        "{metrics}"
    );

    assert_eq!(sigterm(&mut child).await, Some(0));
}

/// Sends SIGTERM and returns the exit code, which must come within 10 s.
async fn sigterm(child: &mut tokio::process::Child) -> Option<i32> {
    let pid = child.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("send SIGTERM");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits within 10 s of SIGTERM")
        .expect("wait");
    status.code()
}

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
    assert_eq!(status.code(), Some(0));

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

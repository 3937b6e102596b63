//! The collector's pacing against a sandbox that enforces Zoom's per-account limits: paced at the limit
//! the sandbox enforces, a full collection draws no 429. (How close to the limit it runs is measured by
//! `bench/run.sh pacing`, not here: tests assert no timing.)

use crate::common::*;
use rollcall_sandbox::Endpoint;

/// Low enough that the pacer, not the machine, sets the pace of this small walk.
const HEAVY_PER_SECOND: u32 = 20;

#[tokio::test(flavor = "multi_thread")]
async fn paced_at_the_enforced_heavy_limit_a_collection_draws_no_429() {
    // 120 users at 10 a page: about 14 Heavy requests a month, ~80 in all, several seconds at 20/s.
    let (mut app, spec) = app_on_enforced_heavy_limit("paced", 120, 7, HEAVY_PER_SECOND).await;
    // The default retries; the Pro plan's limits but Heavy, which matches what the sandbox enforces.
    app.config.collector = CollectorConfig {
        lease_secs: 30,
        ..CollectorConfig::default()
    };
    let (db, control) = (&app.db, app.control());

    let collected = app.collect_all().await;
    assert!(collected.all_complete(), "collect: {collected:?}");

    let requests = control.requests();
    let reports: Vec<_> = requests
        .iter()
        .filter(|r| r.endpoint == Endpoint::ReportUsers)
        .collect();
    let refused = reports.iter().filter(|r| r.status == 429).count();
    assert_eq!(
        refused,
        0,
        "429s drawn at {HEAVY_PER_SECOND}/s; request times (ms): {:?}",
        reports.iter().map(|r| r.at_ms).collect::<Vec<_>>()
    );
    assert!(
        reports.len() > 2 * HEAVY_PER_SECOND as usize,
        "the walk spans more than two seconds of Heavy traffic ({} requests)",
        reports.len()
    );

    // Every user is in exactly one of the two reports each month.
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM rollcall.zoom_host_report_users")
        .fetch_one(&db.pool)
        .await
        .expect("count rows");
    assert_eq!(rows, 120 * reachable_months().len() as i64);
    assert_mirror(&db.pool, &control, &spec).await;
}

//! `streams = [...]` on an account entry: the streams it leaves out are never planned, requested or
//! counted, and `status`, `coverage` and `collect --stream` call them not configured rather than missing.

use crate::common::*;

async fn windows_of(pool: &sqlx::PgPool, stream: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM rollcall.collection_windows WHERE stream = $1")
        .bind(stream)
        .fetch_one(pool)
        .await
        .expect("count windows")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_left_out_stream_is_neither_collected_nor_shown_as_missing() {
    let specs = vec![zoom_account("hq", 20)];
    let sandbox = sandbox(specs.clone()).await;
    let control = sandbox.control();
    let mut app = TestApp::new(sandbox).await.zoom(&specs, 100);
    app.config.zoom[0].streams = Some(vec!["zoom_daily_usage".into()]);
    let report = app.collect_all().await;
    assert!(report.all_complete(), "{report:?}");
    let pool = &app.db.pool;
    assert!(windows_of(pool, "zoom_daily_usage").await > 0);
    assert_eq!(windows_of(pool, "zoom_host_report").await, 0);
    let asked_users = control
        .requests()
        .iter()
        .any(|r| r.endpoint == rollcall_sandbox::Endpoint::ReportUsers);
    assert!(!asked_users, "a left-out stream was requested");

    // History held from before the key was set: still shown, as not configured.
    app.config.zoom[0].streams = None;
    assert!(app.collect_all().await.all_complete());
    app.config.zoom[0].streams = Some(vec!["zoom_daily_usage".into()]);
    let status = app.cli(&["status"]).await;
    assert_eq!(status.code, 0, "{}", status.output());
    let line = |out: &str, stream: &str| {
        out.lines()
            .find(|l| l.starts_with("hq") && l.contains(stream))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        line(&status.stdout, "zoom_host_report").contains("not configured (left out by streams)"),
        "{}",
        status.stdout
    );
    assert!(
        !line(&status.stdout, "zoom_daily_usage").contains("not configured"),
        "{}",
        status.stdout
    );
    let json = app.cli(&["status", "--json"]).await;
    let rows: serde_json::Value = serde_json::from_str(&json.stdout).expect("status json");
    let left_out: Vec<(String, bool)> = rows
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["stream"].as_str().unwrap_or("").to_owned(),
                r["left_out"] == true,
            )
        })
        .collect();
    assert!(
        left_out.contains(&("zoom_host_report".into(), true)),
        "{left_out:?}"
    );
    assert!(
        left_out.contains(&("zoom_daily_usage".into(), false)),
        "{left_out:?}"
    );

    let coverage = app.cli(&["coverage", "--months", "3"]).await;
    assert_eq!(coverage.code, 0, "{}", coverage.output());
    assert!(
        line(&coverage.stdout, "zoom_host_report")
            .ends_with("not configured (left out by streams)"),
        "{}",
        coverage.stdout
    );

    // Asking for it by name says so instead of doing nothing.
    let requests = control.requests().len();
    let collect = app
        .cli(&["collect", "--stream", "zoom_host_report", "--account", "hq"])
        .await;
    assert_eq!(collect.code, 2, "{}", collect.output());
    assert!(
        collect.stderr.contains(
            "--stream zoom_host_report: not configured for zoom[0] \"hq\" (its streams key leaves it out)"
        ),
        "{}",
        collect.stderr
    );
    assert_eq!(control.requests().len(), requests, "nothing was requested");
}

/// A stream the account's platform does not have, or the Video SDK list without its users, is a config
/// error naming the key, from the file as from the environment.
#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_stream_name_exits_2_naming_the_key() {
    let specs = vec![zoom_account("hq", 5)];
    let sandbox = sandbox(specs.clone()).await;
    let control = sandbox.control();
    let mut app = TestApp::new(sandbox).await.zoom(&specs, 100);
    app.config.zoom[0].streams = Some(vec!["zoom_host_report".into(), "rc_active_users".into()]);
    let out = app.cli(&["collect"]).await;
    assert_eq!(out.code, 2, "{}", out.output());
    assert!(
        out.stderr.contains("zoom[0].streams[1]: \"rc_active_users\" is a [[rocketchat]] stream (a [[zoom]] entry has zoom_host_report, zoom_daily_usage)"),
        "{}",
        out.stderr
    );
    assert!(control.requests().is_empty(), "nothing was requested");
    assert!(!app.db.has_schema().await, "nothing was written");
}

//! Zoom's daily usage reports end to end (`zoom_daily_usage`, `zoom_sdk_daily_usage`) and the Video SDK
//! reconciliation view: collection in-process, the real sandbox, PostgreSQL; the daemon for /metrics.

use crate::common::*;
use chrono::{Datelike, NaiveDate};
use rollcall_sandbox::{
    Endpoint, FaultKind, FaultRule, Sandbox, SandboxConfig, VideoSdkAccountSpec, ZoomAccountSpec,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

const ZOOM_METRICS: [&str; 4] = ["new_users", "meetings", "participants", "meeting_minutes"];
const SDK_METRICS: [&str; 3] = ["sessions", "users", "session_minutes"];

async fn sandbox_with(zoom: Vec<ZoomAccountSpec>, sdk: Vec<VideoSdkAccountSpec>) -> Sandbox {
    rollcall_sandbox::spawn(SandboxConfig {
        listen: "127.0.0.1:0".into(),
        seed: 7,
        zoom,
        videosdk: sdk,
        ..sandbox_defaults()
    })
    .await
    .expect("start sandbox")
}

async fn app(sandbox: Sandbox, zoom: &[ZoomAccountSpec], sdk: &[VideoSdkAccountSpec]) -> TestApp {
    TestApp::new(sandbox)
        .await
        .zoom(zoom, 300)
        .videosdk(sdk, 300)
}

fn last_of_month(month: NaiveDate) -> NaiveDate {
    month
        .checked_add_months(chrono::Months::new(1))
        .and_then(|d| d.pred_opt())
        .expect("date math")
}

/// The default `settle_days` is 2.
fn is_final(month: NaiveDate) -> bool {
    (today() - last_of_month(month)).num_days() > 2
}

type DayRow = (Vec<Option<i64>>, Option<Value>, bool);

/// What the table must hold for the month: the served days as served, and, once the month is final, the
/// days Zoom left out as zeros without `raw`.
fn expected(truth: &[Value], month: NaiveDate, metrics: &[&str]) -> BTreeMap<NaiveDate, DayRow> {
    let fin = is_final(month);
    let mut rows: BTreeMap<NaiveDate, DayRow> = truth
        .iter()
        .map(|d| {
            let day: NaiveDate = d["date"].as_str().expect("date").parse().expect("a date");
            let values = metrics.iter().map(|m| d[*m].as_i64()).collect();
            (day, (values, Some(d.clone()), fin))
        })
        .collect();
    if fin {
        for day in month.iter_days().take_while(|d| *d <= last_of_month(month)) {
            rows.entry(day)
                .or_insert_with(|| (vec![Some(0); metrics.len()], None, true));
        }
    }
    rows
}

async fn stored(
    pool: &sqlx::PgPool,
    table: &str,
    metrics: &[&str],
    account: &str,
    month: NaiveDate,
) -> BTreeMap<NaiveDate, DayRow> {
    let sql = format!(
        "SELECT day, ARRAY[{}]::int8[], raw, is_final FROM rollcall.{table}
          WHERE account = $1 AND day BETWEEN $2 AND $3",
        metrics.join(", ")
    );
    sqlx::query_as::<_, (NaiveDate, Vec<Option<i64>>, Option<Value>, bool)>(&sql)
        .bind(account)
        .bind(month)
        .bind(last_of_month(month))
        .fetch_all(pool)
        .await
        .expect("query daily usage")
        .into_iter()
        .map(|(day, values, raw, fin)| (day, (values, raw, fin)))
        .collect()
}

/// Asserts both tables hold exactly the sandbox's truth for every reachable month; returns the number of
/// days stored as zeros because Zoom left them out of a final month.
async fn assert_daily_mirror(
    pool: &sqlx::PgPool,
    sandbox: &Sandbox,
    zoom: &ZoomAccountSpec,
    sdk: &VideoSdkAccountSpec,
) -> usize {
    let control = sandbox.control();
    let mut filled = 0;
    for month in reachable_months() {
        let truth = control.daily_usage(&zoom.account_id, month);
        assert!(!truth.is_empty(), "{month}: the sandbox serves days");
        let want = expected(&truth, month, &ZOOM_METRICS);
        let got = stored(
            pool,
            "zoom_daily_usage",
            &ZOOM_METRICS,
            &account_name(zoom),
            month,
        )
        .await;
        assert_eq!(got, want, "zoom_daily_usage {month}");

        let truth = control.sdk_daily_usage(&sdk.api_key, month);
        let want = expected(&truth, month, &SDK_METRICS);
        let got = stored(
            pool,
            "zoom_sdk_daily_usage",
            &SDK_METRICS,
            &sdk_name(sdk),
            month,
        )
        .await;
        assert_eq!(got, want, "zoom_sdk_daily_usage {month}");
        filled += got.values().filter(|(_, raw, _)| raw.is_none()).count();
    }
    filled
}

/// The (year, month) pairs of the daily report requests logged for `endpoint`.
fn requested_months(sandbox: &Sandbox, endpoint: Endpoint) -> BTreeSet<(i32, u32)> {
    sandbox
        .control()
        .requests()
        .iter()
        .filter(|r| r.endpoint == endpoint)
        .map(|r| {
            (
                r.query["year"].parse().expect("year"),
                r.query["month"].parse().expect("month"),
            )
        })
        .collect()
}

fn ym(month: NaiveDate) -> (i32, u32) {
    (month.year(), month.month())
}

async fn windows_of(
    pool: &sqlx::PgPool,
    stream: &str,
) -> Vec<(NaiveDate, String, bool, Option<String>)> {
    sqlx::query_as(
        "SELECT window_start, state, is_final, last_error FROM rollcall.collection_windows
          WHERE stream = $1 ORDER BY window_start",
    )
    .bind(stream)
    .fetch_all(pool)
    .await
    .expect("query windows")
}

#[tokio::test(flavor = "multi_thread")]
async fn both_daily_reports_are_mirrored_per_day_and_final_months_are_never_requested_again() {
    let zoom = vec![zoom_account("acme", 60)];
    let sdk = vec![sdk_account("studio", 9)];
    let sandbox = sandbox_with(zoom.clone(), sdk.clone()).await;
    let app = app(sandbox, &zoom, &sdk).await;
    let db = &app.db;

    let first = app.collect_all().await;
    assert!(first.all_complete(), "first collect: {first:?}");
    let filled = assert_daily_mirror(&db.pool, &app.sandbox, &zoom[0], &sdk[0]).await;
    // Nine sessions a month leave most days without one: the SDK report omits them, and a final month
    // stores them as zeros.
    assert!(
        filled > 0,
        "days left out of final months are stored as zeros"
    );
    let months = reachable_months();
    let asked: BTreeSet<_> = day_months().into_iter().map(|(m, _)| ym(m)).collect();
    assert_eq!(requested_months(&app.sandbox, Endpoint::ReportDaily), asked);
    assert_eq!(
        requested_months(&app.sandbox, Endpoint::SdkReportDaily),
        asked
    );
    // The month holding the horizon day is walked from the horizon day on, unless the horizon is its
    // first day (on the last day of a month), when it is served whole.
    let oldest = day_months()[0].1;
    for stream in ["zoom_daily_usage", "zoom_sdk_daily_usage"] {
        let windows = windows_of(&db.pool, stream).await;
        assert_eq!(
            windows.first().map(|w| (w.0, w.1.as_str())),
            Some((oldest, "complete")),
            "{stream}: the horizon's month is walked from the horizon day: {windows:?}"
        );
        for (start, state, fin, _) in &windows {
            if months.contains(start) {
                assert_eq!(state, "complete", "{stream} {start}");
                assert_eq!(*fin, is_final(*start), "{stream} {start}");
            }
        }
    }

    app.control().clear_requests();
    let second = app.collect_all().await;
    assert!(second.all_complete(), "second collect: {second:?}");
    let not_final: BTreeSet<_> = months
        .iter()
        .copied()
        .filter(|m| !is_final(*m))
        .map(ym)
        .collect();
    assert!(!not_final.is_empty(), "the current month is never final");
    assert_eq!(
        requested_months(&app.sandbox, Endpoint::ReportDaily),
        not_final,
        "only months that are not final are requested again"
    );
    assert_eq!(
        requested_months(&app.sandbox, Endpoint::SdkReportDaily),
        not_final
    );
    assert_daily_mirror(&db.pool, &app.sandbox, &zoom[0], &sdk[0]).await;
}

async fn table_snapshot(
    pool: &sqlx::PgPool,
    table: &str,
) -> Vec<(String, NaiveDate, Option<Value>)> {
    sqlx::query_as(&format!(
        "SELECT account, day, raw FROM rollcall.{table} ORDER BY account, day"
    ))
    .fetch_all(pool)
    .await
    .expect("snapshot")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reply_without_its_dates_fails_the_window_and_deletes_nothing() {
    let zoom = vec![zoom_account("acme", 40)];
    let sdk = vec![sdk_account("studio", 30)];
    let sandbox = sandbox_with(zoom.clone(), sdk.clone()).await;
    let control = sandbox.control();
    let app = app(sandbox, &zoom, &sdk).await;
    let db = &app.db;

    let streams = [
        ("zoom_daily_usage", Endpoint::ReportDaily, "acme-account"),
        (
            "zoom_sdk_daily_usage",
            Endpoint::SdkReportDaily,
            "studio-key",
        ),
    ];
    for (stream, _, _) in streams {
        let ok = app.collect(only_stream(stream)).await;
        assert!(ok.all_complete(), "{stream}: {ok:?}");
    }
    let before = (
        table_snapshot(&db.pool, "zoom_daily_usage").await,
        table_snapshot(&db.pool, "zoom_sdk_daily_usage").await,
    );
    assert!(!before.0.is_empty() && !before.1.is_empty());

    // A missing list and a null one: neither is an empty month.
    control.add_fault(
        FaultRule::on(
            Endpoint::ReportDaily,
            FaultKind::Patch {
                set: vec![],
                remove: vec!["/dates".into()],
            },
        )
        .account("acme-account"),
    );
    control.add_fault(
        FaultRule::on(
            Endpoint::SdkReportDaily,
            FaultKind::Patch {
                set: vec![("/dates".into(), Value::Null)],
                remove: vec![],
            },
        )
        .account("studio-key"),
    );
    let current = *reachable_months().last().expect("a current month");
    for (stream, endpoint, _) in streams {
        control.clear_requests();
        let failed = app.collect(only_stream(stream)).await;
        assert!(!failed.all_complete(), "{stream}: {failed:?}");
        let windows = windows_of(&db.pool, stream).await;
        let (_, state, _, error) = windows
            .iter()
            .find(|w| w.0 == current)
            .expect("the current month's window");
        assert_eq!(state, "failed", "{stream}: {windows:?}");
        assert!(
            error.as_deref().is_some_and(|e| e.contains("malformed")),
            "{stream}: the error says the reply was malformed: {error:?}"
        );
        let attempts = control
            .requests()
            .iter()
            .filter(|r| r.endpoint == endpoint)
            .count();
        assert!(attempts > 1, "{stream}: a malformed reply is retried");
    }
    let after = (
        table_snapshot(&db.pool, "zoom_daily_usage").await,
        table_snapshot(&db.pool, "zoom_sdk_daily_usage").await,
    );
    assert_eq!(after, before, "nothing was deleted or rewritten");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reply_for_another_month_fails_the_window_and_writes_nothing() {
    let zoom = vec![zoom_account("acme", 40)];
    let sdk = vec![sdk_account("studio", 12)];
    let sandbox = sandbox_with(zoom.clone(), sdk.clone()).await;
    let control = sandbox.control();
    let app = app(sandbox, &zoom, &sdk).await;
    let db = &app.db;

    // Every reply claims a month that was not asked for: 13 is no month, and January of year 1 is none
    // of the six.
    control.add_fault(FaultRule::on(
        Endpoint::ReportDaily,
        FaultKind::Patch {
            set: vec![("/month".into(), json!(13))],
            remove: vec![],
        },
    ));
    control.add_fault(FaultRule::on(
        Endpoint::SdkReportDaily,
        FaultKind::Patch {
            set: vec![("/year".into(), json!(1)), ("/month".into(), json!(1))],
            remove: vec![],
        },
    ));
    let out = app.collect_all().await;
    assert!(!out.all_complete(), "{out:?}");
    for stream in ["zoom_daily_usage", "zoom_sdk_daily_usage"] {
        for (start, state, _, error) in windows_of(&db.pool, stream).await {
            if reachable_months().contains(&start) {
                assert_eq!(state, "failed", "{stream} {start}");
                assert!(
                    error
                        .as_deref()
                        .is_some_and(|e| e.contains("was requested")),
                    "{stream} {start}: {error:?}"
                );
            }
        }
    }
    let rows: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM rollcall.zoom_daily_usage),
                (SELECT count(*) FROM rollcall.zoom_sdk_daily_usage)",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(rows, (0, 0), "a reply for another month is not stored");
    // The host reports and session lists of the same accounts are not affected.
    let others: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rollcall.collection_windows
          WHERE stream IN ('zoom_host_report', 'zoom_sdk_sessions') AND state = 'failed'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(others, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn reconciliation_shows_the_day_the_daily_report_and_the_session_list_disagree() {
    let sdk = vec![sdk_account("studio", 40)];
    let sandbox = sandbox_with(vec![], sdk.clone()).await;
    let control = sandbox.control();
    let app = app(sandbox, &[], &sdk).await;
    let db = &app.db;

    let first = app.collect_all().await;
    assert!(first.all_complete(), "{first:?}");
    let (days, disagreeing): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE difference <> 0) FROM rollcall.zoom_sdk_reconciliation
          WHERE account = 'studio'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(days > 20, "{days} days reconciled");
    assert_eq!(disagreeing, 0, "the sandbox's two reports agree by default");
    let status = app.cli(&["status"]).await;
    assert!(
        status
            .stdout
            .contains("studio: 0 days where the daily report and the stored session list disagree"),
        "{}",
        status.output()
    );

    // Today is in the current month, which is never final: the next collection walks it again.
    let today = today();
    let listed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rollcall.zoom_sdk_sessions
          WHERE account = 'studio' AND missing_since IS NULL AND (start_time AT TIME ZONE 'UTC')::date = $1",
    )
    .bind(today)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let reported = listed as u64 + 2;
    assert!(control.set_sdk_daily_sessions(&sdk[0].api_key, today, Some(reported)));
    let again = app.collect(only_stream("zoom_sdk_daily_usage")).await;
    assert!(again.all_complete(), "{again:?}");
    let rows: Vec<(NaiveDate, Option<i64>, i64, Option<i64>)> = sqlx::query_as(
        "SELECT day, sessions_reported, sessions_listed, difference FROM rollcall.zoom_sdk_reconciliation
          WHERE account = 'studio' AND difference <> 0",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(rows, vec![(today, Some(reported as i64), listed, Some(2))]);
    let status = app.cli(&["status"]).await;
    assert!(
        status.stdout.contains(
            "studio: 1 day where the daily report and the stored session list disagree (rollcall.zoom_sdk_reconciliation)"
        ),
        "{}",
        status.output()
    );

    // The daemon's /metrics reads the same view at scrape time; it collects nothing here.
    let port = free_port();
    let config = app.write_config();
    let mut cmd = rollcall(&config.path, &["run"]);
    cmd.env("ROLLCALL__SCHEDULE__CRON", "0 0 0 1 1 *")
        .env("ROLLCALL__SCHEDULE__RUN_ON_START", "false")
        .env("ROLLCALL__HTTP__LISTEN", format!("127.0.0.1:{port}"));
    let child = cmd.spawn().expect("spawn rollcall run");
    let metrics = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        let mut poll = tokio::time::interval(std::time::Duration::from_millis(100));
        loop {
            poll.tick().await;
            if let Ok(response) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
                if let Ok(text) = response.text().await {
                    if text.contains("rollcall_sdk_reconciliation_mismatched_days") {
                        return text;
                    }
                }
            }
        }
    })
    .await
    .expect("/metrics answers with the reconciliation gauge");
    assert!(
        metrics.contains("rollcall_sdk_reconciliation_mismatched_days{account=\"studio\"} 1"),
        "{metrics}"
    );
    let pid = child.id().expect("pid").to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    assert_eq!(finish(child).await.code, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn backfill_plans_a_daily_stream_and_refuses_by_name_what_zoom_no_longer_serves() {
    let zoom = vec![zoom_account("acme", 30)];
    let sdk = vec![sdk_account("studio", 9)];
    let sandbox = sandbox_with(zoom.clone(), sdk.clone()).await;
    let app = app(sandbox, &zoom, &sdk).await;
    let db = &app.db;
    let too_old = reachable_months()[0]
        .checked_sub_months(chrono::Months::new(3))
        .expect("date math");

    let backfill = Selection {
        from: Some(too_old),
        ..only_stream("zoom_sdk_daily_usage")
    };
    // What `backfill` prints before it collects.
    let refused = collector::refused_by_horizon(&app.config, &backfill, too_old).join("\n");
    let out = app.collect(backfill).await;
    assert!(out.all_complete(), "{out:?}");
    assert!(
        refused.contains(&format!("--from {too_old}")) && refused.contains("studio"),
        "the refusal names the date and the account: {refused}"
    );
    let streams: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT stream, state, count(*) FROM rollcall.collection_windows GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        streams,
        vec![
            (
                "zoom_sdk_daily_usage".to_string(),
                "complete".to_string(),
                day_months().len() as i64
            ),
            // The months from --from up to the one before the horizon's (that one is walked from the
            // horizon day, or whole when the horizon is its 1st).
            (
                "zoom_sdk_daily_usage".to_string(),
                "unreachable".to_string(),
                (reachable_months().len() + 3 - day_months().len()) as i64
            ),
        ]
    );
    let requests = app.control().requests();
    assert!(requests
        .iter()
        .all(|r| r.endpoint == Endpoint::SdkReportDaily && r.status == 200));
    assert_eq!(
        requested_months(&app.sandbox, Endpoint::SdkReportDaily),
        day_months().into_iter().map(|(m, _)| ym(m)).collect()
    );
    assert_daily_mirror_sdk_only(&db.pool, &app.sandbox, &sdk[0]).await;
}

async fn assert_daily_mirror_sdk_only(
    pool: &sqlx::PgPool,
    sandbox: &Sandbox,
    sdk: &VideoSdkAccountSpec,
) {
    for month in reachable_months() {
        let truth = sandbox.control().sdk_daily_usage(&sdk.api_key, month);
        let got = stored(
            pool,
            "zoom_sdk_daily_usage",
            &SDK_METRICS,
            &sdk_name(sdk),
            month,
        )
        .await;
        assert_eq!(got, expected(&truth, month, &SDK_METRICS), "{month}");
    }
}

/// `rollcall status` on a database in a known state: a day whose daily report gave no session count
/// (sessions NULL, so difference NULL) is not a disagreement; it is counted on its own.
#[tokio::test(flavor = "multi_thread")]
async fn status_tells_days_without_a_session_count_from_disagreements() {
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("rollcall.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{}\"\n\n[[videosdk]]\nname = \"studio\"\napi_key = \"k\"\napi_secret = \"s\"\n",
            db.url
        ),
    )
    .expect("write config");
    let migrated = run(&config, &["migrate"]).await;
    assert_eq!(migrated.code, 0, "{}", migrated.output());
    // May 1st: one session reported, one listed (agree); 2nd: three reported, one listed (disagree);
    // 3rd and 4th: no session count served.
    sqlx::raw_sql(
        "INSERT INTO rollcall.zoom_sdk_sessions (account, session_id, month, start_time, raw, collected_at, walk_id)
         VALUES ('studio', 'a', '2026-05-01', '2026-05-01 10:00+00', '{}', now(), gen_random_uuid()),
                ('studio', 'b', '2026-05-01', '2026-05-02 10:00+00', '{}', now(), gen_random_uuid()),
                ('studio', 'c', '2026-05-01', '2026-05-03 10:00+00', '{}', now(), gen_random_uuid());
         INSERT INTO rollcall.zoom_sdk_daily_usage (account, day, sessions, is_final, collected_at)
         VALUES ('studio', '2026-05-01', 1, true, now()), ('studio', '2026-05-02', 3, true, now()),
                ('studio', '2026-05-03', NULL, true, now()), ('studio', '2026-05-04', NULL, true, now());",
    )
    .execute(&db.pool)
    .await
    .expect("fixture");
    let status = run(&config, &["status"]).await;
    assert_eq!(status.code, 0, "{}", status.output());
    assert!(
        status.stdout.contains(
            "studio: 1 day where the daily report and the stored session list disagree (rollcall.zoom_sdk_reconciliation); 2 days the daily report gave no session count for\n"
        ),
        "{}",
        status.output()
    );
}

/// `rollcall status --json`: a Rocket.Chat block is held up to the last day its walk asked for (the
/// workspace's local yesterday, recorded in walk_params), not up to the UTC date it completed on.
#[tokio::test(flavor = "multi_thread")]
async fn status_holds_a_rocketchat_block_up_to_the_last_day_asked() {
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("rollcall.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{}\"\n\n[[rocketchat]]\nname = \"chat\"\nurl = \"http://127.0.0.1:9\"\nuser_id = \"u\"\nauth_token = \"t\"\ntimezone = \"America/Los_Angeles\"\n",
            db.url
        ),
    )
    .expect("write config");
    let migrated = run(&config, &["migrate"]).await;
    assert_eq!(migrated.code, 0, "{}", migrated.output());
    // Completed at 2026-05-10 03:00 UTC, the 9th in Los Angeles: the walk asked up to the 8th.
    sqlx::raw_sql(
        "INSERT INTO rollcall.collection_windows
                (account, stream, scope, window_start, window_end, state, is_final, completed_at, walk_params)
         VALUES ('chat', 'rc_active_users', '', '2026-05-01', '2026-05-07', 'complete', true,
                 '2026-05-08 03:00+00', '{\"span\": [\"2026-05-01\", \"2026-05-07\"]}'),
                ('chat', 'rc_active_users', '', '2026-05-08', '2026-05-14', 'complete', false,
                 '2026-05-10 03:00+00', '{\"span\": [\"2026-05-08\", \"2026-05-08\"]}');",
    )
    .execute(&db.pool)
    .await
    .expect("fixture");
    let status = run(&config, &["status", "--json"]).await;
    assert_eq!(status.code, 0, "{}", status.output());
    let json: Value = serde_json::from_str(&status.stdout).expect("status --json is JSON");
    let chat = json
        .as_array()
        .expect("streams")
        .iter()
        .find(|s| s["account"] == "chat")
        .expect("chat");
    assert_eq!(chat["oldest_complete"], "2026-05-01");
    assert_eq!(chat["newest_complete"], "2026-05-08", "{chat}");
}

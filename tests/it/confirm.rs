//! No single reply makes history smaller (DESIGN principle 8), for every stream: a walk that would make a
//! window final while removing, zeroing or lowering what is stored changes nothing and leaves the window
//! complete but not final, awaiting confirmation; a walk of a run less than 12 hours later does not apply
//! it either; one of a run at least 12 hours later that agrees does; a clean walk in between finalizes
//! with the stored rows. Runs at later instants are injected (`TestApp::collect_at`), never waited for.
//! Also here: parents and children under two interleaved transactions, and finality decided from the
//! day a walk began.

use crate::common::*;
use chrono::{Duration, NaiveDate};
use rollcall_sandbox::{Endpoint, FaultKind, FaultRule, ReportType, RocketChatWorkspaceSpec};
use serde_json::{json, Value};

fn patch(set: Vec<(&str, Value)>) -> FaultKind {
    FaultKind::Patch {
        set: set.into_iter().map(|(p, v)| (p.to_string(), v)).collect(),
        remove: Vec::new(),
    }
}

fn hours(h: i64) -> Duration {
    Duration::hours(h)
}

/// The month every test disputes: two before the current one, so final under `settle_days = 2` whatever
/// today is, and still inside the horizon 13 hours from now.
fn settled_month() -> NaiveDate {
    let months = reachable_months();
    months[months.len() - 3]
}

async fn scalar(pool: &sqlx::PgPool, sql: &str, account: &str, month: NaiveDate) -> i64 {
    sqlx::query_scalar(sql)
        .bind(account)
        .bind(month)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

const DISPUTED: (&str, bool, bool) = ("complete", false, true);
const SETTLED: (&str, bool, bool) = ("complete", true, false);

fn mark_of(w: &(String, bool, bool, Option<i64>, Option<i64>)) -> (&str, bool, bool) {
    (w.0.as_str(), w.1, w.2)
}

#[tokio::test(flavor = "multi_thread")]
async fn host_reports_an_empty_finalizing_reply_waits_for_a_run_12_hours_later() {
    let specs = vec![zoom_account("glitch", 60), zoom_account("steady", 60)];
    let mut app = TestApp::new(sandbox(specs.clone()).await)
        .await
        .zoom(&specs, 300);
    let (pool, control) = (app.pool().clone(), app.control());
    let stream = only_stream("zoom_host_report");
    for z in &mut app.config.zoom {
        z.settle_days = 400;
    }
    assert!(app.collect(stream.clone()).await.all_complete());
    let month = settled_month();
    let names: Vec<String> = specs.iter().map(account_name).collect();
    let users = "SELECT count(*) FROM rollcall.zoom_host_report_users
                  WHERE account = $1 AND month = $2 AND report_type = 'active'";
    let totals_final = "SELECT count(*) FROM rollcall.zoom_host_reports
                         WHERE account = $1 AND month = $2 AND report_type = 'active' AND is_final";
    let mut held = Vec::new();
    for name in &names {
        let n = scalar(&pool, users, name, month).await;
        assert!(n > 0, "{name} has active users in {month}");
        held.push(n);
    }

    // The run that settles the month gets a reply that agrees with itself (0 records, 0 users).
    for z in &mut app.config.zoom {
        z.settle_days = 2;
    }
    let empty = || {
        patch(vec![
            ("/users", json!([])),
            ("/total_records", json!(0)),
            ("/next_page_token", json!("")),
        ])
    };
    control
        .add_fault(FaultRule::on(Endpoint::ReportUsers, empty()).report_type(ReportType::Active));
    let first = now();
    app.collect_at(stream.clone(), first).await;
    for (name, held) in names.iter().zip(&held) {
        assert_eq!(
            scalar(&pool, users, name, month).await,
            *held,
            "{name}: every stored user is kept"
        );
        assert_eq!(
            scalar(&pool, totals_final, name, month).await,
            0,
            "{name}: totals not final"
        );
        let w = window_mark(&pool, name, "zoom_host_report", "active", month).await;
        assert_eq!(mark_of(&w), DISPUTED, "{name}: awaiting confirmation");
        assert_eq!((w.3, w.4), (Some(*held), Some(0)), "{name}: both counts");
    }

    // An hour later: the glitch repeats for one account only.
    control.clear_faults();
    control.add_fault(
        FaultRule::on(Endpoint::ReportUsers, empty())
            .report_type(ReportType::Active)
            .account(specs[0].account_id.clone()),
    );
    app.collect_at(stream.clone(), first + hours(1)).await;
    assert_eq!(
        scalar(&pool, users, &names[0], month).await,
        held[0],
        "under 12 hours: kept"
    );
    let w = window_mark(&pool, &names[0], "zoom_host_report", "active", month).await;
    assert_eq!(mark_of(&w), DISPUTED, "still awaiting confirmation");
    // The clean walk agrees with what is stored: final at once, with the stored rows.
    assert_eq!(scalar(&pool, users, &names[1], month).await, held[1]);
    let w = window_mark(&pool, &names[1], "zoom_host_report", "active", month).await;
    assert_eq!(mark_of(&w), SETTLED, "a clean walk finalizes at once");
    assert_eq!((w.3, w.4), (None, None), "and clears the counts");
    assert_eq!(scalar(&pool, totals_final, &names[1], month).await, 1);

    // 13 hours after the first dispute the same reply is confirmed and applied.
    app.collect_at(stream, first + hours(13)).await;
    assert_eq!(
        scalar(&pool, users, &names[0], month).await,
        0,
        "the shrink is applied"
    );
    let w = window_mark(&pool, &names[0], "zoom_host_report", "active", month).await;
    assert_eq!(mark_of(&w), SETTLED);
    assert_eq!(scalar(&pool, totals_final, &names[0], month).await, 1);
}

async fn collect_daily(app: &TestApp, at: chrono::DateTime<chrono::Utc>) {
    for stream in ["zoom_daily_usage", "zoom_sdk_daily_usage"] {
        app.collect_at(only_stream(stream), at).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn both_daily_usage_reports_keep_their_days_until_a_run_12_hours_later_agrees() {
    let zoom = vec![zoom_account("glitch", 30), zoom_account("steady", 30)];
    let sdk = vec![sdk_account("glitch", 6), sdk_account("steady", 6)];
    let sandbox = rollcall_sandbox::spawn(rollcall_sandbox::SandboxConfig {
        listen: "127.0.0.1:0".into(),
        seed: 7,
        zoom: zoom.clone(),
        videosdk: sdk.clone(),
        ..sandbox_defaults()
    })
    .await
    .expect("start sandbox");
    let mut app = TestApp::new(sandbox)
        .await
        .zoom(&zoom, 300)
        .videosdk(&sdk, 300);
    let (pool, control) = (app.pool().clone(), app.control());
    let streams = [
        (
            "zoom_daily_usage",
            Endpoint::ReportDaily,
            "zoom_daily_usage",
            zoom[0].account_id.clone(),
        ),
        (
            "zoom_sdk_daily_usage",
            Endpoint::SdkReportDaily,
            "zoom_sdk_daily_usage",
            sdk[0].api_key.clone(),
        ),
    ];
    let names = ["glitch", "steady"];
    let set_settle = |app: &mut TestApp, days: u32| {
        for z in &mut app.config.zoom {
            z.settle_days = days;
        }
        for v in &mut app.config.videosdk {
            v.settle_days = days;
        }
    };
    set_settle(&mut app, 400);
    collect_daily(&app, now()).await;
    let month = settled_month();
    let days_sql = |table: &str| {
        format!(
            "SELECT count(*) FROM rollcall.{table}
              WHERE account = $1 AND date_trunc('month', day) = $2 AND raw IS NOT NULL AND NOT is_final"
        )
    };
    let final_sql = |table: &str| {
        format!(
            "SELECT count(*) FROM rollcall.{table}
              WHERE account = $1 AND date_trunc('month', day) = $2 AND is_final"
        )
    };
    let mut held = Vec::new();
    for (stream, _, table, _) in &streams {
        for name in names {
            let n = scalar(&pool, &days_sql(table), name, month).await;
            assert!(n > 0, "{stream} {name}: days stored for {month}");
            held.push(n);
        }
    }

    // The walk that settles the month gets `{"year":…,"month":…,"dates":[]}`.
    set_settle(&mut app, 2);
    for (_, endpoint, ..) in &streams {
        control.add_fault(FaultRule::on(*endpoint, patch(vec![("/dates", json!([]))])));
    }
    let first = now();
    collect_daily(&app, first).await;
    let mut i = 0;
    for (stream, _, table, _) in &streams {
        for name in names {
            assert_eq!(
                scalar(&pool, &days_sql(table), name, month).await,
                held[i],
                "{stream} {name}: every day kept"
            );
            assert_eq!(
                scalar(&pool, &final_sql(table), name, month).await,
                0,
                "{stream} {name}: nothing final"
            );
            let w = window_mark(&pool, name, stream, "", month).await;
            assert_eq!(mark_of(&w), DISPUTED, "{stream} {name}");
            assert_eq!(
                (w.3, w.4),
                (Some(held[i]), Some(0)),
                "{stream} {name}: both counts"
            );
            i += 1;
        }
    }

    // An hour later the glitch repeats for the first account of each report only.
    control.clear_faults();
    for (_, endpoint, _, account) in &streams {
        control.add_fault(
            FaultRule::on(*endpoint, patch(vec![("/dates", json!([]))])).account(account.clone()),
        );
    }
    collect_daily(&app, first + hours(1)).await;
    for (stream, _, table, _) in &streams {
        let w = window_mark(&pool, "glitch", stream, "", month).await;
        assert_eq!(
            mark_of(&w),
            DISPUTED,
            "{stream}: under 12 hours nothing is applied"
        );
        assert_eq!(scalar(&pool, &final_sql(table), "glitch", month).await, 0);
        let w = window_mark(&pool, "steady", stream, "", month).await;
        assert_eq!(
            mark_of(&w),
            SETTLED,
            "{stream}: a clean walk finalizes at once"
        );
        let last = month
            .checked_add_months(chrono::Months::new(1))
            .expect("date math")
            .pred_opt()
            .expect("date math");
        let days = (last - month).num_days() + 1;
        assert_eq!(
            scalar(&pool, &final_sql(table), "steady", month).await,
            days,
            "{stream}: every day final"
        );
    }

    collect_daily(&app, first + hours(13)).await;
    for (stream, _, table, _) in &streams {
        let w = window_mark(&pool, "glitch", stream, "", month).await;
        assert_eq!(mark_of(&w), SETTLED, "{stream}: confirmed 13 hours later");
        let served = scalar(
            &pool,
            &format!(
                "SELECT count(*) FROM rollcall.{table}
                  WHERE account = $1 AND date_trunc('month', day) = $2 AND raw IS NOT NULL"
            ),
            "glitch",
            month,
        )
        .await;
        assert_eq!(served, 0, "{stream}: the confirmed empty reply is applied");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rocketchat_days_finalized_by_an_empty_reply_wait_for_a_run_12_hours_later() {
    let spec = |name: &str| RocketChatWorkspaceSpec {
        quiet_day_percent: 0,
        ..RocketChatWorkspaceSpec::new(name, "UTC")
    };
    let specs = vec![spec("glitch"), spec("steady")];
    let mut app = TestApp::new(rc_sandbox(specs.clone()).await)
        .await
        .rocketchat(&specs);
    let (pool, control) = (app.pool().clone(), app.control());
    let stream = only_stream("rc_active_users");
    for w in &mut app.config.rocketchat {
        w.lookback_days = 40;
    }
    assert!(app.collect(stream.clone()).await.all_complete());
    let day = control.rc_today("glitch").expect("workspace") - Duration::days(10);
    let users = "SELECT count(*) FROM rollcall.rc_active_user_days WHERE account = $1 AND day = $2";
    let final_day = "SELECT count(*) FROM rollcall.rc_active_users WHERE account = $1 AND day = $2 AND is_final";
    let window = |name: &'static str| {
        let pool = pool.clone();
        async move {
            let start: NaiveDate = sqlx::query_scalar(
                "SELECT window_start FROM rollcall.collection_windows
                  WHERE account = $1 AND stream = 'rc_active_users' AND window_start <= $2 AND window_end >= $2",
            )
            .bind(name)
            .bind(day)
            .fetch_one(&pool)
            .await
            .expect("the day's window");
            window_mark(&pool, name, "rc_active_users", "", start).await
        }
    };
    let mut held = Vec::new();
    for name in ["glitch", "steady"] {
        let n = scalar(&pool, users, name, day).await;
        assert!(n > 0, "{name}: users stored for {day}");
        held.push(n);
    }

    // The walk that makes the day final (lookback back to 4 days) is served `{"success": true, "month": []}`.
    for w in &mut app.config.rocketchat {
        w.lookback_days = 4;
    }
    let empty = || patch(vec![("/month", json!([]))]);
    control.add_fault(FaultRule::on(Endpoint::RcActiveUsers, empty()));
    let first = now();
    app.collect_at(stream.clone(), first).await;
    for (name, held) in ["glitch", "steady"].into_iter().zip(&held) {
        assert_eq!(
            scalar(&pool, users, name, day).await,
            *held,
            "{name}: users kept"
        );
        assert_eq!(
            scalar(&pool, final_day, name, day).await,
            0,
            "{name}: the day is not final"
        );
        let w = window(name).await;
        assert!(w.2, "{name}: the window awaits confirmation: {w:?}");
        assert_eq!(w.4, Some(0), "{name}: the walk saw no user");
        assert!(
            w.3.is_some_and(|stored| stored >= *held),
            "{name}: stored count {w:?}"
        );
    }

    control.clear_faults();
    control.add_fault(FaultRule::on(Endpoint::RcActiveUsers, empty()).account("glitch"));
    app.collect_at(stream.clone(), first + hours(1)).await;
    assert_eq!(
        scalar(&pool, users, "glitch", day).await,
        held[0],
        "under 12 hours: kept"
    );
    assert!(window("glitch").await.2, "still awaiting confirmation");
    assert_eq!(scalar(&pool, users, "steady", day).await, held[1]);
    assert_eq!(
        scalar(&pool, final_day, "steady", day).await,
        1,
        "a clean walk finalizes the day"
    );
    assert!(!window("steady").await.2, "and clears the mark");

    app.collect_at(stream, first + hours(13)).await;
    assert_eq!(
        scalar(&pool, users, "glitch", day).await,
        0,
        "confirmed: the shrink is applied"
    );
    assert_eq!(scalar(&pool, final_day, "glitch", day).await, 1);
    assert!(!window("glitch").await.2);
}

#[tokio::test(flavor = "multi_thread")]
async fn video_sdk_lists_and_users_emptied_on_the_finalizing_walk_wait_for_a_run_12_hours_later() {
    let specs = vec![sdk_account("glitch", 4), sdk_account("steady", 4)];
    let mut app = TestApp::new(sdk_sandbox(specs.clone()).await)
        .await
        .videosdk(&specs, 300);
    let (pool, control) = (app.pool().clone(), app.control());
    let all = Selection::default();
    for v in &mut app.config.videosdk {
        v.settle_days = 400;
    }
    assert!(app.collect(all.clone()).await.all_complete());
    let month = settled_month();
    let sessions =
        "SELECT count(*) FROM rollcall.zoom_sdk_sessions WHERE account = $1 AND month = $2";
    let joins = "SELECT count(*) FROM rollcall.zoom_sdk_session_users u
                   JOIN rollcall.zoom_sdk_sessions s USING (account, session_id)
                  WHERE u.account = $1 AND s.month = $2";
    let users_windows = |mark: &'static str| {
        format!(
            "SELECT count(*) FROM rollcall.collection_windows
              WHERE account = $1 AND stream = 'zoom_sdk_session_users' AND window_start = $2 AND {mark}"
        )
    };
    let disputed_users =
        users_windows("disputed_since IS NOT NULL AND state = 'complete' AND NOT is_final");
    let final_users = users_windows("is_final AND disputed_since IS NULL");
    let mut held = Vec::new();
    for name in ["glitch", "steady"] {
        let counts = (
            scalar(&pool, sessions, name, month).await,
            scalar(&pool, joins, name, month).await,
        );
        assert!(counts.0 > 0 && counts.1 > 0, "{name}: {counts:?}");
        held.push(counts);
    }

    for v in &mut app.config.videosdk {
        v.settle_days = 2;
    }
    let empty_list = || {
        patch(vec![
            ("/sessions", json!([])),
            ("/next_page_token", json!("")),
        ])
    };
    let empty_users = || patch(vec![("/users", json!([])), ("/next_page_token", json!(""))]);
    control.add_fault(FaultRule::on(Endpoint::SdkSessions, empty_list()));
    control.add_fault(FaultRule::on(Endpoint::SdkSessionUsers, empty_users()));
    let first = now();
    app.collect_at(all.clone(), first).await;
    for (name, held) in ["glitch", "steady"].into_iter().zip(&held) {
        let now_held = (
            scalar(&pool, sessions, name, month).await,
            scalar(&pool, joins, name, month).await,
        );
        assert_eq!(now_held, *held, "{name}: every session and join kept");
        let w = window_mark(&pool, name, "zoom_sdk_sessions", "", month).await;
        assert_eq!(
            mark_of(&w),
            DISPUTED,
            "{name}: the list awaits confirmation"
        );
        assert_eq!((w.3, w.4), (Some(held.0), Some(0)), "{name}: both counts");
        assert_eq!(
            scalar(&pool, &disputed_users, name, month).await,
            held.0,
            "{name}: every users window awaits confirmation"
        );
    }

    control.clear_faults();
    control.add_fault(
        FaultRule::on(Endpoint::SdkSessions, empty_list()).account(specs[0].api_key.clone()),
    );
    control.add_fault(
        FaultRule::on(Endpoint::SdkSessionUsers, empty_users()).account(specs[0].api_key.clone()),
    );
    app.collect_at(all.clone(), first + hours(1)).await;
    assert_eq!(
        (
            scalar(&pool, sessions, "glitch", month).await,
            scalar(&pool, joins, "glitch", month).await
        ),
        held[0],
        "under 12 hours: kept"
    );
    let w = window_mark(&pool, "glitch", "zoom_sdk_sessions", "", month).await;
    assert_eq!(mark_of(&w), DISPUTED);
    assert_eq!(
        scalar(&pool, &disputed_users, "glitch", month).await,
        held[0].0
    );
    let w = window_mark(&pool, "steady", "zoom_sdk_sessions", "", month).await;
    assert_eq!(
        mark_of(&w),
        SETTLED,
        "a clean walk finalizes the list at once"
    );
    assert_eq!(
        scalar(&pool, &final_users, "steady", month).await,
        held[1].0,
        "and every users window"
    );
    assert_eq!(
        (
            scalar(&pool, sessions, "steady", month).await,
            scalar(&pool, joins, "steady", month).await
        ),
        held[1],
        "with the stored rows"
    );

    app.collect_at(all, first + hours(13)).await;
    assert_eq!(
        (
            scalar(&pool, sessions, "glitch", month).await,
            scalar(&pool, joins, "glitch", month).await
        ),
        (0, 0),
        "confirmed 13 hours later: the month's sessions go, with their users"
    );
    let w = window_mark(&pool, "glitch", "zoom_sdk_sessions", "", month).await;
    assert_eq!(mark_of(&w), SETTLED);
}

/// A users window begins a walk (the child `running`, not committed) while a sibling completes at the same
/// moment: the sibling's check must not see the first child as it was and complete the list over a child
/// that is walked again. Played with two transactions; the first commits as soon as the second is either
/// done or waiting for a lock, so the outcome does not depend on timing.
#[tokio::test(flavor = "multi_thread")]
async fn a_list_is_never_complete_while_a_child_begins_a_walk_beside_a_completing_sibling() {
    use rollcall::store::windows::{self, LeaseOwner};
    let db = TestDb::create().await;
    rollcall::store::migrate(&db.pool).await.expect("migrate");
    let owner = LeaseOwner::for_this_process(60);
    let month = settled_month();
    let insert = |scope: &'static str,
                  stream: &'static str,
                  state: &'static str,
                  parent: Option<i64>| {
        let (pool, owner) = (db.pool.clone(), owner.id.clone());
        async move {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO rollcall.collection_windows
                   (account, stream, scope, window_start, window_end, state, parent_id, lease_owner,
                    lease_until, started_at, completed_at)
                 VALUES ('studio', $1, $2, $3, $3, $4, $5, $6, now() + interval '1 minute', now(), now())
                 RETURNING id",
            )
            .bind(stream)
            .bind(scope)
            .bind(month)
            .bind(state)
            .bind(parent)
            .bind(owner)
            .fetch_one(&pool)
            .await
            .expect("insert window")
        }
    };
    let list = insert("", "zoom_sdk_sessions", "awaiting_children", None).await;
    let again = insert("a", "zoom_sdk_session_users", "complete", Some(list)).await;
    let last = insert("b", "zoom_sdk_session_users", "running", Some(list)).await;

    let mut begins = db.pool.begin().await.expect("tx");
    windows::begin_walk_in(
        &mut begins,
        again,
        &owner,
        uuid::Uuid::new_v4(),
        &json!({}),
        now(),
    )
    .await
    .expect("begin the walk of a");
    let completes = {
        let (pool, owner) = (db.pool.clone(), owner.clone());
        tokio::spawn(async move {
            let mut tx = pool.begin().await.expect("tx");
            windows::complete(&mut tx, last, &owner, false, 0, None)
                .await
                .expect("complete b");
            tx.commit().await.expect("commit b");
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&db.pool)
        .await
        .expect("pg_stat_activity");
        if waiting > 0 || completes.is_finished() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "b neither completed nor waited"
        );
        tokio::task::yield_now().await;
    }
    begins.commit().await.expect("commit a");
    completes.await.expect("b's task");

    let states: Vec<(String, String)> = sqlx::query_as(
        "SELECT scope, state FROM rollcall.collection_windows WHERE id = ANY($1) ORDER BY scope",
    )
    .bind(vec![list, again, last])
    .fetch_all(&db.pool)
    .await
    .expect("states");
    let states: Vec<(&str, &str)> = states
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(
        states,
        [
            ("", "awaiting_children"),
            ("a", "running"),
            ("b", "complete")
        ],
        "the list waits for the child walked again"
    );
}

/// A host-report walk begun at 23:55 UTC on its month's settle day and resumed by a run at 00:05 the
/// next day read its first pages before the month settled: it completes, but not final, and a later walk
/// makes it final.
#[tokio::test(flavor = "multi_thread")]
async fn finality_is_decided_by_the_day_the_walk_began() {
    let specs = vec![zoom_account("edge", 50)];
    let mut app = TestApp::new(sandbox(specs.clone()).await)
        .await
        .zoom(&specs, 10);
    let (pool, control) = (app.pool().clone(), app.control());
    let months = reachable_months();
    let month = months[months.len() - 2];
    let end = month
        .checked_add_months(chrono::Months::new(1))
        .and_then(|d| d.pred_opt())
        .expect("date math");
    let settle_day = today() - Duration::days(1);
    // Yesterday is the settle day: final from today on.
    app.config.zoom[0].settle_days = (settle_day - end).num_days() as u32;
    let stream = only_stream("zoom_host_report");
    let name = account_name(&specs[0]);
    control.add_fault(
        FaultRule::on(Endpoint::ReportUsers, FaultKind::Hang)
            .report_type(ReportType::Active)
            .page(2),
    );
    let late = settle_day.and_hms_opt(23, 55, 0).expect("a time").and_utc();
    let cancel = tokio_util::sync::CancellationToken::new();
    let pool_for_run = rollcall::store::pool(&app.config.database.url, 4).expect("pool");
    rollcall::store::migrate(&pool_for_run)
        .await
        .expect("migrate");
    let run = {
        let (config, cancel) = (app.config.clone(), cancel.clone());
        tokio::spawn(async move {
            collector::run_once_at(&pool_for_run, &config, &stream, cancel, late).await
        })
    };
    let stream = only_stream("zoom_host_report");
    let asked = control
        .wait_for_request(
            |r| {
                r.endpoint == Endpoint::ReportUsers
                    && r.page == Some(2)
                    && r.query.get("from") == Some(&month.to_string())
                    && r.query.get("type").map(String::as_str) == Some("active")
            },
            std::time::Duration::from_secs(60),
        )
        .await;
    assert!(asked.is_some(), "the walk reached page 2 before midnight");
    // The page-1 checkpoint commits alongside the page-2 request; wait for it, not for luck.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while window_pages(&pool, &name, month).await < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "page 1 was checkpointed"
        );
        tokio::task::yield_now().await;
    }
    cancel.cancel();
    let _ = run.await.expect("the run task");
    control.clear_faults();
    let w = window_mark(&pool, &name, "zoom_host_report", "active", month).await;
    assert_eq!(w.0, "running", "interrupted mid-walk");

    let after_midnight = today().and_hms_opt(0, 5, 0).expect("a time").and_utc();
    app.collect_at(stream.clone(), after_midnight).await;
    let resumed = control.requests().iter().any(|r| {
        r.endpoint == Endpoint::ReportUsers
            && r.query.get("type").map(String::as_str) == Some("active")
            && r.query.get("from") == Some(&month.to_string())
            && r.page == Some(2)
            && r.status == 200
    });
    assert!(resumed, "the walk resumed from its page-2 token");
    let w = window_mark(&pool, &name, "zoom_host_report", "active", month).await;
    assert_eq!(
        (w.0.as_str(), w.1),
        ("complete", false),
        "judged by the day it began"
    );
    let totals_final: bool = sqlx::query_scalar(
        "SELECT is_final FROM rollcall.zoom_host_reports WHERE account = $1 AND month = $2 AND report_type = 'active'",
    )
    .bind(&name)
    .bind(month)
    .fetch_one(&pool)
    .await
    .expect("totals");
    assert!(!totals_final);

    app.collect_at(stream, after_midnight + Duration::minutes(10))
        .await;
    let w = window_mark(&pool, &name, "zoom_host_report", "active", month).await;
    assert_eq!(
        (w.0.as_str(), w.1),
        ("complete", true),
        "a walk begun after the settle day is final"
    );
}

async fn window_pages(pool: &sqlx::PgPool, account: &str, month: NaiveDate) -> i32 {
    sqlx::query_scalar(
        "SELECT pages FROM rollcall.collection_windows
          WHERE account = $1 AND stream = 'zoom_host_report' AND scope = 'active' AND window_start = $2",
    )
    .bind(account)
    .bind(month)
    .fetch_one(pool)
    .await
    .expect("pages")
}

/// What an operator sees of a dispute: `status` lists the window with both counts, `coverage` shows the
/// month as awaiting confirmation with them, and `/metrics` counts the windows and sums the counts.
#[tokio::test(flavor = "multi_thread")]
async fn status_coverage_and_metrics_show_a_window_awaiting_confirmation_with_both_counts() {
    let specs = vec![zoom_account("glitch", 60)];
    let mut app = TestApp::new(sandbox(specs.clone()).await)
        .await
        .zoom(&specs, 300);
    let (pool, control) = (app.pool().clone(), app.control());
    let stream = only_stream("zoom_host_report");
    app.config.zoom[0].settle_days = 400;
    assert!(app.collect(stream.clone()).await.all_complete());
    app.config.zoom[0].settle_days = 2;
    control.add_fault(
        FaultRule::on(
            Endpoint::ReportUsers,
            patch(vec![
                ("/users", json!([])),
                ("/total_records", json!(0)),
                ("/next_page_token", json!("")),
            ]),
        )
        .report_type(ReportType::Active),
    );
    app.collect(stream).await;
    let month = settled_month();
    let name = account_name(&specs[0]);
    let w = window_mark(&pool, &name, "zoom_host_report", "active", month).await;
    assert_eq!(mark_of(&w), DISPUTED);
    let (stored, walked) = (w.3.expect("stored count"), w.4.expect("walked count"));
    assert!(stored > 0 && walked == 0, "{w:?}");

    let status = app.cli(&["status", "--json"]).await;
    assert_eq!(status.code, 0, "{}", status.output());
    let rows: Value = serde_json::from_str(&status.stdout).expect("status JSON");
    let row = rows
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["stream"] == "zoom_host_report"))
        .expect("a host report row");
    let listed = row["awaiting_confirmation"]
        .as_array()
        .and_then(|ws| {
            ws.iter()
                .find(|w| w["scope"] == "active" && w["window_start"] == json!(month.to_string()))
        })
        .unwrap_or_else(|| panic!("the disputed window is listed: {row}"));
    assert_eq!(
        (&listed["stored"], &listed["walked"]),
        (&json!(stored), &json!(0))
    );
    let table = app.cli(&["status"]).await;
    assert!(
        table.stdout.contains("AWAITING CONFIRM"),
        "{}",
        table.stdout
    );

    let coverage = app.cli(&["coverage", "--months", "12", "--json"]).await;
    assert_eq!(coverage.code, 0, "{}", coverage.output());
    let matrix: Value = serde_json::from_str(&coverage.stdout).expect("coverage JSON");
    let cell = matrix["accounts"][0]["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["stream"] == "zoom_host_report"))
        .and_then(|s| {
            s["months"]
                .as_array()?
                .iter()
                .find(|m| m["month"] == json!(month.format("%Y-%m").to_string()))
        })
        .cloned()
        .expect("the month's cell");
    assert_eq!(cell["state"], "awaiting_confirmation", "{cell}");
    assert_eq!(
        cell["awaiting_confirmation"],
        json!({"stored": stored, "walked": 0}),
        "{cell}"
    );

    let (windows, stored_sum): (i64, i64) = sqlx::query_as(
        "SELECT count(*), coalesce(sum(stored_count), 0)::int8 FROM rollcall.collection_windows
          WHERE stream = 'zoom_host_report' AND disputed_since IS NOT NULL",
    )
    .fetch_one(&pool)
    .await
    .expect("disputes");
    app.config.schedule.run_on_start = false;
    app.config.schedule.cron = "0 0 0 1 1 *".into();
    let config = app.write_config();
    let port = free_port();
    let _daemon = rollcall(&config.path, &["run"])
        .env("ROLLCALL__HTTP__LISTEN", format!("127.0.0.1:{port}"))
        .spawn()
        .expect("spawn rollcall run");
    let url = format!("http://127.0.0.1:{port}/metrics");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let metrics = loop {
        if let Ok(reply) = reqwest::get(&url).await {
            break reply.text().await.expect("metrics body");
        }
        assert!(tokio::time::Instant::now() < deadline, "/metrics answers");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let gauge = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name) && l.contains("stream=\"zoom_host_report\""))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    assert_eq!(
        gauge("rollcall_windows_awaiting_confirmation{"),
        Some(windows as f64),
        "{metrics}"
    );
    assert_eq!(
        gauge("rollcall_awaiting_confirmation_stored{"),
        Some(stored_sum as f64),
        "{metrics}"
    );
    assert_eq!(
        gauge("rollcall_awaiting_confirmation_walked{"),
        Some(0.0),
        "{metrics}"
    );
}

/// Every stored row of a month's active host report, whole (values, `walk_id`, `first_seen_at`,
/// `last_seen_at`): what "changes nothing" is compared with.
async fn host_month_rows(pool: &sqlx::PgPool, account: &str, month: NaiveDate) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT t::text FROM rollcall.zoom_host_report_users t
          WHERE account = $1 AND month = $2 AND report_type = 'active'
          UNION ALL
         SELECT r::text FROM rollcall.zoom_host_reports r
          WHERE account = $1 AND month = $2 AND report_type = 'active'
          ORDER BY 1",
    )
    .bind(account)
    .bind(month)
    .fetch_all(pool)
    .await
    .expect("host report rows")
}

/// A finalizing walk of three pages whose first page lowers a stored user's numbers and whose later pages
/// drop users: the walk is disputed at its last page, and every row its earlier pages overwrote is put
/// back as it was, even when the walk was killed (`kill -9`) after page 2 and resumed by the next run from
/// its checkpoint. A run under 12 hours later changes nothing either; one at least 12 hours later applies
/// the walk.
#[tokio::test(flavor = "multi_thread")]
async fn a_disputed_walk_of_three_pages_leaves_every_row_as_it_was_across_a_kill() {
    let specs = vec![zoom_account("paged", 60)];
    let mut app = TestApp::new(sandbox(specs.clone()).await)
        .await
        .zoom(&specs, 300);
    let (pool, control) = (app.pool().clone(), app.control());
    let name = account_name(&specs[0]);
    let month = settled_month();
    // Only this month's windows exist, so the fault on "page 3" can only hit its walk.
    let only_month = Selection {
        stream: Some("zoom_host_report".into()),
        from: Some(month),
        to: Some(month),
        account: None,
    };
    app.config.zoom[0].settle_days = 400;
    assert!(app.collect(only_month.clone()).await.all_complete());
    let before = host_month_rows(&pool, &name, month).await;
    let active = "SELECT count(*) FROM rollcall.zoom_host_report_users
                   WHERE account = $1 AND month = $2 AND report_type = 'active'";
    let held = scalar(&pool, active, &name, month).await;
    assert!(held >= 5, "enough active users for three pages: {held}");
    let page_size = (held + 2) / 3;
    app.config.zoom[0].page_size = page_size as u32;
    app.config.zoom[0].settle_days = 2;

    // Each page agrees with itself: `page_size` records in all. Page 1 lowers its first user to 0.
    let faults = |hang_on_page_3: bool| {
        control.clear_faults();
        let active = |kind: FaultKind, page: u32| {
            FaultRule::on(Endpoint::ReportUsers, kind)
                .report_type(ReportType::Active)
                .page(page)
        };
        if hang_on_page_3 {
            control.add_fault(active(FaultKind::Hang, 3).times(1));
        }
        control.add_fault(active(
            patch(vec![
                ("/users/0/meetings", json!(0)),
                ("/users/0/participants", json!(0)),
                ("/users/0/meeting_minutes", json!(0)),
                ("/total_records", json!(page_size)),
            ]),
            1,
        ));
        for page in [2, 3] {
            control.add_fault(active(
                patch(vec![
                    ("/users", json!([])),
                    ("/total_records", json!(page_size)),
                ]),
                page,
            ));
        }
    };
    faults(true);
    let config = app.write_config();
    let to = month.to_string();
    let mut child = rollcall(
        &config.path,
        &[
            "backfill",
            "--from",
            &to,
            "--to",
            &to,
            "--stream",
            "zoom_host_report",
        ],
    )
    .spawn()
    .expect("spawn");
    let hung = control
        .wait_for_request(
            |r| {
                r.endpoint == Endpoint::ReportUsers
                    && r.page == Some(3)
                    && r.query.get("type").map(String::as_str) == Some("active")
            },
            std::time::Duration::from_secs(60),
        )
        .await;
    assert!(hung.is_some(), "the walk reached page 3");
    child.start_kill().expect("SIGKILL");
    let _ = child.wait().await;
    assert_ne!(
        host_month_rows(&pool, &name, month).await,
        before,
        "pages 1 and 2 were written before the kill"
    );
    let set_aside: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rollcall.walk_undo_rows u
           JOIN rollcall.collection_windows w ON w.id = u.window_id
          WHERE w.account = $1 AND w.scope = 'active' AND w.window_start = $2",
    )
    .bind(&name)
    .bind(month)
    .fetch_one(&pool)
    .await
    .expect("set aside");
    assert_eq!(set_aside, held, "the rows as they were survive the kill");

    // The next run resumes the walk at page 3 and disputes it: everything is as it was.
    faults(false);
    let first = now();
    app.collect_at(only_month.clone(), first).await;
    let resumed = control.requests().into_iter().any(|r| {
        r.endpoint == Endpoint::ReportUsers
            && r.page == Some(3)
            && r.status == 200
            && r.query.get("type").map(String::as_str) == Some("active")
    });
    assert!(resumed, "the walk was resumed at page 3");
    assert_eq!(
        host_month_rows(&pool, &name, month).await,
        before,
        "every stored row, values included, is as it was before the walk"
    );
    let w = window_mark(&pool, &name, "zoom_host_report", "active", month).await;
    assert_eq!(mark_of(&w), DISPUTED, "awaiting confirmation");
    assert_eq!((w.3, w.4), (Some(held), Some(page_size)), "both counts");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM rollcall.walk_undo")
        .fetch_one(&pool)
        .await
        .expect("undo");
    assert_eq!(left, 0, "nothing is left set aside");

    // An hour later the same replies, from page 1: still nothing changes.
    faults(false);
    app.collect_at(only_month.clone(), first + hours(1)).await;
    assert_eq!(host_month_rows(&pool, &name, month).await, before);
    let w = window_mark(&pool, &name, "zoom_host_report", "active", month).await;
    assert_eq!(mark_of(&w), DISPUTED);

    // 13 hours after the first dispute the walk is confirmed and applied.
    app.collect_at(only_month, first + hours(13)).await;
    assert_eq!(scalar(&pool, active, &name, month).await, page_size);
    let zeroed = scalar(
        &pool,
        "SELECT count(*) FROM rollcall.zoom_host_report_users
          WHERE account = $1 AND month = $2 AND report_type = 'active'
            AND meetings = 0 AND participants = 0 AND meeting_minutes = 0",
        &name,
        month,
    )
    .await;
    assert_eq!(zeroed, 1, "the lowered user is applied too");
    let w = window_mark(&pool, &name, "zoom_host_report", "active", month).await;
    assert_eq!(mark_of(&w), SETTLED);
}

/// A finalizing walk that only lowers a stored user's numbers (every user still listed, the totals as
/// they were) is a shrink too: disputed, every row as it was.
#[tokio::test(flavor = "multi_thread")]
async fn a_finalizing_walk_that_only_lowers_a_users_numbers_is_disputed() {
    let specs = vec![zoom_account("lowered", 60)];
    let mut app = TestApp::new(sandbox(specs.clone()).await)
        .await
        .zoom(&specs, 300);
    let (pool, control) = (app.pool().clone(), app.control());
    let name = account_name(&specs[0]);
    let month = settled_month();
    let stream = only_stream("zoom_host_report");
    app.config.zoom[0].settle_days = 400;
    assert!(app.collect(stream.clone()).await.all_complete());
    let before = host_month_rows(&pool, &name, month).await;
    let held = scalar(
        &pool,
        "SELECT count(*) FROM rollcall.zoom_host_report_users
          WHERE account = $1 AND month = $2 AND report_type = 'active'",
        &name,
        month,
    )
    .await;
    // Two pages: the lowered user is on the first, which is written before the walk ends.
    app.config.zoom[0].page_size = ((held + 1) / 2) as u32;
    app.config.zoom[0].settle_days = 2;
    control.add_fault(
        FaultRule::on(
            Endpoint::ReportUsers,
            patch(vec![("/users/0/meeting_minutes", json!(0))]),
        )
        .report_type(ReportType::Active)
        .page(1),
    );
    let first = now();
    app.collect_at(stream.clone(), first).await;
    assert_eq!(host_month_rows(&pool, &name, month).await, before);
    let w = window_mark(&pool, &name, "zoom_host_report", "active", month).await;
    assert_eq!(mark_of(&w), DISPUTED, "lowering a value is a shrink");
    assert_eq!((w.3, w.4), (Some(held), Some(held)), "both counts");

    // The reply heals: a clean walk agrees with what is stored and finalizes at once.
    control.clear_faults();
    app.collect_at(stream, first + hours(1)).await;
    let w = window_mark(&pool, &name, "zoom_host_report", "active", month).await;
    assert_eq!(mark_of(&w), SETTLED);
    let lowered = scalar(
        &pool,
        "SELECT count(*) FROM rollcall.zoom_host_report_users
          WHERE account = $1 AND month = $2 AND report_type = 'active' AND meeting_minutes = 0",
        &name,
        month,
    )
    .await;
    assert_eq!(lowered, 0);
}

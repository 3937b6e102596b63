//! Trust: no reply the collector cannot prove may delete, finalize or wedge history. Each test is a hostile
//! API or a careless operator, played against collection in-process, the real sandbox over HTTP and a fresh PostgreSQL; the real binary
//! where a walk is killed mid-page.

use crate::common::*;
use rollcall_sandbox::{Endpoint, FaultKind, FaultRule, ReportType};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

fn set(pointer: &str, value: Value) -> FaultKind {
    FaultKind::Patch {
        set: vec![(pointer.to_string(), value)],
        remove: Vec::new(),
    }
}

fn remove(pointer: &str) -> FaultKind {
    FaultKind::Patch {
        set: Vec::new(),
        remove: vec![pointer.to_string()],
    }
}

/// What a 200 that proves nothing looks like, for a page whose list is `list`.
fn hostile_envelopes(list: &str) -> Vec<(String, FaultKind)> {
    let pointer = format!("/{list}");
    vec![
        (format!("{list} missing"), remove(&pointer)),
        (format!("{list} null"), set(&pointer, Value::Null)),
        (format!("{list} an object"), set(&pointer, json!({"0": {}}))),
        (format!("{list} a string"), set(&pointer, json!("[]"))),
        ("token a number".into(), set("/next_page_token", json!(7))),
        ("token true".into(), set("/next_page_token", json!(true))),
        (
            "token an object".into(),
            set("/next_page_token", json!({"t": "x"})),
        ),
        (
            "token whitespace".into(),
            set("/next_page_token", json!("   ")),
        ),
    ]
}

async fn count(pool: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn sdk_rows(pool: &sqlx::PgPool) -> (i64, i64) {
    (
        count(pool, "SELECT count(*) FROM rollcall.zoom_sdk_sessions").await,
        count(pool, "SELECT count(*) FROM rollcall.zoom_sdk_session_users").await,
    )
}

/// Per month: (host report users, Video SDK sessions, Video SDK joins).
async fn rows_by_month(pool: &sqlx::PgPool) -> BTreeMap<chrono::NaiveDate, (i64, i64, i64)> {
    let rows: Vec<(chrono::NaiveDate, i64, i64, i64)> = sqlx::query_as(
        "SELECT month, sum(hosts)::bigint, sum(sessions)::bigint, sum(joins)::bigint FROM (
             SELECT month, count(*) AS hosts, 0 AS sessions, 0 AS joins
               FROM rollcall.zoom_host_report_users GROUP BY month
             UNION ALL
             SELECT month, 0, count(*), 0 FROM rollcall.zoom_sdk_sessions GROUP BY month
             UNION ALL
             SELECT s.month, 0, 0, count(*) FROM rollcall.zoom_sdk_session_users u
               JOIN rollcall.zoom_sdk_sessions s USING (account, session_id) GROUP BY s.month
         ) AS per_table GROUP BY month",
    )
    .fetch_all(pool)
    .await
    .expect("rows by month");
    rows.into_iter()
        .map(|(month, hosts, sessions, joins)| (month, (hosts, sessions, joins)))
        .collect()
}

async fn sdk_app(specs: &[rollcall_sandbox::VideoSdkAccountSpec]) -> TestApp {
    TestApp::new(sdk_sandbox(specs.to_vec()).await)
        .await
        .videosdk(specs, 300)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_video_sdk_reply_without_its_list_or_with_a_bad_token_fails_and_deletes_nothing() {
    let specs = vec![sdk_account("studio", 8)];
    let mut app = sdk_app(&specs).await;
    // Sessions stay unsettled, so every run asks for their users again whatever the date (with the
    // default, on the 1st of a month no session may have ended recently enough to be asked).
    app.config.videosdk[0].settle_days = 90;
    let (db, control) = (&app.db, app.control());
    let first = app.collect_all().await;
    assert!(first.all_complete(), "first collect: {first:?}");
    let held = assert_sdk_mirror(app.pool(), &control, &specs[0]).await;

    for endpoint in [Endpoint::SdkSessions, Endpoint::SdkSessionUsers] {
        let list = if endpoint == Endpoint::SdkSessions {
            "sessions"
        } else {
            "users"
        };
        for (what, kind) in hostile_envelopes(list) {
            control.clear_faults();
            control.add_fault(FaultRule::on(endpoint, kind));
            let run = app.collect_all().await;
            assert!(
                !run.all_complete(),
                "{list}, {what}: a malformed page leaves the run incomplete: {run:?}"
            );
            assert_eq!(
                assert_sdk_mirror(app.pool(), &control, &specs[0]).await,
                held,
                "{list}, {what}: nothing stored was deleted"
            );
            let failed: Vec<String> = sqlx::query_scalar(
                "SELECT last_error FROM rollcall.collection_windows WHERE state = 'failed' AND stream = $1",
            )
            .bind(if list == "sessions" { "zoom_sdk_sessions" } else { "zoom_sdk_session_users" })
            .fetch_all(&db.pool)
            .await
            .expect("failed windows");
            assert!(!failed.is_empty(), "{list}, {what}: the window failed");
            let named = if what.starts_with("token") {
                "next_page_token"
            } else {
                list
            };
            assert!(
                failed.iter().all(|e| e.contains(named)),
                "{list}, {what}: the error names `{named}`: {failed:?}"
            );
            let complete_lists = count(
                &db.pool,
                "SELECT count(*) FROM rollcall.collection_windows p WHERE p.stream = 'zoom_sdk_sessions'
                   AND p.state = 'complete' AND EXISTS (SELECT 1 FROM rollcall.collection_windows c
                   WHERE c.parent_id = p.id AND c.state <> 'complete')",
            )
            .await;
            assert_eq!(
                complete_lists, 0,
                "{list}, {what}: no list is complete before its users"
            );
        }
    }
    control.clear_faults();
    let healed = app.collect_all().await;
    assert!(healed.all_complete(), "after the faults: {healed:?}");
    assert_sdk_mirror(app.pool(), &control, &specs[0]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_report_or_rocketchat_reply_without_its_list_fails_and_deletes_nothing() {
    let zoom = vec![zoom_account("acme", 40)];
    let workspace = rollcall_sandbox::RocketChatWorkspaceSpec::new("chat", "UTC");
    let sandbox = rollcall_sandbox::spawn(rollcall_sandbox::SandboxConfig {
        listen: "127.0.0.1:0".into(),
        seed: 7,
        zoom: zoom.clone(),
        rocketchat: vec![workspace.clone()],
        ..sandbox_defaults()
    })
    .await
    .expect("sandbox");
    let app = TestApp::new(sandbox)
        .await
        .zoom(&zoom, 300)
        .rocketchat(&[workspace]);
    let (db, control) = (&app.db, app.control());
    let first = app.collect_all().await;
    assert!(first.all_complete(), "first collect: {first:?}");
    let users = "SELECT count(*) FROM rollcall.zoom_host_report_users";
    let days = "SELECT count(*) FROM rollcall.rc_active_user_days";
    let (held_users, held_days) = (count(&db.pool, users).await, count(&db.pool, days).await);
    assert!(held_users > 0 && held_days > 0);

    let mut cases: Vec<(Endpoint, String, FaultKind)> = hostile_envelopes("users")
        .into_iter()
        .map(|(what, kind)| (Endpoint::ReportUsers, what, kind))
        .collect();
    for (what, kind) in [
        ("month missing", remove("/month")),
        ("month null", set("/month", Value::Null)),
        ("month an object", set("/month", json!({"day": 1}))),
    ] {
        cases.push((Endpoint::RcActiveUsers, what.into(), kind));
    }
    for (endpoint, what, kind) in cases {
        control.clear_faults();
        control.add_fault(FaultRule::on(endpoint, kind));
        let run = app.collect_all().await;
        assert!(!run.all_complete(), "{what}: {run:?}");
        assert_eq!(
            count(&db.pool, users).await,
            held_users,
            "{what}: host rows kept"
        );
        assert_eq!(
            count(&db.pool, days).await,
            held_days,
            "{what}: chat days kept"
        );
        let named = match what.split(' ').next() {
            Some("token") => "next_page_token",
            Some(list) => list,
            None => unreachable!(),
        };
        let errors: Vec<String> = sqlx::query_scalar(
            "SELECT last_error FROM rollcall.collection_windows WHERE state = 'failed'",
        )
        .fetch_all(&db.pool)
        .await
        .expect("failed windows");
        assert!(
            !errors.is_empty() && errors.iter().all(|e| e.contains(named)),
            "{what}: failed windows name `{named}`: {errors:?}"
        );
    }
    control.clear_faults();
    let healed = app.collect_all().await;
    assert!(healed.all_complete(), "after the faults: {healed:?}");
    assert_mirror(app.pool(), &control, &zoom[0]).await;
}

/// A run early on the suite's day (UTC): a run 13 hours later still falls on the same day, so the current
/// month's list asks for the same range (a later "today" would ask the sandbox for a day it has not reached).
fn early_today() -> chrono::DateTime<chrono::Utc> {
    today()
        .and_hms_opt(0, 5, 0)
        .expect("a valid time")
        .and_utc()
}

/// Windows of `stream` awaiting confirmation, and the rows their disputing walks would remove.
async fn awaiting(pool: &sqlx::PgPool, stream: &str, except_scopes: &[String]) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*), coalesce(sum(stored_count - walked_count), 0)::int8
           FROM rollcall.collection_windows
          WHERE stream = $1 AND scope <> ALL($2) AND disputed_since IS NOT NULL
            AND state = 'complete' AND NOT is_final",
    )
    .bind(stream)
    .bind(except_scopes)
    .fetch_one(pool)
    .await
    .expect("windows awaiting confirmation")
}

/// The Video SDK gives no totals: a walk that misses a session or a join, even of a month that is not
/// about to settle, changes nothing and awaits confirmation; a walk of a run that began at least 12 hours
/// later must miss them again before anything is deleted (the engine's rule, as for every stream).
#[tokio::test(flavor = "multi_thread")]
async fn a_vanished_video_sdk_session_is_deleted_only_when_two_runs_agree() {
    let specs = vec![sdk_account("studio", 8)];
    let mut app = sdk_app(&specs).await;
    // Every session of the open months stays unsettled, so each run walks its users again whatever the
    // date: this test is about what such walks may delete, not about when a users window becomes final.
    app.config.videosdk[0].settle_days = 90;
    let (db, control) = (&app.db, app.control());
    let start = early_today();
    assert!(app
        .collect_at(Selection::default(), start)
        .await
        .all_complete());
    // The first session listed in each month still walked (not final with settle_days = 90).
    let vanished: Vec<String> = reachable_months()
        .into_iter()
        .filter(|first| (today() - last_of_month(*first)).num_days() <= 90)
        .filter_map(|month| {
            let listed = control.sdk_sessions("studio-key", month);
            Some(listed.first()?["id"].as_str()?.to_string())
        })
        .collect();
    assert!(!vanished.is_empty(), "an open month has a session");
    let (sessions, users) = sdk_rows(&db.pool).await;
    let its_users: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rollcall.zoom_sdk_session_users WHERE session_id = ANY($1)",
    )
    .bind(&vanished)
    .fetch_one(&db.pool)
    .await
    .expect("count");
    assert!(its_users > 0);

    // Zoom stops listing the session (and the first join of every other session's first page).
    let hide = || {
        control.clear_faults();
        control.add_fault(FaultRule::on(Endpoint::SdkSessions, remove("/sessions/0")).page(1));
        control.add_fault(FaultRule::on(Endpoint::SdkSessionUsers, remove("/users/0")).page(1));
    };
    hide();
    let first = start + chrono::Duration::minutes(5);
    let second = app.collect_at(Selection::default(), first).await;
    assert!(second.all_complete(), "{second:?}");
    assert_eq!(
        sdk_rows(&db.pool).await,
        (sessions, users),
        "one run deletes nothing"
    );
    let lists = awaiting(&db.pool, "zoom_sdk_sessions", &[]).await;
    assert!(
        lists.0 >= 1 && lists.1 >= 1,
        "the list that misses the session awaits confirmation: {lists:?}"
    );
    let (_, missed_joins_elsewhere) = awaiting(&db.pool, "zoom_sdk_session_users", &vanished).await;
    assert!(
        missed_joins_elsewhere > 0,
        "users windows that miss a join await confirmation"
    );

    // The next day's run.
    hide();
    let third = app
        .collect_at(Selection::default(), first + chrono::Duration::hours(13))
        .await;
    assert!(third.all_complete(), "{third:?}");
    let (after_sessions, after_users) = sdk_rows(&db.pool).await;
    assert_eq!(
        after_sessions,
        sessions - vanished.len() as i64,
        "a second run that misses it deletes it"
    );
    assert_eq!(
        after_users,
        users - its_users - missed_joins_elsewhere,
        "its users and the missed joins go too"
    );
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM rollcall.zoom_sdk_session_users WHERE session_id = ANY($1))
              + (SELECT count(*) FROM rollcall.collection_windows WHERE scope = ANY($1))",
    )
    .bind(&vanished)
    .fetch_one(&db.pool)
    .await
    .expect("count");
    assert_eq!(left, 0, "nothing of the vanished session is left");
    assert_eq!(
        awaiting(&db.pool, "zoom_sdk_session_users", &[]).await.0
            + awaiting(&db.pool, "zoom_sdk_sessions", &[]).await.0,
        0,
        "nothing awaits confirmation any more"
    );
}

fn last_of_month(first: chrono::NaiveDate) -> chrono::NaiveDate {
    first
        .checked_add_months(chrono::Months::new(1))
        .and_then(|next| next.pred_opt())
        .expect("date math")
}

/// Two runs minutes apart (a manual `collect` after the daemon's) may have met the same short glitch
/// upstream: the second one deletes nothing, and neither does one 11 hours after the first. Only a run
/// that began at least 12 hours after it does.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_minutes_later_deletes_no_video_sdk_history() {
    let specs = vec![sdk_account("studio", 8)];
    let mut app = sdk_app(&specs).await;
    // Every run asks for the sessions' users again whatever the date (see above).
    app.config.videosdk[0].settle_days = 90;
    let (db, control) = (&app.db.pool, app.control());
    let start = early_today();
    assert!(app
        .collect_at(Selection::default(), start)
        .await
        .all_complete());
    let held = sdk_rows(db).await;
    control.add_fault(FaultRule::on(Endpoint::SdkSessions, remove("/sessions/0")).page(1));
    control.add_fault(FaultRule::on(Endpoint::SdkSessionUsers, remove("/users/0")).page(1));
    let first = start + chrono::Duration::minutes(5);
    let at = |minutes: i64| first + chrono::Duration::minutes(minutes);
    let disputed_by_first = app.collect_at(Selection::default(), at(0)).await;
    assert!(disputed_by_first.all_complete(), "{disputed_by_first:?}");
    let marked = (
        awaiting(db, "zoom_sdk_sessions", &[]).await.1,
        awaiting(db, "zoom_sdk_session_users", &[]).await.1,
    );
    assert!(marked.0 > 0 && marked.1 > 0, "{marked:?}");

    let minutes_later = app.collect_at(Selection::default(), at(5)).await;
    assert!(minutes_later.all_complete(), "{minutes_later:?}");
    assert_eq!(
        sdk_rows(db).await,
        held,
        "a run minutes later deletes nothing"
    );
    let still = (
        awaiting(db, "zoom_sdk_sessions", &[]).await.1,
        awaiting(db, "zoom_sdk_session_users", &[]).await.1,
    );
    assert_eq!(still, marked, "the windows still await confirmation");

    assert!(app
        .collect_at(Selection::default(), at(11 * 60))
        .await
        .all_complete());
    assert_eq!(
        sdk_rows(db).await,
        held,
        "11 hours after the first is not enough"
    );

    assert!(app
        .collect_at(Selection::default(), at(13 * 60))
        .await
        .all_complete());
    let after = sdk_rows(db).await;
    assert!(
        after.0 == held.0 - marked.0 && after.1 <= held.1 - marked.1,
        "a run 13 hours after the first deletes the sessions (and their joins) it misses again: {held:?} -> {after:?}, {marked:?} awaiting"
    );
    // A deleted session's joins go with it (a session still open has none, so the count alone cannot tell).
    let orphans: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rollcall.zoom_sdk_session_users u
          WHERE NOT EXISTS (SELECT 1 FROM rollcall.zoom_sdk_sessions s
                             WHERE s.account = u.account AND s.session_id = u.session_id)",
    )
    .fetch_one(db)
    .await
    .expect("orphan joins");
    assert_eq!(orphans, 0, "no join outlives its session");
    let left = (
        awaiting(db, "zoom_sdk_sessions", &[]).await.0,
        awaiting(db, "zoom_sdk_session_users", &[]).await.0,
    );
    assert_eq!(left, (0, 0), "nothing is left awaiting confirmation");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_video_sdk_session_missing_from_one_run_that_comes_back_is_kept() {
    let specs = vec![sdk_account("studio", 8)];
    let app = sdk_app(&specs).await;
    let (db, control) = (&app.db, app.control());
    assert!(app.collect_all().await.all_complete());
    let held = sdk_rows(&db.pool).await;
    control.add_fault(FaultRule::on(Endpoint::SdkSessions, remove("/sessions/0")).page(1));
    control.add_fault(FaultRule::on(Endpoint::SdkSessionUsers, remove("/users/0")).page(1));
    assert!(app.collect_all().await.all_complete());
    assert_eq!(sdk_rows(&db.pool).await, held);
    assert!(awaiting(&db.pool, "zoom_sdk_sessions", &[]).await.0 > 0);
    control.clear_faults();
    assert!(app.collect_all().await.all_complete());
    assert_sdk_mirror(app.pool(), &control, &specs[0]).await;
    let left = awaiting(&db.pool, "zoom_sdk_sessions", &[]).await.0
        + awaiting(&db.pool, "zoom_sdk_session_users", &[]).await.0;
    assert_eq!(left, 0, "listed again: nothing awaits confirmation");
}

/// The walk that makes a month final and misses a session changes nothing (DESIGN principle 8): it neither
/// marks nor deletes, so the session stays in the analyst views, and the month stays complete but not final,
/// awaiting confirmation, until a later run settles it.
#[tokio::test(flavor = "multi_thread")]
async fn a_settling_walk_that_misses_a_session_keeps_the_month_open_until_a_later_run_settles_it() {
    let specs = vec![sdk_account("studio", 8)];
    let mut app = sdk_app(&specs).await;
    let (db, control) = (&app.db.pool, app.control());
    // Nothing settles yet: every month is walked again by the next run.
    app.config.videosdk[0].settle_days = 400;
    assert!(app.collect_all().await.all_complete());
    let finals = "SELECT count(*) FROM rollcall.collection_windows WHERE stream LIKE 'zoom_sdk_session%' AND is_final";
    assert_eq!(count(db, finals).await, 0);
    let months = reachable_months();
    let month = months[months.len() - 2];
    let hidden = control.sdk_sessions("studio-key", month)[0]["id"]
        .as_str()
        .expect("last month has a session")
        .to_string();
    let in_view = |session: String| async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT coalesce(sum(d.sessions), 0)::int8 FROM rollcall.zoom_sdk_daily d
               JOIN rollcall.zoom_sdk_sessions s
                 ON s.account = d.account AND (s.start_time AT TIME ZONE 'UTC')::date = d.day
              WHERE s.session_id = $1",
        )
        .bind(session)
        .fetch_one(db)
        .await
        .expect("view")
    };
    let day_before = in_view(hidden.clone()).await;
    assert!(day_before > 0, "the session is in zoom_sdk_daily");
    let month_state = |m: chrono::NaiveDate| async move {
        sqlx::query_as::<_, (String, bool, i64, i64)>(
            "SELECT p.state, p.is_final,
                    (SELECT count(*) FROM rollcall.collection_windows c WHERE c.parent_id = p.id),
                    (SELECT count(*) FROM rollcall.collection_windows c
                      WHERE c.parent_id = p.id AND c.state = 'complete' AND c.is_final)
               FROM rollcall.collection_windows p
              WHERE p.stream = 'zoom_sdk_sessions' AND p.window_start = $1",
        )
        .bind(m)
        .fetch_one(db)
        .await
        .expect("month")
    };

    // The run that settles last month misses one session of its list and the first join of each
    // session's users. settle_days = 0 settles last month on any date, the 1st included.
    app.config.videosdk[0].settle_days = 0;
    control.add_fault(FaultRule::on(Endpoint::SdkSessions, remove("/sessions/0")).page(1));
    control.add_fault(FaultRule::on(Endpoint::SdkSessionUsers, remove("/users/0")).page(1));
    let settling = app.collect_all().await;
    assert!(settling.all_complete(), "{settling:?}");
    let marked: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "SELECT missing_since FROM rollcall.zoom_sdk_sessions WHERE session_id = $1",
    )
    .bind(&hidden)
    .fetch_one(db)
    .await
    .expect("the session is kept");
    assert!(
        marked.is_none(),
        "the settling walk changes nothing: no mark"
    );
    assert_eq!(
        in_view(hidden.clone()).await,
        day_before,
        "and the session stays in the view"
    );
    let (state, is_final, children, final_children) = month_state(month).await;
    assert_eq!(
        (state.as_str(), is_final, final_children),
        ("complete", false, 0),
        "complete, but neither the list nor any users window ({children}) that misses rows is final"
    );
    let awaiting: bool = sqlx::query_scalar(
        "SELECT disputed_since IS NOT NULL FROM rollcall.collection_windows
          WHERE stream = 'zoom_sdk_sessions' AND window_start = $1",
    )
    .bind(month)
    .fetch_one(db)
    .await
    .expect("the month's list");
    assert!(awaiting, "the month's list awaits confirmation");

    control.clear_faults();
    let settled = app.collect_all().await;
    assert!(settled.all_complete(), "{settled:?}");
    let marks = count(
        db,
        "SELECT (SELECT count(*) FROM rollcall.zoom_sdk_sessions WHERE missing_since IS NOT NULL)
              + (SELECT count(*) FROM rollcall.zoom_sdk_session_users WHERE missing_since IS NOT NULL)",
    )
    .await;
    assert_eq!(marks, 0, "listed again: no mark is left");
    assert_eq!(
        in_view(hidden.clone()).await,
        day_before,
        "the session is back in the view"
    );
    let (state, is_final, children, final_children) = month_state(month).await;
    assert_eq!(
        (state.as_str(), is_final, final_children),
        ("complete", true, children),
        "the month is final once nothing in it is marked"
    );
    assert_sdk_mirror(app.pool(), &control, &specs[0]).await;

    control.clear_requests();
    assert!(app.collect_all().await.all_complete());
    assert!(
        !control
            .requests()
            .iter()
            .any(|r| r.endpoint == Endpoint::SdkSessions
                && r.query.get("from") == Some(&month.to_string())),
        "a final month is not listed again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_list_shows_awaiting_children_until_every_users_window_is_complete() {
    let specs = vec![sdk_account("studio", 6)];
    let app = sdk_app(&specs).await;
    let (db, control) = (&app.db, app.control());
    control.add_fault(FaultRule::on(
        Endpoint::SdkSessionUsers,
        FaultKind::ServerError,
    ));
    // Every users window fails: no list whose sessions have users windows may say complete.
    let first = app.collect_all().await;
    assert!(!first.all_complete(), "{first:?}");
    let (awaiting, falsely_complete): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE p.state = 'awaiting_children'),
                count(*) FILTER (WHERE p.state = 'complete' AND EXISTS (
                    SELECT 1 FROM rollcall.collection_windows c WHERE c.parent_id = p.id AND c.state <> 'complete'))
           FROM rollcall.collection_windows p WHERE p.stream = 'zoom_sdk_sessions'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("states");
    assert!(awaiting > 0, "lists wait for their users");
    assert_eq!(falsely_complete, 0, "no list is complete before its users");
    let view_complete = count(
        &db.pool,
        "SELECT count(*) FROM rollcall.zoom_sdk_months WHERE complete AND sessions_with_users_window > 0",
    )
    .await;
    assert_eq!(view_complete, 0, "zoom_sdk_months agrees");
    control.clear_faults();
    let second = app.collect_all().await;
    assert!(second.all_complete(), "{second:?}");
    let not_complete = count(
        &db.pool,
        "SELECT count(*) FROM rollcall.collection_windows
          WHERE stream LIKE 'zoom_sdk%' AND state NOT IN ('complete', 'unreachable')",
    )
    .await;
    assert_eq!(not_complete, 0, "the lists complete with their last child");
    assert_sdk_mirror(app.pool(), &control, &specs[0]).await;
}

/// Months that fall before the horizon (here: a smaller `horizon_days`, as an outage or time passing would
/// do) are retired: unreachable, never requested again, rows kept, and `collect` no longer fails on them.
#[tokio::test(flavor = "multi_thread")]
async fn months_that_fall_before_the_horizon_are_retired_with_their_rows_kept() {
    let zoom = vec![zoom_account("acme", 30)];
    let sdk = vec![sdk_account("studio", 4)];
    let sandbox = rollcall_sandbox::spawn(rollcall_sandbox::SandboxConfig {
        listen: "127.0.0.1:0".into(),
        seed: 7,
        zoom: zoom.clone(),
        videosdk: sdk.clone(),
        ..sandbox_defaults()
    })
    .await
    .expect("sandbox");
    let mut app = TestApp::new(sandbox)
        .await
        .zoom(&zoom, 300)
        .videosdk(&sdk, 300);
    let (db, control) = (&app.db, app.control());
    // Inactive reports fail: those windows are left `failed` before the "outage".
    control.add_fault(
        FaultRule::on(Endpoint::ReportUsers, FaultKind::ServerError)
            .report_type(ReportType::Inactive),
    );
    let first = app.collect_all().await;
    assert!(!first.all_complete(), "{first:?}");
    control.clear_faults();
    let first_held = rows_by_month(&db.pool).await;
    assert!(
        first_held.values().any(|rows| rows.0 > 0) && first_held.values().any(|rows| rows.1 > 0)
    );

    for horizon_days in [20, 1] {
        app.config.zoom[0].horizon_days = Some(horizon_days);
        app.config.videosdk[0].horizon_days = Some(horizon_days);
        // Whether the current month's first day is still on or after the horizon depends on the day of the
        // month (on the 1st nothing can retire it): those months may be walked, every other one may not.
        let horizon = today() - chrono::Duration::days(i64::from(horizon_days));
        let served: Vec<chrono::NaiveDate> = reachable_months()
            .into_iter()
            .filter(|first| *first >= horizon)
            .collect();
        let kept = rows_by_month(&db.pool).await;
        control.clear_requests();
        let later = app.collect_all().await;
        assert!(
            later.all_complete(),
            "horizon_days = {horizon_days}: nothing due fails: {later:?}"
        );
        let requests = control.requests();
        let retired_asked: Vec<String> = requests
            .iter()
            .filter(|r| matches!(r.endpoint, Endpoint::ReportUsers | Endpoint::SdkSessions))
            .filter_map(|r| r.query.get("from"))
            .filter(|from| {
                let month = format!("{}-01", from.get(..7).unwrap_or(from));
                !served.iter().any(|first| first.to_string() == month)
            })
            .cloned()
            .collect();
        assert!(
            retired_asked.is_empty(),
            "horizon_days = {horizon_days} (horizon {horizon}): no retired month is requested: {retired_asked:?}"
        );
        if served.is_empty() {
            let users_calls = requests
                .iter()
                .filter(|r| r.endpoint == Endpoint::SdkSessionUsers)
                .count();
            assert_eq!(
                users_calls, 0,
                "horizon_days = {horizon_days}: no users of a retired month"
            );
        }
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM rollcall.collection_windows
              WHERE state <> 'unreachable' AND NOT (state = 'complete' AND is_final)
                AND NOT (date_trunc('month', window_start)::date = ANY($1))",
        )
        .bind(&served)
        .fetch_one(&db.pool)
        .await
        .expect("count open windows");
        assert_eq!(
            open, 0,
            "horizon_days = {horizon_days}: every window not final before the horizon is retired"
        );
        let now_held = rows_by_month(&db.pool).await;
        let retired = |rows: &BTreeMap<chrono::NaiveDate, (i64, i64, i64)>| {
            rows.iter()
                .filter(|(month, _)| !served.contains(month))
                .map(|(month, rows)| (*month, *rows))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            retired(&now_held),
            retired(&kept),
            "horizon_days = {horizon_days}: the rows of retired months are kept"
        );
    }
    let current = *reachable_months().last().expect("current month");
    let totals: Vec<bool> =
        sqlx::query_scalar("SELECT is_final FROM rollcall.zoom_host_reports WHERE month = $1")
            .bind(current)
            .fetch_all(&db.pool)
            .await
            .expect("totals");
    assert!(
        !totals.is_empty() && totals.iter().all(|f| !f),
        "the retired current month's totals say it is not final"
    );
}

/// A value PostgreSQL refuses, or a lost lease, ends that window only: bounded, cleaned `last_error`, and
/// the stream walks its other windows.
#[tokio::test(flavor = "multi_thread")]
async fn a_value_postgres_refuses_fails_only_its_window() {
    let zoom = vec![zoom_account("acme", 30)];
    let app = TestApp::new(sandbox(zoom.clone()).await)
        .await
        .zoom(&zoom, 300);
    let (db, control) = (&app.db, app.control());
    let long_id: String = (0..400)
        .map(|_| uuid::Uuid::new_v4().simple().to_string())
        .collect();
    let months = reachable_months();
    let poisoned = [
        // A served `from` with a NUL in it: the clamped-range error quotes it.
        (
            ReportType::Active,
            set(
                "/from",
                json!(format!("{}\u{0}{}", months[0], "x".repeat(3000))),
            ),
        ),
        // A key too long for the primary key's index.
        (ReportType::Inactive, set("/users/0/id", json!(long_id))),
    ];
    for (report_type, kind) in poisoned {
        control.add_fault(
            FaultRule::on(Endpoint::ReportUsers, kind)
                .report_type(report_type)
                .page(1),
        );
    }
    let first = app.collect_all().await;
    assert!(!first.all_complete(), "{first:?}");
    let windows: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT scope, state, last_error FROM rollcall.collection_windows
          WHERE stream = 'zoom_host_report' AND state <> 'unreachable' ORDER BY window_start, scope",
    )
    .fetch_all(&db.pool)
    .await
    .expect("windows");
    for (scope, state, error) in &windows {
        assert_eq!(
            state, "failed",
            "{scope}: every poisoned window fails, none is left running"
        );
        let error = error.as_deref().unwrap_or_default();
        assert!(
            error.len() <= 1024 && !error.contains('\0'),
            "{scope}: bounded, clean: {error}"
        );
    }
    assert!(windows.iter().any(|(s, _, e)| s == "inactive"
        && e.as_deref()
            .is_some_and(|e| e.contains("PostgreSQL refused"))));
    control.clear_faults();
    let healed = app.collect_all().await;
    assert!(healed.all_complete(), "{healed:?}");
    assert_mirror(app.pool(), &control, &zoom[0]).await;
}

// Logs captured for this test alone (see `with_logs`).
#[test]
fn a_lost_lease_ends_that_window_and_the_stream_goes_on() {
    with_logs("info", |logs| async move {
        let zoom = vec![zoom_account("acme", 30)];
        let mut app = TestApp::new(sandbox(zoom.clone()).await)
            .await
            .zoom(&zoom, 10);
        app.config.collector.lease_secs = 3;
        let (db, control) = (&app.db, app.control());
        control.add_fault(
            FaultRule::on(Endpoint::ReportUsers, FaultKind::Hang)
                .report_type(ReportType::Active)
                .page(2)
                .times(1),
        );
        let (done, stolen) = tokio::join!(app.collect_all(), async {
            let hung = control
                .wait_for_request(
                    |r| r.endpoint == Endpoint::ReportUsers && r.page == Some(2) && r.status == 0,
                    Duration::from_secs(60),
                )
                .await;
            assert!(hung.is_some(), "the walk hangs on a page 2");
            // Another process takes the window over (as an operator's second collector with a stale clock
            // might).
            steal_running_window(&db.pool).await
        });
        assert_eq!(stolen.len(), 1, "a window is being walked");
        assert!(!done.all_complete(), "{done:?}");
        assert!(logs.text().contains("lease lost"), "{}", logs.text());
        let others = count(
            &db.pool,
            "SELECT count(*) FROM rollcall.collection_windows
              WHERE stream = 'zoom_host_report' AND state NOT IN ('complete', 'unreachable')",
        )
        .await;
        assert_eq!(others, 1, "every other window completed after the lost one");
        let holder: Option<String> =
            sqlx::query_scalar("SELECT lease_owner FROM rollcall.collection_windows WHERE id = $1")
                .bind(stolen[0])
                .fetch_one(&db.pool)
                .await
                .expect("holder");
        assert_eq!(
            holder.as_deref(),
            Some("elsewhere:1:feedbeef"),
            "the new owner keeps it"
        );
    });
}

async fn steal_running_window(pool: &sqlx::PgPool) -> Vec<i64> {
    sqlx::query_scalar(
        "UPDATE rollcall.collection_windows SET lease_owner = 'elsewhere:1:feedbeef',
                lease_until = now() + interval '1 hour'
          WHERE id = (SELECT id FROM rollcall.collection_windows
                       WHERE stream = 'zoom_host_report' AND state = 'running' ORDER BY id LIMIT 1)
      RETURNING id",
    )
    .fetch_all(pool)
    .await
    .expect("steal the lease")
}

/// A resumed walk sends the parameters its page 1 was sent with, even after the config changed.
#[tokio::test(flavor = "multi_thread")]
async fn a_resumed_walk_keeps_the_parameters_of_its_first_page() {
    let zoom = vec![zoom_account("acme", 60)];
    let mut app = TestApp::new(sandbox(zoom.clone()).await)
        .await
        .zoom(&zoom, 10);
    let control = app.control();
    let config = app.write_config();
    control.add_fault(
        FaultRule::on(Endpoint::ReportUsers, FaultKind::Hang)
            .report_type(ReportType::Active)
            .page(3)
            .times(1),
    );
    // One window at a time in the killed run, so the others start their walks after the config change.
    let mut child = rollcall(&config.path, &["collect"])
        .env("ROLLCALL__COLLECTOR__WINDOWS_IN_FLIGHT", "1")
        .spawn()
        .expect("spawn");
    let hung = control
        .wait_for_request(
            |r| r.endpoint == Endpoint::ReportUsers && r.page == Some(3) && r.status == 0,
            Duration::from_secs(60),
        )
        .await;
    let hung = hung.expect("the walk hangs on a page 3");
    let hung_request = (
        hung.query.get("from").cloned(),
        hung.query.get("type").cloned(),
    );
    child.start_kill().expect("SIGKILL");
    let _ = child.wait().await;
    control.clear_faults();
    control.clear_requests();

    app.config.zoom[0].page_size = 25;
    let resumed = app.collect_all().await;
    assert!(resumed.all_complete(), "{resumed:?}");
    let db = &app.db;
    let continued: Vec<_> = control
        .requests()
        .into_iter()
        .filter(|r| {
            r.endpoint == Endpoint::ReportUsers
                && r.query.contains_key("next_page_token")
                && (r.query.get("from").cloned(), r.query.get("type").cloned()) == hung_request
        })
        .collect();
    let first_continuation = continued.first().expect("the walk resumed from its token");
    assert_eq!(
        first_continuation
            .query
            .get("page_size")
            .map(String::as_str),
        Some("10"),
        "the resumed walk sends the page_size it started with"
    );
    assert!(
        matches!(first_continuation.page, Some(2) | Some(3)),
        "it resumed at its checkpoint, not page 1: {:?}",
        first_continuation.page
    );
    // Walks that start now take the new page_size; only the resumed ones keep their own.
    let params: Vec<Value> = sqlx::query_scalar(
        "SELECT walk_params FROM rollcall.collection_windows
          WHERE stream = 'zoom_host_report' AND walk_params IS NOT NULL",
    )
    .fetch_all(&db.pool)
    .await
    .expect("params");
    assert!(
        params.iter().any(|p| p["page_size"] == json!(25)),
        "new walks take the new page_size: {params:?}"
    );
    assert!(params
        .iter()
        .all(|p| p["type"] == json!("active") || p["type"] == json!("inactive")));
    assert_mirror(app.pool(), &control, &zoom[0]).await;
}

/// A list walk that confirms a session gone removes its users window and joins while, in another process,
/// a users walk of that session is writing a page. Whichever commits first, no join may be left behind
/// without its session and its window.
#[tokio::test(flavor = "multi_thread")]
async fn a_session_removed_while_its_users_are_written_leaves_no_orphan_joins() {
    use rollcall::store::lease_owner::LeaseOwner;
    use rollcall::store::windows::{self, Checkpoint, PlannedWindow, Reach};
    let db = TestDb::create().await;
    rollcall::store::migrate(&db.pool).await.expect("migrate");
    let pool = &db.pool;
    let month = chrono::NaiveDate::from_ymd_opt(2026, 10, 1).expect("a date");
    let end = chrono::NaiveDate::from_ymd_opt(2026, 10, 31).expect("a date");
    let planned = PlannedWindow {
        scope: String::new(),
        start: month,
        end,
        reach: Reach::Reachable,
    };
    windows::plan(pool, "studio", "zoom_sdk_sessions", &[planned])
        .await
        .expect("plan the list");
    let (lister, user_walker) = (
        LeaseOwner::for_this_process(60),
        LeaseOwner::for_this_process(60),
    );
    let now = now();
    let list = windows::claim_next(pool, "studio", "zoom_sdk_sessions", &lister, now, &[])
        .await
        .expect("claim")
        .expect("the list");
    let mut tx = pool.begin().await.expect("begin");
    windows::plan_children(
        &mut tx,
        &list,
        "zoom_sdk_session_users",
        &["s-gone".into()],
        &[None],
    )
    .await
    .expect("plan the users window");
    tx.commit().await.expect("commit");
    let child = windows::claim_next(
        pool,
        "studio",
        "zoom_sdk_session_users",
        &user_walker,
        now,
        &[],
    )
    .await
    .expect("claim")
    .expect("the users window");
    let walk_id = uuid::Uuid::new_v4();
    windows::begin_walk(
        pool,
        child.id,
        &user_walker,
        walk_id,
        &serde_json::json!({}),
        now,
    )
    .await
    .expect("begin the users walk");

    // The users walk writes a page: its join and its checkpoint, not committed yet.
    let mut page = pool.begin().await.expect("begin the page");
    sqlx::query(
        "INSERT INTO rollcall.zoom_sdk_session_users
                (account, session_id, user_id, join_time, raw, collected_at, walk_id)
         VALUES ('studio', 's-gone', 'u1', now(), '{}', now(), $1)",
    )
    .bind(walk_id)
    .execute(&mut *page)
    .await
    .expect("a join");
    let at = Checkpoint {
        page_rows: 1,
        next_page_token: Some("next"),
        token_issued_at: now,
        expected_total: None,
    };
    windows::checkpoint(&mut page, child.id, &user_walker, &at)
        .await
        .expect("checkpoint");

    // The list walk removes the session meanwhile; it waits for the page's lock on the users window.
    let remover = {
        let (pool, list) = (pool.clone(), list.clone());
        tokio::spawn(async move {
            let mut tx = pool.begin().await.expect("begin the list page");
            rollcall::sources::zoom::videosdk::sessions::remove_sessions(
                &mut tx,
                &list,
                &["s-gone".into()],
            )
            .await
            .expect("remove");
            tx.commit().await.expect("commit the list page");
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut poll = tokio::time::interval(Duration::from_millis(20));
    loop {
        poll.tick().await;
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .expect("activity");
        if waiting > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the removal waits on the page's lock"
        );
    }
    page.commit().await.expect("the page commits first");
    remover.await.expect("the removal ends");

    let left: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM rollcall.zoom_sdk_session_users WHERE session_id = 's-gone'),
                (SELECT count(*) FROM rollcall.collection_windows WHERE scope = 's-gone')",
    )
    .fetch_one(pool)
    .await
    .expect("what is left");
    assert_eq!(
        left,
        (0, 0),
        "(joins, users windows) of the removed session"
    );
}

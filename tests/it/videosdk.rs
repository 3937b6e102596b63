//! Zoom Video SDK sessions and session users end to end: collection in-process, the real sandbox,
//! PostgreSQL; the real binary where it is killed and for `status` and `check`.

use crate::common::*;
use rollcall_sandbox::{Endpoint, FaultKind, FaultRule};
use std::time::Duration;

async fn sdk_months(pool: &sqlx::PgPool, account: &str) -> Vec<(chrono::NaiveDate, String, bool)> {
    sqlx::query_as(
        "SELECT month, list_state, complete FROM rollcall.zoom_sdk_months WHERE account = $1 ORDER BY month",
    )
    .bind(account)
    .fetch_all(pool)
    .await
    .expect("query zoom_sdk_months")
}

async fn app(
    sandbox: rollcall_sandbox::Sandbox,
    sdk: &[rollcall_sandbox::VideoSdkAccountSpec],
    page_size: u32,
) -> TestApp {
    TestApp::new(sandbox).await.videosdk(sdk, page_size)
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_and_their_users_are_mirrored_exactly_and_a_rerun_adds_nothing() {
    let specs = vec![sdk_account("studio", 11)];
    let sandbox = sdk_sandbox(specs.clone()).await;
    let control = sandbox.control();
    let app = app(sandbox, &specs, 4).await;
    let db = &app.db;

    let first = app.collect_all().await;
    assert!(first.all_complete(), "first collect: {first:?}");
    let (sessions, users) = assert_sdk_mirror(&db.pool, &control, &specs[0]).await;
    assert!(
        reachable_months().len() >= 2 && sessions > 20 && users > sessions,
        "{sessions} sessions, {users} users"
    );
    for (month, state, complete) in sdk_months(&db.pool, "studio").await {
        if reachable_months().contains(&month) {
            assert!(state == "complete" && complete, "{month}: {state}");
        }
    }

    let requests = control.requests();
    assert!(requests
        .iter()
        .filter(|r| matches!(
            r.endpoint,
            Endpoint::SdkSessions | Endpoint::SdkSessionUsers
        ))
        .all(|r| r.query.get("type").map(String::as_str) == Some("past") && r.status == 200));
    assert!(
        requests
            .iter()
            .any(|r| r.endpoint == Endpoint::SdkSessions && r.page == Some(2)),
        "lists were paged"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.endpoint == Endpoint::SdkSessionUsers && r.page == Some(2)),
        "users were paged"
    );

    // Ids like `/ab//c+d==` made it through the double encoding and back.
    let awkward: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT u.session_id) FROM rollcall.zoom_sdk_session_users u
          WHERE u.session_id LIKE '/%' AND u.session_id LIKE '%//%' AND u.session_id LIKE '%+%'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(
        awkward > 0,
        "sessions shaped like /ab//c+d== have their users"
    );
    let rejoins: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM rollcall.zoom_sdk_session_users
          GROUP BY account, session_id, user_id HAVING count(*) > 1) r",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(rejoins > 0, "a user who left and rejoined is two rows");
    let derived: (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE duration_seconds = extract(epoch FROM end_time - start_time)::bigint
                                            AND duration_seconds > 0 AND raw ? 'duration')
           FROM rollcall.zoom_sdk_sessions",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        derived.0, derived.1,
        "duration_seconds is derived for every session"
    );
    let extras: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rollcall.zoom_sdk_session_users
          WHERE participant_uuid IS NOT NULL AND client IS NOT NULL AND jsonb_typeof(audio_call) = 'array'
            AND raw ? 'sdk_version'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(
        extras > 0,
        "participant_uuid, client, audio_call and unknown fields are kept"
    );

    let count = || async {
        sqlx::query_as::<_, (i64, i64)>(
            "SELECT (SELECT count(*) FROM rollcall.zoom_sdk_sessions), (SELECT count(*) FROM rollcall.zoom_sdk_session_users)",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap()
    };
    let before = count().await;
    control.clear_requests();
    let second = app.collect_all().await;
    assert!(second.all_complete(), "second collect: {second:?}");
    assert_eq!(count().await, before, "a replayed walk adds no rows");
    assert_sdk_mirror(&db.pool, &control, &specs[0]).await;
    let finals: Vec<(chrono::NaiveDate,)> = sqlx::query_as(
        "SELECT window_start FROM rollcall.collection_windows WHERE stream = 'zoom_sdk_sessions' AND is_final",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(!finals.is_empty());
    for request in control
        .requests()
        .iter()
        .filter(|r| r.endpoint == Endpoint::SdkSessions)
    {
        let from = request.query.get("from").cloned().unwrap_or_default();
        assert!(
            !finals.iter().any(|(month,)| month.to_string() == from),
            "final month {from} was listed again"
        );
    }

    let status = app.cli(&["status"]).await;
    assert!(
        status.stdout.contains("zoom_sdk_session_users"),
        "{}",
        status.output()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_between_a_session_list_and_its_users_then_rerun_is_exact() {
    let specs = vec![sdk_account("studio", 9)];
    let sandbox = sdk_sandbox(specs.clone()).await;
    let control = sandbox.control();
    let app = app(sandbox, &specs, 300).await;
    let db = &app.db;
    control.add_fault(FaultRule::on(Endpoint::SdkSessionUsers, FaultKind::Hang).times(1));

    let config = app.write_config();
    let mut child = rollcall(&config.path, &["collect"]).spawn().expect("spawn");
    let hung = control
        .wait_for_request(
            |r| r.endpoint == Endpoint::SdkSessionUsers,
            Duration::from_secs(60),
        )
        .await;
    assert!(hung.is_some(), "rollcall reached the users of a session");
    child.start_kill().expect("SIGKILL");
    let _ = child.wait().await;

    let (sessions, pending): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM rollcall.zoom_sdk_sessions),
                (SELECT count(*) FROM rollcall.collection_windows
                  WHERE stream = 'zoom_sdk_session_users' AND state <> 'complete')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(
        sessions > 0 && pending > 0,
        "{sessions} sessions stored, {pending} users windows pending"
    );
    let orphans: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rollcall.zoom_sdk_sessions s
          WHERE s.end_time IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM rollcall.collection_windows w
             WHERE w.stream = 'zoom_sdk_session_users' AND w.account = s.account AND w.scope = s.session_id)",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        orphans, 0,
        "every stored ended session has its users window"
    );
    let falsely_complete: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rollcall.collection_windows p
          WHERE p.stream = 'zoom_sdk_sessions' AND p.state = 'complete'
            AND EXISTS (SELECT 1 FROM rollcall.collection_windows c
                         WHERE c.parent_id = p.id AND c.state <> 'complete')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        falsely_complete, 0,
        "a list window whose users are pending is not complete"
    );
    assert!(
        sdk_months(&db.pool, "studio")
            .await
            .iter()
            .any(|(_, _, complete)| !complete),
        "a month whose users are missing is not complete"
    );

    control.clear_faults();
    let rerun = app.collect_all().await;
    assert!(rerun.all_complete(), "rerun: {rerun:?}");
    assert_sdk_mirror(&db.pool, &control, &specs[0]).await;
    let incomplete: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rollcall.zoom_sdk_months WHERE account = 'studio' AND list_state = 'complete' AND NOT complete",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(incomplete, 0, "no month is left without its users");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_without_end_time_gets_its_users_once_it_has_ended() {
    let specs = vec![sdk_account("studio", 6)];
    let sandbox = sdk_sandbox(specs.clone()).await;
    let control = sandbox.control();
    let app = app(sandbox, &specs, 300).await;
    let db = &app.db;
    let month = open_month_with_sessions(&control, "studio-key");
    let open = control.sdk_sessions("studio-key", month)[0]["id"]
        .as_str()
        .expect("a session this month")
        .to_string();
    assert!(control.set_sdk_session_open("studio-key", &open, true));

    let first = app.collect_all().await;
    assert!(first.all_complete(), "{first:?}");
    let windows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rollcall.collection_windows WHERE stream = 'zoom_sdk_session_users' AND scope = $1",
    )
    .bind(&open)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(windows, 0, "a running session gets no users window yet");
    assert_sdk_mirror(&db.pool, &control, &specs[0]).await;

    assert!(control.set_sdk_session_open("studio-key", &open, false));
    let second = app.collect_all().await;
    assert!(second.all_complete(), "{second:?}");
    assert_sdk_mirror(&db.pool, &control, &specs[0]).await;
    let users: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rollcall.zoom_sdk_session_users WHERE session_id = $1",
    )
    .bind(&open)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(users > 0, "its users were collected once it ended");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_api_secret_fails_only_that_account_and_names_it() {
    let specs = vec![sdk_account("studio", 4), sdk_account("other", 4)];
    let sandbox = sdk_sandbox(specs.clone()).await;
    let control = sandbox.control();
    let mut wrong = specs.clone();
    wrong[1].api_secret = "not-the-api-secret".into();
    let app = app(sandbox, &wrong, 300).await;
    let db = &app.db;

    let outcome = app.collect_all().await;
    assert!(!outcome.all_complete(), "{outcome:?}");
    // What `collect` prints for a stopped stream.
    let stopped: String = outcome
        .outcomes
        .iter()
        .filter_map(|o| o.stopped.clone())
        .collect();
    assert!(stopped.contains("videosdk[1].api_secret"), "{outcome:?}");
    assert!(!format!("{outcome:?}").contains("not-the-api-secret"));
    assert_sdk_mirror(&db.pool, &control, &specs[0]).await;
    let other: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rollcall.zoom_sdk_sessions WHERE account = 'other'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(other, 0);
    let rejected = control
        .requests()
        .iter()
        .filter(|r| {
            r.endpoint == Endpoint::SdkSessions && r.account_id.as_deref() == Some("other-key")
        })
        .map(|r| r.status)
        .collect::<Vec<_>>();
    assert_eq!(
        rejected,
        [401, 401],
        "one re-signed retry, then the account stops"
    );

    let check = app.cli(&["check"]).await;
    assert_eq!(check.code, 1, "{}", check.output());
    assert!(
        check.stdout.contains("ok    videosdk[0]"),
        "{}",
        check.stdout
    );
    assert!(
        check.stdout.contains("FAIL  videosdk[1]"),
        "{}",
        check.stdout
    );
}

/// Zoom answers 404 code 3001 "Session does not exist" for the users of a session it no longer has. That
/// child is recorded unreachable with the reason, its stored joins kept, one warning each, and its month
/// completes: a final month is never walked again, so a failure would wedge it (and `collect`) for good. A
/// list walk that lists the session again (a month not final yet) asks for its users once more.
// Logs captured for this test alone (see `with_logs`).
#[test]
fn a_session_zoom_no_longer_has_is_unreachable_and_its_month_completes() {
    with_logs("warn", |logs| async move {
        let specs = vec![sdk_account("studio", 6)];
        let sandbox = sdk_sandbox(specs.clone()).await;
        let control = sandbox.control();
        let mut app = app(sandbox, &specs, 300).await;
        let db = &app.db.pool;
        app.config.videosdk[0].settle_days = 400;
        assert!(app.collect_all().await.all_complete());
        // Two whole months before the current one (whose first days may hold no session yet): with
        // settle_days = today's day of the month, the older one settles and the newer one does not.
        let months = reachable_months();
        let (last_month, this_month) = (months[months.len() - 3], months[months.len() - 2]);
        let ended = |month| {
            control
                .sdk_sessions("studio-key", month)
                .iter()
                .find(|s| s.get("end_time").is_some())
                .and_then(|s| s["id"].as_str())
                .expect("an ended session")
                .to_string()
        };
        let (settled, open) = (ended(last_month), ended(this_month));
        let joins = |session: String| async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM rollcall.zoom_sdk_session_users WHERE session_id = $1",
            )
            .bind(session)
            .fetch_one(db)
            .await
            .expect("joins")
        };
        let held = (joins(settled.clone()).await, joins(open.clone()).await);
        assert!(held.0 > 0 && held.1 > 0, "{held:?}");

        // The run that settles last month: Zoom no longer has one session of it, nor one of this month.
        app.config.videosdk[0].settle_days = chrono::Datelike::day(&today());
        for session in [&settled, &open] {
            control.add_fault(
                FaultRule::on(
                    Endpoint::SdkSessionUsers,
                    FaultKind::Status {
                        status: 404,
                        body: format!(
                            r#"{{"code":3001,"message":"Session does not exist: {session}"}}"#
                        ),
                    },
                )
                .session(session.as_str()),
            );
        }
        let warned_before = logs.text().matches("window unreachable").count();
        let run = app.collect_all().await;
        assert!(run.all_complete(), "collect exits 0: {run:?}");
        assert_eq!(
            logs.text().matches("window unreachable").count() - warned_before,
            2,
            "one warning per session: {}",
            logs.text()
        );
        let child = |session: String| async move {
            sqlx::query_as::<_, (String, Option<String>)>(
                "SELECT state, last_error FROM rollcall.collection_windows
                  WHERE stream = 'zoom_sdk_session_users' AND scope = $1",
            )
            .bind(session)
            .fetch_one(db)
            .await
            .expect("users window")
        };
        for session in [&settled, &open] {
            let (state, error) = child(session.clone()).await;
            let error = error.unwrap_or_default();
            assert_eq!(state, "unreachable", "{session}: {error}");
            assert!(
                error.contains(&format!("{session:?}"))
                    && error.contains("code 3001")
                    && error.contains(&format!("Session does not exist: {session}")),
                "last_error names the session and Zoom's answer: {error}"
            );
        }
        assert_eq!(
            (joins(settled.clone()).await, joins(open.clone()).await),
            held,
            "their stored joins are kept"
        );
        let month = |m: chrono::NaiveDate| async move {
            sqlx::query_as::<_, (String, bool, bool, i64)>(
                "SELECT list_state, complete, is_final, users_windows_unreachable
                   FROM rollcall.zoom_sdk_months WHERE account = 'studio' AND month = $1",
            )
            .bind(m)
            .fetch_one(db)
            .await
            .expect("month")
        };
        assert_eq!(
            month(last_month).await,
            ("complete".to_string(), true, true, 1),
            "last month is complete and final"
        );
        assert_eq!(
            month(this_month).await,
            ("complete".to_string(), true, false, 1)
        );
        // The sandbox still serves both sessions' users to its truth queries: every row is as it was.
        assert_sdk_mirror(db, &control, &specs[0]).await;

        let coverage = app.cli(&["coverage", "--json"]).await;
        assert_eq!(coverage.code, 0, "{}", coverage.output());
        let json: serde_json::Value = serde_json::from_str(&coverage.stdout).expect("JSON");
        let cells = json["accounts"][0]["streams"]
            .as_array()
            .expect("streams")
            .iter()
            .find(|s| s["stream"] == "zoom_sdk_sessions")
            .expect("the sessions row")["months"]
            .clone();
        let cell = |m: chrono::NaiveDate| {
            cells
                .as_array()
                .expect("months")
                .iter()
                .find(|c| c["month"] == m.format("%Y-%m").to_string())
                .map(|c| c["state"].clone())
        };
        assert_eq!(
            cell(last_month),
            Some("final".into()),
            "{}",
            coverage.stdout
        );
        assert_eq!(
            cell(this_month),
            Some("complete".into()),
            "{}",
            coverage.stdout
        );

        // Next run: the final month is not listed again, so its gone session is not asked again; this
        // month's list still lists the other one, which is asked once more and is still gone.
        control.clear_requests();
        let again = app.collect_all().await;
        assert!(again.all_complete(), "{again:?}");
        let asked = |session: &str| {
            control
                .requests()
                .iter()
                .filter(|r| {
                    r.endpoint == Endpoint::SdkSessionUsers
                        && r.session_id.as_deref() == Some(session)
                })
                .count()
        };
        assert_eq!((asked(&settled), asked(&open)), (0, 1));
        assert_eq!(child(open.clone()).await.0, "unreachable");
        assert!(month(this_month).await.1, "this month completes again");
    });
}

/// A session Zoom still lists without `end_time` holds its settled month open (complete, not final, listed
/// again by every run, `collect` exits 0) for 7 days; a session that ends meanwhile is updated and its
/// users collected. Past those 7 days it is recorded as ended at an unknown time, its users are walked,
/// and its month completes and becomes final.
#[tokio::test(flavor = "multi_thread")]
async fn a_session_without_end_time_past_the_settle_day_plus_7_lets_its_month_complete() {
    let specs = vec![sdk_account("soon", 4), sdk_account("never", 4)];
    let sandbox = sdk_sandbox(specs.clone()).await;
    let control = sandbox.control();
    let mut app = app(sandbox, &specs, 300).await;
    let pool = app.db.pool.clone();
    let months = reachable_months();
    let month = months[months.len() - 3];
    let end = month
        .checked_add_months(chrono::Months::new(1))
        .and_then(|d| d.pred_opt())
        .expect("date math");
    let open_of = |key: &str| {
        control.sdk_sessions(key, month)[0]["id"]
            .as_str()
            .expect("a session that month")
            .to_string()
    };
    let (soon, never) = (open_of("soon-key"), open_of("never-key"));
    assert!(control.set_sdk_session_open("soon-key", &soon, true));
    assert!(control.set_sdk_session_open("never-key", &never, true));
    // "soon": the month settled a day ago, well inside the 7 days. "never": settled long ago.
    let settled_a_day_ago = ((today() - end).num_days() - 2) as u32;
    app.config.videosdk[0].settle_days = settled_a_day_ago;
    app.config.videosdk[1].settle_days = 2;
    let session = |id: String| {
        let pool = pool.clone();
        async move {
            sqlx::query_as::<
                _,
                (
                    Option<chrono::DateTime<chrono::Utc>>,
                    bool,
                    i64,
                    Option<(String, bool)>,
                ),
            >(
                "SELECT s.end_time, s.end_time_unknown,
                        (SELECT count(*) FROM rollcall.zoom_sdk_session_users u
                          WHERE u.account = s.account AND u.session_id = s.session_id),
                        (SELECT (w.state, w.is_final) FROM rollcall.collection_windows w
                          WHERE w.stream = 'zoom_sdk_session_users' AND w.scope = s.session_id)
                   FROM rollcall.zoom_sdk_sessions s WHERE s.session_id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("the session is stored")
        }
    };
    let list = |account: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_as::<_, (String, bool)>(
                "SELECT state, is_final FROM rollcall.collection_windows
                  WHERE account = $1 AND stream = 'zoom_sdk_sessions' AND window_start = $2",
            )
            .bind(account)
            .bind(month)
            .fetch_one(&pool)
            .await
            .expect("the month's list")
        }
    };

    let first = app.collect_all().await;
    assert!(first.all_complete(), "{first:?}");
    let (end_time, unknown, _, users_window) = session(soon.clone()).await;
    assert_eq!(
        (end_time, unknown, users_window),
        (None, false, None),
        "soon: still open"
    );
    assert_eq!(
        list("soon").await,
        ("complete".to_string(), false),
        "soon: held open, not failed"
    );
    let (end_time, unknown, users, users_window) = session(never.clone()).await;
    assert_eq!(
        (end_time, unknown),
        (None, true),
        "never: ended at an unknown time"
    );
    assert!(users > 0, "never: its users are walked");
    assert_eq!(users_window, Some(("complete".to_string(), true)));
    assert_eq!(
        list("never").await,
        ("complete".to_string(), true),
        "never: the month completes"
    );
    let month_row: (bool, bool) = sqlx::query_as(
        "SELECT complete, is_final FROM rollcall.zoom_sdk_months WHERE account = 'never' AND month = $1",
    )
    .bind(month)
    .fetch_one(&pool)
    .await
    .expect("zoom_sdk_months");
    assert_eq!(month_row, (true, true));

    // The session ends (Zoom now serves its end_time): the next run updates it.
    assert!(control.set_sdk_session_open("soon-key", &soon, false));
    assert!(control.set_sdk_session_open("never-key", &never, false));
    let second = app.collect_all().await;
    assert!(second.all_complete(), "{second:?}");
    let (end_time, unknown, users, users_window) = session(soon.clone()).await;
    assert!(
        end_time.is_some() && !unknown && users > 0,
        "soon: updated, users collected"
    );
    assert_eq!(users_window, Some(("complete".to_string(), true)));
    assert_eq!(list("soon").await, ("complete".to_string(), true));
    assert_sdk_mirror(&pool, &control, &specs[0]).await;
}

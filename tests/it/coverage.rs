//! `rollcall coverage` against a database in a known state: windows inserted with chosen states for fixed
//! months, "today" pinned, the piped (plain) output compared line by line and `--json` checked.

use crate::common::*;
use serde_json::Value;

struct Setup {
    db: TestDb,
    config: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// A config naming four accounts (one of them never collected) that no API is ever asked about.
async fn setup() -> Setup {
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("rollcall.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{}\"\n\n\
             [[zoom]]\nname = \"acme\"\naccount_id = \"a\"\nclient_id = \"c\"\nclient_secret = \"s\"\n\n\
             [[zoom]]\nname = \"idle\"\naccount_id = \"a2\"\nclient_id = \"c2\"\nclient_secret = \"s2\"\n\n\
             [[videosdk]]\nname = \"sdk\"\napi_key = \"k\"\napi_secret = \"s\"\n\n\
             [[rocketchat]]\nname = \"chat\"\nurl = \"http://127.0.0.1:9\"\nuser_id = \"u\"\nauth_token = \"t\"\n",
            db.url
        ),
    )
    .expect("write config");
    Setup {
        db,
        config,
        _dir: dir,
    }
}

async fn exec(db: &TestDb, sql: &str) {
    sqlx::raw_sql(sql)
        .execute(&db.pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// October 2025 .. March 2026, with one glyph of each kind somewhere.
async fn fixture(db: &TestDb) {
    exec(
        db,
        "CREATE FUNCTION pg_temp.w(a text, s text, sc text, f date, t date, st text, fin boolean)
           RETURNS void LANGUAGE sql AS
           $$ INSERT INTO rollcall.collection_windows (account, stream, scope, window_start, window_end, state, is_final)
              VALUES (a, s, sc, f, t, st, fin) $$;
         -- acme: Oct lost, Nov retired with its totals, Dec final, Jan one scope failed, Feb one running,
         -- Mar complete but open.
         SELECT pg_temp.w('acme', 'zoom_host_report', sc, '2025-10-01', '2025-10-31', 'unreachable', false)
           FROM unnest(array['active', 'inactive']) sc;
         SELECT pg_temp.w('acme', 'zoom_host_report', sc, '2025-11-01', '2025-11-30', 'unreachable', false)
           FROM unnest(array['active', 'inactive']) sc;
         INSERT INTO rollcall.zoom_host_reports (account, month, report_type, from_date, to_date, total_records, collected_at)
         VALUES ('acme', '2025-11-01', 'active', '2025-11-01', '2025-11-30', 0, now()),
                ('acme', '2025-11-01', 'inactive', '2025-11-01', '2025-11-30', 0, now());
         SELECT pg_temp.w('acme', 'zoom_host_report', sc, '2025-12-01', '2025-12-31', 'complete', true)
           FROM unnest(array['active', 'inactive']) sc;
         SELECT pg_temp.w('acme', 'zoom_host_report', 'active', '2026-01-01', '2026-01-31', 'complete', true);
         SELECT pg_temp.w('acme', 'zoom_host_report', 'inactive', '2026-01-01', '2026-01-31', 'failed', false);
         SELECT pg_temp.w('acme', 'zoom_host_report', 'active', '2026-02-01', '2026-02-28', 'complete', false);
         SELECT pg_temp.w('acme', 'zoom_host_report', 'inactive', '2026-02-01', '2026-02-28', 'running', false);
         SELECT pg_temp.w('acme', 'zoom_host_report', sc, '2026-03-01', '2026-03-31', 'complete', false)
           FROM unnest(array['active', 'inactive']) sc;
         -- sdk: Oct nothing, Nov pending, Dec awaiting one child, Jan final with its children, Feb complete
         -- but a child open, Mar a child failed.
         SELECT pg_temp.w('sdk', 'zoom_sdk_sessions', '', '2025-11-01', '2025-11-30', 'pending', false);
         SELECT pg_temp.w('sdk', 'zoom_sdk_sessions', '', '2025-12-01', '2025-12-31', 'awaiting_children', false);
         SELECT pg_temp.w('sdk', 'zoom_sdk_session_users', 's1', '2025-12-01', '2025-12-31', 'complete', false);
         SELECT pg_temp.w('sdk', 'zoom_sdk_session_users', 's2', '2025-12-01', '2025-12-31', 'pending', false);
         SELECT pg_temp.w('sdk', 'zoom_sdk_sessions', '', '2026-01-01', '2026-01-31', 'complete', true);
         SELECT pg_temp.w('sdk', 'zoom_sdk_session_users', 's' || i, '2026-01-01', '2026-01-31', 'complete', true)
           FROM generate_series(3, 400) i;
         SELECT pg_temp.w('sdk', 'zoom_sdk_sessions', '', '2026-02-01', '2026-02-28', 'complete', true);
         SELECT pg_temp.w('sdk', 'zoom_sdk_session_users', 's401', '2026-02-01', '2026-02-28', 'complete', false);
         SELECT pg_temp.w('sdk', 'zoom_sdk_sessions', '', '2026-03-01', '2026-03-31', 'awaiting_children', false);
         SELECT pg_temp.w('sdk', 'zoom_sdk_session_users', 's402', '2026-03-01', '2026-03-31', 'failed', false);
         -- chat: Dec lost, Jan every day held and final, Feb complete windows but days 1-9 never stored
         -- (expired before the first run), Mar a window still running.
         SELECT pg_temp.w('chat', 'rc_active_users', '', '2025-12-25', '2025-12-31', 'unreachable', false);
         SELECT pg_temp.w('chat', 'rc_active_users', '', d::date, least(d::date + 6, '2026-02-28'), 'complete', true)
           FROM generate_series(DATE '2026-01-01', DATE '2026-02-28', interval '7 days') d;
         INSERT INTO rollcall.rc_active_users (account, day, users, is_final, collected_at)
         SELECT 'chat', d::date, 3, true, now()
           FROM generate_series(DATE '2026-01-01', DATE '2026-02-28', interval '1 day') d
          WHERE d < '2026-02-01' OR d >= '2026-02-10';
         SELECT pg_temp.w('chat', 'rc_active_users', '', '2026-03-01', '2026-03-07', 'complete', false);
         SELECT pg_temp.w('chat', 'rc_active_users', '', '2026-03-08', '2026-03-14', 'running', false);
         -- old (removed from the config, still shown), every month retired: Oct active interrupted after
         -- one page (users stored, no totals, never completed) beside a completed inactive; Nov both
         -- walked to completion; Dec both completed on the 15th (the current month then) and never walked
         -- again. Only November is held whole.
         SELECT pg_temp.w('old', 'zoom_host_report', sc, m, (m + interval '1 month - 1 day')::date, 'unreachable', false)
           FROM unnest(array['active', 'inactive']) sc,
                unnest(array[DATE '2025-10-01', DATE '2025-11-01', DATE '2025-12-01']) m;
         UPDATE rollcall.collection_windows SET completed_at = now()
          WHERE account = 'old' AND NOT (window_start = '2025-10-01' AND scope = 'active');
         INSERT INTO rollcall.zoom_host_reports (account, month, report_type, from_date, to_date, total_records, collected_at)
         VALUES ('old', '2025-10-01', 'inactive', '2025-10-01', '2025-10-31', 1, now()),
                ('old', '2025-11-01', 'active', '2025-11-01', '2025-11-30', 1, now()),
                ('old', '2025-11-01', 'inactive', '2025-11-01', '2025-11-30', 1, now()),
                ('old', '2025-12-01', 'active', '2025-12-01', '2025-12-15', 1, now()),
                ('old', '2025-12-01', 'inactive', '2025-12-01', '2025-12-15', 1, now());
         INSERT INTO rollcall.zoom_host_report_users
                (account, month, report_type, user_id, raw, first_seen_at, last_seen_at, walk_id)
         SELECT 'old', m::date, t, 'u1', '{}', now(), now(), gen_random_uuid()
           FROM unnest(array['active', 'inactive']) t,
                unnest(array[DATE '2025-10-01', DATE '2025-11-01', DATE '2025-12-01']) m;
         -- sdk Oct, retired: its list walked to completion and a session stored, but that session's users
         -- window failed (one join stored) and was retired before it completed.
         SELECT pg_temp.w('sdk', 'zoom_sdk_sessions', '', '2025-10-01', '2025-10-31', 'unreachable', false);
         SELECT pg_temp.w('sdk', 'zoom_sdk_session_users', 's0', '2025-10-01', '2025-10-31', 'unreachable', false);
         UPDATE rollcall.collection_windows SET completed_at = now()
          WHERE account = 'sdk' AND stream = 'zoom_sdk_sessions' AND window_start = '2025-10-01';
         UPDATE rollcall.collection_windows c SET parent_id = p.id
           FROM rollcall.collection_windows p
          WHERE c.account = 'sdk' AND c.scope = 's0' AND p.account = 'sdk'
            AND p.stream = 'zoom_sdk_sessions' AND p.window_start = '2025-10-01';
         INSERT INTO rollcall.zoom_sdk_sessions (account, session_id, month, raw, collected_at, walk_id)
         VALUES ('sdk', 's0', '2025-10-01', '{}', now(), gen_random_uuid());
         INSERT INTO rollcall.zoom_sdk_session_users (account, session_id, user_id, join_time, raw, collected_at, walk_id)
         VALUES ('sdk', 's0', 'x', '2025-10-02 10:00+00', '{}', now(), gen_random_uuid());",
    )
    .await;
}

const LEGEND: &str = "
  #  final: complete and settled, never rewritten
  +  complete, not final yet (walked again until it settles)
  h  held from the horizon day on: the month's first days were past Zoom's six months when rollcall first asked
  c  awaiting children (Video SDK session users not all collected)
  ?  awaiting confirmation: a reply would shrink stored history; kept until a run 12 h later agrees
  r  running or interrupted
  !  failed (retried next run)
  .  pending (planned, never walked)
  x  unreachable, never held: lost upstream before rollcall ran
  u  unreachable, held: past the API's horizon, rows kept
  ~  partly held (some windows or days lost or never collected)
  -  nothing planned
";

#[tokio::test(flavor = "multi_thread")]
async fn the_matrix_shows_one_glyph_per_account_stream_and_month() {
    let s = setup().await;
    let migrated = run(&s.config, &["migrate"]).await;
    assert_eq!(migrated.code, 0, "{}", migrated.output());
    fixture(&s.db).await;

    let out = run(
        &s.config,
        &["coverage", "--months", "6", "--today", "2026-03-15"],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.output());
    let expected = format!(
        "{}\n{}\n{}\n{}\n{}\n{}\n{}\n{LEGEND}",
        "                          '25      '26",
        "ACCOUNT STREAM            10 11 12 01 02 03",
        "acme    zoom_host_report   x  u  #  !  r  +",
        "chat    rc_active_users    -  -  x  #  ~  r",
        "idle    zoom_host_report   -  -  -  -  -  -",
        "old     zoom_host_report   ~  u  ~  -  -  -",
        "sdk     zoom_sdk_sessions  ~  .  c  #  +  !",
    );
    let got: Vec<&str> = out.stdout.lines().collect();
    let want: Vec<&str> = expected.lines().collect();
    for (n, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "line {n}:\n{}", out.stdout);
    }
    assert_eq!(got.len(), want.len(), "{}", out.stdout);
    assert!(!out.stdout.contains('\x1b'), "no colour in a pipe");

    let out = run(
        &s.config,
        &[
            "coverage",
            "--months",
            "6",
            "--today",
            "2026-03-15",
            "--json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.output());
    let json: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(json["today"], "2026-03-15");
    assert_eq!(
        json["months"],
        serde_json::json!(["2025-10", "2025-11", "2025-12", "2026-01", "2026-02", "2026-03"])
    );
    let states = |account: &str, stream: &str| -> Vec<String> {
        let a = json["accounts"]
            .as_array()
            .expect("accounts")
            .iter()
            .find(|a| a["account"] == account)
            .unwrap_or_else(|| panic!("account {account}"));
        let s = a["streams"]
            .as_array()
            .expect("streams")
            .iter()
            .find(|s| s["stream"] == stream)
            .unwrap_or_else(|| panic!("{account} {stream}"));
        s["months"]
            .as_array()
            .expect("months")
            .iter()
            .zip(json["months"].as_array().expect("months"))
            .map(|(cell, month)| {
                assert_eq!(&cell["month"], month);
                cell["state"].as_str().expect("state").to_string()
            })
            .collect()
    };
    assert_eq!(
        states("acme", "zoom_host_report"),
        ["lost", "retired", "final", "failed", "running", "complete"]
    );
    assert_eq!(
        states("sdk", "zoom_sdk_sessions"),
        [
            "partial",
            "pending",
            "awaiting_children",
            "final",
            "complete",
            "failed"
        ]
    );
    assert_eq!(
        states("chat", "rc_active_users"),
        ["none", "none", "lost", "final", "partial", "running"]
    );
    assert_eq!(states("idle", "zoom_host_report"), ["none"; 6]);
    // A retired month is held whole only where its walks completed over the whole month.
    assert_eq!(
        states("old", "zoom_host_report"),
        ["partial", "retired", "partial", "none", "none", "none"]
    );
    assert_eq!(json["accounts"].as_array().map(Vec::len), Some(5));

    // Session users have no row of their own: asking for them shows the list row they are folded into.
    let out = run(
        &s.config,
        &[
            "coverage",
            "--months",
            "2",
            "--today",
            "2026-03-15",
            "--account",
            "sdk",
            "--stream",
            "zoom_sdk_session_users",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.output());
    let rows: Vec<&str> = out.stdout.lines().take(3).collect();
    assert_eq!(
        rows,
        [
            "                          '26",
            "ACCOUNT STREAM            02 03",
            "sdk     zoom_sdk_sessions  +  !",
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn coverage_is_read_only_and_says_when_there_is_no_schema() {
    let s = setup().await;
    let out = run(&s.config, &["coverage"]).await;
    assert_eq!(out.code, 3, "{}", out.output());
    assert!(
        out.stderr.contains("no rollcall schema yet"),
        "{}",
        out.output()
    );
    assert!(!s.db.has_schema().await, "coverage created nothing");
}

/// The daily usage streams (one window a month) have rows of their own: asking for one shows it for every
/// account configured for it, planned or not, rather than claiming that none is configured.
#[tokio::test(flavor = "multi_thread")]
async fn daily_usage_streams_have_rows_of_their_own() {
    let s = setup().await;
    let migrated = run(&s.config, &["migrate"]).await;
    assert_eq!(migrated.code, 0, "{}", migrated.output());
    // acme: Dec lost, Jan retired after a completed walk, Feb final, Mar complete but open.
    exec(
        &s.db,
        "INSERT INTO rollcall.collection_windows
                (account, stream, scope, window_start, window_end, state, is_final, completed_at)
         VALUES ('acme', 'zoom_daily_usage', '', '2025-12-01', '2025-12-31', 'unreachable', false, NULL),
                ('acme', 'zoom_daily_usage', '', '2026-01-01', '2026-01-31', 'unreachable', false, now()),
                ('acme', 'zoom_daily_usage', '', '2026-02-01', '2026-02-28', 'complete', true, now()),
                ('acme', 'zoom_daily_usage', '', '2026-03-01', '2026-03-31', 'complete', false, now());
         INSERT INTO rollcall.zoom_daily_usage (account, day, is_final, collected_at)
         SELECT 'acme', d::date, d < '2026-03-01', now()
           FROM generate_series(DATE '2026-01-01', DATE '2026-03-14', interval '1 day') d;",
    )
    .await;

    let cells = |stdout: &str| -> Vec<String> {
        stdout
            .lines()
            .skip(2)
            .take_while(|l| !l.is_empty())
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    let coverage = |stream: Option<&'static str>| {
        let config = s.config.clone();
        async move {
            let mut args = vec!["coverage", "--months", "4", "--today", "2026-03-15"];
            if let Some(stream) = stream {
                args.extend(["--stream", stream]);
            }
            let out = run(&config, &args).await;
            assert_eq!(out.code, 0, "{}", out.output());
            out.stdout
        }
    };

    let out = coverage(Some("zoom_daily_usage")).await;
    assert_eq!(
        cells(&out),
        [
            "acme zoom_daily_usage x u # +",
            "idle zoom_daily_usage - - - -"
        ],
        "{out}"
    );
    let out = coverage(Some("zoom_sdk_daily_usage")).await;
    assert_eq!(cells(&out), ["sdk zoom_sdk_daily_usage - - - -"], "{out}");
    assert!(!out.contains("no accounts configured"), "{out}");

    // Without --stream, a daily usage row shows beside its account's main row once windows exist.
    let out = coverage(None).await;
    assert_eq!(
        cells(&out),
        [
            "acme zoom_host_report - - - -",
            "acme zoom_daily_usage x u # +",
            "chat rc_active_users - - - -",
            "idle zoom_host_report - - - -",
            "sdk zoom_sdk_sessions - - - -",
        ],
        "{out}"
    );
}

/// A Rocket.Chat month has ended only when it has in the workspace's time zone: at 01:00 UTC on
/// 1 December it is still 30 November in Los Angeles, today is never requested, and November is not
/// "partly held" for lacking its 30th.
#[tokio::test(flavor = "multi_thread")]
async fn a_rocketchat_month_ends_by_the_workspace_date() {
    let s = setup().await;
    let migrated = run(&s.config, &["migrate"]).await;
    assert_eq!(migrated.code, 0, "{}", migrated.output());
    exec(
        &s.db,
        "INSERT INTO rollcall.collection_windows (account, stream, scope, window_start, window_end, state, is_final)
         SELECT 'chat', 'rc_active_users', '', d::date, least(d::date + 6, '2026-11-30'), 'complete', false
           FROM generate_series(DATE '2026-11-01', DATE '2026-11-30', interval '7 days') d;
         INSERT INTO rollcall.rc_active_users (account, day, users, is_final, collected_at)
         SELECT 'chat', d::date, 3, false, now()
           FROM generate_series(DATE '2026-11-01', DATE '2026-11-29', interval '1 day') d;",
    )
    .await;
    let date = |s: &str| s.parse::<chrono::NaiveDate>().expect("date");
    let november = |local: Option<&str>| {
        let request = rollcall::commands::coverage::Request {
            configured: vec![("chat".into(), "rc_active_users".into())],
            account: None,
            stream: None,
            months: 2,
            today: date("2026-12-01"),
            local_today: local
                .map(|d| ("chat".to_string(), date(d)))
                .into_iter()
                .collect(),
            left_out: Default::default(),
        };
        let pool = s.db.pool.clone();
        async move {
            let coverage = rollcall::commands::coverage::load(&pool, &request)
                .await
                .expect("coverage");
            let json = serde_json::to_value(&coverage).expect("JSON");
            json["accounts"][0]["streams"][0]["months"][0].clone()
        }
    };
    let cell = november(Some("2026-11-30")).await;
    assert_eq!(cell["month"], "2026-11");
    assert_eq!(cell["state"], "complete", "still November in the workspace");
    // Judged by the UTC date, the missing 30th would make it partial.
    assert_eq!(november(None).await["state"], "partial");
}

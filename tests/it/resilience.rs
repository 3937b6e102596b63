//! Faults the collector meets in months of unattended running: 429 storms, daily limits, a PostgreSQL
//! restart, and kill -9 at many moments. Each ends in an exact mirror of the sandbox. Collection runs
//! in-process except where the process is killed.

use crate::common::*;
use rollcall_sandbox::{Endpoint, FaultKind, FaultRule};
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::time::Duration;

fn rule(kind: FaultKind) -> FaultRule {
    FaultRule::on(Endpoint::ReportUsers, kind)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_storm_on_30_percent_of_requests_still_ends_exact() {
    let specs = vec![zoom_account("acme", 600)];
    let mut app = TestApp::new(sandbox(specs.clone()).await)
        .await
        .zoom(&specs, 100);
    // Nine attempts per request: the chance that a 30% storm beats all of them is 2 in 100,000.
    app.config.collector.max_retries = 8;
    let (db, control) = (&app.db, app.control());
    control.add_fault(rule(FaultKind::RateLimitQps { headers: true }).probability(0.3));
    let outcome = app.collect_all().await;
    assert!(outcome.all_complete(), "{outcome:?}");
    let throttled = control
        .requests()
        .iter()
        .filter(|r| r.status == 429)
        .count();
    assert!(throttled > 0, "the storm happened");
    assert_mirror(&db.pool, &control, &specs[0]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daily_limit_pauses_only_its_account_and_the_pause_survives_a_restart() {
    let specs = vec![zoom_account("acme", 80), zoom_account("globex", 80)];
    let app = TestApp::new(sandbox(specs.clone()).await)
        .await
        .zoom(&specs, 300);
    let (db, control) = (&app.db, app.control());
    let until = chrono::Utc::now() + chrono::Duration::hours(3);
    control.add_fault(
        rule(FaultKind::RateLimitDaily {
            retry_after: Some(until),
        })
        .account("acme-account"),
    );

    // The restart is a second run: the pause is read from the database, not kept in memory.
    let first = app.collect_all().await;
    assert!(!first.all_complete(), "{first:?}");
    assert_mirror(&db.pool, &control, &specs[1]).await;
    let stored: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT until FROM rollcall.account_pauses WHERE account = 'acme'")
            .fetch_one(&db.pool)
            .await
            .expect("the pause is stored");
    // Retry-After as asked, unless that is past the next 00:00 UTC plus the 5-minute margin.
    let latest = (chrono::Utc::now().date_naive() + chrono::Duration::days(1))
        .and_hms_opt(0, 5, 0)
        .expect("00:05")
        .and_utc();
    assert!(
        (stored - until.min(latest)).num_seconds().abs() <= 1,
        "paused until Retry-After"
    );

    control.clear_faults();
    control.clear_requests();
    let second = app.collect_all().await;
    assert!(!second.all_complete(), "still paused: {second:?}");
    assert!(
        control
            .requests()
            .iter()
            .all(|r| r.account_id.as_deref() != Some("acme-account")),
        "a paused account sends nothing, token requests included"
    );
    let status = app.cli(&["status"]).await;
    assert!(status.stdout.contains("PAUSED until"), "{}", status.stdout);
}

/// A PostgreSQL server of the test's own, so it can be stopped and started mid-run (and configured: the
/// TLS tests use it).
pub(crate) struct OwnPostgres {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl OwnPostgres {
    pub(crate) fn start() -> Option<OwnPostgres> {
        OwnPostgres::start_with(|_| true)
    }

    /// [`OwnPostgres::start`], with `prepare` writing into the fresh data directory before the server
    /// first starts; the files it writes are handed to the server's user.
    pub(crate) fn start_with(prepare: impl FnOnce(&Path) -> bool) -> Option<OwnPostgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("initdb").exists())
            .max()?;
        let dir = tempfile::tempdir().ok()?.keep();
        let as_postgres = StdCommand::new("id")
            .arg("-u")
            .output()
            .ok()?
            .stdout
            .starts_with(b"0");
        if as_postgres {
            StdCommand::new("chown")
                .arg("-R")
                .arg("postgres")
                .arg(&dir)
                .status()
                .ok()?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let pg = OwnPostgres {
            dir,
            bin,
            port,
            as_postgres,
        };
        let data = pg.data().display().to_string();
        pg.run(
            "initdb",
            &["-D", &data, "-U", "postgres", "-A", "trust", "-N"],
        )
        .then_some(())?;
        prepare(&pg.data()).then_some(())?;
        if pg.as_postgres {
            StdCommand::new("chown")
                .arg("-R")
                .arg("postgres")
                .arg(pg.data())
                .status()
                .ok()?;
        }
        pg.ctl("start").then_some(pg)
    }

    pub(crate) fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn run(&self, program: &str, args: &[&str]) -> bool {
        let path = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = StdCommand::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            StdCommand::new(&path)
        };
        cmd.args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    pub(crate) fn ctl(&self, action: &str) -> bool {
        let data = self.data().display().to_string();
        let log = self.dir.join("log").display().to_string();
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {}",
            self.port,
            self.dir.display()
        );
        match action {
            "start" => self.run(
                "pg_ctl",
                &["-D", &data, "-l", &log, "-o", &options, "-w", "start"],
            ),
            _ => self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]),
        }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.ctl("stop");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) fn postgres_binaries_present() -> bool {
    Path::new("/usr/lib/postgresql").exists()
}

// Logs captured for this test alone (see `with_logs`).
#[test]
fn a_postgres_restart_mid_run_loses_and_duplicates_nothing() {
    with_logs("info", |logs| async move {
        if !postgres_binaries_present() {
            eprintln!("skipped: no PostgreSQL server binaries under /usr/lib/postgresql");
            return;
        }
        let pg = OwnPostgres::start().expect("start a PostgreSQL of the test's own");
        let specs = vec![zoom_account("acme", 900)];
        let mut app = TestApp::on(
            TestDb::create_on(&pg.admin_url()).await,
            sandbox(specs.clone()).await,
        )
        .zoom(&specs, 50);
        // A run that ends on the database error leaves its leases; the rerun shares this process, so it
        // cannot take them over as a dead process's and waits them out: keep that wait short.
        app.config.collector.lease_secs = 3;
        let (db, control) = (&app.db, app.control());
        control.add_fault(rule(FaultKind::Delay { ms: 20 }));

        let (outcome, ()) = tokio::join!(
            tokio::time::timeout(
                Duration::from_secs(180),
                app.try_collect(Selection::default())
            ),
            async {
                let reached = control
                    .wait_for_request(
                        |r| r.endpoint == Endpoint::ReportUsers && r.seq >= 15,
                        Duration::from_secs(60),
                    )
                    .await;
                assert!(reached.is_some(), "the run is under way");
                // Stopping kills every connection of the collector's pool; the page in flight cannot
                // commit. The server stays down until the collector says it noticed and is waiting.
                assert!(pg.ctl("stop"), "stop PostgreSQL mid-run");
                let noticed = logs.logged("waiting for PostgreSQL").await;
                assert!(pg.ctl("start"), "start PostgreSQL again");
                assert!(
                    noticed,
                    "the collector noticed the database went away:\n{}",
                    logs.text()
                );
            }
        );
        // `collect` exits 0 (all complete) or 1 (incomplete, or the database error it stopped on).
        let outcome = outcome.expect("collect finishes");
        if !outcome.as_ref().is_ok_and(RunReport::all_complete) {
            let rerun = app.collect_all().await;
            assert!(rerun.all_complete(), "{rerun:?}");
        }
        control.clear_faults();
        let pool = db.pool.clone();
        assert_mirror(&pool, &control, &specs[0]).await;
        let running: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM rollcall.collection_windows WHERE state NOT IN ('complete', 'unreachable')",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(running, 0);
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_twenty_moments_across_all_streams_then_finish_is_exact() {
    let specs = vec![zoom_account("acme", 700), zoom_account("globex", 300)];
    let sdk = vec![sdk_account("studio", 40)];
    let chat = vec![
        rollcall_sandbox::RocketChatWorkspaceSpec::new("chat", "UTC"),
        rollcall_sandbox::RocketChatWorkspaceSpec::new("chat-ny", "America/New_York"),
    ];
    let sandbox = rollcall_sandbox::spawn(rollcall_sandbox::SandboxConfig {
        listen: "127.0.0.1:0".into(),
        seed: 3,
        zoom: specs.clone(),
        videosdk: sdk.clone(),
        rocketchat: chat.clone(),
        ..sandbox_defaults()
    })
    .await
    .expect("start sandbox");
    let control = sandbox.control();
    let mut app = TestApp::new(sandbox)
        .await
        .zoom(&specs, 60)
        .videosdk(&sdk, 20)
        .rocketchat(&chat);
    for workspace in &mut app.config.rocketchat {
        workspace.window_days = 3;
    }
    let db = &app.db;
    let config = app.write_config();
    // Kill points spread over the run: after the n-th API request, n drawn from a fixed seed.
    let mut seed: u64 = 0x5eed_cafe;
    for round in 0..20 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let after = 1 + (seed >> 33) % 60;
        let base = control.requests().last().map(|r| r.seq).unwrap_or(0);
        let mut child = rollcall(&config.path, &["collect"]).spawn().expect("spawn");
        let hit = control
            .wait_for_request(|r| r.seq >= base + after, Duration::from_secs(30))
            .await;
        if hit.is_none() {
            // The run finished before reaching that request: nothing left to interrupt.
            let _ = finish(child).await;
            continue;
        }
        child.start_kill().expect("SIGKILL");
        let _ = child.wait().await;
        let duplicates: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT 1 FROM rollcall.zoom_host_report_users
               GROUP BY account, month, report_type, user_id HAVING count(*) > 1) d",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(duplicates, 0, "round {round}");
    }
    let last = app.collect_all().await;
    assert!(last.all_complete(), "{last:?}");
    for spec in &specs {
        assert_mirror(&db.pool, &control, spec).await;
    }
    assert_sdk_mirror(&db.pool, &control, &sdk[0]).await;
    for workspace in &chat {
        rc_assert_mirror(&db.pool, &control, &workspace.name, 44).await;
    }
    let incomplete: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rollcall.collection_windows WHERE state NOT IN ('complete', 'unreachable')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(incomplete, 0, "every window complete");
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_rows_are_stored_whole_with_nul_replaced_and_no_window_wedged() {
    let specs = vec![zoom_account("acme", 60)];
    let app = TestApp::new(sandbox(specs.clone()).await)
        .await
        .zoom(&specs, 300);
    let (db, control) = (&app.db, app.control());
    control.add_fault(rule(FaultKind::HostileData));
    let outcome = app.collect_all().await;
    assert!(outcome.all_complete(), "{outcome:?}");

    let month = *reachable_months().last().expect("current month");
    let truth = control.report_truth("acme-account", month, rollcall_sandbox::ReportType::Active);
    type StoredRow = (
        String,
        Option<String>,
        Option<String>,
        Option<i64>,
        Option<serde_json::Value>,
        serde_json::Value,
    );
    let rows: Vec<StoredRow> =
        sqlx::query_as(
            "SELECT user_id, user_name, dept, meetings, custom_attributes, raw
               FROM rollcall.zoom_host_report_users WHERE account = 'acme' AND month = $1 AND report_type = 'active'",
        )
        .bind(month)
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), truth.users.len(), "no row lost");
    for (id, name, dept, meetings, attributes, raw) in rows {
        let served = truth
            .users
            .iter()
            .find(|u| u["id"] == id.as_str())
            .expect("a served user");
        let expected_name = format!(
            "{}\u{FFFD}nul",
            served["user_name"].as_str().unwrap_or_default()
        );
        assert_eq!(name.as_deref(), Some(expected_name.as_str()));
        assert_eq!(
            raw["user_name"],
            serde_json::json!(expected_name),
            "raw keeps the row, NUL replaced"
        );
        assert_eq!(
            dept.map(|d| d.len()),
            Some(100_000),
            "long strings are kept whole"
        );
        assert_eq!(
            meetings,
            served["meetings"].as_i64(),
            "numbers served as strings are parsed"
        );
        assert_eq!(
            attributes, None,
            "null where an object was documented is NULL"
        );
        assert_eq!(
            raw["unexpected\u{FFFD}key"]["nested"][1],
            serde_json::json!("two\u{FFFD}")
        );
    }
}

/// A source whose first fetch panics: what a bug in a parser or a reply no code path foresaw would do.
struct PanicsOnFetch {
    panicked: std::sync::atomic::AtomicBool,
}

impl rollcall::engine::Source for PanicsOnFetch {
    type Page = ();
    type Params = ();

    fn account(&self) -> &str {
        "acme"
    }

    fn stream(&self) -> &'static str {
        "panic_probe"
    }

    fn plan(&self) -> Vec<rollcall::store::windows::PlannedWindow> {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).expect("a date");
        vec![rollcall::store::windows::PlannedWindow {
            scope: "all".into(),
            start: day,
            end: day,
            reach: rollcall::store::windows::Reach::Reachable,
        }]
    }

    fn params(&self, _: &rollcall::store::windows::Window) {}

    fn is_final(&self, _: &rollcall::store::windows::Window, _: &()) -> bool {
        false
    }

    async fn shrinks(
        &self,
        _: &mut rollcall::engine::Tx,
        _: &rollcall::store::windows::Window,
        _: uuid::Uuid,
        _: &(),
    ) -> Result<Option<rollcall::engine::Shrink>, rollcall::store::StoreError> {
        Ok(None)
    }

    async fn fetch(
        &self,
        _: &rollcall::store::windows::Window,
        _: &(),
        _: Option<&str>,
        _: &tokio_util::sync::CancellationToken,
    ) -> Result<(), rollcall::http::ApiError> {
        if !self
            .panicked
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            panic!("a reply no code path foresaw");
        }
        Ok(())
    }

    fn inspect(
        &self,
        _: &rollcall::store::windows::Window,
        _: &(),
    ) -> Result<rollcall::engine::PageMeta, String> {
        Ok(rollcall::engine::PageMeta {
            next_page_token: None,
            expected_total: None,
        })
    }

    async fn write_page(
        &self,
        _: &mut rollcall::engine::Tx,
        _: &rollcall::store::windows::Window,
        _: uuid::Uuid,
        _: &(),
    ) -> Result<i64, rollcall::store::StoreError> {
        Ok(0)
    }

    async fn finish(
        &self,
        _: &mut rollcall::engine::Tx,
        _: &rollcall::store::windows::Window,
        _: uuid::Uuid,
        _: &(),
        _: bool,
    ) -> Result<Result<rollcall::engine::Finished, String>, rollcall::store::StoreError> {
        Ok(Ok(rollcall::engine::Finished {
            rows: 0,
            is_final: false,
        }))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_walk_that_panics_leaves_no_lease_renewed_behind_it() {
    let db = TestDb::create().await;
    rollcall::store::migrate(&db.pool).await.expect("migrate");
    let source = std::sync::Arc::new(PanicsOnFetch {
        panicked: false.into(),
    });
    let run = |lease_secs| {
        let engine = std::sync::Arc::new(rollcall::engine::Engine::new(
            db.pool.clone(),
            rollcall::store::lease_owner::LeaseOwner::for_this_process(lease_secs),
            tokio_util::sync::CancellationToken::new(),
            rollcall::engine::RunContext::new(now()),
            rollcall::engine::Concurrency {
                per_stream: 1,
                global: 1,
                setup: 1,
            },
        ));
        engine.run_source(source.clone())
    };
    // The first walk panics (the stream reports it, or the task ends in the panic: either way, it ends).
    let first = tokio::spawn(run(3)).await;
    assert!(
        !matches!(first, Ok(Ok(ref outcome)) if outcome.completed > 0),
        "{first:?}"
    );
    // A later run of this same process, under another owner, gets the window once the dead walk's lease
    // runs out: nothing renews it any more.
    let second = tokio::time::timeout(Duration::from_secs(60), run(3))
        .await
        .expect("the dead walk's lease is still renewed: the later run waits for it forever")
        .expect("second run");
    assert_eq!(second.completed, 1, "{second:?}");
    let state: String = sqlx::query_scalar(
        "SELECT state FROM rollcall.collection_windows WHERE stream = 'panic_probe'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("window");
    assert_eq!(state, "complete");
}

// Logs captured for this test alone (see `with_logs`).
#[test]
fn a_postgres_restart_while_waiting_for_another_replicas_lease_is_waited_out() {
    with_logs("debug", |logs| async move {
        if !postgres_binaries_present() {
            eprintln!("skipped: no PostgreSQL server binaries under /usr/lib/postgresql");
            return;
        }
        let pg = OwnPostgres::start().expect("start a PostgreSQL of the test's own");
        let specs = vec![zoom_account("acme", 60)];
        let app = TestApp::on(
            TestDb::create_on(&pg.admin_url()).await,
            sandbox(specs.clone()).await,
        )
        .zoom(&specs, 50);
        let (db, control) = (&app.db, app.control());
        let first = app.collect_all().await;
        assert!(first.all_complete(), "{first:?}");
        // Every window the next run would walk is held by a live replica elsewhere for a few seconds, so
        // the run's workers sit between windows, polling, when the database goes away.
        sqlx::query(
            "UPDATE rollcall.collection_windows SET lease_owner = $1, lease_until = now() + interval '6 seconds'
              WHERE NOT is_final AND state <> 'unreachable'",
        )
        .bind(FOREIGN_OWNER)
        .execute(&db.pool)
        .await
        .expect("lease elsewhere");
        db.pool.close().await;

        let (outcome, ()) = tokio::join!(
            tokio::time::timeout(
                Duration::from_secs(180),
                app.try_collect(Selection::default())
            ),
            async {
                let polling = logs
                    .logged("waiting for windows leased by another process")
                    .await;
                assert!(
                    polling,
                    "the run waits for the other replica:\n{}",
                    logs.text()
                );
                assert!(pg.ctl("stop"), "stop PostgreSQL while the run polls");
                let noticed = logs.logged("waiting for PostgreSQL").await;
                assert!(pg.ctl("start"), "start PostgreSQL again");
                assert!(noticed, "the run waits for the database:\n{}", logs.text());
            }
        );
        let outcome = outcome
            .expect("collect finishes")
            .expect("the run survives the restart");
        assert!(outcome.all_complete(), "{outcome:?}");
        let pool = rollcall::store::pool(&app.config.database.url, 2).expect("pool");
        assert_mirror(&pool, &control, &specs[0]).await;
    });
}

// Logs captured for this test alone (see `with_logs`).
#[test]
fn a_run_that_starts_while_postgres_is_down_waits_for_it() {
    with_logs("info", |logs| async move {
        if !postgres_binaries_present() {
            eprintln!("skipped: no PostgreSQL server binaries under /usr/lib/postgresql");
            return;
        }
        let pg = OwnPostgres::start().expect("start a PostgreSQL of the test's own");
        let specs = vec![zoom_account("acme", 60)];
        let app = TestApp::on(
            TestDb::create_on(&pg.admin_url()).await,
            sandbox(specs.clone()).await,
        )
        .zoom(&specs, 50);
        let control = app.control();
        // Migrated, as a daemon is from its start; then the database goes away before the next tick.
        let first = app.collect_all().await;
        assert!(first.all_complete(), "{first:?}");
        app.db.pool.close().await;
        assert!(pg.ctl("stop"), "stop PostgreSQL");

        let pool = rollcall::store::pool(&app.config.database.url, 4).expect("pool");
        let selection = Selection::default();
        let (outcome, ()) = tokio::join!(
            tokio::time::timeout(
                Duration::from_secs(180),
                rollcall::collector::run_once(
                    &pool,
                    &app.config,
                    &selection,
                    tokio_util::sync::CancellationToken::new(),
                )
            ),
            async {
                let noticed = logs.logged("waiting for PostgreSQL").await;
                assert!(pg.ctl("start"), "start PostgreSQL again");
                assert!(noticed, "the run waits for the database:\n{}", logs.text());
            }
        );
        let outcome = outcome
            .expect("the run finishes")
            .expect("the run survives a database that was down when it started");
        assert!(outcome.all_complete(), "{outcome:?}");
        assert_mirror(&pool, &control, &specs[0]).await;
    });
}

//! Operations: `healthcheck`, `check` against a paused account, a read-only `status`, and SIGTERM during
//! every kind of wait (PostgreSQL not answering yet, a server-ordered Retry-After).

use crate::common::*;
use rollcall_sandbox::{Endpoint, FaultKind, FaultRule};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use tokio::sync::mpsc;

/// A config file of our own, for configs `write_config` cannot express (a database nobody serves).
struct RawConfig {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

fn raw_config(toml: &str) -> RawConfig {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rollcall.toml");
    std::fs::write(&path, toml).expect("write config");
    RawConfig { path, _dir: dir }
}

/// A `database.url` where nothing listens.
fn dead_database_url() -> String {
    format!("postgres://postgres@127.0.0.1:{}/nobody", free_port())
}

/// The child's stderr, line by line, drained by a task so the child never blocks on a full pipe.
fn stderr_lines(child: &mut Child) -> mpsc::UnboundedReceiver<String> {
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits (at most a minute) for a stderr line containing `needle`; panics with what was seen otherwise.
async fn wait_for_line(lines: &mut mpsc::UnboundedReceiver<String>, needle: &str) {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.recv().await {
            let hit = line.contains(needle);
            seen.push(line);
            if hit {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(
        found,
        "no stderr line with {needle:?}:\n{}",
        seen.join("\n")
    );
}

fn sigterm(child: &Child) {
    let pid = child.id().expect("child still running").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("send SIGTERM");
    assert!(sent.success());
}

/// The exit code after SIGTERM, which must come within 10 s (systemd's and docker's grace).
async fn exit_within_10s(mut child: Child) -> Option<i32> {
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits within 10 s of SIGTERM")
        .expect("wait for the child");
    status.code()
}

fn spawn(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut cmd = rollcall(config, args);
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.spawn().expect("spawn rollcall")
}

// ---- healthcheck ----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn healthcheck_is_0_for_a_running_daemon_and_1_where_nothing_listens() {
    let specs = vec![zoom_account("acme", 10)];
    let sandbox = sandbox(specs.clone()).await;
    let app = TestApp::new(sandbox).await.zoom(&specs, 300);
    let config = app.write_config();
    let port = free_port();
    // 0.0.0.0, as in the container image: healthcheck must reach it over loopback.
    let listen = format!("0.0.0.0:{port}");
    let mut daemon = spawn(
        &config.path,
        &["run"],
        &[
            ("ROLLCALL__HTTP__LISTEN", listen.as_str()),
            ("ROLLCALL__SCHEDULE__RUN_ON_START", "false"),
        ],
    );
    let mut lines = stderr_lines(&mut daemon);
    wait_for_line(&mut lines, "rollcall is running").await;

    // Only http.listen matters: a database nobody serves does not make the daemon unhealthy to it.
    let healthcheck_only = raw_config(&format!(
        "[database]\nurl = \"{}\"\n\n[http]\nlisten = \"{listen}\"\n",
        dead_database_url()
    ));
    let healthy = run(&healthcheck_only.path, &["healthcheck"]).await;
    assert_eq!(healthy.code, 0, "{}", healthy.output());
    assert!(healthy.stdout.contains("HTTP 200"), "{}", healthy.output());

    let nobody = free_port();
    let mut cmd = rollcall(&config.path, &["healthcheck"]);
    cmd.env("ROLLCALL__HTTP__LISTEN", format!("127.0.0.1:{nobody}"));
    let unhealthy = finish(cmd.spawn().expect("spawn healthcheck")).await;
    assert_eq!(unhealthy.code, 1, "{}", unhealthy.output());
    assert!(
        unhealthy
            .stdout
            .contains(&format!("127.0.0.1:{nobody}/healthz")),
        "names what it asked: {}",
        unhealthy.output()
    );
    assert_eq!(
        unhealthy.stdout.trim().lines().count(),
        1,
        "one line saying why: {}",
        unhealthy.output()
    );

    sigterm(&daemon);
    assert_eq!(exit_within_10s(daemon).await, Some(0));
}

// ---- check and pauses -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn check_sends_nothing_for_a_paused_account_and_writes_nothing() {
    let specs = vec![zoom_account("acme", 10), zoom_account("other", 10)];
    let sandbox = sandbox(specs.clone()).await;
    let control = sandbox.control();
    let app = TestApp::new(sandbox).await.zoom(&specs, 300);
    let db = &app.db;
    let config = app.write_config();
    let migrated = run(&config.path, &["migrate"]).await;
    assert_eq!(migrated.code, 0, "{}", migrated.output());
    sqlx::query(
        "INSERT INTO rollcall.account_pauses (account, until, reason)
         VALUES ('acme', now() + interval '3 hours', 'daily limit reached')",
    )
    .execute(&db.pool)
    .await
    .expect("pause acme");
    let before: (i64, String) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM rollcall.collection_windows),
                (SELECT until::text FROM rollcall.account_pauses WHERE account = 'acme')",
    )
    .fetch_one(&db.pool)
    .await
    .expect("read state");
    control.clear_requests();

    let check = run(&config.path, &["check"]).await;
    assert_eq!(
        check.code,
        0,
        "a pause is not a failure: {}",
        check.output()
    );
    assert!(
        check.stdout.contains("PAUSED zoom[0] \"acme\": until "),
        "{}",
        check.stdout
    );
    assert!(check.stdout.contains("ok    zoom[1]"), "{}", check.stdout);
    let requests = control.requests();
    let for_acme: Vec<_> = requests
        .iter()
        .filter(|r| r.account_id.as_deref() == Some("acme-account"))
        .collect();
    assert!(
        for_acme.is_empty(),
        "nothing sent for the paused account, token requests included: {for_acme:?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.account_id.as_deref() == Some("other-account")),
        "the other account is still checked"
    );
    let after: (i64, String) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM rollcall.collection_windows),
                (SELECT until::text FROM rollcall.account_pauses WHERE account = 'acme')",
    )
    .fetch_one(&db.pool)
    .await
    .expect("read state");
    assert_eq!(before, after, "check writes nothing");

    // Without a database the pauses cannot be read: said so, and every credential is checked anyway.
    let mut cmd = rollcall(&config.path, &["check"]);
    cmd.env("ROLLCALL__DATABASE__URL", dead_database_url());
    let blind = finish(cmd.spawn().expect("spawn check")).await;
    assert_eq!(blind.code, 1, "the database line fails: {}", blind.output());
    assert!(
        blind.stdout.contains("pauses: not read"),
        "{}",
        blind.stdout
    );
    assert!(blind.stdout.contains("ok    zoom[0]"), "{}", blind.stdout);
}

// ---- status is read-only ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn status_never_creates_or_migrates_the_schema() {
    let db = TestDb::create().await;
    let config = raw_config(&format!("[database]\nurl = \"{}\"\n", db.url));
    let empty = run(&config.path, &["status"]).await;
    assert_eq!(empty.code, 3, "{}", empty.output());
    assert!(
        empty.stderr.contains("no rollcall schema") && empty.stderr.contains("rollcall migrate"),
        "{}",
        empty.stderr
    );
    assert!(!db.has_schema().await, "status created the schema");
    let table: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&db.pool)
        .await
        .expect("query");
    assert!(!table, "status created sqlx's migration table");

    let migrated = run(&config.path, &["migrate"]).await;
    assert_eq!(migrated.code, 0, "{}", migrated.output());
    let current = run(&config.path, &["status"]).await;
    assert_eq!(current.code, 0, "{}", current.output());
    assert!(!current.stderr.contains("warning"), "{}", current.stderr);

    // A schema one migration behind: said so, with both versions; what it holds is still shown.
    let newest: i64 = sqlx::query_scalar(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)
         RETURNING version",
    )
    .fetch_one(&db.pool)
    .await
    .expect("forget the newest migration");
    let behind = run(&config.path, &["status"]).await;
    assert_eq!(behind.code, 0, "{}", behind.output());
    assert!(
        behind
            .stderr
            .contains(&format!("this binary expects {newest}"))
            && behind.stderr.contains("run `rollcall migrate`"),
        "{}",
        behind.stderr
    );
    let still: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE version = $1")
        .bind(newest)
        .fetch_one(&db.pool)
        .await
        .expect("query");
    assert_eq!(still, 0, "status did not migrate");
}

// ---- SIGTERM during waits ---------------------------------------------------------------------------

async fn sigterm_while_postgres_is_away(command: &str, expected: i32) {
    let config = raw_config(&format!(
        "[database]\nurl = \"{}\"\n\n[http]\nlisten = \"127.0.0.1:{}\"\n",
        dead_database_url(),
        free_port()
    ));
    let mut child = spawn(&config.path, &[command], &[]);
    let mut lines = stderr_lines(&mut child);
    wait_for_line(&mut lines, "PostgreSQL is not answering yet").await;
    sigterm(&child);
    assert_eq!(exit_within_10s(child).await, Some(expected), "{command}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_while_collect_waits_for_postgres_exits_1() {
    sigterm_while_postgres_is_away("collect", 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_while_run_waits_for_postgres_exits_0() {
    sigterm_while_postgres_is_away("run", 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_long_retry_after_exits_1_and_releases_the_lease() {
    let specs = vec![zoom_account("acme", 10)];
    let sandbox = sandbox(specs.clone()).await;
    let control = sandbox.control();
    let app = TestApp::new(sandbox).await.zoom(&specs, 300);
    let db = &app.db;
    let config = app.write_config();
    // 50 s: under the 60 s a request waits in place (longer fails the window without waiting).
    control.add_fault(FaultRule::on(
        Endpoint::ReportUsers,
        FaultKind::RateLimitQpsRetryAfter { seconds: 50 },
    ));
    let mut child = spawn(
        &config.path,
        &["collect"],
        &[("RUST_LOG", "rollcall=debug")],
    );
    let mut lines = stderr_lines(&mut child);
    wait_for_line(&mut lines, "retrying request").await;
    sigterm(&child);
    assert_eq!(exit_within_10s(child).await, Some(1));
    let leased: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rollcall.collection_windows WHERE lease_owner IS NOT NULL",
    )
    .fetch_one(&db.pool)
    .await
    .expect("query leases");
    assert_eq!(leased, 0, "the interrupted window's lease is released");
}

// ---- lease identity ---------------------------------------------------------------------------------

/// The owner id names boot, pid namespace, pid and start time; a `kill -9`ed collector on this machine is
/// provably gone, so the next run takes its lease over at once instead of waiting out a 10-minute lease.
// Logs captured for this test alone (see `with_logs`): the rerun runs in-process.
#[test]
fn a_killed_collectors_lease_is_taken_over_at_once() {
    with_logs("info", |logs| async move {
        let specs = vec![zoom_account("acme", 300)];
        let sandbox = sandbox(specs.clone()).await;
        let control = sandbox.control();
        let mut app = TestApp::new(sandbox).await.zoom(&specs, 100);
        app.config.collector.lease_secs = 600;
        let db = &app.db;
        let config = app.write_config();
        control.add_fault(FaultRule::on(
            Endpoint::ReportUsers,
            FaultKind::Delay { ms: 300 },
        ));
        let mut first = spawn(&config.path, &["collect"], &[]);
        let leased = tokio::time::timeout(Duration::from_secs(60), async {
            let mut poll = tokio::time::interval(Duration::from_millis(50));
            loop {
                poll.tick().await;
                let owner: Option<String> = sqlx::query_scalar(
                    "SELECT lease_owner FROM rollcall.collection_windows
                      WHERE lease_owner IS NOT NULL AND pages > 0 LIMIT 1",
                )
                .fetch_optional(&db.pool)
                .await
                .ok()
                .flatten();
                if let Some(owner) = owner {
                    return owner;
                }
            }
        })
        .await
        .expect("the first collector leases a window and commits a page");
        assert!(leased.starts_with("rc2:"), "new owner format: {leased}");
        first.start_kill().expect("SIGKILL");
        first.wait().await.expect("reap the killed collector");
        control.clear_faults();

        // Another process than the killed one, as in production, with the same 600 s lease.
        let rerun = tokio::time::timeout(Duration::from_secs(120), app.collect_all())
            .await
            .expect("the rerun does not wait for the 600 s lease");
        assert!(rerun.all_complete(), "{rerun:?}");
        assert!(
            logs.text()
                .contains("took over the window of a process that no longer exists"),
            "{}",
            logs.text()
        );
        assert_mirror(&db.pool, &control, &specs[0]).await;
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_account_is_refused_naming_every_configured_one_and_writes_nothing() {
    let db = TestDb::create().await;
    let config = raw_config(&format!(
        r#"[database]
url = "{}"

[[zoom]]
name = "acme"
account_id = "a"
client_id = "c"
client_secret = "s"

[[videosdk]]
name = "studio"
api_key = "k"
api_secret = "s"

[[rocketchat]]
name = "chat"
url = "https://chat.example.com"
user_id = "u"
auth_token = "t"
"#,
        db.url
    ));
    for command in [&["collect"][..], &["backfill", "--from", "2026-11-01"]] {
        let args = [command, &["--account", "nope"]].concat();
        let refused = run(&config.path, &args).await;
        assert_eq!(refused.code, 2, "{args:?}: {}", refused.output());
        let expected =
            "--account: no account named \"nope\" in the config (configured: acme, studio, chat)";
        assert!(refused.stderr.contains(expected), "{}", refused.stderr);
    }
    assert!(!db.has_schema().await, "a refused command wrote nothing");
}

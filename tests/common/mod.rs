//! Shared harness: a fresh PostgreSQL database per test, the real sandbox over HTTP, and the real `rollcall`
//! binary as a child process.
#![allow(dead_code)]

use rollcall_sandbox::{Control, ReportType, Sandbox, SandboxConfig, ZoomAccountSpec};
use serde_json::Value;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;
use tokio::process::{Child, Command};

pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database of its own for one test, dropped when the test ends.
pub struct TestDb {
    pub url: String,
    admin_url: String,
    name: String,
    pub pool: PgPool,
}

impl TestDb {
    pub async fn create() -> TestDb {
        let admin_url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.into());
        let name = format!("rollcall_t_{}", uuid::Uuid::new_v4().simple());
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&admin_url)
            .await
            .expect("PostgreSQL must answer at DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres)");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .expect("create test database");
        admin.close().await;
        let mut url = reqwest::Url::parse(&admin_url).expect("DATABASE_URL is a URL");
        url.set_path(&format!("/{name}"));
        let url = url.to_string();
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect(&url)
            .await
            .expect("connect to the test database");
        TestDb {
            url,
            admin_url,
            name,
            pool,
        }
    }

    pub async fn has_schema(&self) -> bool {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM information_schema.schemata WHERE schema_name = 'rollcall')",
        )
        .fetch_one(&self.pool)
        .await
        .expect("query schemata")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime, which cannot block on itself: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(admin) = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&admin_url)
                    .await
                {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&admin)
                        .await;
                }
            });
        })
        .join();
    }
}

pub fn zoom_account(id: &str, users: u64) -> ZoomAccountSpec {
    ZoomAccountSpec {
        account_id: format!("{id}-account"),
        client_id: format!("{id}-client"),
        client_secret: format!("{id}-secret-s3cr3t"),
        users,
        active_percent: 40,
    }
}

pub async fn sandbox(accounts: Vec<ZoomAccountSpec>) -> Sandbox {
    let config = SandboxConfig {
        listen: "127.0.0.1:0".into(),
        seed: 7,
        zoom: accounts,
        ..SandboxConfig::default()
    };
    rollcall_sandbox::spawn(config)
        .await
        .expect("start sandbox")
}

/// A rollcall config pointing at the sandbox and the test database. Every account name is the sandbox
/// account id without its `-account` suffix.
pub struct RollcallConfig {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

pub fn write_config(
    db: &TestDb,
    sandbox: &Sandbox,
    accounts: &[ZoomAccountSpec],
    page_size: u32,
) -> RollcallConfig {
    write_config_with(db, sandbox, accounts, page_size, "")
}

pub fn write_config_with(
    db: &TestDb,
    sandbox: &Sandbox,
    accounts: &[ZoomAccountSpec],
    page_size: u32,
    extra: &str,
) -> RollcallConfig {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut toml = format!(
        "[database]\nurl = \"{}\"\n\n[collector]\nlease_secs = 30\nmax_retries = 2\nretry_base_ms = 10\n\n[http]\ntimeout_secs = 10\n\n",
        db.url
    );
    for a in accounts {
        toml.push_str(&format!(
            "[[zoom]]\nname = \"{}\"\naccount_id = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\napi_url = \"{}\"\noauth_url = \"{}\"\npage_size = {page_size}\n\n",
            account_name(a),
            a.account_id,
            a.client_id,
            a.client_secret,
            sandbox.zoom_api_url(),
            sandbox.zoom_oauth_url()
        ));
    }
    toml.push_str(extra);
    let path = dir.path().join("rollcall.toml");
    std::fs::write(&path, toml).expect("write config");
    RollcallConfig { path, _dir: dir }
}

pub fn account_name(spec: &ZoomAccountSpec) -> String {
    spec.account_id.trim_end_matches("-account").to_string()
}

pub fn rollcall(config: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rollcall"));
    cmd.arg("--config").arg(config).args(args);
    cmd.env_remove("DATABASE_URL");
    cmd.env("RUST_LOG", "info");
    cmd.stdout(std::process::Stdio::piped());
    cmd.stderr(std::process::Stdio::piped());
    cmd.kill_on_drop(true);
    cmd
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

pub async fn run(config: &Path, args: &[&str]) -> Run {
    let child = rollcall(config, args).spawn().expect("spawn rollcall");
    finish(child).await
}

pub async fn finish(child: Child) -> Run {
    let out: Output = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
        .await
        .expect("rollcall finished within 5 minutes")
        .expect("wait for rollcall");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The reachable months Zoom serves today, oldest first (first days).
pub fn reachable_months() -> Vec<chrono::NaiveDate> {
    use chrono::{Datelike, Months, Utc};
    let today = Utc::now().date_naive();
    let horizon =
        today.checked_sub_months(Months::new(6)).expect("date math") + chrono::Duration::days(1);
    let mut month = today.with_day(1).expect("first day");
    let mut months = Vec::new();
    while month >= horizon {
        months.push(month);
        month = month.checked_sub_months(Months::new(1)).expect("date math");
    }
    months.reverse();
    months
}

/// The stored users of one report window, user id → raw JSON.
pub async fn stored_users(
    pool: &PgPool,
    account: &str,
    month: chrono::NaiveDate,
    report_type: &str,
) -> BTreeMap<String, Value> {
    let rows: Vec<(String, Value)> = sqlx::query_as(
        "SELECT user_id, raw FROM rollcall.zoom_host_report_users
          WHERE account = $1 AND month = $2 AND report_type = $3",
    )
    .bind(account)
    .bind(month)
    .bind(report_type)
    .fetch_all(pool)
    .await
    .expect("query users");
    rows.into_iter().collect()
}

pub fn type_name(t: ReportType) -> &'static str {
    match t {
        ReportType::Active => "active",
        ReportType::Inactive => "inactive",
    }
}

/// Asserts that the database holds exactly the sandbox's truth for every reachable month of the account:
/// the same users with the same raw rows, and the same totals.
pub async fn assert_mirror(pool: &PgPool, control: &Control, spec: &ZoomAccountSpec) {
    let account = account_name(spec);
    for month in reachable_months() {
        for t in [ReportType::Active, ReportType::Inactive] {
            let truth = control.report_truth(&spec.account_id, month, t);
            let expected: BTreeMap<String, Value> = truth
                .users
                .iter()
                .map(|u| (u["id"].as_str().expect("id").to_string(), u.clone()))
                .collect();
            assert_eq!(expected.len() as u64, truth.total_records);
            let stored = stored_users(pool, &account, month, type_name(t)).await;
            assert_eq!(
                stored.len(),
                expected.len(),
                "{account} {month} {}: row count",
                type_name(t)
            );
            assert!(
                stored == expected,
                "{account} {month} {}: rows differ from the sandbox",
                type_name(t)
            );
            let totals: (i64, Option<i64>, Option<i64>, Option<i64>) = sqlx::query_as(
                "SELECT total_records, total_meetings, total_participants, total_meeting_minutes
                   FROM rollcall.zoom_host_reports WHERE account = $1 AND month = $2 AND report_type = $3",
            )
            .bind(&account)
            .bind(month)
            .bind(type_name(t))
            .fetch_one(pool)
            .await
            .expect("totals row exists");
            assert_eq!(
                totals,
                (
                    truth.total_records as i64,
                    Some(truth.total_meetings as i64),
                    Some(truth.total_participants as i64),
                    Some(truth.total_meeting_minutes as i64)
                ),
                "{account} {month} {}: totals",
                type_name(t)
            );
        }
    }
}

pub async fn window_states(
    pool: &PgPool,
    account: &str,
) -> Vec<(chrono::NaiveDate, String, String, Option<String>)> {
    sqlx::query_as(
        "SELECT window_start, scope, state, last_error FROM rollcall.collection_windows
          WHERE account = $1 ORDER BY window_start, scope",
    )
    .bind(account)
    .fetch_all(pool)
    .await
    .expect("query windows")
}

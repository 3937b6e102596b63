//! Shared harness: a fresh PostgreSQL database per test, the real sandbox over HTTP, and the real `rollcall`
//! binary as a child process.

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
        TestDb::create_on(&admin_url).await
    }

    /// A database on a specific server (a test that owns its PostgreSQL).
    pub async fn create_on(admin_url: &str) -> TestDb {
        let admin_url = admin_url.to_string();
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

/// A port nobody listens on right now, for a `rollcall run`'s `http.listen`.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn zoom_account(id: &str, users: u64) -> ZoomAccountSpec {
    ZoomAccountSpec {
        account_id: format!("{id}-account"),
        client_id: format!("{id}-client"),
        client_secret: format!("{id}-secret-s3cr3t"),
        users,
        active_percent: 40,
        rate_limits: None,
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

// ---- Rocket.Chat -------------------------------------------------------------------------------------

/// A sandbox serving only these Rocket.Chat workspaces.
pub async fn rc_sandbox(workspaces: Vec<rollcall_sandbox::RocketChatWorkspaceSpec>) -> Sandbox {
    let config = SandboxConfig {
        listen: "127.0.0.1:0".into(),
        seed: 11,
        rocketchat: workspaces,
        ..SandboxConfig::default()
    };
    rollcall_sandbox::spawn(config)
        .await
        .expect("start sandbox")
}

/// A `[[rocketchat]]` section for a sandbox workspace, unpaced unless `extra` says otherwise; `extra`
/// lines replace nothing, so give only keys not written here.
pub fn rc_section(
    sandbox: &Sandbox,
    spec: &rollcall_sandbox::RocketChatWorkspaceSpec,
    extra: &str,
) -> String {
    let pacing = if extra.contains("requests_per_minute") {
        ""
    } else {
        "requests_per_minute = 0\n"
    };
    format!(
        "[[rocketchat]]\nname = \"{}\"\nurl = \"{}\"\nuser_id = \"{}\"\nauth_token = \"{}\"\ntimezone = \"{}\"\n{pacing}{extra}\n",
        spec.name,
        sandbox.rocketchat_url(&spec.name),
        spec.user_id,
        spec.auth_token,
        spec.timezone
    )
}

/// The stored user ids per local day of one workspace.
pub async fn rc_stored(pool: &PgPool, account: &str) -> BTreeMap<chrono::NaiveDate, Vec<String>> {
    let rows: Vec<(chrono::NaiveDate, String)> = sqlx::query_as(
        "SELECT day, user_id FROM rollcall.rc_active_user_days WHERE account = $1 ORDER BY day, user_id",
    )
    .bind(account)
    .fetch_all(pool)
    .await
    .expect("query rc_active_user_days");
    let mut out: BTreeMap<chrono::NaiveDate, Vec<String>> = BTreeMap::new();
    for (day, user) in rows {
        out.entry(day).or_default().push(user);
    }
    out
}

/// The stored daily counts of one workspace: day → (users, is_final).
pub async fn rc_counts(pool: &PgPool, account: &str) -> BTreeMap<chrono::NaiveDate, (i32, bool)> {
    let rows: Vec<(chrono::NaiveDate, i32, bool)> = sqlx::query_as(
        "SELECT day, users, is_final FROM rollcall.rc_active_users WHERE account = $1 ORDER BY day",
    )
    .bind(account)
    .fetch_all(pool)
    .await
    .expect("query rc_active_users");
    rows.into_iter().map(|(d, u, f)| (d, (u, f))).collect()
}

/// Asserts the database holds exactly what the sandbox serves for every day from today − `retention`
/// to yesterday (local), a count row for each of those days (0 for days without users), and nothing else.
pub async fn rc_assert_mirror(pool: &PgPool, control: &Control, workspace: &str, retention: i64) {
    let today = control.rc_today(workspace).expect("workspace exists");
    let days: Vec<chrono::NaiveDate> = (1..=retention)
        .rev()
        .map(|back| today - chrono::Duration::days(back))
        .collect();
    let stored = rc_stored(pool, workspace).await;
    let counts = rc_counts(pool, workspace).await;
    let mut expected_users = BTreeMap::new();
    for day in &days {
        let truth = control.rc_truth(workspace, *day);
        if !truth.is_empty() {
            expected_users.insert(*day, truth.clone());
        }
        assert_eq!(
            counts.get(day).map(|c| c.0),
            Some(truth.len() as i32),
            "{workspace} {day}: stored count"
        );
    }
    assert!(
        stored == expected_users,
        "{workspace}: stored user days differ from the sandbox"
    );
    assert_eq!(
        counts.keys().copied().collect::<Vec<_>>(),
        days,
        "{workspace}: a count row for exactly today − {retention} .. yesterday"
    );
}

// ---- Zoom Video SDK -------------------------------------------------------------------------------

pub fn sdk_account(id: &str, sessions_per_month: u32) -> rollcall_sandbox::VideoSdkAccountSpec {
    rollcall_sandbox::VideoSdkAccountSpec {
        api_key: format!("{id}-key"),
        api_secret: format!("{id}-api-s3cr3t"),
        sessions_per_month,
        users_per_session: 7,
        rate_limits: None,
    }
}

pub async fn sdk_sandbox(accounts: Vec<rollcall_sandbox::VideoSdkAccountSpec>) -> Sandbox {
    rollcall_sandbox::spawn(SandboxConfig {
        listen: "127.0.0.1:0".into(),
        seed: 7,
        videosdk: accounts,
        ..SandboxConfig::default()
    })
    .await
    .expect("start sandbox")
}

/// `[[videosdk]]` sections for the accounts, named after their key without `-key`, unpaced so the
/// suite stays fast (pacing has its own unit test).
pub fn sdk_sections(
    sandbox: &Sandbox,
    accounts: &[rollcall_sandbox::VideoSdkAccountSpec],
    page_size: u32,
) -> String {
    accounts
        .iter()
        .map(|a| {
            format!(
                "[[videosdk]]\nname = \"{}\"\napi_key = \"{}\"\napi_secret = \"{}\"\napi_url = \"{}\"\npage_size = {page_size}\nresource_intensive_per_minute = 0\nheavy_per_second = 0\n\n",
                sdk_name(a),
                a.api_key,
                a.api_secret,
                sandbox.zoom_api_url()
            )
        })
        .collect()
}

pub fn sdk_name(spec: &rollcall_sandbox::VideoSdkAccountSpec) -> String {
    spec.api_key.trim_end_matches("-key").to_string()
}

/// Asserts the database holds exactly the sandbox's sessions of every reachable month and exactly the
/// users of every ended session (raw rows compared, rejoins included); returns (sessions, users).
pub async fn assert_sdk_mirror(
    pool: &PgPool,
    control: &Control,
    spec: &rollcall_sandbox::VideoSdkAccountSpec,
) -> (usize, usize) {
    let account = sdk_name(spec);
    let (mut sessions, mut users) = (0, 0);
    for month in reachable_months() {
        let truth = control.sdk_sessions(&spec.api_key, month);
        let expected: BTreeMap<String, Value> = truth
            .iter()
            .map(|s| (s["id"].as_str().expect("id").to_string(), s.clone()))
            .collect();
        let stored: BTreeMap<String, Value> = sqlx::query_as::<_, (String, Value)>(
            "SELECT session_id, raw FROM rollcall.zoom_sdk_sessions WHERE account = $1 AND month = $2",
        )
        .bind(&account)
        .bind(month)
        .fetch_all(pool)
        .await
        .expect("query sessions")
        .into_iter()
        .collect();
        assert!(
            stored == expected,
            "{account} {month}: sessions differ from the sandbox"
        );
        sessions += stored.len();
        for (id, session) in &expected {
            let mut want: Vec<String> = if session.get("end_time").is_some() {
                control
                    .sdk_session_users(&spec.api_key, id)
                    .iter()
                    .map(Value::to_string)
                    .collect()
            } else {
                Vec::new()
            };
            let mut got: Vec<String> = sqlx::query_scalar::<_, Value>(
                "SELECT raw FROM rollcall.zoom_sdk_session_users WHERE account = $1 AND session_id = $2",
            )
            .bind(&account)
            .bind(id)
            .fetch_all(pool)
            .await
            .expect("query users")
            .iter()
            .map(Value::to_string)
            .collect();
            want.sort();
            got.sort();
            assert_eq!(
                got, want,
                "{account} session {id}: users differ from the sandbox"
            );
            users += got.len();
        }
    }
    (sessions, users)
}

//! `rollcall demo`: the newcomer path. Starts the sandbox in-process, finds a PostgreSQL (DATABASE_URL, the
//! local server on 127.0.0.1:5432, or a throwaway cluster from the local PostgreSQL binaries), runs one
//! collection and prints what was stored. Needs no credentials and no Docker.

use crate::collector::{self, Selection};
use crate::commands::progress::Progress;
use crate::commands::status;
use crate::config::Config;
use crate::store;
use anyhow::{bail, Context};
use rollcall_sandbox::{
    RocketChatWorkspaceSpec, SandboxConfig, VideoSdkAccountSpec, ZoomAccountSpec,
};
use sqlx::postgres::PgPoolOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const LOCAL_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const DEMO_DATABASE: &str = "rollcall_demo";
const DEMO_CHAT: &str = "chat";

pub async fn run() -> anyhow::Result<ExitCode> {
    let sandbox = rollcall_sandbox::spawn(demo_sandbox()).await?;
    println!("sandbox: fake Zoom API at {}", sandbox.zoom_api_url());
    let database = Database::find().await?;
    println!("database: {}", database.describe());
    let config = Config::from_toml_str(&demo_config(&sandbox, &database.url), std::iter::empty())
        .map_err(|e| anyhow::anyhow!("demo config: {e}"))?;
    let pool = store::pool(&config.database.url, config.database.max_connections)?;
    // The demo installs no signal handler: Ctrl-C ends it at once, so no wait here needs cancelling.
    store::wait_until_reachable(&pool, Duration::from_secs(30), &CancellationToken::new()).await?;
    store::migrate(&pool).await?;

    println!(
        "collecting: two Zoom accounts (host reports), one Video SDK account, one Rocket.Chat workspace..."
    );
    let started = std::time::Instant::now();
    let progress = Progress::start(pool.clone(), &config, None, None, false);
    let report = collector::run_once(
        &pool,
        &config,
        &Selection::default(),
        CancellationToken::new(),
    )
    .await;
    if let Some(progress) = progress {
        progress.finish().await;
    }
    let report = report?;
    println!(
        "collection finished in {:.1} s: {} window(s) incomplete\n",
        started.elapsed().as_secs_f64(),
        report.incomplete
    );
    print!("{}", status::render_table(&status::load(&pool).await?));

    println!("\nactive hosts and meeting minutes per month (rollcall.zoom_host_reports):");
    let rows: Vec<(String, chrono::NaiveDate, i64, Option<i64>)> = sqlx::query_as(
        "SELECT account, month, total_records, total_meeting_minutes FROM rollcall.zoom_host_reports
          WHERE report_type = 'active' ORDER BY account, month",
    )
    .fetch_all(&pool)
    .await?;
    println!(
        "  {:<10} {:<10} {:>12} {:>16}",
        "account", "month", "active hosts", "meeting minutes"
    );
    for (account, month, hosts, minutes) in rows {
        println!(
            "  {account:<10} {:<10} {hosts:>12} {:>16}",
            month.format("%Y-%m"),
            minutes.unwrap_or(0)
        );
    }
    print_chat_summary(&pool).await?;
    print_sdk_summary(&pool).await?;
    print_daily_usage_summary(&pool).await?;
    println!(
        "\nthe data stays in {}; query it with psql, e.g.\n  SELECT month, count(*) FROM rollcall.zoom_host_report_users WHERE report_type = 'active' GROUP BY month;",
        database.describe()
    );
    pool.close().await;
    sandbox.shutdown().await;
    database.stop();
    Ok(if report.all_complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn demo_sandbox() -> SandboxConfig {
    let account = |id: &str, users| ZoomAccountSpec {
        account_id: format!("{id}-account"),
        client_id: format!("{id}-client"),
        client_secret: format!("{id}-secret"),
        users,
        active_percent: 40,
        rate_limits: None,
    };
    SandboxConfig {
        listen: "127.0.0.1:0".into(),
        seed: 2026,
        zoom: vec![account("acme", 2500), account("globex", 400)],
        rocketchat: vec![RocketChatWorkspaceSpec {
            users: 300,
            ..RocketChatWorkspaceSpec::new(DEMO_CHAT, "Europe/Berlin")
        }],
        videosdk: vec![VideoSdkAccountSpec {
            api_key: "studio-key".into(),
            api_secret: "studio-secret".into(),
            sessions_per_month: 40,
            users_per_session: 8,
            rate_limits: None,
        }],
        ..SandboxConfig::default()
    }
}

/// One line per month of the Video SDK account: sessions, joins and minutes in sessions.
async fn print_sdk_summary(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    let rows: Vec<(chrono::NaiveDate, i64, i64, i64)> = sqlx::query_as(
        "SELECT s.month, count(DISTINCT s.session_id), count(u.user_id),
                coalesce(sum(extract(epoch FROM u.leave_time - u.join_time))::bigint / 60, 0)
           FROM rollcall.zoom_sdk_sessions s
           LEFT JOIN rollcall.zoom_sdk_session_users u USING (account, session_id)
          GROUP BY s.month ORDER BY s.month",
    )
    .fetch_all(pool)
    .await?;
    println!(
        "
Video SDK sessions per month (rollcall.zoom_sdk_sessions, zoom_sdk_session_users):"
    );
    for (month, sessions, joins, minutes) in rows {
        println!(
            "  studio     {:<10} {sessions:>5} sessions {joins:>6} joins {minutes:>8} user minutes",
            month.format("%Y-%m")
        );
    }
    Ok(())
}

/// The daily usage reports per account and month, and the Video SDK days the two reports disagree on.
async fn print_daily_usage_summary(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    let rows: Vec<(String, chrono::NaiveDate, i64, i64, i64)> = sqlx::query_as(
        "SELECT account, date_trunc('month', day)::date, count(*), coalesce(sum(meetings), 0)::bigint,
                coalesce(sum(meeting_minutes), 0)::bigint
           FROM rollcall.zoom_daily_usage GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await?;
    println!("\nZoom daily usage per month (rollcall.zoom_daily_usage, zoom_sdk_daily_usage):");
    for (account, month, days, meetings, minutes) in rows {
        println!(
            "  {account:<10} {:<10} {days:>3} days {meetings:>6} meetings {minutes:>9} meeting minutes",
            month.format("%Y-%m")
        );
    }
    let sdk: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT account, coalesce(sum(sessions), 0)::bigint,
                (SELECT count(*) FROM rollcall.zoom_sdk_reconciliation r
                  WHERE r.account = u.account AND r.difference IS DISTINCT FROM 0)
           FROM rollcall.zoom_sdk_daily_usage u GROUP BY account ORDER BY account",
    )
    .fetch_all(pool)
    .await?;
    for (account, sessions, disagree) in sdk {
        println!(
            "  {account:<10} {sessions:>5} Video SDK sessions by the daily report; {disagree} days disagree with the session list"
        );
    }
    Ok(())
}

fn demo_config(sandbox: &rollcall_sandbox::Sandbox, database_url: &str) -> String {
    let mut toml =
        format!("[database]\nurl = \"{database_url}\"\n\n[collector]\nretry_base_ms = 100\n\n");
    for id in ["acme", "globex"] {
        toml.push_str(&format!(
            "[[zoom]]\nname = \"{id}\"\naccount_id = \"{id}-account\"\nclient_id = \"{id}-client\"\nclient_secret = \"{id}-secret\"\napi_url = \"{}\"\noauth_url = \"{}\"\n\n",
            sandbox.zoom_api_url(),
            sandbox.zoom_oauth_url()
        ));
    }
    // The sandbox has no rate limit of its own, and the demo should not wait six seconds per list page.
    toml.push_str(&format!(
        "[[videosdk]]\nname = \"studio\"\napi_key = \"studio-key\"\napi_secret = \"studio-secret\"\napi_url = \"{}\"\nresource_intensive_per_minute = 0\n\n",
        sandbox.zoom_api_url()
    ));
    let chat = RocketChatWorkspaceSpec::new(DEMO_CHAT, "Europe/Berlin");
    toml.push_str(&format!(
        "[[rocketchat]]\nname = \"{}\"\nurl = \"{}\"\nuser_id = \"{}\"\nauth_token = \"{}\"\ntimezone = \"{}\"\nrequests_per_minute = 0\n\n",
        chat.name,
        sandbox.rocketchat_url(&chat.name),
        chat.user_id,
        chat.auth_token,
        chat.timezone
    ));
    toml
}

/// The demo's Rocket.Chat workspace: DAU, WAU and MAU from the views analysts use.
async fn print_chat_summary(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    let (days, avg_dau, wau, mau): (i64, Option<f64>, Option<i32>, Option<i32>) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM rollcall.rc_daily_active_users WHERE account = $1),
                (SELECT avg(active_users)::float8 FROM rollcall.rc_daily_active_users WHERE account = $1),
                (SELECT active_users FROM rollcall.rc_weekly_active_users WHERE account = $1 AND days_collected = 7
                  ORDER BY week_start DESC LIMIT 1),
                (SELECT max(active_users) FROM rollcall.rc_monthly_active_users WHERE account = $1)",
    )
    .bind(DEMO_CHAT)
    .fetch_one(pool)
    .await?;
    println!(
        "\nRocket.Chat \"{DEMO_CHAT}\": {days} days kept, average DAU {:.1}, last full week's WAU {}, highest MAU {} (rollcall.rc_*_active_users views)",
        avg_dau.unwrap_or(0.0),
        wau.unwrap_or(0),
        mau.unwrap_or(0)
    );
    Ok(())
}

/// Where the demo's rows go.
struct Database {
    url: String,
    throwaway: Option<Throwaway>,
}

struct Throwaway {
    data_dir: PathBuf,
    bin_dir: PathBuf,
    as_postgres_user: bool,
}

impl Database {
    async fn find() -> anyhow::Result<Database> {
        if let Ok(url) = std::env::var("DATABASE_URL") {
            return Ok(Database {
                url,
                throwaway: None,
            });
        }
        if let Ok(url) = create_demo_database(LOCAL_ADMIN_URL).await {
            return Ok(Database {
                url,
                throwaway: None,
            });
        }
        println!("no PostgreSQL on 127.0.0.1:5432 and no DATABASE_URL: starting a throwaway one");
        let throwaway = Throwaway::start()?;
        let port = throwaway_port();
        let admin = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        let mut last_error = None;
        for _ in 0..50 {
            match create_demo_database(&admin).await {
                Ok(url) => {
                    return Ok(Database {
                        url,
                        throwaway: Some(throwaway),
                    })
                }
                Err(err) => last_error = Some(err),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        throwaway.stop();
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("the throwaway PostgreSQL did not start")))
    }

    fn describe(&self) -> String {
        let shown = match reqwest::Url::parse(&self.url) {
            Ok(mut url) => {
                let _ = url.set_password(None);
                url.to_string()
            }
            Err(_) => "DATABASE_URL".into(),
        };
        match &self.throwaway {
            Some(t) => format!("{shown} (throwaway cluster in {})", t.data_dir.display()),
            None => shown,
        }
    }

    fn stop(self) {
        if let Some(t) = self.throwaway {
            t.stop();
        }
    }
}

async fn create_demo_database(admin_url: &str) -> anyhow::Result<String> {
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(3))
        .connect(admin_url)
        .await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(DEMO_DATABASE)
            .fetch_one(&admin)
            .await?;
    if !exists {
        sqlx::query(&format!("CREATE DATABASE {DEMO_DATABASE}"))
            .execute(&admin)
            .await?;
    }
    admin.close().await;
    let mut url = reqwest::Url::parse(admin_url)?;
    url.set_path(&format!("/{DEMO_DATABASE}"));
    Ok(url.to_string())
}

fn throwaway_port() -> u16 {
    55432
}

impl Throwaway {
    fn start() -> anyhow::Result<Throwaway> {
        let bin_dir = find_postgres_bin().context(
            "no PostgreSQL found: set DATABASE_URL, start one on 127.0.0.1:5432, or install PostgreSQL's server binaries",
        )?;
        let data_dir =
            std::env::temp_dir().join(format!("rollcall-demo-pg-{}", std::process::id()));
        std::fs::create_dir_all(&data_dir)?;
        // initdb refuses to run as root, so as root the cluster belongs to the `postgres` user.
        let as_postgres_user = is_root();
        if as_postgres_user {
            run_checked(Command::new("chown").arg("postgres").arg(&data_dir))?;
        }
        let initdb = bin_dir.join("initdb");
        run_as(
            as_postgres_user,
            &initdb,
            &[
                "-D",
                &data_dir.display().to_string(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-N",
            ],
        )?;
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            throwaway_port(),
            data_dir.display()
        );
        let log = data_dir.join("server.log").display().to_string();
        run_as(
            as_postgres_user,
            &bin_dir.join("pg_ctl"),
            &[
                "-D",
                &data_dir.display().to_string(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "start",
            ],
        )?;
        Ok(Throwaway {
            data_dir,
            bin_dir,
            as_postgres_user,
        })
    }

    fn stop(self) {
        let _ = run_as(
            self.as_postgres_user,
            &self.bin_dir.join("pg_ctl"),
            &[
                "-D",
                &self.data_dir.display().to_string(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

fn find_postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn run_as(as_postgres_user: bool, program: &Path, args: &[&str]) -> anyhow::Result<()> {
    if as_postgres_user {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program).args(args);
        run_checked(&mut cmd)
    } else {
        run_checked(Command::new(program).args(args))
    }
}

fn run_checked(cmd: &mut Command) -> anyhow::Result<()> {
    let output = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !output.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

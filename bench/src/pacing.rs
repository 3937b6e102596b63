//! `rollcall-bench pacing`: how close the collector's pacing comes to Zoom's Pro limits without drawing a
//! 429. The sandbox enforces the Pro limits per account (Heavy 10 requests in any second, Resource-intensive
//! 10 in any minute); `rollcall collect` (release build, `plan = "pro"`, no overrides) walks
//! - a Zoom account's host reports: ~400 Heavy pages, ~40 s at 10/s;
//! - a Video SDK account's session lists at 5 sessions a page: ~24 Resource-intensive pages, ~2.3 min at
//!   10/min, then one Heavy users page per session (the same account's Heavy limit).
//!
//! Both accounts run at once, so the whole run is bounded by the list (about 2.5 minutes, cut at 4.5).
//! Rates come from the sandbox's request log (`at_ms`): for each category, the requests it answered
//! between the first and the last, i.e. (answered − 1) / (last − first). `ROLLCALL_BENCH_REQUEST_LOG=FILE`
//! writes the sandbox's request log there (JSON lines) for a closer look.

use super::{fresh_database, reachable_months};
use anyhow::{bail, Context};
use rollcall_sandbox::{
    Control, Endpoint, RequestRecord, SandboxConfig, VideoSdkAccountSpec, ZoomAccountSpec,
    ZoomPlan, ZoomRateLimits,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Enough host-report pages for ~40 s of Heavy traffic: 6 months × (8,000 active + 12,000 inactive) / 300.
const HOST_USERS: u64 = 20_000;
/// With `SDK_PAGE_SIZE`, four list pages a month: ~24 Resource-intensive requests over six months.
const SDK_SESSIONS_PER_MONTH: u32 = 20;
const SDK_PAGE_SIZE: u32 = 5;
/// Zoom's Pro limits (research/zoom-api.md §4), as the sandbox enforces them.
const PRO_HEAVY_PER_SECOND: f64 = 10.0;
const PRO_RESOURCE_INTENSIVE_PER_MINUTE: f64 = 10.0;
/// Keeps the benchmark under five minutes even if the collector stalls.
const RUN_LIMIT: Duration = Duration::from_secs(270);
const TARGET_SHARE: f64 = 0.9;

const HOST_ACCOUNT: &str = "paced-account";
const SDK_KEY: &str = "paced-sdk-key";

/// One category's traffic as the sandbox saw it.
struct Traffic {
    label: &'static str,
    /// Requests per second the category allows.
    allowed_per_sec: f64,
    /// "/s" or "/min", to print the rates in the unit the limit is stated in.
    per_minute: bool,
    requests: usize,
    refused: usize,
    answered: usize,
    wall_secs: f64,
}

impl Traffic {
    fn of(
        label: &'static str,
        allowed_per_sec: f64,
        per_minute: bool,
        log: &[RequestRecord],
        pick: impl Fn(&RequestRecord) -> bool,
    ) -> Traffic {
        let picked: Vec<&RequestRecord> = log.iter().filter(|r| pick(r)).collect();
        let answered: Vec<u64> = picked
            .iter()
            .filter(|r| r.status != 429)
            .map(|r| r.at_ms)
            .collect();
        let wall_ms = match (answered.iter().min(), answered.iter().max()) {
            (Some(first), Some(last)) => last - first,
            _ => 0,
        };
        Traffic {
            label,
            allowed_per_sec,
            per_minute,
            requests: picked.len(),
            refused: picked.len() - answered.len(),
            answered: answered.len(),
            wall_secs: wall_ms as f64 / 1000.0,
        }
    }

    /// Intervals, not requests, over the wall time: n requests paced exactly at the limit span n − 1 slots.
    fn achieved_per_sec(&self) -> f64 {
        if self.answered < 2 || self.wall_secs <= 0.0 {
            return 0.0;
        }
        (self.answered - 1) as f64 / self.wall_secs
    }

    fn share(&self) -> f64 {
        self.achieved_per_sec() / self.allowed_per_sec
    }

    fn rate(&self, per_sec: f64) -> String {
        if self.per_minute {
            format!("{:.2}/min", per_sec * 60.0)
        } else {
            format!("{per_sec:.2}/s")
        }
    }
}

pub async fn run(admin_url: &str, binary: &Path) -> anyhow::Result<()> {
    let pro = Some(ZoomRateLimits::plan(ZoomPlan::Pro));
    let host = ZoomAccountSpec {
        account_id: HOST_ACCOUNT.into(),
        client_id: "paced-client".into(),
        client_secret: "paced-secret".into(),
        users: HOST_USERS,
        active_percent: 40,
        rate_limits: pro.clone(),
    };
    let sdk = VideoSdkAccountSpec {
        api_key: SDK_KEY.into(),
        api_secret: "paced-sdk-secret".into(),
        sessions_per_month: SDK_SESSIONS_PER_MONTH,
        users_per_session: 3,
        rate_limits: pro,
    };
    let sandbox = rollcall_sandbox::spawn(SandboxConfig {
        listen: "127.0.0.1:0".into(),
        seed: 11,
        zoom: vec![host.clone()],
        videosdk: vec![sdk.clone()],
        ..SandboxConfig::default()
    })
    .await?;
    let control = sandbox.control();
    let db = fresh_database(admin_url, "rollcall_pacing").await?;
    let config = write_config(&db.url, &sandbox, &host, &sdk)?;

    eprintln!(
        "== pacing: sandbox enforcing Zoom Pro limits; rollcall collect with plan = \"pro\" \
         (bounded at {} s)",
        RUN_LIMIT.as_secs()
    );
    let started = Instant::now();
    let child = tokio::process::Command::new(binary)
        .arg("--config")
        .arg(&config)
        .arg("collect")
        .env_remove("DATABASE_URL")
        .kill_on_drop(true)
        .status();
    let outcome = tokio::time::timeout(RUN_LIMIT, child).await;
    let run_secs = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&config);

    let log = control.requests();
    // For a closer look at what drew a 429: every record, with its `at_ms`, one JSON object a line.
    if let Some(path) = std::env::var_os("ROLLCALL_BENCH_REQUEST_LOG") {
        let lines: Vec<String> = log
            .iter()
            .filter_map(|r| serde_json::to_string(r).ok())
            .collect();
        std::fs::write(&path, lines.join("\n"))
            .with_context(|| format!("writing {}", PathBuf::from(&path).display()))?;
    }
    let traffic = [
        Traffic::of(
            "Heavy: /report/users",
            PRO_HEAVY_PER_SECOND,
            false,
            &log,
            |r| r.endpoint == Endpoint::ReportUsers,
        ),
        Traffic::of(
            "Resource-intensive: /videosdk/sessions",
            PRO_RESOURCE_INTENSIVE_PER_MINUTE / 60.0,
            true,
            &log,
            |r| r.endpoint == Endpoint::SdkSessions,
        ),
        Traffic::of(
            "Heavy: /videosdk/sessions/{id}/users",
            PRO_HEAVY_PER_SECOND,
            false,
            &log,
            |r| r.endpoint == Endpoint::SdkSessionUsers,
        ),
    ];
    let rows = stored_rows(&db.pool, &control).await;
    db.drop_database(admin_url).await;
    sandbox.shutdown().await;

    print_table(&traffic, run_secs);
    match rows {
        Ok(line) => println!("{line}"),
        Err(err) => println!("rows: cannot count ({err:#})"),
    }
    let status = match outcome {
        Ok(status) => status.context("running rollcall collect")?,
        Err(_) => bail!(
            "rollcall collect did not finish within {} s",
            RUN_LIMIT.as_secs()
        ),
    };
    if !status.success() {
        bail!("rollcall collect failed: {status}");
    }
    Ok(())
}

/// Pro plan, no overrides: the pacing under test is exactly what a user gets by default.
fn write_config(
    db_url: &str,
    sandbox: &rollcall_sandbox::Sandbox,
    host: &ZoomAccountSpec,
    sdk: &VideoSdkAccountSpec,
) -> anyhow::Result<PathBuf> {
    let toml = format!(
        "[database]\nurl = \"{db_url}\"\nmax_connections = 8\n\n[log]\nlevel = \"warn\"\n\n\
         [[zoom]]\nname = \"paced\"\naccount_id = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\n\
         api_url = \"{api}\"\noauth_url = \"{}\"\nplan = \"pro\"\n\n\
         [[videosdk]]\nname = \"paced-sdk\"\napi_key = \"{}\"\napi_secret = \"{}\"\napi_url = \"{api}\"\n\
         plan = \"pro\"\npage_size = {SDK_PAGE_SIZE}\n",
        host.account_id,
        host.client_id,
        host.client_secret,
        sandbox.zoom_oauth_url(),
        sdk.api_key,
        sdk.api_secret,
        api = sandbox.zoom_api_url(),
    );
    let path =
        std::env::temp_dir().join(format!("rollcall-bench-pacing-{}.toml", std::process::id()));
    std::fs::write(&path, toml)?;
    Ok(path)
}

/// Stored rows against the sandbox's truth, so a fast but incomplete run cannot pass for a good one.
async fn stored_rows(pool: &sqlx::PgPool, control: &Control) -> anyhow::Result<String> {
    let months = reachable_months();
    let host: i64 = sqlx::query_scalar("SELECT count(*) FROM rollcall.zoom_host_report_users")
        .fetch_one(pool)
        .await?;
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM rollcall.zoom_sdk_sessions")
        .fetch_one(pool)
        .await?;
    let expected_sessions: usize = months
        .iter()
        .map(|m| control.sdk_sessions(SDK_KEY, *m).len())
        .sum();
    Ok(format!(
        "rows: host report {host} of {}, Video SDK sessions {sessions} of {expected_sessions}",
        HOST_USERS * months.len() as u64
    ))
}

fn print_table(traffic: &[Traffic], run_secs: f64) {
    println!();
    println!("rollcall collect against Zoom Pro limits: {run_secs:.1} s in all");
    println!();
    println!("| category | requests | 429s | wall s | achieved | allowed | % of allowed |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for t in traffic {
        println!(
            "| {} | {} | {} | {:.1} | {} | {} | {:.1}% |",
            t.label,
            t.requests,
            t.refused,
            t.wall_secs,
            t.rate(t.achieved_per_sec()),
            t.rate(t.allowed_per_sec),
            t.share() * 100.0
        );
    }
    println!();
    for t in traffic {
        let rate_ok = t.share() >= TARGET_SHARE;
        println!(
            "{}: {} (≥ {:.0}% of allowed), {} (no 429)",
            t.label,
            if rate_ok { "rate met" } else { "rate MISSED" },
            TARGET_SHARE * 100.0,
            if t.refused == 0 {
                "429s met"
            } else {
                "429s MISSED"
            },
        );
    }
}

//! `rollcall-bench steady [YYYY-MM-DD]`: what a run costs in steady state. On the sandbox, a Video SDK
//! account with `SESSIONS_PER_MONTH` sessions a month (about 1,000 a day) whose horizon holds the current
//! and the previous month, plus a Zoom account of `ZOOM_USERS` users (six months of host reports). Run 1
//! (`rollcall collect`) on the given day (default 2026-03-01: the previous month is still open the next
//! day, the case where the most history can still change), then run 2 a simulated day later: the sandbox
//! serves the next day (a day of new sessions) and rollcall's calendar is moved with
//! `ROLLCALL_TEST_TODAY`. Prints run 2's requests per stream against the minimum a correct collector
//! needs, and the ratio:
//! - session list pages of the months still open on run 2's day;
//! - users pages of the sessions that had not settled on run 1's day (ended within `settle_days`) or were
//!   new since run 1;
//! - host-report pages (active and inactive) and one daily-usage request per open month and account;
//! - one OAuth token.
//!
//! Pacing is off (every rate limit 0, the sandbox enforcing none) so it runs in minutes: the request
//! counts, not the times, are the result. `ROLLCALL_BIN` picks the binary (a build of another commit to
//! measure before and after).

use super::fresh_database;
use anyhow::{bail, Context};
use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use rollcall_sandbox::{
    Control, Endpoint, ReportType, Sandbox, SandboxConfig, VideoSdkAccountSpec, ZoomAccountSpec,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// About 1,000 a day; `ROLLCALL_BENCH_SESSIONS_PER_MONTH` sets another size (a smaller one runs faster).
const SESSIONS_PER_MONTH: u32 = 30_000;
const USERS_PER_SESSION: u32 = 7;
const ZOOM_USERS: u64 = 10_000;
const PAGE_SIZE: usize = 300;
const SETTLE_DAYS: i64 = 2;

pub async fn run(admin_url: &str, binary: &Path, args: &[String]) -> anyhow::Result<()> {
    let day1 = match args.first() {
        Some(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .with_context(|| format!("steady: expected a date as YYYY-MM-DD, got {text}"))?,
        None => NaiveDate::from_ymd_opt(2026, 3, 1).context("date")?,
    };
    let day2 = day1.succ_opt().context("date")?;
    let sessions_per_month = match std::env::var("ROLLCALL_BENCH_SESSIONS_PER_MONTH") {
        Ok(n) => n.parse().with_context(|| {
            format!("ROLLCALL_BENCH_SESSIONS_PER_MONTH must be a number, got {n}")
        })?,
        Err(_) => SESSIONS_PER_MONTH,
    };
    let sdk = VideoSdkAccountSpec {
        api_key: "steady-key".into(),
        api_secret: "steady-api-secret".into(),
        sessions_per_month,
        users_per_session: USERS_PER_SESSION,
        rate_limits: None,
    };
    let zoom = ZoomAccountSpec {
        account_id: "steady-account".into(),
        client_id: "steady-client".into(),
        client_secret: "steady-secret".into(),
        users: ZOOM_USERS,
        active_percent: 40,
        rate_limits: None,
    };
    // The current and the previous month, on both days: the previous month's first day stays inside.
    let previous = first_of_month(day1)
        .checked_sub_months(Months::new(1))
        .context("date")?;
    let horizon_days = (day2 - previous).num_days();
    let db = fresh_database(admin_url, "rollcall_steady").await?;

    eprintln!("== steady: run 1 on {day1}");
    let sandbox = spawn(day1, &sdk, &zoom).await?;
    let config = write_config(&db.url, &sandbox, &sdk, &zoom, horizon_days)?;
    let first = collect(binary, &config, day1).await?;
    let first_requests = sandbox.control().requests().len();
    let mut listed_on_day1 = BTreeSet::new();
    for month in [previous, first_of_month(day1)] {
        for s in sandbox.control().sdk_sessions(&sdk.api_key, month) {
            if let Some(id) = s["id"].as_str() {
                listed_on_day1.insert(id.to_string());
            }
        }
    }
    sandbox.shutdown().await;

    eprintln!("== steady: run 2 on {day2}");
    let sandbox = spawn(day2, &sdk, &zoom).await?;
    let config = write_config(&db.url, &sandbox, &sdk, &zoom, horizon_days)?;
    let second = collect(binary, &config, day2).await?;
    let control = sandbox.control();
    let mut sent: BTreeMap<&'static str, u64> = BTreeMap::new();
    for r in control.requests() {
        *sent.entry(stream_of(r.endpoint)).or_default() += 1;
    }
    let needed = minimum(&control, &sdk, &zoom, day1, day2, &listed_on_day1);
    sandbox.shutdown().await;
    db.drop_database(admin_url).await;
    let _ = std::fs::remove_file(&config);

    println!(
        "{sessions_per_month} Video SDK sessions a month, {ZOOM_USERS} Zoom users; run 1 ({day1}): \
         {first_requests} requests in {first:.1} s; run 2 ({day2}): {second:.1} s"
    );
    println!();
    println!("| stream | run 2 requests | minimum | ratio |");
    println!("|---|---:|---:|---:|");
    let (mut total_sent, mut total_needed) = (0, 0);
    for stream in STREAMS {
        let (s, n) = (
            sent.get(stream).copied().unwrap_or(0),
            needed.get(stream).copied().unwrap_or(0),
        );
        total_sent += s;
        total_needed += n;
        println!("| {stream} | {s} | {n} | {} |", ratio(s, n));
    }
    println!(
        "| **total** | **{total_sent}** | **{total_needed}** | **{}** |",
        ratio(total_sent, total_needed)
    );
    Ok(())
}

const STREAMS: [&str; 6] = [
    "zoom_sdk_sessions",
    "zoom_sdk_session_users",
    "zoom_sdk_daily_usage",
    "zoom_host_report",
    "zoom_daily_usage",
    "oauth token",
];

fn stream_of(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::SdkSessions => "zoom_sdk_sessions",
        Endpoint::SdkSessionUsers => "zoom_sdk_session_users",
        Endpoint::SdkReportDaily => "zoom_sdk_daily_usage",
        Endpoint::ReportUsers => "zoom_host_report",
        Endpoint::ReportDaily => "zoom_daily_usage",
        Endpoint::OauthToken => "oauth token",
        Endpoint::RcActiveUsers => "rc_active_users",
    }
}

fn ratio(sent: u64, needed: u64) -> String {
    if needed == 0 {
        "-".into()
    } else {
        format!("{:.2}", sent as f64 / needed as f64)
    }
}

fn pages(rows: usize) -> u64 {
    rows.div_ceil(PAGE_SIZE).max(1) as u64
}

fn first_of_month(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}

fn last_of_month(first: NaiveDate) -> NaiveDate {
    first
        .checked_add_months(Months::new(1))
        .and_then(|next| next.pred_opt())
        .unwrap_or(first)
}

/// What a correct collector must ask for on `day2`, per stream, from the sandbox's truth.
fn minimum(
    control: &Control,
    sdk: &VideoSdkAccountSpec,
    zoom: &ZoomAccountSpec,
    day1: NaiveDate,
    day2: NaiveDate,
    listed_on_day1: &BTreeSet<String>,
) -> BTreeMap<&'static str, u64> {
    let previous = first_of_month(day1)
        .checked_sub_months(Months::new(1))
        .unwrap_or(day1);
    let open: Vec<NaiveDate> = [previous, first_of_month(day1), first_of_month(day2)]
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|first| (day2 - last_of_month(*first)).num_days() <= SETTLE_DAYS)
        .collect();
    let mut needed: BTreeMap<&'static str, u64> = BTreeMap::new();
    for month in &open {
        let sessions = control.sdk_sessions(&sdk.api_key, *month);
        *needed.entry("zoom_sdk_sessions").or_default() += pages(sessions.len());
        *needed.entry("zoom_sdk_daily_usage").or_default() += 1;
        *needed.entry("zoom_daily_usage").or_default() += 1;
        for t in [ReportType::Active, ReportType::Inactive] {
            let truth = control.report_truth(&zoom.account_id, *month, t);
            *needed.entry("zoom_host_report").or_default() += pages(truth.users.len());
        }
        for s in &sessions {
            let (Some(id), Some(end)) = (s["id"].as_str(), s["end_time"].as_str()) else {
                continue;
            };
            let Ok(end) = end.parse::<DateTime<Utc>>() else {
                continue;
            };
            let unsettled_at_run1 = (day1 - end.date_naive()).num_days() <= SETTLE_DAYS;
            if unsettled_at_run1 || !listed_on_day1.contains(id) {
                let users = control.sdk_session_users(&sdk.api_key, id).len();
                *needed.entry("zoom_sdk_session_users").or_default() += pages(users);
            }
        }
    }
    needed.insert("oauth token", 1);
    needed
}

async fn spawn(
    today: NaiveDate,
    sdk: &VideoSdkAccountSpec,
    zoom: &ZoomAccountSpec,
) -> anyhow::Result<Sandbox> {
    rollcall_sandbox::spawn(SandboxConfig {
        listen: "127.0.0.1:0".into(),
        seed: 11,
        today: Some(today),
        zoom: vec![zoom.clone()],
        videosdk: vec![sdk.clone()],
        ..SandboxConfig::default()
    })
    .await
}

fn write_config(
    db_url: &str,
    sandbox: &Sandbox,
    sdk: &VideoSdkAccountSpec,
    zoom: &ZoomAccountSpec,
    horizon_days: i64,
) -> anyhow::Result<PathBuf> {
    let unpaced = "heavy_per_second = 0\nresource_intensive_per_minute = 0\ndaily_requests = 0\n";
    let toml = format!(
        "[database]\nurl = \"{db_url}\"\nmax_connections = 16\n\n[log]\nlevel = \"warn\"\n\n\
         [[zoom]]\nname = \"steady-zoom\"\naccount_id = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\n\
         api_url = \"{}\"\noauth_url = \"{}\"\nsettle_days = {SETTLE_DAYS}\n{unpaced}\n\
         [[videosdk]]\nname = \"steady-sdk\"\napi_key = \"{}\"\napi_secret = \"{}\"\napi_url = \"{}\"\n\
         settle_days = {SETTLE_DAYS}\nhorizon_days = {horizon_days}\n{unpaced}",
        zoom.account_id,
        zoom.client_id,
        zoom.client_secret,
        sandbox.zoom_api_url(),
        sandbox.zoom_oauth_url(),
        sdk.api_key,
        sdk.api_secret,
        sandbox.zoom_api_url(),
    );
    let path = std::env::temp_dir().join(format!("rollcall-steady-{}.toml", std::process::id()));
    std::fs::write(&path, toml).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// One `rollcall collect` on `today` (its calendar moved there); its wall time in seconds.
async fn collect(binary: &Path, config: &Path, today: NaiveDate) -> anyhow::Result<f64> {
    let started = Instant::now();
    let status = tokio::process::Command::new(binary)
        .arg("--config")
        .arg(config)
        .arg("collect")
        .env_remove("DATABASE_URL")
        .env("ROLLCALL_TEST_TODAY", today.to_string())
        .status()
        .await
        .with_context(|| format!("running {}", binary.display()))?;
    if !status.success() {
        bail!("rollcall collect on {today} failed: {status}");
    }
    Ok(started.elapsed().as_secs_f64())
}

//! `rollcall-bench pacing` and `rollcall-bench latency`: how close the collector's pacing comes to Zoom's
//! limits without drawing a 429. The sandbox enforces the plan's limits per account (Heavy: Pro 10, Business
//! 40 requests in any second; Resource-intensive: Pro 10, Business 20 in any minute); `rollcall collect`
//! (release build, `plan = "pro"|"business"`, no other overrides, default `windows_in_flight`) walks
//! - a Zoom account's host reports (Heavy `/report/users`, 12 windows: 6 months x active/inactive);
//! - a separate Video SDK account: its session lists (Resource-intensive `/videosdk/sessions`), then one
//!   Heavy users page per session (`/videosdk/sessions/{id}/users`, every session its own window).
//!
//! `pacing` is one scenario with replies at once (Pro, ~400 host-report pages, the SDK list at 5 sessions a
//! page so the Resource-intensive limit is measured over 24 requests). `latency` runs four scenarios one
//! after another, every reply taking the sandbox's `reply_latency_ms`: Pro 300 ms, Pro 1 s, Business 300 ms,
//! Business 1 s (`bench/run.sh latency pro-300 business-1000` runs a subset).
//!
//! Rates come from the sandbox's request log (`at_ms`): for each category, the requests it answered
//! between the first and the last, i.e. (answered − 1) / (last − first). Next to each rate stands the
//! *work bound*: a window's pages follow its token chain, so at most `windows_in_flight` windows have a
//! request outstanding and each window's pages take a reply latency each; the answers therefore span at
//! least latency × (max(longest chain, ⌈requests / windows in flight⌉) − 1), and no pacing can beat
//! (answered − 1) over that span. A category whose bound is below the allowed rate is work-bound: the
//! target (≥ 90 %) applies to min(allowed, bound) there, and the table says so.
//! `ROLLCALL_BENCH_REQUEST_LOG=PREFIX` writes each scenario's request log to PREFIX-<scenario>.jsonl;
//! `ROLLCALL_BENCH_WINDOWS_IN_FLIGHT=N` sets `[collector] windows_in_flight` (to study a miss; the
//! measured figures use the default).

use super::{fresh_database, reachable_months};
use anyhow::{bail, Context};
use rollcall_sandbox::{
    Control, Endpoint, RequestRecord, SandboxConfig, VideoSdkAccountSpec, ZoomAccountSpec,
    ZoomPlan, ZoomRateLimits,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The engine's default `[collector] windows_in_flight`.
const DEFAULT_WINDOWS_IN_FLIGHT: usize = 16;
const TARGET_SHARE: f64 = 0.9;

const HOST_ACCOUNT: &str = "paced-account";
const SDK_KEY: &str = "paced-sdk-key";

/// One run of `rollcall collect` against a sandbox enforcing one plan's limits.
#[derive(Clone, Debug)]
struct Scenario {
    name: &'static str,
    plan: ZoomPlan,
    reply_latency_ms: u64,
    /// Host-report users: every month each is in the active or the inactive report (40 % active).
    host_users: u64,
    sdk_sessions_per_month: u32,
    /// The session list's `page_size` in rollcall's config.
    sdk_page_size: u32,
    /// Keeps a stalled collector from running forever.
    run_limit: Duration,
    /// `rollcall run` replicas on the same database, started by one cron tick (1: a plain `collect`).
    replicas: usize,
}

impl Scenario {
    /// The original pacing run: replies at once, Pro; ~400 host-report pages (~40 s at 10/s), 24 list pages
    /// (~2.3 min at 10/min), 116 users pages.
    fn pacing() -> Scenario {
        Scenario {
            name: "pro-0",
            plan: ZoomPlan::Pro,
            reply_latency_ms: 0,
            host_users: 20_000,
            sdk_sessions_per_month: 20,
            sdk_page_size: 5,
            run_limit: Duration::from_secs(270),
            replicas: 1,
        }
    }

    /// Sized so that each Heavy category runs 30–60 s at the allowed rate: Pro 20,000 host users
    /// (6 × (27 + 40) = 402 pages, ~42 s at 9.5/s) and 100 sessions a month (600 users pages, ~63 s);
    /// Business 60,000 host users (6 × (80 + 120) = 1,200 pages, ~32 s at 38/s) and 290 sessions a month
    /// (~1,740 users pages, ~46 s). The lists take one page a month at page_size 300 (6 requests).
    fn latency(plan: ZoomPlan, reply_latency_ms: u64) -> Scenario {
        let name = match (plan, reply_latency_ms) {
            (ZoomPlan::Pro, 300) => "pro-300",
            (ZoomPlan::Pro, 1000) => "pro-1000",
            (ZoomPlan::Business, 300) => "business-300",
            (ZoomPlan::Business, 1000) => "business-1000",
            _ => "custom",
        };
        let (host_users, sessions) = match plan {
            ZoomPlan::Pro => (20_000, 100),
            ZoomPlan::Business => (60_000, 290),
        };
        Scenario {
            name,
            plan,
            reply_latency_ms,
            host_users,
            sdk_sessions_per_month: sessions,
            sdk_page_size: 300,
            run_limit: Duration::from_secs(420),
            replicas: 1,
        }
    }

    /// Pro at 300 ms, collected by three processes at once: together they must stay within one account's
    /// rate (no 429) and still reach it.
    fn replicas() -> Scenario {
        Scenario {
            name: "pro-300-3-replicas",
            replicas: 3,
            ..Scenario::latency(ZoomPlan::Pro, 300)
        }
    }

    fn all_latency() -> Vec<Scenario> {
        vec![
            Scenario::latency(ZoomPlan::Pro, 300),
            Scenario::latency(ZoomPlan::Pro, 1000),
            Scenario::latency(ZoomPlan::Business, 300),
            Scenario::latency(ZoomPlan::Business, 1000),
        ]
    }

    fn plan_name(&self) -> &'static str {
        match self.plan {
            ZoomPlan::Pro => "pro",
            ZoomPlan::Business => "business",
        }
    }

    /// (Heavy per second, Resource-intensive per minute) as the sandbox enforces them.
    fn limits(&self) -> (f64, f64) {
        match self.plan {
            ZoomPlan::Pro => (10.0, 10.0),
            ZoomPlan::Business => (40.0, 20.0),
        }
    }
}

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
    /// Distinct windows (token chains) the answered requests belong to.
    windows: usize,
    /// The most answered requests of any one window: its pages follow one another.
    longest_chain: usize,
    /// The fastest rate the work allows whatever the pacing (see the module doc); `None` with replies at once.
    bound_per_sec: Option<f64>,
}

impl Traffic {
    fn of(
        label: &'static str,
        allowed_per_sec: f64,
        per_minute: bool,
        scenario: &Scenario,
        windows_in_flight: usize,
        log: &[RequestRecord],
        pick: impl Fn(&RequestRecord) -> bool,
    ) -> Traffic {
        let picked: Vec<&RequestRecord> = log.iter().filter(|r| pick(r)).collect();
        let answered: Vec<&RequestRecord> =
            picked.iter().copied().filter(|r| r.status != 429).collect();
        let first = answered.iter().map(|r| r.at_ms).min();
        let last = answered.iter().map(|r| r.at_ms).max();
        let wall_ms = match (first, last) {
            (Some(first), Some(last)) => last - first,
            _ => 0,
        };
        let mut chains: HashMap<String, usize> = HashMap::new();
        for r in &answered {
            *chains.entry(window_key(r)).or_default() += 1;
        }
        let longest_chain = chains.values().copied().max().unwrap_or(0);
        let latency = scenario.reply_latency_ms as f64 / 1000.0;
        let slots = longest_chain.max(answered.len().div_ceil(windows_in_flight.max(1)));
        let min_span = latency * slots.saturating_sub(1) as f64;
        let bound_per_sec =
            (min_span > 0.0 && answered.len() >= 2).then(|| (answered.len() - 1) as f64 / min_span);
        Traffic {
            label,
            allowed_per_sec,
            per_minute,
            requests: picked.len(),
            refused: picked.len() - answered.len(),
            answered: answered.len(),
            wall_secs: wall_ms as f64 / 1000.0,
            windows: chains.len(),
            longest_chain,
            bound_per_sec,
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

    /// The work, not the budget, sets the ceiling.
    fn work_bound(&self) -> bool {
        self.bound_per_sec
            .is_some_and(|bound| bound < self.allowed_per_sec)
    }

    /// What the category could reach at best: the allowed rate, or the work bound below it.
    fn attainable_per_sec(&self) -> f64 {
        match self.bound_per_sec {
            Some(bound) => bound.min(self.allowed_per_sec),
            None => self.allowed_per_sec,
        }
    }

    fn rate(&self, per_sec: f64) -> String {
        if self.per_minute {
            format!("{:.2}/min", per_sec * 60.0)
        } else {
            format!("{per_sec:.2}/s")
        }
    }
}

/// The window (token chain) a request belongs to: a report's type and range, a month's session list, a
/// session's users.
fn window_key(r: &RequestRecord) -> String {
    let q = |k: &str| r.query.get(k).map(String::as_str).unwrap_or("");
    match r.endpoint {
        Endpoint::SdkSessionUsers => {
            format!("users {}", r.session_id.as_deref().unwrap_or(""))
        }
        _ => format!("{:?} {} {} {}", r.endpoint, q("type"), q("from"), q("to")),
    }
}

/// What one scenario measured.
struct Outcome {
    scenario: Scenario,
    windows_in_flight: usize,
    run_secs: f64,
    traffic: Vec<Traffic>,
    rows: anyhow::Result<Rows>,
    /// `None` when rollcall collect exited 0.
    failure: Option<String>,
}

struct Rows {
    host: i64,
    host_expected: u64,
    sessions: i64,
    sessions_expected: usize,
    users: i64,
    users_expected: usize,
}

impl Rows {
    fn complete(&self) -> bool {
        self.host as u64 == self.host_expected
            && self.sessions as usize == self.sessions_expected
            && self.users as usize == self.users_expected
    }
}

/// `rollcall-bench pacing`: the original scenario, replies at once.
pub async fn run(admin_url: &str, binary: &Path) -> anyhow::Result<()> {
    run_scenarios(admin_url, binary, vec![Scenario::pacing()]).await
}

/// `rollcall-bench replicas`: three replicas on one Pro account, replies in 300 ms.
pub async fn run_replicas(admin_url: &str, binary: &Path) -> anyhow::Result<()> {
    run_scenarios(admin_url, binary, vec![Scenario::replicas()]).await
}

/// `rollcall-bench latency [SCENARIO ...]`: the four latency scenarios (or those named), one after another.
pub async fn run_latency(admin_url: &str, binary: &Path, names: &[String]) -> anyhow::Result<()> {
    let all = Scenario::all_latency();
    let scenarios = if names.is_empty() {
        all
    } else {
        let mut picked = Vec::new();
        for name in names {
            match all.iter().find(|s| s.name == name) {
                Some(s) => picked.push(s.clone()),
                None => bail!(
                    "unknown scenario {name}; known: {}",
                    all.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
                ),
            }
        }
        picked
    };
    run_scenarios(admin_url, binary, scenarios).await
}

async fn run_scenarios(
    admin_url: &str,
    binary: &Path,
    scenarios: Vec<Scenario>,
) -> anyhow::Result<()> {
    let windows_in_flight = match std::env::var("ROLLCALL_BENCH_WINDOWS_IN_FLIGHT") {
        Ok(n) => Some(n.parse::<usize>().with_context(|| {
            format!("ROLLCALL_BENCH_WINDOWS_IN_FLIGHT must be a number, got {n}")
        })?),
        Err(_) => None,
    };
    let mut outcomes = Vec::new();
    for scenario in scenarios {
        outcomes.push(run_one(admin_url, binary, scenario, windows_in_flight).await?);
    }
    print_table(&outcomes);
    let failures: Vec<String> = outcomes
        .iter()
        .filter_map(|o| {
            o.failure
                .as_ref()
                .map(|f| format!("{}: {f}", o.scenario.name))
        })
        .collect();
    if !failures.is_empty() {
        bail!("{}", failures.join("; "));
    }
    Ok(())
}

async fn run_one(
    admin_url: &str,
    binary: &Path,
    scenario: Scenario,
    windows_in_flight: Option<usize>,
) -> anyhow::Result<Outcome> {
    let limits = Some(ZoomRateLimits::plan(scenario.plan));
    let host = ZoomAccountSpec {
        account_id: HOST_ACCOUNT.into(),
        client_id: "paced-client".into(),
        client_secret: "paced-secret".into(),
        users: scenario.host_users,
        active_percent: 40,
        rate_limits: limits.clone(),
    };
    let sdk = VideoSdkAccountSpec {
        api_key: SDK_KEY.into(),
        api_secret: "paced-sdk-secret".into(),
        sessions_per_month: scenario.sdk_sessions_per_month,
        users_per_session: 3,
        rate_limits: limits,
    };
    let sandbox = rollcall_sandbox::spawn(SandboxConfig {
        listen: "127.0.0.1:0".into(),
        seed: 11,
        zoom: vec![host.clone()],
        videosdk: vec![sdk.clone()],
        reply_latency_ms: scenario.reply_latency_ms,
        ..SandboxConfig::default()
    })
    .await?;
    let control = sandbox.control();
    let db = fresh_database(admin_url, "rollcall_pacing").await?;
    let config = write_config(&db.url, &sandbox, &host, &sdk, &scenario, windows_in_flight)?;

    eprintln!(
        "== {}: sandbox enforcing Zoom {} limits, replies in {} ms; {} × rollcall collect with plan = \"{}\" \
         (bounded at {} s)",
        scenario.name,
        scenario.plan_name(),
        scenario.reply_latency_ms,
        scenario.replicas,
        scenario.plan_name(),
        scenario.run_limit.as_secs()
    );
    let started = Instant::now();
    let outcome = if scenario.replicas > 1 {
        replicas_on_one_tick(binary, &config, &db.pool, &scenario).await
    } else {
        let child = tokio::process::Command::new(binary)
            .arg("--config")
            .arg(&config)
            .arg("collect")
            .env_remove("DATABASE_URL")
            .kill_on_drop(true)
            .status();
        match tokio::time::timeout(scenario.run_limit, child).await {
            Ok(Ok(status)) if status.success() => None,
            Ok(Ok(status)) => Some(format!("rollcall collect failed: {status}")),
            Ok(Err(err)) => Some(format!("running rollcall collect: {err}")),
            Err(_) => Some(format!(
                "rollcall collect did not finish within {} s",
                scenario.run_limit.as_secs()
            )),
        }
    };
    let run_secs = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&config);

    let log = control.requests();
    // For a closer look at what drew a 429 or held a rate back: every record, one JSON object a line.
    if let Some(prefix) = std::env::var_os("ROLLCALL_BENCH_REQUEST_LOG") {
        let path = PathBuf::from(format!(
            "{}-{}.jsonl",
            PathBuf::from(prefix).display(),
            scenario.name
        ));
        let lines: Vec<String> = log
            .iter()
            .filter_map(|r| serde_json::to_string(r).ok())
            .collect();
        std::fs::write(&path, lines.join("\n"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let (heavy, resource_intensive) = scenario.limits();
    let in_flight = windows_in_flight.unwrap_or(DEFAULT_WINDOWS_IN_FLIGHT);
    let traffic = vec![
        Traffic::of(
            "Heavy: /report/users",
            heavy,
            false,
            &scenario,
            in_flight,
            &log,
            |r| r.endpoint == Endpoint::ReportUsers,
        ),
        Traffic::of(
            "Resource-intensive: /videosdk/sessions",
            resource_intensive / 60.0,
            true,
            &scenario,
            in_flight,
            &log,
            |r| r.endpoint == Endpoint::SdkSessions,
        ),
        Traffic::of(
            "Heavy: /videosdk/sessions/{id}/users",
            heavy,
            false,
            &scenario,
            in_flight,
            &log,
            |r| r.endpoint == Endpoint::SdkSessionUsers,
        ),
    ];
    let rows = stored_rows(&db.pool, &control, &scenario).await;
    db.drop_database(admin_url).await;
    sandbox.shutdown().await;

    let failure = outcome;
    Ok(Outcome {
        scenario,
        windows_in_flight: in_flight,
        run_secs,
        traffic,
        rows,
        failure,
    })
}

/// Replicas as in production: `rollcall run` processes on one database, all triggered by the same cron
/// tick a few seconds ahead (so they start together, as a Deployment's pods do on a shared schedule), until
/// every window is complete; then SIGTERM. `None` when all of that went well.
async fn replicas_on_one_tick(
    binary: &Path,
    config: &Path,
    pool: &sqlx::PgPool,
    scenario: &Scenario,
) -> Option<String> {
    let migrated = tokio::process::Command::new(binary)
        .arg("--config")
        .arg(config)
        .arg("migrate")
        .env_remove("DATABASE_URL")
        .status()
        .await;
    if !matches!(migrated, Ok(ref s) if s.success()) {
        return Some(format!("rollcall migrate failed: {migrated:?}"));
    }
    let tick = chrono::Utc::now() + chrono::Duration::seconds(5);
    let cron = tick.format("%S %M %H * * *").to_string();
    let mut replicas = Vec::new();
    for _ in 0..scenario.replicas {
        let listen = match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
            Ok(addr) => addr.to_string(),
            Err(err) => return Some(format!("no free port: {err}")),
        };
        let spawned = tokio::process::Command::new(binary)
            .arg("--config")
            .arg(config)
            .arg("run")
            .env_remove("DATABASE_URL")
            .env("ROLLCALL__SCHEDULE__CRON", &cron)
            .env("ROLLCALL__SCHEDULE__RUN_ON_START", "false")
            .env("ROLLCALL__HTTP__LISTEN", listen)
            .kill_on_drop(true)
            .spawn();
        match spawned {
            Ok(child) => replicas.push(child),
            Err(err) => return Some(format!("spawning rollcall run: {err}")),
        }
    }
    let deadline = Instant::now() + scenario.run_limit;
    let mut failure = None;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (windows, open): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE state NOT IN ('complete', 'unreachable'))
               FROM rollcall.collection_windows",
        )
        .fetch_one(pool)
        .await
        .unwrap_or((0, 1));
        if windows > 0 && open == 0 {
            break;
        }
        if Instant::now() > deadline {
            failure = Some(format!(
                "the replicas did not finish within {} s ({open} of {windows} windows open)",
                scenario.run_limit.as_secs()
            ));
            break;
        }
    }
    for mut child in replicas {
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
            Ok(Ok(status)) if status.success() => {}
            other => {
                failure.get_or_insert(format!("a replica ended badly: {other:?}"));
            }
        }
    }
    failure
}

/// The plan's limits, no overrides: the pacing under test is exactly what a user gets by default.
fn write_config(
    db_url: &str,
    sandbox: &rollcall_sandbox::Sandbox,
    host: &ZoomAccountSpec,
    sdk: &VideoSdkAccountSpec,
    scenario: &Scenario,
    windows_in_flight: Option<usize>,
) -> anyhow::Result<PathBuf> {
    let collector = match windows_in_flight {
        Some(n) => format!("[collector]\nwindows_in_flight = {n}\n\n"),
        None => String::new(),
    };
    let toml = format!(
        "[database]\nurl = \"{db_url}\"\nmax_connections = 8\n\n[log]\nlevel = \"warn\"\n\n{collector}\
         [[zoom]]\nname = \"paced\"\naccount_id = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\n\
         api_url = \"{api}\"\noauth_url = \"{}\"\nplan = \"{plan}\"\n\n\
         [[videosdk]]\nname = \"paced-sdk\"\napi_key = \"{}\"\napi_secret = \"{}\"\napi_url = \"{api}\"\n\
         plan = \"{plan}\"\npage_size = {}\n",
        host.account_id,
        host.client_id,
        host.client_secret,
        sandbox.zoom_oauth_url(),
        sdk.api_key,
        sdk.api_secret,
        scenario.sdk_page_size,
        api = sandbox.zoom_api_url(),
        plan = scenario.plan_name(),
    );
    let path =
        std::env::temp_dir().join(format!("rollcall-bench-pacing-{}.toml", std::process::id()));
    std::fs::write(&path, toml)?;
    Ok(path)
}

/// Stored rows against the sandbox's truth, so a fast but incomplete run cannot pass for a good one.
async fn stored_rows(
    pool: &sqlx::PgPool,
    control: &Control,
    scenario: &Scenario,
) -> anyhow::Result<Rows> {
    let months = reachable_months();
    let count = |table: &'static str| async move {
        sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM rollcall.{table}"))
            .fetch_one(pool)
            .await
    };
    let host = count("zoom_host_report_users").await?;
    let sessions = count("zoom_sdk_sessions").await?;
    let users = count("zoom_sdk_session_users").await?;
    let truth: Vec<serde_json::Value> = months
        .iter()
        .flat_map(|m| control.sdk_sessions(SDK_KEY, *m))
        .collect();
    // Only ended sessions have users to collect (an open one gets its window once it ends).
    let users_expected = truth
        .iter()
        .filter(|s| s.get("end_time").is_some_and(|e| !e.is_null()))
        .filter_map(|s| s.get("id").and_then(serde_json::Value::as_str))
        .map(|id| control.sdk_session_users(SDK_KEY, id).len())
        .sum();
    Ok(Rows {
        host,
        host_expected: scenario.host_users * months.len() as u64,
        sessions,
        sessions_expected: truth.len(),
        users,
        users_expected,
    })
}

fn print_table(outcomes: &[Outcome]) {
    println!();
    println!(
        "| scenario | category | requests | 429s | wall s | achieved | allowed | % of allowed | windows (longest chain) | work bound | % of attainable |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for o in outcomes {
        for t in &o.traffic {
            let bound = match t.bound_per_sec {
                Some(b) if t.work_bound() => format!("**{}** (work-bound)", t.rate(b)),
                Some(b) => t.rate(b),
                None => "—".into(),
            };
            println!(
                "| {} | {} | {} | {} | {:.1} | {} | {} | {:.1}% | {} ({}) | {} | {:.1}% |",
                o.scenario.name,
                t.label,
                t.requests,
                t.refused,
                t.wall_secs,
                t.rate(t.achieved_per_sec()),
                t.rate(t.allowed_per_sec),
                t.share() * 100.0,
                t.windows,
                t.longest_chain,
                bound,
                t.achieved_per_sec() / t.attainable_per_sec() * 100.0,
            );
        }
    }
    println!();
    for o in outcomes {
        println!(
            "{} ({} limits, replies in {} ms, windows_in_flight = {}): {:.1} s in all",
            o.scenario.name,
            o.scenario.plan_name(),
            o.scenario.reply_latency_ms,
            o.windows_in_flight,
            o.run_secs
        );
        match &o.rows {
            Ok(r) => println!(
                "  rows: host report {} of {}, Video SDK sessions {} of {}, session users {} of {}: {}",
                r.host,
                r.host_expected,
                r.sessions,
                r.sessions_expected,
                r.users,
                r.users_expected,
                if r.complete() { "complete" } else { "INCOMPLETE" }
            ),
            Err(err) => println!("  rows: cannot count ({err:#})"),
        }
        if let Some(failure) = &o.failure {
            println!("  {failure}");
        }
        for t in &o.traffic {
            // The target is on the Heavy categories; the Resource-intensive list is short by design.
            let target = if t.per_minute { "" } else { " [target]" };
            let rate_ok = t.achieved_per_sec() >= TARGET_SHARE * t.attainable_per_sec();
            println!(
                "  {}{target}: {} (≥ {:.0}% of {}), {} (no 429)",
                t.label,
                if rate_ok { "rate met" } else { "rate MISSED" },
                TARGET_SHARE * 100.0,
                if t.work_bound() {
                    "the work bound"
                } else {
                    "allowed"
                },
                if t.refused == 0 {
                    "429s met"
                } else {
                    "429s MISSED"
                },
            );
        }
    }
}

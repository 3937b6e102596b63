//! `rollcall-bench scale`: memory and wall time of one `rollcall collect` (release build, rate limits off)
//! as the number of Zoom accounts grows, every account the same size, the sandbox answering each request
//! after `REPLY_LATENCY_MS` as real Zoom does. Runs 10, 100 and 300 accounts at the default
//! `collector.max_windows_in_flight` (64), then 300 accounts at 16 and 256 windows in flight: peak RSS
//! should follow the windows in flight, not the accounts configured.
//!
//! Each account: `USERS` users (about 40 % active), `PAGE_SIZE` a page (the inactive report takes two
//! pages), host reports and daily usage for the reachable months. Peak RSS as the throughput bench
//! measures it (/usr/bin/time's maximum resident set size).

use super::{collect, fresh_database, Measure};
use anyhow::Context;
use rollcall_sandbox::{Sandbox, SandboxConfig, ZoomAccountSpec};
use std::path::{Path, PathBuf};

const USERS: u64 = 100;
const PAGE_SIZE: u32 = 50;
const REPLY_LATENCY_MS: u64 = 100;
/// (accounts, collector.max_windows_in_flight)
const CASES: [(usize, u32); 5] = [(10, 64), (100, 64), (300, 64), (300, 16), (300, 256)];

struct Case {
    accounts: usize,
    max_windows_in_flight: u32,
    windows: i64,
    most_at_once: i64,
    measure: Measure,
}

pub async fn run(admin_url: &str, binary: &Path) -> anyhow::Result<()> {
    let binary = binary.to_path_buf();
    let mut cases = Vec::new();
    for (accounts, max_windows_in_flight) in CASES {
        eprintln!(
            "== scale: {accounts} Zoom accounts, max_windows_in_flight = {max_windows_in_flight}"
        );
        cases.push(run_case(admin_url, &binary, accounts, max_windows_in_flight).await?);
    }
    println!(
        "| Zoom accounts | max_windows_in_flight | windows | most walked at once | requests | rows | wall s | peak RSS MiB | rollcall CPU s |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for c in &cases {
        let m = &c.measure;
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} |",
            c.accounts,
            c.max_windows_in_flight,
            c.windows,
            c.most_at_once,
            m.requests,
            m.rows,
            m.seconds,
            m.peak_rss_mib,
            m.cpu_seconds
        );
    }
    Ok(())
}

async fn run_case(
    admin_url: &str,
    binary: &PathBuf,
    accounts: usize,
    max_windows_in_flight: u32,
) -> anyhow::Result<Case> {
    let specs: Vec<ZoomAccountSpec> = (0..accounts)
        .map(|i| ZoomAccountSpec {
            account_id: format!("scale{i}-account"),
            client_id: format!("scale{i}-client"),
            client_secret: format!("scale{i}-secret"),
            users: USERS,
            active_percent: 40,
            rate_limits: None,
        })
        .collect();
    let sandbox = rollcall_sandbox::spawn(SandboxConfig {
        listen: "127.0.0.1:0".into(),
        seed: 11,
        zoom: specs.clone(),
        reply_latency_ms: REPLY_LATENCY_MS,
        ..SandboxConfig::default()
    })
    .await?;
    let control = sandbox.control();
    let db = fresh_database(admin_url, "rollcall_scale").await?;
    let config = write_config(&db.url, &sandbox, &specs, max_windows_in_flight)?;
    let measure = collect(binary, &config, &db.pool, &control).await?;
    let windows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rollcall.collection_windows WHERE state = 'complete'",
    )
    .fetch_one(&db.pool)
    .await?;
    // The most walks overlapping at one instant, from each window's walk span (its page 1 to completion).
    let most_at_once: i64 = sqlx::query_scalar(
        "SELECT coalesce(max(running), 0) FROM (
           SELECT sum(delta) OVER (ORDER BY at, delta) AS running FROM (
             SELECT started_at AS at, 1 AS delta FROM rollcall.collection_windows WHERE state = 'complete'
             UNION ALL
             SELECT completed_at, -1 FROM rollcall.collection_windows WHERE state = 'complete') e) r",
    )
    .fetch_one(&db.pool)
    .await?;
    db.drop_database(admin_url).await;
    sandbox.shutdown().await;
    let _ = std::fs::remove_file(&config);
    Ok(Case {
        accounts,
        max_windows_in_flight,
        windows,
        most_at_once,
        measure,
    })
}

fn write_config(
    db_url: &str,
    sandbox: &Sandbox,
    specs: &[ZoomAccountSpec],
    max_windows_in_flight: u32,
) -> anyhow::Result<PathBuf> {
    // database.max_connections is left at its default: the point is what the defaults do.
    let mut toml = format!(
        "[database]\nurl = \"{db_url}\"\n\n[log]\nlevel = \"warn\"\n\n[collector]\nmax_windows_in_flight = {max_windows_in_flight}\n\n"
    );
    for (i, spec) in specs.iter().enumerate() {
        toml.push_str(&format!(
            "[[zoom]]\nname = \"scale{i}\"\naccount_id = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\napi_url = \"{}\"\noauth_url = \"{}\"\npage_size = {PAGE_SIZE}\nheavy_per_second = 0\nresource_intensive_per_minute = 0\ndaily_requests = 0\n\n",
            spec.account_id, spec.client_id, spec.client_secret, sandbox.zoom_api_url(), sandbox.zoom_oauth_url()
        ));
    }
    let path = std::env::temp_dir().join(format!("rollcall-scale-{}.toml", std::process::id()));
    std::fs::write(&path, toml).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

//! The collector against the physical limit. For each workload size it measures, in one run:
//! 1. the ceiling: the same rows upserted straight into PostgreSQL by a minimal UNNEST program, one
//!    transaction per 300-row batch, an insert pass and an update pass, over one connection and then over
//!    four at once (the database's own limit on a small machine, what a collector walking many windows
//!    at once is measured against);
//! 2. the sandbox alone: how fast it serves those rows over HTTP, so it is known not to be the bottleneck;
//! 3. `rollcall collect` (release build, rate limits off) against the sandbox: a first run (inserts) and a
//!    second run of the same, still non-final windows (updates): wall time, rows/s, requests/s, peak RSS.
//!
//! At the large size the parallel ceiling and rollcall's two runs are repeated in rounds (see `rounds`), each
//! rollcall run against the ceiling measured just before it, and the median round is printed.
//!
//! Usage: bench/run.sh [SIZE ...]   (default 100000 1000000; DATABASE_URL as for the tests)
//!        bench/run.sh pacing       (the collector's pacing against Zoom's Pro limits; see pacing.rs)
//!        bench/run.sh latency [SCENARIO ...]  (the same with slow replies, Pro and Business; pacing.rs)
//!        bench/run.sh replicas     (three replicas sharing one Pro account's rate; pacing.rs)
//!        bench/run.sh scale        (memory and wall time as Zoom accounts grow; see scale.rs)
//!        bench/run.sh steady [DAY] (a second run a day later against the minimum it needs; steady.rs)

mod pacing;
mod scale;
mod steady;

use anyhow::{bail, Context};
use chrono::{Datelike, Months, NaiveDate, Utc};
use rollcall_sandbox::{Control, ReportType, Sandbox, SandboxConfig, ZoomAccountSpec};
use serde_json::Value;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const PAGE: usize = 300;
/// Connections of the parallel ceiling.
const PARALLEL: usize = 4;
/// Batches built (untimed) before each timed parallel round: bounded memory, long enough rounds.
const ROUND_BATCHES: usize = PARALLEL * 16;
const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

struct Measure {
    rows: u64,
    seconds: f64,
    requests: u64,
    peak_rss_mib: f64,
    /// User + system CPU seconds of the rollcall process: what the collector itself costs.
    cpu_seconds: f64,
}

struct SizeResult {
    size: u64,
    accounts: usize,
    ceiling_insert: f64,
    ceiling_update: f64,
    sandbox_rows_per_sec: f64,
    rounds: Vec<Round>,
}

/// One rollcall first and second run, with the parallel ceiling measured just before them.
struct Round {
    parallel_insert: f64,
    parallel_update: f64,
    first: Measure,
    second: Measure,
}

/// Rounds at the large size (`ROLLCALL_BENCH_ROUNDS`, default 3). A shared 2-core machine's speed drifts by
/// up to a third within minutes (the sandbox alone served 239k to 414k rows/s in one hour, 2026-12-07), so
/// one ceiling and one rollcall run minutes apart can differ by that much for no reason of their own: each
/// round pairs a rollcall run with a ceiling measured right before it, and the median round is the figure.
fn rounds(size: u64) -> anyhow::Result<usize> {
    match std::env::var("ROLLCALL_BENCH_ROUNDS") {
        Ok(n) => match n.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => bail!("ROLLCALL_BENCH_ROUNDS must be a positive number, got {n}"),
        },
        Err(_) => Ok(if size >= 500_000 { 3 } else { 1 }),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let admin_url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.into());
    match std::env::args().nth(1).as_deref() {
        Some("pacing") => return pacing::run(&admin_url, &rollcall_binary()?).await,
        Some("replicas") => return pacing::run_replicas(&admin_url, &rollcall_binary()?).await,
        Some("steady") => {
            let args: Vec<String> = std::env::args().skip(2).collect();
            return steady::run(&admin_url, &rollcall_binary()?, &args).await;
        }
        Some("latency") => {
            let names: Vec<String> = std::env::args().skip(2).collect();
            return pacing::run_latency(&admin_url, &rollcall_binary()?, &names).await;
        }
        _ => {}
    }
    if std::env::args().nth(1).as_deref() == Some("scale") {
        return scale::run(&admin_url, &rollcall_binary()?).await;
    }
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| {
            a.parse()
                .with_context(|| format!("size must be a number, got {a}"))
        })
        .collect::<Result<_, _>>()?;
    let sizes = if sizes.is_empty() {
        vec![100_000, 1_000_000]
    } else {
        sizes
    };
    let binary = rollcall_binary()?;
    let mut results = Vec::new();
    for size in sizes {
        eprintln!("== workload of {size} host-report rows");
        results.push(run_size(size, &admin_url, &binary).await?);
    }
    print_table(&results);
    Ok(())
}

fn rollcall_binary() -> anyhow::Result<PathBuf> {
    let path = std::env::var("ROLLCALL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/rollcall")
        });
    if !path.exists() {
        bail!(
            "{} not found: run `cargo build --release` first (bench/run.sh does)",
            path.display()
        );
    }
    Ok(path)
}

/// Zoom serves six months including the current one; every user is in exactly one report each month.
fn reachable_months() -> Vec<NaiveDate> {
    let today = Utc::now().date_naive();
    let horizon =
        today.checked_sub_months(Months::new(6)).unwrap_or(today) + chrono::Duration::days(1);
    let mut month = today.with_day(1).unwrap_or(today);
    let mut months = Vec::new();
    while month >= horizon {
        months.push(month);
        month = match month.checked_sub_months(Months::new(1)) {
            Some(m) => m,
            None => break,
        };
    }
    months
}

async fn run_size(size: u64, admin_url: &str, binary: &PathBuf) -> anyhow::Result<SizeResult> {
    let months = reachable_months();
    // Eight Business accounts at the large size: enough windows walked at once to load the database.
    let accounts = if size >= 500_000 { 8 } else { 2 };
    let users = size.div_ceil((accounts * months.len()) as u64);
    let specs: Vec<ZoomAccountSpec> = (0..accounts)
        .map(|i| ZoomAccountSpec {
            account_id: format!("bench{i}-account"),
            client_id: format!("bench{i}-client"),
            client_secret: format!("bench{i}-secret"),
            users,
            active_percent: 40,
            rate_limits: None,
        })
        .collect();
    let sandbox = rollcall_sandbox::spawn(SandboxConfig {
        listen: "127.0.0.1:0".into(),
        seed: 11,
        zoom: specs.clone(),
        ..SandboxConfig::default()
    })
    .await?;
    let control = sandbox.control();

    eprintln!("   ceiling: minimal UNNEST upserts of the same rows");
    let (ceiling_insert, ceiling_update) = ceiling(admin_url, &control, &specs, &months).await?;
    eprintln!("   sandbox alone over HTTP");
    let sandbox_rows_per_sec = sandbox_rate(&sandbox, &specs, &months).await?;
    let mut rounds_done = Vec::new();
    for round in 1..=rounds(size)? {
        eprintln!("   round {round}: parallel ceiling, the same upserts over {PARALLEL} connections at once");
        let (parallel_insert, parallel_update) =
            parallel_ceiling(admin_url, &control, &specs, &months).await?;
        let db = fresh_database(admin_url, "rollcall_bench").await?;
        let config = write_config(&db.url, &sandbox, &specs)?;
        eprintln!("   round {round}: rollcall collect, first run (inserts)");
        control.clear_requests();
        let first = collect(binary, &config, &db.pool, &control).await?;
        eprintln!("   round {round}: rollcall collect, second run (updates)");
        control.clear_requests();
        let second = collect(binary, &config, &db.pool, &control).await?;
        db.drop_database(admin_url).await;
        rounds_done.push(Round {
            parallel_insert,
            parallel_update,
            first,
            second,
        });
    }
    sandbox.shutdown().await;
    Ok(SizeResult {
        size,
        accounts,
        ceiling_insert,
        ceiling_update,
        sandbox_rows_per_sec,
        rounds: rounds_done,
    })
}

struct Db {
    url: String,
    name: String,
    pool: PgPool,
}

impl Db {
    async fn drop_database(self, admin_url: &str) {
        self.pool.close().await;
        if let Ok(admin) = PgPoolOptions::new()
            .max_connections(1)
            .connect(admin_url)
            .await
        {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&admin)
            .await;
        }
    }
}

async fn fresh_database(admin_url: &str, prefix: &str) -> anyhow::Result<Db> {
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(admin_url)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await?;
    admin.close().await;
    let mut url = reqwest::Url::parse(admin_url)?;
    url.set_path(&format!("/{name}"));
    let url = url.to_string();
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect(&url)
        .await?;
    Ok(Db { url, name, pool })
}

fn write_config(
    db_url: &str,
    sandbox: &Sandbox,
    specs: &[ZoomAccountSpec],
) -> anyhow::Result<PathBuf> {
    // settle_days far in the future keeps every month non-final, so the second run updates every row.
    // The pool's size, to study how many transactions at once suit the database (default 16).
    let connections = match std::env::var("ROLLCALL_BENCH_MAX_CONNECTIONS") {
        Ok(n) => n
            .parse::<u32>()
            .with_context(|| format!("ROLLCALL_BENCH_MAX_CONNECTIONS must be a number, got {n}"))?,
        Err(_) => 16,
    };
    let mut toml = format!(
        "[database]\nurl = \"{db_url}\"\nmax_connections = {connections}\n\n[log]\nlevel = \"warn\"\n\n"
    );
    // To study what the windows walked at once cost (memory, rows/s); the measured figures use the default.
    if let Ok(n) = std::env::var("ROLLCALL_BENCH_WINDOWS_IN_FLIGHT") {
        let n: u32 = n.parse().with_context(|| {
            format!("ROLLCALL_BENCH_WINDOWS_IN_FLIGHT must be a number, got {n}")
        })?;
        toml.push_str(&format!("[collector]\nwindows_in_flight = {n}\n\n"));
    }
    for (i, spec) in specs.iter().enumerate() {
        toml.push_str(&format!(
            "[[zoom]]\nname = \"bench{i}\"\nplan = \"business\"\naccount_id = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\napi_url = \"{}\"\noauth_url = \"{}\"\nsettle_days = 90\nheavy_per_second = 0\nresource_intensive_per_minute = 0\ndaily_requests = 0\n\n",
            spec.account_id, spec.client_id, spec.client_secret, sandbox.zoom_api_url(), sandbox.zoom_oauth_url()
        ));
    }
    let path = std::env::temp_dir().join(format!("rollcall-bench-{}.toml", std::process::id()));
    std::fs::write(&path, toml)?;
    Ok(path)
}

/// Runs the real binary under /usr/bin/time for its peak RSS.
async fn collect(
    binary: &PathBuf,
    config: &PathBuf,
    pool: &PgPool,
    control: &Control,
) -> anyhow::Result<Measure> {
    let rss_file = std::env::temp_dir().join(format!("rollcall-bench-rss-{}", std::process::id()));
    let started = Instant::now();
    let status = tokio::process::Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M %U %S")
        .arg("-o")
        .arg(&rss_file)
        .arg(binary)
        .arg("--config")
        .arg(config)
        .arg("collect")
        .env_remove("DATABASE_URL")
        .status()
        .await
        .context("running rollcall under /usr/bin/time (apt-get install time)")?;
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("rollcall collect failed: {status}");
    }
    let report = std::fs::read_to_string(&rss_file)?;
    let fields: Vec<f64> = report
        .lines()
        .last()
        .unwrap_or("")
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    let (rss_kib, user, system) = match fields.as_slice() {
        [rss, user, system] => (*rss, *user, *system),
        _ => (0.0, 0.0, 0.0),
    };
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM rollcall.zoom_host_report_users")
        .fetch_one(pool)
        .await?;
    let requests = control.requests().len() as u64;
    Ok(Measure {
        rows: rows as u64,
        seconds,
        requests,
        peak_rss_mib: rss_kib / 1024.0,
        cpu_seconds: user + system,
    })
}

/// Column vectors of one 300-row batch, built before the clock starts.
struct Batch {
    ids: Vec<String>,
    emails: Vec<Option<String>>,
    names: Vec<Option<String>>,
    types: Vec<Option<i32>>,
    depts: Vec<Option<String>>,
    meetings: Vec<Option<i64>>,
    participants: Vec<Option<i64>>,
    minutes: Vec<Option<i64>>,
    attributes: Vec<Option<Value>>,
    created: Vec<Option<chrono::DateTime<Utc>>>,
    logins: Vec<Option<chrono::DateTime<Utc>>>,
    versions: Vec<Option<String>>,
    raws: Vec<Value>,
}

fn batch(users: &[Value]) -> Batch {
    let text = |u: &Value, k: &str| u.get(k).and_then(Value::as_str).map(str::to_string);
    let int = |u: &Value, k: &str| u.get(k).and_then(Value::as_i64);
    let time = |u: &Value, k: &str| {
        u.get(k)
            .and_then(Value::as_str)
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    Batch {
        ids: users
            .iter()
            .map(|u| text(u, "id").unwrap_or_default())
            .collect(),
        emails: users.iter().map(|u| text(u, "email")).collect(),
        names: users.iter().map(|u| text(u, "user_name")).collect(),
        types: users
            .iter()
            .map(|u| int(u, "type").map(|t| t as i32))
            .collect(),
        depts: users.iter().map(|u| text(u, "dept")).collect(),
        meetings: users.iter().map(|u| int(u, "meetings")).collect(),
        participants: users.iter().map(|u| int(u, "participants")).collect(),
        minutes: users.iter().map(|u| int(u, "meeting_minutes")).collect(),
        attributes: users
            .iter()
            .map(|u| u.get("custom_attributes").cloned())
            .collect(),
        created: users.iter().map(|u| time(u, "create_time")).collect(),
        logins: users.iter().map(|u| time(u, "last_login_time")).collect(),
        versions: users
            .iter()
            .map(|u| text(u, "last_client_version"))
            .collect(),
        raws: users.to_vec(),
    }
}

const CEILING_TABLE: &str = "CREATE TABLE host_report_users (
    account text NOT NULL, month date NOT NULL, report_type text NOT NULL, user_id text NOT NULL,
    email text, user_name text, user_type integer, dept text, meetings bigint, participants bigint,
    meeting_minutes bigint, custom_attributes jsonb, create_time timestamptz, last_login_time timestamptz,
    last_client_version text, raw jsonb NOT NULL, first_seen_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL, walk_id uuid NOT NULL,
    PRIMARY KEY (account, month, report_type, user_id))";

const CEILING_UPSERT: &str = "INSERT INTO host_report_users
    (account, month, report_type, user_id, email, user_name, user_type, dept, meetings, participants,
     meeting_minutes, custom_attributes, create_time, last_login_time, last_client_version, raw,
     first_seen_at, last_seen_at, walk_id)
  SELECT $1, $2, $3, u.*, now(), now(), $4
    FROM UNNEST($5::text[], $6::text[], $7::text[], $8::int4[], $9::text[], $10::int8[], $11::int8[],
                $12::int8[], $13::jsonb[], $14::timestamptz[], $15::timestamptz[], $16::text[], $17::jsonb[]) AS u
  ON CONFLICT (account, month, report_type, user_id) DO UPDATE
    SET email = EXCLUDED.email, user_name = EXCLUDED.user_name, user_type = EXCLUDED.user_type,
        dept = EXCLUDED.dept, meetings = EXCLUDED.meetings, participants = EXCLUDED.participants,
        meeting_minutes = EXCLUDED.meeting_minutes, custom_attributes = EXCLUDED.custom_attributes,
        create_time = EXCLUDED.create_time, last_login_time = EXCLUDED.last_login_time,
        last_client_version = EXCLUDED.last_client_version, raw = EXCLUDED.raw,
        last_seen_at = EXCLUDED.last_seen_at, walk_id = EXCLUDED.walk_id";

/// Every report the workload holds, in the order both ceilings upsert them: account, month, type.
fn reports<'a>(
    specs: &'a [ZoomAccountSpec],
    months: &'a [NaiveDate],
) -> impl Iterator<Item = (&'a str, NaiveDate, ReportType, &'static str)> + 'a {
    specs.iter().flat_map(move |spec| {
        months.iter().flat_map(move |month| {
            [
                (ReportType::Active, "active"),
                (ReportType::Inactive, "inactive"),
            ]
            .map(|(t, name)| (spec.account_id.as_str(), *month, t, name))
        })
    })
}

/// The ceiling: rows/s of the insert pass and of the update pass, timing only the database work.
async fn ceiling(
    admin_url: &str,
    control: &Control,
    specs: &[ZoomAccountSpec],
    months: &[NaiveDate],
) -> anyhow::Result<(f64, f64)> {
    let db = fresh_database(admin_url, "rollcall_ceiling").await?;
    sqlx::query(CEILING_TABLE).execute(&db.pool).await?;
    let mut rates = Vec::new();
    for _pass in 0..2 {
        let walk = uuid::Uuid::new_v4();
        let (mut rows, mut busy) = (0u64, Duration::ZERO);
        for (account, month, t, name) in reports(specs, months) {
            let truth = control.report_truth(account, month, t);
            let batches: Vec<Batch> = truth.users.chunks(PAGE).map(batch).collect();
            let started = Instant::now();
            for b in &batches {
                upsert(&db.pool, account, month, name, walk, b).await?;
                rows += b.ids.len() as u64;
            }
            busy += started.elapsed();
        }
        rates.push(rows as f64 / busy.as_secs_f64());
    }
    db.drop_database(admin_url).await;
    Ok((rates[0], rates[1]))
}

/// One batch in a transaction of its own, as rollcall writes a page.
async fn upsert(
    pool: &PgPool,
    account: &str,
    month: NaiveDate,
    report_type: &str,
    walk: uuid::Uuid,
    b: &Batch,
) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(CEILING_UPSERT)
        .bind(account)
        .bind(month)
        .bind(report_type)
        .bind(walk)
        .bind(&b.ids)
        .bind(&b.emails)
        .bind(&b.names)
        .bind(&b.types)
        .bind(&b.depts)
        .bind(&b.meetings)
        .bind(&b.participants)
        .bind(&b.minutes)
        .bind(&b.attributes)
        .bind(&b.created)
        .bind(&b.logins)
        .bind(&b.versions)
        .bind(&b.raws)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

type Job = (String, NaiveDate, &'static str, Batch);

/// The parallel ceiling: the same batches upserted over `PARALLEL` connections at once, an insert pass
/// then an update pass. Batches are built in rounds before the clock starts; each round is dealt out
/// to the connections and timed from its start until its last connection is done.
async fn parallel_ceiling(
    admin_url: &str,
    control: &Control,
    specs: &[ZoomAccountSpec],
    months: &[NaiveDate],
) -> anyhow::Result<(f64, f64)> {
    let db = fresh_database(admin_url, "rollcall_ceiling_par").await?;
    sqlx::query(CEILING_TABLE).execute(&db.pool).await?;
    let pool = PgPoolOptions::new()
        .max_connections(PARALLEL as u32)
        .min_connections(PARALLEL as u32)
        .connect(&db.url)
        .await?;
    let mut rates = Vec::new();
    for _pass in 0..2 {
        let walk = uuid::Uuid::new_v4();
        let (mut rows, mut busy) = (0u64, Duration::ZERO);
        let mut round: Vec<Job> = Vec::new();
        for (account, month, t, name) in reports(specs, months) {
            let truth = control.report_truth(account, month, t);
            for chunk in truth.users.chunks(PAGE) {
                round.push((account.to_string(), month, name, batch(chunk)));
                if round.len() >= ROUND_BATCHES {
                    let (n, took) = parallel_round(&pool, std::mem::take(&mut round), walk).await?;
                    rows += n;
                    busy += took;
                }
            }
        }
        let (n, took) = parallel_round(&pool, round, walk).await?;
        rows += n;
        busy += took;
        rates.push(rows as f64 / busy.as_secs_f64());
    }
    pool.close().await;
    db.drop_database(admin_url).await;
    Ok((rates[0], rates[1]))
}

async fn parallel_round(
    pool: &PgPool,
    round: Vec<Job>,
    walk: uuid::Uuid,
) -> anyhow::Result<(u64, Duration)> {
    let mut lanes: Vec<Vec<Job>> = (0..PARALLEL).map(|_| Vec::new()).collect();
    let mut rows = 0u64;
    for (i, job) in round.into_iter().enumerate() {
        rows += job.3.ids.len() as u64;
        lanes[i % PARALLEL].push(job);
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for lane in lanes {
        let pool = pool.clone();
        tasks.spawn(async move {
            for (account, month, name, b) in &lane {
                upsert(&pool, account, *month, name, walk, b).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok((rows, started.elapsed()))
}

/// Rows per second the sandbox serves over HTTP, with one client per account as rollcall runs them.
async fn sandbox_rate(
    sandbox: &Sandbox,
    specs: &[ZoomAccountSpec],
    months: &[NaiveDate],
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for spec in specs {
        let spec = spec.clone();
        let (api, oauth, months) = (
            sandbox.zoom_api_url(),
            sandbox.zoom_oauth_url(),
            months.to_vec(),
        );
        tasks.spawn(async move { walk_account(&api, &oauth, &spec, &months).await });
    }
    let mut rows = 0u64;
    while let Some(done) = tasks.join_next().await {
        rows += done??;
    }
    Ok(rows as f64 / started.elapsed().as_secs_f64())
}

async fn walk_account(
    api: &str,
    oauth: &str,
    spec: &ZoomAccountSpec,
    months: &[NaiveDate],
) -> anyhow::Result<u64> {
    let http = reqwest::Client::new();
    let token: Value = http
        .post(oauth)
        .basic_auth(&spec.client_id, Some(&spec.client_secret))
        .form(&[
            ("grant_type", "account_credentials"),
            ("account_id", spec.account_id.as_str()),
        ])
        .send()
        .await?
        .json()
        .await?;
    let bearer = token["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let today = Utc::now().date_naive();
    let mut rows = 0u64;
    for month in months {
        let last = month
            .checked_add_months(Months::new(1))
            .and_then(|m| m.pred_opt())
            .unwrap_or(*month);
        let (from, to) = (month.to_string(), last.min(today).to_string());
        for t in ["active", "inactive"] {
            let mut next = String::new();
            loop {
                let mut query = vec![
                    ("type", t),
                    ("from", from.as_str()),
                    ("to", to.as_str()),
                    ("page_size", "300"),
                ];
                if !next.is_empty() {
                    query.push(("next_page_token", next.as_str()));
                }
                let page: Value = http
                    .get(format!("{api}/report/users"))
                    .query(&query)
                    .bearer_auth(&bearer)
                    .send()
                    .await?
                    .json()
                    .await?;
                rows += page["users"].as_array().map(Vec::len).unwrap_or(0) as u64;
                next = page["next_page_token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if next.is_empty() {
                    break;
                }
            }
        }
    }
    Ok(rows)
}

fn print_table(results: &[SizeResult]) {
    println!();
    println!("| rows | accounts | round | pass | ceiling rows/s | parallel ceiling rows/s | rollcall wall s | rollcall rows/s | requests/s | peak RSS MiB | rollcall CPU s | rollcall/ceiling | rollcall/parallel | sandbox alone rows/s |");
    println!("|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        let mut against_parallel = [Vec::new(), Vec::new()];
        for (i, round) in r.rounds.iter().enumerate() {
            for (pass, ceiling, parallel, m) in [
                (
                    "insert",
                    r.ceiling_insert,
                    round.parallel_insert,
                    &round.first,
                ),
                (
                    "update",
                    r.ceiling_update,
                    round.parallel_update,
                    &round.second,
                ),
            ] {
                let rate = m.rows as f64 / m.seconds;
                against_parallel[usize::from(pass == "update")].push(rate / parallel);
                println!(
                    "| {} | {} | {} | {pass} | {:.0} | {:.0} | {:.1} | {:.0} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} | {:.0} |",
                    r.size,
                    r.accounts,
                    i + 1,
                    ceiling,
                    parallel,
                    m.seconds,
                    rate,
                    m.requests as f64 / m.seconds,
                    m.peak_rss_mib,
                    m.cpu_seconds,
                    rate / ceiling,
                    rate / parallel,
                    r.sandbox_rows_per_sec
                );
            }
        }
        if r.rounds.len() > 1 {
            let [insert, update] = against_parallel.map(median);
            println!(
                "\n{} rows, median of {} rounds: rollcall/parallel {insert:.2} on inserts, {update:.2} on updates\n",
                r.size,
                r.rounds.len()
            );
        }
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

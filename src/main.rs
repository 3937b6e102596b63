//! CLI wiring only: parse arguments, load the config, hand over to the library, map outcomes to exit codes
//! (0 all complete, 1 something incomplete or failed, 2 config or usage error (`database.url` refused
//! included), 3 no rollcall schema for `status`/`coverage`, 4 the schema's floor is above this binary).

use chrono::NaiveDate;
use clap::{Parser, Subcommand};
use rollcall::collector::{self, Selection, STREAMS};
use rollcall::commands::progress::Progress;
use rollcall::commands::{budget, check, coverage, healthcheck, status};
#[cfg(feature = "sandbox")]
use rollcall::commands::{demo, sandbox};
use rollcall::config::Config;
use rollcall::sources::build::accounts;
use rollcall::{daemon, store, telemetry};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "rollcall",
    version,
    about = "Keeps the usage history that Zoom and Rocket.Chat throw away"
)]
struct Cli {
    /// Config file (TOML); any key can be overridden by ROLLCALL__SECTION__KEY, the database by DATABASE_URL.
    #[arg(long, env = "ROLLCALL_CONFIG", default_value = "config/rollcall.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The daemon: migrate, serve /healthz and /metrics, collect on the cron schedule until SIGTERM.
    Run,
    /// Walk every due window once and exit: 0 all complete, 1 some not complete, 2 config or usage error.
    Collect {
        #[command(flatten)]
        filter: Filter,
    },
    /// Plan and walk older windows, refusing what the API can no longer serve.
    Backfill {
        /// First day to collect (YYYY-MM-DD); its whole month is planned.
        #[arg(long, value_parser = parse_date)]
        from: NaiveDate,
        /// Last day to collect (YYYY-MM-DD); default today.
        #[arg(long, value_parser = parse_date)]
        to: Option<NaiveDate>,
        #[command(flatten)]
        filter: Filter,
    },
    /// Windows per account and stream: complete, running, failed, unreachable, rows, last error. Writes
    /// nothing; exits 3 when the database has no rollcall schema yet.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// What history is held: account/stream rows by month columns, one glyph per month, with a legend.
    /// Writes nothing; exits 3 when the database has no rollcall schema yet.
    Coverage {
        /// Only this account (its configured `name`).
        #[arg(long)]
        account: Option<String>,
        /// Only this stream (zoom_sdk_session_users is shown folded into zoom_sdk_sessions).
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(STREAMS))]
        stream: Option<String>,
        /// How many months, ending with the current one.
        #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=240))]
        months: u32,
        /// Machine-readable output: accounts -> streams -> months -> state.
        #[arg(long)]
        json: bool,
        /// For tests: take this UTC date (YYYY-MM-DD) as today, so the columns are stable.
        #[arg(long, hide = true, value_parser = parse_date)]
        today: Option<NaiveDate>,
    },
    /// Validate the config and each credential against the API; writes nothing.
    Check {
        /// Validate only the config and the files it names (included account files, *_file secrets);
        /// contact neither the database nor any API. Exit 0 valid, 2 invalid.
        #[arg(long)]
        offline: bool,
    },
    /// Apply the database migrations: once, under a lock, however many replicas start together; exits 4
    /// when the schema's floor is above this binary, and warns (exit 0) on a newer schema it may write.
    Migrate,
    /// Serve the fake Zoom and Rocket.Chat APIs.
    #[cfg(feature = "sandbox")]
    Sandbox {
        /// Sandbox config (TOML).
        #[arg(long = "config", default_value = "config/sandbox.toml")]
        sandbox_config: PathBuf,
        /// Address to listen on, overriding the sandbox config's `listen` (e.g. 0.0.0.0:8090 in a container).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Newcomer path: sandbox + PostgreSQL + one collection + a summary. Needs no credentials.
    #[cfg(feature = "sandbox")]
    Demo,
    /// GET /healthz of the daemon on http.listen (loopback for 0.0.0.0 or [::]); exit 0 on HTTP 200, 1
    /// otherwise. For container health checks; needs no database.
    Healthcheck {
        /// Ask this URL instead (e.g. http://127.0.0.1:9187/healthz).
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(clap::Args)]
struct Filter {
    /// Only this stream.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(STREAMS))]
    stream: Option<String>,
    /// Only this account (its configured `name`).
    #[arg(long)]
    account: Option<String>,
}

fn parse_date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("expected a date as YYYY-MM-DD, got \"{text}\""))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(dispatch(cli))
}

async fn dispatch(cli: Cli) -> ExitCode {
    #[cfg(feature = "sandbox")]
    if let Err(err) = rollcall::clock::pin_from_env() {
        eprintln!("error: {err}");
        return ExitCode::from(2);
    }
    #[cfg(feature = "sandbox")]
    match cli.command {
        Command::Sandbox {
            sandbox_config,
            listen,
        } => {
            telemetry::init_default();
            return report(
                sandbox::serve(sandbox_config, listen, shutdown_signal())
                    .await
                    .map(|_| ExitCode::SUCCESS),
            );
        }
        Command::Demo => {
            telemetry::init_text("warn");
            return report(demo::run().await);
        }
        _ => {}
    }
    let config = match Config::load(&cli.config) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("{}: invalid configuration:\n{err}", cli.config.display());
            return ExitCode::from(2);
        }
    };
    telemetry::init(&config.log);
    let cancel = shutdown_signal();
    let outcome = match cli.command {
        Command::Run => daemon::run(Arc::new(config), cancel)
            .await
            .map(|_| ExitCode::SUCCESS)
            .map_err(anyhow::Error::from),
        Command::Collect { filter } => collect(&config, filter, None, None, cancel).await,
        Command::Backfill { from, to, filter } => {
            collect(&config, filter, Some(from), to, cancel).await
        }
        Command::Status { json } => show_status(&config, json).await,
        Command::Coverage {
            account,
            stream,
            months,
            json,
            today,
        } => {
            let now = rollcall::clock::now();
            // A pinned --today stands for every account's today; otherwise each account's month ends
            // by its own date (a Rocket.Chat workspace's zone).
            let local_today = match today {
                Some(_) => Default::default(),
                None => accounts(&config)
                    .map(|(_, account)| (account.name().to_owned(), account.today(now)))
                    .filter(|(_, day)| *day != now.date_naive())
                    .collect(),
            };
            let (configured, left_out) = configured_rows(&config, stream.as_deref());
            let request = coverage::Request {
                configured,
                left_out,
                account,
                stream,
                months,
                today: today.unwrap_or_else(|| now.date_naive()),
                local_today,
            };
            show_coverage(&config, request, json).await
        }
        Command::Check { offline } => {
            let lines = if offline {
                check::offline(&config)
            } else {
                check::run(&config).await
            };
            let (mut ok, mut too_old) = (true, false);
            for line in lines {
                match line {
                    check::Line::Ok(text) => println!("ok    {text}"),
                    check::Line::Fail(text) => {
                        ok = false;
                        println!("FAIL  {text}");
                    }
                    check::Line::TooOld(text) => {
                        too_old = true;
                        println!("FAIL  {text}");
                    }
                    check::Line::Paused(text) => println!("PAUSED {text}"),
                    check::Line::Note(text) => println!("note  {text}"),
                }
            }
            Ok(if too_old {
                ExitCode::from(EXIT_SCHEMA_FLOOR)
            } else if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Migrate => migrate(&config, &cancel).await,
        Command::Healthcheck { url } => {
            let url = url.unwrap_or_else(|| healthcheck::url_for(config.http.listen));
            Ok(match healthcheck::run(&url).await {
                Ok(line) => {
                    println!("healthy: {line}");
                    ExitCode::SUCCESS
                }
                Err(why) => {
                    println!("unhealthy: {why}");
                    ExitCode::from(1)
                }
            })
        }
        // Handled before the config is loaded: they do not read it.
        #[cfg(feature = "sandbox")]
        Command::Sandbox { .. } | Command::Demo => Ok(ExitCode::SUCCESS),
    };
    report(outcome)
}

fn report(outcome: anyhow::Result<ExitCode>) -> ExitCode {
    outcome.unwrap_or_else(|err| {
        eprintln!("error: {err:#}");
        ExitCode::from(exit_code(&err))
    })
}

/// Every command exits with this when the schema's floor is above this binary (`store::schema`): distinct
/// from 1 so a supervisor or a rollout script can tell "roll forward again" from "retry".
const EXIT_SCHEMA_FLOOR: u8 = 4;

/// The database errors that are not worth retrying get their own codes: a `database.url` that cannot work
/// (a bad TLS parameter, a certificate that does not verify, a rejected password) is a config error.
fn exit_code(err: &anyhow::Error) -> u8 {
    match store_error(err) {
        Some(store::StoreError::TooOld(_)) => EXIT_SCHEMA_FLOOR,
        Some(
            store::StoreError::BadUrl(_)
            | store::StoreError::BadTls(_)
            | store::StoreError::Refused { .. },
        ) => 2,
        _ => 1,
    }
}

/// The database error under the layers the commands wrap it in.
fn store_error(err: &anyhow::Error) -> Option<&store::StoreError> {
    if let Some(store) = err.downcast_ref::<store::StoreError>() {
        return Some(store);
    }
    if let Some(daemon::DaemonError::Store(store)) = err.downcast_ref() {
        return Some(store);
    }
    if let Some(collector::CollectError::Store(store)) = err.downcast_ref() {
        return Some(store);
    }
    None
}

/// SIGTERM (systemd, docker stop) and SIGINT (a terminal) both mean: stop claiming, finish or abandon the
/// page in flight, release the leases.
fn shutdown_signal() -> CancellationToken {
    let cancel = CancellationToken::new();
    // Registered before returning, not in the task: a signal that comes before the task first runs must
    // still be caught rather than kill the process with its default action.
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => (term, int),
        (Err(err), _) | (_, Err(err)) => {
            tracing::error!(error = %err, "cannot listen for SIGTERM/SIGINT");
            return cancel;
        }
    };
    let token = cancel.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
        token.cancel();
    });
    cancel
}

async fn collect(
    config: &Config,
    filter: Filter,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    cancel: CancellationToken,
) -> anyhow::Result<ExitCode> {
    if let Some(account) = &filter.account {
        let known = account_names(config);
        if !known.iter().any(|name| name == account) {
            eprintln!(
                "--account: no account named \"{account}\" in the config (configured: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
            return Ok(ExitCode::from(2));
        }
    }
    if let Some(why) = filter.stream.as_deref().and_then(|stream| {
        rollcall::sources::build::left_out(config, stream, filter.account.as_deref())
    }) {
        eprintln!("{why}");
        return Ok(ExitCode::from(2));
    }
    if let (Some(from), Some(to)) = (from, to) {
        if from > to {
            eprintln!("--from {from} is after --to {to}");
            return Ok(ExitCode::from(2));
        }
    }
    let pool = store::pool(&config.database.url, config.database.max_connections)?;
    store::wait_until_reachable(&pool, std::time::Duration::from_secs(30), &cancel).await?;
    store::migrate(&pool).await?;
    let selection = Selection {
        stream: filter.stream,
        account: filter.account,
        from,
        to,
    };
    if let Some(from) = from {
        for refusal in collector::refused_by_horizon(config, &selection, from) {
            eprintln!("refused: {refusal}");
        }
    }
    let progress = Progress::start(
        pool.clone(),
        config,
        selection.account.clone(),
        selection.stream.clone(),
        from.is_some(),
    );
    let report = collector::run_once(&pool, config, &selection, cancel).await;
    // Other replicas no longer count this process in their fair share of the accounts.
    let _ = store::account_leases::leave(&pool).await;
    if let Some(progress) = progress {
        progress.finish().await;
    }
    let report = report?;
    for o in &report.outcomes {
        if let Some(why) = &o.stopped {
            eprintln!("{} {}: stopped: {why}", o.account, o.stream);
        }
    }
    if report.all_complete() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "{} window(s) not complete; they are retried on the next run (see `rollcall status`)",
            report.incomplete
        );
        Ok(ExitCode::from(1))
    }
}

/// `status` exits with this when the database was never migrated: distinct from 1 (an error) so a script
/// can tell "nothing collected here yet" from "cannot tell".
const STATUS_NO_SCHEMA: u8 = 3;

/// A read-only pool on a database with a rollcall schema, warning when the schema is older or newer than
/// this binary (`newer`: what a newer schema means for the command); `None`, said on stderr, when the
/// database was never migrated.
async fn read_only_schema(config: &Config, newer: &str) -> anyhow::Result<Option<sqlx::PgPool>> {
    let pool = store::read_only_pool(&config.database.url)?;
    let state = store::schema_state(&pool).await?;
    // Reading a schema contracted past this binary could fail on what it dropped: refuse as writers do.
    if let store::schema::Verdict::Refuse(too_old) = store::schema::judge(
        state,
        store::schema::floor(&pool).await?,
        store::schema::known_version(),
    ) {
        return Err(store::StoreError::TooOld(Box::new(too_old)).into());
    }
    match state {
        store::SchemaState::Missing => {
            eprintln!(
                "the database has no rollcall schema yet: run `rollcall migrate` or `rollcall collect`"
            );
            return Ok(None);
        }
        // Every schema version has the window table these commands read, so what it holds is still shown.
        store::SchemaState::Behind { have, want } => eprintln!(
            "warning: schema at version {}, this binary expects {want}; run `rollcall migrate`",
            have.map_or_else(|| "unknown".to_string(), |v| v.to_string())
        ),
        store::SchemaState::Ahead { have, want } => eprintln!(
            "warning: schema at version {have}, newer than this rollcall {} knows ({want}); {newer}",
            store::schema::RELEASE
        ),
        store::SchemaState::Current { .. } => {}
    }
    Ok(Some(pool))
}

/// Read-only: `status` is what an operator runs against a database they are unsure of, so it must not
/// create or migrate anything there.
async fn show_status(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let Some(pool) = read_only_schema(
        config,
        "a newer rollcall migrated it; this status may miss what the newer version records",
    )
    .await?
    else {
        return Ok(ExitCode::from(STATUS_NO_SCHEMA));
    };
    let mut rows = status::load(&pool).await?;
    status::mark_left_out(&mut rows, config);
    // A schema from before the request counts has no budget to show: the rest of status still holds.
    let today = rollcall::clock::now().date_naive();
    let lines = budget::load(&pool, config, today).await.unwrap_or_default();
    status::attach_budget(&mut rows, &lines);
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", status::render_table(&rows));
        print!("{}", budget::render(&lines));
        print!(
            "{}",
            status::render_reconciliation(&status::reconciliation(&pool).await?)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Read-only like `status`, and for the same reason: it is run against databases one is unsure of.
async fn show_coverage(
    config: &Config,
    request: coverage::Request,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if let Some(account) = &request.account {
        let known = account_names(config);
        if !known.iter().any(|name| name == account) {
            eprintln!(
                "warning: --account {account}: not in the config (configured: {}); showing what the database holds",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            );
        }
    }
    let Some(pool) = read_only_schema(config, "states it does not know are shown pending").await?
    else {
        return Ok(ExitCode::from(STATUS_NO_SCHEMA));
    };
    let matrix = coverage::load(&pool, &request).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&matrix)?);
    } else {
        use std::io::IsTerminal;
        // NO_COLOR (no-color.org): any non-empty value turns colour off.
        let colour = std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        print!("{}", coverage::render(&matrix, colour));
    }
    Ok(ExitCode::SUCCESS)
}

/// An (account, stream) row of `coverage`.
type AccountStream = (String, String);

/// The (account, stream) rows the config promises, shown even before anything was planned for them: the
/// stream each account is read by (or, when its `streams` leaves that out, the first it collects), and
/// another of its streams when `--stream` names it; and the rows `streams` leaves out, shown as not
/// configured rather than as missing history.
fn configured_rows(
    config: &Config,
    stream: Option<&str>,
) -> (Vec<AccountStream>, BTreeSet<AccountStream>) {
    let (mut rows, mut left_out) = (Vec::new(), BTreeSet::new());
    for (_, account) in accounts(config) {
        let name = account.name().to_owned();
        let main = account.covered_stream();
        let others = account.other_covered_streams();
        let first_collected = others.iter().find(|s| account.collects(s));
        let shown = std::iter::once(main)
            .chain(others.iter().copied().filter(|s| stream == Some(*s)))
            .chain(
                first_collected
                    .copied()
                    .filter(|_| account.leaves_out(main)),
            );
        for s in shown {
            if account.leaves_out(s) {
                left_out.insert((name.clone(), s.to_owned()));
            }
            rows.push((name.clone(), s.to_owned()));
        }
        for s in others.iter().filter(|s| account.leaves_out(s)) {
            left_out.insert((name.clone(), s.to_string()));
        }
    }
    (rows, left_out)
}

async fn migrate(config: &Config, cancel: &CancellationToken) -> anyhow::Result<ExitCode> {
    let pool = store::pool(&config.database.url, 2)?;
    store::wait_until_reachable(&pool, std::time::Duration::from_secs(30), cancel).await?;
    store::migrate(&pool).await?;
    println!("migrations applied");
    Ok(ExitCode::SUCCESS)
}

fn account_names(config: &Config) -> Vec<String> {
    accounts(config)
        .map(|(_, account)| account.name().to_owned())
        .collect()
}

//! Turns the configuration into sources and runs one collection over them: what `collect`, `backfill`,
//! `run` and `demo` share.

use crate::config::Config;
use crate::engine::{Concurrency, Engine, RunContext, Source, StreamOutcome};
use crate::http::{build_client, ApiError, HttpClient, RetryPolicy};
use crate::sources::rocketchat::{
    self,
    active_users::{self, ActiveUsers},
};
use crate::sources::zoom::auth::{S2sAuth, S2sCredentials};
use crate::sources::zoom::client::{ZoomAuth, ZoomClient};
use crate::sources::zoom::daily_usage::{self, DailyUsage};
use crate::sources::zoom::host_reports::{self, HostReports};
use crate::sources::zoom::months::{self, MonthWindows};
use crate::sources::zoom::pacing::ZoomPacer;
use crate::sources::zoom::videosdk::{self, session_users as sdk_users, sessions as sdk_sessions};
use crate::store::windows::{self, LeaseOwner};
use crate::store::StoreError;
use chrono::NaiveDate;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The values of `--stream`, as stored in `collection_windows.stream`.
pub const STREAMS: [&str; 6] = [
    host_reports::STREAM,
    daily_usage::STREAM,
    "zoom_sdk_sessions",
    "zoom_sdk_session_users",
    daily_usage::SDK_STREAM,
    "rc_active_users",
];

/// Which part of the configuration a run covers.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    pub stream: Option<String>,
    pub account: Option<String>,
    /// Backfill bounds: plan windows from this day's month (default: the API horizon)...
    pub from: Option<NaiveDate>,
    /// ...up to this day's month (default: today).
    pub to: Option<NaiveDate>,
}

impl Selection {
    fn wants(&self, stream: &str, account: &str) -> bool {
        self.stream.as_deref().is_none_or(|s| s == stream)
            && self.account.as_deref().is_none_or(|a| a == account)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Http(#[from] ApiError),
    #[error("a collection task failed: {0}")]
    Task(String),
}

/// What one run did, and whether everything due is now complete.
#[derive(Debug, Default)]
pub struct RunReport {
    pub outcomes: Vec<StreamOutcome>,
    /// Due windows (not final, not unreachable) that are not complete after the run.
    pub incomplete: i64,
    pub interrupted: bool,
}

impl RunReport {
    pub fn all_complete(&self) -> bool {
        self.incomplete == 0
            && !self.interrupted
            && self.outcomes.iter().all(|o| o.stopped.is_none())
    }
}

/// What a backfill from `from` asks for that the APIs no longer serve, one line per account, naming the
/// date and the horizon. Those months are recorded `unreachable` and never requested.
pub fn refused_by_horizon(config: &Config, selection: &Selection, from: NaiveDate) -> Vec<String> {
    let today = chrono::Utc::now().date_naive();
    let mut refused = Vec::new();
    for account in &config.zoom {
        if !selection.wants(host_reports::STREAM, &account.name)
            && !selection.wants(daily_usage::STREAM, &account.name)
        {
            continue;
        }
        let horizon = months::horizon(today, account.horizon_days);
        if months::first_of_month(from) < horizon {
            refused.push(format!(
                "zoom account \"{}\": --from {from} is before Zoom's horizon {horizon} (six months); the months from {} to {} are recorded unreachable and not requested",
                account.name,
                months::first_of_month(from).format("%Y-%m"),
                horizon.format("%Y-%m"),
            ));
        }
    }
    for account in &config.videosdk {
        if !selection.wants(sdk_sessions::STREAM, &account.name)
            && !selection.wants(daily_usage::SDK_STREAM, &account.name)
        {
            continue;
        }
        let horizon = months::horizon(today, account.horizon_days);
        if months::first_of_month(from) < horizon {
            refused.push(format!(
                "videosdk account \"{}\": --from {from} is before Zoom's horizon {horizon} (six months); the months from {} to {} are recorded unreachable and not requested",
                account.name,
                months::first_of_month(from).format("%Y-%m"),
                horizon.format("%Y-%m"),
            ));
        }
    }
    for workspace in &config.rocketchat {
        if !selection.wants(active_users::STREAM, &workspace.name) {
            continue;
        }
        let today = chrono::Utc::now()
            .with_timezone(&workspace.timezone)
            .date_naive();
        let oldest = today - chrono::Duration::days(i64::from(workspace.retention_days));
        if from < oldest {
            refused.push(format!(
                "rocketchat workspace \"{}\": --from {from} is before {oldest}, the oldest day the server still holds (retention_days = {}); those days are not requested",
                workspace.name, workspace.retention_days,
            ));
        }
    }
    refused
}

pub fn zoom_clients(config: &Config, http: &HttpClient) -> Vec<(usize, Arc<ZoomClient>)> {
    let retry = RetryPolicy::new(
        config.collector.max_retries,
        Duration::from_millis(config.collector.retry_base_ms),
    );
    config
        .zoom
        .iter()
        .enumerate()
        .map(|(i, account)| {
            let auth = S2sAuth::new(
                S2sCredentials {
                    oauth_url: account.oauth_url.clone(),
                    account_id: account.account_id.clone(),
                    client_id: account.client_id.clone(),
                    client_secret: account.client_secret.clone(),
                    config_keys: format!(
                        "zoom[{i}].account_id, zoom[{i}].client_id and zoom[{i}].client_secret"
                    ),
                    account_name: account.name.clone(),
                },
                http.clone(),
            );
            let client = ZoomClient::new(
                account.name.clone(),
                account.api_url.clone(),
                http.clone(),
                ZoomAuth::S2s(auth),
                ZoomPacer::new(account.limits.resolve(account.plan)),
                retry,
            );
            (i, Arc::new(client))
        })
        .collect()
}

/// Walks every due window of the selection once. Accounts run in parallel, each within its own rate
/// limits and `collector.windows_in_flight`, and all of them within `collector.max_windows_in_flight`
/// windows at once, handed out in turn so every account makes progress.
pub async fn run_once(
    pool: &PgPool,
    config: &Config,
    selection: &Selection,
    cancel: CancellationToken,
) -> Result<RunReport, CollectError> {
    run_once_at(pool, config, selection, cancel, chrono::Utc::now()).await
}

/// [`run_once`] for a run that logically started at `run_started` (a cron tick shared by replicas).
pub async fn run_once_at(
    pool: &PgPool,
    config: &Config,
    selection: &Selection,
    cancel: CancellationToken,
    run_started: chrono::DateTime<chrono::Utc>,
) -> Result<RunReport, CollectError> {
    let http = build_client(
        Duration::from_secs(config.http.timeout_secs),
        config.http.max_body_mib,
    )?;
    let owner = LeaseOwner::for_this_process(config.collector.lease_secs);
    // "Today" is read once, here, for every source of the run: a run that crosses midnight stays
    // consistent (the months it plans, the ranges it requests and what it calls final agree).
    let run = RunContext::new(run_started);
    let engine = Arc::new(Engine::new(
        pool.clone(),
        owner,
        cancel.clone(),
        run.clone(),
        Concurrency::from_config(config),
    ));
    let mut tasks: JoinSet<Result<StreamOutcome, StoreError>> = JoinSet::new();
    let mut selected: Vec<(String, &'static str)> = Vec::new();

    for (i, client) in zoom_clients(config, &http) {
        let account = &config.zoom[i];
        let months = MonthWindows {
            today: run.today_utc(),
            settle_days: account.settle_days,
            horizon_days: account.horizon_days,
            from: selection.from,
            to: selection.to,
        };
        // The daily report shares the host reports' client: one token cache, one pacer per account.
        if selection.wants(daily_usage::STREAM, &account.name) {
            let source = Arc::new(DailyUsage {
                client: client.clone(),
                report: daily_usage::Report::Meetings,
                account: account.name.clone(),
                months: months.clone(),
            });
            selected.push((account.name.clone(), source.stream()));
            tasks.spawn(engine.clone().run_source(source));
        }
        if !selection.wants(host_reports::STREAM, &account.name) {
            continue;
        }
        let source = Arc::new(HostReports {
            client,
            account: account.name.clone(),
            page_size: account.page_size,
            months,
        });
        selected.push((account.name.clone(), source.stream()));
        tasks.spawn(engine.clone().run_source(source));
    }

    for (i, client) in rocketchat::clients(config, &http) {
        let workspace = &config.rocketchat[i];
        if !selection.wants(active_users::STREAM, &workspace.name) {
            continue;
        }
        let source = Arc::new(ActiveUsers::new(
            client,
            workspace,
            &run,
            selection.from,
            selection.to,
        ));
        selected.push((workspace.name.clone(), source.stream()));
        tasks.spawn(engine.clone().run_source(source));
    }

    for (i, account) in config.videosdk.iter().enumerate() {
        let lists = selection.wants(sdk_sessions::STREAM, &account.name);
        let users = selection.wants(sdk_users::STREAM, &account.name);
        let Some((list, children, daily)) =
            videosdk::sources(config, i, &http, &run, selection.from, selection.to)
        else {
            continue;
        };
        if selection.wants(daily_usage::SDK_STREAM, &account.name) {
            selected.push((account.name.clone(), daily.stream()));
            tasks.spawn(engine.clone().run_source(daily));
        }
        // The users run after the list of the same account, so children planned by this run's list pages
        // are walked in this run; a month is complete only with its children, so they count either way.
        let (listed, list_done) = tokio::sync::oneshot::channel::<()>();
        if lists {
            selected.push((account.name.clone(), sdk_sessions::STREAM));
            let engine = engine.clone();
            tasks.spawn(async move {
                let outcome = engine.run_source(list).await;
                let _ = listed.send(());
                outcome
            });
        }
        if lists || users {
            selected.push((account.name.clone(), sdk_users::STREAM));
        }
        if users {
            let engine = engine.clone();
            tasks.spawn(async move {
                let _ = list_done.await;
                engine.run_source(children).await
            });
        }
    }

    let mut report = RunReport::default();
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(outcome)) => {
                report.interrupted |= outcome.interrupted;
                report.outcomes.push(outcome);
            }
            Ok(Err(err)) => {
                tracing::error!(error = %err, "collection stopped on a database error");
                first_error.get_or_insert(CollectError::Store(err));
            }
            Err(join) => {
                first_error.get_or_insert(CollectError::Task(join.to_string()));
            }
        }
    }
    if let Some(err) = first_error {
        return Err(err);
    }
    for (account, stream) in &selected {
        report.incomplete += windows::incomplete_due(pool, account, stream).await?;
    }
    report
        .outcomes
        .sort_by(|a, b| (&a.account, &a.stream).cmp(&(&b.account, &b.stream)));
    Ok(report)
}

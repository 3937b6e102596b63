//! Turns the configuration into sources and runs one collection over them: what `collect`, `backfill`,
//! `run` and `demo` share.

use crate::config::Config;
use crate::engine::{Engine, Source, StreamOutcome};
use crate::http::pacing::ZoomPacer;
use crate::http::{build_client, ApiError, RetryPolicy};
use crate::sources::zoom::auth::{S2sAuth, S2sCredentials};
use crate::sources::zoom::client::{ZoomAuth, ZoomClient};
use crate::sources::zoom::host_reports::{self, HostReports};
use crate::store::windows::{self, LeaseOwner};
use crate::store::StoreError;
use chrono::NaiveDate;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The values of `--stream`, as stored in `collection_windows.stream`.
pub const STREAMS: [&str; 4] = [
    host_reports::STREAM,
    "zoom_sdk_sessions",
    "zoom_sdk_session_users",
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

pub fn zoom_clients(config: &Config, http: &reqwest::Client) -> Vec<(usize, Arc<ZoomClient>)> {
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

/// Walks every due window of the selection once. Accounts run in parallel; windows of one account and
/// stream run one after the other, which is what the APIs' per-account limits want.
pub async fn run_once(
    pool: &PgPool,
    config: &Config,
    selection: &Selection,
    cancel: CancellationToken,
) -> Result<RunReport, CollectError> {
    let http = build_client(Duration::from_secs(config.http.timeout_secs))?;
    let owner = LeaseOwner::for_this_process(config.collector.lease_secs);
    let engine = Arc::new(Engine::new(pool.clone(), owner, cancel.clone()));
    let mut tasks: JoinSet<Result<StreamOutcome, StoreError>> = JoinSet::new();
    let mut selected: Vec<(String, &'static str)> = Vec::new();

    for (i, client) in zoom_clients(config, &http) {
        let account = &config.zoom[i];
        if !selection.wants(host_reports::STREAM, &account.name) {
            continue;
        }
        let source = Arc::new(HostReports {
            client,
            account: account.name.clone(),
            page_size: account.page_size,
            settle_days: account.settle_days,
            horizon_days: account.horizon_days,
            plan_from: selection.from,
            plan_to: selection.to,
        });
        selected.push((account.name.clone(), source.stream()));
        tasks.spawn(engine.clone().run_source(source));
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

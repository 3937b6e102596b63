//! Turns the configuration into sources and runs one collection over them: what `collect`, `backfill`,
//! `run` and `demo` share.

use crate::config::Config;
use crate::engine::{Concurrency, Engine, RunContext, SourceRun, StreamOutcome};
use crate::http::{build_client, ApiError};
use crate::sources::build::{self as sources, BuildContext};
use crate::sources::rocketchat::active_users;
use crate::sources::zoom::videosdk::{session_users as sdk_users, sessions as sdk_sessions};
use crate::sources::zoom::{daily_usage, host_reports};
use crate::store::windows::{self, LeaseOwner};
use crate::store::StoreError;
use chrono::NaiveDate;
use sqlx::PgPool;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// The values of `--stream`, as stored in `collection_windows.stream`.
pub const STREAMS: [&str; 6] = [
    host_reports::STREAM,
    daily_usage::STREAM,
    sdk_sessions::STREAM,
    sdk_users::STREAM,
    daily_usage::SDK_STREAM,
    active_users::STREAM,
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
    let now = crate::clock::now();
    sources::accounts(config)
        .filter(|(_, account)| {
            account
                .backfill_streams()
                .iter()
                // A stream the account's `streams` leaves out is not backfilled, so not refused either.
                .any(|stream| account.collects(stream) && selection.wants(stream, account.name()))
        })
        .filter_map(|(_, account)| account.backfill_refusal(from, now))
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
    run_once_at(pool, config, selection, cancel, crate::clock::now()).await
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
    // Best effort: a database still starting is waited out by the streams, and the heartbeat joins later.
    if let Err(err) = engine.join().await {
        tracing::debug!(error = %err, "could not register the run as a collecting member yet");
    }
    // Every request the sources send is counted where every replica's count is summed.
    let http = http.counting_in(engine.ledger());
    let cx = BuildContext {
        run: &run,
        from: selection.from,
        to: selection.to,
        http: &http,
        retry: sources::retry_policy(&config.collector),
    };
    let mut tasks = JoinSet::new();
    // Each (account, stream) whose due windows decide the run's exit status.
    let mut selected: BTreeSet<(String, &'static str)> = BTreeSet::new();
    // When each stream spawned so far has finished, for the streams that run after it.
    let mut finished: HashMap<(String, &'static str), CancellationToken> = HashMap::new();
    for (index, account) in sources::accounts(config) {
        let built: Vec<_> = account
            .build(index, &cx)
            .into_iter()
            .filter(|source| selection.wants(source.stream(), source.account()))
            .collect();
        // Before any stream starts, so the account's lease is held across all of them.
        engine.expect_account(
            account.name(),
            built.len(),
            account.rate_budget().handover(),
        );
        for source in built {
            let key = (source.account().to_string(), source.stream());
            selected.extend(source.counted().map(|stream| (key.0.clone(), stream)));
            let after = source
                .runs_after()
                .and_then(|stream| finished.get(&(key.0.clone(), stream)).cloned());
            // Every line the stream logs, its windows' included, carries the account and the stream.
            let span = tracing::info_span!("source", account = %key.0, stream = %key.1);
            let engine = engine.clone();
            let done = spawn(&mut tasks, span, move || source.run(engine), after);
            finished.insert(key, done);
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
    let finished = engine.finish().await;
    if let Some(err) = first_error {
        return Err(err);
    }
    finished?;
    for (account, stream) in &selected {
        report.incomplete += windows::incomplete_due(pool, account, stream).await?;
    }
    report
        .outcomes
        .sort_by(|a, b| (&a.account, &a.stream).cmp(&(&b.account, &b.stream)));
    Ok(report)
}

/// Spawns the stream `start` starts, after `after` has finished if given, and returns what finishes
/// when this one does (or panics, so nothing waits forever on it). `start` is called only when the stream
/// may start: from then on the engine counts it as a stream still to plan.
fn spawn(
    tasks: &mut JoinSet<Result<StreamOutcome, StoreError>>,
    span: tracing::Span,
    start: impl FnOnce() -> SourceRun + Send + 'static,
    after: Option<CancellationToken>,
) -> CancellationToken {
    let finished = CancellationToken::new();
    let done = finished.clone().drop_guard();
    let run = match after {
        // Started here, not when first polled: the streams spawned together all plan before any walks.
        None => start(),
        Some(prior) => Box::pin(async move {
            prior.cancelled().await;
            start().await
        }),
    };
    tasks.spawn(
        async move {
            let _done = done;
            run.await
        }
        .instrument(span),
    );
    finished
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn outcome(stream: &str) -> SourceRun {
        let stream = stream.to_string();
        Box::pin(async move {
            Ok(StreamOutcome {
                stream,
                ..StreamOutcome::default()
            })
        })
    }

    /// The users of a session list start only once the list has finished, and still start when the list
    /// ended in a panic.
    #[tokio::test]
    async fn a_stream_starts_after_the_one_it_follows_however_that_ended() {
        for list_panics in [false, true] {
            let started = Arc::new(Mutex::new(Vec::new()));
            let mut tasks = JoinSet::new();
            let log = started.clone();
            // The list finishes only when the test says so, after the users had every chance to start.
            let (release, released) = tokio::sync::oneshot::channel::<()>();
            let list = spawn(
                &mut tasks,
                tracing::Span::none(),
                move || {
                    Box::pin(async move {
                        let _ = released.await;
                        log.lock().expect("log").push("list done");
                        assert!(!list_panics, "the list panicked");
                        outcome("list").await
                    })
                },
                None,
            );
            let log = started.clone();
            spawn(
                &mut tasks,
                tracing::Span::none(),
                move || {
                    log.lock().expect("log").push("users started");
                    outcome("users")
                },
                Some(list),
            );
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            assert!(started.lock().expect("log").is_empty(), "users waited");
            release.send(()).expect("the list is waiting");
            let mut panicked = 0;
            while let Some(joined) = tasks.join_next().await {
                panicked += usize::from(joined.is_err());
            }
            assert_eq!(panicked, usize::from(list_panics));
            assert_eq!(
                *started.lock().expect("log"),
                ["list done", "users started"]
            );
        }
    }
}

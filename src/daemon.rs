//! `rollcall run`: migrate, serve `/healthz` and `/metrics`, collect on the cron schedule until SIGTERM.
//!
//! tokio-cron-scheduler is only the trigger: it has no overlap guard (research/rust-anchors.md §2), so a
//! flag here skips a tick that comes while a collection still runs, and the leases in PostgreSQL keep
//! replicas apart.

use crate::collector::{self, Selection};
use crate::config::Config;
use crate::observe;
use crate::store::{self, StoreError};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use chrono::Timelike;
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long shutdown waits for the page in flight before giving up on it (systemd and docker send SIGKILL
/// after 10 s by default; the uncommitted page is simply walked again).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("schedule.cron: {0}")]
    Schedule(String),
    #[error("http.listen: cannot listen on {addr}: {message}")]
    Listen { addr: String, message: String },
}

struct Shared {
    pool: PgPool,
    /// For the budget gauges: the plans' daily pools and rates.
    config: Arc<Config>,
    scheduler_alive: AtomicBool,
    metrics: Option<PrometheusHandle>,
}

pub async fn run(config: Arc<Config>, cancel: CancellationToken) -> Result<(), DaemonError> {
    let pool = store::pool(&config.database.url, config.database.max_connections)?;
    match store::wait_until_reachable(&pool, Duration::from_secs(60), &cancel).await {
        // Nothing was claimed or started yet: a signal while waiting is an ordinary shutdown.
        Err(StoreError::Cancelled) => {
            tracing::info!("shutting down: stopped while waiting for PostgreSQL");
            return Ok(());
        }
        other => other?,
    }
    store::migrate(&pool).await?;
    let shared = Arc::new(Shared {
        pool: pool.clone(),
        config: config.clone(),
        scheduler_alive: AtomicBool::new(false),
        metrics: observe::install(),
    });
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .map_err(|e| DaemonError::Listen {
            addr: config.http.listen.to_string(),
            message: e.to_string(),
        })?;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(shared.clone());
    let server_cancel = cancel.clone();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { server_cancel.cancelled().await })
            .await;
    });

    let tracker = TaskTracker::new();
    let collecting = Arc::new(AtomicBool::new(false));
    let trigger = {
        let (config, pool, cancel, tracker, collecting) = (
            config.clone(),
            pool.clone(),
            cancel.clone(),
            tracker.clone(),
            collecting.clone(),
        );
        move |reason: &'static str| {
            if cancel.is_cancelled() {
                return;
            }
            if collecting.swap(true, Ordering::SeqCst) {
                tracing::warn!(
                    reason,
                    "schedule tick skipped: the previous collection is still running"
                );
                return;
            }
            let (config, pool, cancel, collecting) = (
                config.clone(),
                pool.clone(),
                cancel.clone(),
                collecting.clone(),
            );
            // A scheduled tick fires within half a second of its time (the scheduler polls at 2 Hz), so
            // the second it belongs to is the same on every replica.
            let now = crate::clock::now();
            let run_started = if reason == "schedule" {
                now.with_nanosecond(0).unwrap_or(now)
            } else {
                now
            };
            tracker.spawn(async move {
                // Cleared however the task ends: a panic that unwinds it must not leave every later tick
                // skipped while /healthz still says the daemon is fine.
                let _collecting = ClearOnDrop(collecting);
                tracing::info!(reason, "collection started");
                let selection = Selection::default();
                match collector::run_once_at(&pool, &config, &selection, cancel, run_started).await
                {
                    Ok(report) => tracing::info!(
                        complete = report.all_complete(),
                        incomplete_windows = report.incomplete,
                        "collection finished"
                    ),
                    Err(err) => tracing::error!(error = %err, "collection failed"),
                }
            });
        }
    };
    let trigger = Arc::new(trigger);

    // A member before the first tick can fire (the heartbeat task renews it from then on).
    let _ = crate::store::account_leases::heartbeat(&pool, config.collector.lease_secs).await;
    let mut scheduler = JobScheduler::new()
        .await
        .map_err(|e| DaemonError::Schedule(e.to_string()))?;
    let tick = trigger.clone();
    let job = Job::new_async(config.schedule.cron.as_str(), move |_, _| {
        let tick = tick.clone();
        Box::pin(async move { tick("schedule") })
    })
    .map_err(|e| DaemonError::Schedule(e.to_string()))?;
    scheduler
        .add(job)
        .await
        .map_err(|e| DaemonError::Schedule(e.to_string()))?;
    scheduler
        .start()
        .await
        .map_err(|e| DaemonError::Schedule(e.to_string()))?;
    shared.scheduler_alive.store(true, Ordering::SeqCst);
    let membership = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(keep_membership(
        pool.clone(),
        config.collector.lease_secs,
        cancel.clone(),
    )));
    notify_systemd(&cancel);
    tracing::info!(cron = %config.schedule.cron, listen = %config.http.listen, "rollcall is running");
    if config.schedule.run_on_start {
        trigger("start");
    }

    cancel.cancelled().await;
    tracing::info!("shutting down: no new windows are claimed");
    shared.scheduler_alive.store(false, Ordering::SeqCst);
    let _ = scheduler.shutdown().await;
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("the page in flight did not finish in time; it is walked again next run");
    }
    drop(membership);
    // The other replicas take a fair share that counts us no more, at once.
    if let Err(err) = crate::store::account_leases::leave(&pool).await {
        tracing::debug!(error = %err, "could not leave the collecting members");
    }
    let _ = server.await;
    Ok(())
}

/// Keeps this daemon among the collecting members between its ticks, so replicas that start together see
/// each other before any takes an account (each then takes about its share of them).
async fn keep_membership(pool: PgPool, lease_secs: u64, cancel: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(lease_secs.max(3) / 3));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = every.tick() => {
                if let Err(err) = crate::store::account_leases::heartbeat(&pool, lease_secs).await {
                    tracing::debug!(error = %err, "could not renew this replica's membership");
                }
            }
        }
    }
}

async fn healthz(State(shared): State<Arc<Shared>>) -> (StatusCode, &'static str) {
    let db = tokio::time::timeout(
        Duration::from_secs(3),
        sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&shared.pool),
    )
    .await;
    match (db, shared.scheduler_alive.load(Ordering::SeqCst)) {
        (Ok(Ok(_)), true) => (StatusCode::OK, "ok\n"),
        (_, false) => (StatusCode::SERVICE_UNAVAILABLE, "scheduler stopped\n"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "database not answering\n"),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> (StatusCode, String) {
    let Some(handle) = &shared.metrics else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "# metrics recorder not installed\n".into(),
        );
    };
    // Bounded like /healthz: a scrape while PostgreSQL is away answers with the last gauges instead of
    // waiting out the pool's acquire timeout, and cannot hold a graceful shutdown past its 10 s.
    let refreshed = tokio::time::timeout(Duration::from_secs(3), async {
        observe::refresh_from_db(&shared.pool).await?;
        let today = crate::clock::now().date_naive();
        if let Ok(lines) = crate::commands::budget::load(&shared.pool, &shared.config, today).await
        {
            observe::budget(&lines);
        }
        Ok::<(), sqlx::Error>(())
    })
    .await;
    match refreshed {
        Ok(Ok(())) => (StatusCode::OK, handle.render()),
        Ok(Err(_)) | Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("# database not answering\n{}", handle.render()),
        ),
    }
}

/// READY=1 once migrations ran and the database answered (the caller's order guarantees both), and
/// WATCHDOG=1 at half the interval systemd asks for. Without NOTIFY_SOCKET these are no-ops.
fn notify_systemd(cancel: &CancellationToken) {
    if let Err(err) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::debug!(error = %err, "sd_notify READY failed");
    }
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let cancel = cancel.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval / 2);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                }
            }
        }
    });
}

/// Sets the flag back to false when dropped.
struct ClearOnDrop(Arc<AtomicBool>);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

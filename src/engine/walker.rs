use super::accounts::{AccountLeases, Hold};
use super::undo::{self, StoredRows};
use super::{RunContext, Shrink, Source, CONFIRM_AFTER, MAX_RESTARTS_PER_RUN, PAGE_TOKEN_TRUST};
use crate::http::{pacing, ApiError};
use crate::observe;
use crate::store::request_counts::RequestLedger;
use crate::store::windows::{
    self, Checkpoint, Completion, Dispute, LeaseOwner, Window, WindowState,
};
use crate::store::{pauses, StoreError};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;
use uuid::Uuid;

/// How often one stream survives losing the database, and how long it waits for it each time.
const MAX_DB_RECOVERIES: u32 = 5;
const DB_PATIENCE: Duration = Duration::from_secs(60);

/// One collection run: every source shares the pool, the lease identity and the shutdown signal.
pub struct Engine {
    pool: PgPool,
    owner: LeaseOwner,
    cancel: CancellationToken,
    run: RunContext,
    /// Windows of one (account, stream) walked at once (`collector.windows_in_flight`).
    windows_in_flight: usize,
    /// One permit per window walked, across every account and stream (`collector.max_windows_in_flight`):
    /// the pages in memory and the writers queuing for the pool grow with this, not with the accounts
    /// configured. Tokio's semaphore is FIFO, and each stream queues at most one waiter at a time (the
    /// worker holding the stream's claim lock), so slots go round the streams in turn: no account waits
    /// for all the others to finish.
    window_slots: Arc<Semaphore>,
    /// Streams planning, retiring or settling their windows at once. Each of these holds a connection
    /// for a whole transaction; hundreds of accounts starting together would otherwise queue in front of
    /// the pool past its acquire timeout, which reads as a lost database.
    setup_slots: Arc<Semaphore>,
    /// Streams of the run that have not planned yet. Planning goes before walking: a window is claimed
    /// only while this is 0. Walks compete with planning for the pool, and with hundreds of accounts the
    /// last ones would otherwise plan (and so walk their first window) only after most of the run.
    unplanned: Arc<tokio::sync::watch::Sender<usize>>,
    /// The accounts this process sends for now: one replica at a time per account.
    accounts: AccountLeases,
    /// Every request of the run, counted per account and category in PostgreSQL.
    ledger: Arc<RequestLedger>,
}

/// A stream counted in [`Engine::unplanned`] until its set-up is over (or it ended early): uncounted on
/// drop, so no error path can leave the walks waiting forever.
struct Unplanned(Arc<tokio::sync::watch::Sender<usize>>);

impl Drop for Unplanned {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// How much of a run happens at once (see the fields of [`Engine`]).
#[derive(Clone, Copy, Debug)]
pub struct Concurrency {
    /// `collector.windows_in_flight`: windows of one (account, stream) at once.
    pub per_stream: usize,
    /// `collector.max_windows_in_flight`: windows of the whole run at once.
    pub global: usize,
    /// Streams planning or settling at once; half the pool, so walks always find connections too.
    pub setup: usize,
}

impl Concurrency {
    pub fn from_config(config: &crate::config::Config) -> Concurrency {
        Concurrency {
            per_stream: config.collector.windows_in_flight as usize,
            global: config.collector.max_windows_in_flight as usize,
            setup: (config.database.max_connections as usize / 2).max(1),
        }
    }
}

/// What the workers of one (account, stream) share.
struct StreamState {
    /// The windows this run claimed (walked or being walked); the lock also serializes claims.
    claims: tokio::sync::Mutex<Vec<i64>>,
    outcome: std::sync::Mutex<StreamOutcome>,
    /// Cancelled when the account can do nothing more this run (or a worker lost the database).
    account_stopped: CancellationToken,
    db_recoveries: AtomicU32,
    /// Set once a page was fetched, or the first walk ended: the other workers start only then, so an
    /// account whose credentials are refused (or that is out of its daily budget) sends one request, not
    /// one per worker.
    probed: tokio::sync::watch::Sender<bool>,
    /// Windows claimed so far: a further worker starts only once every worker started has claimed one,
    /// so a stream keeps live workers for the windows it really walks at once, not `windows_in_flight`
    /// idle ones (with hundreds of accounts those idle tasks were most of the process's memory).
    claimed: tokio::sync::watch::Sender<usize>,
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a run did for one (account, stream).
#[derive(Debug, Default, Clone)]
pub struct StreamOutcome {
    pub account: String,
    pub stream: String,
    pub completed: u32,
    pub failed: u32,
    pub rows: i64,
    /// Windows the API said it no longer has (recorded `unreachable`, rows kept).
    pub unreachable: u32,
    /// Windows whose lease another process took over mid-walk (it finishes them; nothing is lost).
    pub lost_leases: u32,
    /// Set when the account can do nothing more this run (rejected credentials, daily limit, pause).
    pub stopped: Option<String>,
    pub interrupted: bool,
}

enum WalkEnd {
    Complete {
        rows: i64,
        completion: Completion,
    },
    Failed {
        error: ApiErrorOrReason,
    },
    /// The walk would have made the window final while shrinking what is stored: nothing of its last page
    /// or its mirror step was applied, and the window is complete but not final, awaiting confirmation.
    Disputed {
        shrink: Shrink,
    },
    /// The API no longer has what the window asks for: recorded `unreachable`, rows kept.
    Unreachable {
        reason: String,
    },
    /// Shutdown: the walk resumes from its checkpoint next run.
    Interrupted,
    /// Another process holds the window now; its walk is its own.
    LeaseLost,
}

enum ApiErrorOrReason {
    Api(ApiError),
    Reason(String),
}

impl std::fmt::Display for ApiErrorOrReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiErrorOrReason::Api(e) => e.fmt(f),
            ApiErrorOrReason::Reason(r) => f.write_str(r),
        }
    }
}

impl Engine {
    /// `run.started` decides which complete-but-not-final windows this run walks again: those whose last
    /// walk started before it. Replicas triggered by the same cron tick pass the tick's time, so a window
    /// one of them walked in this tick is not walked again by another.
    pub fn new(
        pool: PgPool,
        owner: LeaseOwner,
        cancel: CancellationToken,
        run: RunContext,
        concurrency: Concurrency,
    ) -> Engine {
        let ledger = Arc::new(RequestLedger::new(pool.clone()));
        let accounts =
            AccountLeases::new(pool.clone(), owner.clone(), ledger.clone(), cancel.clone());
        Engine {
            accounts,
            ledger,
            pool,
            owner,
            cancel,
            run,
            windows_in_flight: concurrency.per_stream.max(1),
            window_slots: Arc::new(Semaphore::new(concurrency.global.max(1))),
            setup_slots: Arc::new(Semaphore::new(concurrency.setup.max(1))),
            unplanned: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }

    /// Where the run counts its requests: the HTTP client the sources send with must count in it.
    pub fn ledger(&self) -> Arc<RequestLedger> {
        self.ledger.clone()
    }

    /// Announces the `streams` streams of `account` this run will start (see [`AccountLeases::announce_streams`]),
    /// and how long taking the account over from another replica must wait.
    pub fn expect_account(&self, account: &str, streams: usize, handover: Duration) {
        self.accounts.announce_streams(account, streams, handover);
    }

    /// Registers the run as a collecting member (see [`AccountLeases::join`]): before any stream starts.
    pub async fn join(&self) -> Result<(), StoreError> {
        self.accounts.join().await
    }

    /// Releases the accounts still held and writes the request counts: once every stream has ended.
    pub async fn finish(&self) -> Result<(), StoreError> {
        self.accounts.finish().await
    }

    /// Waits for a slot of `slots`, or for `stop`. `None` means stop (the semaphores are never closed).
    async fn slot(
        slots: &Arc<Semaphore>,
        stop: &CancellationToken,
    ) -> Option<OwnedSemaphorePermit> {
        tokio::select! {
            biased;
            _ = stop.cancelled() => None,
            permit = slots.clone().acquire_owned() => permit.ok(),
        }
    }

    fn run_started(&self) -> DateTime<Utc> {
        self.run.started
    }

    /// Walks every due window of one source. A write PostgreSQL refuses or a lost lease ends that window
    /// only; losing the database itself is waited out a few times, then aborts the stream (nothing
    /// half-written survives because every write is transactional).
    ///
    /// The stream counts as unplanned from this call, not from the first poll of the future, so the
    /// streams a run spawns together all plan before any of them claims a window.
    pub fn run_source<S: Source>(
        self: Arc<Self>,
        source: Arc<S>,
    ) -> impl std::future::Future<Output = Result<StreamOutcome, StoreError>> + Send + 'static {
        self.unplanned.send_modify(|n| *n += 1);
        let unplanned = Unplanned(self.unplanned.clone());
        self.run_source_planned_first(source, unplanned)
    }

    async fn run_source_planned_first<S: Source>(
        self: Arc<Self>,
        source: Arc<S>,
        unplanned: Unplanned,
    ) -> Result<StreamOutcome, StoreError> {
        let account = source.account().to_string();
        let ran = self.clone().run_stream(source, unplanned).await;
        if let Err(err) = self.accounts.stream_done(&account).await {
            // The lease runs out on its own; another replica waits at most that long.
            tracing::warn!(error = %err, "could not release the account's lease");
        }
        ran
    }

    async fn run_stream<S: Source>(
        self: Arc<Self>,
        source: Arc<S>,
        unplanned: Unplanned,
    ) -> Result<StreamOutcome, StoreError> {
        let mut outcome = StreamOutcome {
            account: source.account().to_string(),
            stream: source.stream().to_string(),
            ..StreamOutcome::default()
        };
        let account = source.account();
        let Some(setup) = Self::slot(&self.setup_slots, &self.cancel).await else {
            outcome.interrupted = true;
            return Ok(outcome);
        };
        let paused = self.patiently(|| self.set_up(source.as_ref())).await?;
        drop(setup);
        drop(unplanned);
        if let Some(pause) = paused {
            tracing::warn!(until = %pause.until, reason = %pause.reason,
                "account paused by a daily API limit; skipping it this run");
            outcome.stopped = Some(format!("paused until {}", pause.until));
            return Ok(outcome);
        }
        let (probed, mut probe_done) = tokio::sync::watch::channel(false);
        let stream_state = Arc::new(StreamState {
            claims: tokio::sync::Mutex::new(Vec::new()),
            outcome: std::sync::Mutex::new(outcome),
            // Losing the account's lease stops its walks here as a shutdown would.
            account_stopped: self.accounts.lost_token(account).child_token(),
            db_recoveries: AtomicU32::new(0),
            probed,
            claimed: tokio::sync::watch::Sender::new(0),
        });
        // Windows of one stream are walked by several workers at once, so the account's rate budget is
        // filled whatever the reply latency; the account's pacer (shared by its sources) keeps the rate,
        // the pages of each window stay strictly sequential. The first worker goes alone until the account
        // has proven it can be served.
        let in_flight = source
            .max_windows_in_flight()
            .map_or(self.windows_in_flight, |cap| {
                cap.min(self.windows_in_flight)
            })
            .max(1);
        let mut workers = tokio::task::JoinSet::new();
        // Workers log inside the stream's span (account, stream) like the stream itself.
        workers.spawn(
            self.clone()
                .walk_windows(source.clone(), stream_state.clone())
                .in_current_span(),
        );
        let mut claimed = stream_state.claimed.subscribe();
        let mut started = 1;
        let mut first_error = None;
        loop {
            let more = started < in_flight && !stream_state.account_stopped.is_cancelled();
            let ready = async {
                // The senders live in `stream_state`, held here: these waits end only by their condition.
                let _ = probe_done.wait_for(|done| *done).await;
                let _ = claimed.wait_for(|n| *n >= started).await;
            };
            tokio::select! {
                joined = workers.join_next() => {
                    let Some(joined) = joined else { break };
                    let failed = match joined {
                        Ok(Ok(())) => continue,
                        Ok(Err(err)) => err,
                        Err(join) => StoreError::Task(join.to_string()),
                    };
                    // One worker lost the database for good: the others stop claiming, finish their page
                    // and go.
                    stream_state.account_stopped.cancel();
                    first_error.get_or_insert(failed);
                }
                _ = ready, if more => {
                    workers.spawn(
                        self.clone()
                            .walk_windows(source.clone(), stream_state.clone())
                            .in_current_span(),
                    );
                    started += 1;
                }
            }
        }
        if let Some(err) = first_error {
            return Err(err);
        }
        // Not cancellable: settling only completes parents whose children are all complete, and a
        // shutdown must not skip it (the slot is released within one statement anyway).
        let settle = self.setup_slots.clone().acquire_owned().await.ok();
        self.patiently(|| windows::settle_parents(&self.pool, account))
            .await?;
        drop(settle);
        let mut outcome = std::mem::take(&mut *lock(&stream_state.outcome));
        outcome.interrupted |= self.cancel.is_cancelled();
        Ok(outcome)
    }

    /// One worker of a stream: claims windows and walks them one after the other until none is left, the
    /// account is stopped (rejected credentials, a daily limit) or the process shuts down.
    async fn walk_windows<S: Source>(
        self: Arc<Self>,
        source: Arc<S>,
        shared: Arc<StreamState>,
    ) -> Result<(), StoreError> {
        let (account, stream) = (source.account(), source.stream());
        while !shared.account_stopped.is_cancelled() {
            let (window, slot) = {
                // Claims are serialized within the process: `claim_next` lets an owner re-claim its own
                // lease, so two workers must not race between a claim and its record in `claims`. The
                // lock is held while waiting for a run-wide slot, which is what keeps each stream to one
                // place in the slots' queue.
                let mut claims = shared.claims.lock().await;
                let next = self
                    .next_window(account, stream, &claims, &shared.account_stopped)
                    .await;
                let next = match next {
                    // Lost between windows (a claim, or a poll for windows another replica holds): the same
                    // patience as for a walk, or one failover would end the stream and the run with it.
                    Err(err) if self.recover_database(&shared, &err) => {
                        drop(claims);
                        tracing::warn!(error = %err, "database connection lost; waiting for PostgreSQL");
                        crate::store::wait_until_reachable(&self.pool, DB_PATIENCE, &self.cancel)
                            .await?;
                        continue;
                    }
                    other => other?,
                };
                let Some((window, slot)) = next else {
                    break;
                };
                claims.push(window.id);
                shared.claimed.send_modify(|n| *n += 1);
                (window, slot)
            };
            let id = window.id;
            // Every line about this window, up to its one closing line, carries which window it is.
            let span =
                tracing::info_span!("window", scope = %window.scope, window = %span_of(&window));
            // Boxed: a walk's state (pages, fetch futures) is allocated only while a window is walked, so a
            // worker waiting for a slot costs a few hundred bytes, not the size of a whole walk.
            let walked = Box::pin(
                self.walk(
                    source.as_ref(),
                    window,
                    &shared.account_stopped,
                    &shared.probed,
                )
                .instrument(span),
            )
            .await;
            // Freed before anything that may wait (the database coming back, the next claim).
            drop(slot);
            let walked = match walked {
                Err(err) if self.recover_database(&shared, &err) => {
                    // PostgreSQL restarted or the network blinked: the page in flight was rolled back,
                    // the checkpoint still holds. Wait for the database and walk the window again.
                    tracing::warn!(error = %err, "database connection lost; waiting for PostgreSQL");
                    crate::store::wait_until_reachable(&self.pool, DB_PATIENCE, &self.cancel)
                        .await?;
                    shared.claims.lock().await.retain(|claimed| *claimed != id);
                    continue;
                }
                other => other?,
            };
            match walked {
                WalkEnd::Complete { rows, .. } => {
                    let mut outcome = lock(&shared.outcome);
                    outcome.completed += 1;
                    outcome.rows += rows;
                }
                // Complete as far as this run can tell; the next runs settle the dispute.
                WalkEnd::Disputed { .. } => lock(&shared.outcome).completed += 1,
                WalkEnd::Unreachable { .. } => lock(&shared.outcome).unreachable += 1,
                WalkEnd::LeaseLost => lock(&shared.outcome).lost_leases += 1,
                WalkEnd::Interrupted => {
                    if self.cancel.is_cancelled() {
                        lock(&shared.outcome).interrupted = true;
                    }
                    break;
                }
                WalkEnd::Failed { error } => {
                    lock(&shared.outcome).failed += 1;
                    if let ApiErrorOrReason::Api(api) = &error {
                        if let ApiError::DailyLimit { until, .. } = api {
                            pauses::pause(&self.pool, account, *until, &api.to_string()).await?;
                        }
                        if api.stops_account() {
                            lock(&shared.outcome).stopped = Some(api.to_string());
                            // The other workers' walks end at their next page: the account can do
                            // nothing more this run, and a daily limit means no request at all.
                            shared.account_stopped.cancel();
                            break;
                        }
                    }
                }
            }
            // After the outcome is recorded, so the other workers see an account stop before they start.
            shared.probed.send_replace(true);
        }
        shared.probed.send_replace(true);
        Ok(())
    }

    /// Plans the stream's windows, retires those past the horizon, and reads the account's pause: each
    /// step safe to repeat after a lost connection.
    async fn set_up<S: Source>(&self, source: &S) -> Result<Option<pauses::Pause>, StoreError> {
        let (account, stream) = (source.account(), source.stream());
        windows::plan(&self.pool, account, stream, &source.plan()).await?;
        if let Some(rule) = source.retirement() {
            let retired = windows::retire(&self.pool, account, stream, &rule).await?;
            if retired > 0 {
                tracing::info!(retired, before = %rule.before,
                    "windows fell before the API horizon: retired as unreachable, their rows kept");
            }
        }
        pauses::active(&self.pool, account).await
    }

    /// Runs `step`, which must be safe to repeat, waiting out a lost database as a walk does (up to
    /// `MAX_DB_RECOVERIES` times): a failover as a run starts or settles must not cost the day's run.
    async fn patiently<T, F, Fut>(&self, mut step: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let mut recoveries = 0;
        loop {
            match step().await {
                Err(err) if err.is_connection_loss() && recoveries < MAX_DB_RECOVERIES => {
                    recoveries += 1;
                    tracing::warn!(error = %err, "database connection lost; waiting for PostgreSQL");
                    crate::store::wait_until_reachable(&self.pool, DB_PATIENCE, &self.cancel)
                        .await?;
                }
                other => return other,
            }
        }
    }

    /// Whether `err` is the database going away and the stream still has patience left for it (each
    /// recovery spends one of `MAX_DB_RECOVERIES`).
    fn recover_database(&self, shared: &StreamState, err: &StoreError) -> bool {
        err.is_connection_loss()
            && shared.db_recoveries.fetch_add(1, Ordering::SeqCst) < MAX_DB_RECOVERIES
    }

    /// The next window to walk, with the run-wide slot to walk it in: a free one, or one whose owner died
    /// on this host, or, when every remaining window is leased by a live process, the first to be released
    /// after waiting for it. The slot is taken before the claim, so a claimed window never waits for one
    /// (its lease is only renewed while it is walked).
    async fn next_window(
        &self,
        account: &str,
        stream: &str,
        attempted: &[i64],
        stop: &CancellationToken,
    ) -> Result<Option<(Window, OwnedSemaphorePermit)>, StoreError> {
        let mut unplanned = self.unplanned.subscribe();
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => return Ok(None),
                // The sender lives as long as the engine, which outlives this call.
                _ = unplanned.wait_for(|n| *n == 0) => {}
            }
            let wait = match self.accounts.hold(account).await? {
                Hold::Ours => None,
                Hold::Elsewhere { holder, until } => {
                    tracing::debug!(holder = %holder, "another replica walks this account; waiting");
                    Some(
                        (until - Utc::now())
                            .to_std()
                            .unwrap_or_default()
                            .clamp(Duration::from_millis(200), Duration::from_secs(5)),
                    )
                }
                Hold::Deferred => Some(Duration::from_secs(1)),
            };
            if let Some(wait) = wait {
                // Another replica sends for the account (or should take it): whatever of this stream is
                // due, it walks, or leaves to us when it lets the account go or dies.
                if !windows::any_due(&self.pool, account, stream, self.run_started(), attempted)
                    .await?
                {
                    return Ok(None);
                }
                tokio::select! {
                    _ = stop.cancelled() => return Ok(None),
                    _ = tokio::time::sleep(wait) => {}
                }
                // Asked again before taking the account: the holder usually lets it go because it walked
                // everything, and taking it then would only cost a handover pause.
                if !windows::any_due(&self.pool, account, stream, self.run_started(), attempted)
                    .await?
                {
                    return Ok(None);
                }
                continue;
            }
            let Some(slot) = Self::slot(&self.window_slots, stop).await else {
                return Ok(None);
            };
            let claimed = windows::claim_next(
                &self.pool,
                account,
                stream,
                &self.owner,
                self.run_started(),
                attempted,
            )
            .await?;
            if let Some(window) = claimed {
                return Ok(Some((window, slot)));
            }
            let leased = windows::leased_elsewhere(
                &self.pool,
                account,
                stream,
                &self.owner,
                self.run_started(),
                attempted,
            )
            .await?;
            if leased.is_empty() {
                return Ok(None);
            }
            for (id, holder, _) in &leased {
                if LeaseOwner::is_dead_local(holder) {
                    if let Some(window) =
                        windows::take_over(&self.pool, *id, holder, &self.owner).await?
                    {
                        tracing::info!(window_id = id, dead_owner = %holder,
                            "took over the window of a process that no longer exists");
                        return Ok(Some((window, slot)));
                    }
                }
            }
            let soonest = leased.iter().map(|(_, _, until)| *until).min();
            let wait = soonest
                .and_then(|until| (until - Utc::now()).to_std().ok())
                .unwrap_or_default()
                .clamp(Duration::from_millis(200), Duration::from_secs(5));
            // Waiting on another process is not walking: the slot goes to an account with work.
            drop(slot);
            tracing::debug!(
                windows = leased.len(),
                "waiting for windows leased by another process"
            );
            tokio::select! {
                _ = self.cancel.cancelled() => return Ok(None),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn walk<S: Source>(
        &self,
        source: &S,
        window: Window,
        stop: &CancellationToken,
        probed: &tokio::sync::watch::Sender<bool>,
    ) -> Result<WalkEnd, StoreError> {
        let walk_cancel = stop.child_token();
        let lease_lost = Arc::new(AtomicBool::new(false));
        // Aborted when dropped, so a walk that panics (a task's unwinding drops this future) cannot leave
        // the heartbeat renewing the lease of a window no worker walks: every later run of this process
        // would wait for that lease forever.
        let heartbeat = AbortOnDropHandle::new(self.spawn_heartbeat(
            window.id,
            walk_cancel.clone(),
            lease_lost.clone(),
        ));
        let end = self.walk_pages(source, &window, &walk_cancel, probed).await;
        drop(heartbeat);
        let end = match end {
            Ok(WalkEnd::Interrupted) if lease_lost.load(Ordering::SeqCst) => WalkEnd::LeaseLost,
            Ok(end) => end,
            Err(StoreError::LeaseLost) => WalkEnd::LeaseLost,
            Err(err) if err.is_connection_loss() => return Err(err),
            Err(err) => {
                // PostgreSQL refused something of this window (a value it cannot store, an index entry
                // too large): the page rolled back; the window fails and the stream goes on.
                let error = format!("PostgreSQL refused a write of this window: {err}");
                match windows::fail_now(&self.pool, window.id, &self.owner, &error).await {
                    Ok(()) => WalkEnd::Failed {
                        error: ApiErrorOrReason::Reason(error),
                    },
                    Err(StoreError::LeaseLost) => WalkEnd::LeaseLost,
                    Err(other) => return Err(other),
                }
            }
        };
        match &end {
            WalkEnd::Interrupted => {
                windows::release(&self.pool, window.id, &self.owner).await?;
                tracing::info!("walk interrupted; it resumes from its checkpoint next run");
            }
            WalkEnd::Complete {
                rows,
                completion: Completion::Complete,
            } => {
                observe::window_finished(&window.account, &window.stream, "complete");
                tracing::info!(rows, "window complete");
            }
            WalkEnd::Complete {
                rows,
                completion: Completion::AwaitingChildren,
            } => {
                observe::window_finished(&window.account, &window.stream, "awaiting_children");
                tracing::info!(
                    rows,
                    "window walked and verified; it completes when its child windows do"
                );
            }
            WalkEnd::Disputed { shrink, .. } => {
                observe::window_finished(&window.account, &window.stream, "awaiting_confirmation");
                tracing::warn!(
                    stored = shrink.stored,
                    walked = shrink.walked,
                    "the walk that would make this window final shrinks what is stored; nothing of it was applied, and the window stays complete but not final until a walk of a run at least 12 hours later agrees"
                );
            }
            WalkEnd::Unreachable { reason } => {
                observe::window_finished(&window.account, &window.stream, "unreachable");
                tracing::warn!(reason = %reason,
                    "window unreachable: the API no longer has it; its rows are kept and it is not requested again");
            }
            WalkEnd::LeaseLost => {
                observe::window_finished(&window.account, &window.stream, "lease_lost");
                tracing::warn!("lease lost to another process; that process finishes the window");
            }
            WalkEnd::Failed { error } => {
                observe::window_finished(&window.account, &window.stream, "failed");
                tracing::warn!(error = %error, "window failed; retried next run");
            }
        }
        Ok(end)
    }

    /// Renews the lease at a third of its length; losing it cancels the walk, and the fenced writes make
    /// sure a late page of ours can never land after another process took over.
    fn spawn_heartbeat(
        &self,
        id: i64,
        walk_cancel: CancellationToken,
        lease_lost: Arc<AtomicBool>,
    ) -> tokio::task::JoinHandle<()> {
        let pool = self.pool.clone();
        let owner = self.owner.clone();
        let period = Duration::from_secs(owner.lease_secs.max(3) / 3);
        let renew = async move {
            loop {
                tokio::time::sleep(period).await;
                match windows::renew(&pool, id, &owner).await {
                    Ok(true) => {}
                    Ok(false) => {
                        lease_lost.store(true, Ordering::SeqCst);
                        walk_cancel.cancel();
                        return;
                    }
                    Err(err) => {
                        tracing::warn!(window_id = id, error = %err, "could not renew lease")
                    }
                }
            }
        };
        tokio::spawn(renew.in_current_span())
    }

    async fn walk_pages<S: Source>(
        &self,
        source: &S,
        window: &Window,
        cancel: &CancellationToken,
        probed: &tokio::sync::watch::Sender<bool>,
    ) -> Result<WalkEnd, StoreError> {
        let stored_params = window
            .walk_params
            .clone()
            .and_then(|p| serde_json::from_value::<S::Params>(p).ok());
        let resumable = window.state == WindowState::Running
            && window.next_page_token.is_some()
            && window
                .token_issued_at
                .is_some_and(|at| Utc::now() - at < PAGE_TOKEN_TRUST);
        // The total the API announced for the window (Zoom's `total_records`), as the checkpoint stored it.
        let mut expected_total = None;
        // Rows this walk has written, for the pacer's "most work left first" (see `pacing::WORK_LEFT`).
        let mut walked: i64 = 0;
        let (mut walk_id, mut token, mut params) = match (resumable, window.walk_id, stored_params)
        {
            (true, Some(walk_id), Some(params)) => {
                tracing::debug!(window_id = window.id, pages = window.pages, "resuming walk");
                expected_total = window.expected_total;
                walked = window.rows;
                (walk_id, window.next_page_token.clone(), params)
            }
            _ => {
                let (walk_id, params) = self.begin_walk(source, window).await?;
                (walk_id, None, params)
            }
        };
        let mut restarts = 0;
        // Every token this walk has followed: a server that hands one back again would otherwise be walked
        // in a circle, page after page, until the account's daily budget is spent.
        let mut followed: HashSet<String> = token.iter().cloned().collect();
        // The next page is fetched while the current one is written: HTTP and PostgreSQL overlap instead of
        // taking turns. A crash loses nothing: the prefetched page is simply fetched again on resume.
        let mut prefetched: Option<Fetched<S::Page>> = None;
        loop {
            if cancel.is_cancelled() {
                return Ok(WalkEnd::Interrupted);
            }
            let (requested_at, fetched) = match prefetched.take() {
                Some(done) => done,
                None => {
                    let requested_at = Utc::now();
                    let fetched = tokio::select! {
                        biased;
                        _ = cancel.cancelled() => return Ok(WalkEnd::Interrupted),
                        page = pacing::WORK_LEFT.scope(
                            work_left(expected_total, walked),
                            source.fetch(window, &params, token.as_deref(), cancel),
                        ) => page,
                    };
                    (requested_at, fetched)
                }
            };
            let page = match fetched {
                Ok(page) => {
                    probed.send_replace(true);
                    page
                }
                Err(ApiError::Cancelled) => return Ok(WalkEnd::Interrupted),
                Err(ApiError::PageTokenExpired { .. })
                    if token.is_some() && restarts < MAX_RESTARTS_PER_RUN =>
                {
                    restarts += 1;
                    tracing::info!(
                        window_id = window.id,
                        restarts,
                        "page token refused; walking the window again from page 1"
                    );
                    (walk_id, params) = self.begin_walk(source, window).await?;
                    token = None;
                    followed.clear();
                    expected_total = None;
                    walked = 0;
                    continue;
                }
                Err(err) => {
                    let mut tx = self.pool.begin().await?;
                    // Whatever ends the walk unapplied puts back what its earlier pages overwrote.
                    undo::put_back(&mut tx, window.id, &source.stored_rows(window)).await?;
                    if let Some(reason) = source.unreachable(window, &err) {
                        windows::gone(&mut tx, window.id, &self.owner, &reason).await?;
                        tx.commit().await?;
                        return Ok(WalkEnd::Unreachable { reason });
                    }
                    windows::fail(&mut tx, window.id, &self.owner, &err.to_string()).await?;
                    tx.commit().await?;
                    return Ok(WalkEnd::Failed {
                        error: ApiErrorOrReason::Api(err),
                    });
                }
            };
            let mut tx = self.pool.begin().await?;
            let meta = match source.inspect(window, &page) {
                Ok(meta) => meta,
                Err(reason) => {
                    undo::put_back(&mut tx, window.id, &source.stored_rows(window)).await?;
                    windows::fail(&mut tx, window.id, &self.owner, &reason).await?;
                    tx.commit().await?;
                    return Ok(WalkEnd::Failed {
                        error: ApiErrorOrReason::Reason(reason),
                    });
                }
            };
            expected_total = meta.expected_total.or(expected_total);
            if let Some(next) = meta
                .next_page_token
                .as_ref()
                .filter(|t| followed.contains(*t))
            {
                let reason = format!(
                    "the API returned a next_page_token this walk already followed ({} characters), so its \
                     pages loop; the window is walked again from page 1 on the next run",
                    next.len()
                );
                undo::put_back(&mut tx, window.id, &source.stored_rows(window)).await?;
                windows::fail(&mut tx, window.id, &self.owner, &reason).await?;
                tx.commit().await?;
                return Ok(WalkEnd::Failed {
                    error: ApiErrorOrReason::Reason(reason),
                });
            }
            if let Some(next) = meta.next_page_token.clone() {
                followed.insert(next.clone());
                let aside = if source.finalizes(window, &params) {
                    source.stored_rows(window)
                } else {
                    Vec::new()
                };
                let write = async {
                    undo::set_aside(&mut tx, window.id, &aside).await?;
                    let page_rows = source.write_page(&mut tx, window, walk_id, &page).await?;
                    let at = Checkpoint {
                        page_rows,
                        next_page_token: Some(next.as_str()),
                        token_issued_at: requested_at,
                        expected_total: meta.expected_total,
                    };
                    windows::checkpoint(&mut tx, window.id, &self.owner, &at).await?;
                    tx.commit().await?;
                    Ok::<i64, StoreError>(page_rows)
                };
                let next_requested_at = Utc::now();
                let (written, next_page) = tokio::join!(
                    write,
                    pacing::WORK_LEFT.scope(
                        work_left(expected_total, walked),
                        source.fetch(window, &params, Some(next.as_str()), cancel)
                    )
                );
                let written = written?;
                walked += written;
                observe::rows_upserted(&window.account, &window.stream, written);
                prefetched = Some((next_requested_at, next_page));
                token = Some(next);
                continue;
            }
            let is_final = source.is_final(window, &params);
            let finalizes = source.finalizes(window, &params);
            let ruled = finalizes || source.confirms_every_shrink();
            let aside = if finalizes {
                source.stored_rows(window)
            } else {
                Vec::new()
            };
            // A walk of one page has overwritten nothing yet, but its values are compared with the copy.
            undo::set_aside(&mut tx, window.id, &aside).await?;
            let confirmed = window
                .disputed_since
                .is_some_and(|since| self.run.started - since >= CONFIRM_AFTER);
            let mut shrank = None;
            if ruled {
                if let Some(shrink) = source.shrinks(&mut tx, window, walk_id, &page).await? {
                    // A walk that does not add up to the announced total is failed below, not disputed.
                    let adds_up = expected_total.is_none_or(|expected| expected == shrink.walked);
                    if adds_up && !confirmed {
                        tx.rollback().await?;
                        return self.dispute(window, &aside, shrink).await;
                    }
                    shrank = Some(shrink);
                }
            }
            let page_rows = source.write_page(&mut tx, window, walk_id, &page).await?;
            observe::rows_upserted(&window.account, &window.stream, page_rows);
            windows::checkpoint(
                &mut tx,
                window.id,
                &self.owner,
                &Checkpoint {
                    page_rows,
                    next_page_token: None,
                    token_issued_at: requested_at,
                    expected_total: meta.expected_total,
                },
            )
            .await?;
            let end = match source
                .finish(&mut tx, window, walk_id, &page, is_final)
                .await?
            {
                Ok(done) if expected_total.is_some_and(|expected| expected != done.rows) => {
                    // The walk does not add up to what the API announced: nothing of its last page, and
                    // none of the mirror step, may stand, nor what its earlier pages overwrote. The next
                    // run walks the window again.
                    tx.rollback().await?;
                    let reason = format!(
                        "the API announced {} rows for this window but the walk saw {} distinct rows; it is walked again next run",
                        expected_total.unwrap_or_default(),
                        done.rows
                    );
                    let mut tx = self.pool.begin().await?;
                    undo::put_back(&mut tx, window.id, &source.stored_rows(window)).await?;
                    windows::fail(&mut tx, window.id, &self.owner, &reason).await?;
                    tx.commit().await?;
                    return Ok(WalkEnd::Failed {
                        error: ApiErrorOrReason::Reason(reason),
                    });
                }
                Ok(done) => {
                    // Values the walk's pages lowered (on any page) count like removed rows.
                    let (held, lowered) = undo::lowered(&mut tx, window.id, &aside).await?;
                    if lowered > 0 && shrank.is_none() {
                        shrank = Some(Shrink {
                            stored: held,
                            walked: done.rows,
                        });
                    }
                    if let Some(shrink) = shrank {
                        if !confirmed {
                            tx.rollback().await?;
                            return self.dispute(window, &aside, shrink).await;
                        }
                        tracing::info!(
                            stored = shrink.stored,
                            walked = shrink.walked,
                            disputed_since = ?window.disputed_since,
                            "a walk at least 12 hours after the first one agrees that the window shrinks; the shrink is applied"
                        );
                    }
                    undo::discard(&mut tx, window.id).await?;
                    // A source may hold a settled window open (never the other way round).
                    let is_final = is_final && done.is_final;
                    let completion = windows::complete(
                        &mut tx,
                        window.id,
                        &self.owner,
                        is_final,
                        done.rows,
                        None,
                    )
                    .await?;
                    WalkEnd::Complete {
                        rows: done.rows,
                        completion,
                    }
                }
                Err(reason) => {
                    tx.rollback().await?;
                    let mut tx = self.pool.begin().await?;
                    undo::put_back(&mut tx, window.id, &source.stored_rows(window)).await?;
                    windows::fail(&mut tx, window.id, &self.owner, &reason).await?;
                    tx.commit().await?;
                    return Ok(WalkEnd::Failed {
                        error: ApiErrorOrReason::Reason(reason),
                    });
                }
            };
            tx.commit().await?;
            return Ok(end);
        }
    }
}

impl Engine {
    /// Records a walk that would have finalized `window` (or, for a source that confirms every shrink,
    /// any walk) while shrinking what is stored: the window is complete but not final, its stored rows as
    /// they were before the walk (what its earlier pages overwrote is put back), marked with this run's
    /// start (a window disputed again keeps its first mark) and both counts.
    async fn dispute(
        &self,
        window: &Window,
        aside: &[StoredRows],
        shrink: Shrink,
    ) -> Result<WalkEnd, StoreError> {
        let dispute = Dispute {
            since: self.run.started,
            run: self.run.id,
            stored: shrink.stored,
            walked: shrink.walked,
        };
        let mut tx = self.pool.begin().await?;
        let restored = undo::put_back(&mut tx, window.id, aside).await?;
        if restored > 0 {
            tracing::debug!(
                restored,
                "rows the walk's earlier pages overwrote are put back"
            );
        }
        windows::complete(
            &mut tx,
            window.id,
            &self.owner,
            false,
            shrink.stored,
            Some(&dispute),
        )
        .await?;
        tx.commit().await?;
        Ok(WalkEnd::Disputed { shrink })
    }

    /// Starts a walk from page 1: a new walk id, and the request parameters fixed for all its pages.
    async fn begin_walk<S: Source>(
        &self,
        source: &S,
        window: &Window,
    ) -> Result<(Uuid, S::Params), StoreError> {
        let walk_id = Uuid::new_v4();
        let params = source.params(window);
        // Parameters are plain structs of dates, numbers and strings: serializing them cannot fail, and if
        // it ever did, a NULL only means a later resume starts from page 1 instead.
        let stored = serde_json::to_value(&params).unwrap_or(serde_json::Value::Null);
        windows::begin_walk(
            &self.pool,
            window.id,
            &self.owner,
            walk_id,
            &stored,
            self.run_started(),
        )
        .await?;
        Ok((walk_id, params))
    }
}

/// What the pacer ranks a window's next request by: the rows it has left, or "unknown, maybe a lot" until a
/// page announced a total (so every window gets its first page early and shows its size).
fn work_left(expected_total: Option<i64>, walked: i64) -> u64 {
    match expected_total {
        Some(total) => u64::try_from(total.saturating_sub(walked)).unwrap_or(0),
        None => u64::MAX,
    }
}

/// A page fetch and when its request was sent (the issue time of the token it returns).
type Fetched<P> = (DateTime<Utc>, Result<P, ApiError>);

fn span_of(window: &Window) -> String {
    format!("{}..{}", window.window_start, window.window_end)
}

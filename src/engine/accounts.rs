//! The accounts this process may send requests for in a run: the leases of `store::account_leases`, held
//! while any stream of the account still has windows to walk here, renewed in the background, and released
//! when the account's last stream of the run is done.
//!
//! Holding an account for the whole of its streams (not window by window) keeps handovers rare: each one
//! costs a pause of one pacing period, so the two holders' requests never overlap in Zoom's windows.

use crate::store::account_leases::{self, Claim};
use crate::store::lease_owner::LeaseOwner;
use crate::store::request_counts::{RequestLedger, FLUSH_EVERY};
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

/// Whether this process may walk an account's windows now.
#[derive(Debug)]
pub enum Hold {
    Ours,
    /// Another live replica sends for the account until at least `until`.
    Elsewhere {
        holder: String,
        until: DateTime<Utc>,
    },
    /// The account is free, but this process already holds its fair share: another replica should take
    /// it. Asked again shortly; taken anyway once it stayed free for [`FAIR_SHARE_PATIENCE`].
    Deferred,
}

/// How long an account may stay free while this process holds its fair share before it takes the account
/// anyway: a member that counts in the share may not want it (a `collect --account` of another account).
const FAIR_SHARE_PATIENCE: Duration = Duration::from_secs(10);

pub struct AccountLeases {
    inner: Arc<Inner>,
    _background: AbortOnDropHandle<()>,
}

struct Inner {
    pool: PgPool,
    owner: LeaseOwner,
    ledger: Arc<RequestLedger>,
    accounts: Mutex<HashMap<String, Account>>,
    /// Claims of one account go one at a time, so its streams ask PostgreSQL once, not once each.
    claiming: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    cancel: CancellationToken,
}

struct Account {
    /// Streams of the account in this run that have not ended.
    streams_left: usize,
    /// The longest pacing spacing of the account: what a handover waits.
    handover: Duration,
    /// When held: requests may go from this instant (after a handover's pause).
    ready_at: Option<Instant>,
    /// Cancelled when the lease is lost: the account's walks stop at their next page.
    lost: CancellationToken,
    /// Since when the account was deferred to other replicas (free, but our share is full).
    deferred_since: Option<Instant>,
    /// A claim of it is in flight: it counts in the share already.
    claiming: bool,
}

/// A claim in flight, counted in the share until it ends however it ends.
struct Reservation<'a> {
    inner: &'a Inner,
    account: String,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if let Some(entry) = self.inner.lock().get_mut(&self.account) {
            entry.claiming = false;
        }
    }
}

impl Account {
    fn new(lost: CancellationToken) -> Account {
        Account {
            streams_left: 0,
            handover: Duration::ZERO,
            ready_at: None,
            lost,
            deferred_since: None,
            claiming: false,
        }
    }
}

impl AccountLeases {
    pub fn new(
        pool: PgPool,
        owner: LeaseOwner,
        ledger: Arc<RequestLedger>,
        cancel: CancellationToken,
    ) -> AccountLeases {
        let inner = Arc::new(Inner {
            pool,
            owner,
            ledger,
            accounts: Mutex::new(HashMap::new()),
            claiming: Mutex::new(HashMap::new()),
            cancel,
        });
        let background = AbortOnDropHandle::new(tokio::spawn(inner.clone().background()));
        AccountLeases {
            inner,
            _background: background,
        }
    }

    /// Announces `streams` more streams of `account` in this run, before any starts: the lease is released
    /// only once all of them ended, so a stream that runs after another does not hand the account over in
    /// between. Returns the token cancelled if the account's lease is lost.
    pub fn announce_streams(
        &self,
        account: &str,
        streams: usize,
        handover: Duration,
    ) -> CancellationToken {
        let mut accounts = self.inner.lock();
        let entry = accounts
            .entry(account.to_string())
            .or_insert_with(|| Account::new(self.inner.cancel.child_token()));
        entry.streams_left += streams;
        entry.handover = entry.handover.max(handover);
        entry.lost.clone()
    }

    /// The token cancelled when `account`'s lease is lost (or the run stops).
    pub fn lost_token(&self, account: &str) -> CancellationToken {
        match self.inner.lock().get(account) {
            Some(entry) => entry.lost.clone(),
            None => self.inner.cancel.child_token(),
        }
    }

    /// Takes or keeps the account's lease. When taken from a replica that sent a moment ago, waits out
    /// the rest of one pacing period first.
    pub async fn hold(&self, account: &str) -> Result<Hold, StoreError> {
        let ready_at = match self.held_ready_at(account) {
            Some(ready_at) => ready_at,
            None => {
                let lock = self.inner.claim_lock(account);
                let _one_at_a_time = lock.lock().await;
                match self.held_ready_at(account) {
                    Some(ready_at) => ready_at,
                    None => match self.claim(account).await? {
                        Ok(ready_at) => ready_at,
                        Err(elsewhere) => return Ok(elsewhere),
                    },
                }
            }
        };
        tokio::select! {
            _ = self.inner.cancel.cancelled() => {}
            _ = tokio::time::sleep_until(ready_at) => {}
        }
        Ok(Hold::Ours)
    }

    fn held_ready_at(&self, account: &str) -> Option<Instant> {
        self.inner.lock().get(account).and_then(|a| a.ready_at)
    }

    /// Registers this process as a collecting member, so replicas that start together see each other before
    /// any of them takes an account. Call before the streams start.
    pub async fn join(&self) -> Result<(), StoreError> {
        account_leases::heartbeat(&self.inner.pool, self.inner.owner.lease_secs).await
    }

    /// Reserves a place in this process's fair share of the run's accounts (they divided by the members
    /// collecting now, rounded up) for `account`, or `None` when the share is full and the account has
    /// not waited long enough for another replica. Claims of different accounts run at once, so the
    /// count includes the claims in flight: replicas started together must not each take everything.
    async fn reserve(&self, account: &str) -> Result<Option<Reservation<'_>>, StoreError> {
        let members =
            account_leases::members(&self.inner.pool, self.inner.owner.lease_secs).await?;
        let mut accounts = self.inner.lock();
        let taken = accounts
            .values()
            .filter(|a| a.ready_at.is_some() || a.claiming)
            .count();
        let share = accounts
            .len()
            .div_ceil(usize::try_from(members).unwrap_or(1).max(1));
        let entry = accounts
            .entry(account.to_string())
            .or_insert_with(|| Account::new(self.inner.cancel.child_token()));
        if taken > 0 && taken >= share {
            let since = *entry.deferred_since.get_or_insert_with(Instant::now);
            if since.elapsed() < FAIR_SHARE_PATIENCE {
                return Ok(None);
            }
        }
        entry.claiming = true;
        Ok(Some(Reservation {
            inner: &self.inner,
            account: account.to_string(),
        }))
    }

    async fn claim(&self, account: &str) -> Result<Result<Instant, Hold>, StoreError> {
        let inner = &self.inner;
        let Some(_reservation) = self.reserve(account).await? else {
            // Only a free account is deferred; one held elsewhere is reported as such.
            if let Some((holder, until)) = account_leases::holder(&inner.pool, account).await? {
                return Ok(Err(Hold::Elsewhere { holder, until }));
            }
            return Ok(Err(Hold::Deferred));
        };
        let mut claim = account_leases::claim(&inner.pool, account, &inner.owner, None).await?;
        if let Claim::Elsewhere { holder, .. } = &claim {
            if LeaseOwner::is_dead_local(holder) {
                let dead = holder.clone();
                claim =
                    account_leases::claim(&inner.pool, account, &inner.owner, Some(&dead)).await?;
                if matches!(claim, Claim::Held { .. }) {
                    tracing::info!(account, dead_owner = %dead,
                        "took over the account of a process that no longer exists");
                }
            }
        }
        let quiet_for = match claim {
            Claim::Held { quiet_for } => quiet_for,
            Claim::Elsewhere { holder, until } => {
                return Ok(Err(Hold::Elsewhere { holder, until }))
            }
        };
        // Another replica may have sent for the account since this process last read its day.
        inner.ledger.reread(account);
        let mut accounts = inner.lock();
        let entry = accounts
            .entry(account.to_string())
            .or_insert_with(|| Account::new(inner.cancel.child_token()));
        entry.deferred_since = None;
        let pause = quiet_for.map_or(Duration::ZERO, |quiet| entry.handover.saturating_sub(quiet));
        let ready_at = Instant::now() + pause;
        entry.ready_at = Some(ready_at);
        tracing::debug!(
            account,
            pause_ms = pause.as_millis() as u64,
            "holding the account"
        );
        Ok(Ok(ready_at))
    }

    /// One stream of `account` ended in this run; the last one releases the lease.
    pub async fn stream_done(&self, account: &str) -> Result<(), StoreError> {
        let release = {
            let mut accounts = self.inner.lock();
            match accounts.get_mut(account) {
                Some(entry) => {
                    entry.streams_left = entry.streams_left.saturating_sub(1);
                    entry.streams_left == 0 && entry.ready_at.take().is_some()
                }
                None => false,
            }
        };
        if release {
            account_leases::release(&self.inner.pool, account, &self.inner.owner).await?;
        }
        Ok(())
    }

    /// Releases every lease still held and writes the request tally: the end of a run.
    pub async fn finish(&self) -> Result<(), StoreError> {
        let held: Vec<String> = {
            let mut accounts = self.inner.lock();
            accounts
                .iter_mut()
                .filter_map(|(name, a)| a.ready_at.take().map(|_| name.clone()))
                .collect()
        };
        for account in held {
            account_leases::release(&self.inner.pool, &account, &self.inner.owner).await?;
        }
        self.inner.ledger.flush().await
    }
}

impl Inner {
    fn claim_lock(&self, account: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.claiming
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(account.to_string())
            .or_default()
            .clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Account>> {
        self.accounts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Renews the held leases at a third of their length (one late renewal does not lose them) and writes
    /// the request tally every few seconds, for the life of the run.
    async fn background(self: Arc<Self>) {
        let renew_every = Duration::from_secs(self.owner.lease_secs.max(3) / 3);
        let mut renew = tokio::time::interval(renew_every);
        let mut flush = tokio::time::interval(FLUSH_EVERY);
        loop {
            tokio::select! {
                _ = renew.tick() => self.renew().await,
                _ = flush.tick() => {
                    if let Err(err) = self.ledger.flush().await {
                        tracing::debug!(error = %err, "could not write the request counts; kept for the next try");
                    }
                }
            }
        }
    }

    async fn renew(&self) {
        if let Err(err) = account_leases::heartbeat(&self.pool, self.owner.lease_secs).await {
            tracing::debug!(error = %err, "could not renew this run's membership");
        }
        let held: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, a)| a.ready_at.is_some())
            .map(|(name, _)| name.clone())
            .collect();
        if held.is_empty() {
            return;
        }
        let renewed = match account_leases::renew(&self.pool, &self.owner, &held).await {
            Ok(renewed) => renewed,
            Err(err) => {
                // Not lost yet: the lease outlives two missed renewals.
                tracing::warn!(error = %err, "could not renew the account leases");
                return;
            }
        };
        let mut accounts = self.lock();
        for name in held.iter().filter(|name| !renewed.contains(name)) {
            if let Some(entry) = accounts.get_mut(name) {
                if entry.ready_at.take().is_some() {
                    tracing::warn!(account = %name,
                        "lost the account's lease to another replica; its walks here stop");
                    entry.lost.cancel();
                }
            }
        }
    }
}

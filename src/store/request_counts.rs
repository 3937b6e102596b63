//! Every API request counted per account, rate category and UTC day, in PostgreSQL, so the daily pool is
//! one number however many replicas and restarts spent it, and `status` and `/metrics` can show it.
//!
//! Requests are tallied in memory and written in batches (every few seconds and at the end of a run): a
//! row update per request would cost the database more than the requests cost Zoom. The account's lease
//! holder is the only process sending for it, so its own tally plus what the table held when it took the
//! lease is the account's whole day.

use super::StoreError;
use chrono::NaiveDate;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::Mutex;

/// How often the tally is written while a run sends.
pub const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

type Key = (String, &'static str, NaiveDate);

/// The requests of one run, counted as they are sent and written to `rollcall.request_counts`.
#[derive(Debug)]
pub struct RequestLedger {
    pool: PgPool,
    state: Mutex<Tally>,
}

#[derive(Debug, Default)]
struct Tally {
    /// Counted, not yet written.
    pending: HashMap<Key, i64>,
    /// Per account: the day, what the table held for it when first asked, and what we sent since.
    days: HashMap<String, AccountDay>,
}

#[derive(Debug, Clone, Copy)]
struct AccountDay {
    day: NaiveDate,
    stored: i64,
    sent: i64,
}

impl RequestLedger {
    pub fn new(pool: PgPool) -> RequestLedger {
        RequestLedger {
            pool,
            state: Mutex::new(Tally::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts one request as sent now.
    pub fn record(&self, account: &str, category: &'static str) {
        let day = crate::clock::now().date_naive();
        let mut state = self.state();
        *state
            .pending
            .entry((account.to_string(), category, day))
            .or_default() += 1;
        if let Some(known) = state.days.get_mut(account) {
            if known.day == day {
                known.sent += 1;
            }
        }
    }

    /// Forgets what it read of the account's day, so the next [`RequestLedger::used_today`] reads the table
    /// again: another replica may have sent for it since (called when this process takes its lease).
    pub fn reread(&self, account: &str) {
        self.state().days.remove(account);
    }

    /// The account's requests today (UTC) in every category, every replica's included.
    pub async fn used_today(&self, account: &str) -> Result<i64, StoreError> {
        let day = crate::clock::now().date_naive();
        if let Some(known) = self.state().days.get(account).filter(|d| d.day == day) {
            return Ok(known.stored + known.sent);
        }
        // Written first, so the table holds everything this process counted before the read.
        self.flush().await?;
        let stored = day_total(&self.pool, account, day).await?;
        let mut state = self.state();
        let known = state.days.entry(account.to_string()).or_insert(AccountDay {
            day,
            stored,
            sent: 0,
        });
        if known.day != day {
            *known = AccountDay {
                day,
                stored,
                sent: 0,
            };
        }
        Ok(known.stored + known.sent)
    }

    /// Writes what was counted since the last flush. On failure the counts are kept for the next one.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let pending = std::mem::take(&mut self.state().pending);
        if pending.is_empty() {
            return Ok(());
        }
        let (mut accounts, mut categories, mut days, mut counts) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((account, category, day), n) in &pending {
            accounts.push(account.as_str());
            categories.push(*category);
            days.push(*day);
            counts.push(*n);
        }
        let written = sqlx::query(
            "INSERT INTO rollcall.request_counts (account, category, day, requests)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::date[], $4::bigint[])
             ON CONFLICT (account, category, day) DO UPDATE
               SET requests = request_counts.requests + EXCLUDED.requests, updated_at = now()",
        )
        .bind(&accounts)
        .bind(&categories)
        .bind(&days)
        .bind(&counts)
        .execute(&self.pool)
        .await;
        if let Err(err) = written {
            let mut state = self.state();
            for (key, n) in pending {
                *state.pending.entry(key).or_default() += n;
            }
            return Err(err.into());
        }
        Ok(())
    }
}

/// Every category of the account on `day`.
async fn day_total(pool: &PgPool, account: &str, day: NaiveDate) -> Result<i64, StoreError> {
    let total: Option<i64> = sqlx::query_scalar(
        "SELECT sum(requests)::bigint FROM rollcall.request_counts WHERE account = $1 AND day = $2",
    )
    .bind(account)
    .bind(day)
    .fetch_one(pool)
    .await?;
    Ok(total.unwrap_or(0))
}

/// Requests sent on `day`, per account and category, by every replica.
pub async fn on_day(
    pool: &PgPool,
    day: NaiveDate,
) -> Result<Vec<(String, String, i64)>, StoreError> {
    let rows = sqlx::query_as(
        "SELECT account, category, requests FROM rollcall.request_counts WHERE day = $1
          ORDER BY account, category",
    )
    .bind(day)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

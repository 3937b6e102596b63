//! Daily-limit pauses, kept in PostgreSQL so a restart or another replica respects them (DESIGN §1.5).

use super::StoreError;
use crate::sources::zoom::pacing::latest_daily_pause;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use std::collections::HashMap;

#[derive(Clone, Debug)]
pub struct Pause {
    pub until: DateTime<Utc>,
    pub reason: String,
}

pub async fn active(pool: &PgPool, account: &str) -> Result<Option<Pause>, StoreError> {
    let row: Option<(DateTime<Utc>, String)> = sqlx::query_as(
        "SELECT until, reason FROM rollcall.account_pauses WHERE account = $1 AND until > now()",
    )
    .bind(account)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(until, reason)| Pause { until, reason }))
}

/// Every pause still in force, by account.
pub async fn all_active(pool: &PgPool) -> Result<HashMap<String, Pause>, StoreError> {
    let rows: Vec<(String, DateTime<Utc>, String)> = sqlx::query_as(
        "SELECT account, until, reason FROM rollcall.account_pauses WHERE until > now()",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(account, until, reason)| (account, Pause { until, reason }))
        .collect())
}

/// Stores the account's pause, replacing any earlier one: the latest daily-limit answer is the best word on
/// when the pool resets, so a shorter pause after a longer one shortens it (keeping the longer would let
/// one bad `Retry-After` outlive the reset). Whatever the caller passes, the pause ends by the next
/// 00:00 UTC plus the margin, so a stored pause can never wedge the account.
pub async fn pause(
    pool: &PgPool,
    account: &str,
    until: DateTime<Utc>,
    reason: &str,
) -> Result<(), StoreError> {
    let until = until.min(latest_daily_pause(Utc::now()));
    sqlx::query(
        "INSERT INTO rollcall.account_pauses (account, until, reason) VALUES ($1, $2, $3)
         ON CONFLICT (account) DO UPDATE
           SET until = EXCLUDED.until, reason = EXCLUDED.reason, paused_at = now()",
    )
    .bind(account)
    .bind(until)
    .bind(reason)
    .execute(pool)
    .await?;
    Ok(())
}

//! Daily-limit pauses, kept in PostgreSQL so a restart or another replica respects them (DESIGN §1.5).

use super::StoreError;
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

pub async fn pause(
    pool: &PgPool,
    account: &str,
    until: DateTime<Utc>,
    reason: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO rollcall.account_pauses (account, until, reason) VALUES ($1, $2, $3)
         ON CONFLICT (account) DO UPDATE
           SET until = GREATEST(account_pauses.until, EXCLUDED.until), reason = EXCLUDED.reason,
               paused_at = now()",
    )
    .bind(account)
    .bind(until)
    .bind(reason)
    .execute(pool)
    .await?;
    Ok(())
}

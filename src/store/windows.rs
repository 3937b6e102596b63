//! The `collection_windows` table: planning, leases, checkpoints and completion (DESIGN §3).
//!
//! Every write that follows a claim is fenced on `lease_owner`: a process whose lease was taken over can no
//! longer move the checkpoint or complete the window, even if it is still running.

use super::StoreError;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

pub use super::lease_owner::LeaseOwner;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    Reachable,
    /// The API can no longer serve this range; the reason is stored as `last_error`.
    Unreachable(String),
}

/// A window a source wants to exist, before it is stored.
#[derive(Clone, Debug)]
pub struct PlannedWindow {
    pub scope: String,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub reach: Reach,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Window {
    pub id: i64,
    pub account: String,
    pub stream: String,
    pub scope: String,
    pub window_start: NaiveDate,
    pub window_end: NaiveDate,
    pub state: String,
    pub is_final: bool,
    pub pages: i32,
    pub rows: i64,
    pub attempts: i32,
    pub next_page_token: Option<String>,
    pub token_issued_at: Option<DateTime<Utc>>,
    pub expected_total: Option<i64>,
    pub last_error: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    pub walk_id: Option<Uuid>,
}

const COLUMNS: &str = "id, account, stream, scope, window_start, window_end, state, is_final, pages, rows, \
    attempts, next_page_token, token_issued_at, expected_total, last_error, started_at, completed_at, \
    lease_owner, lease_until, walk_id";

/// Records the windows a source wants. Existing windows keep their state, except that a window the API can
/// no longer serve becomes `unreachable` unless it was already completed.
pub async fn plan(
    pool: &PgPool,
    account: &str,
    stream: &str,
    windows: &[PlannedWindow],
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    for w in windows {
        match &w.reach {
            Reach::Reachable => {
                sqlx::query(
                    "INSERT INTO rollcall.collection_windows (account, stream, scope, window_start, window_end)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(account)
                .bind(stream)
                .bind(&w.scope)
                .bind(w.start)
                .bind(w.end)
                .execute(&mut *tx)
                .await?;
            }
            Reach::Unreachable(reason) => {
                sqlx::query(
                    "INSERT INTO rollcall.collection_windows
                       (account, stream, scope, window_start, window_end, state, last_error)
                     VALUES ($1, $2, $3, $4, $5, 'unreachable', $6)
                     ON CONFLICT (account, stream, scope, window_start, window_end) DO UPDATE
                       SET state = 'unreachable', last_error = EXCLUDED.last_error, next_page_token = NULL,
                           updated_at = now()
                     WHERE collection_windows.state NOT IN ('complete', 'unreachable')",
                )
                .bind(account)
                .bind(stream)
                .bind(&w.scope)
                .bind(w.start)
                .bind(w.end)
                .bind(reason)
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Claims the oldest window of (account, stream) that still needs a walk in this run. Oldest first because
/// the oldest reachable month is the next to fall off the API's horizon.
pub async fn claim_next(
    pool: &PgPool,
    account: &str,
    stream: &str,
    owner: &LeaseOwner,
    run_started: DateTime<Utc>,
    skip: &[i64],
) -> Result<Option<Window>, StoreError> {
    let sql = format!(
        "UPDATE rollcall.collection_windows
            SET lease_owner = $3, lease_until = now() + make_interval(secs => $4), updated_at = now()
          WHERE id = (
            SELECT id FROM rollcall.collection_windows
             WHERE account = $1 AND stream = $2 AND NOT is_final AND state <> 'unreachable'
               AND (state = 'running' OR started_at IS NULL OR started_at < $5)
               AND (lease_until IS NULL OR lease_until < now() OR lease_owner = $3)
               AND NOT (id = ANY($6))
             ORDER BY window_start, scope
             FOR UPDATE SKIP LOCKED
             LIMIT 1)
        RETURNING {COLUMNS}"
    );
    let window = sqlx::query_as::<_, Window>(&sql)
        .bind(account)
        .bind(stream)
        .bind(&owner.id)
        .bind(owner.lease_secs as f64)
        .bind(run_started)
        .bind(skip)
        .fetch_optional(pool)
        .await?;
    Ok(window)
}

/// Windows of (account, stream) that still need a walk but are leased by someone else.
pub async fn leased_elsewhere(
    pool: &PgPool,
    account: &str,
    stream: &str,
    owner: &LeaseOwner,
    run_started: DateTime<Utc>,
    skip: &[i64],
) -> Result<Vec<(i64, String, DateTime<Utc>)>, StoreError> {
    let rows: Vec<(i64, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, lease_owner, lease_until FROM rollcall.collection_windows
          WHERE account = $1 AND stream = $2 AND NOT is_final AND state <> 'unreachable'
            AND (state = 'running' OR started_at IS NULL OR started_at < $4)
            AND lease_until >= now() AND lease_owner <> $3 AND NOT (id = ANY($5))",
    )
    .bind(account)
    .bind(stream)
    .bind(&owner.id)
    .bind(run_started)
    .bind(skip)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// Takes a lease from a process that is known to be dead; fenced on the dead owner so two survivors cannot
/// both take it.
pub async fn take_over(
    pool: &PgPool,
    id: i64,
    dead_owner: &str,
    owner: &LeaseOwner,
) -> Result<Option<Window>, StoreError> {
    let sql = format!(
        "UPDATE rollcall.collection_windows
            SET lease_owner = $3, lease_until = now() + make_interval(secs => $4), updated_at = now()
          WHERE id = $1 AND lease_owner = $2
        RETURNING {COLUMNS}"
    );
    let window = sqlx::query_as::<_, Window>(&sql)
        .bind(id)
        .bind(dead_owner)
        .bind(&owner.id)
        .bind(owner.lease_secs as f64)
        .fetch_optional(pool)
        .await?;
    Ok(window)
}

pub async fn renew(pool: &PgPool, id: i64, owner: &LeaseOwner) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE rollcall.collection_windows SET lease_until = now() + make_interval(secs => $3)
          WHERE id = $1 AND lease_owner = $2",
    )
    .bind(id)
    .bind(&owner.id)
    .bind(owner.lease_secs as f64)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Starts a walk from page 1 under a new walk id; rows the walk sees are stamped with it.
pub async fn begin_walk(
    pool: &PgPool,
    id: i64,
    owner: &LeaseOwner,
    walk_id: Uuid,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE rollcall.collection_windows
            SET state = 'running', walk_id = $3, pages = 0, rows = 0, next_page_token = NULL,
                token_issued_at = NULL, expected_total = NULL, started_at = now(),
                attempts = attempts + 1, last_error = NULL, updated_at = now()
          WHERE id = $1 AND lease_owner = $2",
    )
    .bind(id)
    .bind(&owner.id)
    .bind(walk_id)
    .execute(pool)
    .await?;
    fenced(done.rows_affected())
}

/// Where the walk stands after a page; runs inside the page's transaction.
pub struct Checkpoint<'a> {
    pub page_rows: i64,
    pub next_page_token: Option<&'a str>,
    pub token_issued_at: DateTime<Utc>,
    pub expected_total: Option<i64>,
}

pub async fn checkpoint(
    tx: &mut Transaction<'_, Postgres>,
    id: i64,
    owner: &LeaseOwner,
    at: &Checkpoint<'_>,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE rollcall.collection_windows
            SET pages = pages + 1, rows = rows + $3, next_page_token = $4, token_issued_at = $5,
                expected_total = COALESCE($6, expected_total),
                lease_until = now() + make_interval(secs => $7), updated_at = now()
          WHERE id = $1 AND lease_owner = $2",
    )
    .bind(id)
    .bind(&owner.id)
    .bind(at.page_rows)
    .bind(at.next_page_token)
    .bind(at.token_issued_at)
    .bind(at.expected_total)
    .bind(owner.lease_secs as f64)
    .execute(&mut **tx)
    .await?;
    fenced(done.rows_affected())
}

pub async fn complete(
    tx: &mut Transaction<'_, Postgres>,
    id: i64,
    owner: &LeaseOwner,
    is_final: bool,
    rows: i64,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE rollcall.collection_windows
            SET state = 'complete', is_final = $3, rows = $4, completed_at = now(), next_page_token = NULL,
                token_issued_at = NULL, last_error = NULL, lease_owner = NULL, lease_until = NULL,
                updated_at = now()
          WHERE id = $1 AND lease_owner = $2",
    )
    .bind(id)
    .bind(&owner.id)
    .bind(is_final)
    .bind(rows)
    .execute(&mut **tx)
    .await?;
    fenced(done.rows_affected())
}

/// Marks the walk failed; the next run starts it again from page 1. Runs in the caller's transaction when
/// a page must be refused in the same breath (a clamped range, a total that does not add up).
pub async fn fail(
    tx: &mut Transaction<'_, Postgres>,
    id: i64,
    owner: &LeaseOwner,
    error: &str,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE rollcall.collection_windows
            SET state = 'failed', last_error = $3, next_page_token = NULL, token_issued_at = NULL,
                lease_owner = NULL, lease_until = NULL, updated_at = now()
          WHERE id = $1 AND lease_owner = $2",
    )
    .bind(id)
    .bind(&owner.id)
    .bind(error)
    .execute(&mut **tx)
    .await?;
    fenced(done.rows_affected())
}

/// Gives the window back without changing its state: an interrupted walk resumes from its checkpoint.
pub async fn release(pool: &PgPool, id: i64, owner: &LeaseOwner) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE rollcall.collection_windows SET lease_owner = NULL, lease_until = NULL, updated_at = now()
          WHERE id = $1 AND lease_owner = $2",
    )
    .bind(id)
    .bind(&owner.id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records why a window could not even start (a paused account, rejected credentials) without claiming it.
pub async fn note_error(pool: &PgPool, id: i64, error: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE rollcall.collection_windows SET last_error = $2, updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// Windows of (account, stream) that are due but not complete: what makes `collect` exit 1.
pub async fn incomplete_due(pool: &PgPool, account: &str, stream: &str) -> Result<i64, StoreError> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rollcall.collection_windows
          WHERE account = $1 AND stream = $2 AND NOT is_final AND state NOT IN ('complete', 'unreachable')",
    )
    .bind(account)
    .bind(stream)
    .fetch_one(pool)
    .await?;
    Ok(n)
}

fn fenced(rows_affected: u64) -> Result<(), StoreError> {
    if rows_affected == 1 {
        Ok(())
    } else {
        Err(StoreError::LeaseLost)
    }
}

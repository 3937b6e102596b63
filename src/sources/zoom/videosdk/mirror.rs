//! How a complete Video SDK walk makes the stored rows a mirror of what Zoom lists, without trusting one
//! reply to delete history. The Video SDK announces no totals, so a walk that reached its last page proves
//! less than a host report does: a row it did not see is only marked missing (`missing_since`, and the run
//! that saw it missing). It is deleted when a complete walk in a *later run* misses it too, and the mark is
//! cleared whenever a walk sees it again. One bad reply, or one bad run, can therefore delete nothing.

use crate::engine::Tx;
use crate::store::StoreError;
use chrono::NaiveDate;
use uuid::Uuid;

/// What the mirror step of one complete walk did.
#[derive(Debug, Default)]
pub struct Missing {
    /// Rows missed by a complete walk of an earlier run and now by this one: deleted.
    pub confirmed: Vec<String>,
    /// Rows missed for the first time: marked, kept.
    pub newly_missing: u64,
}

/// The sessions of `month` that the list walk `walk_id` of run `run_id` did not see. Returns the session
/// ids deleted; the caller removes their users and child windows in the same transaction.
pub async fn sessions(
    tx: &mut Tx,
    account: &str,
    month: NaiveDate,
    walk_id: Uuid,
    run_id: Uuid,
) -> Result<Missing, StoreError> {
    let confirmed: Vec<String> = sqlx::query_scalar(
        "DELETE FROM rollcall.zoom_sdk_sessions
          WHERE account = $1 AND month = $2 AND walk_id <> $3
            AND missing_since IS NOT NULL AND missing_run <> $4
      RETURNING session_id",
    )
    .bind(account)
    .bind(month)
    .bind(walk_id)
    .bind(run_id)
    .fetch_all(&mut **tx)
    .await?;
    let marked = sqlx::query(
        "UPDATE rollcall.zoom_sdk_sessions SET missing_since = now(), missing_run = $4
          WHERE account = $1 AND month = $2 AND walk_id <> $3 AND missing_since IS NULL",
    )
    .bind(account)
    .bind(month)
    .bind(walk_id)
    .bind(run_id)
    .execute(&mut **tx)
    .await?;
    Ok(Missing {
        confirmed,
        newly_missing: marked.rows_affected(),
    })
}

/// The joins of `session_id` that the users walk `walk_id` of run `run_id` did not see. `confirmed` holds
/// the user ids of the joins deleted.
pub async fn session_users(
    tx: &mut Tx,
    account: &str,
    session_id: &str,
    walk_id: Uuid,
    run_id: Uuid,
) -> Result<Missing, StoreError> {
    let confirmed: Vec<String> = sqlx::query_scalar(
        "DELETE FROM rollcall.zoom_sdk_session_users
          WHERE account = $1 AND session_id = $2 AND walk_id <> $3
            AND missing_since IS NOT NULL AND missing_run <> $4
      RETURNING user_id",
    )
    .bind(account)
    .bind(session_id)
    .bind(walk_id)
    .bind(run_id)
    .fetch_all(&mut **tx)
    .await?;
    let marked = sqlx::query(
        "UPDATE rollcall.zoom_sdk_session_users SET missing_since = now(), missing_run = $4
          WHERE account = $1 AND session_id = $2 AND walk_id <> $3 AND missing_since IS NULL",
    )
    .bind(account)
    .bind(session_id)
    .bind(walk_id)
    .bind(run_id)
    .execute(&mut **tx)
    .await?;
    Ok(Missing {
        confirmed,
        newly_missing: marked.rows_affected(),
    })
}

//! How a complete Video SDK walk makes the stored rows a mirror of what Zoom lists, without trusting one
//! reply, or one moment, to delete history. The Video SDK announces no totals, so a walk that reached its
//! last page proves less than a host report does: a row it did not see is only marked missing
//! (`missing_since`, when it was marked, and `missing_run`, the run that marked it). It is deleted only by
//! a complete walk of *another* run that began at least [`CONFIRM_AFTER`] (12 hours) after the mark, and
//! misses it too; with the default daily schedule that is the next day's run. Until then it stays marked,
//! and the mark is cleared whenever a walk sees the row again. One bad reply, one bad run, or two runs
//! minutes apart (a manual `collect` after the daemon's) can therefore delete nothing.
//! A window whose scope still holds a mark after this step does not become final (final windows are never
//! walked again, so the mark would never be settled): see [`Missing::still_missing`].

use crate::engine::RunContext;
use crate::engine::Tx;
use crate::store::StoreError;
use chrono::{NaiveDate, TimeDelta};
use uuid::Uuid;

/// How long after a row was marked missing a run must begin for its complete walk to confirm the row is
/// gone. Two runs are two pieces of evidence only if one short upstream glitch (a Zoom incident, a bad
/// deploy, an index catching up) cannot cover both: a manual `collect` started minutes after the daemon's
/// run is not. 12 hours: the default schedule is daily, so a normal deployment confirms on the next day's
/// run, and a twice-daily schedule still confirms within a day.
pub const CONFIRM_AFTER: TimeDelta = TimeDelta::hours(12);

/// What the mirror step of one complete walk did.
#[derive(Debug, Default)]
pub struct Missing {
    /// Rows marked by another run at least [`CONFIRM_AFTER`] before this run began, missed again: deleted.
    pub confirmed: Vec<String>,
    /// Rows missed for the first time: marked, kept.
    pub newly_missing: u64,
    /// Rows of the scope still marked after this step (the new marks and earlier ones not yet confirmed):
    /// while there are any, the window must not become final, or nothing would ever settle them.
    pub still_missing: i64,
}

/// The rows a walk mirrors: a month's sessions, or one session's joins.
enum Scope<'a> {
    Month(NaiveDate),
    Session(&'a str),
}

/// The sessions of `month` that the list walk `walk_id` of `run` did not see. Returns the session
/// ids deleted; the caller removes their users and child windows in the same transaction.
pub async fn sessions(
    tx: &mut Tx,
    account: &str,
    month: NaiveDate,
    walk_id: Uuid,
    run: &RunContext,
) -> Result<Missing, StoreError> {
    unseen(tx, account, Scope::Month(month), walk_id, run).await
}

/// The joins of `session_id` that the users walk `walk_id` of `run` did not see. `confirmed` holds
/// the user ids of the joins deleted.
pub async fn session_users(
    tx: &mut Tx,
    account: &str,
    session_id: &str,
    walk_id: Uuid,
    run: &RunContext,
) -> Result<Missing, StoreError> {
    unseen(tx, account, Scope::Session(session_id), walk_id, run).await
}

/// Deletes the rows of `scope` that another run marked at least [`CONFIRM_AFTER`] before this run began,
/// then marks those missed for the first time (a row marked more recently stays marked as it is). The
/// statements differ only in table and key, which are constants chosen here.
async fn unseen(
    tx: &mut Tx,
    account: &str,
    scope: Scope<'_>,
    walk_id: Uuid,
    run: &RunContext,
) -> Result<Missing, StoreError> {
    let (table, key, returned) = match scope {
        Scope::Month(_) => ("zoom_sdk_sessions", "month", "session_id"),
        Scope::Session(_) => ("zoom_sdk_session_users", "session_id", "user_id"),
    };
    let delete = format!(
        "DELETE FROM rollcall.{table}
          WHERE account = $1 AND {key} = $2 AND walk_id <> $3
            AND missing_since IS NOT NULL AND missing_run <> $4 AND missing_since <= $5
      RETURNING {returned}"
    );
    let mark = format!(
        "UPDATE rollcall.{table} SET missing_since = now(), missing_run = $4
          WHERE account = $1 AND {key} = $2 AND walk_id <> $3 AND missing_since IS NULL"
    );
    let bind = |sql| {
        let query = sqlx::query(sql).bind(account);
        match scope {
            Scope::Month(month) => query.bind(month),
            Scope::Session(id) => query.bind(id),
        }
        .bind(walk_id)
        .bind(run.id)
        .bind(run.started - CONFIRM_AFTER)
    };
    let confirmed = bind(&delete)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|row| sqlx::Row::try_get::<String, _>(row, 0))
        .collect::<Result<Vec<_>, _>>()?;
    let marked = bind(&mark).execute(&mut **tx).await?;
    let count = format!(
        "SELECT count(*) FROM rollcall.{table}
          WHERE account = $1 AND {key} = $2 AND missing_since IS NOT NULL"
    );
    let still_missing: i64 = {
        let query = sqlx::query_scalar(&count).bind(account);
        match scope {
            Scope::Month(month) => query.bind(month),
            Scope::Session(id) => query.bind(id),
        }
        .fetch_one(&mut **tx)
        .await?
    };
    Ok(Missing {
        confirmed,
        newly_missing: marked.rows_affected(),
        still_missing,
    })
}

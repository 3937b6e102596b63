//! How a complete Video SDK walk makes the stored rows a mirror of what Zoom lists, without trusting one
//! reply, or one moment, to delete history.
//!
//! A walk that makes its window final follows the engine's rule (DESIGN principle 8, `engine::walker`):
//! [`shrink`] tells the engine what it would remove, and a walk that removes anything is not applied until
//! a walk of a run at least [`CONFIRM_AFTER`] later agrees. When the engine lets such a walk finish, the
//! rows it did not see are deleted at once ([`gone`]).
//!
//! Walks of windows that are not about to become final mirror drift as before: the Video SDK announces no
//! totals, so a row such a walk did not see is only marked missing (`missing_since`, `missing_run`) and is
//! deleted only by a complete walk of *another* run that began at least [`CONFIRM_AFTER`] after the mark
//! and misses it too. The mark is cleared whenever a walk sees the row again.

use crate::engine::RunContext;
use crate::engine::Shrink;
use crate::engine::Tx;
use crate::store::StoreError;
use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

pub use crate::engine::CONFIRM_AFTER;

/// What the mirror step of one complete walk did.
#[derive(Debug, Default)]
pub struct Missing {
    /// Rows marked by another run at least [`CONFIRM_AFTER`] before this run began, missed again: deleted.
    pub confirmed: Vec<String>,
    /// Rows missed for the first time: marked, kept.
    pub newly_missing: u64,
}

/// The rows a walk mirrors: a month's sessions, or one session's joins.
#[derive(Clone, Copy)]
pub enum Scope<'a> {
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
        "UPDATE rollcall.{table} SET missing_since = $6, missing_run = $4
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
        // The mark's instant is the run's start, on the collector's clock, like the comparison above.
        .bind(run.started)
    };
    let confirmed = bind(&delete)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|row| sqlx::Row::try_get::<String, _>(row, 0))
        .collect::<Result<Vec<_>, _>>()?;
    let marked = bind(&mark).execute(&mut **tx).await?;
    Ok(Missing {
        confirmed,
        newly_missing: marked.rows_affected(),
    })
}

/// The keys of a walk's last page, not written yet when the engine asks what the walk would remove.
pub enum LastPage<'a> {
    Sessions(&'a [String]),
    /// Joins: user ids and the join times of the key, in the same order.
    Joins(&'a [String], &'a [DateTime<Utc>]),
}

/// What applying the walk `walk_id` would remove from `scope`: the stored rows neither tagged by the walk's
/// earlier pages nor on its last page. `None` when it removes nothing.
pub async fn shrink(
    tx: &mut Tx,
    account: &str,
    scope: Scope<'_>,
    walk_id: Uuid,
    last: LastPage<'_>,
) -> Result<Option<Shrink>, StoreError> {
    let (stored, key_filter) = match scope {
        Scope::Month(_) => (
            "SELECT session_id AS k1, NULL::timestamptz AS k2, walk_id FROM rollcall.zoom_sdk_sessions
              WHERE account = $1 AND month = $2",
            "(SELECT unnest($4::text[]) AS k1, NULL::timestamptz AS k2)",
        ),
        Scope::Session(_) => (
            "SELECT user_id AS k1, join_time AS k2, walk_id FROM rollcall.zoom_sdk_session_users
              WHERE account = $1 AND session_id = $2",
            "(SELECT * FROM UNNEST($4::text[], $5::timestamptz[]) AS l(k1, k2))",
        ),
    };
    let sql = format!(
        "WITH stored AS ({stored}), last AS {key_filter}
         SELECT (SELECT count(*) FROM stored),
                (SELECT count(*) FROM stored s
                  WHERE s.walk_id IS DISTINCT FROM $3
                    AND NOT EXISTS (SELECT 1 FROM last l
                                     WHERE l.k1 = s.k1 AND l.k2 IS NOT DISTINCT FROM s.k2)),
                (SELECT count(*) FROM (SELECT k1, k2 FROM stored WHERE walk_id = $3
                                       UNION SELECT k1, k2 FROM last) AS walked)"
    );
    let query = sqlx::query_as::<_, (i64, i64, i64)>(&sql).bind(account);
    let query = match scope {
        Scope::Month(month) => query.bind(month),
        Scope::Session(id) => query.bind(id),
    }
    .bind(walk_id);
    let query = match last {
        LastPage::Sessions(ids) => query.bind(ids).bind(None::<Vec<DateTime<Utc>>>),
        LastPage::Joins(ids, joins) => query.bind(ids).bind(Some(joins)),
    };
    let (stored, removed, walked) = query.fetch_one(&mut **tx).await?;
    Ok((removed > 0).then_some(Shrink { stored, walked }))
}

/// Deletes the rows of `scope` that the finalizing walk `walk_id` did not see, marked or not: the engine
/// lets such a walk finish only when it removes nothing or a run at least [`CONFIRM_AFTER`] after the
/// first walk that would have removed them agrees. Returns the deleted keys (session ids, or user ids).
pub async fn gone(
    tx: &mut Tx,
    account: &str,
    scope: Scope<'_>,
    walk_id: Uuid,
) -> Result<Vec<String>, StoreError> {
    let (table, key, returned) = match scope {
        Scope::Month(_) => ("zoom_sdk_sessions", "month", "session_id"),
        Scope::Session(_) => ("zoom_sdk_session_users", "session_id", "user_id"),
    };
    let sql = format!(
        "DELETE FROM rollcall.{table} WHERE account = $1 AND {key} = $2 AND walk_id IS DISTINCT FROM $3
      RETURNING {returned}"
    );
    let query = sqlx::query_scalar::<_, String>(&sql).bind(account);
    let deleted = match scope {
        Scope::Month(month) => query.bind(month),
        Scope::Session(id) => query.bind(id),
    }
    .bind(walk_id)
    .fetch_all(&mut **tx)
    .await?;
    Ok(deleted)
}

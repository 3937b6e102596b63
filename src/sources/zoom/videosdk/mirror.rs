//! How a complete Video SDK walk makes the stored rows a mirror of what Zoom lists, without trusting one
//! reply, or one moment, to delete history.
//!
//! The Video SDK announces no totals, so no single walk proves a session or a join gone: every walk, not
//! only the one that settles its window, follows the engine's rule (`engine::walker`). [`shrink`] tells the
//! engine what the walk would remove; a walk that removes anything is not applied until a walk of a run at
//! least `engine::CONFIRM_AFTER` later agrees, and a walk that lists the rows again clears the dispute.
//! When the engine lets a walk finish, the rows it did not see are deleted at once ([`gone`]).

use crate::engine::{Shrink, StoredRows, Tx};
use crate::store::StoreError;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use uuid::Uuid;

/// The rows a walk mirrors: a month's sessions, or one session's joins.
#[derive(Clone, Copy)]
pub enum Scope<'a> {
    Month(NaiveDate),
    Session(&'a str),
}

/// The rows of `scope`, for the engine to set aside before a walk that settles them.
pub fn stored_rows(account: &str, scope: Scope<'_>) -> StoredRows {
    match scope {
        Scope::Month(month) => StoredRows {
            table: "zoom_sdk_sessions",
            key: &["account", "session_id"],
            scope: vec![("account", json!(account)), ("month", json!(month))],
            counts: &[],
        },
        Scope::Session(id) => StoredRows {
            table: "zoom_sdk_session_users",
            key: &["account", "session_id", "user_id", "join_time"],
            scope: vec![("account", json!(account)), ("session_id", json!(id))],
            counts: &[],
        },
    }
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

/// Deletes the rows of `scope` that the walk `walk_id` did not see: the engine lets a walk finish only
/// when it removes nothing or a run at least 12 hours after the first walk that would have removed them
/// agrees. Returns the deleted keys (session ids, or user ids).
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

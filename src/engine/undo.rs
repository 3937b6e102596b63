//! What a finalizing walk's pages overwrite, set aside so that a walk which is not applied changes nothing.
//!
//! A walk writes each page with its checkpoint, so a crash loses nothing; but a walk that makes a window
//! final may turn out, at its last page, to shrink what is stored, and then none of it may stand, earlier
//! pages included. Before its first page is written, the window's stored rows are copied here in that
//! page's transaction (surviving a crash with the checkpoint); a walk that is applied drops the copy, one
//! that is not (disputed, failed, unreachable) puts the rows back exactly, in the transaction that records
//! it. The first walk to write wins: a walk restarted from page 1 or resumed by another process keeps the
//! copy of what was stored before any of them.
//!
//! Rows are copied as `to_jsonb(row)` and rebuilt with `jsonb_populate_record`, so a column added by a
//! later migration is carried over too. That round trip turns a JSON `null` held in a `jsonb` column into
//! SQL NULL; rollcall never stores JSON `null` (a served `null` is stored as SQL NULL), so it is exact.

use super::Tx;
use crate::store::StoreError;
use serde_json::Value;

/// The rows of one table that a walk of a window writes: what is set aside before it.
#[derive(Clone, Debug)]
pub struct StoredRows {
    /// A table of schema `rollcall`.
    pub table: &'static str,
    /// Its primary key.
    pub key: &'static [&'static str],
    /// The columns, with their values, that select the window's rows.
    pub scope: Vec<(&'static str, Value)>,
    /// Values a walk that makes the window final must not lower on its own word (a number stored and no
    /// longer served counts as lowered). Empty: only removed rows count.
    pub counts: &'static [&'static str],
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl StoredRows {
    fn table(&self) -> String {
        format!("rollcall.{}", ident(self.table))
    }

    fn scope_json(&self) -> Value {
        Value::Object(
            self.scope
                .iter()
                .map(|(column, value)| ((*column).to_string(), value.clone()))
                .collect(),
        )
    }

    /// `a.c = b.c AND …` over `columns`.
    fn equal<'a>(a: &str, b: &str, columns: impl Iterator<Item = &'a str>) -> String {
        columns
            .map(|c| format!("{a}.{c} = {b}.{c}", c = ident(c)))
            .collect::<Vec<_>>()
            .join(" AND ")
    }
}

/// Copies the stored rows of `sets` for `window_id`, unless a copy is already held.
pub async fn set_aside(tx: &mut Tx, window_id: i64, sets: &[StoredRows]) -> Result<(), StoreError> {
    if sets.is_empty() {
        return Ok(());
    }
    let fresh = sqlx::query(
        "INSERT INTO rollcall.walk_undo (window_id) VALUES ($1) ON CONFLICT (window_id) DO NOTHING",
    )
    .bind(window_id)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    if !fresh {
        return Ok(());
    }
    for set in sets {
        let sql = format!(
            "INSERT INTO rollcall.walk_undo_rows (window_id, tbl, row)
             SELECT $1, $2, to_jsonb(t) FROM {table} t, jsonb_populate_record(NULL::{table}, $3) s
              WHERE {scope}",
            table = set.table(),
            scope = StoredRows::equal("t", "s", set.scope.iter().map(|(c, _)| *c)),
        );
        sqlx::query(&sql)
            .bind(window_id)
            .bind(set.table)
            .bind(set.scope_json())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// What the rows set aside for `window_id` have become: how many there are, and how many of them are now
/// stored with a lower value of one of their `counts`.
pub async fn lowered(
    tx: &mut Tx,
    window_id: i64,
    sets: &[StoredRows],
) -> Result<(i64, i64), StoreError> {
    let (mut held, mut lowered) = (0, 0);
    for set in sets {
        let lower = if set.counts.is_empty() {
            "false".to_string()
        } else {
            set.counts
                .iter()
                .map(|c| format!("coalesce(t.{c}, -1) < coalesce(s.{c}, -1)", c = ident(c)))
                .collect::<Vec<_>>()
                .join(" OR ")
        };
        let sql = format!(
            "SELECT count(*), count(*) FILTER (WHERE {lower})
               FROM rollcall.walk_undo_rows u
              CROSS JOIN LATERAL jsonb_populate_record(NULL::{table}, u.row) s
               LEFT JOIN {table} t ON {key}
              WHERE u.window_id = $1 AND u.tbl = $2",
            table = set.table(),
            key = StoredRows::equal("t", "s", set.key.iter().copied()),
        );
        let (rows, lower): (i64, i64) = sqlx::query_as(&sql)
            .bind(window_id)
            .bind(set.table)
            .fetch_one(&mut **tx)
            .await?;
        held += rows;
        lowered += lower;
    }
    Ok((held, lowered))
}

/// Puts the rows set aside for `window_id` back as they were (rows the walk added stay) and drops the
/// copy. Nothing happens when no copy is held.
pub async fn put_back(tx: &mut Tx, window_id: i64, sets: &[StoredRows]) -> Result<u64, StoreError> {
    if sets.is_empty() {
        return Ok(0);
    }
    let held: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM rollcall.walk_undo WHERE window_id = $1)")
            .bind(window_id)
            .fetch_one(&mut **tx)
            .await?;
    if !held {
        return Ok(0);
    }
    let mut restored = 0;
    for set in sets {
        let delete = format!(
            "DELETE FROM {table} t
              USING rollcall.walk_undo_rows u, jsonb_populate_record(NULL::{table}, u.row) s
              WHERE u.window_id = $1 AND u.tbl = $2 AND {key}",
            table = set.table(),
            key = StoredRows::equal("t", "s", set.key.iter().copied()),
        );
        sqlx::query(&delete)
            .bind(window_id)
            .bind(set.table)
            .execute(&mut **tx)
            .await?;
        let insert = format!(
            "INSERT INTO {table}
             SELECT s.* FROM rollcall.walk_undo_rows u, jsonb_populate_record(NULL::{table}, u.row) s
              WHERE u.window_id = $1 AND u.tbl = $2",
            table = set.table(),
        );
        restored += sqlx::query(&insert)
            .bind(window_id)
            .bind(set.table)
            .execute(&mut **tx)
            .await?
            .rows_affected();
    }
    discard(tx, window_id).await?;
    Ok(restored)
}

/// Drops the copy held for `window_id`: its walk is applied.
pub async fn discard(tx: &mut Tx, window_id: i64) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM rollcall.walk_undo WHERE window_id = $1")
        .bind(window_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

//! The `collection_windows` table: planning, leases, checkpoints and completion (DESIGN §3).
//!
//! Every write that follows a claim is fenced on `lease_owner`: a process whose lease was taken over can no
//! longer move the checkpoint or complete the window, even if it is still running.

use super::text::bounded_error;
use super::StoreError;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

pub use super::lease_owner::LeaseOwner;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    Reachable,
    /// The API can no longer serve this range; the reason is stored as `last_error`.
    Unreachable(String),
    /// The API serves this range only from its start on, which is not the period's own first day (the month
    /// that straddles Zoom's horizon). Planned only where the period has no window yet that was ever
    /// walked: as the horizon moves on, the window already planned keeps what it holds, and no narrower
    /// one is added beside it.
    FromDay,
}

/// A window a source wants to exist, before it is stored.
#[derive(Clone, Debug)]
pub struct PlannedWindow {
    pub scope: String,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub reach: Reach,
}

/// A window's `state` column (see its comment in the schema).
#[derive(Clone, Copy, Debug, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum WindowState {
    Pending,
    Running,
    AwaitingChildren,
    Complete,
    Failed,
    Unreachable,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Window {
    pub id: i64,
    pub account: String,
    pub stream: String,
    pub scope: String,
    pub window_start: NaiveDate,
    pub window_end: NaiveDate,
    pub state: WindowState,
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
    /// The request parameters of the current walk, fixed at its page 1.
    pub walk_params: Option<Value>,
    /// The window whose walk planned this one; it completes only with its children.
    pub parent_id: Option<i64>,
    /// Awaiting confirmation: the start of the run whose walk would have finalized this window while
    /// shrinking what is stored (see [`Dispute`]).
    pub disputed_since: Option<DateTime<Utc>>,
    pub disputed_run: Option<Uuid>,
    /// The end of what the scope names (a Video SDK session) as its parent's walk last saw it: the window
    /// may become final once that is settled, whatever its month.
    pub scope_ended_at: Option<DateTime<Utc>>,
}

/// A walk that would have made its window final while removing, zeroing or lowering something stored
/// (DESIGN principle 8): nothing of it was applied, and the window is complete but not final until a walk
/// of a run at least 12 hours later agrees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dispute {
    /// The start of the run that disputed the window. A window disputed again keeps its first mark.
    pub since: DateTime<Utc>,
    pub run: Uuid,
    /// What is stored for the window, and what the walk saw, in the source's unit (rows, days).
    pub stored: i64,
    pub walked: i64,
}

/// Which edge of a window falls off the API's horizon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edge {
    /// Zoom months: a month whose first day is before the horizon is no longer served whole.
    Start,
    /// Rocket.Chat blocks: a block whose every day is before the oldest day held.
    End,
}

/// Windows that have fallen before the horizon since they were planned (time passing, an outage, a
/// smaller `horizon_days`): they are retired, whatever their state, unless they are complete and final.
#[derive(Clone, Debug)]
pub struct Retirement {
    pub edge: Edge,
    pub before: NaiveDate,
    pub reason: String,
}

const COLUMNS: &str = "id, account, stream, scope, window_start, window_end, state, is_final, pages, rows, \
    attempts, next_page_token, token_issued_at, expected_total, last_error, started_at, completed_at, \
    lease_owner, lease_until, walk_id, walk_params, parent_id, disputed_since, disputed_run, scope_ended_at";

/// The windows that may be retired or recorded unreachable: complete and final history is never touched,
/// everything else stops being requested. `table` qualifies the columns where an upsert needs it.
fn retirable(table: &str) -> String {
    format!(
        "{table}.state <> 'unreachable' AND NOT ({table}.state = 'complete' AND {table}.is_final)"
    )
}

/// Records the windows a source wants. Existing windows keep their state, except that a window the API can
/// no longer serve becomes `unreachable` unless it is complete and final (its rows are kept either way).
pub async fn plan(
    pool: &PgPool,
    account: &str,
    stream: &str,
    windows: &[PlannedWindow],
) -> Result<(), StoreError> {
    // The reachable windows go in one statement: with hundreds of accounts planning at the start of a
    // run, a round trip per window would keep the pool busy long enough to delay every account's first
    // walk.
    let (mut scopes, mut starts, mut ends) = (Vec::new(), Vec::new(), Vec::new());
    for w in windows {
        if let Reach::Reachable = w.reach {
            scopes.push(w.scope.as_str());
            starts.push(w.start);
            ends.push(w.end);
        }
    }
    let mut tx = pool.begin().await?;
    for w in windows.iter().filter(|w| w.reach == Reach::FromDay) {
        // Windows of the same period share its end; one recorded unreachable without ever being walked
        // (an older binary planned the whole month so) holds nothing and does not count.
        sqlx::query(
            "INSERT INTO rollcall.collection_windows (account, stream, scope, window_start, window_end)
             SELECT $1, $2, $3, $4, $5
              WHERE NOT EXISTS (SELECT 1 FROM rollcall.collection_windows
                                 WHERE account = $1 AND stream = $2 AND scope = $3 AND window_end = $5
                                   AND NOT (state = 'unreachable' AND started_at IS NULL))
             ON CONFLICT DO NOTHING",
        )
        .bind(account)
        .bind(stream)
        .bind(&w.scope)
        .bind(w.start)
        .bind(w.end)
        .execute(&mut *tx)
        .await?;
    }
    if !scopes.is_empty() {
        sqlx::query(
            "INSERT INTO rollcall.collection_windows (account, stream, scope, window_start, window_end)
             SELECT $1, $2, w.scope, w.window_start, w.window_end
               FROM UNNEST($3::text[], $4::date[], $5::date[]) AS w (scope, window_start, window_end)
             ON CONFLICT DO NOTHING",
        )
        .bind(account)
        .bind(stream)
        .bind(&scopes)
        .bind(&starts)
        .bind(&ends)
        .execute(&mut *tx)
        .await?;
    }
    for w in windows {
        if let Reach::Unreachable(reason) = &w.reach {
            let sql = format!(
                "INSERT INTO rollcall.collection_windows
                   (account, stream, scope, window_start, window_end, state, last_error)
                 VALUES ($1, $2, $3, $4, $5, 'unreachable', $6)
                 ON CONFLICT (account, stream, scope, window_start, window_end) DO UPDATE
                   SET state = 'unreachable', last_error = EXCLUDED.last_error, next_page_token = NULL,
                       token_issued_at = NULL, lease_owner = NULL, lease_until = NULL, updated_at = now()
                 WHERE {}",
                retirable("collection_windows")
            );
            sqlx::query(&sql)
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
    tx.commit().await?;
    refresh_statistics(pool).await
}

/// Refreshes the planner's statistics of `collection_windows` once many of its rows changed since they were
/// last gathered, as autovacuum would (50 rows plus a tenth of the table) but without waiting for it, or
/// when it is off. A first collection plans tens of thousands of children between two streams' starts;
/// with the statistics of a near-empty table the planner sorts them all at every claim instead of reading
/// the claim-order index.
async fn refresh_statistics(pool: &PgPool) -> Result<(), StoreError> {
    let stale: Option<bool> = sqlx::query_scalar(
        "SELECT s.n_mod_since_analyze > 50 + 0.1 * greatest(c.reltuples, 0)
           FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
          WHERE s.relid = 'rollcall.collection_windows'::regclass",
    )
    .fetch_optional(pool)
    .await?;
    if stale != Some(true) {
        return Ok(());
    }
    // Streams start together: one of them gathers, the others go on with what it leaves.
    let mut tx = pool.begin().await?;
    let first: bool = sqlx::query_scalar(
        "SELECT pg_try_advisory_xact_lock(hashtext('rollcall.collection_windows'))",
    )
    .fetch_one(&mut *tx)
    .await?;
    if first {
        sqlx::query("ANALYZE rollcall.collection_windows")
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Retires the windows of (account, stream) that fell before the horizon: `unreachable`, never requested
/// again, rows kept. A lease on such a window is dropped too: the API will refuse it anyway, and the fenced
/// writes of a walker still holding it fail as a lost lease. Returns how many were retired.
pub async fn retire(
    pool: &PgPool,
    account: &str,
    stream: &str,
    rule: &Retirement,
) -> Result<u64, StoreError> {
    let edge = match rule.edge {
        Edge::Start => "window_start",
        Edge::End => "window_end",
    };
    let sql = format!(
        "UPDATE rollcall.collection_windows w
            SET state = 'unreachable', last_error = $4, next_page_token = NULL, token_issued_at = NULL,
                lease_owner = NULL, lease_until = NULL, updated_at = now()
          WHERE account = $1 AND stream = $2 AND {edge} < $3 AND {}",
        retirable("w")
    );
    let done = sqlx::query(&sql)
        .bind(account)
        .bind(stream)
        .bind(rule.before)
        .bind(bounded_error(&rule.reason))
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
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
               AND (state = 'running' OR started_at IS NULL OR coalesce(walked_in_run, started_at) < $5)
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

/// Whether any window of (account, stream) still needs a walk in this run, whoever holds it.
pub async fn any_due(
    pool: &PgPool,
    account: &str,
    stream: &str,
    run_started: DateTime<Utc>,
    skip: &[i64],
) -> Result<bool, StoreError> {
    let due: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM rollcall.collection_windows
          WHERE account = $1 AND stream = $2 AND NOT is_final AND state <> 'unreachable'
            AND (state = 'running' OR started_at IS NULL OR coalesce(walked_in_run, started_at) < $3)
            AND NOT (id = ANY($4)))",
    )
    .bind(account)
    .bind(stream)
    .bind(run_started)
    .bind(skip)
    .fetch_one(pool)
    .await?;
    Ok(due)
}

/// Windows of (account, stream) that still need a walk but are leased by someone else. A lease that has
/// just run out counts too: it may have expired between a `claim_next` that found it live and this query,
/// and leaving it out would let the worker conclude there is nothing left and end, instead of claiming it.
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
            AND (state = 'running' OR started_at IS NULL OR coalesce(walked_in_run, started_at) < $4)
            AND lease_until IS NOT NULL AND lease_owner <> $3 AND NOT (id = ANY($5))",
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

/// Starts a walk from page 1 under a new walk id (rows the walk sees are stamped with it) and the request
/// parameters every page of it, and a resume, will send. One transaction with the parent's reopening, so a
/// kill between the two cannot leave a list `complete` over a child that is walked again.
pub async fn begin_walk(
    pool: &PgPool,
    id: i64,
    owner: &LeaseOwner,
    walk_id: Uuid,
    params: &Value,
    run_started: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    begin_walk_in(&mut tx, id, owner, walk_id, params, run_started).await?;
    tx.commit().await?;
    Ok(())
}

/// [`begin_walk`] in the caller's transaction. The child's row is updated first, then the parent reopened
/// by a statement of its own: a sibling that completes the parent at the same moment either locked this
/// child before (this update waits for it, and the reopening then sees the parent it completed) or finds
/// this child locked and leaves the parent waiting (see [`complete_parent_if_ready`]).
pub async fn begin_walk_in(
    tx: &mut Transaction<'_, Postgres>,
    id: i64,
    owner: &LeaseOwner,
    walk_id: Uuid,
    params: &Value,
    run_started: DateTime<Utc>,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE rollcall.collection_windows
            SET state = 'running', walk_id = $3, walk_params = $4, pages = 0, rows = 0,
                next_page_token = NULL, token_issued_at = NULL, expected_total = NULL, started_at = now(),
                walked_in_run = $5, attempts = attempts + 1, last_error = NULL, updated_at = now()
          WHERE id = $1 AND lease_owner = $2",
    )
    .bind(id)
    .bind(&owner.id)
    .bind(walk_id)
    .bind(params)
    .bind(run_started)
    .execute(&mut **tx)
    .await?;
    fenced(done.rows_affected())?;
    reopen_parent(&mut **tx, id).await
}

/// Whether every child of `parent` (but `except`) is complete or retired, judged from the children's
/// latest committed rows: they are locked `FOR SHARE SKIP LOCKED`, so a child that another transaction is
/// changing right now (beginning a walk, failing) is skipped and counts as not done, and none of the
/// children locked can begin a walk until this transaction ends. A plain check, even in the statement that
/// sets the parent, is not enough under READ COMMITTED: it reads the children from a snapshot that cannot
/// see a child whose walk began a moment ago and is not committed yet. Skipping instead of waiting means
/// two last children completing at once never wait for each other (no deadlock); they may both leave the
/// parent waiting, and [`settle_parents`] completes it at the end of the stream's run.
async fn children_done(
    tx: &mut Transaction<'_, Postgres>,
    parent: i64,
    except: Option<i64>,
) -> Result<bool, StoreError> {
    let (siblings, locked_done): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM rollcall.collection_windows
                  WHERE parent_id = $1 AND id IS DISTINCT FROM $2),
                (SELECT count(*) FROM (SELECT state FROM rollcall.collection_windows
                                        WHERE parent_id = $1 AND id IS DISTINCT FROM $2
                                          FOR SHARE SKIP LOCKED) AS locked
                  WHERE state IN ('complete', 'unreachable'))",
    )
    .bind(parent)
    .bind(except)
    .fetch_one(&mut **tx)
    .await?;
    Ok(locked_done == siblings)
}

/// A child that is walked again or fails makes its parent incomplete until it completes again: the
/// parent's `complete` must never outlive a child's.
async fn reopen_parent<'e, E>(executor: E, child: i64) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = Postgres>,
{
    sqlx::query(
        "UPDATE rollcall.collection_windows p
            SET state = 'awaiting_children', updated_at = now()
           FROM rollcall.collection_windows c
          WHERE c.id = $1 AND p.id = c.parent_id AND p.state = 'complete'",
    )
    .bind(child)
    .execute(executor)
    .await?;
    Ok(())
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

/// How a verified walk ended: the window is complete, or it waits for children it planned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    Complete,
    AwaitingChildren,
}

/// Records a verified walk, in its last page's transaction. A window with a child that is not complete
/// (or retired) becomes `awaiting_children`, never `complete`: `collection_windows` is what admins read
/// first, and a `kill -9` between a list and its children must not leave the list looking done. A child's
/// completion completes its parent once it was the last one missing. `dispute` records a walk that was
/// not applied (the window stays not final, awaiting confirmation); `None` clears any earlier mark.
pub async fn complete(
    tx: &mut Transaction<'_, Postgres>,
    id: i64,
    owner: &LeaseOwner,
    is_final: bool,
    rows: i64,
    dispute: Option<&Dispute>,
) -> Result<Completion, StoreError> {
    let children_done = children_done(tx, id, None).await?;
    let done: Option<(String, Option<i64>)> = sqlx::query_as(
        "UPDATE rollcall.collection_windows w
            SET state = CASE WHEN $9 THEN 'complete' ELSE 'awaiting_children' END,
                is_final = $3, rows = $4, completed_at = now(), next_page_token = NULL,
                token_issued_at = NULL, last_error = NULL, lease_owner = NULL, lease_until = NULL,
                disputed_since = CASE WHEN $5::timestamptz IS NULL THEN NULL
                                      ELSE coalesce(w.disputed_since, $5) END,
                disputed_run = CASE WHEN $5::timestamptz IS NULL THEN NULL
                                    ELSE coalesce(w.disputed_run, $6) END,
                stored_count = $7, walked_count = $8, updated_at = now()
          WHERE id = $1 AND lease_owner = $2
      RETURNING state, parent_id",
    )
    .bind(id)
    .bind(&owner.id)
    .bind(is_final)
    .bind(rows)
    .bind(dispute.map(|d| d.since))
    .bind(dispute.map(|d| d.run))
    .bind(dispute.map(|d| d.stored))
    .bind(dispute.map(|d| d.walked))
    .bind(children_done)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((state, parent)) = done else {
        return Err(StoreError::LeaseLost);
    };
    if let Some(parent) = parent {
        complete_parent_if_ready(tx, parent, id).await?;
    }
    Ok(if state == "complete" {
        Completion::Complete
    } else {
        Completion::AwaitingChildren
    })
}

/// Completes `parent` if it waits for children and none is missing any more, after `child` (changed in
/// this transaction) was recorded. The cheap check comes first, without locks: while another child is
/// plainly not done (the usual case, hundreds of children finishing one after another), nothing is locked
/// and children never queue on each other. Only a child that looks like the last one checks again with
/// the siblings locked ([`children_done`]).
async fn complete_parent_if_ready(
    tx: &mut Transaction<'_, Postgres>,
    parent: i64,
    child: i64,
) -> Result<(), StoreError> {
    let waiting: bool = sqlx::query_scalar(
        "SELECT p.state = 'awaiting_children'
                AND NOT EXISTS (SELECT 1 FROM rollcall.collection_windows c
                                 WHERE c.parent_id = p.id AND c.id <> $2
                                   AND c.state NOT IN ('complete', 'unreachable'))
           FROM rollcall.collection_windows p WHERE p.id = $1",
    )
    .bind(parent)
    .bind(child)
    .fetch_optional(&mut **tx)
    .await?
    .unwrap_or(false);
    if !waiting || !children_done(tx, parent, Some(child)).await? {
        return Ok(());
    }
    sqlx::query(
        "UPDATE rollcall.collection_windows
            SET state = 'complete', completed_at = now(), updated_at = now()
          WHERE id = $1 AND state = 'awaiting_children'",
    )
    .bind(parent)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Completes every window of `account` that waits for children none of which is missing any more: the
/// safety net behind [`complete_parent_if_ready`], which leaves a parent waiting when its last children
/// finish at the same moment. The candidates' children are locked first (`FOR SHARE`, waiting for any
/// child that is being changed), then the update checks them again in a statement of its own, whose
/// snapshot sees them as locked: a child that began a walk meanwhile keeps its parent waiting. Returns
/// how many.
pub async fn settle_parents(pool: &PgPool, account: &str) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    let candidates: Vec<i64> = sqlx::query_scalar(
        "SELECT p.id FROM rollcall.collection_windows p
          WHERE p.account = $1 AND p.state = 'awaiting_children'
            AND NOT EXISTS (SELECT 1 FROM rollcall.collection_windows c
                             WHERE c.parent_id = p.id AND c.state NOT IN ('complete', 'unreachable'))",
    )
    .bind(account)
    .fetch_all(&mut *tx)
    .await?;
    if candidates.is_empty() {
        tx.commit().await?;
        return Ok(0);
    }
    sqlx::query(
        "SELECT 1 FROM rollcall.collection_windows WHERE parent_id = ANY($1) ORDER BY id FOR SHARE",
    )
    .bind(&candidates)
    .execute(&mut *tx)
    .await?;
    let done = sqlx::query(
        "UPDATE rollcall.collection_windows p
            SET state = 'complete', completed_at = now(), updated_at = now()
          WHERE p.id = ANY($1) AND p.state = 'awaiting_children'
            AND NOT EXISTS (SELECT 1 FROM rollcall.collection_windows c
                             WHERE c.parent_id = p.id AND c.state NOT IN ('complete', 'unreachable'))",
    )
    .bind(&candidates)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

/// Plans child windows of `parent` (one per scope, the parent's bounds) in the parent page's transaction,
/// so a stored row can never lack its pending child. Existing children keep their state, except one
/// recorded `unreachable` by [`gone`]: the parent listing it again is new evidence that the API has it,
/// so it is `pending` again and asked once more (in the same run, since children walk after their
/// parent). Horizon retirement cannot be undone here: a parent walked is within the horizon, and so
/// are its children, which share its bounds.
///
/// `ended` holds, in the order of `scopes`, the end of what each scope names as the parent's page served
/// it. A child whose end changed (a later end, or one appearing) is no longer final: what it holds may
/// have grown since it was walked, so it is walked again (in this run).
pub async fn plan_children(
    tx: &mut Transaction<'_, Postgres>,
    parent: &Window,
    stream: &str,
    scopes: &[String],
    ended: &[Option<DateTime<Utc>>],
) -> Result<(), StoreError> {
    if scopes.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO rollcall.collection_windows
           (account, stream, scope, window_start, window_end, parent_id, scope_ended_at)
         SELECT $1, $2, c.scope, $3, $4, $5, c.ended FROM UNNEST($6::text[], $7::timestamptz[]) AS c (scope, ended)
         ON CONFLICT (account, stream, scope, window_start, window_end)
           DO UPDATE SET parent_id = COALESCE(collection_windows.parent_id, EXCLUDED.parent_id),
                         state = CASE WHEN collection_windows.state = 'unreachable' THEN 'pending'
                                      ELSE collection_windows.state END,
                         is_final = collection_windows.is_final
                                    AND collection_windows.scope_ended_at IS NOT DISTINCT FROM EXCLUDED.scope_ended_at,
                         scope_ended_at = EXCLUDED.scope_ended_at,
                         updated_at = now()
            WHERE collection_windows.parent_id IS NULL OR collection_windows.state = 'unreachable'
               OR collection_windows.scope_ended_at IS DISTINCT FROM EXCLUDED.scope_ended_at",
    )
    .bind(&parent.account)
    .bind(stream)
    .bind(parent.window_start)
    .bind(parent.window_end)
    .bind(parent.id)
    .bind(scopes)
    .bind(ended)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Drops the child windows of `parent` with these scopes (their rows went with them upstream).
pub async fn forget_children(
    tx: &mut Transaction<'_, Postgres>,
    parent: &Window,
    scopes: &[String],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM rollcall.collection_windows WHERE parent_id = $1 AND scope = ANY($2)")
        .bind(parent.id)
        .bind(scopes)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Records the window `unreachable` because the API says it no longer has what the window asks for (a
/// Video SDK session Zoom no longer knows): never requested again, its rows kept, and, unlike a failure,
/// no longer holding its parent back, which completes if this was the last child it waited for.
pub async fn gone(
    tx: &mut Transaction<'_, Postgres>,
    id: i64,
    owner: &LeaseOwner,
    reason: &str,
) -> Result<(), StoreError> {
    let done: Option<(Option<i64>,)> = sqlx::query_as(
        "UPDATE rollcall.collection_windows
            SET state = 'unreachable', last_error = $3, next_page_token = NULL, token_issued_at = NULL,
                lease_owner = NULL, lease_until = NULL, updated_at = now()
          WHERE id = $1 AND lease_owner = $2
      RETURNING parent_id",
    )
    .bind(id)
    .bind(&owner.id)
    .bind(bounded_error(reason))
    .fetch_optional(&mut **tx)
    .await?;
    let Some((parent,)) = done else {
        return Err(StoreError::LeaseLost);
    };
    if let Some(parent) = parent {
        complete_parent_if_ready(tx, parent, id).await?;
    }
    Ok(())
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
    .bind(bounded_error(error))
    .execute(&mut **tx)
    .await?;
    fenced(done.rows_affected())?;
    reopen_parent(&mut **tx, id).await
}

/// Fails the window in a transaction of its own: the page's transaction was refused by PostgreSQL (a value
/// it cannot store, an index it cannot fit) and rolled back, and the stream must go on without it.
pub async fn fail_now(
    pool: &PgPool,
    id: i64,
    owner: &LeaseOwner,
    error: &str,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    fail(&mut tx, id, owner, error).await?;
    tx.commit().await?;
    Ok(())
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
    .bind(bounded_error(error))
    .execute(pool)
    .await?;
    Ok(())
}

/// Windows of (account, stream) that are due but not complete: what makes `collect` exit 1.
pub async fn incomplete_due(pool: &PgPool, account: &str, stream: &str) -> Result<i64, StoreError> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rollcall.collection_windows
          WHERE account = $1 AND stream = $2 AND state NOT IN ('complete', 'unreachable')
            AND (NOT is_final OR state = 'awaiting_children')",
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

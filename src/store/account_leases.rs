//! One replica at a time sends an account's requests. Zoom and Rocket.Chat limit an account's rate, not a
//! client's, and the pacer lives in one process: two replicas walking windows of the same account would
//! together send twice the allowed rate. So, as a Kinesis worker leases a shard, a replica leases an
//! account for as long as it walks the account's windows in a run, renews the lease while it does, and
//! releases it when it is done; another replica takes an account that is free, released, or whose lease
//! ran out (its holder died).

use super::lease_owner::LeaseOwner;
use super::StoreError;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// The answer to asking for an account's lease.
#[derive(Clone, Debug, PartialEq)]
pub enum Claim {
    /// Ours now. `quiet_for` is how long the account has sent nothing, as far as the table can tell:
    /// `None` when no other replica held it recently (never held, or released long ago).
    Held {
        quiet_for: Option<std::time::Duration>,
    },
    /// Another live replica holds it until `until`.
    Elsewhere {
        holder: String,
        until: DateTime<Utc>,
    },
}

/// How long after a graceful release the next holder still has to mind the last holder's requests: the
/// longest rate window we pace for (Zoom's per-minute category).
const RECENT: std::time::Duration = std::time::Duration::from_secs(60);

/// Takes the account's lease if it is free, released, expired, ours already, or held by `dead` (a holder
/// proven gone). One transaction with the row locked, so two replicas cannot both win.
pub async fn claim(
    pool: &PgPool,
    account: &str,
    owner: &LeaseOwner,
    dead: Option<&str>,
) -> Result<Claim, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO rollcall.account_leases (account) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(account)
        .execute(&mut *tx)
        .await?;
    type Row = (
        Option<String>,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        DateTime<Utc>,
    );
    let (holder, until, released, now): Row = sqlx::query_as(
        "SELECT lease_owner, lease_until, released_at, now() FROM rollcall.account_leases
          WHERE account = $1 FOR UPDATE",
    )
    .bind(account)
    .fetch_one(&mut *tx)
    .await?;
    let live_elsewhere = match (&holder, until) {
        (Some(holder), Some(until)) => {
            holder != &owner.id && until >= now && dead != Some(holder.as_str())
        }
        _ => false,
    };
    if live_elsewhere {
        tx.rollback().await?;
        return Ok(Claim::Elsewhere {
            holder: holder.unwrap_or_default(),
            until: until.unwrap_or(now),
        });
    }
    let quiet_for = match (&holder, until) {
        // Taken from a holder that did not let go (it died, or its lease ran out): it may have sent a
        // request a moment ago.
        (Some(previous), Some(_)) if previous != &owner.id => Some(std::time::Duration::ZERO),
        _ => released
            .and_then(|at| (now - at).to_std().ok())
            .filter(|quiet| *quiet < RECENT),
    };
    sqlx::query(
        "UPDATE rollcall.account_leases
            SET lease_owner = $2, lease_until = now() + make_interval(secs => $3),
                acquired_at = CASE WHEN lease_owner = $2 THEN acquired_at ELSE now() END,
                updated_at = now()
          WHERE account = $1",
    )
    .bind(account)
    .bind(&owner.id)
    .bind(owner.lease_secs as f64)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Claim::Held { quiet_for })
}

/// Renews every lease `owner` holds among `accounts`; returns the accounts it still holds (any missing
/// was lost: taken over after it ran out).
pub async fn renew(
    pool: &PgPool,
    owner: &LeaseOwner,
    accounts: &[String],
) -> Result<Vec<String>, StoreError> {
    let renewed: Vec<String> = sqlx::query_scalar(
        "UPDATE rollcall.account_leases
            SET lease_until = now() + make_interval(secs => $3), updated_at = now()
          WHERE lease_owner = $1 AND account = ANY($2)
        RETURNING account",
    )
    .bind(&owner.id)
    .bind(accounts)
    .bind(owner.lease_secs as f64)
    .fetch_all(pool)
    .await?;
    Ok(renewed)
}

/// Lets go of the account (fenced on the owner), noting when, so the next holder can mind our last
/// requests.
pub async fn release(pool: &PgPool, account: &str, owner: &LeaseOwner) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE rollcall.account_leases
            SET lease_owner = NULL, lease_until = NULL, released_at = now(), updated_at = now()
          WHERE account = $1 AND lease_owner = $2",
    )
    .bind(account)
    .bind(&owner.id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Who holds which account now (live leases only), for `status`.
pub async fn holders(pool: &PgPool) -> Result<Vec<(String, String, DateTime<Utc>)>, StoreError> {
    let rows = sqlx::query_as(
        "SELECT account, lease_owner, lease_until FROM rollcall.account_leases
          WHERE lease_owner IS NOT NULL AND lease_until >= now() ORDER BY account",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// Records this process (its replica name, `host:pid`) as a collector (or renews it), and forgets
/// members whose heartbeat is older than `lease_secs` (dead or stopped). A process, not a run: a daemon
/// between ticks still counts, so replicas that start on the same tick already see each other.
pub async fn heartbeat(pool: &PgPool, lease_secs: u64) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO rollcall.collector_members (owner) VALUES ($1)
         ON CONFLICT (owner) DO UPDATE SET heartbeat_at = now()",
    )
    .bind(LeaseOwner::this_replica())
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "DELETE FROM rollcall.collector_members
          WHERE heartbeat_at < now() - make_interval(secs => $1)",
    )
    .bind(lease_secs as f64)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// This process stops collecting (a daemon's shutdown, the end of `collect`): the others' fair share grows
/// at once instead of after the heartbeat runs out.
pub async fn leave(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM rollcall.collector_members WHERE owner = $1")
        .bind(LeaseOwner::this_replica())
        .execute(pool)
        .await?;
    Ok(())
}

/// How many processes collect now (heartbeat within a lease), at least 1.
pub async fn members(pool: &PgPool, lease_secs: u64) -> Result<i64, StoreError> {
    let members: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rollcall.collector_members
          WHERE heartbeat_at >= now() - make_interval(secs => $1)",
    )
    .bind(lease_secs as f64)
    .fetch_one(pool)
    .await?;
    Ok(members.max(1))
}

/// The live holder of `account`'s lease, if any.
pub async fn holder(
    pool: &PgPool,
    account: &str,
) -> Result<Option<(String, DateTime<Utc>)>, StoreError> {
    let row = sqlx::query_as(
        "SELECT lease_owner, lease_until FROM rollcall.account_leases
          WHERE account = $1 AND lease_owner IS NOT NULL AND lease_until >= now()",
    )
    .bind(account)
    .fetch_optional(pool)
    .await?;
    Ok(row)
}

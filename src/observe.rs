//! Prometheus metrics (DESIGN §6): every name is prefixed `rollcall_`, and labels stay low-cardinality
//! (account, stream, category, outcome; never user or session ids). Without an installed recorder (plain
//! `collect`) the calls are no-ops.
//!
//! Replicas share one database but count their own requests, rows and windows, so every per-process
//! counter carries `replica` (`host:pid`, the stable part of the lease owner id: see
//! [`LeaseOwner::this_replica`]) and `rollcall_replica_info{replica} 1` names the process. The gauges read
//! from PostgreSQL are the same shared truth on every replica and carry no replica label.

use crate::store::lease_owner::LeaseOwner;
use metrics::{counter, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sqlx::PgPool;
use std::sync::OnceLock;

/// This process's replica name, computed once: the host name and pid do not change while it runs.
fn replica() -> &'static str {
    static REPLICA: OnceLock<String> = OnceLock::new();
    REPLICA.get_or_init(LeaseOwner::this_replica)
}

pub fn install() -> Option<PrometheusHandle> {
    match PrometheusBuilder::new().install_recorder() {
        Ok(handle) => {
            gauge!("rollcall_replica_info", "replica" => replica()).set(1.0);
            Some(handle)
        }
        Err(err) => {
            tracing::warn!(error = %err, "metrics recorder not installed");
            None
        }
    }
}

/// One API response (or transport failure) per call; `outcome` is the status class or `transport`.
pub fn request(account: &str, category: &'static str, outcome: &'static str) {
    counter!("rollcall_requests_total", "replica" => replica(), "account" => account.to_string(), "category" => category, "outcome" => outcome)
        .increment(1);
}

pub fn status_outcome(status: u16) -> &'static str {
    match status {
        200..=299 => "ok",
        429 => "rate_limited",
        400..=499 => "client_error",
        500..=599 => "server_error",
        _ => "other",
    }
}

pub fn rows_upserted(account: &str, stream: &str, rows: i64) {
    counter!("rollcall_rows_upserted_total", "replica" => replica(), "account" => account.to_string(), "stream" => stream.to_string())
        .increment(rows.max(0) as u64);
}

pub fn window_finished(account: &str, stream: &str, outcome: &'static str) {
    counter!("rollcall_windows_finished_total", "replica" => replica(), "account" => account.to_string(), "stream" => stream.to_string(), "outcome" => outcome)
        .increment(1);
}

/// `collection_windows.state`'s values (`store::windows::WindowState`).
const WINDOW_STATES: [&str; 6] = [
    "pending",
    "running",
    "awaiting_children",
    "complete",
    "failed",
    "unreachable",
];

/// Gauges read from PostgreSQL at scrape time, so every replica reports the same shared truth.
pub async fn refresh_from_db(pool: &PgPool) -> Result<(), sqlx::Error> {
    let states: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT account, stream, state, count(*) FROM rollcall.collection_windows GROUP BY 1, 2, 3",
    )
    .fetch_all(pool)
    .await?;
    // Every state of every (account, stream), 0 where no window is in it: a gauge set only for the states
    // that have windows keeps its last value once they leave, and an alert on `state="failed"` would
    // never clear.
    let mut counts = std::collections::BTreeMap::new();
    for (account, stream, state, n) in states {
        for known in WINDOW_STATES {
            counts
                .entry((account.clone(), stream.clone(), known.to_owned()))
                .or_insert(0);
        }
        counts.insert((account, stream, state), n);
    }
    for ((account, stream, state), n) in counts {
        gauge!("rollcall_windows", "account" => account, "stream" => stream, "state" => state)
            .set(n as f64);
    }
    // Windows awaiting confirmation (DESIGN principle 8): a walk would have finalized them while
    // shrinking what is stored. Both counts, summed over the stream's disputed windows, so an alert can
    // show how much history the disputed replies would have removed. 0 for every stream without any. A
    // final window awaits nothing, even if an older binary finalized it and left its mark behind.
    let disputed: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT account, stream, count(*) FILTER (WHERE disputed_since IS NOT NULL AND NOT is_final),
                coalesce(sum(stored_count) FILTER (WHERE disputed_since IS NOT NULL AND NOT is_final), 0)::int8,
                coalesce(sum(walked_count) FILTER (WHERE disputed_since IS NOT NULL AND NOT is_final), 0)::int8
           FROM rollcall.collection_windows GROUP BY 1, 2",
    )
    .fetch_all(pool)
    .await?;
    for (account, stream, windows, stored, walked) in disputed {
        gauge!("rollcall_windows_awaiting_confirmation", "account" => account.clone(), "stream" => stream.clone())
            .set(windows as f64);
        gauge!("rollcall_awaiting_confirmation_stored", "account" => account.clone(), "stream" => stream.clone())
            .set(stored as f64);
        gauge!("rollcall_awaiting_confirmation_walked", "account" => account, "stream" => stream)
            .set(walked as f64);
    }
    let successes: Vec<(String, String, f64)> = sqlx::query_as(
        "SELECT account, stream, extract(epoch FROM max(completed_at))::float8
           FROM rollcall.collection_windows WHERE completed_at IS NOT NULL GROUP BY 1, 2",
    )
    .fetch_all(pool)
    .await?;
    for (account, stream, at) in successes {
        gauge!("rollcall_last_success_timestamp_seconds", "account" => account, "stream" => stream)
            .set(at);
    }
    let pauses: Vec<(String, bool)> =
        sqlx::query_as("SELECT account, until > now() FROM rollcall.account_pauses")
            .fetch_all(pool)
            .await?;
    for (account, paused) in pauses {
        gauge!("rollcall_account_paused", "account" => account).set(if paused { 1.0 } else { 0.0 });
    }
    // `status` may run against an older schema, but `/metrics` only runs in a migrated daemon. A day whose
    // report gave no session count (difference NULL) is not a disagreement.
    let mismatched: Vec<(String, i64)> = sqlx::query_as(
        "SELECT account, count(*) FILTER (WHERE difference <> 0)
           FROM rollcall.zoom_sdk_reconciliation GROUP BY account",
    )
    .fetch_all(pool)
    .await?;
    for (account, days) in mismatched {
        gauge!("rollcall_sdk_reconciliation_mismatched_days", "account" => account)
            .set(days as f64);
    }
    Ok(())
}

/// The budget lines (`commands::budget`): requests today by every replica, per account and category, the
/// account's daily pool, and the requests the windows still to walk need.
pub fn budget(lines: &[crate::commands::budget::CategoryBudget]) {
    for l in lines {
        gauge!("rollcall_requests_today", "account" => l.account.clone(), "category" => l.category.clone())
            .set(l.requests_today as f64);
        gauge!("rollcall_requests_left", "account" => l.account.clone(), "category" => l.category.clone())
            .set(l.requests_left as f64);
        if let Some(pool) = l.daily_pool {
            gauge!("rollcall_daily_request_pool", "account" => l.account.clone())
                .set(f64::from(pool));
        }
    }
}

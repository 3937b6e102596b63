//! Everything rollcall keeps in PostgreSQL: the pool, the migrations, the window checkpoints, the leases and
//! the account pauses. Stream-specific row upserts live with their source.

pub mod account_leases;
pub mod lease_owner;
pub mod pauses;
pub mod request_counts;
pub mod schema;
pub mod text;
pub mod tls;
pub mod windows;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Migrations applied by a newer binary are not an error (sqlx's default, `VersionMissing`, made a rolled
/// back binary crash-loop): whether this binary may run on them is the schema floor's call
/// ([`schema`]). sqlx's advisory lock stays on, so replicas that start together migrate once.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate::Migrator {
    ignore_missing: true,
    ..sqlx::migrate!("./migrations")
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database.url is not a valid PostgreSQL URL: {0}")]
    BadUrl(String),
    /// A TLS parameter of the URL names a mode or a file that cannot work.
    #[error("database.url: {0}")]
    BadTls(String),
    /// PostgreSQL (or its certificate) refused this connection in a way waiting will not heal.
    #[error("database.url: PostgreSQL cannot be used with it (sslmode={mode}): {reason}")]
    Refused { mode: &'static str, reason: String },
    /// The schema's floor is above this binary.
    #[error("{0}")]
    TooOld(Box<schema::TooOld>),
    #[error("cannot reach PostgreSQL: {0}")]
    Connect(String),
    #[error("applying migrations failed: {0}")]
    Migrate(String),
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
    #[error("the lease on the window was lost to another process; abandoning this walk")]
    LeaseLost,
    #[error("stopped by SIGTERM/SIGINT while waiting for PostgreSQL")]
    Cancelled,
    #[error("a collection worker stopped unexpectedly: {0}")]
    Task(String),
}

impl StoreError {
    /// Errors that mean "the database went away", not "the database refused this": worth waiting out.
    pub fn is_connection_loss(&self) -> bool {
        match self {
            StoreError::Connect(_) => true,
            StoreError::Query(err) => match err {
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_) => true,
                // admin_shutdown, crash_shutdown, cannot_connect_now, and the connection_exception class.
                sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                    matches!(code.as_ref(), "57P01" | "57P02" | "57P03") || code.starts_with("08")
                }),
                _ => false,
            },
            _ => false,
        }
    }
}

/// Opens a pool without holding a connection yet, so `check` and config errors surface before the database
/// is touched, and a restarting PostgreSQL does not kill the process at start.
pub fn pool(url: &SecretString, max_connections: u32) -> Result<PgPool, StoreError> {
    let options = connect_options(url)?;
    Ok(PgPoolOptions::new()
        .max_connections(max_connections.max(2))
        .acquire_timeout(Duration::from_secs(10))
        // sqlx pings every connection it hands out: a fifth round trip for each page (ping, BEGIN,
        // upsert, checkpoint, COMMIT). A connection back from a page a moment ago is alive as far as any
        // ping can tell; one idle for longer (across a PostgreSQL restart, between runs) is still tested,
        // and one that died in between fails its statement, which the walker recovers from like any
        // lost connection.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_lazy_with(options))
}

/// How long a pooled connection may sit idle before it is tested again when handed out.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// A pool whose transactions PostgreSQL refuses to let write: for `status` and `check`, which promise to
/// write nothing, so a mistake in them fails loudly instead of changing the database.
pub fn read_only_pool(url: &SecretString) -> Result<PgPool, StoreError> {
    let options = connect_options(url)?.options([("default_transaction_read_only", "on")]);
    Ok(PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy_with(options))
}

/// The URL read with its TLS parameters (see [`tls`]); errors never quote the URL, which usually holds
/// the password.
fn connect_options(url: &SecretString) -> Result<PgConnectOptions, StoreError> {
    let url = url.expose_secret();
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(StoreError::BadUrl(
            "expected postgres://user@host:port/database".into(),
        ));
    }
    Ok(tls::connect_options(url)
        .map_err(StoreError::BadTls)?
        .application_name("rollcall"))
}

/// The error for a failed connection attempt: [`StoreError::Refused`] when it cannot heal by waiting.
pub fn connect_error(pool: &PgPool, err: sqlx::Error) -> StoreError {
    match tls::lasting_failure(&err) {
        Some(reason) => StoreError::Refused {
            mode: tls::mode_name(pool.connect_options().get_ssl_mode()),
            reason,
        },
        None => StoreError::Query(err),
    }
}

/// How the database's migrations compare with the ones compiled into this binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaState {
    /// No `rollcall` schema or no migration table: nothing was ever migrated here.
    Missing,
    /// Migrated up to `have`; this binary brings migrations up to `want`.
    Behind {
        have: Option<i64>,
        want: i64,
    },
    Current {
        version: i64,
    },
    /// A newer rollcall migrated this database.
    Ahead {
        have: i64,
        want: i64,
    },
}

/// Reads the schema's version without creating anything (sqlx's migrator would create its table).
pub async fn schema_state(pool: &PgPool) -> Result<SchemaState, StoreError> {
    let (schema, table): (bool, bool) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'rollcall'),
                to_regclass('_sqlx_migrations') IS NOT NULL",
    )
    .fetch_one(pool)
    .await
    // The first query of `status` and `coverage`: a refused certificate is said as such.
    .map_err(|err| connect_error(pool, err))?;
    let want = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    if !schema {
        return Ok(SchemaState::Missing);
    }
    if !table {
        return Ok(SchemaState::Behind { have: None, want });
    }
    let have: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await?;
    Ok(match have {
        Some(have) if have == want => SchemaState::Current { version: have },
        Some(have) if have > want => SchemaState::Ahead { have, want },
        have => SchemaState::Behind { have, want },
    })
}

/// Waits (bounded) for the database to answer, so a collector started alongside PostgreSQL by compose or
/// systemd does not fail on its first second. A shutdown signal ends the wait at once with
/// `StoreError::Cancelled`: systemd and docker kill a process that has not exited 10 s after SIGTERM.
pub async fn wait_until_reachable(
    pool: &PgPool,
    patience: Duration,
    cancel: &CancellationToken,
) -> Result<(), StoreError> {
    let deadline = tokio::time::Instant::now() + patience;
    let mut delay = Duration::from_millis(200);
    loop {
        // A black-holed host makes even one attempt last the pool's acquire timeout.
        let attempt = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(StoreError::Cancelled),
            attempt = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(pool) => attempt,
        };
        match attempt {
            Ok(_) => return Ok(()),
            // A certificate that does not verify will not start verifying, nor a wrong password start
            // matching: say so now instead of after the whole patience.
            Err(err) if tls::lasting_failure(&err).is_some() => {
                return Err(connect_error(pool, err))
            }
            Err(err) if tokio::time::Instant::now() + delay < deadline => {
                tracing::warn!(error = %redact(&err), "PostgreSQL is not answering yet; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return Err(StoreError::Cancelled),
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(err) => return Err(StoreError::Connect(redact(&err))),
        }
    }
}

/// Applies this binary's migrations (once, under sqlx's advisory lock, however many replicas start
/// together), unless the schema's floor is above this binary: then nothing is written and the error is
/// [`StoreError::TooOld`]. On a schema newer than this binary whose floor allows it, logs one warning.
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    // Before anything is written, sqlx's own table included.
    if let schema::Verdict::Refuse(too_old) = schema::inspect(pool).await? {
        return Err(StoreError::TooOld(Box::new(too_old)));
    }
    MIGRATOR
        .run(pool)
        .await
        .map_err(|e| StoreError::Migrate(e.to_string()))?;
    // Again after the lock: a newer replica may have raised the floor while this one waited for it.
    match schema::inspect(pool).await? {
        schema::Verdict::Refuse(too_old) => Err(StoreError::TooOld(Box::new(too_old))),
        schema::Verdict::Newer { schema, floor } => {
            schema::warn_newer(schema, floor.as_ref());
            Ok(())
        }
        schema::Verdict::Known => Ok(()),
    }
}

/// sqlx connection errors can echo connection parameters; keep only the message kind.
fn redact(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => db.message().to_string(),
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::PoolTimedOut => "timed out waiting for a connection".into(),
        sqlx::Error::Tls(tls) => format!("TLS: {tls}"),
        other => other.to_string(),
    }
}

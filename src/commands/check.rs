//! `rollcall check`: proves the config and every credential against the API without writing anything;
//! `rollcall check --offline` only the config and the files it names.

use crate::config::Config;
use crate::http::build_client;
use crate::sources::build::{accounts, retry_policy};
use crate::store::pauses::{self, Pause};
use sqlx::PgPool;
use std::collections::HashMap;
use std::time::Duration;

/// One line of `check`'s report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    Ok(String),
    /// Makes the command exit 1.
    Fail(String),
    /// An account under a daily-limit pause: nothing was sent for it, not even a token request, because
    /// the platform asked for silence until then. Not a failure: the next run after the pause checks it.
    Paused(String),
    /// Something worth knowing that is neither a success nor a failure.
    Note(String),
    /// The database's schema floor is above this binary: the command exits with the schema's own code,
    /// as every command touching the database does.
    TooOld(String),
}

/// `check --offline`: what loading the config already proved, contacting nothing. By the time a `Config`
/// exists every problem would have exited 2: the file and every included file parsed and validated, and
/// every `*_file` secret read. So this only reports what was checked, for the operator and for CI.
pub fn offline(config: &Config) -> Vec<Line> {
    let mut lines = vec![Line::Ok(format!(
        "config: valid ({} zoom, {} videosdk, {} rocketchat {})",
        config.zoom.len(),
        config.videosdk.len(),
        config.rocketchat.len(),
        if config.zoom.len() + config.videosdk.len() + config.rocketchat.len() == 1 {
            "account"
        } else {
            "accounts"
        }
    ))];
    for file in &config.included {
        lines.push(Line::Ok(format!("include: {} read", file.display())));
    }
    if !config.included.is_empty() {
        let policy = &config.include_policy;
        let hosts = match policy.hosts.is_empty() {
            true => String::new(),
            false => format!(", {}", policy.hosts.join(", ")),
        };
        lines.push(Line::Ok(format!(
            "include_policy: included entries read secrets only in {} and send credentials only to Zoom's hosts, the main file's{hosts}",
            policy.secret_dirs.join(", ")
        )));
    }
    lines.push(Line::Ok(
        "secrets: every *_file read and not empty".to_string(),
    ));
    lines.push(Line::Note(
        "offline: neither the database nor any API was contacted; `rollcall check` proves the credentials"
            .to_string(),
    ));
    lines
}

/// One line per thing checked.
pub async fn run(config: &Config) -> Vec<Line> {
    let mut lines = Vec::new();
    let pauses = match crate::store::read_only_pool(&config.database.url) {
        Ok(pool) => match sqlx::query_scalar::<_, i32>("SELECT 1")
            .fetch_one(&pool)
            .await
        {
            Ok(_) => {
                lines.push(Line::Ok("database: reachable".to_string()));
                lines.push(schema_line(&pool).await);
                read_pauses(&pool, &mut lines).await
            }
            Err(err) => {
                lines.push(Line::Fail(match crate::store::connect_error(&pool, err) {
                    refused @ crate::store::StoreError::Refused { .. } => refused.to_string(),
                    other => format!("database.url: PostgreSQL does not answer ({other})"),
                }));
                lines.push(Line::Note(
                    "pauses: not read (no database); every account is checked".into(),
                ));
                HashMap::new()
            }
        },
        Err(err) => {
            lines.push(Line::Fail(err.to_string()));
            lines.push(Line::Note(
                "pauses: not read (no database); every account is checked".into(),
            ));
            HashMap::new()
        }
    };
    // A paused account gets no request at all: the platform asked for silence until the pause ends.
    let paused = |lines: &mut Vec<Line>, section: &str, i: usize, name: &str| -> bool {
        let Some(pause) = pauses.get(name) else {
            return false;
        };
        lines.push(Line::Paused(format!(
            "{section}[{i}] \"{name}\": until {} ({}); nothing sent, not even a token request",
            pause.until, pause.reason
        )));
        true
    };
    let http = match build_client(
        Duration::from_secs(config.http.timeout_secs),
        config.http.max_body_mib,
    ) {
        Ok(http) => http,
        Err(err) => {
            lines.push(Line::Fail(err.to_string()));
            return lines;
        }
    };
    let retry = retry_policy(&config.collector);
    for (i, account) in accounts(config) {
        let (section, name) = (account.section(), account.name());
        if paused(&mut lines, section, i, name) {
            continue;
        }
        lines.push(match account.verify(i, &http, retry).await {
            Ok(accepted) => Line::Ok(format!("{section}[{i}] \"{name}\": {accepted}")),
            Err(why) => Line::Fail(format!("{section}[{i}] \"{name}\": {why}")),
        });
    }
    lines
}

/// Whether this binary may write to the schema it finds (the floor, see `store::schema`).
async fn schema_line(pool: &PgPool) -> Line {
    use crate::store::schema::{self, Verdict};
    match schema::inspect(pool).await {
        Ok(Verdict::Refuse(too_old)) => Line::TooOld(format!("database: {too_old}")),
        Ok(Verdict::Newer { schema, floor }) => Line::Ok(format!(
            "database: schema version {schema} is newer than this rollcall {} knows ({}), and accepts it as a writer (floor {})",
            schema::RELEASE,
            schema::known_version(),
            floor.map_or_else(|| "none".to_string(), |f| f.schema.to_string())
        )),
        Ok(Verdict::Known) => Line::Ok(format!(
            "database: schema usable by this rollcall {} (schema version {})",
            schema::RELEASE,
            schema::known_version()
        )),
        Err(err) => Line::Note(format!("database: schema not read ({err})")),
    }
}

/// Active pauses by account. Best effort: a database that cannot say is reported, and the accounts are
/// then checked as if unpaused.
async fn read_pauses(pool: &PgPool, lines: &mut Vec<Line>) -> HashMap<String, Pause> {
    let exists: Result<bool, sqlx::Error> =
        sqlx::query_scalar("SELECT to_regclass('rollcall.account_pauses') IS NOT NULL")
            .fetch_one(pool)
            .await;
    match exists {
        Ok(true) => {}
        // Never migrated: nothing can have been paused.
        Ok(false) => return HashMap::new(),
        Err(err) => {
            lines.push(Line::Note(format!(
                "pauses: not read ({}); every account is checked",
                db_error(&err)
            )));
            return HashMap::new();
        }
    }
    match pauses::all_active(pool).await {
        Ok(active) => active,
        Err(err) => {
            lines.push(Line::Note(format!(
                "pauses: not read ({err}); every account is checked"
            )));
            HashMap::new()
        }
    }
}

fn db_error(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => db.message().to_string(),
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::PoolTimedOut => "timed out".into(),
        _ => "connection failed".into(),
    }
}

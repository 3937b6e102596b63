//! `rollcall check`: proves the config and every credential against the API without writing anything.

use crate::collector::zoom_clients;
use crate::config::Config;
use crate::http::{build_client, ApiError, RetryPolicy};
use crate::sources::zoom::videosdk;
use std::time::Duration;

/// One line per thing checked; `Err` lines make the command exit 1.
pub async fn run(config: &Config) -> Vec<Result<String, String>> {
    let mut lines = Vec::new();
    let pool = crate::store::pool(&config.database.url, 1);
    lines.push(match pool {
        Ok(pool) => match sqlx::query_scalar::<_, i32>("SELECT 1")
            .fetch_one(&pool)
            .await
        {
            Ok(_) => Ok("database: reachable".to_string()),
            Err(err) => Err(format!(
                "database.url: PostgreSQL does not answer ({})",
                db_error(&err)
            )),
        },
        Err(err) => Err(err.to_string()),
    });
    let http = match build_client(
        Duration::from_secs(config.http.timeout_secs),
        config.http.max_body_mib,
    ) {
        Ok(http) => http,
        Err(err) => {
            lines.push(Err(err.to_string()));
            return lines;
        }
    };
    for (i, client) in zoom_clients(config, &http) {
        let name = &config.zoom[i].name;
        lines.push(match client.verify_credentials().await {
            Ok(()) => Ok(format!("zoom[{i}] \"{name}\": credentials accepted")),
            Err(err @ ApiError::AuthRejected { .. }) => Err(format!("zoom[{i}] \"{name}\": {err}")),
            Err(err) => Err(format!(
                "zoom[{i}] \"{name}\": cannot verify credentials: {err}"
            )),
        });
    }
    for (i, account) in config.videosdk.iter().enumerate() {
        let (name, client) = (
            &account.name,
            videosdk::client(i, account, &http, RetryPolicy::new(0, Duration::ZERO)),
        );
        lines.push(match videosdk::verify(&client).await {
            Ok(()) => Ok(format!("videosdk[{i}] \"{name}\": credentials accepted")),
            Err(err @ ApiError::AuthRejected { .. }) => {
                Err(format!("videosdk[{i}] \"{name}\": {err}"))
            }
            Err(err) => Err(format!(
                "videosdk[{i}] \"{name}\": cannot verify credentials: {err}"
            )),
        });
    }
    for (i, client) in crate::sources::rocketchat::clients(config, &http) {
        let workspace = &config.rocketchat[i];
        let name = &workspace.name;
        lines.push(
            match crate::sources::rocketchat::verify(&client, workspace.timezone).await {
                Ok(users) => Ok(format!(
                    "rocketchat[{i}] \"{name}\": credentials, permission and license accepted ({users} active users yesterday)"
                )),
                Err(err) => Err(format!("rocketchat[{i}] \"{name}\": {err}")),
            },
        );
    }
    lines
}

fn db_error(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => db.message().to_string(),
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::PoolTimedOut => "timed out".into(),
        _ => "connection failed".into(),
    }
}

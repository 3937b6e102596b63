//! Progress of a long `collect` or `backfill`: a bar on a terminal, a log line every half minute otherwise.
//! It reads the window table rather than hooking into the engine, so it shows what is committed (and what
//! other replicas do) and costs the walk nothing.

use crate::config::Config;
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::PgPool;
use std::io::IsTerminal;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub struct Progress {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, sqlx::FromRow)]
struct Counts {
    total: i64,
    finished: i64,
    rows: i64,
}

impl Progress {
    /// `log_when_piped`: backfills log periodic lines in a pipe; a plain `collect` stays quiet there (its
    /// one line per window already says enough).
    /// On a terminal, the bar also says the requests sent today and what the walk still needs at the
    /// plan's rate ([`super::budget`]), for the accounts of `config` the run covers.
    pub fn start(
        pool: PgPool,
        config: &Config,
        account: Option<String>,
        stream: Option<String>,
        log_when_piped: bool,
    ) -> Option<Progress> {
        let on_terminal = std::io::stderr().is_terminal();
        if !on_terminal && !log_when_piped {
            return None;
        }
        let since = Utc::now();
        let config = config.clone();
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let bar = on_terminal.then(|| {
                let bar = ProgressBar::new(0);
                if let Ok(style) = ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} windows {msg}",
                ) {
                    bar.set_style(style);
                }
                bar
            });
            let period = if on_terminal {
                Duration::from_millis(500)
            } else {
                Duration::from_secs(30)
            };
            let mut last = Counts::default();
            loop {
                let stopping = tokio::select! {
                    _ = token.cancelled() => true,
                    _ = tokio::time::sleep(period) => false,
                };
                if let Ok(counts) = read(&pool, since, account.as_deref(), stream.as_deref()).await
                {
                    match &bar {
                        Some(bar) => {
                            bar.set_length(counts.total.max(0) as u64);
                            bar.set_position(counts.finished.max(0) as u64);
                            let budget = budget_words(&pool, &config, account.as_deref()).await;
                            bar.set_message(format!("{} rows{budget}", counts.rows));
                        }
                        None if counts != last => tracing::info!(
                            windows_finished = counts.finished,
                            windows_total = counts.total,
                            rows = counts.rows,
                            "backfill progress"
                        ),
                        None => {}
                    }
                    last = counts;
                }
                if stopping {
                    if let Some(bar) = &bar {
                        bar.finish_and_clear();
                    }
                    return;
                }
            }
        });
        Some(Progress { stop, task })
    }

    pub async fn finish(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// `; requests today 1234/30000, left at least 56 requests (at least 6s)`, summed over the accounts the
/// run covers; empty when nothing can be read.
async fn budget_words(pool: &PgPool, config: &Config, account: Option<&str>) -> String {
    let today = crate::clock::now().date_naive();
    let Ok(lines) = super::budget::load(pool, config, today).await else {
        return String::new();
    };
    let lines: Vec<_> = lines
        .into_iter()
        .filter(|l| account.is_none_or(|a| a == l.account))
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    let today: i64 = lines.iter().map(|l| l.requests_today).sum();
    let pool: Option<u64> = lines
        .iter()
        .map(|l| (l.account.as_str(), l.daily_pool))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_values()
        .map(|p| p.map(u64::from))
        .sum();
    // The slowest category decides when the run ends; its line speaks for the rest.
    let slowest = lines.iter().max_by_key(|l| l.seconds_left.unwrap_or(0));
    let pool = pool.map_or(String::new(), |p| format!("/{p}"));
    let left = slowest.map_or(String::new(), |l| {
        format!(", left {}", super::budget::left_in_words(l))
    });
    format!("; requests today {today}{pool}{left}")
}

async fn read(
    pool: &PgPool,
    since: DateTime<Utc>,
    account: Option<&str>,
    stream: Option<&str>,
) -> Result<Counts, sqlx::Error> {
    sqlx::query_as::<_, Counts>(
        "SELECT count(*) FILTER (WHERE (NOT is_final AND state <> 'unreachable') OR completed_at >= $1) AS total,
                count(*) FILTER (WHERE state IN ('complete', 'failed') AND updated_at >= $1) AS finished,
                coalesce(sum(rows) FILTER (WHERE updated_at >= $1), 0)::bigint AS rows
           FROM rollcall.collection_windows
          WHERE ($2::text IS NULL OR account = $2) AND ($3::text IS NULL OR stream = $3)",
    )
    .bind(since)
    .bind(account)
    .bind(stream)
    .fetch_one(pool)
    .await
}

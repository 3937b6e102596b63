//! What the accounts' request budgets look like today: per account and rate category, the requests every
//! replica sent today (UTC) against the plan's daily pool, and what the windows still to walk will cost at
//! the plan's rate. Read from PostgreSQL, so it is the same on every replica; `status`, the progress bar
//! of `collect` and `/metrics` show it.

use crate::config::Config;
use crate::sources::build::{accounts, RateBudget};
use crate::store::StoreError;
use chrono::NaiveDate;
use serde::Serialize;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

/// One account's rate category today.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CategoryBudget {
    pub account: String,
    pub category: String,
    /// UTC day the counts are for.
    pub day: NaiveDate,
    /// Requests sent today by every replica.
    pub requests_today: i64,
    /// The plan's daily pool, shared by the account's categories; `None` where the platform has none.
    pub daily_pool: Option<u32>,
    /// Requests the windows still to walk need, as far as their first pages told (a window not started
    /// yet counts one request).
    pub requests_left: i64,
    /// Windows still to walk whose size is not known yet: `requests_left` is a floor while this is > 0.
    pub windows_without_total: i64,
    /// `requests_left` at the rate rollcall paces the category to; `None` where it is not paced.
    pub seconds_left: Option<u64>,
}

/// The rate category a stream's requests count in.
pub fn category_of(stream: &str) -> &'static str {
    use crate::sources::rocketchat::active_users;
    use crate::sources::zoom::pacing::Category;
    use crate::sources::zoom::videosdk::sessions;
    if stream == sessions::STREAM {
        Category::ResourceIntensive.as_str()
    } else if stream == active_users::STREAM {
        crate::sources::rocketchat::client::CATEGORY
    } else {
        Category::Heavy.as_str()
    }
}

#[derive(sqlx::FromRow)]
struct WorkLeft {
    account: String,
    stream: String,
    requests_left: i64,
    without_total: i64,
}

/// The budget lines of every configured account, for `day` (UTC).
pub async fn load(
    pool: &PgPool,
    config: &Config,
    day: NaiveDate,
) -> Result<Vec<CategoryBudget>, StoreError> {
    let sent = crate::store::request_counts::on_day(pool, day).await?;
    // A window to walk (pending, running or failed) needs the pages its announced total has left after
    // its checkpoint (all of them when it has none: a failed walk starts again from page 1); one whose
    // first page has not answered yet needs at least one.
    let work: Vec<WorkLeft> = sqlx::query_as(
        "SELECT account, stream,
                coalesce(sum(CASE
                    WHEN expected_total IS NULL THEN 1
                    WHEN (walk_params ->> 'page_size') ~ '^[0-9]+$'
                         AND (walk_params ->> 'page_size')::bigint > 0
                      THEN greatest(ceil(expected_total::numeric
                                         / (walk_params ->> 'page_size')::bigint)::bigint
                                    - CASE WHEN next_page_token IS NULL THEN 0 ELSE pages END, 1)
                    ELSE 1 END), 0)::bigint AS requests_left,
                count(*) FILTER (WHERE expected_total IS NULL)::bigint AS without_total
           FROM rollcall.collection_windows
          WHERE state IN ('pending', 'running', 'failed') AND NOT is_final
          GROUP BY account, stream",
    )
    .fetch_all(pool)
    .await?;
    let mut lines: BTreeMap<(String, String), CategoryBudget> = BTreeMap::new();
    let budgets: BTreeMap<String, RateBudget> = accounts(config)
        .map(|(_, a)| (a.name().to_string(), a.rate_budget()))
        .collect();
    for (account, budget) in &budgets {
        for (category, ..) in &budget.rates {
            line(&mut lines, account, category, day, budget);
        }
    }
    let unknown = RateBudget::default();
    for (account, category, requests) in sent {
        let budget = budgets.get(&account).unwrap_or(&unknown);
        line(&mut lines, &account, &category, day, budget).requests_today += requests;
    }
    for w in work {
        let budget = budgets.get(&w.account).unwrap_or(&unknown);
        let entry = line(&mut lines, &w.account, category_of(&w.stream), day, budget);
        entry.requests_left += w.requests_left;
        entry.windows_without_total += w.without_total;
    }
    for entry in lines.values_mut() {
        let spacing = budgets.get(&entry.account).and_then(|b| {
            b.rates
                .iter()
                .find(|(c, ..)| *c == entry.category)
                .and_then(|(_, n, per)| crate::http::pacing::spacing(*n, *per))
        });
        entry.seconds_left =
            spacing.map(|s| (s.as_secs_f64() * entry.requests_left as f64).ceil() as u64);
    }
    Ok(lines.into_values().collect())
}

fn line<'a>(
    lines: &'a mut BTreeMap<(String, String), CategoryBudget>,
    account: &str,
    category: &str,
    day: NaiveDate,
    budget: &RateBudget,
) -> &'a mut CategoryBudget {
    lines
        .entry((account.to_string(), category.to_string()))
        .or_insert_with(|| CategoryBudget {
            account: account.to_string(),
            category: category.to_string(),
            day,
            requests_today: 0,
            daily_pool: budget.daily_requests,
            requests_left: 0,
            windows_without_total: 0,
            seconds_left: None,
        })
}

/// A duration for people: `45s`, `12m`, `3h05m`, `2d04h`.
pub fn human(seconds: u64) -> String {
    let d = Duration::from_secs(seconds).as_secs();
    match d {
        0..=59 => format!("{d}s"),
        60..=3599 => format!("{}m", d.div_ceil(60)),
        3600..=86_399 => format!("{}h{:02}m", d / 3600, (d % 3600) / 60),
        _ => format!("{}d{:02}h", d / 86_400, (d % 86_400) / 3600),
    }
}

/// What is left, in words: `~1,234 requests (~2m)`, or `at least ...` while some windows have not
/// announced their size.
pub fn left_in_words(line: &CategoryBudget) -> String {
    if line.requests_left == 0 {
        return "nothing".into();
    }
    let floor = if line.windows_without_total > 0 {
        "at least "
    } else {
        "~"
    };
    match line.seconds_left {
        Some(s) => format!(
            "{floor}{} requests ({floor}{})",
            line.requests_left,
            human(s)
        ),
        None => format!("{floor}{} requests", line.requests_left),
    }
}

/// The text `status` prints under its table.
pub fn render(lines: &[CategoryBudget]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n");
    let day = lines[0].day;
    // The daily pool is the account's, shared by its categories.
    let mut per_account: BTreeMap<&str, i64> = BTreeMap::new();
    for l in lines {
        *per_account.entry(&l.account).or_default() += l.requests_today;
    }
    let _ = writeln!(
        out,
        "BUDGET (requests today, {day} UTC, by every replica; USED: the account's share of its daily pool)\n{:<16} {:<20} {:>9} {:>11} {:>6}  left to walk",
        "ACCOUNT", "CATEGORY", "TODAY", "DAILY POOL", "USED"
    );
    for l in lines {
        let (pool, used) = match l.daily_pool {
            Some(pool) => (
                pool.to_string(),
                format!(
                    "{:.0}%",
                    100.0 * per_account.get(l.account.as_str()).copied().unwrap_or(0) as f64
                        / f64::from(pool.max(1))
                ),
            ),
            None => ("-".into(), "-".into()),
        };
        let _ = writeln!(
            out,
            "{:<16} {:<20} {:>9} {:>11} {:>6}  {}",
            l.account,
            l.category,
            l.requests_today,
            pool,
            used,
            left_in_words(l)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(human(45), "45s");
        assert_eq!(human(61), "2m");
        assert_eq!(human(3 * 3600 + 5 * 60), "3h05m");
        assert_eq!(human(2 * 86_400 + 4 * 3600), "2d04h");
    }

    #[test]
    fn a_floor_says_so() {
        let mut line = CategoryBudget {
            account: "a".into(),
            category: "heavy".into(),
            day: NaiveDate::MIN,
            requests_today: 0,
            daily_pool: Some(30_000),
            requests_left: 120,
            windows_without_total: 0,
            seconds_left: Some(13),
        };
        assert_eq!(left_in_words(&line), "~120 requests (~13s)");
        line.windows_without_total = 2;
        assert_eq!(left_in_words(&line), "at least 120 requests (at least 13s)");
    }
}

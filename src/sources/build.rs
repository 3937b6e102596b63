//! How an account's configuration becomes its streams, after Vector's `SourceConfig::build`:
//! each account type builds its own client and pacer, shared by its streams, and the collector runs
//! whatever comes back without knowing the platform.

use crate::config::{CollectorConfig, Config};
use crate::engine::{BuiltSource, RunContext};
use crate::http::{HttpClient, RetryPolicy};
use chrono::{DateTime, NaiveDate, Utc};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// What `rollcall check` prints after the account: what the API accepted, or why it refused.
pub type Verdict<'a> = Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>>;

/// What every account's build shares within one run.
pub struct BuildContext<'a> {
    pub run: &'a RunContext,
    /// Backfill bounds (`--from`, `--to`); `None`: each stream's default range.
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub http: &'a HttpClient,
    pub retry: RetryPolicy,
}

/// What the platform allows one account: the rate of each paced category and the daily pool.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RateBudget {
    /// (rate category, requests, per): as `rollcall_requests_total`'s `category` names it.
    pub rates: Vec<(&'static str, u32, Duration)>,
    /// Requests a day over every category, when the platform counts one.
    pub daily_requests: Option<u32>,
}

impl RateBudget {
    /// How long a replica that takes the account over waits after the last holder's last request, so the
    /// two together never put more than the allowed rate in any of the platform's windows: the longest
    /// spacing the pacer keeps.
    pub fn handover(&self) -> Duration {
        self.rates
            .iter()
            .filter_map(|(_, requests, per)| crate::http::pacing::spacing(*requests, *per))
            .max()
            .unwrap_or_default()
    }
}

/// An account (or workspace) section of the configuration.
pub trait SourceConfig {
    fn name(&self) -> &str;

    /// The config section the account sits in (`zoom`), naming it in lines as `zoom[0]`.
    fn section(&self) -> &'static str;

    /// The account's `streams` key: `None` collects every stream of its platform.
    fn chosen_streams(&self) -> Option<&[String]>;

    /// Whether the account collects `stream`: one of its platform's, and not left out by `streams`.
    fn collects(&self, stream: &str) -> bool {
        crate::config::platform_streams(self.section()).contains(&stream)
            && self
                .chosen_streams()
                .is_none_or(|chosen| chosen.iter().any(|s| s == stream))
    }

    /// Whether `streams` leaves out `stream`, one of the account's platform: it is not configured there,
    /// which `status`, `coverage` and `collect` say rather than show it as missing history.
    fn leaves_out(&self, stream: &str) -> bool {
        crate::config::platform_streams(self.section()).contains(&stream) && !self.collects(stream)
    }

    /// The stream `coverage` lists for the account before anything was planned: the one an analyst
    /// reads completeness from (streams counted with it are not listed on their own).
    fn covered_stream(&self) -> &'static str;

    /// Further streams `coverage` gives a row of their own (the account's daily usage, one window a
    /// month): listed once the database holds windows of them, or when `--stream` names one.
    fn other_covered_streams(&self) -> &'static [&'static str] {
        &[]
    }

    /// The account's date at `now`: the day its API buckets by, which decides whether a month has ended
    /// (`coverage`). UTC unless the platform keeps days in the account's own zone.
    fn today(&self, now: DateTime<Utc>) -> NaiveDate {
        now.date_naive()
    }

    /// What the platform allows the account, as rollcall paces it.
    fn rate_budget(&self) -> RateBudget;

    /// `rollcall check`: proves the credentials with the fewest requests the API allows, writing nothing.
    fn verify<'a>(&'a self, index: usize, http: &'a HttpClient, retry: RetryPolicy) -> Verdict<'a>;

    /// Every stream of the account, in the order they start; a stream that runs after another comes after
    /// it. `index` is the account's place in its section, for errors naming the keys to fix.
    fn build(&self, index: usize, cx: &BuildContext<'_>) -> Vec<BuiltSource>;

    /// The streams that plan their windows from `--from`.
    fn backfill_streams(&self) -> &'static [&'static str];

    /// What a backfill from `from` asks of this account that its API no longer serves, in one line.
    fn backfill_refusal(&self, from: NaiveDate, now: DateTime<Utc>) -> Option<String>;
}

/// Every configured account with its index in its section, in the config's section order: the order a
/// run starts them and `backfill` names what it refuses.
pub fn accounts(config: &Config) -> impl Iterator<Item = (usize, &dyn SourceConfig)> {
    fn indexed<T: SourceConfig>(section: &[T]) -> impl Iterator<Item = (usize, &dyn SourceConfig)> {
        section
            .iter()
            .enumerate()
            .map(|(i, account)| (i, account as &dyn SourceConfig))
    }
    indexed(&config.zoom)
        .chain(indexed(&config.videosdk))
        .chain(indexed(&config.rocketchat))
}

/// How hard a run retries one request (`collector.max_retries`, `collector.retry_base_ms`).
pub fn retry_policy(collector: &CollectorConfig) -> RetryPolicy {
    RetryPolicy::new(
        collector.max_retries,
        Duration::from_millis(collector.retry_base_ms),
    )
}

/// The streams of `built` the account's `streams` key keeps; the others are never started, so they plan,
/// request and count nothing.
pub fn chosen(account: &dyn SourceConfig, built: Vec<BuiltSource>) -> Vec<BuiltSource> {
    built
        .into_iter()
        .filter(|source| account.collects(source.stream()))
        .collect()
}

/// What `collect --stream S [--account A]` says when every account it selects whose platform has `S`
/// leaves it out (`streams`), so nothing would be collected: `None` when some account collects it.
pub fn left_out(config: &Config, stream: &str, account: Option<&str>) -> Option<String> {
    let selected: Vec<(usize, &dyn SourceConfig)> = accounts(config)
        .filter(|(_, a)| account.is_none_or(|name| a.name() == name))
        .filter(|(_, a)| crate::config::platform_streams(a.section()).contains(&stream))
        .collect();
    if selected.is_empty() || selected.iter().any(|(_, a)| a.collects(stream)) {
        return None;
    }
    let named: Vec<String> = selected
        .iter()
        .map(|(i, a)| format!("{}[{i}] \"{}\"", a.section(), a.name()))
        .collect();
    Some(format!(
        "--stream {stream}: not configured for {} (its streams key leaves it out); add it to streams to collect it",
        named.join(", ")
    ))
}

//! The typed configuration: a TOML file layered with environment variables, validated all at once.
//!
//! The public structs below are the schema: serde derives their deserializers, `deny_unknown_fields` so a
//! typo never silently falls back to a default. `Config::validate` then checks what no single value's
//! type can say: required keys, URLs, rules between keys, names unique across sections.
//!
//! Layering is done on a `toml::Value` tree rather than with the `config` crate: config-rs cannot address
//! array entries from the environment (`ROLLCALL__ZOOM__0__CLIENT_SECRET`), and the tree lets `Origins`
//! remember which variable or included file set each key, so a problem names the thing to fix. Order of
//! the layers: the main file, then the account files it `include`s (appended, see `include.rs`), then the
//! environment, so an override's index counts the merged list. `de.rs` turns the tree into a `Config`
//! reporting every problem, not only serde's first.

mod de;
mod env;
mod include;
mod policy;
mod problems;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

use problems::{quote, Origins, Problems};

pub const DEFAULT_CRON: &str = "0 15 3 * * *";
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9187);
pub const DEFAULT_ZOOM_API_URL: &str = "https://api.zoom.us/v2";
pub const DEFAULT_ZOOM_OAUTH_URL: &str = "https://zoom.us/oauth/token";
/// Zoom's `page_size` maximum; fewer, larger pages spend less of the rate budget.
pub const MAX_PAGE_SIZE: u32 = 300;
/// Windows walked at once across all accounts. The pages waiting to be written are most of the process's
/// memory (about 0.4 MiB per window in flight at 300 rows a page): 32 keeps a 1,000,000-row first
/// collection under 48 MiB (bench/RESULTS.md: 48.2 MiB at 64) while a walk, which mostly waits for the API's
/// reply, still fills two Business accounts at 300 ms. Fleets of accounts at high latency raise it.
pub const DEFAULT_MAX_WINDOWS_IN_FLIGHT: u32 = 32;
/// A walk holds a connection only for one page's transaction (milliseconds), never across an API request,
/// so half of the default global bound keeps pool waits short; well below PostgreSQL's default
/// `max_connections` of 100, so a few replicas and the analysts still fit.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;
/// Every stream of each platform, the default of an entry's `streams`, in the order they start.
pub const ZOOM_STREAMS: [&str; 2] = [
    crate::sources::zoom::host_reports::STREAM,
    crate::sources::zoom::daily_usage::STREAM,
];
pub const VIDEOSDK_STREAMS: [&str; 3] = [
    crate::sources::zoom::videosdk::sessions::STREAM,
    crate::sources::zoom::videosdk::session_users::STREAM,
    crate::sources::zoom::daily_usage::SDK_STREAM,
];
pub const ROCKETCHAT_STREAMS: [&str; 1] = [crate::sources::rocketchat::active_users::STREAM];
/// Days Rocket.Chat may still change (it re-aggregates up to three days back) plus today.
const MIN_LOOKBACK_DAYS: u32 = 4;

// Every section and entry key is optional to serde (a default or an empty string): whether a required one
// is there is asked after (`validate`, or `de::secret` beside a secret's `*_file` key), so "missing" is
// reported beside the other problems, not instead of them.

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub database: DatabaseConfig,
    pub schedule: ScheduleConfig,
    pub http: HttpConfig,
    pub log: LogConfig,
    pub collector: CollectorConfig,
    pub include_policy: IncludePolicy,
    pub zoom: Vec<ZoomAccount>,
    pub videosdk: Vec<VideoSdkAccount>,
    pub rocketchat: Vec<RocketChatWorkspace>,
    /// The files `include` named, in the order their entries were appended (`rollcall check --offline`
    /// lists them).
    #[serde(skip)]
    pub included: Vec<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// A secret because the URL usually carries the password.
    pub url: SecretString,
    #[serde(deserialize_with = "de::Range::<1, 1_000>::de")]
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: SecretString::default(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Six fields, seconds first, evaluated in UTC.
    pub cron: String,
    pub run_on_start: bool,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            cron: DEFAULT_CRON.to_owned(),
            run_on_start: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(deserialize_with = "de::listen")]
    pub listen: SocketAddr,
    /// Per request, so one stalled connection cannot hold a window's lease forever.
    #[serde(deserialize_with = "de::Range::<1, 600>::de")]
    pub timeout_secs: u64,
    /// The largest response body read, in MiB, so a broken or hostile server cannot exhaust memory.
    #[serde(deserialize_with = "de::Range::<1, 4096>::de")]
    pub max_body_mib: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: DEFAULT_LISTEN,
            timeout_secs: 30,
            max_body_mib: 32,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing_subscriber::EnvFilter` directive, already checked to parse.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Auto,
            level: "info".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Text on a terminal, JSON otherwise (journald, containers).
    #[default]
    Auto,
    Text,
    Json,
}

impl<'de> Deserialize<'de> for LogFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let all = [
            ("auto", Self::Auto),
            ("text", Self::Text),
            ("json", Self::Json),
        ];
        de::choice(d, all)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorConfig {
    /// Renewed at a third of it, so at least 3 leaves a whole second between renewals.
    #[serde(deserialize_with = "de::Range::<3, 86_400>::de")]
    pub lease_secs: u64,
    #[serde(deserialize_with = "de::Range::<0, 100>::de")]
    pub max_retries: u32,
    #[serde(deserialize_with = "de::Range::<1, 600_000>::de")]
    pub retry_base_ms: u64,
    /// Windows of one (account, stream) walked at once. The account's pacer keeps the rate; this only has
    /// to cover rate × reply latency (Pro: 10/s × 1.6 s, Business: 40/s × 0.4 s at the default).
    #[serde(deserialize_with = "de::Range::<1, 256>::de")]
    pub windows_in_flight: u32,
    /// Windows walked at once by the whole process, across every account and stream: what bounds the
    /// process's memory and its demand on the connection pool however many accounts are configured.
    #[serde(deserialize_with = "de::Range::<1, 4_096>::de")]
    pub max_windows_in_flight: u32,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            lease_secs: 60,
            max_retries: 4,
            retry_base_ms: 500,
            windows_in_flight: 16,
            max_windows_in_flight: DEFAULT_MAX_WINDOWS_IN_FLIGHT,
        }
    }
}

/// What an included account file may make rollcall do with a credential: such files are often written by
/// people who must not read the main secrets, so they may neither read a secret file outside `secret_dirs`
/// nor send a credential to a host outside Zoom's, `hosts` and the main file's own (see `policy.rs`). Only
/// the main file (or the environment) sets it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IncludePolicy {
    /// Absolute directories; an included file's `*_file` must resolve (symlinks followed) inside one.
    pub secret_dirs: Vec<String>,
    /// Origins (`https://chat.example.com`, a bare host meaning https) an included entry may send its
    /// credential to, besides Zoom's and the hosts of the main file's own entries.
    pub hosts: Vec<String>,
}

impl Default for IncludePolicy {
    fn default() -> Self {
        IncludePolicy {
            secret_dirs: policy::DEFAULT_SECRET_DIRS.map(str::to_owned).to_vec(),
            hosts: Vec::new(),
        }
    }
}

/// `Default` gives the keys serde does not find, except where a field names its own default: only those
/// are a default account's values.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZoomAccount {
    pub name: String,
    /// The streams collected for the account; `None`: every one of its platform.
    #[serde(deserialize_with = "de::streams")]
    pub streams: Option<Vec<String>>,
    pub account_id: String,
    pub client_id: String,
    pub client_secret: SecretString,
    #[serde(default = "de::zoom_oauth_url")]
    pub oauth_url: String,
    /// Without a trailing slash, so paths can be appended as `{api_url}/report/users`.
    #[serde(default = "de::zoom_api_url")]
    pub api_url: String,
    pub plan: Plan,
    #[serde(
        default = "de::num::<MAX_PAGE_SIZE>",
        deserialize_with = "de::Range::<1, { MAX_PAGE_SIZE as i64 }>::de"
    )]
    pub page_size: u32,
    #[serde(default = "de::num::<2>", deserialize_with = "de::Range::<0, 90>::de")]
    pub settle_days: u32,
    #[serde(deserialize_with = "de::Range::<1, 3_650>::de")]
    pub horizon_days: Option<u32>,
    /// Written as keys of the account itself; `de::prepare` gathers them here.
    pub limits: ZoomLimits,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VideoSdkAccount {
    pub name: String,
    #[serde(deserialize_with = "de::streams")]
    pub streams: Option<Vec<String>>,
    pub api_key: String,
    pub api_secret: SecretString,
    /// Without a trailing slash.
    #[serde(default = "de::zoom_api_url")]
    pub api_url: String,
    pub plan: Plan,
    #[serde(
        default = "de::num::<MAX_PAGE_SIZE>",
        deserialize_with = "de::Range::<1, { MAX_PAGE_SIZE as i64 }>::de"
    )]
    pub page_size: u32,
    #[serde(default = "de::num::<2>", deserialize_with = "de::Range::<0, 90>::de")]
    pub settle_days: u32,
    #[serde(deserialize_with = "de::Range::<1, 3_650>::de")]
    pub horizon_days: Option<u32>,
    pub limits: ZoomLimits,
}

/// Per-account overrides of the plan's rate limits: `None` keeps the plan's value, `Some(0)` means no limit
/// (for sandboxes and benchmarks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZoomLimits {
    #[serde(deserialize_with = "de::Range::<0, { u32::MAX as i64 }>::de")]
    pub heavy_per_second: Option<u32>,
    #[serde(deserialize_with = "de::Range::<0, { u32::MAX as i64 }>::de")]
    pub resource_intensive_per_minute: Option<u32>,
    #[serde(deserialize_with = "de::Range::<0, { u32::MAX as i64 }>::de")]
    pub daily_requests: Option<u32>,
}

/// Effective limits; 0 means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedLimits {
    pub heavy_per_second: u32,
    pub resource_intensive_per_minute: u32,
    pub daily_requests: u32,
}

impl ZoomLimits {
    pub fn resolve(&self, plan: Plan) -> ResolvedLimits {
        let base = plan.limits();
        ResolvedLimits {
            heavy_per_second: self.heavy_per_second.unwrap_or(base.heavy_per_second),
            resource_intensive_per_minute: self
                .resource_intensive_per_minute
                .unwrap_or(base.resource_intensive_per_minute),
            daily_requests: self.daily_requests.unwrap_or(base.daily_requests),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Plan {
    #[default]
    Pro,
    Business,
}

impl Plan {
    /// Zoom's published limits per account (its rate-limits page); the daily pool is shared by the Heavy and
    /// Resource-intensive categories.
    pub fn limits(self) -> ResolvedLimits {
        match self {
            Plan::Pro => ResolvedLimits {
                heavy_per_second: 10,
                resource_intensive_per_minute: 10,
                daily_requests: 30_000,
            },
            Plan::Business => ResolvedLimits {
                heavy_per_second: 40,
                resource_intensive_per_minute: 20,
                daily_requests: 60_000,
            },
        }
    }
}

impl<'de> Deserialize<'de> for Plan {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de::choice(d, [("pro", Plan::Pro), ("business", Plan::Business)])
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RocketChatWorkspace {
    pub name: String,
    #[serde(deserialize_with = "de::streams")]
    pub streams: Option<Vec<String>>,
    /// Without a trailing slash.
    pub url: String,
    pub user_id: String,
    pub auth_token: SecretString,
    /// The server's zone: it buckets days by it, so windows must too.
    #[serde(deserialize_with = "de::timezone")]
    pub timezone: chrono_tz::Tz,
    #[serde(default = "de::num::<7>", deserialize_with = "de::Range::<1, 31>::de")]
    pub window_days: u32,
    #[serde(default = "de::num::<4>", deserialize_with = "de::Range::<0, 44>::de")]
    pub lookback_days: u32,
    #[serde(default = "de::num::<44>", deserialize_with = "de::Range::<1, 45>::de")]
    pub retention_days: u32,
    /// `None` keeps the server's default (10 per minute per route); 0 means no limit.
    #[serde(deserialize_with = "de::Range::<0, { u32::MAX as i64 }>::de")]
    pub requests_per_minute: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// One line per problem, each starting with the key to fix.
    #[error("{}", .problems.join("\n"))]
    Invalid { problems: Vec<String> },
}

impl Config {
    /// Reads the file at `path` (the caller resolves `--config`, `ROLLCALL_CONFIG` and the default), layers
    /// the process environment over it and validates the result.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        // `std::env::vars` panics on a variable that is not UTF-8: skip such a variable rather than crash.
        let env = std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        });
        Config::load_with_env(path, env)
    }

    /// [`Config::load`] with an explicit environment, so tests do not depend on the process's.
    pub fn load_with_env(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        parse(&text, &path.display().to_string(), Some(path), env)
    }

    /// Parses TOML text instead of a file, for callers that generate their configuration (the demo).
    pub fn from_toml_str(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        // No file, so `include` patterns resolve against the working directory.
        parse(text, "<config>", None, env)
    }

    /// What no single value's type can say: required keys, URLs (whose trailing slashes go, so callers can
    /// append `/path`), rules between keys, names unique across sections. Secrets were checked with their
    /// `*_file` keys (`de::secret`); a key that failed to deserialize is not reported again.
    fn validate(&mut self, p: &mut Problems) {
        let url = self.database.url.expose_secret();
        // Checked by scheme only, and the message never repeats the URL: it usually holds the password.
        if !(url.is_empty() || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            let expected = "expected a postgres:// or postgresql:// URL";
            p.add("database.url", expected);
        } else if !url.is_empty() {
            // Its TLS parameters: a mode libpq would reject, a certificate file that cannot be read.
            if let Err(problem) = crate::store::tls::connect_options(url) {
                p.add("database.url", problem);
            }
        }
        if let Err(message) = check_cron(&self.schedule.cron) {
            p.add("schedule.cron", message);
        }
        let level = &self.log.level;
        // An empty filter would silently log nothing.
        if level.trim().is_empty() || tracing_subscriber::EnvFilter::try_new(level).is_err() {
            let expected = "expected a filter such as \"info\" or \"rollcall=debug,info\"";
            p.add("log.level", format!("{expected}, got {}", quote(level)));
        }
        let mut names = Vec::new();
        for (i, a) in self.zoom.iter_mut().enumerate() {
            let at = format!("zoom[{i}]");
            p.required(
                &at,
                "name account_id client_id",
                [&a.name, &a.account_id, &a.client_id],
            );
            p.url(&format!("{at}.oauth_url"), &mut a.oauth_url, false);
            p.url(&format!("{at}.api_url"), &mut a.api_url, true);
            names.push((format!("{at}.name"), a.name.as_str()));
        }
        for (i, a) in self.videosdk.iter_mut().enumerate() {
            let at = format!("videosdk[{i}]");
            p.required(&at, "name api_key", [&a.name, &a.api_key]);
            p.url(&format!("{at}.api_url"), &mut a.api_url, true);
            names.push((format!("{at}.name"), a.name.as_str()));
        }
        for (i, w) in self.rocketchat.iter_mut().enumerate() {
            let at = format!("rocketchat[{i}]");
            p.required(&at, "name url user_id", [&w.name, &w.url, &w.user_id]);
            if !w.url.is_empty() {
                p.url(&format!("{at}.url"), &mut w.url, true);
            }
            names.push((format!("{at}.name"), w.name.as_str()));
            let lookback = format!("{at}.lookback_days");
            let (days, retention_days) = (w.lookback_days, w.retention_days);
            // Rocket.Chat re-aggregates a day for up to three days after it: a shorter lookback would mark
            // a day final (never walked again) while the server can still change it.
            if days < MIN_LOOKBACK_DAYS {
                p.add(&lookback, format!("must be at least {MIN_LOOKBACK_DAYS}, got {days}: the server re-aggregates up to three days back, so days younger than {MIN_LOOKBACK_DAYS} days are not final"));
            // A day must become final before the server expires it: walking an expired day again would
            // mirror its now-empty answer over the stored history.
            } else if days >= retention_days && !p.failed(&format!("{at}.retention_days")) {
                let message = format!("must be less than retention_days ({retention_days}), got");
                p.add(&lookback, format!("{message} {days}"));
            }
        }
        check_names(p, names);
        self.check_streams(p);
        self.check_upstream(p);
        policy::check_hosts(self, p);
    }
}

impl Config {
    /// `streams` names streams of the entry's own platform, at least one; the Video SDK session list and
    /// its users go together: the users are walked from the list, and a month completes only with them.
    fn check_streams(&self, p: &mut Problems) {
        let entries = (self.zoom.iter().map(|a| ("zoom", &a.streams)))
            .chain(self.videosdk.iter().map(|a| ("videosdk", &a.streams)))
            .chain(self.rocketchat.iter().map(|w| ("rocketchat", &w.streams)));
        let mut index = std::collections::HashMap::<&str, usize>::new();
        for (section, streams) in entries {
            let i = index.entry(section).or_default();
            let at = format!("{section}[{i}].streams");
            *i += 1;
            let Some(streams) = streams else { continue };
            let own = platform_streams(section);
            let listed = format!("a [[{section}]] entry has {}", own.join(", "));
            if streams.is_empty() {
                p.add(
                    &at,
                    format!(
                        "empty: list at least one stream ({listed}), or leave the key out for all"
                    ),
                );
                continue;
            }
            for (j, stream) in streams.iter().enumerate() {
                if own.contains(&stream.as_str()) {
                    continue;
                }
                let other = ["zoom", "videosdk", "rocketchat"]
                    .into_iter()
                    .find(|s| platform_streams(s).contains(&stream.as_str()));
                let message = match other {
                    Some(other) => format!("{} is a [[{other}]] stream ({listed})", quote(stream)),
                    None => format!("unknown stream {} ({listed})", quote(stream)),
                };
                p.add(&format!("{at}[{j}]"), message);
            }
            if section == "videosdk" {
                let [list, users, _] = VIDEOSDK_STREAMS;
                let has = |s: &str| streams.iter().any(|x| x == s);
                if has(users) && !has(list) {
                    p.add(
                        &at,
                        format!("{users} needs {list}: the users are walked from the session list"),
                    );
                } else if has(list) && !has(users) {
                    p.add(&at, format!("{list} needs {users}: a month of sessions completes only with its sessions' users"));
                }
            }
        }
    }

    /// One upstream account, one entry: two entries for one Zoom account, Video SDK app or Rocket.Chat
    /// user would walk the same history twice under two names and spend one rate budget twice.
    fn check_upstream(&self, p: &mut Problems) {
        let zoom = self.zoom.iter().enumerate().map(|(i, a)| {
            let at = format!("zoom[{i}].account_id");
            (
                at,
                &a.name,
                a.account_id.clone(),
                "the same Zoom account_id as",
            )
        });
        let sdk = self.videosdk.iter().enumerate().map(|(i, a)| {
            let at = format!("videosdk[{i}].api_key");
            (
                at,
                &a.name,
                a.api_key.clone(),
                "the same Video SDK api_key as",
            )
        });
        // The URL as validated (no trailing slash); the host's case does not make another server.
        let chat = self.rocketchat.iter().enumerate().map(|(i, w)| {
            let url = reqwest::Url::parse(&w.url).map_or(w.url.clone(), |u| u.to_string());
            let key = format!("{}\n{}", url.trim_end_matches('/'), w.user_id);
            let at = format!("rocketchat[{i}].user_id");
            (at, &w.name, key, "the same url and user_id as")
        });
        let mut seen = std::collections::HashMap::<String, (String, &str)>::new();
        for (at, name, key, same) in zoom.chain(sdk).chain(chat) {
            if key.is_empty() || key.ends_with('\n') || p.failed(&at) {
                continue; // missing, already reported
            }
            let section = at.split('[').next().unwrap_or("");
            match seen.get(&format!("{section}\n{key}")) {
                Some((first, first_name)) => {
                    let first = format!("{} ({})", p.refer(first, &at), quote(first_name));
                    let message = format!("{same} {first}: one upstream account, one entry (two would collect it twice under two names)");
                    p.last(&at, message);
                }
                None => {
                    seen.insert(format!("{section}\n{key}"), (at, name));
                }
            }
        }
    }
}

/// Every stream of a config section's platform.
pub fn platform_streams(section: &str) -> &'static [&'static str] {
    match section {
        "zoom" => &ZOOM_STREAMS,
        "videosdk" => &VIDEOSDK_STREAMS,
        "rocketchat" => &ROCKETCHAT_STREAMS,
        _ => &[],
    }
}

fn parse(
    text: &str,
    origin: &str,
    main: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let mut root = match text.parse::<toml::Table>() {
        Ok(root) => root,
        Err(e) => {
            return Err(ConfigError::Invalid {
                problems: vec![syntax_problem(text, origin, &e)],
            })
        }
    };
    let mut origins = Origins::default();
    origin.clone_into(&mut origins.main_label);
    let mut first = Vec::new();
    let mut env: Vec<(String, String)> = env.into_iter().collect();
    // Before the environment, so `ROLLCALL__ZOOM__<i>__...` addresses the merged list.
    let included = include::merge(&mut root, main, &mut env, &mut origins, &mut first);
    let mut root = toml::Value::Table(root);
    env::apply(&mut root, env, &mut origins, &mut first);
    let mut problems = Problems::new(&origins, first);
    let mut config = de::deserialize(root, &mut problems);
    config.validate(&mut problems);
    let problems = problems.into_lines();
    if problems.is_empty() {
        Ok(Config { included, ..config })
    } else {
        Err(ConfigError::Invalid { problems })
    }
}

/// Parsed by the same parser the scheduler uses, so a schedule accepted here cannot fail at `run` time.
fn check_cron(cron: &str) -> Result<(), String> {
    let fields = cron.split_whitespace().count();
    if fields != 6 {
        return Err(format!("expected 6 fields (seconds first), got {fields}"));
    }
    tokio_cron_scheduler::Job::new_async(cron, |_, _| Box::pin(async {}))
        .map(drop)
        .map_err(|_| {
            let fields = "fields: second minute hour day-of-month month day-of-week";
            format!("cannot parse {} ({fields})", quote(cron))
        })
}

/// Names are the `account` column of every table, so they must be unique across all sections, not only
/// within one, and plain enough for `--account` and metric labels.
fn check_names(p: &mut Problems, names: Vec<(String, &str)>) {
    let mut seen = std::collections::HashMap::<&str, String>::new();
    for (path, name) in names {
        if name.is_empty() {
            continue; // already reported as missing
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        {
            let message = "expected only letters, digits, \"_\", \".\" and \"-\", got";
            p.last(&path, format!("{message} {}", quote(name)));
        }
        match seen.get(name) {
            Some(first) => {
                let used = format!("is already used by {}", p.refer(first, &path));
                p.last(&path, format!("{} {used}", quote(name)));
            }
            None => {
                seen.insert(name, path);
            }
        }
    }
}

/// Only the parser's message and position: toml's own `Display` quotes the offending line, which may hold a
/// secret (an unterminated `client_secret = "...` for one).
fn syntax_problem(text: &str, origin: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end();
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("{origin}:{line}:{column}: invalid TOML: {message}")
        }
        None => format!("{origin}: invalid TOML: {message}"),
    }
}

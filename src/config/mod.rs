//! The typed configuration: a TOML file layered with environment variables, validated all at once.
//!
//! The layering is done by hand on a `toml::Value` tree rather than with the `config` crate: config-rs
//! cannot address array entries from the environment (`ROLLCALL__ZOOM__0__CLIENT_SECRET`), and building the
//! typed structs by hand lets validation report every problem at once, each naming its key, where serde
//! would stop at the first one.
//!
//! Order of the layers: the main file, then the account files it `include`s (appended, see `include.rs`),
//! then the environment, so an override's index counts the merged list.

mod build;
mod env;
mod include;
mod reader;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use secrecy::SecretString;

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

#[derive(Debug, Clone)]
pub struct Config {
    pub database: DatabaseConfig,
    pub schedule: ScheduleConfig,
    pub http: HttpConfig,
    pub log: LogConfig,
    pub collector: CollectorConfig,
    pub zoom: Vec<ZoomAccount>,
    pub videosdk: Vec<VideoSdkAccount>,
    pub rocketchat: Vec<RocketChatWorkspace>,
    /// The files `include` named, in the order their entries were appended (`rollcall check --offline`
    /// lists them).
    pub included: Vec<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// A secret because the URL usually carries the password.
    pub url: SecretString,
    pub max_connections: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Per request, so one stalled connection cannot hold a window's lease forever.
    pub timeout_secs: u64,
    /// The largest response body read, in MiB, so a broken or hostile server cannot exhaust memory.
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

#[derive(Debug, Clone, PartialEq, Eq)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Text on a terminal, JSON otherwise (journald, containers).
    Auto,
    Text,
    Json,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Auto => "auto",
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorConfig {
    /// Renewed at a third of it, so at least 3 leaves a whole second between renewals.
    pub lease_secs: u64,
    pub max_retries: u32,
    pub retry_base_ms: u64,
    /// Windows of one (account, stream) walked at once. The account's pacer keeps the rate; this only has
    /// to cover rate × reply latency (Pro: 10/s × 1.6 s, Business: 40/s × 0.4 s at the default).
    pub windows_in_flight: u32,
    /// Windows walked at once by the whole process, across every account and stream: what bounds the
    /// process's memory and its demand on the connection pool however many accounts are configured.
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

#[derive(Debug, Clone)]
pub struct ZoomAccount {
    pub name: String,
    pub account_id: String,
    pub client_id: String,
    pub client_secret: SecretString,
    /// Without a trailing slash, so paths can be appended as `{api_url}/report/users`.
    pub api_url: String,
    pub oauth_url: String,
    pub plan: Plan,
    pub page_size: u32,
    pub settle_days: u32,
    pub horizon_days: Option<u32>,
    pub limits: ZoomLimits,
}

#[derive(Debug, Clone)]
pub struct VideoSdkAccount {
    pub name: String,
    pub api_key: String,
    pub api_secret: SecretString,
    /// Without a trailing slash.
    pub api_url: String,
    pub plan: Plan,
    pub page_size: u32,
    pub settle_days: u32,
    pub horizon_days: Option<u32>,
    pub limits: ZoomLimits,
}

/// Per-account overrides of the plan's rate limits: `None` keeps the plan's value, `Some(0)` means no limit
/// (for sandboxes and benchmarks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ZoomLimits {
    pub heavy_per_second: Option<u32>,
    pub resource_intensive_per_minute: Option<u32>,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    Pro,
    Business,
}

impl Plan {
    /// Zoom's published limits per account (research/zoom-api.md); the daily pool is shared by the Heavy and
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

    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Pro => "pro",
            Plan::Business => "business",
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct RocketChatWorkspace {
    pub name: String,
    /// Without a trailing slash.
    pub url: String,
    pub user_id: String,
    pub auth_token: SecretString,
    /// The server's zone: it buckets days by it, so windows must too.
    pub timezone: chrono_tz::Tz,
    pub window_days: u32,
    pub lookback_days: u32,
    pub retention_days: u32,
    /// `None` keeps the server's default (10 per minute per route); 0 means no limit.
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
        let base = include::Base {
            dir: path.parent().unwrap_or(Path::new("")),
            main: Some(path),
        };
        parse(&text, &path.display().to_string(), &base, env)
    }

    /// Parses TOML text instead of a file, for callers that generate their configuration (the demo).
    pub fn from_toml_str(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        // No file, so `include` patterns resolve against the working directory.
        let base = include::Base {
            dir: Path::new(""),
            main: None,
        };
        parse(text, "<config>", &base, env)
    }
}

fn parse(
    text: &str,
    origin: &str,
    base: &include::Base,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let root: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Invalid {
            problems: vec![syntax_problem(text, origin, &e)],
        })?;
    let mut root = root;
    let mut origins = reader::Origins::default();
    origins.set_main_label(origin);
    let mut problems = Vec::new();
    let mut env: Vec<(String, String)> = env.into_iter().collect();
    // Before the environment, so `ROLLCALL__ZOOM__<i>__...` addresses the merged list.
    let included = include::merge(&mut root, base, &mut env, &mut origins, &mut problems);
    let mut root = toml::Value::Table(root);
    env::apply(&mut root, env, &mut origins, &mut problems);
    let toml::Value::Table(root) = root else {
        // `env::apply` only ever edits inside the root table.
        return Err(ConfigError::Invalid {
            problems: vec![format!("{origin}: not a table")],
        });
    };
    match build::build(root, &origins) {
        Ok(config) if problems.is_empty() => Ok(Config { included, ..config }),
        Ok(_) => Err(ConfigError::Invalid { problems }),
        Err(more) => {
            problems.extend(more);
            Err(ConfigError::Invalid { problems })
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

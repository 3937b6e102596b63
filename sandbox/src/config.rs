//! The sandbox's configuration: a TOML file or a struct built in a test.

use std::collections::HashSet;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

/// Zoom accounts are generated lazily, but a scan of one month still visits
/// every user once (for the totals), so this caps the cost of that scan.
pub const MAX_USERS: u64 = 10_000_000;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxConfig {
    /// `host:port`; port 0 picks a free port (see `Sandbox::base_url`).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Seeds every generated value, so two sandboxes with the same seed serve the same data.
    #[serde(default)]
    pub seed: u64,
    /// Zoom's `next_page_token` lives 15 minutes.
    #[serde(default = "default_page_token_ttl")]
    pub page_token_ttl_secs: u64,
    #[serde(default = "default_access_token_ttl")]
    pub access_token_ttl_secs: u64,
    /// A fixed "today" (UTC) makes the six-month horizon reproducible; `None` follows the clock.
    #[serde(default)]
    pub today: Option<chrono::NaiveDate>,
    /// Without a fixed `today`: the calendar is the clock's moved by this many days (time of day and the
    /// passing of time stay real), so a test can run the sandbox and rollcall on one shifted calendar and
    /// every workspace's local date follows it as a real server's would.
    #[serde(default)]
    pub calendar_shift_days: i64,
    /// The sandbox's clock for token times (a Video SDK JWT's `iat` and `exp`) is the system's plus this many
    /// seconds: negative plays a Zoom whose clock is behind the collector's host.
    #[serde(default)]
    pub token_clock_offset_secs: i64,
    #[serde(default)]
    pub zoom: Vec<ZoomAccountSpec>,
    #[serde(default)]
    pub rocketchat: Vec<crate::rocketchat::RocketChatWorkspaceSpec>,
    /// Video SDK accounts, authorised by their own API key and secret (JWT).
    #[serde(default)]
    pub videosdk: Vec<crate::videosdk::VideoSdkAccountSpec>,
    /// How long every API reply takes, in ms: real Zoom answers in 200 ms to 2 s, and a collector that
    /// waits for each reply before the next request only shows its real rate against such latency. Applied
    /// after the rate limits counted the request, as a real server's processing time. 0 = at once.
    #[serde(default)]
    pub reply_latency_ms: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoomAccountSpec {
    pub account_id: String,
    pub client_id: String,
    pub client_secret: String,
    /// Users in this account; each month each user is either active or inactive.
    pub users: u64,
    #[serde(default = "default_active_percent")]
    pub active_percent: u8,
    /// Zoom's per-account rate limits, enforced with 429s as Zoom sends them; `None` enforces nothing, so
    /// tests and benchmarks that do not study pacing run at full speed.
    #[serde(default)]
    pub rate_limits: Option<crate::limits::ZoomRateLimits>,
}

fn default_listen() -> String {
    "127.0.0.1:8090".to_owned()
}

fn default_page_token_ttl() -> u64 {
    900
}

fn default_access_token_ttl() -> u64 {
    3600
}

fn default_active_percent() -> u8 {
    40
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            seed: 0,
            page_token_ttl_secs: default_page_token_ttl(),
            access_token_ttl_secs: default_access_token_ttl(),
            today: None,
            calendar_shift_days: 0,
            token_clock_offset_secs: 0,
            zoom: Vec::new(),
            rocketchat: Vec::new(),
            reply_latency_ms: 0,
            videosdk: Vec::new(),
        }
    }
}

impl SandboxConfig {
    pub fn from_toml_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read sandbox config {}", path.display()))?;
        let config: Self = toml::from_str(&text)
            .with_context(|| format!("invalid sandbox config {}", path.display()))?;
        config
            .validate()
            .with_context(|| format!("invalid sandbox config {}", path.display()))?;
        Ok(config)
    }

    /// Reports every problem at once, naming the key, so a broken file is fixed in one go.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        let mut account_ids = HashSet::new();
        let mut client_ids = HashSet::new();
        for (i, account) in self.zoom.iter().enumerate() {
            if account.account_id.is_empty() {
                problems.push(format!("zoom[{i}].account_id: must not be empty"));
            } else if !account_ids.insert(account.account_id.as_str()) {
                problems.push(format!(
                    "zoom[{i}].account_id: {:?} is used by an earlier account",
                    account.account_id
                ));
            }
            // OAuth finds the account by client id, so it must be unique.
            if account.client_id.is_empty() {
                problems.push(format!("zoom[{i}].client_id: must not be empty"));
            } else if !client_ids.insert(account.client_id.as_str()) {
                problems.push(format!(
                    "zoom[{i}].client_id: {:?} is used by an earlier account",
                    account.client_id
                ));
            }
            if account.users > MAX_USERS {
                problems.push(format!(
                    "zoom[{i}].users: must be at most {MAX_USERS}, got {}",
                    account.users
                ));
            }
            if account.active_percent > 100 {
                problems.push(format!(
                    "zoom[{i}].active_percent: must be at most 100, got {}",
                    account.active_percent
                ));
            }
        }
        crate::rocketchat::RocketChatWorkspaceSpec::validate(&self.rocketchat, &mut problems);
        crate::videosdk::VideoSdkAccountSpec::validate(&self.videosdk, &mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("{}", problems.join("\n"))
        }
    }
}

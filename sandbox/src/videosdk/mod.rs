//! The fake Zoom Video SDK API: `GET /v2/videosdk/sessions`, `GET /v2/videosdk/sessions/{id}/users` and
//! `GET /v2/videosdk/report/daily`, authorised by an HS256 JWT per account (research/zoom-api.md §2, §3b).

mod api;
mod control;
mod daily;
mod data;
mod jwt;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use crate::lock;
use crate::Shared;
pub(crate) use control::control_routes;
use data::{SdkAccount, SessionSlot};

/// More would make a month's truth, which is materialised, a long scan.
pub const MAX_SESSIONS_PER_MONTH: u32 = 100_000;
pub const MAX_USERS_PER_SESSION: u32 = 10_000;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoSdkAccountSpec {
    /// The JWT's `iss`; also names the account in the request log and fault rules.
    pub api_key: String,
    pub api_secret: String,
    #[serde(default = "default_sessions")]
    pub sessions_per_month: u32,
    /// Joins per session are 1 ..= this; every fourth join is a rejoin.
    #[serde(default = "default_users")]
    pub users_per_session: u32,
    /// The account's Zoom rate limits (the list is Resource-intensive, the users Heavy); `None` enforces
    /// nothing.
    #[serde(default)]
    pub rate_limits: Option<crate::limits::ZoomRateLimits>,
}

fn default_sessions() -> u32 {
    12
}

fn default_users() -> u32 {
    6
}

impl VideoSdkAccountSpec {
    pub(crate) fn validate(specs: &[Self], problems: &mut Vec<String>) {
        let mut keys = HashSet::new();
        for (i, s) in specs.iter().enumerate() {
            if s.api_key.is_empty() {
                problems.push(format!("videosdk[{i}].api_key: must not be empty"));
            } else if !keys.insert(s.api_key.as_str()) {
                problems.push(format!(
                    "videosdk[{i}].api_key: {:?} is used by an earlier account",
                    s.api_key
                ));
            }
            if s.api_secret.is_empty() {
                problems.push(format!("videosdk[{i}].api_secret: must not be empty"));
            }
            if s.sessions_per_month > MAX_SESSIONS_PER_MONTH {
                problems.push(format!(
                    "videosdk[{i}].sessions_per_month: must be at most {MAX_SESSIONS_PER_MONTH}, got {}",
                    s.sessions_per_month
                ));
            }
            if s.users_per_session > MAX_USERS_PER_SESSION {
                problems.push(format!(
                    "videosdk[{i}].users_per_session: must be at most {MAX_USERS_PER_SESSION}, got {}",
                    s.users_per_session
                ));
            }
        }
    }
}

pub(crate) struct SdkState {
    accounts: Vec<Arc<SdkAccount>>,
    /// (account, session id) served as still running: no end_time, and no leave_time for those in it.
    open: Mutex<HashSet<(usize, String)>>,
    /// Ids a test added per account (`Control::add_sdk_session`), in order: sessions of today's month, served
    /// after the generated ones, for ids the generator never makes (`.`, `..`, `%`, NUL).
    extra: Mutex<Vec<(usize, String)>>,
    /// (account, day) whose daily report serves this session count instead of the listed sessions'.
    daily_sessions: Mutex<HashMap<(usize, chrono::NaiveDate), u64>>,
    /// (account, session id) served as having run this many minutes longer than generated: a later
    /// end_time, and later leave times for those who stayed to the end.
    extended: Mutex<HashMap<(usize, String), i64>>,
}

impl SdkState {
    pub fn new(seed: u64, specs: &[VideoSdkAccountSpec]) -> Self {
        Self {
            accounts: specs
                .iter()
                .map(|s| Arc::new(SdkAccount::new(seed, s.clone())))
                .collect(),
            open: Mutex::default(),
            extra: Mutex::default(),
            daily_sessions: Mutex::default(),
            extended: Mutex::default(),
        }
    }

    /// The account's extra session ids, in the order they were added.
    fn extras(&self, account: usize) -> Vec<String> {
        lock(&self.extra)
            .iter()
            .filter(|(a, _)| *a == account)
            .map(|(_, id)| id.clone())
            .collect()
    }

    fn account_by_key(&self, api_key: &str) -> Option<usize> {
        self.accounts.iter().position(|a| a.spec.api_key == api_key)
    }

    fn is_open(&self, account: usize, id: &str) -> bool {
        lock(&self.open).contains(&(account, id.to_owned()))
    }

    /// `slot` of session `id` as served now: its end moved by [`crate::control::Control::set_sdk_session_extended`].
    fn served_slot(&self, account: usize, id: &str, mut slot: SessionSlot) -> SessionSlot {
        if let Some(minutes) = lock(&self.extended).get(&(account, id.to_owned())) {
            slot.late = chrono::Duration::minutes(*minutes);
        }
        slot
    }
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v2/videosdk/sessions", get(api::list_sessions))
        .route("/v2/videosdk/sessions/{id}/users", get(api::session_users))
        .route("/v2/videosdk/report/daily", get(daily::report_daily))
}

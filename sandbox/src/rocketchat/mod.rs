//! The fake Rocket.Chat: `GET /api/v1/engagement-dashboard/users/active-users` for any number of
//! workspaces, each served under `/rocketchat/{name}` as if it were its own server, with its own time zone,
//! seeded daily sessions (with quiet days), the ~45-day TTL, the per-route rate limit and Rocket.Chat's
//! error bodies (research/rocketchat-api.md).

pub(crate) mod active_users;
mod control;
pub(crate) mod errors;

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use axum::routing::get;
use axum::Router;
use chrono::NaiveDate;
use serde::Deserialize;

use crate::data::{hash, hash_str, unit};
use crate::{lock, Shared};

pub(crate) use control::routes as control_routes;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RocketChatWorkspaceSpec {
    /// The path segment the workspace is served under: `{base}/rocketchat/{name}` is its `url`.
    pub name: String,
    /// Expected in `X-User-Id`.
    pub user_id: String,
    /// Expected in `X-Auth-Token`.
    pub auth_token: String,
    /// The server's IANA zone: days are bucketed by it, and "today" is its local date.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// The pool of users; each day each of them has a session with `active_percent` chance.
    #[serde(default = "default_users")]
    pub users: u32,
    #[serde(default = "default_active_percent")]
    pub active_percent: u8,
    /// Days on which nobody logged in: the API leaves them out of `month[]`.
    #[serde(default = "default_quiet_day_percent")]
    pub quiet_day_percent: u8,
    /// Days older than this (today minus the day) are deleted, as MongoDB's TTL index does.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// Calls allowed per `rate_limit_window_ms` on the route; 0 turns the limiter off (Rocket.Chat: 10).
    #[serde(default)]
    pub rate_limit_calls: u32,
    #[serde(default = "default_rate_limit_window_ms")]
    pub rate_limit_window_ms: u64,
    /// Without the `engagement-dashboard` license module every call is a 400 `error-action-not-allowed`.
    #[serde(default = "yes")]
    pub licensed: bool,
    /// Whether the user holds `view-engagement-dashboard` (403 otherwise).
    #[serde(default = "yes")]
    pub permitted: bool,
}

fn default_timezone() -> String {
    "UTC".into()
}
fn default_users() -> u32 {
    40
}
fn default_active_percent() -> u8 {
    35
}
fn default_quiet_day_percent() -> u8 {
    15
}
fn default_retention_days() -> u32 {
    45
}
fn default_rate_limit_window_ms() -> u64 {
    60_000
}
fn yes() -> bool {
    true
}

/// Generated ids are at most this many per day; the scan per request is days × users.
pub const MAX_RC_USERS: u32 = 1_000_000;

impl RocketChatWorkspaceSpec {
    /// A licensed, permitted workspace without a rate limit; credentials derive from the name.
    pub fn new(name: &str, timezone: &str) -> RocketChatWorkspaceSpec {
        RocketChatWorkspaceSpec {
            name: name.into(),
            user_id: format!("{name}-collector"),
            auth_token: format!("{name}-pat-s3cr3t"),
            timezone: timezone.into(),
            users: default_users(),
            active_percent: default_active_percent(),
            quiet_day_percent: default_quiet_day_percent(),
            retention_days: default_retention_days(),
            rate_limit_calls: 0,
            rate_limit_window_ms: default_rate_limit_window_ms(),
            licensed: true,
            permitted: true,
        }
    }

    pub(crate) fn validate(specs: &[RocketChatWorkspaceSpec], problems: &mut Vec<String>) {
        let mut names = std::collections::HashSet::new();
        for (i, spec) in specs.iter().enumerate() {
            let plain = !spec.name.is_empty()
                && spec
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !plain {
                problems.push(format!(
                    "rocketchat[{i}].name: expected letters, digits, '-', '_' or '.', got {:?}",
                    spec.name
                ));
            } else if !names.insert(spec.name.as_str()) {
                problems.push(format!(
                    "rocketchat[{i}].name: {:?} is used by an earlier workspace",
                    spec.name
                ));
            }
            if spec.timezone.parse::<chrono_tz::Tz>().is_err() {
                problems.push(format!(
                    "rocketchat[{i}].timezone: unknown time zone {:?}",
                    spec.timezone
                ));
            }
            if spec.users > MAX_RC_USERS {
                problems.push(format!(
                    "rocketchat[{i}].users: must be at most {MAX_RC_USERS}, got {}",
                    spec.users
                ));
            }
            for (key, value) in [
                ("active_percent", spec.active_percent),
                ("quiet_day_percent", spec.quiet_day_percent),
            ] {
                if value > 100 {
                    problems.push(format!(
                        "rocketchat[{i}].{key}: must be at most 100, got {value}"
                    ));
                }
            }
            if spec.rate_limit_calls > 0 && spec.rate_limit_window_ms == 0 {
                problems.push(format!(
                    "rocketchat[{i}].rate_limit_window_ms: must be positive when rate_limit_calls is set"
                ));
            }
        }
    }
}

pub(crate) struct Workspace {
    pub spec: RocketChatWorkspaceSpec,
    pub tz: chrono_tz::Tz,
    key: u64,
    /// Days whose user set a test changed; they replace the generated set.
    edited: Mutex<HashMap<NaiveDate, BTreeSet<String>>>,
    pub rate: Mutex<RateWindow>,
}

/// Meteor's limiter counts calls in fixed intervals that start with the first call.
#[derive(Default)]
pub(crate) struct RateWindow {
    pub started_ms: i64,
    pub used: u32,
}

pub(crate) struct RcState {
    seed: u64,
    pub workspaces: Vec<Workspace>,
}

impl RcState {
    pub fn new(seed: u64, specs: &[RocketChatWorkspaceSpec]) -> RcState {
        RcState {
            seed,
            workspaces: specs
                .iter()
                .map(|spec| Workspace {
                    tz: spec.timezone.parse().unwrap_or(chrono_tz::UTC),
                    key: hash_str(&spec.name),
                    spec: spec.clone(),
                    edited: Mutex::default(),
                    rate: Mutex::default(),
                })
                .collect(),
        }
    }

    pub fn workspace(&self, name: &str) -> Option<&Workspace> {
        self.workspaces.iter().find(|w| w.spec.name == name)
    }

    /// The server's local date, or the pinned `today` of the sandbox config.
    pub fn today(&self, shared: &Shared, ws: &Workspace) -> NaiveDate {
        shared
            .today
            .unwrap_or_else(|| shared.now().with_timezone(&ws.tz).date_naive())
    }

    /// The user ids with a session that day, as the server holds them now: nothing for future days or
    /// days its TTL already deleted.
    pub fn users_on(&self, ws: &Workspace, today: NaiveDate, day: NaiveDate) -> BTreeSet<String> {
        if day > today || (today - day).num_days() > i64::from(ws.spec.retention_days) {
            return BTreeSet::new();
        }
        if let Some(edited) = lock(&ws.edited).get(&day) {
            return edited.clone();
        }
        self.generated(ws, day)
    }

    fn generated(&self, ws: &Workspace, day: NaiveDate) -> BTreeSet<String> {
        let day_key = day.num_days_from_ce_u64();
        if unit(hash(&[self.seed, ws.key, day_key, 0x9d1e])) * 100.0
            < f64::from(ws.spec.quiet_day_percent)
        {
            return BTreeSet::new();
        }
        (0..u64::from(ws.spec.users))
            .filter(|&i| {
                unit(hash(&[self.seed, ws.key, day_key, i, 0xac71])) * 100.0
                    < f64::from(ws.spec.active_percent)
            })
            .map(|i| self.user_id(ws, i))
            .collect()
    }

    /// A Meteor-style 17-character `_id`, the same for that user on every day.
    pub fn user_id(&self, ws: &Workspace, index: u64) -> String {
        const ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz";
        (0..17_u64)
            .map(|k| {
                let h = hash(&[self.seed, ws.key, index, k, 0x1d5]);
                char::from(ALPHABET[(h % ALPHABET.len() as u64) as usize])
            })
            .collect()
    }

    /// Replaces the day's set with `edit` applied to what is served now.
    pub fn edit_day(
        &self,
        ws: &Workspace,
        today: NaiveDate,
        day: NaiveDate,
        edit: impl FnOnce(&mut BTreeSet<String>),
    ) {
        let mut current = self.users_on(ws, today, day);
        edit(&mut current);
        lock(&ws.edited).insert(day, current);
    }
}

trait DayNumber {
    fn num_days_from_ce_u64(&self) -> u64;
}

impl DayNumber for NaiveDate {
    fn num_days_from_ce_u64(&self) -> u64 {
        use chrono::Datelike;
        u64::try_from(self.num_days_from_ce()).unwrap_or_default()
    }
}

pub(crate) fn routes() -> Router<std::sync::Arc<Shared>> {
    Router::new().route(
        "/rocketchat/{workspace}/api/v1/engagement-dashboard/users/active-users",
        get(active_users::handler),
    )
}

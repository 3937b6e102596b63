//! Builds the typed [`Config`] from the layered tree, section by section, collecting every problem.

use std::collections::HashMap;
use std::net::SocketAddr;

use toml::Table;

use super::reader::{quote, Ctx, Origins, Section};
use super::*;

const PLANS: &[(&str, Plan)] = &[("pro", Plan::Pro), ("business", Plan::Business)];
const LOG_FORMATS: &[(&str, LogFormat)] = &[
    ("auto", LogFormat::Auto),
    ("text", LogFormat::Text),
    ("json", LogFormat::Json),
];
/// Days Rocket.Chat may still change (it re-aggregates up to three days back) plus today.
const MIN_LOOKBACK_DAYS: u32 = 4;
const ACCOUNT_HINT: &str = "set it or {key}_file";

pub(super) fn build(root: Table, origins: &Origins) -> Result<Config, Vec<String>> {
    let mut cx = Ctx::new(origins);
    let mut root = Section::new(String::new(), root);

    let s = cx.section(&mut root, "database");
    let database = database(&mut cx, s);
    let s = cx.section(&mut root, "schedule");
    let schedule = schedule(&mut cx, s);
    let s = cx.section(&mut root, "http");
    let http = http(&mut cx, s);
    let s = cx.section(&mut root, "log");
    let log = log(&mut cx, s);
    let s = cx.section(&mut root, "collector");
    let collector = collector(&mut cx, s);
    let zoom: Vec<ZoomAccount> = cx
        .sections(&mut root, "zoom")
        .into_iter()
        .map(|s| zoom_account(&mut cx, s))
        .collect();
    let videosdk: Vec<VideoSdkAccount> = cx
        .sections(&mut root, "videosdk")
        .into_iter()
        .map(|s| videosdk_account(&mut cx, s))
        .collect();
    let rocketchat: Vec<RocketChatWorkspace> = cx
        .sections(&mut root, "rocketchat")
        .into_iter()
        .map(|s| rocketchat(&mut cx, s))
        .collect();
    cx.finish(root);

    let names = zoom
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("zoom[{i}].name"), a.name.as_str()))
        .chain(
            videosdk
                .iter()
                .enumerate()
                .map(|(i, a)| (format!("videosdk[{i}].name"), a.name.as_str())),
        )
        .chain(
            rocketchat
                .iter()
                .enumerate()
                .map(|(i, w)| (format!("rocketchat[{i}].name"), w.name.as_str())),
        );
    check_names(&mut cx, names);

    if cx.problems.is_empty() {
        Ok(Config {
            database,
            schedule,
            http,
            log,
            collector,
            zoom,
            videosdk,
            rocketchat,
            included: Vec::new(),
        })
    } else {
        Err(cx.problems)
    }
}

fn database(cx: &mut Ctx, mut s: Section) -> DatabaseConfig {
    let url = cx.secret(&mut s, "url", "set it, url_file or DATABASE_URL");
    {
        use secrecy::ExposeSecret;
        let text = url.expose_secret();
        // Checked by scheme only, and the message never repeats the URL: it usually holds the password.
        if !(text.is_empty()
            || text.starts_with("postgres://")
            || text.starts_with("postgresql://"))
        {
            cx.problem(
                &s.key_path("url"),
                "expected a postgres:// or postgresql:// URL",
            );
        }
    }
    let max_connections = cx.u32_or(&mut s, "max_connections", DEFAULT_MAX_CONNECTIONS, 1, 1_000);
    cx.finish(s);
    DatabaseConfig {
        url,
        max_connections,
    }
}

fn schedule(cx: &mut Ctx, mut s: Section) -> ScheduleConfig {
    let default = ScheduleConfig::default();
    let path = s.key_path("cron");
    let cron = match cx.string(&mut s, "cron") {
        Some(cron) => {
            if let Err(message) = check_cron(&cron) {
                cx.problem(&path, message);
            }
            cron
        }
        None => default.cron,
    };
    let run_on_start = cx.bool_or(&mut s, "run_on_start", default.run_on_start);
    cx.finish(s);
    ScheduleConfig { cron, run_on_start }
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
            format!(
                "cannot parse {} (fields: second minute hour day-of-month month day-of-week)",
                quote(cron)
            )
        })
}

fn http(cx: &mut Ctx, mut s: Section) -> HttpConfig {
    let default = HttpConfig::default();
    let path = s.key_path("listen");
    let listen = match cx.string(&mut s, "listen") {
        Some(text) => text.trim().parse::<SocketAddr>().unwrap_or_else(|_| {
            cx.problem(
                &path,
                format!(
                    "expected an IP address and port such as \"127.0.0.1:9187\", got {}",
                    quote(&text)
                ),
            );
            default.listen
        }),
        None => default.listen,
    };
    let timeout_secs = cx.u64_or(&mut s, "timeout_secs", default.timeout_secs, 1, 600);
    let max_body_mib = cx.u64_or(&mut s, "max_body_mib", default.max_body_mib, 1, 4096);
    cx.finish(s);
    HttpConfig {
        listen,
        timeout_secs,
        max_body_mib,
    }
}

fn log(cx: &mut Ctx, mut s: Section) -> LogConfig {
    let default = LogConfig::default();
    let format = cx.choice(&mut s, "format", default.format, LOG_FORMATS);
    let path = s.key_path("level");
    let level = match cx.string(&mut s, "level") {
        Some(level) => {
            // An empty filter would silently log nothing.
            if level.trim().is_empty() || tracing_subscriber::EnvFilter::try_new(&level).is_err() {
                cx.problem(
                    &path,
                    format!(
                        "expected a filter such as \"info\" or \"rollcall=debug,info\", got {}",
                        quote(&level)
                    ),
                );
            }
            level
        }
        None => default.level,
    };
    cx.finish(s);
    LogConfig { format, level }
}

fn collector(cx: &mut Ctx, mut s: Section) -> CollectorConfig {
    let default = CollectorConfig::default();
    let lease_secs = cx.u64_or(&mut s, "lease_secs", default.lease_secs, 3, 86_400);
    let max_retries = cx.u32_or(&mut s, "max_retries", default.max_retries, 0, 100);
    let retry_base_ms = cx.u64_or(&mut s, "retry_base_ms", default.retry_base_ms, 1, 600_000);
    let windows_in_flight = cx.u32_or(
        &mut s,
        "windows_in_flight",
        default.windows_in_flight,
        1,
        256,
    );
    let max_windows_in_flight = cx.u32_or(
        &mut s,
        "max_windows_in_flight",
        default.max_windows_in_flight,
        1,
        4_096,
    );
    cx.finish(s);
    CollectorConfig {
        lease_secs,
        max_retries,
        retry_base_ms,
        windows_in_flight,
        max_windows_in_flight,
    }
}

/// The keys `[[zoom]]` and `[[videosdk]]` share, read in the same order for both.
struct ZoomCommon {
    api_url: String,
    plan: Plan,
    page_size: u32,
    settle_days: u32,
    horizon_days: Option<u32>,
    limits: ZoomLimits,
}

fn zoom_common(cx: &mut Ctx, s: &mut Section) -> ZoomCommon {
    ZoomCommon {
        api_url: cx.url(s, "api_url", Some(DEFAULT_ZOOM_API_URL), true),
        plan: cx.choice(s, "plan", Plan::Pro, PLANS),
        page_size: cx.u32_or(s, "page_size", MAX_PAGE_SIZE, 1, MAX_PAGE_SIZE),
        settle_days: cx.u32_or(s, "settle_days", 2, 0, 90),
        horizon_days: cx.opt_u32(s, "horizon_days", 1, 3_650),
        limits: ZoomLimits {
            heavy_per_second: cx.opt_u32(s, "heavy_per_second", 0, u32::MAX),
            resource_intensive_per_minute: cx.opt_u32(
                s,
                "resource_intensive_per_minute",
                0,
                u32::MAX,
            ),
            daily_requests: cx.opt_u32(s, "daily_requests", 0, u32::MAX),
        },
    }
}

fn hint(key: &str) -> String {
    ACCOUNT_HINT.replace("{key}", key)
}

fn zoom_account(cx: &mut Ctx, mut s: Section) -> ZoomAccount {
    let name = cx.required(&mut s, "name");
    let account_id = cx.required(&mut s, "account_id");
    let client_id = cx.required(&mut s, "client_id");
    let client_secret = cx.secret(&mut s, "client_secret", &hint("client_secret"));
    let oauth_url = cx.url(&mut s, "oauth_url", Some(DEFAULT_ZOOM_OAUTH_URL), false);
    let c = zoom_common(cx, &mut s);
    cx.finish(s);
    ZoomAccount {
        name,
        account_id,
        client_id,
        client_secret,
        api_url: c.api_url,
        oauth_url,
        plan: c.plan,
        page_size: c.page_size,
        settle_days: c.settle_days,
        horizon_days: c.horizon_days,
        limits: c.limits,
    }
}

fn videosdk_account(cx: &mut Ctx, mut s: Section) -> VideoSdkAccount {
    let name = cx.required(&mut s, "name");
    let api_key = cx.required(&mut s, "api_key");
    let api_secret = cx.secret(&mut s, "api_secret", &hint("api_secret"));
    let c = zoom_common(cx, &mut s);
    cx.finish(s);
    VideoSdkAccount {
        name,
        api_key,
        api_secret,
        api_url: c.api_url,
        plan: c.plan,
        page_size: c.page_size,
        settle_days: c.settle_days,
        horizon_days: c.horizon_days,
        limits: c.limits,
    }
}

fn rocketchat(cx: &mut Ctx, mut s: Section) -> RocketChatWorkspace {
    let name = cx.required(&mut s, "name");
    let url = cx.url(&mut s, "url", None, true);
    let user_id = cx.required(&mut s, "user_id");
    let auth_token = cx.secret(&mut s, "auth_token", &hint("auth_token"));
    let tz_path = s.key_path("timezone");
    let timezone = match cx.string(&mut s, "timezone") {
        Some(text) => text.parse::<chrono_tz::Tz>().unwrap_or_else(|_| {
            cx.problem(&tz_path, format!("unknown time zone {}", quote(&text)));
            chrono_tz::UTC
        }),
        None => chrono_tz::UTC,
    };
    let window_days = cx.u32_or(&mut s, "window_days", 7, 1, 31);
    let before = cx.problems.len();
    let lookback_days = cx.u32_or(&mut s, "lookback_days", 4, 0, 44);
    let mut lookback_valid = cx.problems.len() == before;
    // Rocket.Chat re-aggregates a day for up to three days after it: a shorter lookback would mark a day
    // final (never walked again) while the server can still change it.
    if lookback_valid && lookback_days < MIN_LOOKBACK_DAYS {
        lookback_valid = false;
        cx.problem(
            &s.key_path("lookback_days"),
            format!(
                "must be at least {MIN_LOOKBACK_DAYS}, got {lookback_days}: the server re-aggregates up to three days back, so days younger than {MIN_LOOKBACK_DAYS} days are not final"
            ),
        );
    }
    let before = cx.problems.len();
    let retention_days = cx.u32_or(&mut s, "retention_days", 44, 1, 45);
    // A day must become final before the server expires it: walking an expired day again would mirror its
    // now-empty answer over the stored history. Skipped when either value was already reported.
    if lookback_valid && cx.problems.len() == before && lookback_days >= retention_days {
        cx.problem(
            &s.key_path("lookback_days"),
            format!("must be less than retention_days ({retention_days}), got {lookback_days}"),
        );
    }
    let requests_per_minute = cx.opt_u32(&mut s, "requests_per_minute", 0, u32::MAX);
    cx.finish(s);
    RocketChatWorkspace {
        name,
        url,
        user_id,
        auth_token,
        timezone,
        window_days,
        lookback_days,
        retention_days,
        requests_per_minute,
    }
}

/// Names are the `account` column of every table, so they must be unique across all sections, not only
/// within one, and plain enough for `--account` and metric labels.
fn check_names<'n>(cx: &mut Ctx, names: impl Iterator<Item = (String, &'n str)>) {
    let mut seen: HashMap<&str, String> = HashMap::new();
    for (path, name) in names {
        if name.is_empty() {
            continue; // already reported as missing
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            cx.problem(
                &path,
                format!(
                    "expected only letters, digits, \"_\", \".\" and \"-\", got {}",
                    quote(name)
                ),
            );
        }
        match seen.get(name) {
            Some(first) => {
                let message = format!(
                    "{} is already used by {}",
                    quote(name),
                    cx.refer(first, &path)
                );
                cx.problem(&path, message);
            }
            None => {
                seen.insert(name, path);
            }
        }
    }
}

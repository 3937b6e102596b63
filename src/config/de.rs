//! From the merged tree to [`Config`]: the tree's shape is checked and its `*_file` secrets read first, then
//! serde deserializes it, again and again without each key it rejects, so every problem is found in one run.
//!
//! The `deserialize_with` functions take the value as a `toml::Value` and say what was wrong in rollcall's
//! words ("expected an integer, got \"abc\""), where serde's would name Rust types (`u32`).

use secrecy::SecretString;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_path_to_error::Segment;
use toml::{Table, Value};

use super::problems::{describe, join, kind, quote, Problems};
use super::{Config, DEFAULT_ZOOM_API_URL, DEFAULT_ZOOM_OAUTH_URL};

/// The `[[...]]` lists and the secret key each entry holds.
const ENTRIES: &[(&str, &str)] = &[
    ("zoom", "client_secret"),
    ("videosdk", "api_secret"),
    ("rocketchat", "auth_token"),
];
/// Keys of a Zoom or Video SDK entry that fill its `limits`.
pub(super) const LIMITS: &[&str] = &[
    "heavy_per_second",
    "resource_intensive_per_minute",
    "daily_requests",
];

pub(super) fn deserialize(mut root: Value, p: &mut Problems) -> Config {
    if let Value::Table(table) = &mut root {
        shape(table, p);
    }
    loop {
        let error = match serde_path_to_error::deserialize::<_, Config>(root.clone()) {
            Ok(config) => return config,
            Err(error) => error,
        };
        let segments: Vec<Segment> = error.path().iter().cloned().collect();
        let path = error.path().to_string().replace(".limits.", ".");
        let message = error.inner().message();
        let parent = segments.split_last().and_then(|(last, init)| match last {
            Segment::Map { key } => Some((key, table_at(&mut root, init)?)),
            _ => None,
        });
        let Some((key, table)) = parent else {
            // Not a key of a table (the shape check should make this impossible): report it and stop.
            p.fail(&path, message);
            return Config::default();
        };
        if message.starts_with("unknown field") {
            p.fail(&path, "unknown key");
        } else if let Some(value) = from_env(p.is_env(&path), table.get(key.as_str()), message) {
            // A variable holds text: it becomes the number or boolean the key expects, then is tried again.
            table.insert(key.clone(), value);
            continue;
        } else {
            p.fail(&path, message);
        }
        if table.remove(key.as_str()).is_none() {
            // Nothing to take out, so the next round would fail the same way.
            return Config::default();
        }
    }
}

/// An environment value as the type its key asked for, when it parses as one.
fn from_env(is_env: bool, value: Option<&Value>, message: &str) -> Option<Value> {
    let Some(Value::String(text)) = value.filter(|_| is_env) else {
        return None;
    };
    let text = text.trim();
    if message.starts_with("expected an integer") {
        text.parse().ok().map(Value::Integer)
    } else if message.starts_with("expected true or false") {
        ["false", "true"]
            .iter()
            .position(|b| b.eq_ignore_ascii_case(text))
            .map(|i| Value::Boolean(i == 1))
    } else {
        None
    }
}

fn table_at<'v>(mut node: &'v mut Value, segments: &[Segment]) -> Option<&'v mut Table> {
    for segment in segments {
        node = match (node, segment) {
            (Value::Table(t), Segment::Map { key }) => t.get_mut(key)?,
            (Value::Array(a), Segment::Seq { index }) => a.get_mut(*index)?,
            _ => return None,
        };
    }
    node.as_table_mut()
}

/// What serde would report in its own words or not at all: sections of the wrong type, and each secret
/// given both inline and as a file. Reads the `*_file` secrets into the tree, and gathers each Zoom
/// account's limit keys into its `limits` table (serde cannot flatten into a `deny_unknown_fields` struct).
fn shape(root: &mut Table, p: &mut Problems) {
    for key in ["database", "schedule", "http", "log", "collector"] {
        match root.get_mut(key) {
            Some(Value::Table(database)) if key == "database" => {
                secret_file(database, key, "url", p)
            }
            Some(Value::Table(_)) | None => {}
            Some(other) => {
                p.add(
                    key,
                    format!("expected a table ([{key}]), got {}", describe(other)),
                );
                root.remove(key);
            }
        }
    }
    for (key, secret_key) in ENTRIES {
        let Some(value) = root.get_mut(*key) else {
            continue;
        };
        let Value::Array(items) = value else {
            p.add(
                key,
                format!(
                    "expected an array of tables ([[{key}]]), got {}",
                    describe(value)
                ),
            );
            root.remove(*key);
            continue;
        };
        for (i, item) in items.iter_mut().enumerate() {
            let at = format!("{key}[{i}]");
            let Value::Table(entry) = item else {
                p.fail(&at, format!("expected a table, got {}", describe(item)));
                *item = Value::Table(Table::new());
                continue;
            };
            secret_file(entry, &at, secret_key, p);
            if *key != "rocketchat" {
                if entry.remove("limits").is_some() {
                    p.fail(&format!("{at}.limits"), "unknown key");
                }
                let limits = LIMITS
                    .iter()
                    .filter_map(|k| Some((k.to_string(), entry.remove(*k)?)));
                let limits = Value::Table(limits.collect());
                entry.insert("limits".into(), limits);
            }
        }
    }
}

/// Resolves `key_file` into `key`, so the structs hold the secret whichever way it was given.
fn secret_file(table: &mut Table, at: &str, key: &str, p: &mut Problems) {
    let file_key = format!("{key}_file");
    let (path, file_path) = (join(at, key), join(at, &file_key));
    let Some(file) = table.remove(&file_key) else {
        return;
    };
    let read = match file {
        _ if table.remove(key).is_some() => {
            return p.fail(&path, format!("set together with {file_path}; keep one"));
        }
        Value::String(file) => read_secret_file(&file),
        other => Err(format!("expected a file path, got {}", describe(&other))),
    };
    match read {
        Ok(text) => drop(table.insert(key.to_owned(), Value::String(text))),
        Err(message) => {
            p.fail(&file_path, message);
            p.mark(&path);
        }
    }
}

fn read_secret_file(file: &str) -> Result<String, String> {
    if file.is_empty() {
        return Err("missing file path".to_owned());
    }
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", quote(file)))?;
    let mut text =
        String::from_utf8(bytes).map_err(|_| format!("{} is not valid UTF-8", quote(file)))?;
    // Editors and `echo` end files with a newline that is not part of the secret; only one is removed so a
    // secret that really ends in whitespace survives.
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(format!("{} is empty", quote(file)));
    }
    Ok(text)
}

pub(super) fn num<const N: u32>() -> u32 {
    N
}

pub(super) fn no_secret() -> SecretString {
    SecretString::from(String::new())
}

pub(super) fn zoom_api_url() -> String {
    DEFAULT_ZOOM_API_URL.to_owned()
}

pub(super) fn zoom_oauth_url() -> String {
    DEFAULT_ZOOM_OAUTH_URL.to_owned()
}

pub(super) fn utc() -> chrono_tz::Tz {
    chrono_tz::UTC
}

fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(text) => Ok(text),
        other => Err(D::Error::custom(format!(
            "expected a string, got {}",
            describe(&other)
        ))),
    }
}

pub(super) fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    text(d)
}

/// Never shows the value, only its type.
pub(super) fn secret<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
    match Value::deserialize(d)? {
        Value::String(text) => Ok(SecretString::from(text)),
        other => Err(D::Error::custom(format!(
            "expected a string, got {}",
            kind(&other)
        ))),
    }
}

pub(super) fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match Value::deserialize(d)? {
        Value::Boolean(b) => Ok(b),
        other => Err(D::Error::custom(format!(
            "expected true or false, got {}",
            describe(&other)
        ))),
    }
}

/// An integer in `MIN..=MAX`.
pub(super) fn int<'de, const MIN: u64, const MAX: u64, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    let n = match Value::deserialize(d)? {
        Value::Integer(n) => n,
        other => {
            return Err(D::Error::custom(format!(
                "expected an integer, got {}",
                describe(&other)
            )))
        }
    };
    let message = match u64::try_from(n) {
        Ok(v) if (MIN..=MAX).contains(&v) => {
            return T::try_from(v).map_err(|_| D::Error::custom("out of range"))
        }
        _ if MAX < u64::from(u32::MAX) => format!("must be between {MIN} and {MAX}, got {n}"),
        Ok(v) if v > MAX => format!("must be at most {MAX}, got {n}"),
        _ => format!("must be at least {MIN}, got {n}"),
    };
    Err(D::Error::custom(message))
}

pub(super) fn opt<'de, const MIN: u64, const MAX: u64, D>(d: D) -> Result<Option<u32>, D::Error>
where
    D: Deserializer<'de>,
{
    int::<MIN, MAX, D, u32>(d).map(Some)
}

/// One of `all`, by name, ignoring ASCII case.
pub(super) fn choice<'de, D, T>(d: D, all: &[T], name: fn(T) -> &'static str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Copy,
{
    let given = text(d)?;
    if let Some(found) = all
        .iter()
        .find(|t| name(**t).eq_ignore_ascii_case(given.trim()))
    {
        return Ok(*found);
    }
    let names: Vec<String> = all.iter().map(|t| format!("{:?}", name(*t))).collect();
    let names = match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, init)) => format!("{} or {last}", init.join(", ")),
        None => String::new(),
    };
    Err(D::Error::custom(format!(
        "expected {names}, got {}",
        quote(&given)
    )))
}

pub(super) fn listen<'de, D: Deserializer<'de>>(d: D) -> Result<std::net::SocketAddr, D::Error> {
    let given = text(d)?;
    given.trim().parse().map_err(|_| {
        D::Error::custom(format!(
            "expected an IP address and port such as \"127.0.0.1:9187\", got {}",
            quote(&given)
        ))
    })
}

pub(super) fn timezone<'de, D: Deserializer<'de>>(d: D) -> Result<chrono_tz::Tz, D::Error> {
    let given = text(d)?;
    given
        .parse()
        .map_err(|_| D::Error::custom(format!("unknown time zone {}", quote(&given))))
}

/// An http(s) base URL; with `TRIM` its trailing slashes go, so callers can append `/path`. With
/// `EMPTY_OK` an empty one is left for `validate` to report as missing.
pub(super) fn url<'de, const TRIM: bool, const EMPTY_OK: bool, D>(d: D) -> Result<String, D::Error>
where
    D: Deserializer<'de>,
{
    let text = text(d)?;
    if !(EMPTY_OK && text.is_empty()) {
        check_http_url(&text).map_err(D::Error::custom)?;
    }
    Ok(if TRIM {
        text.trim_end_matches('/').to_owned()
    } else {
        text
    })
}

fn check_http_url(text: &str) -> Result<(), String> {
    // A URL with userinfo may hold a password: such a URL is never echoed.
    let shown = if text.contains('@') {
        "a URL with credentials".to_owned()
    } else {
        quote(text)
    };
    let url = reqwest::Url::parse(text)
        .map_err(|e| format!("expected an http(s) URL, got {shown} ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(format!("expected an http(s) URL, got {shown}"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("must not have a query or fragment, got {shown}"));
    }
    Ok(())
}

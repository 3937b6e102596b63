//! From the merged tree to [`Config`], every problem at once though serde stops at its first error.
//!
//! Before serde, the tree is checked for what serde would report in its own words or too late: sections of
//! the wrong type, numbers out of range (on the integer as written, which may not fit the field), secrets
//! given both inline and as a file or not at all; `*_file` secrets are read into the tree and text from
//! the environment becomes the number or boolean its key expects. Then serde deserializes the tree with
//! `serde_path_to_error`, which names the key an error is about: that key is reported and taken out of the
//! tree (its field falls back to its default, never used since any problem fails the load), and the tree
//! is deserialized again until it goes through.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_path_to_error::Segment;
use toml::{Table, Value};

use super::problems::{describe, join, keys, kind, quote, Problems};
use super::{Config, DEFAULT_ZOOM_API_URL, DEFAULT_ZOOM_OAUTH_URL};

/// The `[[...]]` lists and the secret each entry holds.
const ENTRIES: [(&str, &str); 3] = [
    ("zoom", "client_secret"),
    ("videosdk", "api_secret"),
    ("rocketchat", "auth_token"),
];
/// Keys of a Zoom or Video SDK entry that fill its `limits` (serde cannot flatten into a
/// `deny_unknown_fields` struct).
pub(super) const LIMITS: [&str; 3] = [
    "heavy_per_second",
    "resource_intensive_per_minute",
    "daily_requests",
];

pub(super) fn deserialize(mut root: Value, p: &mut Problems) -> Config {
    if let Value::Table(table) = &mut root {
        prepare(table, p);
    }
    loop {
        let error = match serde_path_to_error::deserialize::<_, Config>(root.clone()) {
            Ok(config) => return config,
            Err(error) => error,
        };
        let path = error.path().to_string().replace(".limits.", ".");
        let segments: Vec<Segment> = error.path().iter().cloned().collect();
        let removed = match segments.split_last() {
            Some((Segment::Map { key }, init)) => {
                table_at(&mut root, init).and_then(|t| t.remove(key))
            }
            _ => None,
        };
        let message = in_our_words(error.inner().message(), removed.as_ref(), &path);
        p.fail(&path, message);
        if removed.is_none() {
            // Nothing was taken out, so another round would fail the same way.
            return Config::default();
        }
    }
}

/// serde's message about `value` as rollcall says it: in the words of the file, not of Rust's types.
fn in_our_words(message: &str, value: Option<&Value>, path: &str) -> String {
    if message.starts_with("unknown field") {
        return "unknown key".to_owned();
    }
    let invalid_type = message.strip_prefix("invalid type: ");
    let expected = match invalid_type
        .and_then(|m| m.split_once(", expected "))
        .map(|m| m.1)
    {
        Some("a boolean") => "true or false",
        Some("a string") => "a string",
        Some("u32" | "u64") => "an integer",
        _ => return message.to_owned(),
    };
    let got = value.map_or_else(String::new, |value| shown(value, path));
    format!("expected {expected}, got {got}")
}

/// A value as a message shows it: a secret's only by its type.
fn shown(value: &Value, path: &str) -> String {
    if is_secret(path) {
        kind(value).to_owned()
    } else {
        describe(value)
    }
}

/// Whether `path` is a secret's key (`database.url`, `zoom[0].client_secret`, ...).
pub(super) fn is_secret(path: &str) -> bool {
    let (section, key) = (path.split(['.', '[']).next(), path.rsplit('.').next());
    path == "database.url"
        || ENTRIES
            .iter()
            .any(|(s, k)| section == Some(s) && key == Some(k))
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

fn prepare(root: &mut Table, p: &mut Problems) {
    for key in ["database", "schedule", "http", "log", "collector"] {
        if let Some(value) = root.get(key).filter(|v| !v.is_table()) {
            let expected = format!("expected a table ([{key}])");
            p.add(key, format!("{expected}, got {}", describe(value)));
            root.remove(key);
        }
    }
    for (key, _) in ENTRIES {
        let Some(value) = root.get_mut(key) else {
            continue;
        };
        let Value::Array(items) = value else {
            let expected = format!("expected an array of tables ([[{key}]])");
            p.add(key, format!("{expected}, got {}", describe(value)));
            root.remove(key);
            continue;
        };
        for (i, item) in items.iter_mut().enumerate() {
            if !item.is_table() {
                p.fail(
                    &format!("{key}[{i}]"),
                    format!("expected a table, got {}", describe(item)),
                );
                *item = Value::Table(Table::new());
            }
        }
    }
    numbers(root, "", p);
    let database = root
        .entry("database")
        .or_insert_with(|| Value::Table(Table::new()));
    if let Value::Table(database) = database {
        secret(
            database,
            "database",
            "url",
            "set it, url_file or DATABASE_URL",
            p,
        );
    }
    for (key, secret_key) in ENTRIES {
        let Some(Value::Array(items)) = root.get_mut(key) else {
            continue;
        };
        for (i, entry) in items.iter_mut().enumerate() {
            let (at, Value::Table(entry)) = (format!("{key}[{i}]"), entry) else {
                continue;
            };
            secret(
                entry,
                &at,
                secret_key,
                &format!("set it or {secret_key}_file"),
                p,
            );
            if key != "rocketchat" {
                if entry.remove("limits").is_some() {
                    p.fail(&format!("{at}.limits"), "unknown key");
                }
                let limits: Table = LIMITS
                    .iter()
                    .filter_map(|k| Some((k.to_string(), entry.remove(*k)?)))
                    .collect();
                entry.insert("limits".to_owned(), Value::Table(limits));
            }
        }
    }
}

/// The range of each integer key, checked on the number as written so a negative or huge one is reported
/// with the key's bounds rather than the field type's.
fn range(section: &str, key: &str) -> Option<(i64, i64)> {
    Some(match (section, key) {
        ("database", "max_connections") => (1, 1_000),
        ("http", "timeout_secs") => (1, 600),
        ("http", "max_body_mib") => (1, 4096),
        ("collector", "lease_secs") => (3, 86_400),
        ("collector", "max_retries") => (0, 100),
        ("collector", "retry_base_ms") => (1, 600_000),
        ("collector", "windows_in_flight") => (1, 256),
        ("collector", "max_windows_in_flight") => (1, 4_096),
        ("zoom" | "videosdk", "page_size") => (1, super::MAX_PAGE_SIZE.into()),
        ("zoom" | "videosdk", "settle_days") => (0, 90),
        ("zoom" | "videosdk", "horizon_days") => (1, 3_650),
        ("zoom" | "videosdk", _) if LIMITS.contains(&key) => (0, u32::MAX.into()),
        ("rocketchat", "window_days") => (1, 31),
        ("rocketchat", "lookback_days") => (0, 44),
        ("rocketchat", "retention_days") => (1, 45),
        ("rocketchat", "requests_per_minute") => (0, u32::MAX.into()),
        _ => return None,
    })
}

/// Checks every integer key's range, and turns text from the environment into the number or boolean its
/// key expects: a variable holds text, and guessing the type from it would turn a digit-only secret into a
/// number.
fn numbers(table: &mut Table, at: &str, p: &mut Problems) {
    table.retain(|key, value| {
        let path = join(at, key);
        let section = path.split(['.', '[']).next().unwrap_or("");
        let range = range(section, key);
        match value {
            Value::Table(table) => numbers(table, &path, p),
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    if let Value::Table(table) = item {
                        numbers(table, &format!("{path}[{i}]"), p);
                    }
                }
            }
            Value::String(text) if p.origins.leaves.contains_key(&path) => {
                let text = text.trim();
                let boolean = ["false", "true"]
                    .iter()
                    .position(|b| b.eq_ignore_ascii_case(text));
                match (text.parse(), boolean) {
                    (Ok(n), _) if range.is_some() => *value = Value::Integer(n),
                    (_, Some(b)) if key == "run_on_start" => *value = Value::Boolean(b == 1),
                    _ => {}
                }
            }
            // toml hands a date-time to serde as text, which a string key would take.
            Value::Datetime(_) if string_key(section, key) => {
                let message = format!("expected a string, got {}", shown(value, &path));
                p.fail(&path, message);
                return false;
            }
            _ => {}
        }
        let (Value::Integer(n), Some((min, max))) = (&*value, range) else {
            return true;
        };
        if (min..=max).contains(n) {
            return true;
        }
        let message = match () {
            _ if max < u32::MAX.into() => format!("must be between {min} and {max}, got {n}"),
            _ if *n > max => format!("must be at most {max}, got {n}"),
            _ => format!("must be at least {min}, got {n}"),
        };
        p.fail(&path, message);
        false
    });
}

/// A key of the schema that holds text: not a number, not a boolean, not the `limits` table.
fn string_key(section: &str, key: &str) -> bool {
    let other = range(section, key).is_some() || matches!(key, "run_on_start" | "limits");
    !other && keys(section).contains(&key)
}

/// Reads `key_file` into `key`, so the structs hold the secret whichever way it was given. No message
/// shows the secret, only the file's path.
fn secret(table: &mut Table, at: &str, key: &str, hint: &str, p: &mut Problems) {
    let (path, file_path) = (join(at, key), join(at, &format!("{key}_file")));
    let file = table.remove(&format!("{key}_file"));
    match (file, table.get(key)) {
        (Some(_), Some(_)) => {
            table.remove(key);
            p.fail(&path, format!("set together with {file_path}; keep one"));
        }
        (None, Some(Value::String(text))) if text.is_empty() => {
            p.add(&path, format!("missing ({hint})"))
        }
        (None, Some(_)) => {}
        (None, None) => p.add(&path, format!("missing ({hint})")),
        (Some(Value::String(file)), None) => match read_secret_file(&file) {
            Ok(text) => drop(table.insert(key.to_owned(), Value::String(text))),
            Err(message) => p.fail(&file_path, message),
        },
        (Some(other), None) => p.fail(
            &file_path,
            format!("expected a file path, got {}", describe(&other)),
        ),
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

pub(super) fn zoom_api_url() -> String {
    DEFAULT_ZOOM_API_URL.to_owned()
}

pub(super) fn zoom_oauth_url() -> String {
    DEFAULT_ZOOM_OAUTH_URL.to_owned()
}

/// One of `all`, by name, ASCII case and surrounding blanks ignored.
pub(super) fn choice<'de, D: Deserializer<'de>, T: Copy>(
    d: D,
    all: &[T],
    name: fn(T) -> &'static str,
) -> Result<T, D::Error> {
    let given = String::deserialize(d)?;
    if let Some(found) = all
        .iter()
        .find(|t| name(**t).eq_ignore_ascii_case(given.trim()))
    {
        return Ok(*found);
    }
    let names: Vec<String> = all.iter().map(|t| format!("{:?}", name(*t))).collect();
    let (last, init) = names
        .split_last()
        .ok_or_else(|| D::Error::custom("no choices"))?;
    let names = if init.is_empty() {
        last.clone()
    } else {
        format!("{} or {last}", init.join(", "))
    };
    Err(D::Error::custom(format!(
        "expected {names}, got {}",
        quote(&given)
    )))
}

pub(super) fn listen<'de, D: Deserializer<'de>>(d: D) -> Result<std::net::SocketAddr, D::Error> {
    let given = String::deserialize(d)?;
    given.trim().parse().map_err(|_| {
        let expected = "expected an IP address and port such as \"127.0.0.1:9187\"";
        D::Error::custom(format!("{expected}, got {}", quote(&given)))
    })
}

pub(super) fn timezone<'de, D: Deserializer<'de>>(d: D) -> Result<chrono_tz::Tz, D::Error> {
    let given = String::deserialize(d)?;
    given
        .parse()
        .map_err(|_| D::Error::custom(format!("unknown time zone {}", quote(&given))))
}

//! From the merged tree to [`Config`], every problem at once though serde stops at its first error.
//!
//! Before serde, the tree is checked for what serde would report in its own words or too late: sections of
//! the wrong type, date-times under text keys, secrets given both inline and as a file or not at all;
//! `*_file` secrets are read into the tree. Then serde deserializes the tree with `serde_path_to_error`,
//! which names the key an error is about: that key is reported and taken out of the tree (its field falls
//! back to its default, never used since any problem fails the load), and the tree is deserialized again
//! until it goes through. Integer keys check their range on the number as written ([`Range`]), and text
//! from the environment becomes the number or boolean its key expects once serde has said which: a
//! variable holds text, and guessing the type from it would turn a digit-only secret into a number.

use std::collections::HashMap;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_path_to_error::Segment;
use toml::{Table, Value};

use std::path::PathBuf;

use super::policy;
use super::problems::{describe, join, keys, kind, quote, Problems};
use super::{Config, DEFAULT_ZOOM_API_URL, DEFAULT_ZOOM_OAUTH_URL};

/// The sections with a secret: `database`, then the `[[...]]` lists with the secret each entry holds.
const SECRETS: [(&str, &str); 4] = [
    ("database", "url"),
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
    let mut dates = HashMap::new();
    if let Value::Table(table) = &mut root {
        prepare(table, p, &mut dates);
    }
    loop {
        let error = match serde_path_to_error::deserialize::<_, Config>(root.clone()) {
            Ok(config) => return config,
            Err(error) => error,
        };
        let path = error.path().to_string().replace(".limits.", ".");
        let segments: Vec<Segment> = error.path().iter().cloned().collect();
        let (mut table, key) = match segments.split_last() {
            Some((Segment::Map { key }, init)) => (table_at(&mut root, init), key.as_str()),
            _ => (None, ""),
        };
        let removed = table.as_mut().and_then(|t| t.remove(key));
        let removed = removed.map(|value| dates.remove(&path).unwrap_or(value));
        let expected = expected(error.inner().message());
        let env = removed.as_ref().and_then(Value::as_str);
        let env = env
            .filter(|_| p.origins.leaves.contains_key(&path))
            .map(str::trim);
        let typed = match (env, expected) {
            (Some(text), Some("an integer")) => text.parse().ok().map(Value::Integer),
            (Some(text), Some("true or false")) => {
                let text = text.to_ascii_lowercase();
                text.parse().ok().map(Value::Boolean)
            }
            _ => None,
        };
        if let (Some(table), Some(typed)) = (table, typed) {
            table.insert(key.to_owned(), typed);
            continue;
        }
        let message = match (error.inner().message(), expected) {
            (message, _) if message.starts_with("unknown field") => "unknown key".to_owned(),
            (_, Some(expected)) => {
                let got = removed.as_ref().map(|v| shown(v, &path));
                format!("expected {expected}, got {}", got.unwrap_or_default())
            }
            (message, None) => message.to_owned(),
        };
        p.fail(&path, message);
        if removed.is_none() {
            // Nothing was taken out, so another round would fail the same way.
            return Config::default();
        }
    }
}

/// What serde's message about a value of the wrong type expected, in the words of the file rather than of
/// Rust's types.
fn expected(message: &str) -> Option<&'static str> {
    let invalid_type = message.strip_prefix("invalid type: ")?;
    match invalid_type.split_once(", expected ")?.1 {
        "a boolean" => Some("true or false"),
        "a string" => Some("a string"),
        "i64" => Some("an integer"),
        _ => None,
    }
}

/// A value as a message shows it: a secret's only by its type.
fn shown(value: &Value, path: &str) -> String {
    if is_secret(path) {
        kind(value).to_owned()
    } else {
        describe(value)
    }
}

/// The secret key of a section or of its entries.
pub(super) fn secret_of(section: &str) -> Option<&'static str> {
    SECRETS.iter().find(|(s, _)| *s == section).map(|s| s.1)
}

/// Whether `path` is a secret's key (`database.url`, `zoom[0].client_secret`, ...).
pub(super) fn is_secret(path: &str) -> bool {
    let section = path.split(['.', '[']).next().unwrap_or("");
    secret_of(section).is_some_and(|key| path.rsplit('.').next() == Some(key))
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

fn prepare(root: &mut Table, p: &mut Problems, dates: &mut Dates) {
    let secret_dirs = policy::secret_dirs(root);
    root.retain(|key, value| {
        let secret_key = SECRETS[1..]
            .iter()
            .find(|(list, _)| *list == key)
            .map(|e| e.1);
        let expected = match (&mut *value, secret_key) {
            (Value::Table(_), None) => return true,
            (Value::Array(items), Some(secret_key)) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let at = format!("{key}[{i}]");
                    if let Value::Table(entry) = item {
                        prepare_entry(entry, &at, key, secret_key, &secret_dirs, p, dates);
                    } else {
                        p.fail(&at, format!("expected a table, got {}", describe(item)));
                        *item = Value::Table(Table::new());
                    }
                }
                return true;
            }
            (_, Some(_)) => format!("expected an array of tables ([[{key}]])"),
            // Unknown: serde reports it.
            _ if keys(key).is_empty() => return true,
            _ => format!("expected a table ([{key}])"),
        };
        p.add(key, format!("{expected}, got {}", describe(value)));
        false
    });
    let database = root
        .entry("database")
        .or_insert_with(|| Value::Table(Table::new()));
    if let Value::Table(database) = database {
        secret(
            database,
            "database",
            "url",
            "set it, url_file or DATABASE_URL",
            None,
            p,
        );
    }
    for (key, section) in root.iter_mut() {
        if let Value::Table(section) = section {
            hide_dates(section, key, dates);
        }
    }
}

fn prepare_entry(
    entry: &mut Table,
    at: &str,
    list: &str,
    secret_key: &str,
    secret_dirs: &[PathBuf],
    p: &mut Problems,
    dates: &mut Dates,
) {
    let hint = format!("set it or {secret_key}_file");
    // An included file's own `*_file` is confined; one the environment set is the operator's.
    let file_key = format!("{at}.{secret_key}_file");
    let confined = p.origins.is_included(at) && !p.origins.leaves.contains_key(&file_key);
    let dirs = confined.then_some(secret_dirs);
    secret(entry, at, secret_key, &hint, dirs, p);
    hide_dates(entry, at, dates);
    if list != "rocketchat" {
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

/// Date-times taken out of the tree by the key that held them (`zoom[0].page_size`).
type Dates = HashMap<String, Value>;

/// toml hands a date-time to serde as text, which a key holding text would take. Each one under a section
/// or an entry (its `*_file` secret already read) is swapped for an empty array, which no key's type
/// accepts, so serde reports it under its key and the message shows the date-time it stood for.
fn hide_dates(table: &mut Table, at: &str, dates: &mut Dates) {
    for (key, value) in table.iter_mut().filter(|(_, value)| value.is_datetime()) {
        dates.insert(
            join(at, key),
            std::mem::replace(value, Value::Array(Vec::new())),
        );
    }
}

/// Reads `key_file` into `key`, so the structs hold the secret whichever way it was given. No message
/// shows the secret, only the file's path. `confined_to`: the directories the file must resolve into (an
/// included file's entry), checked before anything is read.
fn secret(
    table: &mut Table,
    at: &str,
    key: &str,
    hint: &str,
    confined_to: Option<&[PathBuf]>,
    p: &mut Problems,
) {
    let (path, file_path) = (join(at, key), join(at, &format!("{key}_file")));
    let file = table.remove(&format!("{key}_file"));
    match (file, table.get(key)) {
        (Some(_), Some(_)) => {
            table.remove(key);
            p.fail(&path, format!("set together with {file_path}; keep one"));
        }
        (None, value) if value.is_none_or(|v| v.as_str() == Some("")) => {
            p.add(&path, format!("missing ({hint})"))
        }
        (None, _) => {}
        (Some(Value::String(file)), None) => match confined_to
            .filter(|_| !file.is_empty())
            .map_or(Ok(PathBuf::from(&file)), |dirs| {
                policy::allowed_secret_file(&file, dirs)
            })
            .and_then(|path| read_secret_file(&file, &path))
        {
            Ok(text) => drop(table.insert(key.to_owned(), Value::String(text))),
            Err(message) => p.fail(&file_path, message),
        },
        (Some(other), None) => {
            let message = format!("expected a file path, got {}", describe(&other));
            p.fail(&file_path, message);
        }
    }
}

/// Reads `path`, named `file` (as written) in messages.
fn read_secret_file(file: &str, path: &std::path::Path) -> Result<String, String> {
    if file.is_empty() {
        return Err("missing file path".to_owned());
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", quote(file)))?;
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

/// An integer key's range, checked on the number as written so a negative or huge one is reported with
/// the key's bounds rather than the field type's.
pub(super) struct Range<const MIN: i64, const MAX: i64>;

impl<const MIN: i64, const MAX: i64> Range<MIN, MAX> {
    pub(super) fn de<'de, D: Deserializer<'de>, T: From<u32>>(d: D) -> Result<T, D::Error> {
        let n = i64::deserialize(d)?;
        let message = match () {
            _ if (MIN..=MAX).contains(&n) => return Ok(T::from(n as u32)),
            _ if MAX < u32::MAX.into() => format!("must be between {MIN} and {MAX}, got {n}"),
            _ if n > MAX => format!("must be at most {MAX}, got {n}"),
            _ => format!("must be at least {MIN}, got {n}"),
        };
        Err(D::Error::custom(message))
    }
}

pub(super) fn zoom_api_url() -> String {
    DEFAULT_ZOOM_API_URL.to_owned()
}

pub(super) fn zoom_oauth_url() -> String {
    DEFAULT_ZOOM_OAUTH_URL.to_owned()
}

/// One of `all`, by name, ASCII case and surrounding blanks ignored.
pub(super) fn choice<'de, D: Deserializer<'de>, T, const N: usize>(
    d: D,
    all: [(&str, T); N],
) -> Result<T, D::Error> {
    let given = String::deserialize(d)?;
    let names: Vec<String> = all.iter().map(|(name, _)| format!("{name:?}")).collect();
    if let Some((_, found)) = all
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(given.trim()))
    {
        return Ok(found);
    }
    // "a", "b" or "c"
    let names = match names.split_last() {
        Some((last, init)) if !init.is_empty() => format!("{} or {last}", init.join(", ")),
        _ => names.concat(),
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

/// `streams`: an array of names, or from the environment one string of names separated by commas
/// (`ROLLCALL__ZOOM__0__STREAMS=zoom_daily_usage,zoom_host_report`): a variable holds text.
pub(super) fn streams<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given {
        List(Vec<String>),
        Text(String),
    }
    let given = Given::deserialize(d).map_err(|_| {
        D::Error::custom("expected an array of stream names such as [\"zoom_host_report\"]")
    })?;
    Ok(Some(match given {
        Given::List(names) => names,
        Given::Text(text) => text
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
    }))
}

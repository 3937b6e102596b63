//! Where each key came from, and the problem lines that say so.

use std::collections::HashMap;
use std::fmt::Display;

use serde::de::Visitor;
use serde::{Deserialize, Deserializer};
use toml::Value;

use super::de::{is_secret, LIMITS};
use super::*;

/// Which environment variable set a key (keyed by the key's display path, `zoom[0].plan`), so a problem with
/// a value that did not come from the file names the variable to fix.
#[derive(Default)]
pub(super) struct Origins {
    pub(super) leaves: HashMap<String, String>,
    /// Tables and array entries the environment created on its way to a leaf.
    pub(super) created: HashMap<String, String>,
    /// Entries merged from an included file (`zoom[5]`): the file's label and the entry's path in it
    /// (`zoom[0]`). Keys keep the merged index, which is what the environment addresses.
    pub(super) included: HashMap<String, (String, String)>,
    /// How the main file is named in a message that must tell it apart from an included one.
    pub(super) main_label: String,
}

impl Origins {
    /// Fails when another variable already set the same key (names differing only in case).
    pub(super) fn set_leaf(&mut self, path: String, var: &str) -> Result<(), String> {
        match self.leaves.get(&path) {
            Some(other) if other != var => Err(format!("{path} is also set by {other}")),
            _ => {
                self.leaves.insert(path, var.to_owned());
                Ok(())
            }
        }
    }

    /// Whether the entry holding `path` (`zoom[3]`, `zoom[3].oauth_url`) came from an included file.
    pub(super) fn is_included(&self, path: &str) -> bool {
        self.located(path).is_some()
    }

    /// The included file a key lives in and the key's path there; `None` for the main file.
    fn located(&self, path: &str) -> Option<(&str, String)> {
        let end = path.find(']')? + 1;
        let (entry, rest) = path.split_at(end);
        let (file, local) = self.included.get(entry)?;
        Some((file.as_str(), format!("{local}{rest}")))
    }
}

/// The problems found so far, listed in the order of the root's sections and their entries whichever pass
/// found them.
pub(super) struct Problems<'a> {
    pub(super) origins: &'a Origins,
    lines: Vec<([usize; 4], String)>,
    /// Keys (and entries) already reported: what is under them is not reported again.
    failed: Vec<String>,
}

impl<'a> Problems<'a> {
    /// `first` are the layering's problems (include, environment), listed before all others.
    pub(super) fn new(origins: &'a Origins, first: Vec<String>) -> Problems<'a> {
        let lines = first.into_iter().map(|line| ([0; 4], line)).collect();
        Problems {
            origins,
            lines,
            failed: Vec::new(),
        }
    }

    /// A problem with `path`, unless it or an entry holding it was already reported.
    pub(super) fn add(&mut self, path: &str, message: impl Display) {
        if self.failed(path) {
            return;
        }
        let line = self.line(path, message);
        self.lines.push((rank(path), line));
    }

    /// [`Problems::add`], then nothing more about `path`.
    pub(super) fn fail(&mut self, path: &str, message: impl Display) {
        self.add(path, message);
        self.failed.push(path.to_owned());
    }

    /// A problem after every other: a rule across sections.
    pub(super) fn last(&mut self, path: &str, message: impl Display) {
        let line = self.line(path, message);
        self.lines.push(([usize::MAX; 4], line));
    }

    pub(super) fn failed(&self, path: &str) -> bool {
        let under = |f: &String| path.strip_prefix(f.as_str());
        self.failed
            .iter()
            .any(|f| under(f).is_some_and(|r| r.is_empty() || r.starts_with(['.', '['])))
    }

    /// Absent and empty are both "missing": serde gave an absent key its empty default. `keys` names
    /// `values`, separated by blanks.
    pub(super) fn required<const N: usize>(&mut self, at: &str, keys: &str, values: [&String; N]) {
        for (key, value) in keys.split(' ').zip(values) {
            if value.is_empty() {
                self.add(&format!("{at}.{key}"), "missing");
            }
        }
    }

    /// An http(s) base URL, without its trailing slashes when `trim`.
    pub(super) fn url(&mut self, path: &str, url: &mut String, trim: bool) {
        if let Err(message) = check_http_url(url) {
            self.add(path, message);
        }
        if trim {
            url.truncate(url.trim_end_matches('/').len());
        }
    }

    pub(super) fn into_lines(mut self) -> Vec<String> {
        self.lines.sort_by_key(|(rank, _)| *rank);
        self.lines.into_iter().map(|(_, line)| line).collect()
    }

    fn line(&self, path: &str, message: impl Display) -> String {
        // An entry the environment created (an index past the file's last) is not in the file, so its
        // problems say where it came from.
        let entry = path
            .rsplit_once('.')
            .map(|(parent, _)| parent)
            .filter(|p| p.ends_with(']'));
        let o = self.origins;
        let shown = match o.located(path) {
            Some((file, local)) => format!("{file}: {local}"),
            None => path.to_owned(),
        };
        match (
            o.leaves.get(path).or(o.created.get(path)),
            entry.and_then(|e| o.created.get(e)),
        ) {
            (Some(var), _) => format!("{shown}: {message} (from {var})"),
            (None, Some(var)) => format!("{shown}: {message} (in an entry created by {var})"),
            (None, None) => format!("{shown}: {message}"),
        }
    }

    /// Another key referred to inside a message about `from`: the file is named when the two live in
    /// different files, so a duplicate across files names both.
    pub(super) fn refer(&self, path: &str, from: &str) -> String {
        let here = self.origins.located(from).map(|(file, _)| file);
        match (self.origins.located(path), here) {
            (Some((file, local)), Some(here)) if file == here => local,
            (Some((file, local)), _) => format!("{local} in {file}"),
            (None, Some(_)) => format!("{path} in {}", self.origins.main_label),
            (None, None) => path.to_owned(),
        }
    }
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

/// Where a key sits in the schema: its section, its entry, its field in the order the structs declare them
/// (a `*_file` key at its secret's place, an unknown key after the known ones), so problems are listed in
/// the order of the config whichever pass found them.
fn rank(path: &str) -> [usize; 4] {
    let (section, rest) = path.split_at(path.find(['.', '[']).unwrap_or(path.len()));
    let index = rest
        .strip_prefix('[')
        .and_then(|r| r.split(']').next()?.parse().ok());
    let key = rest.split_once('.').map(|(_, key)| key);
    let secret = path.strip_suffix("_file").filter(|path| is_secret(path));
    let key = key.map(|key| secret.map_or(key, |_| key.trim_end_matches("_file")));
    let position = |fields: &[&str], name| fields.iter().position(|f| Some(*f) == name);
    let limits = matches!(section, "zoom" | "videosdk");
    let limit = position(&LIMITS, key)
        .filter(|_| limits)
        .map_or(0, |i| i + 1);
    // A written `limits` is unknown: the limits are keys of the account itself.
    let key = key
        .filter(|key| *key != "limits")
        .map(|key| if limit > 0 { "limits" } else { key });
    let field = position(keys(section), key).map_or(usize::MAX, |i| i + 1);
    let section = position(sections(), Some(section)).map_or(usize::MAX - 1, |i| i + 1);
    // An entry that is not a table is reported with its list, before the entries' keys.
    match rest.contains('.') {
        true => [section, index.unwrap_or(0), field, limit],
        false => [section, 0, 0, 0],
    }
}

/// The sections, in the order problems are listed.
pub(super) fn sections() -> &'static [&'static str] {
    fields::<Config>()
}

/// The keys of a section or of each of its entries.
pub(super) fn keys(section: &str) -> &'static [&'static str] {
    match section {
        "database" => fields::<DatabaseConfig>(),
        "schedule" => fields::<ScheduleConfig>(),
        "http" => fields::<HttpConfig>(),
        "log" => fields::<LogConfig>(),
        "collector" => fields::<CollectorConfig>(),
        "include_policy" => fields::<IncludePolicy>(),
        "zoom" => fields::<ZoomAccount>(),
        "videosdk" => fields::<VideoSdkAccount>(),
        "rocketchat" => fields::<RocketChatWorkspace>(),
        _ => &[],
    }
}

/// The field names serde derived for `T`, in declaration order: its deserializer hands them to
/// `deserialize_struct`, where this probe keeps them and stops.
fn fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Probe<'f>(&'f mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(serde::de::Error::custom("probed"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
            unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    // Always an error: the probe only wants the names.
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

pub(super) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// A value as it should appear in a message. Never call it on a secret: use [`kind`].
pub(super) fn describe(value: &Value) -> String {
    match value {
        Value::String(text) => quote(text),
        Value::Integer(n) => n.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Datetime(d) => d.to_string(),
        Value::Array(_) | Value::Table(_) => kind(value).to_owned(),
    }
}

pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

/// Quoted and escaped, and cut short so a pasted blob does not flood the terminal.
pub(super) fn quote(text: &str) -> String {
    const MAX: usize = 80;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

//! Where each key came from, and the problem lines that say so.

use std::collections::HashMap;
use std::fmt::Display;

use secrecy::{ExposeSecret, SecretString};
use serde::de::Visitor;
use serde::{Deserialize, Deserializer};
use toml::Value;

use super::de::LIMITS;
use super::*;

/// Which environment variable set a key (keyed by the key's display path, `zoom[0].plan`), so a problem with
/// a value that did not come from the file names the variable to fix.
#[derive(Default)]
pub(super) struct Origins {
    leaves: HashMap<String, String>,
    /// Tables and array entries the environment created on its way to a leaf.
    created: HashMap<String, String>,
    /// Entries merged from an included file (`zoom[5]`): the file's label and the entry's path in it
    /// (`zoom[0]`). Keys keep the merged index, which is what the environment addresses.
    included: HashMap<String, (String, String)>,
    /// How the main file is named in a message that must tell it apart from an included one.
    main_label: String,
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

    /// The last word: `DATABASE_URL` wins over anything else that set the key.
    pub(super) fn override_leaf(&mut self, path: &str, var: &str) {
        self.leaves.insert(path.to_owned(), var.to_owned());
    }

    pub(super) fn note_created(&mut self, path: String, var: &str) {
        self.created.entry(path).or_insert_with(|| var.to_owned());
    }

    pub(super) fn note_included(&mut self, entry: String, file: String, local: String) {
        self.included.insert(entry, (file, local));
    }

    pub(super) fn set_main_label(&mut self, label: &str) {
        label.clone_into(&mut self.main_label);
    }

    /// The included file a key lives in and the key's path there; `None` for the main file.
    fn located(&self, path: &str) -> Option<(&str, String)> {
        let end = path.find(']')? + 1;
        let (entry, rest) = path.split_at(end);
        let (file, local) = self.included.get(entry)?;
        Some((file.as_str(), format!("{local}{rest}")))
    }

    pub(super) fn is_leaf(&self, path: &str) -> bool {
        self.leaves.contains_key(path)
    }
}

/// The problems found so far, each kept with its place in the schema so they are listed in the order of
/// the sections and their entries whichever pass found them.
pub(super) struct Problems<'a> {
    origins: &'a Origins,
    lines: Vec<([usize; 3], String)>,
    /// Keys (and entries) already reported: what is under them is not reported again.
    failed: Vec<String>,
}

impl<'a> Problems<'a> {
    /// `first` are the lines of the layering (include, environment), listed before all others.
    pub(super) fn new(origins: &'a Origins, first: Vec<String>) -> Problems<'a> {
        let lines = first.into_iter().map(|line| ([0; 3], line)).collect();
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

    /// A problem after every other: a rule across sections.
    pub(super) fn last(&mut self, path: &str, message: impl Display) {
        let line = self.line(path, message);
        self.lines.push(([usize::MAX; 3], line));
    }

    /// [`Problems::add`], then nothing more about `path`.
    pub(super) fn fail(&mut self, path: &str, message: impl Display) {
        self.add(path, message);
        self.mark(path);
    }

    pub(super) fn mark(&mut self, path: &str) {
        self.failed.push(path.to_owned());
    }

    pub(super) fn failed(&self, path: &str) -> bool {
        self.failed.iter().any(|f| {
            path.strip_prefix(f.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        })
    }

    pub(super) fn is_env(&self, path: &str) -> bool {
        self.origins.is_leaf(path)
    }

    /// Absent and empty are both "missing": serde gave an absent key its empty default.
    pub(super) fn required(&mut self, at: &str, keys: &[(&str, &str)]) {
        for (key, value) in keys {
            if value.is_empty() {
                self.add(&format!("{at}.{key}"), "missing");
            }
        }
    }

    pub(super) fn secret(&mut self, at: &str, key: &str, value: &SecretString) {
        if value.expose_secret().is_empty() {
            self.add(
                &format!("{at}.{key}"),
                format!("missing (set it or {key}_file)"),
            );
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
            .filter(|parent| parent.ends_with(']'));
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

/// Where a key sits in the schema: its section, its entry, its field, in the order the structs declare
/// them (a `*_file` key where its secret is, an unknown key after the known ones), so problems read in the
/// order of the config whichever pass found them.
fn rank(path: &str) -> [usize; 3] {
    let (section, rest) = path.split_at(path.find(['.', '[']).unwrap_or(path.len()));
    let index = rest
        .strip_prefix('[')
        .and_then(|r| r.split(']').next()?.parse().ok());
    let key = rest.rsplit('.').next().unwrap_or("");
    let key = match key.strip_suffix("_file") {
        _ if LIMITS.contains(&key) => "limits",
        Some(secret) => secret,
        None => key,
    };
    let keys = match section {
        "database" => fields::<DatabaseConfig>(),
        "schedule" => fields::<ScheduleConfig>(),
        "http" => fields::<HttpConfig>(),
        "log" => fields::<LogConfig>(),
        "collector" => fields::<CollectorConfig>(),
        "zoom" => fields::<ZoomAccount>(),
        "videosdk" => fields::<VideoSdkAccount>(),
        "rocketchat" => fields::<RocketChatWorkspace>(),
        _ => &[],
    };
    let position = |fields: &[&str], name: &str| fields.iter().position(|f| *f == name);
    let section = position(fields::<Config>(), section).map_or(usize::MAX - 1, |i| i + 1);
    let field = position(keys, key).unwrap_or(usize::MAX);
    [
        section,
        index.unwrap_or(0),
        if rest.contains('.') { field } else { 0 },
    ]
}

/// The keys serde derived for `T`, in declaration order: its deserializer hands them to
/// `deserialize_struct`, where this one keeps them and stops.
fn fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Probe<'f>(&'f mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("only structs"))
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
    // Always an error: the probe only wants the field list.
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

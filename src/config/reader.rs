//! Typed reads from the layered TOML tree that record problems instead of stopping at the first one.
//!
//! Every getter removes its key from the section, so whatever is left when the section is finished is an
//! unknown key. A getter that finds a problem records it and returns the default: the value is never used,
//! because any problem fails the whole load, but it lets the walk go on and find the other problems.

use std::collections::HashMap;
use std::fmt::Display;

use secrecy::SecretString;
use toml::{Table, Value};

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

    fn get(&self, path: &str) -> Option<&str> {
        self.leaves
            .get(path)
            .or_else(|| self.created.get(path))
            .map(String::as_str)
    }
}

/// One table of the tree, with the display path of its keys' parent (`""` for the root, `zoom[1]`).
pub(super) struct Section {
    path: String,
    table: Table,
}

impl Section {
    pub(super) fn new(path: String, table: Table) -> Section {
        Section { path, table }
    }

    pub(super) fn key_path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    fn take(&mut self, key: &str) -> Option<(String, Value)> {
        let value = self.table.remove(key)?;
        Some((self.key_path(key), value))
    }
}

pub(super) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

pub(super) struct Ctx<'a> {
    pub(super) problems: Vec<String>,
    origins: &'a Origins,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(origins: &'a Origins) -> Ctx<'a> {
        Ctx {
            problems: Vec::new(),
            origins,
        }
    }

    pub(super) fn problem(&mut self, path: &str, message: impl Display) {
        // An entry the environment created (an index past the file's last) is not in the file, so its
        // problems say where it came from.
        let entry = path
            .rsplit_once('.')
            .map(|(parent, _)| parent)
            .filter(|parent| parent.ends_with(']'));
        let shown = self.display(path);
        let line = match (
            self.origins.get(path),
            entry.and_then(|e| self.origins.created.get(e)),
        ) {
            (Some(var), _) => format!("{shown}: {message} (from {var})"),
            (None, Some(var)) => format!("{shown}: {message} (in an entry created by {var})"),
            (None, None) => format!("{shown}: {message}"),
        };
        self.problems.push(line);
    }

    /// A key as a message shows it: `accounts.d/campus.toml: zoom[0].plan` for an entry from an included
    /// file (its index there), the merged path otherwise.
    pub(super) fn display(&self, path: &str) -> String {
        match self.origins.located(path) {
            Some((file, local)) => format!("{file}: {local}"),
            None => path.to_owned(),
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

    fn is_env(&self, path: &str) -> bool {
        self.origins.is_leaf(path)
    }

    /// Reports every key nobody asked for: a typo must not silently fall back to a default.
    pub(super) fn finish(&mut self, section: Section) {
        for key in section.table.keys() {
            self.problem(&section.key_path(key), "unknown key");
        }
    }

    /// A `[section]` table; absent gives an empty one so its required keys are reported as missing.
    pub(super) fn section(&mut self, parent: &mut Section, key: &str) -> Section {
        match parent.take(key) {
            None => Section::new(parent.key_path(key), Table::new()),
            Some((path, Value::Table(table))) => Section::new(path, table),
            Some((path, other)) => {
                self.problem(
                    &path,
                    format!("expected a table ([{key}]), got {}", describe(&other)),
                );
                Section::new(path, Table::new())
            }
        }
    }

    /// A `[[section]]` array of tables; absent is an empty list.
    pub(super) fn sections(&mut self, parent: &mut Section, key: &str) -> Vec<Section> {
        let Some((path, value)) = parent.take(key) else {
            return Vec::new();
        };
        let Value::Array(items) = value else {
            self.problem(
                &path,
                format!(
                    "expected an array of tables ([[{key}]]), got {}",
                    describe(&value)
                ),
            );
            return Vec::new();
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            match item {
                Value::Table(table) => out.push(Section::new(item_path, table)),
                other => self.problem(
                    &item_path,
                    format!("expected a table, got {}", describe(&other)),
                ),
            }
        }
        out
    }

    /// A string, with its path; `None` when absent or of another type (reported).
    fn string_at(&mut self, s: &mut Section, key: &str) -> Option<(String, String)> {
        match s.take(key)? {
            (path, Value::String(text)) => Some((path, text)),
            (path, other) => {
                self.problem(
                    &path,
                    format!("expected a string, got {}", describe(&other)),
                );
                None
            }
        }
    }

    pub(super) fn string(&mut self, s: &mut Section, key: &str) -> Option<String> {
        self.string_at(s, key).map(|(_, text)| text)
    }

    /// A required string: absent and empty are both "missing".
    pub(super) fn required(&mut self, s: &mut Section, key: &str) -> String {
        let path = s.key_path(key);
        let present = s.table.contains_key(key);
        match self.string(s, key) {
            Some(text) if !text.is_empty() => text,
            Some(_) => {
                self.problem(&path, "missing");
                String::new()
            }
            None => {
                if !present {
                    self.problem(&path, "missing");
                }
                String::new()
            }
        }
    }

    /// A string from `choices` (ASCII case ignored), or `default` when absent.
    pub(super) fn choice<T: Copy>(
        &mut self,
        s: &mut Section,
        key: &str,
        default: T,
        choices: &[(&str, T)],
    ) -> T {
        let Some((path, text)) = self.string_at(s, key) else {
            return default;
        };
        if let Some((_, value)) = choices
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(text.trim()))
        {
            return *value;
        }
        let names: Vec<String> = choices
            .iter()
            .map(|(name, _)| format!("{name:?}"))
            .collect();
        self.problem(
            &path,
            format!("expected {}, got {}", one_of(&names), quote(&text)),
        );
        default
    }

    /// An integer in `min..=max`; `None` when absent or invalid (reported). Values from the environment
    /// arrive as strings and are parsed here, where the expected type is known.
    pub(super) fn int(&mut self, s: &mut Section, key: &str, min: u64, max: u64) -> Option<u64> {
        let (path, value) = s.take(key)?;
        let n = match &value {
            Value::Integer(n) => *n,
            Value::String(text) if self.is_env(&path) => match text.trim().parse::<i64>() {
                Ok(n) => n,
                Err(_) => {
                    self.problem(
                        &path,
                        format!("expected an integer, got {}", describe(&value)),
                    );
                    return None;
                }
            },
            other => {
                self.problem(
                    &path,
                    format!("expected an integer, got {}", describe(other)),
                );
                return None;
            }
        };
        match u64::try_from(n) {
            Ok(v) if (min..=max).contains(&v) => Some(v),
            _ => {
                let message = if max == u64::from(u32::MAX) || max == u64::MAX {
                    if n < 0 || u64::try_from(n).is_ok_and(|v| v < min) {
                        format!("must be at least {min}, got {n}")
                    } else {
                        format!("must be at most {max}, got {n}")
                    }
                } else {
                    format!("must be between {min} and {max}, got {n}")
                };
                self.problem(&path, message);
                None
            }
        }
    }

    pub(super) fn u32_or(
        &mut self,
        s: &mut Section,
        key: &str,
        default: u32,
        min: u32,
        max: u32,
    ) -> u32 {
        self.opt_u32(s, key, min, max).unwrap_or(default)
    }

    pub(super) fn opt_u32(
        &mut self,
        s: &mut Section,
        key: &str,
        min: u32,
        max: u32,
    ) -> Option<u32> {
        self.int(s, key, min.into(), max.into())
            .and_then(|v| u32::try_from(v).ok())
    }

    pub(super) fn u64_or(
        &mut self,
        s: &mut Section,
        key: &str,
        default: u64,
        min: u64,
        max: u64,
    ) -> u64 {
        self.int(s, key, min, max).unwrap_or(default)
    }

    pub(super) fn bool_or(&mut self, s: &mut Section, key: &str, default: bool) -> bool {
        let Some((path, value)) = s.take(key) else {
            return default;
        };
        match &value {
            Value::Boolean(b) => *b,
            Value::String(text)
                if self.is_env(&path) && text.trim().eq_ignore_ascii_case("true") =>
            {
                true
            }
            Value::String(text)
                if self.is_env(&path) && text.trim().eq_ignore_ascii_case("false") =>
            {
                false
            }
            other => {
                self.problem(
                    &path,
                    format!("expected true or false, got {}", describe(other)),
                );
                default
            }
        }
    }

    /// A secret given inline as `key` or read from the file named by `key_file`. `hint` completes the
    /// "missing (...)" message. No message ever shows the secret, only its type or the file's path.
    pub(super) fn secret(&mut self, s: &mut Section, key: &str, hint: &str) -> SecretString {
        let file_key = format!("{key}_file");
        let path = s.key_path(key);
        let file_path = s.key_path(&file_key);
        let empty = || SecretString::from(String::new());
        match (s.table.remove(key), s.table.remove(&file_key)) {
            (Some(_), Some(_)) => {
                self.problem(&path, format!("set together with {file_path}; keep one"));
                empty()
            }
            (Some(Value::String(text)), None) if !text.is_empty() => SecretString::from(text),
            (Some(Value::String(_)), None) | (None, None) => {
                self.problem(&path, format!("missing ({hint})"));
                empty()
            }
            (Some(other), None) => {
                self.problem(&path, format!("expected a string, got {}", kind(&other)));
                empty()
            }
            (None, Some(Value::String(file))) => match read_secret_file(&file) {
                Ok(text) => SecretString::from(text),
                Err(message) => {
                    self.problem(&file_path, message);
                    empty()
                }
            },
            (None, Some(other)) => {
                self.problem(
                    &file_path,
                    format!("expected a file path, got {}", describe(&other)),
                );
                empty()
            }
        }
    }

    /// An http(s) base URL; `default` when absent, required when there is none. With `trim_slash` the
    /// trailing slashes go, so callers can append `/path`.
    pub(super) fn url(
        &mut self,
        s: &mut Section,
        key: &str,
        default: Option<&str>,
        trim_slash: bool,
    ) -> String {
        let path = s.key_path(key);
        let present = s.table.contains_key(key);
        let text = match (self.string(s, key), default) {
            (Some(text), None) if text.is_empty() => {
                self.problem(&path, "missing");
                return String::new();
            }
            (Some(text), _) => text,
            (None, Some(default)) => return default.to_owned(),
            (None, None) => {
                if !present {
                    self.problem(&path, "missing");
                }
                return String::new();
            }
        };
        if let Err(message) = check_http_url(&text) {
            self.problem(&path, message);
        }
        if trim_slash {
            text.trim_end_matches('/').to_owned()
        } else {
            text
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

/// `"a"`, `"a" or "b"`, `"a", "b" or "c"`.
fn one_of(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [only] => only.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
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

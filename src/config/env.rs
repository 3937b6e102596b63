//! The environment layer: `ROLLCALL__SECTION__KEY` and `ROLLCALL__ZOOM__0__KEY` set keys in the file's tree,
//! `DATABASE_URL` sets `database.url` over everything else.
//!
//! Values are stored as strings and converted by the reader, which knows each key's type: guessing from the
//! text would turn an all-digit secret or user id into an integer.

use toml::{Table, Value};

use super::problems::{join, kind, Origins};

const PREFIX: &str = "ROLLCALL__";
/// Room for the hundreds of accounts one process serves (with `include`d account files), small enough that
/// a typo cannot allocate millions of entries.
const MAX_INDEX: usize = 999;

pub(super) fn apply(
    root: &mut Value,
    env: impl IntoIterator<Item = (String, String)>,
    origins: &mut Origins,
    problems: &mut Vec<String>,
) {
    // An empty value counts as unset: compose files pass `${VAR}` through as "" when VAR is not set, and
    // that must not wipe the file's value.
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(name, value)| {
            !value.is_empty() && (name.starts_with(PREFIX) || name == "DATABASE_URL")
        })
        .collect();
    // Sorted so that which of two conflicting variables is reported does not depend on the process.
    vars.sort();
    let mut database_url = None;
    for (name, value) in vars {
        if name == "DATABASE_URL" {
            database_url = Some(value);
            continue;
        }
        let segments: Vec<String> = name[PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if segments.iter().any(String::is_empty) {
            problems.push(format!(
                "{name}: malformed name (expected ROLLCALL__SECTION__KEY)"
            ));
            continue;
        }
        if let Err(message) = set(root, "", &segments, Value::String(value), &name, origins) {
            problems.push(format!("{name}: {message}"));
        }
    }
    if let Some(url) = database_url {
        set_database_url(root, url, origins, problems);
    }
}

fn set_database_url(
    root: &mut Value,
    url: String,
    origins: &mut Origins,
    problems: &mut Vec<String>,
) {
    let Value::Table(root) = root else { return };
    match root
        .entry("database")
        .or_insert_with(|| Value::Table(Table::new()))
    {
        Value::Table(database) => {
            // Whatever else supplied the URL, this one is meant to win, a `url_file` included.
            database.remove("url_file");
            database.insert("url".to_owned(), Value::String(url));
            origins
                .leaves
                .insert("database.url".into(), "DATABASE_URL".into());
        }
        other => problems.push(format!(
            "DATABASE_URL: cannot apply it: database is {}, not a table",
            kind(other)
        )),
    }
}

fn set(
    node: &mut Value,
    at: &str,
    segments: &[String],
    value: Value,
    var: &str,
    origins: &mut Origins,
) -> Result<(), String> {
    let Some((segment, rest)) = segments.split_first() else {
        return Ok(());
    };
    let index = parse_index(segment);
    let shown = if at.is_empty() { "the top level" } else { at };
    match (node, index) {
        (Value::Table(table), None) => {
            let here = join(at, segment);
            if rest.is_empty() {
                origins.set_leaf(here, var)?;
                replace_secret_sibling(table, at, segment, origins);
                table.insert(segment.clone(), value);
                return Ok(());
            }
            let child = table.entry(segment.clone()).or_insert_with(|| {
                origins
                    .created
                    .entry(here.clone())
                    .or_insert(var.to_owned());
                empty_container(&rest[0])
            });
            set(child, &here, rest, value, var, origins)
        }
        (Value::Array(items), Some(i)) => {
            if i > MAX_INDEX {
                return Err(format!("index {i} is too large (at most {MAX_INDEX})"));
            }
            let here = format!("{at}[{i}]");
            while items.len() <= i {
                // Gaps become empty entries, reported as missing keys under their own index.
                let entry = format!("{at}[{}]", items.len());
                origins.created.entry(entry).or_insert(var.to_owned());
                items.push(Value::Table(Table::new()));
            }
            if rest.is_empty() {
                origins.set_leaf(here, var)?;
                items[i] = value;
                return Ok(());
            }
            set(&mut items[i], &here, rest, value, var, origins)
        }
        (Value::Table(_), Some(i)) => Err(format!(
            "{shown} is a table, not an array: cannot index it with {i}"
        )),
        (Value::Array(_), None) => Err(format!(
            "{shown} is an array: expected an index (0, 1, ...) after it, got {segment:?}"
        )),
        (other, _) => Err(format!(
            "{shown} is {}, cannot set {segment} inside it",
            kind(other)
        )),
    }
}

fn parse_index(segment: &str) -> Option<usize> {
    if segment.bytes().all(|b| b.is_ascii_digit()) {
        // All digits but too long for usize: far past MAX_INDEX either way.
        Some(segment.parse().unwrap_or(usize::MAX))
    } else {
        None
    }
}

fn empty_container(next: &str) -> Value {
    if parse_index(next).is_some() {
        Value::Array(Vec::new())
    } else {
        Value::Table(Table::new())
    }
}

/// A secret set from the environment replaces the file's `<key>_file` and the other way round: the variable
/// is an override, and "both set" is meant for one layer contradicting itself.
fn replace_secret_sibling(table: &mut Table, at: &str, key: &str, origins: &Origins) {
    let section = at.split(['.', '[']).next().unwrap_or("");
    let secret = match section {
        "database" => "url",
        "zoom" => "client_secret",
        "videosdk" => "api_secret",
        "rocketchat" => "auth_token",
        _ => return,
    };
    let file_key = format!("{secret}_file");
    let sibling = if key == secret {
        file_key
    } else if key == file_key {
        secret.to_owned()
    } else {
        return;
    };
    if !origins.leaves.contains_key(&join(at, &sibling)) {
        table.remove(&sibling);
    }
}

//! The environment layer: `ROLLCALL__SECTION__KEY` and `ROLLCALL__ZOOM__0__KEY` set keys in the file's tree,
//! `DATABASE_URL` sets `database.url` over everything else.
//!
//! Values are stored as text and converted where each key's type is known (`de::deserialize`): guessing from
//! the text would turn an all-digit secret or user id into an integer.

use toml::{Table, Value};

use super::de::secret_of;
use super::problems::{join, kind, Origins};

const PREFIX: &str = "ROLLCALL__";
/// Room for the hundreds of accounts one process serves (with `include`d account files), small enough that
/// a typo cannot allocate millions of entries.
const MAX_INDEX: usize = 999;

pub(super) fn apply(
    root: &mut Value,
    env: Vec<(String, String)>,
    origins: &mut Origins,
    problems: &mut Vec<String>,
) {
    // An empty value counts as unset: compose files pass `${VAR}` through as "" when VAR is not set, and
    // that must not wipe the file's value.
    let ours = |(name, value): &(String, String)| !value.is_empty() && name.starts_with(PREFIX);
    let mut vars: Vec<(String, String)> = env.iter().filter(|var| ours(var)).cloned().collect();
    // Sorted so that which of two conflicting variables is reported does not depend on the process.
    vars.sort();
    for (name, value) in vars {
        let segments: Vec<String> = name[PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        let result = match segments.iter().any(String::is_empty) {
            true => Err("malformed name (expected ROLLCALL__SECTION__KEY)".to_owned()),
            false => set(root, "", &segments, Value::String(value), &name, origins),
        };
        if let Err(message) = result {
            problems.push(format!("{name}: {message}"));
        }
    }
    let url = env
        .into_iter()
        .rev()
        .find(|(name, value)| name == "DATABASE_URL" && !value.is_empty());
    let (Some((_, url)), Value::Table(root)) = (url, root) else {
        return;
    };
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
    let shown = if at.is_empty() { "the top level" } else { at };
    let mut created = |path: String| {
        origins
            .created
            .entry(path)
            .or_insert_with(|| var.to_owned());
    };
    let (here, child) = match (node, index(segment)) {
        (Value::Table(table), None) => {
            let here = join(at, segment);
            if rest.is_empty() {
                origins.set_leaf(here, var)?;
                replace_secret_sibling(table, at, segment, origins);
                table.insert(segment.clone(), value);
                return Ok(());
            }
            let child = table.entry(segment.clone()).or_insert_with(|| {
                created(here.clone());
                if index(&rest[0]).is_some() {
                    Value::Array(Vec::new())
                } else {
                    Value::Table(Table::new())
                }
            });
            (here, child)
        }
        (Value::Array(items), Some(i)) => {
            if i > MAX_INDEX {
                return Err(format!("index {i} is too large (at most {MAX_INDEX})"));
            }
            while items.len() <= i {
                // Gaps become empty entries, reported as missing keys under their own index.
                created(format!("{at}[{}]", items.len()));
                items.push(Value::Table(Table::new()));
            }
            let here = format!("{at}[{i}]");
            if rest.is_empty() {
                origins.set_leaf(here, var)?;
                items[i] = value;
                return Ok(());
            }
            (here, &mut items[i])
        }
        (Value::Table(_), Some(i)) => {
            return Err(format!(
                "{shown} is a table, not an array: cannot index it with {i}"
            ))
        }
        (Value::Array(_), None) => {
            let expected = "expected an index (0, 1, ...) after it";
            return Err(format!("{shown} is an array: {expected}, got {segment:?}"));
        }
        (other, _) => {
            return Err(format!(
                "{shown} is {}, cannot set {segment} inside it",
                kind(other)
            ))
        }
    };
    set(child, &here, rest, value, var, origins)
}

/// All digits but too long for usize is far past MAX_INDEX either way.
fn index(segment: &str) -> Option<usize> {
    let digits = segment.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| segment.parse().unwrap_or(usize::MAX))
}

/// A secret set from the environment replaces the file's `<key>_file` and the other way round: the variable
/// is an override, and "both set" is meant for one layer contradicting itself.
fn replace_secret_sibling(table: &mut Table, at: &str, key: &str, origins: &Origins) {
    let Some(secret) = secret_of(at.split(['.', '[']).next().unwrap_or("")) else {
        return;
    };
    let file_key = format!("{secret}_file");
    let sibling = match key {
        _ if key == secret => file_key,
        _ if key == file_key => secret.to_owned(),
        _ => return,
    };
    if !origins.leaves.contains_key(&join(at, &sibling)) {
        table.remove(&sibling);
    }
}

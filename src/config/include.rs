//! `include = ["accounts.d/*.toml"]`: account entries kept in files of their own, merged into the main
//! file's tree before the environment layer, so `ROLLCALL__ZOOM__<i>__...` indexes the merged list.
//!
//! An included file may hold only `[[zoom]]`, `[[videosdk]]` and `[[rocketchat]]` entries: anything else
//! would let two files disagree about one setting with no rule for who wins. Its entries are appended after
//! the main file's, files in sorted path order, and each one remembers its file and its index there, so
//! every problem with it names the file to open (see `Origins::included`).

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::problems::{describe, quote, Origins};
use super::syntax_problem;

const ENV_VAR: &str = "ROLLCALL__INCLUDE";

/// Takes `include` out of `root` (and `ROLLCALL__INCLUDE` out of `env`), reads every file it names and
/// appends their entries to `root`. Returns the files read, in merge order. Relative patterns resolve
/// against the directory of `main`, the main file (not the working directory: a config and its account
/// files are deployed together, wherever the process starts); without one, against the working directory.
pub(super) fn merge(
    root: &mut Table,
    main: Option<&Path>,
    env: &mut Vec<(String, String)>,
    origins: &mut Origins,
    problems: &mut Vec<String>,
) -> Vec<PathBuf> {
    let patterns = patterns(root.remove("include"), env, problems);
    let files = expand(main, &patterns, problems);
    for (path, label) in &files {
        match std::fs::read_to_string(path).map(|text| (text.parse::<Table>(), text)) {
            Ok((Ok(table), _)) => append(root, table, label, origins, problems),
            Ok((Err(e), text)) => problems.push(syntax_problem(&text, label, &e)),
            Err(e) => problems.push(format!("{label}: cannot read it: {e}")),
        }
    }
    files.into_iter().map(|(path, _)| path).collect()
}

/// The patterns, each with the key that set it (`include[1]`) for messages. `ROLLCALL__INCLUDE` replaces
/// the file's list with one pattern: a variable holds one string, and a separator would be ambiguous in a
/// path.
fn patterns(
    value: Option<Value>,
    env: &mut Vec<(String, String)>,
    problems: &mut Vec<String>,
) -> Vec<(String, String)> {
    let mut from_env = None;
    env.retain(|(name, value)| {
        let Some(rest) = name.strip_prefix("ROLLCALL__") else {
            return true;
        };
        if !rest
            .split("__")
            .next()
            .unwrap_or("")
            .eq_ignore_ascii_case("include")
        {
            return true;
        }
        if !rest.eq_ignore_ascii_case("include") {
            let whole = "include is set as a whole, one pattern";
            problems.push(format!("{name}: {whole}: {ENV_VAR}=accounts.d/*.toml"));
        } else if !value.is_empty() {
            // Empty counts as unset, as for every other variable (compose passes unset ones as "").
            from_env = Some(value.clone());
        }
        false
    });
    if let Some(pattern) = from_env {
        return vec![(format!("include (from {ENV_VAR})"), pattern)];
    }
    let items = match value {
        None => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(other) => {
            let expected = "expected an array of file patterns such as [\"accounts.d/*.toml\"]";
            problems.push(format!("include: {expected}, got {}", describe(&other)));
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let key = format!("include[{i}]");
        let problem = match item {
            Value::String(text) if !text.trim().is_empty() => {
                out.push((key, text));
                continue;
            }
            Value::String(_) => "missing (an empty pattern)".to_owned(),
            other => format!("expected a string, got {}", describe(&other)),
        };
        problems.push(format!("{key}: {problem}"));
    }
    out
}

/// Every file the patterns name, sorted by path and each once, with the label messages use: the path as
/// written relative to the main file's directory, or absolute.
fn expand(
    main: Option<&Path>,
    patterns: &[(String, String)],
    problems: &mut Vec<String>,
) -> Vec<(PathBuf, String)> {
    let base_dir = main.and_then(Path::parent).unwrap_or(Path::new(""));
    // The main file itself is never included again when a pattern such as `*.toml` matches it.
    let main = main.and_then(|m| m.canonicalize().ok());
    let relative = !base_dir.as_os_str().is_empty();
    let mut files: Vec<PathBuf> = Vec::new();
    for (key, pattern) in patterns {
        let mut problem = |message: String| problems.push(format!("{key}: {message}"));
        let as_is = Path::new(pattern).is_absolute() || !relative;
        if !pattern.contains(['*', '?', '[']) {
            // A plain path names one file the operator expects to exist: its absence is a mistake, where an
            // empty `accounts.d/` matched by a glob is a normal state (no accounts there yet).
            let full = if as_is {
                PathBuf::from(pattern)
            } else {
                base_dir.join(pattern)
            };
            match full.exists() {
                true => files.push(full),
                false => problem(format!("no file at {}", quote(&full.display().to_string()))),
            }
            continue;
        }
        // The directory part is escaped, so a config directory named like `[x]` is taken literally.
        let dir = glob::Pattern::escape(&base_dir.to_string_lossy());
        let joined = if as_is {
            pattern.clone()
        } else {
            format!("{dir}/{pattern}")
        };
        // A leading dot must be matched literally, as in a shell: a Kubernetes ConfigMap volume holds
        // `..data` and timestamped directories beside the files, and `*` must not pick those up.
        let options = glob::MatchOptions {
            require_literal_leading_dot: true,
            ..glob::MatchOptions::new()
        };
        match glob::glob_with(&joined, options) {
            Ok(paths) => {
                for entry in paths {
                    match entry {
                        Ok(path) => files.push(path),
                        Err(e) => {
                            let path = quote(&e.path().display().to_string());
                            problem(format!("cannot read {path}: {}", e.error()));
                        }
                    }
                }
            }
            Err(e) => problem(format!("invalid pattern {}: {}", quote(pattern), e.msg)),
        }
    }
    files.sort();
    files.dedup();
    files.retain(|path| main.is_none() || path.canonicalize().ok() != main);
    let label = |path: &Path| match path.strip_prefix(base_dir) {
        Ok(inside) if relative => inside.display().to_string(),
        _ => path.display().to_string(),
    };
    files
        .into_iter()
        .map(|path| (label(&path), path))
        .map(|(l, p)| (p, l))
        .collect()
}

/// Appends one file's entries to the main tree, noting where each came from.
fn append(
    root: &mut Table,
    table: Table,
    label: &str,
    origins: &mut Origins,
    problems: &mut Vec<String>,
) {
    for (key, value) in table {
        let only = "only [[zoom]], [[videosdk]] and [[rocketchat]] entries";
        let problem = match &value {
            _ if !["zoom", "videosdk", "rocketchat"].contains(&key.as_str()) => {
                format!("not allowed in an included file ({only})")
            }
            Value::Array(_) => String::new(),
            other => format!(
                "expected an array of tables ([[{key}]]), got {}",
                describe(other)
            ),
        };
        let (Value::Array(items), "") = (value, problem.as_str()) else {
            problems.push(format!("{label}: {key}: {problem}"));
            continue;
        };
        // The main file's own `key` is not an array: that is reported there, and these entries have
        // nowhere to go.
        let target = root
            .entry(key.clone())
            .or_insert_with(|| Value::Array(Vec::new()));
        let Value::Array(merged) = target else {
            continue;
        };
        for (i, item) in items.into_iter().enumerate() {
            let entry = format!("{key}[{}]", merged.len());
            origins
                .included
                .insert(entry, (label.to_owned(), format!("{key}[{i}]")));
            merged.push(item);
        }
    }
}

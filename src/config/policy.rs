//! `[include_policy]`: what an included account file may make rollcall do with a credential.
//!
//! An account file is often written by a team that must not read the main secrets. Without a rule, one
//! with `client_secret_file = "/proc/self/environ"` and `oauth_url = "http://elsewhere/"` would make
//! rollcall send the process environment (the database password with it) as Basic auth to that host. So
//! an included entry may read a `*_file` secret only inside `secret_dirs` (symlinks resolved first, never
//! under `/proc`, `/sys` or `/dev`), and may send its credential only to Zoom's hosts, the hosts the main
//! file's own entries use, and `hosts`. A key set by the environment on an included entry
//! (`ROLLCALL__ZOOM__3__OAUTH_URL`) comes from whoever runs the process, not from the file, and is
//! trusted like the main file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::problems::{quote, Problems};
use super::Config;

/// Where docker/compose/Kubernetes secrets and systemd credentials are mounted.
pub(super) const DEFAULT_SECRET_DIRS: [&str; 2] = ["/run/secrets", "/run/credentials"];
/// Zoom's API and OAuth hosts: an included Zoom entry may always use them.
const ZOOM_ORIGINS: [&str; 2] = ["https://api.zoom.us", "https://zoom.us"];
/// Kernel views of the process and devices: never a secret file, whatever `secret_dirs` allows.
const NEVER: [&str; 3] = ["/proc", "/sys", "/dev"];

/// The directories from the main file's tree, before serde has checked them (a secret is read earlier
/// than that); each resolved so a symlinked mount compares by where it leads. A malformed value falls
/// back to the default here and is reported by serde or `check`, which fails the load anyway.
pub(super) fn secret_dirs(root: &Table) -> Vec<PathBuf> {
    let given = root
        .get("include_policy")
        .and_then(|p| p.get("secret_dirs"))
        .and_then(Value::as_array)
        .map(|dirs| dirs.iter().filter_map(Value::as_str).collect::<Vec<_>>());
    let dirs = given.unwrap_or_else(|| DEFAULT_SECRET_DIRS.to_vec());
    dirs.into_iter()
        .filter(|d| Path::new(d).is_absolute())
        .map(|d| {
            Path::new(d)
                .canonicalize()
                .unwrap_or_else(|_| PathBuf::from(d))
        })
        .collect()
}

/// The path to read for an included entry's `*_file`: resolved, so what is read is what was checked.
pub(super) fn allowed_secret_file(file: &str, dirs: &[PathBuf]) -> Result<PathBuf, String> {
    let real = Path::new(file)
        .canonicalize()
        .map_err(|e| format!("cannot read {}: {e}", quote(file)))?;
    let resolved = match real.as_path() == Path::new(file) {
        true => String::new(),
        false => format!(" (it resolves to {})", quote(&real.display().to_string())),
    };
    if let Some(never) = NEVER.iter().find(|n| real.starts_with(n)) {
        return Err(format!(
            "{}{resolved} is under {never}: an included file may not read it",
            quote(file)
        ));
    }
    if !dirs.iter().any(|dir| real.starts_with(dir)) {
        let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        return Err(format!(
            "{}{resolved} is outside the directories an included file may read secrets from ({}); the main file's include_policy.secret_dirs lists them",
            quote(file),
            if shown.is_empty() { "none".to_owned() } else { shown.join(", ") }
        ));
    }
    Ok(real)
}

/// `https://host[:port]` of an http(s) URL, the default port left out; `None` if it is not one.
fn origin(url: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).ok()?;
    let origin = url.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// Checks `include_policy` itself, then every URL an included entry sends its credential to.
pub(super) fn check_hosts(config: &Config, p: &mut Problems) {
    for (i, dir) in config.include_policy.secret_dirs.iter().enumerate() {
        if !Path::new(dir).is_absolute() {
            let message = format!("expected an absolute directory, got {}", quote(dir));
            p.add(&format!("include_policy.secret_dirs[{i}]"), message);
        }
    }
    let mut allowed: BTreeSet<String> = ZOOM_ORIGINS.map(str::to_owned).into();
    for (i, host) in config.include_policy.hosts.iter().enumerate() {
        let url = match host.contains("://") {
            true => host.clone(),
            false => format!("https://{host}"),
        };
        let parsed = reqwest::Url::parse(&url).ok();
        let bare = parsed
            .as_ref()
            .is_some_and(|u| matches!(u.path(), "" | "/") && u.query().is_none());
        match origin(&url) {
            Some(o) if bare && url.starts_with("http") && !url.contains('@') => {
                allowed.insert(o);
            }
            _ => {
                let expected = "expected a host or an origin such as \"chat.example.com\" or \"http://127.0.0.1:3000\" (no path)";
                p.add(
                    &format!("include_policy.hosts[{i}]"),
                    format!("{expected}, got {}", quote(host)),
                );
            }
        }
    }
    // (key path, URL) of every entry's credential-bearing URLs.
    let mut urls: Vec<(String, &str)> = Vec::new();
    for (i, a) in config.zoom.iter().enumerate() {
        urls.push((format!("zoom[{i}].oauth_url"), &a.oauth_url));
        urls.push((format!("zoom[{i}].api_url"), &a.api_url));
    }
    for (i, a) in config.videosdk.iter().enumerate() {
        urls.push((format!("videosdk[{i}].api_url"), &a.api_url));
    }
    for (i, w) in config.rocketchat.iter().enumerate() {
        urls.push((format!("rocketchat[{i}].url"), &w.url));
    }
    let o = p.origins;
    let trusted = |path: &str| !o.is_included(path) || o.leaves.contains_key(path);
    // The main file's own choices: a host one of its entries (or the environment) already sends to.
    allowed.extend(
        urls.iter()
            .filter(|(path, _)| trusted(path))
            .filter_map(|(_, url)| origin(url)),
    );
    let listed = allowed.iter().cloned().collect::<Vec<_>>().join(", ");
    for (path, url) in urls {
        if trusted(&path) || p.failed(&path) {
            continue;
        }
        // A malformed URL was reported by `validate`; one with credentials is never echoed.
        let Some(o) = origin(url).filter(|_| !url.contains('@')) else {
            continue;
        };
        if !allowed.contains(&o) {
            p.add(&path, format!("{} is not a host an included file may send credentials to (allowed: {listed}); the main file's include_policy.hosts lists more", quote(&o)));
        }
    }
}

//! `database.url`'s libpq TLS parameters (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`) read the way libpq
//! reads them, and the connection failures that waiting cannot heal (a certificate that does not verify, a
//! rejected password) told apart from a database that is merely not up yet.

use sqlx::postgres::{PgConnectOptions, PgSslMode};
use std::path::Path;
use std::str::FromStr;

/// The libpq modes rollcall accepts. `allow` is left out on purpose: sqlx treats it as `disable`, and a
/// setting that silently means plaintext is worse than an error.
const MODES: &str = "disable, prefer, require, verify-ca or verify-full";

/// Parses `url` into connect options, or says in one sentence (without repeating the URL, which usually
/// holds the password) which parameter to fix. Files named by the TLS parameters must be readable now, so
/// a typo fails here instead of at every connection attempt.
pub fn connect_options(url: &str) -> Result<PgConnectOptions, String> {
    let mut parsed = reqwest::Url::parse(url)
        .map_err(|_| "expected postgres://user@host:port/database".to_string())?;
    let mut mode = None;
    let mut root_cert = None;
    let (mut cert, mut key) = (false, false);
    for (name, value) in parsed.query_pairs() {
        match name.as_ref() {
            "sslmode" | "ssl-mode" => mode = Some(value.into_owned()),
            "sslrootcert" | "ssl-root-cert" | "ssl-ca" => root_cert = Some(value.into_owned()),
            "sslcert" | "ssl-cert" => {
                cert = true;
                readable(&name, &value)?;
            }
            "sslkey" | "ssl-key" => {
                key = true;
                readable(&name, &value)?;
            }
            _ => {}
        }
    }
    let mode = match mode.as_deref() {
        None => None,
        Some(text @ ("disable" | "prefer" | "require" | "verify-ca" | "verify-full")) => {
            Some(PgSslMode::from_str(text).map_err(|_| format!("sslmode: expected {MODES}"))?)
        }
        Some("allow") => {
            return Err(format!(
            "sslmode: \"allow\" is not supported (it would connect without TLS); expected {MODES}"
        ))
        }
        Some(other) => return Err(format!("sslmode: expected {MODES}, got \"{other}\"")),
    };
    if cert != key {
        return Err(
            "sslcert and sslkey: give both (the client certificate and its key) or neither".into(),
        );
    }
    // libpq 16's `sslrootcert=system`: the operating system's trust store, which is what rollcall verifies
    // against anyway when no file is given; libpq allows it only where the host name is checked too.
    let system_roots = root_cert.as_deref() == Some("system");
    if system_roots {
        if !matches!(mode, Some(PgSslMode::VerifyFull)) {
            return Err(
                "sslrootcert=system needs sslmode=verify-full (the system's roots vouch for any host they signed)"
                    .into(),
            );
        }
        let kept: Vec<(String, String)> = parsed
            .query_pairs()
            .filter(|(name, value)| !(name == "sslrootcert" && value == "system"))
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    } else if let Some(path) = &root_cert {
        readable("sslrootcert", path)?;
    }
    // `require` with a root certificate stays unverified (libpq would verify the chain): sqlx 0.8's
    // verify-ca also checks the host name with the rustls in this tree (sqlx#3793), so promoting it would
    // refuse servers reached by an address that libpq accepts.
    PgConnectOptions::from_str(parsed.as_str())
        .map_err(|_| "expected postgres://user@host:port/database".to_string())
}

fn readable(parameter: &str, path: &str) -> Result<(), String> {
    // A PEM given inline (sqlx accepts one) is not a file.
    if path.trim_start().starts_with("-----BEGIN") {
        return Ok(());
    }
    std::fs::File::open(Path::new(path))
        .map(drop)
        .map_err(|err| format!("{parameter}: cannot read {path}: {err}"))
}

/// The TLS mode's name as libpq spells it, for messages.
pub fn mode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

/// Why a connection attempt failed for good, or `None` when waiting may help (the server is starting,
/// restarting, unreachable for now). The reason never holds the password: PostgreSQL's messages name the
/// user at most, and TLS errors name certificates and hosts.
pub fn lasting_failure(err: &sqlx::Error) -> Option<String> {
    match err {
        // rustls reports a handshake it refused (unknown issuer, wrong host name, expired, a fatal alert
        // from the server) as invalid data on the socket; a database that is merely not up yet never
        // sends that.
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
            Some(format!("TLS handshake failed: {io}"))
        }
        sqlx::Error::Tls(tls) => Some(format!("TLS: {tls}")),
        sqlx::Error::Configuration(config) => Some(config.to_string()),
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // invalid_authorization_specification (no pg_hba.conf entry, a client certificate
            // required), invalid_password, invalid_catalog_name (no such database),
            // insufficient_privilege (CONNECT revoked).
            Some(code @ ("28000" | "28P01" | "3D000" | "42501")) => {
                Some(format!("{} ({code})", db.message()))
            }
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(url: &str) -> Result<&'static str, String> {
        connect_options(url).map(|o| mode_name(o.get_ssl_mode()))
    }

    #[test]
    fn every_libpq_mode_is_read_and_allow_is_refused() {
        for m in ["disable", "prefer", "require", "verify-ca", "verify-full"] {
            assert_eq!(mode(&format!("postgres://u@h/d?sslmode={m}")), Ok(m));
        }
        let err = mode("postgres://u:pw@h/d?sslmode=allow").unwrap_err();
        assert!(
            err.starts_with("sslmode: \"allow\" is not supported"),
            "{err}"
        );
        let err = mode("postgres://u:pw@h/d?sslmode=on").unwrap_err();
        assert_eq!(
            err,
            "sslmode: expected disable, prefer, require, verify-ca or verify-full, got \"on\""
        );
    }

    #[test]
    fn files_must_be_readable_and_never_echo_the_password() {
        let err =
            mode("postgres://u:hunter2@h/d?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
                .unwrap_err();
        assert!(
            err.starts_with("sslrootcert: cannot read /nonexistent/ca.pem:"),
            "{err}"
        );
        assert!(!err.contains("hunter2"));
        let err = mode("postgres://u@h/d?sslmode=require&sslcert=/etc/hostname").unwrap_err();
        assert!(err.starts_with("sslcert and sslkey: give both"), "{err}");
    }

    #[test]
    fn system_roots_need_verify_full() {
        assert_eq!(
            mode("postgres://u@h/d?sslmode=verify-full&sslrootcert=system"),
            Ok("verify-full")
        );
        assert!(mode("postgres://u@h/d?sslmode=require&sslrootcert=system").is_err());
    }
}

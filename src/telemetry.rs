//! Logging: a human format on a terminal, JSON otherwise (journald, docker and log shippers parse it),
//! unless `log.format` says which. One line per window and per failure, never one per row.

use crate::config::{LogConfig, LogFormat};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

pub fn init(log: &LogConfig) {
    // sqlx reports every reconnect at info; the collector reports what matters about the database itself.
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| EnvFilter::try_new(format!("{},sqlx=warn", log.level)))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match log.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests, the demo after a config reload) is harmless; keep the first subscriber.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.compact().try_init()
    };
}

/// Before the config is read, errors still need a readable format.
pub fn init_default() {
    init_text("info");
}

/// Text logs at `default_level` unless RUST_LOG says otherwise: the demo keeps its terminal for the
/// summary and shows only warnings.
pub fn init_text(default_level: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("RUST_LOG")
                .unwrap_or_else(|_| EnvFilter::new(format!("{default_level},sqlx=warn"))),
        )
        .with_writer(std::io::stderr)
        .compact()
        .try_init();
}

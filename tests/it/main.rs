//! The integration suite as one test binary, so it links once: real PostgreSQL, the sandbox over HTTP,
//! collection in-process through the library, and the real `rollcall` binary only where the process itself
//! is under test (exit codes, signals, the daemon).

// Each test module uses part of the harness.
#[allow(dead_code)]
mod common;

mod analysts;
mod bounds;
mod budget;
mod confirm;
mod coverage;
mod daemon;
mod daily_usage;
mod engine;
mod include;
mod many_accounts;
mod ops;
mod pacing;
mod reach;
mod replicas;
mod resilience;
mod rocketchat;
mod schema;
mod sdk_finality;
mod streams;
mod tls;
mod tokens;
mod trust;
mod videosdk;
mod zoom_host_reports;

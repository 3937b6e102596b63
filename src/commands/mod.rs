//! The subcommands that are more than a call into the collector.

pub mod check;
pub mod coverage;
pub mod demo;
pub mod healthcheck;
pub mod progress;
pub mod status;

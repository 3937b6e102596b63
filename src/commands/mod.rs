//! The subcommands that are more than a call into the collector.

pub mod budget;
pub mod check;
pub mod coverage;
#[cfg(feature = "sandbox")]
pub mod demo;
pub mod healthcheck;
pub mod progress;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod status;

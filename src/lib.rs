//! rollcall keeps the usage history that Zoom and Rocket.Chat throw away: it walks every page of every
//! report window with crash-safe checkpoints and upserts the rows into PostgreSQL.

pub mod clock;
pub mod collector;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod http;
pub mod observe;
pub mod sources;
pub mod store;
pub mod telemetry;

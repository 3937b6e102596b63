//! Zoom: Server-to-Server OAuth and the active/inactive host reports; the Video SDK's JWT, past sessions
//! and session users; both daily usage reports.

pub mod auth;
pub mod build;
pub mod client;
pub mod daily_usage;
pub mod fields;
pub mod host_reports;
pub mod months;
pub mod pacing;
pub mod videosdk;

//! Zoom: Server-to-Server OAuth and the active/inactive host reports.

pub mod auth;
pub mod client;
pub mod host_reports;
pub mod months;

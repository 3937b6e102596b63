//! The process's calendar clock: where every "today" (and a run's start) is read from.
//!
//! Production reads the system clock. A build with the `sandbox` feature (development, tests, the demo)
//! may move the calendar to another date with `ROLLCALL_TEST_TODAY=YYYY-MM-DD`, so that behaviour that
//! depends on the date (the six-month horizon, finality, Rocket.Chat's days, coverage) is tested on any
//! date: the 1st of a month, the 31st of December, whatever day CI happens to run. Only the date moves;
//! the time of day and the passing of time are the system's, so waits, leases and page-token ages are
//! real. Waits on the real world (Zoom's daily reset, `Retry-After`) keep reading `Utc::now()`.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use std::sync::OnceLock;

/// The environment variable that moves the calendar (sandbox builds only).
pub const TEST_TODAY_ENV: &str = "ROLLCALL_TEST_TODAY";

static SHIFT: OnceLock<TimeDelta> = OnceLock::new();

/// Now, on the process's calendar.
pub fn now() -> DateTime<Utc> {
    shifted(Utc::now())
}

/// `instant` of the system clock (a cron tick), on the process's calendar.
pub fn shifted(instant: DateTime<Utc>) -> DateTime<Utc> {
    match SHIFT.get() {
        Some(shift) => instant.checked_add_signed(*shift).unwrap_or(instant),
        None => instant,
    }
}

/// Moves the calendar so that today (UTC) is `today`. The first call wins: one process has one calendar.
/// Returns whether the calendar now has `today`.
pub fn pin_today(today: NaiveDate) -> bool {
    let real = Utc::now().date_naive();
    let shift = *SHIFT.get_or_init(|| TimeDelta::days((today - real).num_days()));
    (real + shift) == today
}

/// Reads [`TEST_TODAY_ENV`] and pins the calendar to it. `Err` names the variable and the bad value.
pub fn pin_from_env() -> Result<(), String> {
    match std::env::var(TEST_TODAY_ENV) {
        Ok(text) if !text.trim().is_empty() => {
            let today = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
                format!("{TEST_TODAY_ENV}: expected a date as YYYY-MM-DD, got \"{text}\"")
            })?;
            pin_today(today);
            Ok(())
        }
        _ => Ok(()),
    }
}

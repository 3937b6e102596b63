//! Rocket.Chat's local-day windows, retention and finality (DESIGN §3). "Today" is the local date in the
//! workspace's time zone, never the host's.
//!
//! Windows are fixed blocks of `window_days` days counted from a stable anchor (1970-01-01), not ranges
//! counted back from yesterday. The unique key `(account, stream, scope, window_start, window_end)` of a
//! block therefore recurs unchanged on every run: a daily run re-walks only the one or two blocks that hold
//! the lookback days, a block whose last day is final is never claimed again, and no run leaves behind
//! overlapping windows with shifted keys that would each be walked once more. The block holding today keeps
//! its full span as its key; only the request stops at yesterday, as Zoom's current month stops at today.

use crate::store::windows::{PlannedWindow, Reach};
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, SecondsFormat, TimeZone, Utc};

/// The anchor of every block; any fixed date works, it only has to never change.
const ANCHOR: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(day) => day,
    None => NaiveDate::MIN,
};

/// The block holding `day`: its first and last day.
pub fn block_of(day: NaiveDate, window_days: u32) -> (NaiveDate, NaiveDate) {
    let len = i64::from(window_days.max(1));
    let offset = (day - ANCHOR).num_days().div_euclid(len) * len;
    let first = ANCHOR + Duration::days(offset);
    (first, first + Duration::days(len - 1))
}

/// The oldest day the server still holds: today minus `retention_days`.
pub fn oldest_served(today: NaiveDate, retention_days: u32) -> NaiveDate {
    today - Duration::days(i64::from(retention_days))
}

/// A day is final once today minus it is more than `lookback_days`: the server's nightly aggregation
/// (which reaches three days back) can no longer add users to it.
pub fn day_is_final(day: NaiveDate, today: NaiveDate, lookback_days: u32) -> bool {
    (today - day).num_days() > i64::from(lookback_days)
}

/// The days of a window that may be requested today: never today or later, never past retention. `None`
/// when nothing of the window is left to ask for.
pub fn request_span(
    window_start: NaiveDate,
    window_end: NaiveDate,
    today: NaiveDate,
    retention_days: u32,
) -> Option<(NaiveDate, NaiveDate)> {
    let first = window_start.max(oldest_served(today, retention_days));
    let last = window_end.min(today - Duration::days(1));
    (first <= last).then_some((first, last))
}

/// Blocks from the one holding `from` (default: the oldest served day) to the one holding yesterday
/// (or `to`). Blocks entirely older than the server's retention are unreachable and never requested.
pub fn plan(
    today: NaiveDate,
    window_days: u32,
    retention_days: u32,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Vec<PlannedWindow> {
    let oldest = oldest_served(today, retention_days);
    let yesterday = today - Duration::days(1);
    let newest = to.map_or(yesterday, |to| to.min(yesterday));
    let mut block = block_of(from.unwrap_or(oldest).min(newest), window_days);
    let mut planned = Vec::new();
    while block.0 <= newest {
        let reach = if block.1 < oldest {
            Reach::Unreachable(format!(
                "Rocket.Chat deletes engagement data after about 45 days: {}..{} is older than {oldest} (today minus retention_days)",
                block.0, block.1
            ))
        } else {
            Reach::Reachable
        };
        planned.push(PlannedWindow {
            scope: String::new(),
            start: block.0,
            end: block.1,
            reach,
        });
        block = block_of(block.1 + Duration::days(1), window_days);
    }
    planned
}

/// `start`: local 00:00:00.000 of `first`; `end`: local 23:59:59.999 of `last`; both as the UTC instants
/// `Date.toISOString()` prints, the only form the server accepts.
pub fn request_bounds(first: NaiveDate, last: NaiveDate, tz: chrono_tz::Tz) -> (String, String) {
    let start = local_instant(first, NaiveTime::MIN, tz, true);
    let end_time = NaiveTime::from_hms_milli_opt(23, 59, 59, 999).unwrap_or(NaiveTime::MIN);
    let end = local_instant(last, end_time, tz, false);
    (iso(start), iso(end))
}

/// The instant of a local wall time. In a DST gap (midnight skipped, as in some zones) the nearest instant
/// still inside the same local day is used; the server only looks at the day, never the time.
fn local_instant(
    day: NaiveDate,
    time: NaiveTime,
    tz: chrono_tz::Tz,
    earliest: bool,
) -> DateTime<Utc> {
    let wall = day.and_time(time);
    let resolved = tz.from_local_datetime(&wall);
    let pick = if earliest {
        resolved.earliest()
    } else {
        resolved.latest()
    };
    if let Some(at) = pick {
        return at.with_timezone(&Utc);
    }
    let step = if earliest {
        Duration::minutes(30)
    } else {
        Duration::minutes(-30)
    };
    (1..=8)
        .find_map(|i| {
            let shifted = tz.from_local_datetime(&(wall + step * i));
            if earliest {
                shifted.earliest()
            } else {
                shifted.latest()
            }
        })
        .map_or_else(|| wall.and_utc(), |at| at.with_timezone(&Utc))
}

fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_are_stable_and_cover_every_day_once() {
        let (first, last) = block_of(d("2026-03-10"), 7);
        assert_eq!((last - first).num_days(), 6);
        assert!(first <= d("2026-03-10") && d("2026-03-10") <= last);
        for day in 0..20 {
            let day = first + Duration::days(day);
            let block = block_of(day, 7);
            assert!(block.0 <= day && day <= block.1);
            assert_eq!((block.0 - first).num_days() % 7, 0);
        }
        assert_eq!(block_of(d("1969-12-31"), 7).1, d("1969-12-31"));
    }

    #[test]
    fn plan_covers_retention_to_yesterday_and_nothing_older_is_reachable() {
        let today = d("2026-03-10");
        let plan = plan(today, 7, 44, None, None);
        assert!(plan.iter().all(|w| w.reach == Reach::Reachable));
        let first = plan.first().unwrap();
        let last = plan.last().unwrap();
        assert!(first.start <= d("2026-01-25") && d("2026-01-25") <= first.end);
        assert!(last.start <= d("2026-03-09") && d("2026-03-09") <= last.end);
        let backfill = super::plan(today, 7, 44, Some(d("2025-12-01")), None);
        assert!(matches!(backfill[0].reach, Reach::Unreachable(_)));
        assert_eq!(backfill.last().unwrap().start, last.start);
    }

    #[test]
    fn requests_stop_at_yesterday_and_at_retention() {
        let today = d("2026-03-10");
        let (start, end) = block_of(today, 7);
        let span = request_span(start, end, today, 44);
        assert_eq!(
            span.map(|s| s.1),
            Some(d("2026-03-09")).filter(|_| start < today)
        );
        assert_eq!(request_span(today, today, today, 44), None);
        assert_eq!(
            request_span(d("2026-01-20"), d("2026-01-26"), today, 44),
            Some((d("2026-01-25"), d("2026-01-26")))
        );
        assert_eq!(
            request_span(d("2026-01-01"), d("2026-01-07"), today, 44),
            None
        );
    }

    #[test]
    fn finality_needs_more_than_the_lookback() {
        let today = d("2026-03-10");
        assert!(!day_is_final(d("2026-03-06"), today, 4));
        assert!(day_is_final(d("2026-03-05"), today, 4));
    }

    #[test]
    fn bounds_are_local_day_edges_in_to_iso_string_form() {
        let (s, e) = request_bounds(d("2024-01-01"), d("2024-01-07"), chrono_tz::UTC);
        assert_eq!(
            (s.as_str(), e.as_str()),
            ("2024-01-01T00:00:00.000Z", "2024-01-07T23:59:59.999Z")
        );
        let ny = chrono_tz::America::New_York;
        let (s, e) = request_bounds(d("2024-03-09"), d("2024-03-10"), ny);
        assert_eq!(
            (s.as_str(), e.as_str()),
            ("2024-03-09T05:00:00.000Z", "2024-03-11T03:59:59.999Z")
        );
        // Havana skipped midnight on 2024-03-10: the day starts at 01:00 local.
        let (s, _) = request_bounds(d("2024-03-10"), d("2024-03-10"), chrono_tz::America::Havana);
        assert_eq!(s, "2024-03-10T05:00:00.000Z");
    }
}

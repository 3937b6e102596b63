//! Zoom's calendar-month windows, horizon and finality (DESIGN §3). "Today" is always the UTC date.

use crate::http::ApiError;
use crate::sources::build::BuildContext;
use crate::store::windows::{Edge, PlannedWindow, Reach, Retirement, Window};
use chrono::{Datelike, Duration, Months, NaiveDate};
use serde::{Deserialize, Serialize};

/// The calendar-month windows of one Zoom account and stream as this run sees them: what every Zoom source
/// plans, retires, calls final and requests, in one place.
#[derive(Clone, Debug)]
pub struct MonthWindows {
    /// The UTC date this run started on.
    pub today: NaiveDate,
    pub settle_days: u32,
    pub horizon_days: Option<u32>,
    /// Backfill bounds: plan from this day's month (default: the horizon's, recorded unreachable) up to
    /// this day's month (default: the current one).
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

impl MonthWindows {
    /// An account's months as the run being built sees them: its today and the backfill bounds.
    pub fn for_run(
        cx: &BuildContext<'_>,
        settle_days: u32,
        horizon_days: Option<u32>,
    ) -> MonthWindows {
        MonthWindows {
            today: cx.run.today_utc(),
            settle_days,
            horizon_days,
            from: cx.from,
            to: cx.to,
        }
    }

    /// Whole months only: a report that covers a month as a whole (host reports) cannot be asked for
    /// part of one.
    pub fn plan(&self, scopes: &[&str]) -> Vec<PlannedWindow> {
        plan_stream(
            self.today,
            self.horizon_days,
            self.from,
            self.to,
            scopes,
            Straddling::Unreachable,
        )
    }

    /// For streams whose rows are per session or per day: the month that straddles the horizon is a
    /// window of its own from the horizon day to the month's end, since Zoom still serves those days.
    pub fn plan_from_horizon(&self, scopes: &[&str]) -> Vec<PlannedWindow> {
        plan_stream(
            self.today,
            self.horizon_days,
            self.from,
            self.to,
            scopes,
            Straddling::FromHorizon,
        )
    }

    pub fn retirement(&self) -> Retirement {
        retirement(self.today, self.horizon_days)
    }

    /// Whether a walk begun on `walk_day` leaves `window` final. `None` (parameters stored by an older
    /// binary, without their day) falls back to this run's today.
    pub fn is_final(&self, window: &Window, walk_day: Option<NaiveDate>) -> bool {
        is_final(
            window.window_end,
            walk_day.unwrap_or(self.today),
            self.settle_days,
        )
    }

    /// The request a walk of `window` that starts now sends.
    pub fn request(&self, window: &Window, page_size: u32) -> MonthRequest {
        MonthRequest::new(
            window.window_start,
            window.window_end,
            self.today,
            page_size,
        )
    }
}

/// The request of one month's walk, fixed at its page 1 (see `Source::Params`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MonthRequest {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub page_size: u32,
    /// The UTC date the walk began on: its finality is decided from it, not from the day a resumed walk
    /// ends on. Absent in parameters stored by an older binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<NaiveDate>,
}

impl MonthRequest {
    /// A month's request today: its first day to its last, or to today for the current month.
    pub fn new(
        window_start: NaiveDate,
        window_end: NaiveDate,
        today: NaiveDate,
        page_size: u32,
    ) -> Self {
        MonthRequest {
            from: window_start,
            to: request_to(window_end, today),
            page_size,
            day: Some(today),
        }
    }
}

/// Months whose first day is before the horizon are no longer served whole: retired, whatever their state,
/// unless complete and final.
pub fn retirement(today: NaiveDate, horizon_days: Option<u32>) -> Retirement {
    let before = horizon(today, horizon_days);
    Retirement {
        edge: Edge::Start,
        before,
        reason: format!(
            "Zoom no longer serves this month: its first day is before the API horizon {before}; rows already stored are kept"
        ),
    }
}

pub fn first_of_month(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}

pub fn last_of_month(day: NaiveDate) -> NaiveDate {
    let first = first_of_month(day);
    first
        .checked_add_months(Months::new(1))
        .and_then(|next| next.pred_opt())
        .unwrap_or(first)
}

/// The oldest day Zoom still serves: today minus six calendar months (day clamped to the month's length)
/// plus one day, or today minus `horizon_days` when configured.
pub fn horizon(today: NaiveDate, horizon_days: Option<u32>) -> NaiveDate {
    match horizon_days {
        Some(days) => today - Duration::days(i64::from(days)),
        None => today
            .checked_sub_months(Months::new(6))
            .map(|d| d + Duration::days(1))
            .unwrap_or(today),
    }
}

/// The line `backfill` prints when `from` lies before an account's horizon: those months are recorded
/// unreachable and never requested. `kind` names the section, e.g. "zoom account".
pub fn horizon_refusal(
    kind: &str,
    name: &str,
    horizon_days: Option<u32>,
    from: NaiveDate,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<String> {
    let horizon = horizon(now.date_naive(), horizon_days);
    (first_of_month(from) < horizon).then(|| {
        format!(
            "{kind} \"{name}\": --from {from} is before Zoom's horizon {horizon} (six months); the months from {} to {} are recorded unreachable and not requested",
            first_of_month(from).format("%Y-%m"),
            horizon.format("%Y-%m"),
        )
    })
}

/// The day to send as `to`: the month's last day, or today for the current month.
pub fn request_to(window_end: NaiveDate, today: NaiveDate) -> NaiveDate {
    window_end.min(today)
}

/// A month is final once it ended more than `settle_days` ago: Zoom can no longer change it.
pub fn is_final(window_end: NaiveDate, today: NaiveDate, settle_days: u32) -> bool {
    (today - window_end).num_days() > i64::from(settle_days)
}

/// Zoom may silently clamp a range instead of refusing it (research/zoom-api.md §6.4): a page whose `from`
/// or `to` differs from the request belongs to another range and must not complete this month.
pub fn check_served_range(
    served_from: Option<&str>,
    served_to: Option<&str>,
    asked_from: NaiveDate,
    asked_to: NaiveDate,
) -> Result<(), String> {
    let asked = (asked_from.to_string(), asked_to.to_string());
    if (served_from, served_to) == (Some(asked.0.as_str()), Some(asked.1.as_str())) {
        return Ok(());
    }
    Err(format!(
        "Zoom answered for from={} to={} but {}..{} was requested (the range was clamped); the month stays incomplete",
        served_from.unwrap_or("(missing)"),
        served_to.unwrap_or("(missing)"),
        asked.0,
        asked.1
    ))
}

/// What becomes of the month whose first day is before the horizon and whose last is not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Straddling {
    /// Recorded unreachable as a whole, like the months before it.
    Unreachable,
    /// A window from the horizon day to the month's end, planned only where the month has no window yet.
    FromHorizon,
}

/// Whether a window covers only the end of its month: the straddling month of a first collection.
pub fn is_partial(window_start: NaiveDate) -> bool {
    window_start.day() != 1
}

/// `Some(reason)` when `error` is Zoom's refusal of a window that covers only the end of its month (the
/// straddling month, walked from the horizon day): Zoom answers a range it will not serve with 400 code
/// 300 (its page-token refusal is told apart before this). Such a window is recorded unreachable with
/// Zoom's answer instead of failing every run; any other window's refusal still fails.
pub fn refused_from_day(window: &Window, error: &ApiError) -> Option<String> {
    match error {
        ApiError::Rejected { message, .. }
            if is_partial(window.window_start) && message.starts_with("HTTP 400 (code 300)") =>
        {
            Some(format!(
                "Zoom refused the days from {} on of this month: {error}; not requested again",
                window.window_start
            ))
        }
        _ => None,
    }
}

/// What a Zoom stream plans today: the months from `from`'s (default: the horizon's) to `to`'s (default:
/// the current one), one window per scope.
pub fn plan_stream(
    today: NaiveDate,
    horizon_days: Option<u32>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    scopes: &[&str],
    straddling: Straddling,
) -> Vec<PlannedWindow> {
    let horizon = horizon(today, horizon_days);
    let mut planned = plan_months(today, from.unwrap_or(horizon), horizon, scopes, straddling);
    if let Some(newest) = to {
        planned.retain(|w| first_of_month(w.start) <= newest);
    }
    planned
}

/// Month windows from `oldest` (any day in it) to the current month, one per scope. Months starting before
/// the horizon are unreachable and never requested, except the straddling one with
/// [`Straddling::FromHorizon`].
pub fn plan_months(
    today: NaiveDate,
    oldest: NaiveDate,
    horizon: NaiveDate,
    scopes: &[&str],
    straddling: Straddling,
) -> Vec<PlannedWindow> {
    let mut planned = Vec::new();
    let mut month = first_of_month(oldest.min(today));
    while month <= today {
        let end = last_of_month(month);
        let (start, reach) = if month >= horizon {
            (month, Reach::Reachable)
        } else if end >= horizon && straddling == Straddling::FromHorizon {
            (horizon, Reach::FromDay)
        } else {
            (
                month,
                Reach::Unreachable(format!(
                    "Zoom serves only the last six months: {month} is before the API horizon {horizon}"
                )),
            )
        };
        for scope in scopes {
            planned.push(PlannedWindow {
                scope: (*scope).to_string(),
                start,
                end,
                reach: reach.clone(),
            });
        }
        match month.checked_add_months(Months::new(1)) {
            Some(next) => month = next,
            None => break,
        }
    }
    planned
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn horizon_is_six_calendar_months_plus_a_day_with_clamping() {
        assert_eq!(horizon(d("2026-11-24"), None), d("2026-05-25"));
        // 31 August minus six months clamps to 28 February.
        assert_eq!(horizon(d("2026-08-31"), None), d("2026-03-01"));
        assert_eq!(horizon(d("2026-11-24"), Some(30)), d("2026-10-25"));
    }

    #[test]
    fn months_before_the_horizon_are_unreachable() {
        let today = d("2026-11-24");
        let plan = plan_months(
            today,
            horizon(today, None),
            horizon(today, None),
            &["active"],
            Straddling::Unreachable,
        );
        let reachable: Vec<_> = plan
            .iter()
            .filter(|w| w.reach == Reach::Reachable)
            .map(|w| w.start.to_string())
            .collect();
        assert_eq!(
            reachable,
            [
                "2026-06-01",
                "2026-07-01",
                "2026-08-01",
                "2026-09-01",
                "2026-10-01",
                "2026-11-01"
            ]
        );
        assert_eq!(plan[0].start, d("2026-05-01"));
        assert!(matches!(plan[0].reach, Reach::Unreachable(_)));
        assert_eq!(plan.last().map(|w| w.end), Some(d("2026-11-30")));
    }

    #[test]
    fn the_straddling_month_is_walked_from_the_horizon_day_where_rows_are_per_day() {
        let today = d("2026-11-24");
        let plan = plan_months(
            today,
            horizon(today, None),
            horizon(today, None),
            &[""],
            Straddling::FromHorizon,
        );
        assert_eq!(plan.len(), 7);
        assert_eq!(
            (plan[0].start, plan[0].end, &plan[0].reach),
            (d("2026-05-25"), d("2026-05-31"), &Reach::FromDay)
        );
        assert!(is_partial(plan[0].start) && !is_partial(plan[1].start));
        assert!(plan[1..].iter().all(|w| w.reach == Reach::Reachable));
        // A horizon on the 1st leaves no month straddling it.
        let today = d("2026-12-31");
        let plan = plan_months(
            today,
            horizon(today, None),
            horizon(today, None),
            &[""],
            Straddling::FromHorizon,
        );
        assert_eq!(plan[0].start, d("2026-07-01"));
        assert!(plan.iter().all(|w| w.reach == Reach::Reachable));
        // Backfill from before the horizon: the older months stay unreachable as a whole.
        let plan = plan_stream(
            d("2026-11-24"),
            None,
            Some(d("2026-03-10")),
            Some(d("2026-05-01")),
            &[""],
            Straddling::FromHorizon,
        );
        let starts: Vec<_> = plan.iter().map(|w| w.start.to_string()).collect();
        assert_eq!(starts, ["2026-03-01", "2026-04-01", "2026-05-25"]);
        assert!(matches!(plan[1].reach, Reach::Unreachable(_)));
    }

    #[test]
    fn finality_needs_settle_days_past_the_month_end() {
        assert!(!is_final(d("2026-10-31"), d("2026-11-02"), 2));
        assert!(is_final(d("2026-10-31"), d("2026-11-03"), 2));
        assert_eq!(
            request_to(d("2026-11-30"), d("2026-11-24")),
            d("2026-11-24")
        );
        assert_eq!(last_of_month(d("2028-02-10")), d("2028-02-29"));
    }

    #[test]
    fn a_walk_is_final_by_the_day_it_began_not_the_day_it_ends() {
        let months = MonthWindows {
            today: d("2026-11-03"),
            settle_days: 2,
            horizon_days: None,
            from: None,
            to: None,
        };
        let request = MonthRequest::new(d("2026-10-01"), d("2026-10-31"), d("2026-11-02"), 300);
        let window = Window {
            id: 1,
            account: "a".into(),
            stream: "zoom_host_report".into(),
            scope: "active".into(),
            window_start: d("2026-10-01"),
            window_end: d("2026-10-31"),
            state: crate::store::windows::WindowState::Running,
            is_final: false,
            pages: 1,
            rows: 0,
            attempts: 1,
            next_page_token: None,
            token_issued_at: None,
            expected_total: None,
            last_error: None,
            started_at: None,
            completed_at: None,
            lease_owner: None,
            lease_until: None,
            walk_id: None,
            walk_params: None,
            parent_id: None,
            disputed_since: None,
            disputed_run: None,
            scope_ended_at: None,
        };
        assert_eq!(request.day, Some(d("2026-11-02")));
        assert!(
            !months.is_final(&window, request.day),
            "begun on the settle day"
        );
        assert!(
            months.is_final(&window, None),
            "parameters without a day: today"
        );
        let stored =
            serde_json::json!({"from": "2026-10-01", "to": "2026-10-31", "page_size": 300});
        let older: MonthRequest = serde_json::from_value(stored).unwrap();
        assert_eq!(older.day, None, "an older binary's parameters still resume");
    }
}

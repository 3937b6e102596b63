//! What every source of one collection run shares: the run's identity and the one instant its "today" is
//! read from, so a run that crosses midnight (UTC, or a workspace's local midnight) stays consistent.

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

#[derive(Clone, Debug)]
pub struct RunContext {
    /// Tells runs apart: a disputed window records the run that first disputed it.
    pub id: Uuid,
    /// When the run (logically) started: a cron tick shared by replicas, or the start of `collect`.
    pub started: DateTime<Utc>,
}

impl RunContext {
    pub fn new(started: DateTime<Utc>) -> RunContext {
        RunContext {
            id: Uuid::new_v4(),
            started,
        }
    }

    /// "Today" for Zoom: the UTC date when the run started.
    pub fn today_utc(&self) -> NaiveDate {
        self.started.date_naive()
    }

    /// "Today" in a workspace's time zone, when the run started.
    pub fn today_in(&self, timezone: chrono_tz::Tz) -> NaiveDate {
        self.started.with_timezone(&timezone).date_naive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn today_is_read_from_the_run_start_in_each_zone() {
        let started: DateTime<Utc> = "2026-03-01T02:30:00Z".parse().unwrap();
        let run = RunContext::new(started);
        assert_eq!(run.today_utc().to_string(), "2026-03-01");
        assert_eq!(
            run.today_in(chrono_tz::America::New_York).to_string(),
            "2026-02-28"
        );
    }
}

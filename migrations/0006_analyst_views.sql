-- The questions admins ask, answered by views over the stored history (DESIGN §4 "Analyst views").
-- Every view counts only what rollcall can vouch for: Zoom months whose report windows are complete, Video
-- SDK rows a walk still lists, Rocket.Chat days that were stored. Months with a window not complete are left
-- out rather than shown with figures that a later walk may change or that are missing rows.

-- Host-report months whose active and inactive windows are both complete: the only months whose user lists
-- are whole, so the only ones a ratio or a streak may be computed from.
CREATE VIEW rollcall.zoom_host_complete_months AS
SELECT account, window_start AS month
  FROM rollcall.collection_windows
 WHERE stream = 'zoom_host_report' AND scope IN ('active', 'inactive')
 GROUP BY account, window_start
HAVING count(DISTINCT scope) FILTER (WHERE state = 'complete') = 2;
COMMENT ON VIEW rollcall.zoom_host_complete_months IS
    'Zoom accounts and months whose active and inactive host-report windows (collection_windows, stream zoom_host_report) are both complete: the months the analyst views count.';
COMMENT ON COLUMN rollcall.zoom_host_complete_months.account IS 'The configured [[zoom]] name.';
COMMENT ON COLUMN rollcall.zoom_host_complete_months.month IS 'First day of the calendar month.';

CREATE VIEW rollcall.zoom_license_utilization AS
WITH counts AS (
    SELECT m.account, m.month,
           count(u.user_id) FILTER (WHERE u.report_type = 'active')   AS licensed_active,
           count(u.user_id) FILTER (WHERE u.report_type = 'inactive') AS licensed_inactive
      FROM rollcall.zoom_host_complete_months m
      LEFT JOIN rollcall.zoom_host_report_users u
             ON u.account = m.account AND u.month = m.month AND u.user_type = 2
     GROUP BY m.account, m.month
)
SELECT account, month, licensed_active, licensed_inactive,
       licensed_active::numeric / nullif(licensed_active + licensed_inactive, 0) AS utilization
  FROM counts;
COMMENT ON VIEW rollcall.zoom_license_utilization IS
    'Zoom licence utilization per account and month: how many licensed users (user_type = 2) hosted a meeting. Only months whose active and inactive host-report windows are both complete (zoom_host_complete_months).';
COMMENT ON COLUMN rollcall.zoom_license_utilization.account IS 'The configured [[zoom]] name.';
COMMENT ON COLUMN rollcall.zoom_license_utilization.month IS 'First day of the calendar month.';
COMMENT ON COLUMN rollcall.zoom_license_utilization.licensed_active IS
    'Users with user_type = 2 (Licensed) in the month''s active host report: licensed users who hosted at least one meeting.';
COMMENT ON COLUMN rollcall.zoom_license_utilization.licensed_inactive IS
    'Users with user_type = 2 (Licensed) in the month''s inactive host report: licensed users who hosted no meeting.';
COMMENT ON COLUMN rollcall.zoom_license_utilization.utilization IS
    'licensed_active / (licensed_active + licensed_inactive), a numeric between 0 and 1; NULL when both are 0.';

CREATE VIEW rollcall.zoom_reclaim_candidates AS
WITH latest AS (
    SELECT account, max(month) AS month FROM rollcall.zoom_host_complete_months GROUP BY account
),
-- Months in which a user is listed inactive, newest first. The streak back from the latest month is the
-- run of rows whose month is exactly rn - 1 months before it: an incomplete month or an active month is
-- absent from this list, so it leaves a gap that ends the streak.
inactive AS (
    SELECT u.account, u.user_id, u.month,
           row_number() OVER (PARTITION BY u.account, u.user_id ORDER BY u.month DESC) AS rn
      FROM rollcall.zoom_host_report_users u
      JOIN rollcall.zoom_host_complete_months m ON m.account = u.account AND m.month = u.month
      JOIN latest l ON l.account = u.account AND u.month <= l.month
     WHERE u.report_type = 'inactive'
),
streaks AS (
    SELECT i.account, i.user_id,
           count(*) FILTER (WHERE i.month = (l.month - make_interval(months => (i.rn - 1)::integer))::date)
               AS inactive_months
      FROM inactive i
      JOIN latest l ON l.account = i.account
     GROUP BY i.account, i.user_id
),
last_active AS (
    SELECT u.account, u.user_id, max(u.month) AS month
      FROM rollcall.zoom_host_report_users u
      JOIN rollcall.zoom_host_complete_months m ON m.account = u.account AND m.month = u.month
     WHERE u.report_type = 'active'
     GROUP BY u.account, u.user_id
)
SELECT u.account, u.user_id, u.email, u.user_name,
       s.inactive_months::integer AS inactive_months,
       a.month AS last_active_month
  FROM latest l
  JOIN rollcall.zoom_host_report_users u
    ON u.account = l.account AND u.month = l.month AND u.report_type = 'inactive' AND u.user_type = 2
  JOIN streaks s ON s.account = u.account AND s.user_id = u.user_id
  LEFT JOIN last_active a ON a.account = u.account AND a.user_id = u.user_id;
COMMENT ON VIEW rollcall.zoom_reclaim_candidates IS
    'Whom to reclaim a Zoom licence from: licensed users (user_type = 2) listed in the inactive host report of the account''s latest complete month (both report windows complete), with how long they have been inactive.';
COMMENT ON COLUMN rollcall.zoom_reclaim_candidates.account IS 'The configured [[zoom]] name.';
COMMENT ON COLUMN rollcall.zoom_reclaim_candidates.user_id IS 'Zoom''s user id.';
COMMENT ON COLUMN rollcall.zoom_reclaim_candidates.email IS 'The e-mail address in the latest complete month''s inactive report.';
COMMENT ON COLUMN rollcall.zoom_reclaim_candidates.user_name IS 'The name in the latest complete month''s inactive report.';
COMMENT ON COLUMN rollcall.zoom_reclaim_candidates.inactive_months IS
    'Consecutive calendar months, counted back from the latest complete month (which counts as 1), that are complete and list the user as inactive. A month that is not complete (not collected, failed, lost upstream) ends the count: inactivity is claimed only where the history proves it.';
COMMENT ON COLUMN rollcall.zoom_reclaim_candidates.last_active_month IS
    'The latest complete month whose active report lists the user (first day of the month); NULL if no complete month rollcall holds does.';

CREATE VIEW rollcall.zoom_host_churn AS
WITH months AS (
    SELECT DISTINCT account, window_start AS month
      FROM rollcall.collection_windows
     WHERE stream = 'zoom_host_report' AND scope = 'active' AND state = 'complete'
),
active AS (
    SELECT u.account, u.month, u.user_id
      FROM rollcall.zoom_host_report_users u
      JOIN months m ON m.account = u.account AND m.month = u.month
     WHERE u.report_type = 'active'
),
flags AS (
    SELECT m.account, m.month,
           p.month IS NOT NULL AS previous_complete,
           h.user_id,
           h.month = m.month AS now,
           h.month = (m.month - interval '1 month')::date AS last,
           h.month < (m.month - interval '1 month')::date AS earlier
      FROM months m
      LEFT JOIN months p ON p.account = m.account AND p.month = (m.month - interval '1 month')::date
      LEFT JOIN active h ON h.account = m.account AND h.month <= m.month
),
per_user AS (
    SELECT account, month, previous_complete, user_id,
           bool_or(now) AS now, bool_or(last) AS last, bool_or(earlier) AS earlier
      FROM flags
     GROUP BY account, month, previous_complete, user_id
)
SELECT account, month,
       count(user_id) FILTER (WHERE now) AS active_hosts,
       CASE WHEN previous_complete THEN count(user_id) FILTER (WHERE now AND NOT last AND NOT earlier) END AS new_hosts,
       CASE WHEN previous_complete THEN count(user_id) FILTER (WHERE now AND last) END AS retained_hosts,
       CASE WHEN previous_complete THEN count(user_id) FILTER (WHERE now AND NOT last AND earlier) END AS returning_hosts,
       CASE WHEN previous_complete THEN count(user_id) FILTER (WHERE last AND NOT now) END AS churned_hosts
  FROM per_user
 GROUP BY account, month, previous_complete;
COMMENT ON VIEW rollcall.zoom_host_churn IS
    'Are Zoom hosts coming or going: month over month, per account, over months whose active host-report window is complete. A host is a user in the month''s active report (hosted at least one meeting). "Earlier" means the complete months rollcall holds; the comparisons are NULL when the previous month is not complete, since who was active then is unknown. When not NULL, new + retained + returning = active_hosts.';
COMMENT ON COLUMN rollcall.zoom_host_churn.account IS 'The configured [[zoom]] name.';
COMMENT ON COLUMN rollcall.zoom_host_churn.month IS 'First day of the calendar month.';
COMMENT ON COLUMN rollcall.zoom_host_churn.active_hosts IS 'Users in the month''s active report.';
COMMENT ON COLUMN rollcall.zoom_host_churn.new_hosts IS 'Active this month and in no earlier complete month: the first month they are seen active. NULL when the previous month is not complete.';
COMMENT ON COLUMN rollcall.zoom_host_churn.retained_hosts IS 'Active this month and the previous month. NULL when the previous month is not complete.';
COMMENT ON COLUMN rollcall.zoom_host_churn.returning_hosts IS 'Active this month, not the previous month, but in some earlier complete month. NULL when the previous month is not complete.';
COMMENT ON COLUMN rollcall.zoom_host_churn.churned_hosts IS 'Active the previous month and not this month. NULL when the previous month is not complete.';

CREATE VIEW rollcall.zoom_sdk_daily AS
SELECT s.account,
       (s.start_time AT TIME ZONE 'UTC')::date AS day,
       count(DISTINCT s.session_id) AS sessions,
       count(u.user_id) AS joins,
       coalesce(sum(extract(epoch FROM u.leave_time - u.join_time)), 0) / 60 AS user_minutes
  FROM rollcall.zoom_sdk_sessions s
  LEFT JOIN rollcall.zoom_sdk_session_users u
         ON u.account = s.account AND u.session_id = s.session_id AND u.missing_since IS NULL
 WHERE s.missing_since IS NULL AND s.start_time IS NOT NULL
 GROUP BY s.account, (s.start_time AT TIME ZONE 'UTC')::date;
COMMENT ON VIEW rollcall.zoom_sdk_daily IS
    'How busy the Zoom Video SDK is, day by day (UTC): the stored sessions that started that day and their joins. Sessions and joins a walk no longer lists (missing_since set) are left out; sessions without a start_time too. A day whose month is not complete (zoom_sdk_months) may still grow.';
COMMENT ON COLUMN rollcall.zoom_sdk_daily.account IS 'The configured [[videosdk]] name.';
COMMENT ON COLUMN rollcall.zoom_sdk_daily.day IS 'The UTC date of the sessions'' start_time; a session is counted on the day it started, even when it runs past midnight.';
COMMENT ON COLUMN rollcall.zoom_sdk_daily.sessions IS 'Sessions that started that day.';
COMMENT ON COLUMN rollcall.zoom_sdk_daily.joins IS 'Rows of zoom_sdk_session_users of those sessions: one per join, so a user who leaves and rejoins counts twice. Sessions still running have no users collected yet.';
COMMENT ON COLUMN rollcall.zoom_sdk_daily.user_minutes IS
    'Sum over those joins of leave_time - join_time, in minutes (numeric, fractional). A join without leave_time counts 0 minutes.';

CREATE VIEW rollcall.rc_stickiness AS
WITH days AS (
    SELECT account, date_trunc('month', day)::date AS month, avg(users) AS avg_dau
      FROM rollcall.rc_active_users
     GROUP BY account, date_trunc('month', day)
),
users AS (
    SELECT account, date_trunc('month', day)::date AS month, count(DISTINCT user_id) AS mau
      FROM rollcall.rc_active_user_days
     GROUP BY account, date_trunc('month', day)
)
SELECT d.account, d.month, d.avg_dau,
       coalesce(u.mau, 0) AS mau,
       d.avg_dau / nullif(coalesce(u.mau, 0), 0) AS dau_mau
  FROM days d
  LEFT JOIN users u ON u.account = d.account AND u.month = d.month;
COMMENT ON VIEW rollcall.rc_stickiness IS
    'How sticky Rocket.Chat is: average daily active users over monthly active users, per workspace and calendar month (local days). Computed over the days stored in rc_active_users; rc_monthly_active_users.days_collected tells a month only partly collected.';
COMMENT ON COLUMN rollcall.rc_stickiness.account IS 'The configured [[rocketchat]] name.';
COMMENT ON COLUMN rollcall.rc_stickiness.month IS 'First day of the calendar month.';
COMMENT ON COLUMN rollcall.rc_stickiness.avg_dau IS
    'Mean of rc_active_users.users over the month''s stored days (numeric); a stored day with 0 users counts as 0, a day not stored does not count.';
COMMENT ON COLUMN rollcall.rc_stickiness.mau IS 'Distinct user ids in rc_active_user_days over the month.';
COMMENT ON COLUMN rollcall.rc_stickiness.dau_mau IS 'avg_dau / mau (numeric between 0 and 1); NULL when mau is 0.';

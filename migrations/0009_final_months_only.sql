-- The Zoom analyst views of 0006 counted a month as soon as its host-report windows were `complete`. The
-- current month's windows are complete after every run (Zoom asked up to today), and so is a month that
-- ended less than settle_days ago: on the 1st of a month the "latest complete month" held a few hours of
-- data, utilization and reclaim candidates rested on it and zoom_host_churn showed nearly every host as
-- churned. 0006's header promised that months a later walk may change are left out: a month now counts only
-- when its windows are complete AND final (`is_final`: walked after the month settled, never walked again;
-- src/sources/zoom/months.rs). Same views, same columns in the same order; comments say "complete and final".

CREATE OR REPLACE VIEW rollcall.zoom_host_complete_months AS
SELECT account, window_start AS month
  FROM rollcall.collection_windows
 WHERE stream = 'zoom_host_report' AND scope IN ('active', 'inactive')
 GROUP BY account, window_start
HAVING count(DISTINCT scope) FILTER (WHERE state = 'complete' AND is_final) = 2;
COMMENT ON VIEW rollcall.zoom_host_complete_months IS
    'Zoom accounts and months whose active and inactive host-report windows (collection_windows, stream zoom_host_report) are both complete and final (is_final: walked after the month ended more than settle_days ago, never walked again): the months the analyst views count. The current month and a month not settled yet are left out, since a later walk may still change them.';
COMMENT ON COLUMN rollcall.zoom_host_complete_months.account IS 'The configured [[zoom]] name.';
COMMENT ON COLUMN rollcall.zoom_host_complete_months.month IS 'First day of the calendar month.';

COMMENT ON VIEW rollcall.zoom_license_utilization IS
    'Zoom licence utilization per account and month: how many licensed users (user_type = 2) hosted a meeting. Only months whose active and inactive host-report windows are both complete and final (zoom_host_complete_months): never the current month.';

COMMENT ON VIEW rollcall.zoom_reclaim_candidates IS
    'Whom to reclaim a Zoom licence from: licensed users (user_type = 2) listed in the inactive host report of the account''s latest complete and final month (both report windows complete and final; never the current month), with how long they have been inactive.';
COMMENT ON COLUMN rollcall.zoom_reclaim_candidates.email IS 'The e-mail address in the latest complete and final month''s inactive report.';
COMMENT ON COLUMN rollcall.zoom_reclaim_candidates.user_name IS 'The name in the latest complete and final month''s inactive report.';
COMMENT ON COLUMN rollcall.zoom_reclaim_candidates.inactive_months IS
    'Consecutive calendar months, counted back from the latest complete and final month (which counts as 1), that are complete and final and list the user as inactive. A month that is not (not collected, failed, not settled yet, lost upstream) ends the count: inactivity is claimed only where the history proves it.';
COMMENT ON COLUMN rollcall.zoom_reclaim_candidates.last_active_month IS
    'The latest complete and final month whose active report lists the user (first day of the month); NULL if no complete and final month rollcall holds does.';

CREATE OR REPLACE VIEW rollcall.zoom_host_churn AS
WITH months AS (
    SELECT DISTINCT account, window_start AS month
      FROM rollcall.collection_windows
     WHERE stream = 'zoom_host_report' AND scope = 'active' AND state = 'complete' AND is_final
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
    'Are Zoom hosts coming or going: month over month, per account, over months whose active host-report window is complete and final (never the current month, whose few days would show most hosts as churned). A host is a user in the month''s active report (hosted at least one meeting). "Earlier" means the complete and final months rollcall holds; the comparisons are NULL when the previous month is not complete and final, since who was active then is not known for sure. When not NULL, new + retained + returning = active_hosts.';
COMMENT ON COLUMN rollcall.zoom_host_churn.account IS 'The configured [[zoom]] name.';
COMMENT ON COLUMN rollcall.zoom_host_churn.month IS 'First day of the calendar month.';
COMMENT ON COLUMN rollcall.zoom_host_churn.active_hosts IS 'Users in the month''s active report.';
COMMENT ON COLUMN rollcall.zoom_host_churn.new_hosts IS 'Active this month and in no earlier complete and final month: the first month they are seen active. NULL when the previous month is not complete and final.';
COMMENT ON COLUMN rollcall.zoom_host_churn.retained_hosts IS 'Active this month and the previous month. NULL when the previous month is not complete and final.';
COMMENT ON COLUMN rollcall.zoom_host_churn.returning_hosts IS 'Active this month, not the previous month, but in some earlier complete and final month. NULL when the previous month is not complete and final.';
COMMENT ON COLUMN rollcall.zoom_host_churn.churned_hosts IS 'Active the previous month and not this month. NULL when the previous month is not complete and final.';

-- Rocket.Chat daily active users (DESIGN §4), kept beyond the ~45 days the server's TTL index allows, and
-- the views analysts compute DAU/WAU/MAU from.

CREATE TABLE rollcall.rc_active_users (
    account      text        NOT NULL,
    day          date        NOT NULL,
    users        integer     NOT NULL CHECK (users >= 0),
    is_final     boolean     NOT NULL DEFAULT false,
    collected_at timestamptz NOT NULL,
    PRIMARY KEY (account, day)
);
COMMENT ON TABLE rollcall.rc_active_users IS
    'Rocket.Chat daily active users, one row per workspace and local day that rollcall collected (GET /api/v1/engagement-dashboard/users/active-users). A day with no row was never collected (for example older than the server''s ~45-day retention at the first run); a row with users = 0 is a day the server reported as having no active user.';
COMMENT ON COLUMN rollcall.rc_active_users.account IS 'The configured [[rocketchat]] name of the workspace.';
COMMENT ON COLUMN rollcall.rc_active_users.day IS
    'A calendar day in the Rocket.Chat server''s time zone (rocketchat.timezone): the server buckets sessions by it.';
COMMENT ON COLUMN rollcall.rc_active_users.users IS
    'Distinct users with at least one web or app session that had a device and a duration above zero that day, excluding the anonymous role. Not "users who sent messages"; deactivated users and bots that log in count too.';
COMMENT ON COLUMN rollcall.rc_active_users.is_final IS
    'The day was older than lookback_days when collected: the server''s aggregation can no longer change it, and rollcall never rewrites it.';
COMMENT ON COLUMN rollcall.rc_active_users.collected_at IS 'When this count was last written.';

CREATE TABLE rollcall.rc_active_user_days (
    account text NOT NULL,
    day     date NOT NULL,
    user_id text NOT NULL,
    PRIMARY KEY (account, day, user_id)
);
CREATE INDEX rc_active_user_days_user ON rollcall.rc_active_user_days (account, user_id, day);
COMMENT ON TABLE rollcall.rc_active_user_days IS
    'One row per Rocket.Chat user active on a day (the usersList of the active-users answer): what distinct-user counts over weeks and months are computed from. The rows of a day always match rc_active_users.users.';
COMMENT ON COLUMN rollcall.rc_active_user_days.account IS 'The configured [[rocketchat]] name of the workspace.';
COMMENT ON COLUMN rollcall.rc_active_user_days.day IS 'A calendar day in the Rocket.Chat server''s time zone.';
COMMENT ON COLUMN rollcall.rc_active_user_days.user_id IS 'The Rocket.Chat user _id (not the username).';

CREATE VIEW rollcall.rc_daily_active_users AS
SELECT d.account, d.day, count(u.user_id)::integer AS active_users, d.is_final
  FROM rollcall.rc_active_users d
  LEFT JOIN rollcall.rc_active_user_days u USING (account, day)
 GROUP BY d.account, d.day, d.is_final;
COMMENT ON VIEW rollcall.rc_daily_active_users IS
    'DAU per workspace and collected local day, counted from rc_active_user_days (0 for a collected day without users).';

CREATE VIEW rollcall.rc_weekly_active_users AS
SELECT d.account,
       date_trunc('week', d.day)::date AS week_start,
       extract(isoyear FROM d.day)::integer AS iso_year,
       extract(week FROM d.day)::integer AS iso_week,
       count(DISTINCT u.user_id)::integer AS active_users,
       count(DISTINCT d.day)::integer AS days_collected
  FROM rollcall.rc_active_users d
  LEFT JOIN rollcall.rc_active_user_days u USING (account, day)
 GROUP BY d.account, date_trunc('week', d.day), extract(isoyear FROM d.day), extract(week FROM d.day);
COMMENT ON VIEW rollcall.rc_weekly_active_users IS
    'WAU: distinct users per workspace and ISO week (Monday to Sunday). days_collected < 7 marks a week only partly collected (the current week, or the first one).';
COMMENT ON COLUMN rollcall.rc_weekly_active_users.week_start IS 'The Monday of the ISO week.';

CREATE VIEW rollcall.rc_monthly_active_users AS
SELECT d.account,
       date_trunc('month', d.day)::date AS month,
       count(DISTINCT u.user_id)::integer AS active_users,
       count(DISTINCT d.day)::integer AS days_collected
  FROM rollcall.rc_active_users d
  LEFT JOIN rollcall.rc_active_user_days u USING (account, day)
 GROUP BY d.account, date_trunc('month', d.day);
COMMENT ON VIEW rollcall.rc_monthly_active_users IS
    'MAU: distinct users per workspace and calendar month. days_collected below the month''s length marks a month only partly collected.';
COMMENT ON COLUMN rollcall.rc_monthly_active_users.month IS 'The first day of the calendar month.';

-- Zoom's daily usage reports (DESIGN §4, research/zoom-api.md §2e), kept beyond Zoom's six months, and the
-- view that checks the Video SDK's daily numbers against the stored session list.

CREATE TABLE rollcall.zoom_daily_usage (
    account         text        NOT NULL,
    day             date        NOT NULL,
    new_users       bigint,
    meetings        bigint,
    participants    bigint,
    meeting_minutes bigint,
    is_final        boolean     NOT NULL DEFAULT false,
    raw             jsonb,
    collected_at    timestamptz NOT NULL,
    PRIMARY KEY (account, day)
);
COMMENT ON TABLE rollcall.zoom_daily_usage IS
    'Zoom account-wide usage per UTC day (GET /report/daily?year&month, one request per calendar month). A day of a final month that Zoom did not list is stored with zeros and raw NULL; in a month that is not final yet, a day Zoom did not list has no row (it may still be reported).';
COMMENT ON COLUMN rollcall.zoom_daily_usage.account IS 'The configured [[zoom]] name of the account.';
COMMENT ON COLUMN rollcall.zoom_daily_usage.day IS 'The day (Zoom''s date, UTC).';
COMMENT ON COLUMN rollcall.zoom_daily_usage.new_users IS 'Users added to the account that day. NULL when the served day lacked the number.';
COMMENT ON COLUMN rollcall.zoom_daily_usage.meetings IS 'Meetings held on the account that day. NULL when the served day lacked the number.';
COMMENT ON COLUMN rollcall.zoom_daily_usage.participants IS 'Participants in those meetings (a person in two meetings counts twice). NULL when the served day lacked the number.';
COMMENT ON COLUMN rollcall.zoom_daily_usage.meeting_minutes IS 'Meeting minutes that day, summed over meetings. NULL when the served day lacked the number.';
COMMENT ON COLUMN rollcall.zoom_daily_usage.is_final IS
    'The month ended more than settle_days before this row was written: Zoom can no longer change it, and rollcall never requests it again.';
COMMENT ON COLUMN rollcall.zoom_daily_usage.raw IS 'The day''s object as served (U+0000 replaced by U+FFFD); NULL for a day of a final month that Zoom did not list.';
COMMENT ON COLUMN rollcall.zoom_daily_usage.collected_at IS 'When this day was last written.';

CREATE TABLE rollcall.zoom_sdk_daily_usage (
    account         text        NOT NULL,
    day             date        NOT NULL,
    sessions        bigint,
    users           bigint,
    session_minutes bigint,
    is_final        boolean     NOT NULL DEFAULT false,
    raw             jsonb,
    collected_at    timestamptz NOT NULL,
    PRIMARY KEY (account, day)
);
COMMENT ON TABLE rollcall.zoom_sdk_daily_usage IS
    'Zoom Video SDK usage per UTC day (GET /videosdk/report/daily?year&month, one request per calendar month). A day of a final month that Zoom did not list is stored with zeros and raw NULL; in a month that is not final yet, a day Zoom did not list has no row (it may still be reported).';
COMMENT ON COLUMN rollcall.zoom_sdk_daily_usage.account IS 'The configured [[videosdk]] name of the account.';
COMMENT ON COLUMN rollcall.zoom_sdk_daily_usage.day IS 'The day (Zoom''s date, UTC).';
COMMENT ON COLUMN rollcall.zoom_sdk_daily_usage.sessions IS 'Video SDK sessions Zoom counts for that day. NULL when the served day lacked the number.';
COMMENT ON COLUMN rollcall.zoom_sdk_daily_usage.users IS 'Users in those sessions, as Zoom counts them. NULL when the served day lacked the number.';
COMMENT ON COLUMN rollcall.zoom_sdk_daily_usage.session_minutes IS 'Session minutes that day, as Zoom counts them. NULL when the served day lacked the number.';
COMMENT ON COLUMN rollcall.zoom_sdk_daily_usage.is_final IS
    'The month ended more than settle_days before this row was written: Zoom can no longer change it, and rollcall never requests it again.';
COMMENT ON COLUMN rollcall.zoom_sdk_daily_usage.raw IS 'The day''s object as served (U+0000 replaced by U+FFFD); NULL for a day of a final month that Zoom did not list.';
COMMENT ON COLUMN rollcall.zoom_sdk_daily_usage.collected_at IS 'When this day was last written.';

-- The range predicate on start_time keeps the join on zoom_sdk_sessions' own columns; an index on
-- (account, start_time) lets it read one day's sessions instead of the account's.
CREATE INDEX zoom_sdk_sessions_start ON rollcall.zoom_sdk_sessions (account, start_time);

CREATE VIEW rollcall.zoom_sdk_reconciliation AS
SELECT d.account,
       d.day,
       d.sessions                     AS sessions_reported,
       count(s.session_id)            AS sessions_listed,
       d.sessions - count(s.session_id) AS difference
  FROM rollcall.zoom_sdk_daily_usage d
  LEFT JOIN rollcall.zoom_sdk_sessions s
    ON s.account = d.account
   AND s.missing_since IS NULL
   AND s.start_time >= d.day::timestamp AT TIME ZONE 'UTC'
   AND s.start_time < (d.day + 1)::timestamp AT TIME ZONE 'UTC'
 GROUP BY d.account, d.day, d.sessions;
COMMENT ON VIEW rollcall.zoom_sdk_reconciliation IS
    'Per Video SDK account and day of zoom_sdk_daily_usage: the sessions Zoom''s daily report counts against the stored sessions (zoom_sdk_sessions, still listed: missing_since IS NULL) that started that UTC day. A difference other than 0 means the two reports disagree, or that the month''s session list is not complete yet (see zoom_sdk_months).';
COMMENT ON COLUMN rollcall.zoom_sdk_reconciliation.sessions_reported IS 'zoom_sdk_daily_usage.sessions for the day (NULL when Zoom''s day lacked it).';
COMMENT ON COLUMN rollcall.zoom_sdk_reconciliation.sessions_listed IS 'Stored sessions whose start_time (UTC) falls on the day and that the last walk of their month still listed.';
COMMENT ON COLUMN rollcall.zoom_sdk_reconciliation.difference IS 'sessions_reported - sessions_listed: positive when the daily report counts sessions the list did not serve.';

-- The month that straddles Zoom's horizon is walked from the horizon day for Video SDK sessions: its list
-- window starts that day, not on the 1st. zoom_sdk_months keeps `month` the first day of the calendar month
-- (as zoom_sdk_sessions.month is) and says from which day the month is held in a column of its own, added
-- last so the view's earlier columns keep their order. Same rule otherwise.
CREATE OR REPLACE VIEW rollcall.zoom_sdk_months AS
SELECT p.account,
       date_trunc('month', p.window_start)::date AS month,
       p.state        AS list_state,
       count(c.id)    AS sessions_with_users_window,
       count(c.id) FILTER (WHERE c.state = 'complete') AS users_windows_complete,
       (p.state = 'complete'
        AND count(c.id) FILTER (WHERE c.state NOT IN ('complete', 'unreachable')) = 0) AS complete,
       (p.is_final AND count(c.id) FILTER (WHERE NOT c.is_final AND c.state <> 'unreachable') = 0) AS is_final,
       count(c.id) FILTER (WHERE c.state = 'unreachable') AS users_windows_unreachable,
       p.window_start AS held_from
  FROM rollcall.collection_windows p
  LEFT JOIN rollcall.collection_windows c ON c.parent_id = p.id
 WHERE p.stream = 'zoom_sdk_sessions'
 GROUP BY p.id;
COMMENT ON COLUMN rollcall.zoom_sdk_months.month IS
    'First day of the calendar month.';
COMMENT ON COLUMN rollcall.zoom_sdk_months.held_from IS
    'The first day the month''s session list covers: the 1st, or the horizon day for the month that straddled Zoom''s six-month horizon when rollcall first asked (its earlier days were no longer served).';

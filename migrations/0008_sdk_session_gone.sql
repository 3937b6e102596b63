-- A session's users window is `unreachable` when Zoom answers its users with 404 code 3001 ("Session does
-- not exist"): it is never requested again and holds its month back no more, as the collector's own
-- completion rule (src/store/windows.rs) already has it. The view agrees, and counts such windows.
CREATE OR REPLACE VIEW rollcall.zoom_sdk_months AS
SELECT p.account,
       p.window_start AS month,
       p.state        AS list_state,
       count(c.id)    AS sessions_with_users_window,
       count(c.id) FILTER (WHERE c.state = 'complete') AS users_windows_complete,
       (p.state = 'complete'
        AND count(c.id) FILTER (WHERE c.state NOT IN ('complete', 'unreachable')) = 0) AS complete,
       (p.is_final AND count(c.id) FILTER (WHERE NOT c.is_final AND c.state <> 'unreachable') = 0) AS is_final,
       count(c.id) FILTER (WHERE c.state = 'unreachable') AS users_windows_unreachable
  FROM rollcall.collection_windows p
  LEFT JOIN rollcall.collection_windows c ON c.parent_id = p.id
 WHERE p.stream = 'zoom_sdk_sessions'
 GROUP BY p.id;
COMMENT ON VIEW rollcall.zoom_sdk_months IS
    'Video SDK months: complete only when the month''s session list and the users of every ended session are completely collected, or recorded unreachable (Zoom no longer has the session: 404 code 3001; its stored users are kept).';
COMMENT ON COLUMN rollcall.zoom_sdk_months.users_windows_unreachable IS
    'Users windows of the month recorded unreachable: Zoom answered "Session does not exist" (404 code 3001) for the session, or the month fell before the horizon. Their stored users are kept; last_error in collection_windows says which.';

-- Trust: windows that complete only with their children, walks whose request parameters are frozen at
-- page 1, and Video SDK rows that a single walk can no longer delete.

ALTER TABLE rollcall.collection_windows DROP CONSTRAINT collection_windows_state_check;
ALTER TABLE rollcall.collection_windows ADD CONSTRAINT collection_windows_state_check
    CHECK (state IN ('pending', 'running', 'awaiting_children', 'complete', 'failed', 'unreachable'));
COMMENT ON COLUMN rollcall.collection_windows.state IS
    'pending: never walked; running: a walk is in progress or was interrupted; awaiting_children: the window itself was walked and verified, but some of its child windows (the users of a Video SDK month''s sessions) are not complete yet; complete: the last walk reached the last page and verified, and so did every child; failed: the last walk stopped on an error (retried next run); unreachable: the API no longer serves this range (its rows are kept)';

ALTER TABLE rollcall.collection_windows
    ADD COLUMN walk_params jsonb,
    ADD COLUMN parent_id bigint REFERENCES rollcall.collection_windows (id) ON DELETE CASCADE;
CREATE INDEX collection_windows_parent ON rollcall.collection_windows (parent_id) WHERE parent_id IS NOT NULL;
COMMENT ON COLUMN rollcall.collection_windows.walk_params IS
    'The request parameters of the current walk (from, to, page_size, type), fixed at page 1 and reused for every page and for a resume.';
COMMENT ON COLUMN rollcall.collection_windows.parent_id IS
    'The window whose walk planned this one (a Video SDK month''s list for a session''s users); the parent is complete only when every child is.';

UPDATE rollcall.collection_windows c
   SET parent_id = p.id
  FROM rollcall.collection_windows p
 WHERE c.stream = 'zoom_sdk_session_users' AND p.stream = 'zoom_sdk_sessions'
   AND p.account = c.account AND p.window_start = c.window_start AND p.window_end = c.window_end;

-- A list recorded complete before its children were is not complete.
UPDATE rollcall.collection_windows p
   SET state = 'awaiting_children'
 WHERE p.state = 'complete'
   AND EXISTS (SELECT 1 FROM rollcall.collection_windows c
                WHERE c.parent_id = p.id AND c.state NOT IN ('complete', 'unreachable'));

ALTER TABLE rollcall.zoom_sdk_sessions
    ADD COLUMN missing_since timestamptz,
    ADD COLUMN missing_run uuid;
COMMENT ON COLUMN rollcall.zoom_sdk_sessions.missing_since IS
    'Set when a complete walk of the month''s list no longer listed this session; the row is deleted only when a complete walk in a later run misses it too, and cleared when it is listed again. NULL for a listed session.';
COMMENT ON COLUMN rollcall.zoom_sdk_sessions.missing_run IS 'The collection run that first missed the session (collector bookkeeping).';

ALTER TABLE rollcall.zoom_sdk_session_users
    ADD COLUMN missing_since timestamptz,
    ADD COLUMN missing_run uuid;
COMMENT ON COLUMN rollcall.zoom_sdk_session_users.missing_since IS
    'Set when a complete walk of the session''s users no longer listed this join; the row is deleted only when a complete walk in a later run misses it too, and cleared when it is listed again. NULL for a listed join.';
COMMENT ON COLUMN rollcall.zoom_sdk_session_users.missing_run IS 'The collection run that first missed the join (collector bookkeeping).';

CREATE OR REPLACE VIEW rollcall.zoom_sdk_months AS
SELECT p.account,
       p.window_start AS month,
       p.state        AS list_state,
       count(c.id)    AS sessions_with_users_window,
       count(c.id) FILTER (WHERE c.state = 'complete') AS users_windows_complete,
       (p.state = 'complete' AND count(c.id) FILTER (WHERE c.state <> 'complete') = 0) AS complete,
       (p.is_final AND count(c.id) FILTER (WHERE NOT c.is_final) = 0) AS is_final
  FROM rollcall.collection_windows p
  LEFT JOIN rollcall.collection_windows c ON c.parent_id = p.id
 WHERE p.stream = 'zoom_sdk_sessions'
 GROUP BY p.id;

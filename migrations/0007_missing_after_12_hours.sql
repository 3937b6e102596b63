-- A marked Video SDK row is deleted only by another run that began at least 12 hours after the mark
-- (src/sources/zoom/videosdk/mirror.rs, CONFIRM_AFTER): the column comments say so.
COMMENT ON COLUMN rollcall.zoom_sdk_sessions.missing_since IS
    'Set when a complete walk of the month''s list no longer listed this session; the row is deleted only when a complete walk of another run that began at least 12 hours later misses it too, and cleared when it is listed again. While any session of a month is marked, the month does not become final. NULL for a listed session.';
COMMENT ON COLUMN rollcall.zoom_sdk_session_users.missing_since IS
    'Set when a complete walk of the session''s users no longer listed this join; the row is deleted only when a complete walk of another run that began at least 12 hours later misses it too, and cleared when it is listed again. While any join of a session is marked, its users window does not become final. NULL for a listed join.';

-- A walk that would make a window final is applied only if it shrinks nothing stored, or once a run at
-- least 12 hours later agrees. Its pages are written as they arrive (each with its checkpoint, so a crash
-- loses nothing), so before the first of them overwrites anything, the window's stored rows are set aside
-- here, in that page's transaction. A walk that is not applied (disputed, failed) puts them back in the
-- transaction that records it; a walk that is applied drops them. Additive only: an older binary ignores
-- these tables.
CREATE TABLE rollcall.walk_undo (
    window_id bigint      PRIMARY KEY REFERENCES rollcall.collection_windows (id) ON DELETE CASCADE,
    taken_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE rollcall.walk_undo IS
    'Collector bookkeeping: windows whose stored rows were set aside before a finalizing walk wrote its first page (rows in walk_undo_rows). Gone once that walk is applied or put back.';

CREATE TABLE rollcall.walk_undo_rows (
    window_id bigint NOT NULL REFERENCES rollcall.walk_undo (window_id) ON DELETE CASCADE,
    tbl       text   NOT NULL,
    row       jsonb  NOT NULL
);
CREATE INDEX walk_undo_rows_window ON rollcall.walk_undo_rows (window_id, tbl);
COMMENT ON TABLE rollcall.walk_undo_rows IS
    'Collector bookkeeping: one stored row of table tbl (schema rollcall) as it was before the walk of window_id, as to_jsonb(row).';

-- The Video SDK no longer marks rows one by one: a walk that would remove stored sessions or joins is held
-- as a whole, like any other stream's, until a run at least 12 hours later agrees. These columns are no
-- longer written (a walk that lists a row again still clears a mark an older release left).
COMMENT ON COLUMN rollcall.zoom_sdk_sessions.missing_since IS
    'No longer written (older releases marked sessions a walk did not list here). A walk that lists the session again clears it; NULL for every session rollcall stores now.';
COMMENT ON COLUMN rollcall.zoom_sdk_sessions.missing_run IS 'No longer written (see missing_since).';
COMMENT ON COLUMN rollcall.zoom_sdk_session_users.missing_since IS
    'No longer written (older releases marked joins a walk did not list here). A walk that lists the join again clears it; NULL for every join rollcall stores now.';
COMMENT ON COLUMN rollcall.zoom_sdk_session_users.missing_run IS 'No longer written (see missing_since).';

-- DESIGN principle 8: no single reply makes history smaller. A walk that would make a window final while
-- removing, zeroing or lowering anything stored changes nothing; the window stays complete but not final,
-- marked here, until a walk of a run at least 12 hours later agrees (src/engine/walker.rs). Additive only:
-- an older binary ignores these columns and keeps working.
ALTER TABLE rollcall.collection_windows
    ADD COLUMN disputed_since timestamptz,
    ADD COLUMN disputed_run uuid,
    ADD COLUMN stored_count bigint,
    ADD COLUMN walked_count bigint;
COMMENT ON COLUMN rollcall.collection_windows.disputed_since IS
    'Awaiting confirmation: the start of the run (on the collector''s clock) whose walk would have made this window final while shrinking what is stored. Nothing of that walk was applied; the window is complete but not final until a walk of a run that began at least 12 hours later agrees (the shrink is then applied) or a walk agrees with what is stored (the mark is cleared). NULL when not disputed.';
COMMENT ON COLUMN rollcall.collection_windows.disputed_run IS 'The collection run that first disputed the window (collector bookkeeping).';
COMMENT ON COLUMN rollcall.collection_windows.stored_count IS
    'Awaiting confirmation: what is stored for the window (rows, or days for daily usage) when the last disputing walk ended. NULL when not disputed.';
COMMENT ON COLUMN rollcall.collection_windows.walked_count IS
    'Awaiting confirmation: what the last disputing walk saw, in the same unit as stored_count. NULL when not disputed.';

-- A Video SDK session Zoom still lists without an end_time 7 days after its month settled is recorded as
-- ended at an unknown time: its users are walked and its month can complete. A later walk that serves an
-- end_time updates the row and clears the flag.
ALTER TABLE rollcall.zoom_sdk_sessions ADD COLUMN end_time_unknown boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN rollcall.zoom_sdk_sessions.end_time_unknown IS
    'true: Zoom still served no end_time 7 days after the session''s month settled, so the session is recorded as ended at an unknown time (end_time and duration_seconds stay NULL) and its users were collected. false for a session with an end_time, or one still open.';

-- A Video SDK session's users do not change once it has ended: its users window may become final once the
-- session ended more than settle_days before the walk's day, whatever its month, so a run in steady state
-- asks only for sessions that can still change. The list walk records the end it saw here; a different
-- end (a later one, or one appearing) makes the window non-final again so its users are walked again.
-- Additive only: an older binary ignores the column and keeps finalizing users windows with their month.
ALTER TABLE rollcall.collection_windows ADD COLUMN scope_ended_at timestamptz;
COMMENT ON COLUMN rollcall.collection_windows.scope_ended_at IS
    'Video SDK users windows: the session''s end_time as the session list last served it (NULL: not known, or another stream). The window becomes final once that end is more than settle_days before the walk''s day; a list walk that serves a different end makes it non-final again.';

-- A run claims the oldest due window of a stream first (ORDER BY window_start, scope LIMIT 1). With only the
-- (stream, account, state) index each claim read and sorted all of the stream's non-final windows: 38 ms a
-- claim at 30,000 Video SDK users windows (a month of 1,000 sessions a day), once per window, so a first
-- collection slowed down as the square of its size. In claim order the first due row is found at once
-- (0.07 ms), and a users window that became final when it completed leaves the index.
CREATE INDEX collection_windows_claim ON rollcall.collection_windows (account, stream, window_start, scope)
    WHERE NOT is_final;

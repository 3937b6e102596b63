-- Which run a window's last walk belongs to, on the collectors' clock. A run walks again only the windows
-- whose last walk belongs to an earlier run; comparing the run's start (a replica's clock, the cron tick)
-- with started_at (PostgreSQL's clock) let a replica whose clock runs ahead of the database's walk again a
-- window another replica had just walked in the same tick.
ALTER TABLE rollcall.collection_windows ADD COLUMN walked_in_run timestamptz;
COMMENT ON COLUMN rollcall.collection_windows.walked_in_run IS
    'The start of the run (its cron tick, on the collector''s clock) whose walk set started_at: a run walks a complete but not final window again only when this is earlier than its own start. NULL for walks recorded before the column existed (started_at stands in).';

-- Replicas share each account's rate budget: one replica at a time sends an account's requests (its lease
-- here), and every request is counted per account, rate category and UTC day so the daily pool is one
-- number across replicas and restarts. Additive: older binaries ignore both tables (they pace per process,
-- as before).
CREATE TABLE IF NOT EXISTS rollcall.account_leases (
    account text PRIMARY KEY,
    lease_owner text,
    lease_until timestamptz,
    acquired_at timestamptz,
    -- When the last holder let go gracefully; the next holder waits out what is left of one pacing period
    -- from then, so the two together never exceed the rate.
    released_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS rollcall.request_counts (
    account text NOT NULL,
    category text NOT NULL,
    day date NOT NULL,
    requests bigint NOT NULL DEFAULT 0 CHECK (requests >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, category, day)
);

COMMENT ON TABLE rollcall.account_leases IS
    'Which replica sends an account''s API requests now: one at a time, so replicas together stay within the account''s rate.';
COMMENT ON TABLE rollcall.request_counts IS
    'API requests sent per account, rate category and UTC day, by every replica: the daily pool in use.';

-- The processes collecting (a daemon, between its ticks too, or a `collect`), so each takes about its fair
-- share of the accounts (the accounts of its run divided by the members, rounded up) and replicas started
-- together spread over the accounts.
CREATE TABLE IF NOT EXISTS rollcall.collector_members (
    -- The replica name, host:pid.
    owner text PRIMARY KEY,
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE rollcall.collector_members IS
    'Processes that collect (daemons and collect runs), one row each, renewed while they live: how many replicas share the accounts.';

-- rollcall's schema. Tables are the analysts' interface (DESIGN §4); collection_windows and
-- account_pauses are the collector's own bookkeeping.
CREATE SCHEMA IF NOT EXISTS rollcall;

CREATE TABLE rollcall.collection_windows (
    id               bigserial PRIMARY KEY,
    account          text        NOT NULL,
    stream           text        NOT NULL,
    scope            text        NOT NULL DEFAULT '',
    window_start     date        NOT NULL,
    window_end       date        NOT NULL,
    state            text        NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'running', 'complete', 'failed', 'unreachable')),
    is_final         boolean     NOT NULL DEFAULT false,
    pages            integer     NOT NULL DEFAULT 0,
    rows             bigint      NOT NULL DEFAULT 0,
    attempts         integer     NOT NULL DEFAULT 0,
    next_page_token  text,
    token_issued_at  timestamptz,
    expected_total   bigint,
    last_error       text,
    started_at       timestamptz,
    completed_at     timestamptz,
    lease_owner      text,
    lease_until      timestamptz,
    walk_id          uuid,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (window_start <= window_end),
    UNIQUE (account, stream, scope, window_start, window_end)
);
CREATE INDEX collection_windows_due ON rollcall.collection_windows (stream, account, state) WHERE NOT is_final;
COMMENT ON TABLE rollcall.collection_windows IS
    'One row per unit of collection work (account, stream, scope, date range) and its crash-safe checkpoint.';
COMMENT ON COLUMN rollcall.collection_windows.state IS
    'pending: never walked; running: a walk is in progress or was interrupted; complete: the last walk reached the last page and verified; failed: the last walk stopped on an error (retried next run); unreachable: the API no longer serves this range';
COMMENT ON COLUMN rollcall.collection_windows.is_final IS
    'The source can no longer change this window, and it was completed after that point: it is never walked again.';
COMMENT ON COLUMN rollcall.collection_windows.rows IS 'Rows written by the current (or last) walk.';
COMMENT ON COLUMN rollcall.collection_windows.next_page_token IS
    'Resume point of an interrupted walk; used only while younger than 14 minutes (Zoom tokens live 15).';
COMMENT ON COLUMN rollcall.collection_windows.expected_total IS 'The total the API announced for this window (Zoom total_records).';
COMMENT ON COLUMN rollcall.collection_windows.walk_id IS 'Identifies one walk from page 1; rows carry the walk that last saw them.';

CREATE TABLE rollcall.account_pauses (
    account   text        PRIMARY KEY,
    until     timestamptz NOT NULL,
    reason    text        NOT NULL,
    paused_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE rollcall.account_pauses IS
    'An account that hit a daily API limit sends nothing (token requests included) until "until".';

CREATE TABLE rollcall.zoom_host_reports (
    account               text        NOT NULL,
    month                 date        NOT NULL CHECK (extract(day FROM month) = 1),
    report_type           text        NOT NULL CHECK (report_type IN ('active', 'inactive')),
    from_date             date        NOT NULL,
    to_date               date        NOT NULL,
    total_records         bigint      NOT NULL,
    total_meetings        bigint,
    total_participants    bigint,
    total_meeting_minutes bigint,
    is_final              boolean     NOT NULL DEFAULT false,
    collected_at          timestamptz NOT NULL,
    PRIMARY KEY (account, month, report_type)
);
COMMENT ON TABLE rollcall.zoom_host_reports IS
    'Zoom active/inactive host report totals, one row per account, calendar month and report type (GET /report/users). A row exists only for a completely walked month.';
COMMENT ON COLUMN rollcall.zoom_host_reports.month IS 'First day of the calendar month the report covers.';
COMMENT ON COLUMN rollcall.zoom_host_reports.from_date IS 'The from date requested and confirmed by Zoom.';
COMMENT ON COLUMN rollcall.zoom_host_reports.to_date IS 'The to date requested and confirmed by Zoom (the collection day for the current month).';
COMMENT ON COLUMN rollcall.zoom_host_reports.total_records IS 'Number of hosts of this type in the month, as announced by Zoom and verified against the rows.';
COMMENT ON COLUMN rollcall.zoom_host_reports.total_meetings IS 'Meetings hosted in the range by all hosts of the report.';
COMMENT ON COLUMN rollcall.zoom_host_reports.total_participants IS 'Participants in those meetings.';
COMMENT ON COLUMN rollcall.zoom_host_reports.total_meeting_minutes IS 'Meeting minutes of those meetings.';
COMMENT ON COLUMN rollcall.zoom_host_reports.is_final IS 'The month settled before it was collected: these figures never change again.';

CREATE TABLE rollcall.zoom_host_report_users (
    account             text        NOT NULL,
    month               date        NOT NULL,
    report_type         text        NOT NULL CHECK (report_type IN ('active', 'inactive')),
    user_id             text        NOT NULL,
    email               text,
    user_name           text,
    user_type           integer,
    dept                text,
    meetings            bigint,
    participants        bigint,
    meeting_minutes     bigint,
    custom_attributes   jsonb,
    create_time         timestamptz,
    last_login_time     timestamptz,
    last_client_version text,
    raw                 jsonb       NOT NULL,
    first_seen_at       timestamptz NOT NULL,
    last_seen_at        timestamptz NOT NULL,
    walk_id             uuid        NOT NULL,
    PRIMARY KEY (account, month, report_type, user_id)
);
COMMENT ON TABLE rollcall.zoom_host_report_users IS
    'One row per host per month and report type: active hosts hosted at least one meeting in the month, inactive hosts none.';
COMMENT ON COLUMN rollcall.zoom_host_report_users.user_type IS 'Zoom user type: 1 Basic, 2 Licensed, 3 On-premise, 4 No Meetings License, 99 None.';
COMMENT ON COLUMN rollcall.zoom_host_report_users.meetings IS 'Meetings the user hosted in the month.';
COMMENT ON COLUMN rollcall.zoom_host_report_users.participants IS 'Participants in the meetings the user hosted.';
COMMENT ON COLUMN rollcall.zoom_host_report_users.meeting_minutes IS 'Minutes of the meetings the user hosted.';
COMMENT ON COLUMN rollcall.zoom_host_report_users.custom_attributes IS 'As served: an object, an array or a string; NULL when absent.';
COMMENT ON COLUMN rollcall.zoom_host_report_users.create_time IS 'Undocumented by Zoom but seen in responses; NULL when absent.';
COMMENT ON COLUMN rollcall.zoom_host_report_users.raw IS 'The API''s row as served (U+0000 replaced by U+FFFD).';
COMMENT ON COLUMN rollcall.zoom_host_report_users.first_seen_at IS 'When rollcall first stored this row; never changes.';
COMMENT ON COLUMN rollcall.zoom_host_report_users.last_seen_at IS 'The last walk that saw this row.';
COMMENT ON COLUMN rollcall.zoom_host_report_users.walk_id IS 'The walk that last saw this row (collector bookkeeping).';

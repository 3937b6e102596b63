-- Zoom Video SDK past sessions and their users (DESIGN §4), kept beyond Zoom's six months.

CREATE TABLE rollcall.zoom_sdk_sessions (
    account             text        NOT NULL,
    session_id          text        NOT NULL,
    month               date        NOT NULL CHECK (extract(day FROM month) = 1),
    session_name        text,
    session_key         text,
    start_time          timestamptz,
    end_time            timestamptz,
    duration            text,
    duration_seconds    bigint,
    user_count          bigint,
    has_voip            boolean,
    has_video           boolean,
    has_screen_share    boolean,
    has_recording       boolean,
    has_pstn            boolean,
    has_session_summary boolean,
    raw                 jsonb       NOT NULL,
    collected_at        timestamptz NOT NULL,
    walk_id             uuid        NOT NULL,
    PRIMARY KEY (account, session_id)
);
CREATE INDEX zoom_sdk_sessions_month ON rollcall.zoom_sdk_sessions (account, month);
COMMENT ON TABLE rollcall.zoom_sdk_sessions IS
    'Zoom Video SDK past sessions (GET /videosdk/sessions?type=past), one row per session, listed per calendar month.';
COMMENT ON COLUMN rollcall.zoom_sdk_sessions.session_id IS 'Zoom''s session UUID (may contain /, + and =).';
COMMENT ON COLUMN rollcall.zoom_sdk_sessions.month IS 'First day of the calendar month whose session list served this session.';
COMMENT ON COLUMN rollcall.zoom_sdk_sessions.session_key IS 'The customer''s own session identifier (Video SDK session_key).';
COMMENT ON COLUMN rollcall.zoom_sdk_sessions.start_time IS 'When the session started (UTC).';
COMMENT ON COLUMN rollcall.zoom_sdk_sessions.end_time IS 'When the session ended (UTC); NULL while Zoom reports none, and then its users are not collected yet.';
COMMENT ON COLUMN rollcall.zoom_sdk_sessions.duration IS 'The duration as served, text such as "30:00" or "01:02:03".';
COMMENT ON COLUMN rollcall.zoom_sdk_sessions.duration_seconds IS 'end_time - start_time in seconds, derived by rollcall; NULL when either is missing.';
COMMENT ON COLUMN rollcall.zoom_sdk_sessions.user_count IS 'Number of users in the session, as reported by Zoom.';
COMMENT ON COLUMN rollcall.zoom_sdk_sessions.has_voip IS 'Someone joined audio over VoIP.';
COMMENT ON COLUMN rollcall.zoom_sdk_sessions.has_video IS 'Someone turned on video.';
COMMENT ON COLUMN rollcall.zoom_sdk_sessions.has_screen_share IS 'Someone shared a screen.';
COMMENT ON COLUMN rollcall.zoom_sdk_sessions.has_recording IS 'The session was cloud-recorded.';
COMMENT ON COLUMN rollcall.zoom_sdk_sessions.has_pstn IS 'Someone joined by phone (PSTN).';
COMMENT ON COLUMN rollcall.zoom_sdk_sessions.has_session_summary IS 'An AI session summary exists.';
COMMENT ON COLUMN rollcall.zoom_sdk_sessions.raw IS 'The API''s session object as served (U+0000 replaced by U+FFFD), unknown fields included.';
COMMENT ON COLUMN rollcall.zoom_sdk_sessions.collected_at IS 'The last walk that saw this session.';
COMMENT ON COLUMN rollcall.zoom_sdk_sessions.walk_id IS 'The walk that last saw this row (collector bookkeeping for the month''s mirror).';

CREATE TABLE rollcall.zoom_sdk_session_users (
    account          text        NOT NULL,
    session_id       text        NOT NULL,
    user_id          text        NOT NULL,
    join_time        timestamptz NOT NULL,
    name             text,
    user_key         text,
    participant_uuid text,
    device           text,
    ip_address       text,
    location         text,
    network_type     text,
    microphone       text,
    speaker          text,
    camera           text,
    data_center      text,
    connection_type  text,
    leave_time       timestamptz,
    client           text,
    audio_call       jsonb,
    raw              jsonb       NOT NULL,
    collected_at     timestamptz NOT NULL,
    walk_id          uuid        NOT NULL,
    PRIMARY KEY (account, session_id, user_id, join_time)
);
COMMENT ON TABLE rollcall.zoom_sdk_session_users IS
    'Who was in each Zoom Video SDK session (GET /videosdk/sessions/{id}/users?type=past): one row per join, so a user who leaves and rejoins has two rows. Join with zoom_sdk_sessions on (account, session_id).';
COMMENT ON COLUMN rollcall.zoom_sdk_session_users.user_id IS 'Zoom''s user id within the session (participant_uuid when Zoom served no id).';
COMMENT ON COLUMN rollcall.zoom_sdk_session_users.join_time IS 'When this join started (UTC). When Zoom omits it, the session''s start_time is used so the row still has a key; raw then has no join_time.';
COMMENT ON COLUMN rollcall.zoom_sdk_session_users.leave_time IS 'When this join ended (UTC).';
COMMENT ON COLUMN rollcall.zoom_sdk_session_users.user_key IS 'The customer''s own user identifier (Video SDK user_key).';
COMMENT ON COLUMN rollcall.zoom_sdk_session_users.participant_uuid IS 'Zoom''s participant UUID, valid for the session''s duration.';
COMMENT ON COLUMN rollcall.zoom_sdk_session_users.device IS 'Phone, H.323/SIP, Windows, Mac, iOS or Android.';
COMMENT ON COLUMN rollcall.zoom_sdk_session_users.network_type IS 'Wired, Wifi, PPP, Cellular or Others.';
COMMENT ON COLUMN rollcall.zoom_sdk_session_users.data_center IS 'The Zoom data center that served the user, e.g. SC.';
COMMENT ON COLUMN rollcall.zoom_sdk_session_users.connection_type IS 'How media flowed, e.g. P2P.';
COMMENT ON COLUMN rollcall.zoom_sdk_session_users.client IS 'The client the user joined with (undocumented extra, kept).';
COMMENT ON COLUMN rollcall.zoom_sdk_session_users.audio_call IS 'Phone legs as served: an array of {call_number, call_type, zoom_number}.';
COMMENT ON COLUMN rollcall.zoom_sdk_session_users.raw IS 'The API''s user object as served (U+0000 replaced by U+FFFD), unknown fields included.';
COMMENT ON COLUMN rollcall.zoom_sdk_session_users.collected_at IS 'The last walk that saw this row.';
COMMENT ON COLUMN rollcall.zoom_sdk_session_users.walk_id IS 'The walk that last saw this row (collector bookkeeping for the session''s mirror).';

-- A Video SDK month is complete only when its session list and every session's users are: the list
-- window and its child windows (stream zoom_sdk_session_users, same bounds) are separate rows of
-- collection_windows, and this view puts them back together.
CREATE VIEW rollcall.zoom_sdk_months AS
SELECT p.account,
       p.window_start AS month,
       p.state        AS list_state,
       count(c.id)    AS sessions_with_users_window,
       count(c.id) FILTER (WHERE c.state = 'complete') AS users_windows_complete,
       (p.state = 'complete' AND count(c.id) FILTER (WHERE c.state <> 'complete') = 0) AS complete,
       (p.is_final AND count(c.id) FILTER (WHERE NOT c.is_final) = 0) AS is_final
  FROM rollcall.collection_windows p
  LEFT JOIN rollcall.collection_windows c
         ON c.account = p.account AND c.stream = 'zoom_sdk_session_users'
        AND c.window_start = p.window_start AND c.window_end = p.window_end
 WHERE p.stream = 'zoom_sdk_sessions'
 GROUP BY p.id;
COMMENT ON VIEW rollcall.zoom_sdk_months IS
    'Video SDK months: complete only when the month''s session list and the users of every ended session are completely collected.';

-- AMI sessions: when pbx-sla was logged in to each Asterisk, and so when trunk state was known.
--
-- One row per successful AMI login (written by the daemon, pbx_sla/ami/collector.py, upserted by
-- (server, session_id) so a replayed write changes nothing):
--   login_at      the login succeeded (daemon clock)
--   resynced_at   every feature's post-login poll (PJSIPShowEndpoints...) finished; NULL when the resync
--                 failed or had not finished when the session ended
--   last_seen_at  the last answered Ping (every ping_interval) or event flush: a crashed daemon's
--                 session ends here at most one ping_interval late
--   lost_at       the connection dropped, or the daemon stopped (SIGTERM), or - for a session left open by
--                 a crash - set to last_seen_at by the next daemon start; NULL while the session is live
--   lost_reason   'connection-lost', 'stopped' or 'daemon-crashed'
--
-- Trunk state of a server is KNOWN during [resynced_at, COALESCE(lost_at, last_seen_at)) of its sessions
-- and UNKNOWN outside them (view ami_coverage). Events are never delivered between two sessions.
CREATE TABLE ami_sessions (
    server       text        NOT NULL,
    session_id   text        NOT NULL,
    login_at     timestamptz NOT NULL,
    resynced_at  timestamptz,
    last_seen_at timestamptz,
    lost_at      timestamptz,
    lost_reason  text CHECK (lost_reason IN ('connection-lost', 'stopped', 'daemon-crashed')),
    PRIMARY KEY (server, session_id)
);

CREATE INDEX ami_sessions_server_login ON ami_sessions (server, login_at);

-- The known intervals, one per resynced session: [known_from, known_to). A live session ends at its
-- last_seen_at (refreshed every ping_interval).
CREATE VIEW ami_coverage AS
SELECT server,
       session_id,
       resynced_at                                          AS known_from,
       GREATEST(resynced_at, COALESCE(lost_at, last_seen_at, resynced_at)) AS known_to,
       lost_at IS NULL                                      AS live
FROM ami_sessions
WHERE resynced_at IS NOT NULL;

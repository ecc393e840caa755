-- 0010 (baseline): AMI sessions and trunk observations (docs/trunks.md).
--
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
-- and UNKNOWN outside them (view ami_coverage, sql/repeatable/ami_coverage.sql). Events are never delivered
-- between two sessions.
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

-- Trunk observations: one row per thing an AMI event or a post-login poll said about one PJSIP endpoint: a contact's state
-- (ContactStatus, ContactStatusDetail), the endpoint aggregate (PeerStatus), an outbound registration
-- (Registry, OutboundRegistrationDetail), or "the poll found no contact" (source 'endpoint').
-- Rows are facts, stored once: the key includes the event time and the status, so the same event delivered
-- again (writer replay, resync after reconnect) changes nothing. State changes, up/down seconds and outages
-- are derived at report time by the pure core (pbx_sla/domain/trunks.py) from these rows and the AMI
-- sessions (above): that keeps one definition of the rules and lets them change without a data migration.
--
-- Observations of every endpoint are kept (they are few: events are sent on change only); which endpoints
-- are trunks is decided by the `trunks` table: the catalogue's, plus every endpoint that ever reported a
-- qualify result (Reachable/Unreachable), inserted with in_catalogue = false by the sink.

CREATE TABLE trunk_observations (
    server       text        NOT NULL,
    trunk        text        NOT NULL,               -- PJSIP endpoint name
    at           timestamptz NOT NULL,               -- event Timestamp, or the time the poll was sent
    source       text        NOT NULL CHECK (source IN ('contact', 'peer', 'registration', 'endpoint')),
    key          text        NOT NULL DEFAULT '',    -- contact URI, registration name; '' for peer/endpoint
    status       text        NOT NULL,
    aor          text        NOT NULL DEFAULT '',
    rtt_usec     bigint      CHECK (rtt_usec >= 0),
    polled       boolean     NOT NULL DEFAULT false, -- from a post-login poll, not an event
    received_at  timestamptz NOT NULL DEFAULT now(),
    -- (server, trunk, at) first: the report reads one trunk's rows in a time range
    PRIMARY KEY (server, trunk, at, source, key, status)
);

-- The state at a period's start: the latest row per (trunk, source, key) before it.
CREATE INDEX trunk_observations_latest ON trunk_observations (server, trunk, source, key, at DESC);

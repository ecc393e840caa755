-- 0011: trunk observations (docs/trunks.md).
--
-- One row per thing an AMI event or a post-login poll said about one PJSIP endpoint: a contact's state
-- (ContactStatus, ContactStatusDetail), the endpoint aggregate (PeerStatus), an outbound registration
-- (Registry, OutboundRegistrationDetail), or "the poll found no contact" (source 'endpoint').
-- Rows are facts, stored once: the key includes the event time and the status, so the same event delivered
-- again (writer replay, resync after reconnect) changes nothing. State changes, up/down seconds and outages
-- are derived at report time by the pure core (pbx_sla/domain/trunks.py) from these rows and the AMI
-- sessions (sql/0010): that keeps one definition of the rules and lets them change without a data migration.
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

-- 1705 (issue 16): each trunk's known states per UTC day, kept once the day is over, so that a month's
-- availability is read from ~31 short rows per trunk instead of replaying its AMI sessions and observations
-- (about 1 ms a trunk in Python: 100-140 ms of the dashboard's overview; docs/benchmarks.md).
--
-- A row holds what pbx_sla.domain.trunks.known_segments gives for the trunk (up / down / unknown state while
-- a resynced AMI session watched it) clipped to [day 00:00Z, day+1 00:00Z): parallel arrays of segment
-- starts, ends and states, empty when nothing was known that day. Maintenance and the report period (its
-- time zone, its partial first and last UTC days) are applied at report time, so neither a maintenance
-- window changed later nor a period in any zone needs a row to change. Rows are written by the report
-- functions (pbx_sla/store/trunk_days.py) for days that are over, and deleted by statement triggers
-- (sql/repeatable/trunk_known_days_invalidate.sql) for every day a change to trunk_observations or
-- ami_sessions can affect: from the changed observation's or session's time on.
CREATE TABLE trunk_known_days (
    server      text        NOT NULL,
    trunk       text        NOT NULL,
    day         date        NOT NULL,              -- UTC
    starts      timestamptz[] NOT NULL,
    ends        timestamptz[] NOT NULL,
    states      text[]      NOT NULL,              -- 'up', 'down', 'unknown' (Asterisk's unknown state)
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (server, trunk, day),
    CHECK (cardinality(starts) = cardinality(ends) AND cardinality(ends) = cardinality(states))
);

-- the session triggers invalidate a whole server from a day on
CREATE INDEX trunk_known_days_server_day ON trunk_known_days (server, day);

-- 1703 (issue 17): the history tables that grow with every call are partitioned by month (PostgreSQL
-- declarative partitioning, RANGE on the row's time, months in UTC), so reports of a period read only
-- that period's partitions and retention drops whole months (docs/scale.md "Partitioned history").
--
--   table          partition key   primary / unique key (must include the partition key)
--   cdr_legs       start_at        (fingerprint, start_at)       was (fingerprint)
--   calls          started_at      (server, call_key, started_at) was (server, call_key)
--   support_calls  decided_at      (server, uniqueid, decided_at) unchanged
--   queue_events   at              (server, uniqueid, event, at)  unchanged
--   qos_legs       at              (server, uniqueid, at)         was (server, uniqueid)
--
-- Uniqueness that the keys no longer state, and how it is kept:
--   * a leg's fingerprint: a leg's start is part of what its fingerprint hashes (as local time text), so
--     the same leg always comes with the same start_at, except when a Master.csv is read again under
--     another time zone; cdr_store_stage looks for the fingerprint within 27 hours of the start (more
--     than any two zones differ) before inserting, and `cdr import` refuses such a batch as before;
--   * a call's (server, call_key): only the writers insert calls, under the per-(server, bucket) call
--     locks (pbx_sla/store/calls.py), after looking the key up in every partition; a call whose start
--     moves (a late earlier leg) is updated in place and PostgreSQL moves the row to its new month;
--   * a QoS leg's (server, uniqueid): a Hangup record replayed after an outage carries its event time.
--
-- trunk_observations, ami_sessions and usage_daily stay plain tables: the first two get rows on trunk
-- state changes and AMI logins, not per call; usage_daily grows with tenants x days.
--
-- Each table gets a DEFAULT partition as a safety net (a row of a month without its partition: an old
-- `cdr import`, a clock far off). history_partitions_ensure() makes month partitions and moves rows of
-- their month out of the DEFAULT partition; pbx_sla/store/partitions.py runs it after every upgrade, from
-- the daemon daily, after `cdr import`, and on demand (`pbx-sla db partitions`).
--
-- The conversion of an existing database: each table is renamed, a partitioned table with the same
-- columns (order, types, defaults, CHECKs) is created under the old name with the partitions that cover
-- the old rows' months, the rows are copied, the old table dropped, and the keys and indexes built on the
-- loaded partitions. The views on support_calls/queue_events are dropped first and recreated by the
-- repeatable files (re-applied after every versioned migration). One transaction: a failure changes
-- nothing. It holds the tables exclusively while it copies (stop the daemons; how long it takes was not
-- measured: docs/scale.md gives the load times it can be expected to be close to).

CREATE TABLE history_partitioning (
    parent      text PRIMARY KEY,
    key_column  text NOT NULL
);
INSERT INTO history_partitioning (parent, key_column) VALUES
    ('cdr_legs', 'start_at'), ('calls', 'started_at'), ('support_calls', 'decided_at'),
    ('queue_events', 'at'), ('qos_legs', 'at');

-- The month partitions of p_parent (a history_partitioning table) for every UTC month from the one of
-- p_from to the one of p_to, named <parent>_yYYYYmMM, each made unless it exists. Rows of such a month
-- that wait in the DEFAULT partition are moved into the new partition. Returns how many were made.
CREATE OR REPLACE FUNCTION history_partitions_ensure(p_parent text, p_from timestamptz, p_to timestamptz)
    RETURNS integer
    LANGUAGE plpgsql
    AS $fn$
DECLARE
    k text := (SELECT key_column FROM history_partitioning WHERE parent = p_parent);
    m date;
    part text;
    lo text;
    hi text;
    waiting boolean;
    made integer := 0;
BEGIN
    IF k IS NULL THEN
        RAISE EXCEPTION '% is not a partitioned history table', p_parent;
    END IF;
    IF p_from IS NULL OR p_to IS NULL THEN
        RETURN 0;
    END IF;
    FOR m IN SELECT d::date FROM generate_series(date_trunc('month', p_from AT TIME ZONE 'UTC'),
                                                 date_trunc('month', p_to AT TIME ZONE 'UTC'), interval '1 month') d
    LOOP
        part := p_parent || '_' || to_char(m, '"y"YYYY"m"MM');
        CONTINUE WHEN to_regclass(quote_ident(part)) IS NOT NULL;
        lo := to_char(m, 'YYYY-MM-DD') || ' 00:00:00+00';
        hi := to_char(m + interval '1 month', 'YYYY-MM-DD') || ' 00:00:00+00';
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE %I >= %L AND %I < %L)',
                       p_parent || '_default', k, lo, k, hi) INTO waiting;
        IF waiting THEN
            EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)',
                           part, p_parent);
            EXECUTE format('WITH moved AS (DELETE FROM %I WHERE %I >= %L AND %I < %L RETURNING *) '
                           'INSERT INTO %I SELECT * FROM moved', p_parent || '_default', k, lo, k, hi, part);
            EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', p_parent, part, lo, hi);
        ELSE
            EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)', part, p_parent, lo, hi);
        END IF;
        made := made + 1;
    END LOOP;
    RETURN made;
END
$fn$;

-- The views on the support tables are recreated by sql/repeatable/support_call_outcomes.sql.
DROP VIEW IF EXISTS support_call_outcomes;
DROP VIEW IF EXISTS support_call_runs;

-- cdr_legs
ALTER TABLE cdr_legs RENAME TO cdr_legs_unpartitioned;
CREATE TABLE cdr_legs (LIKE cdr_legs_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)
    PARTITION BY RANGE (start_at);
CREATE TABLE cdr_legs_default PARTITION OF cdr_legs DEFAULT;
SELECT history_partitions_ensure('cdr_legs', min(start_at), max(start_at)) FROM cdr_legs_unpartitioned;
INSERT INTO cdr_legs SELECT * FROM cdr_legs_unpartitioned;
DROP TABLE cdr_legs_unpartitioned;
ALTER TABLE cdr_legs ADD PRIMARY KEY (fingerprint, start_at);
CREATE INDEX cdr_legs_retention ON cdr_legs (start_at) WHERE NOT pseudonymised;

-- calls
ALTER TABLE calls RENAME TO calls_unpartitioned;
CREATE TABLE calls (LIKE calls_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)
    PARTITION BY RANGE (started_at);
CREATE TABLE calls_default PARTITION OF calls DEFAULT;
SELECT history_partitions_ensure('calls', min(started_at), max(started_at)) FROM calls_unpartitioned;
INSERT INTO calls SELECT * FROM calls_unpartitioned;
DROP TABLE calls_unpartitioned;
ALTER TABLE calls ADD PRIMARY KEY (server, call_key, started_at);
CREATE INDEX calls_unattributed ON calls (server, call_key) WHERE tenant_id IS NULL;
CREATE INDEX calls_retention ON calls (started_at) WHERE NOT pseudonymised;

-- support_calls
ALTER TABLE support_calls RENAME TO support_calls_unpartitioned;
CREATE TABLE support_calls (LIKE support_calls_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS
                            INCLUDING STORAGE)
    PARTITION BY RANGE (decided_at);
CREATE TABLE support_calls_default PARTITION OF support_calls DEFAULT;
SELECT history_partitions_ensure('support_calls', min(decided_at), max(decided_at)) FROM support_calls_unpartitioned;
INSERT INTO support_calls SELECT * FROM support_calls_unpartitioned;
DROP TABLE support_calls_unpartitioned;
ALTER TABLE support_calls ADD PRIMARY KEY (server, uniqueid, decided_at);
CREATE INDEX support_calls_tenant_decided ON support_calls (tenant_id, decided_at);
CREATE INDEX support_calls_decided ON support_calls (decided_at);
CREATE INDEX support_calls_uniqueid ON support_calls (uniqueid);
CREATE INDEX support_calls_call ON support_calls (server, (COALESCE(linkedid, uniqueid)), decided_at);
CREATE INDEX support_calls_retention ON support_calls (decided_at) WHERE NOT pseudonymised;

-- queue_events
ALTER TABLE queue_events RENAME TO queue_events_unpartitioned;
CREATE TABLE queue_events (LIKE queue_events_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS
                           INCLUDING STORAGE)
    PARTITION BY RANGE (at);
CREATE TABLE queue_events_default PARTITION OF queue_events DEFAULT;
SELECT history_partitions_ensure('queue_events', min(at), max(at)) FROM queue_events_unpartitioned;
INSERT INTO queue_events SELECT * FROM queue_events_unpartitioned;
DROP TABLE queue_events_unpartitioned;
ALTER TABLE queue_events ADD CONSTRAINT queue_events_server_uniqueid_event_at_key UNIQUE (server, uniqueid, event, at);
CREATE INDEX queue_events_uniqueid ON queue_events (uniqueid);
CREATE INDEX queue_events_retention ON queue_events (at) WHERE NOT pseudonymised;

-- qos_legs
ALTER TABLE qos_legs RENAME TO qos_legs_unpartitioned;
CREATE TABLE qos_legs (LIKE qos_legs_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)
    PARTITION BY RANGE (at);
CREATE TABLE qos_legs_default PARTITION OF qos_legs DEFAULT;
SELECT history_partitions_ensure('qos_legs', min(at), max(at)) FROM qos_legs_unpartitioned;
INSERT INTO qos_legs SELECT * FROM qos_legs_unpartitioned;
DROP TABLE qos_legs_unpartitioned;
ALTER TABLE qos_legs ADD PRIMARY KEY (server, uniqueid, at);
CREATE INDEX qos_legs_at ON qos_legs (at);
CREATE INDEX qos_legs_linkedid ON qos_legs (server, linkedid);
CREATE INDEX qos_legs_retention ON qos_legs (at) WHERE NOT pseudonymised;

ANALYZE cdr_legs, calls, support_calls, queue_events, qos_legs;

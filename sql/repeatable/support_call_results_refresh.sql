-- The upkeep of support_call_results (sql/1602): the view support_call_outcomes kept as a table.
--
-- support_call_results_refresh recomputes the given support calls (server, call key =
-- COALESCE(linkedid, uniqueid)) from the view: their rows are replaced by what the view gives now (none for
-- a call whose runs are gone). Statement triggers on support_calls and queue_events call it with the calls
-- a statement's inserted or deleted rows belong to. They are (re)made here, after every versioned file, on
-- the tables as they are then (sql/1703 rebuilt both as partitioned tables; a trigger on the partitioned
-- table sees the rows of every partition). On a database migrated only up to a version before 1602 there
-- is no table and no trigger is made.
CREATE OR REPLACE FUNCTION support_call_results_refresh(p_servers text[], p_keys text[]) RETURNS void
    LANGUAGE plpgsql
    AS $fn$
DECLARE
    c record;
BEGIN
    -- one call at a time, by equality: each is an index lookup (support_calls_call) whatever the planner
    -- estimates for the key list; one statement over the whole list was seen to compute the view for every
    -- stored call per key (25 s for one writer batch after an outage, on a database without statistics)
    FOR c IN SELECT DISTINCT a.s, a.k FROM unnest(p_servers, p_keys) AS a(s, k) LOOP
        DELETE FROM support_call_results r WHERE r.server = c.s AND r.call_key = c.k;
        INSERT INTO support_call_results (server, call_key, uniqueid, linkedid, decided_at, tenant_id, tier, action,
                                          reason, authorised, joined_at, queue, outcome, wait_seconds, runs)
        SELECT o.server, COALESCE(o.linkedid, o.uniqueid), o.uniqueid, o.linkedid, o.decided_at, o.tenant_id,
               o.tier, o.action, o.reason, o.authorised, o.joined_at, o.queue, o.outcome, o.wait_seconds, o.runs
        FROM support_call_outcomes o
        WHERE o.server = c.s AND COALESCE(o.linkedid, o.uniqueid) = c.k;
    END LOOP;
END
$fn$;

-- The calls a statement's rows belong to, recomputed under one transaction-scoped advisory lock: a writer
-- that inserts a call's queue event while another inserts its run waits for the other's commit and then
-- recomputes with both (each statement of a VOLATILE function sees what committed before it started).
CREATE OR REPLACE FUNCTION support_call_results_touch() RETURNS trigger
    LANGUAGE plpgsql
    AS $fn$
DECLARE
    servers text[];
    keys text[];
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('pbx-sla support_call_results', 0));
    IF TG_TABLE_NAME = 'support_calls' THEN
        SELECT array_agg(server), array_agg(COALESCE(linkedid, uniqueid)) INTO servers, keys FROM changed;
    ELSE
        SELECT array_agg(s.server), array_agg(COALESCE(s.linkedid, s.uniqueid)) INTO servers, keys
        FROM (SELECT DISTINCT server, uniqueid FROM changed) q
        JOIN support_calls s ON s.uniqueid = q.uniqueid AND (s.server = q.server OR s.server = 'unknown');
    END IF;
    IF keys IS NOT NULL THEN
        PERFORM support_call_results_refresh(servers, keys);
    END IF;
    RETURN NULL;
END
$fn$;

-- TRUNCATE support_calls empties the table; TRUNCATE queue_events recomputes every call (all not queued now).
CREATE OR REPLACE FUNCTION support_call_results_truncate() RETURNS trigger
    LANGUAGE plpgsql
    AS $fn$
BEGIN
    IF TG_TABLE_NAME = 'support_calls' THEN
        TRUNCATE support_call_results;
    ELSE
        PERFORM support_call_results_refresh(array_agg(server), array_agg(call_key)) FROM support_call_results;
    END IF;
    RETURN NULL;
END
$fn$;

-- (Nested IFs: PL/pgSQL plans a condition whole and would fail on the missing table.)
DO $do$
BEGIN
    IF to_regclass('support_call_results') IS NOT NULL THEN
        CREATE OR REPLACE TRIGGER support_calls_results_insert AFTER INSERT ON support_calls
            REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION support_call_results_touch();
        CREATE OR REPLACE TRIGGER support_calls_results_delete AFTER DELETE ON support_calls
            REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION support_call_results_touch();
        CREATE OR REPLACE TRIGGER queue_events_results_insert AFTER INSERT ON queue_events
            REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION support_call_results_touch();
        CREATE OR REPLACE TRIGGER queue_events_results_delete AFTER DELETE ON queue_events
            REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION support_call_results_touch();
        CREATE OR REPLACE TRIGGER support_calls_results_truncate AFTER TRUNCATE ON support_calls
            FOR EACH STATEMENT EXECUTE FUNCTION support_call_results_truncate();
        CREATE OR REPLACE TRIGGER queue_events_results_truncate AFTER TRUNCATE ON queue_events
            FOR EACH STATEMENT EXECUTE FUNCTION support_call_results_truncate();
        -- filled once, on the database that has just made the table with support calls stored
        IF NOT EXISTS (SELECT 1 FROM support_call_results) AND EXISTS (SELECT 1 FROM support_calls) THEN
            PERFORM support_call_results_refresh(array_agg(server), array_agg(COALESCE(linkedid, uniqueid)))
            FROM (SELECT DISTINCT server, linkedid, uniqueid FROM support_calls) c;
        END IF;
    END IF;
END
$do$;

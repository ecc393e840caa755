-- 1602 (issue 16): the support_call_outcomes view kept as a table, so that a month's service level is read
-- from one row per support call instead of being derived per call at report time (the view probes the
-- queue events of every run of every call: 7 s for 50,000 calls; docs/benchmarks.md).
--
-- support_call_results holds exactly what the view gives (sql/repeatable/support_call_outcomes.sql), one
-- row per call (server, call_key = COALESCE(linkedid, uniqueid) of its runs). Statement triggers on
-- support_calls and queue_events recompute the calls a statement touched (inserted or deleted rows) with
-- support_call_results_refresh (sql/repeatable/support_call_results_refresh.sql), so every writer -- the
-- daemon's sinks, the classic script's spool, a test or an import writing SQL -- keeps it exact. The
-- outcome's inputs (keys, times, tenant, decision, queue event kinds and hold times) are never updated in
-- place: erasure and retention change personal fields only, so no UPDATE trigger is needed.
CREATE TABLE support_call_results (
    server        text NOT NULL,
    call_key      text NOT NULL,          -- COALESCE(linkedid, uniqueid) of the call's runs
    uniqueid      text NOT NULL,          -- the first run's
    linkedid      text,
    decided_at    timestamptz NOT NULL,   -- the first run's: the call is in the period it started in
    tenant_id     text,
    tier          text,
    action        text NOT NULL,
    reason        text NOT NULL,
    authorised    boolean NOT NULL,
    joined_at     timestamptz,
    queue         text,
    outcome       text NOT NULL,
    wait_seconds  double precision,
    runs          integer NOT NULL,
    PRIMARY KEY (server, call_key)
);
CREATE INDEX support_call_results_decided ON support_call_results (decided_at) INCLUDE (tenant_id, outcome, wait_seconds);

-- The calls a statement's rows belong to, recomputed under one transaction-scoped advisory lock: a writer
-- that inserts a call's queue event while another inserts its run waits for the other's commit and then
-- recomputes with both (each statement of a VOLATILE function sees what committed before it started).
CREATE FUNCTION support_call_results_touch() RETURNS trigger
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

CREATE TRIGGER support_calls_results_insert AFTER INSERT ON support_calls
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION support_call_results_touch();
CREATE TRIGGER support_calls_results_delete AFTER DELETE ON support_calls
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION support_call_results_touch();
CREATE TRIGGER queue_events_results_insert AFTER INSERT ON queue_events
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION support_call_results_touch();
CREATE TRIGGER queue_events_results_delete AFTER DELETE ON queue_events
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION support_call_results_touch();

CREATE FUNCTION support_call_results_truncate() RETURNS trigger
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
CREATE TRIGGER support_calls_results_truncate AFTER TRUNCATE ON support_calls
    FOR EACH STATEMENT EXECUTE FUNCTION support_call_results_truncate();
CREATE TRIGGER queue_events_results_truncate AFTER TRUNCATE ON queue_events
    FOR EACH STATEMENT EXECUTE FUNCTION support_call_results_truncate();

-- 1602 (issue 16): the support_call_outcomes view kept as a table, so that a month's service level is read
-- from one row per support call instead of being derived per call at report time (the view probes the
-- queue events of every run of every call: 7 s for 50,000 calls; docs/benchmarks.md).
--
-- support_call_results holds exactly what the view gives (sql/repeatable/support_call_outcomes.sql), one
-- row per call (server, call_key = COALESCE(linkedid, uniqueid) of its runs). Statement triggers on
-- support_calls and queue_events recompute the calls a statement touched (inserted or deleted rows), so
-- every writer -- the daemon's sinks, the classic script's spool, a test or an import writing SQL -- keeps
-- it exact. The triggers and their functions live in sql/repeatable/support_call_results_refresh.sql,
-- applied after every versioned file: sql/1703 rebuilds support_calls and queue_events as partitioned
-- tables, and a trigger made here would go with the old tables. The
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

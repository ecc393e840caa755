-- Recompute the given support calls (server, call key = COALESCE(linkedid, uniqueid)) of the table
-- support_call_results (sql/1602) from the view support_call_outcomes: the rows of these calls are
-- replaced by what the view gives now (none for a call whose runs are gone). Called by the triggers of
-- sql/1602 under their advisory lock.
CREATE OR REPLACE FUNCTION support_call_results_refresh(p_servers text[], p_keys text[]) RETURNS void
    LANGUAGE plpgsql
    AS $fn$
BEGIN
    DELETE FROM support_call_results r
    USING (SELECT DISTINCT s, k FROM unnest(p_servers, p_keys) AS a(s, k)) a
    WHERE r.server = a.s AND r.call_key = a.k;
    INSERT INTO support_call_results (server, call_key, uniqueid, linkedid, decided_at, tenant_id, tier, action,
                                      reason, authorised, joined_at, queue, outcome, wait_seconds, runs)
    SELECT o.server, COALESCE(o.linkedid, o.uniqueid), o.uniqueid, o.linkedid, o.decided_at, o.tenant_id, o.tier,
           o.action, o.reason, o.authorised, o.joined_at, o.queue, o.outcome, o.wait_seconds, o.runs
    FROM support_call_outcomes o
    WHERE (o.server, COALESCE(o.linkedid, o.uniqueid)) IN (SELECT DISTINCT s, k FROM unnest(p_servers, p_keys) AS a(s, k));
END
$fn$;

-- Fill the table once, on the database that has just created it (sql/1602) with support calls stored.
-- (Absent on a database migrated only up to an earlier version: nested IFs, as PL/pgSQL plans a condition
-- whole and would fail on the missing table.)
DO $do$
BEGIN
    IF to_regclass('support_call_results') IS NOT NULL THEN
        IF NOT EXISTS (SELECT 1 FROM support_call_results) AND EXISTS (SELECT 1 FROM support_calls) THEN
            PERFORM support_call_results_refresh(array_agg(server), array_agg(COALESCE(linkedid, uniqueid)))
            FROM (SELECT DISTINCT server, linkedid, uniqueid FROM support_calls) c;
        END IF;
    END IF;
END
$do$;

-- The upkeep of trunk_known_days (sql/1705): statement triggers on trunk_observations and ami_sessions
-- delete the kept days a statement's rows can change; the report functions recompute them when next asked.
--
-- An observation at instant t can change its trunk's known state from t until its session ends: every
-- kept day of that trunk from t's UTC day on goes. A session that appears, disappears or changes its
-- login or resync time changes its server's trunks from its login on; one whose end moves (last_seen_at
-- pings of a live session, lost_at) changes them from the earlier of the two ends on.
--
-- Writers of kept days (pbx_sla/store/trunk_days.py) compute and store under the exclusive advisory lock
-- below; these triggers take it shared before deleting, so a day computed from a snapshot that missed a
-- concurrent change is always deleted after it is stored (the change's transaction waits for the writer,
-- or the writer waits for the change's commit and then reads it).
-- This needs the changing transaction to be READ COMMITTED: under REPEATABLE READ the DELETE below uses the
-- transaction's snapshot and misses days stored after it began (pbx-sla writes these tables under READ
-- COMMITTED only; docs/trunks.md says so for hand edits).
CREATE OR REPLACE FUNCTION trunk_known_days_observations() RETURNS trigger
    LANGUAGE plpgsql
    AS $fn$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtextextended('pbx-sla trunk_known_days', 0));
    DELETE FROM trunk_known_days k
     USING (SELECT server, trunk, min(at) AS since FROM changed GROUP BY server, trunk) c
     WHERE k.server = c.server AND k.trunk = c.trunk AND k.day >= (c.since AT TIME ZONE 'UTC')::date;
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION trunk_known_days_session_end(s ami_sessions) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE
    AS $fn$
    -- as pbx_sla.store.trunks._sessions: a live session ends at its last sign of life
    SELECT GREATEST(s.login_at, COALESCE(s.lost_at, s.last_seen_at, s.resynced_at, s.login_at))
$fn$;

CREATE OR REPLACE FUNCTION trunk_known_days_sessions() RETURNS trigger
    LANGUAGE plpgsql
    AS $fn$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtextextended('pbx-sla trunk_known_days', 0));
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM trunk_known_days k
         USING (SELECT COALESCE(n.server, o.server) AS server,
                       min(CASE WHEN n.server IS NULL OR o.server IS NULL
                                  OR o.login_at <> n.login_at OR o.resynced_at IS DISTINCT FROM n.resynced_at
                                THEN LEAST(o.login_at, n.login_at)
                                WHEN trunk_known_days_session_end(o) <> trunk_known_days_session_end(n)
                                THEN LEAST(trunk_known_days_session_end(o), trunk_known_days_session_end(n))
                           END) AS since
                  FROM old_rows o FULL JOIN new_rows n ON n.server = o.server AND n.session_id = o.session_id
                 GROUP BY 1) c
         WHERE c.since IS NOT NULL AND k.server = c.server AND k.day >= (c.since AT TIME ZONE 'UTC')::date;
    ELSE
        DELETE FROM trunk_known_days k
         USING (SELECT server, min(login_at) AS since FROM changed GROUP BY server) c
         WHERE k.server = c.server AND k.day >= (c.since AT TIME ZONE 'UTC')::date;
    END IF;
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION trunk_known_days_truncate() RETURNS trigger
    LANGUAGE plpgsql
    AS $fn$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtextextended('pbx-sla trunk_known_days', 0));
    DELETE FROM trunk_known_days;
    RETURN NULL;
END
$fn$;

DO $do$
BEGIN
    IF to_regclass('trunk_known_days') IS NOT NULL THEN
        CREATE OR REPLACE TRIGGER trunk_observations_known_days_insert AFTER INSERT ON trunk_observations
            REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION trunk_known_days_observations();
        CREATE OR REPLACE TRIGGER trunk_observations_known_days_delete AFTER DELETE ON trunk_observations
            REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION trunk_known_days_observations();
        -- an UPDATE is a delete of the old rows and an insert of the new ones
        CREATE OR REPLACE TRIGGER trunk_observations_known_days_update_old AFTER UPDATE ON trunk_observations
            REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION trunk_known_days_observations();
        CREATE OR REPLACE TRIGGER trunk_observations_known_days_update_new AFTER UPDATE ON trunk_observations
            REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION trunk_known_days_observations();
        CREATE OR REPLACE TRIGGER trunk_observations_known_days_truncate AFTER TRUNCATE ON trunk_observations
            FOR EACH STATEMENT EXECUTE FUNCTION trunk_known_days_truncate();
        CREATE OR REPLACE TRIGGER ami_sessions_known_days_insert AFTER INSERT ON ami_sessions
            REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION trunk_known_days_sessions();
        CREATE OR REPLACE TRIGGER ami_sessions_known_days_delete AFTER DELETE ON ami_sessions
            REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION trunk_known_days_sessions();
        CREATE OR REPLACE TRIGGER ami_sessions_known_days_update AFTER UPDATE ON ami_sessions
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION trunk_known_days_sessions();
        CREATE OR REPLACE TRIGGER ami_sessions_known_days_truncate AFTER TRUNCATE ON ami_sessions
            FOR EACH STATEMENT EXECUTE FUNCTION trunk_known_days_truncate();
    END IF;
END
$do$;

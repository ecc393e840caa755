-- The upkeep of qos_legs.call_tenant_id / call_tenant_known (sql/1710): each QoS leg keeps the tenant of
-- its call (calls (server, call_key) = the leg's (server, linkedid)) while it is known to be current.
--
-- The window: a leg is linked here only to a call that started in [at - 960 h, at + 24 h] (the 40 days
-- before the leg's hangup, and a day after for clocks), the window the QoS leg writer looks the call up in
-- (pbx_sla/store/qos.py). Fixed hours, not days: the same instants whatever the session's time zone, so the
-- writer, the triggers and the fill agree on every leg. A leg outside the window of its call stays not
-- known and is looked up by the readers (the view qos_leg_figures), as every leg was before sql/1710.
--
-- Row triggers on calls (every writer of calls holds the call bucket locks, pbx_sla/store/calls.py, and so
-- does the QoS leg writer while it looks calls up: a leg is never stored with a tenant a concurrent change
-- of its call would miss):
--   * a call inserted: its legs in the window get its tenant (NULL: not attributed) and are known;
--   * a call updated with another tenant, start or key: the legs in the old row's window are forgotten
--     (not known), then those in the new row's window get its tenant;
--   * a call deleted: the legs in its window are forgotten. A call whose start moves to another month is
--     moved by PostgreSQL as a delete and an insert: both fire.
-- TRUNCATE of calls forgets every leg that has a linkedid. Retention's DROP of a month of calls fires nothing: a leg whose call
-- was dropped keeps the tenant the call had (docs/retention.md).
CREATE OR REPLACE FUNCTION qos_legs_call_tenant() RETURNS trigger
    LANGUAGE plpgsql
    AS $fn$
BEGIN
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND (OLD.started_at <> NEW.started_at OR OLD.server <> NEW.server
                                                 OR OLD.call_key <> NEW.call_key)) THEN
        UPDATE qos_legs q SET call_tenant_id = NULL, call_tenant_known = false
         WHERE q.server = OLD.server AND q.linkedid = OLD.call_key AND q.call_tenant_known
           AND q.at >= OLD.started_at - interval '24 hours' AND q.at < OLD.started_at + interval '960 hours';
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        UPDATE qos_legs q SET call_tenant_id = NEW.tenant_id, call_tenant_known = true
         WHERE q.server = NEW.server AND q.linkedid = NEW.call_key
           AND q.at >= NEW.started_at - interval '24 hours' AND q.at < NEW.started_at + interval '960 hours'
           AND (NOT q.call_tenant_known OR q.call_tenant_id IS DISTINCT FROM NEW.tenant_id);
    END IF;
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION qos_legs_call_tenant_truncate() RETURNS trigger
    LANGUAGE plpgsql
    AS $fn$
BEGIN
    UPDATE qos_legs SET call_tenant_id = NULL, call_tenant_known = false WHERE call_tenant_known AND linkedid IS NOT NULL;
    RETURN NULL;
END
$fn$;

DO $do$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns
               WHERE table_name = 'qos_legs' AND column_name = 'call_tenant_known'
                 AND table_schema = current_schema()) THEN
        CREATE OR REPLACE TRIGGER calls_qos_legs_tenant_insert AFTER INSERT ON calls
            FOR EACH ROW EXECUTE FUNCTION qos_legs_call_tenant();
        CREATE OR REPLACE TRIGGER calls_qos_legs_tenant_update AFTER UPDATE ON calls
            FOR EACH ROW
            WHEN (OLD.tenant_id IS DISTINCT FROM NEW.tenant_id OR OLD.started_at <> NEW.started_at
                  OR OLD.server <> NEW.server OR OLD.call_key <> NEW.call_key)
            EXECUTE FUNCTION qos_legs_call_tenant();
        CREATE OR REPLACE TRIGGER calls_qos_legs_tenant_delete AFTER DELETE ON calls
            FOR EACH ROW EXECUTE FUNCTION qos_legs_call_tenant();
        CREATE OR REPLACE TRIGGER calls_qos_legs_tenant_truncate AFTER TRUNCATE ON calls
            FOR EACH STATEMENT EXECUTE FUNCTION qos_legs_call_tenant_truncate();
    END IF;
END
$do$;

-- The legs that hung up in [p_from, p_to) and lack their MOS or their call's tenant (stored before sql/1710,
-- or before their call): a measured leg gets its MOS (qos_leg_mos); a leg not known gets its call's tenant
-- when the call started within the window, or none when it has no linkedid, and the others stay not known.
-- Returns how many legs it changed. The caller holds the call bucket locks of every server
-- (pbx_sla/store/qos.py fill_legs).
DO $do$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns
               WHERE table_schema = current_schema() AND table_name = 'qos_legs'
                 AND column_name = 'call_tenant_known') THEN
        EXECUTE $ddl$
CREATE OR REPLACE FUNCTION qos_legs_fill(p_from timestamptz, p_to timestamptz) RETURNS bigint
    LANGUAGE sql
    AS $fn$
    WITH found AS (
        SELECT q.server, q.uniqueid, q.at,
               CASE WHEN q.mos IS NULL AND q.received > 0
                    THEN qos_leg_mos(q.received, q.lost, q.jitter_ms, q.rtt_ms, q.codec) ELSE q.mos END AS mos,
               CASE WHEN q.call_tenant_known THEN q.call_tenant_id ELSE c.tenant_id END AS tenant_id,
               q.call_tenant_known OR q.linkedid IS NULL OR c.hit IS NOT NULL AS known
        FROM qos_legs q
        LEFT JOIN LATERAL (
            SELECT true AS hit, c.tenant_id FROM calls c
            WHERE NOT q.call_tenant_known AND c.server = q.server AND c.call_key = q.linkedid
              AND c.started_at > q.at - interval '960 hours' AND c.started_at <= q.at + interval '24 hours'
            LIMIT 1) c ON true
        WHERE q.at >= p_from AND q.at < p_to AND (NOT q.call_tenant_known OR (q.mos IS NULL AND q.received > 0))
    ),
    done AS (
        UPDATE qos_legs q SET mos = f.mos, call_tenant_id = f.tenant_id, call_tenant_known = f.known
        FROM found f
        WHERE q.server = f.server AND q.uniqueid = f.uniqueid AND q.at = f.at AND q.at >= p_from AND q.at < p_to
          AND (q.mos IS DISTINCT FROM f.mos OR q.call_tenant_known <> f.known)
        RETURNING 1
    )
    SELECT count(*) FROM done
$fn$
        $ddl$;
    END IF;
END
$do$;

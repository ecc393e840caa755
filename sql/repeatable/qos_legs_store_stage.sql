-- The QoS legs staged in qos_legs_stage (this session's temporary table, see pbx_sla/store/qos.py), stored
-- once each with their MOS and, when their call is stored, its tenant; in ONE statement the daemon's
-- writer sends per batch after its COPY (it was three round trips: the calls locks, the stage's CREATE IF
-- NOT EXISTS and TRUNCATE, the INSERT). Returns how many legs were new.
--
-- p_lock_keys: the calls writers' advisory locks of the legs' servers ('<server>:<bucket>', already in the
-- one order of pbx_sla/store/calls.py:lock_calls), taken first, in that order, under p_lock_namespace: no
-- call of those servers changes between the look-up of a leg's call and the commit (a change waits, and
-- its trigger, sql/repeatable/qos_legs_call_tenant.sql, then sees the leg).
--
-- A leg gets its call's tenant when the call started within the window of sql/1710 (the 960 hours before
-- the leg's hangup, or 24 h after): known (NULL: not attributed); a leg without linkedid has no call: known,
-- NULL; otherwise not known (the call comes later: its insert trigger sets the leg). Idempotent:
-- ON CONFLICT (server, uniqueid, at) DO NOTHING (a replayed Hangup changes nothing).
--
-- The staged rows are deleted by the same statement (the table is ON COMMIT DELETE ROWS as well): a second
-- batch in one transaction finds the stage empty, so the writer neither truncates it per batch nor
-- creates it more than once per connection.
CREATE OR REPLACE FUNCTION qos_legs_store_stage(p_lock_namespace integer, p_lock_keys text[]) RETURNS bigint
    LANGUAGE plpgsql
    AS $fn$
DECLARE
    stored bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock_namespace, hashtext(k))
    FROM unnest(p_lock_keys) WITH ORDINALITY AS u(k, i)
    ORDER BY i;
    WITH s AS (DELETE FROM qos_legs_stage RETURNING *)
    INSERT INTO qos_legs (server, uniqueid, linkedid, channel, endpoint, at, codec, received, lost, sent, jitter_ms,
                          jitter_max_ms, jitter_avg_ms, far_lost, far_jitter_ms, rtt_ms, rtt_max_ms, asterisk_mes,
                          mos, call_tenant_id, call_tenant_known)
    SELECT s.server, s.uniqueid, s.linkedid, s.channel, s.endpoint, s.at, s.codec, s.received, s.lost, s.sent,
           s.jitter_ms, s.jitter_max_ms, s.jitter_avg_ms, s.far_lost, s.far_jitter_ms, s.rtt_ms, s.rtt_max_ms,
           s.asterisk_mes, qos_leg_mos(s.received, s.lost, s.jitter_ms, s.rtt_ms, s.codec),
           c.tenant_id, s.linkedid IS NULL OR c.found IS NOT NULL
    FROM s
    LEFT JOIN LATERAL (
        SELECT true AS found, c.tenant_id FROM calls c
        WHERE c.server = s.server AND c.call_key = s.linkedid
          AND c.started_at > s.at - interval '960 hours' AND c.started_at <= s.at + interval '24 hours'
        LIMIT 1) c ON true
    ON CONFLICT (server, uniqueid, at) DO NOTHING;
    GET DIAGNOSTICS stored = ROW_COUNT;
    RETURN stored;
END
$fn$;

-- 0025: one statement stores a batch of legs and brings their calls and the rollup up to date
-- (docs/calls.md, "Import speed").
--
-- * cdr_legs is keyed by its fingerprint alone. The fingerprint already hashes the server name
--   (pbx_sla.domain.cdr.fingerprint_hex), so (server, fingerprint) was no more unique, and its B-tree
--   cost every leg insert about twice the uuid-only one (bench/results/cdr.md).
-- * cdr_store_stage(source) replaces "insert legs, then calls_refresh(keys)": the legs it inserts come
--   back from INSERT ... RETURNING and feed the call computation directly; only calls that already
--   exist (a leg of them stored earlier) read their older legs back. Same rules and results as
--   calls_refresh (tests compare storage with pbx_sla.domain.calls.build_calls).
-- * Calls new to the database are INSERTed and the others UPDATEd, instead of one INSERT ... ON CONFLICT
--   DO UPDATE: the bucket lock guarantees no one else inserts them meanwhile, and the speculative
--   insertion's extra index probe per call was measurable.
-- * calls_pending (0024) goes: an import no longer splits storing legs from recomputing calls across
--   two transactions, so there is nothing left pending. Calls an interrupted import of the 0024 code
--   left there are recomputed here first.
--
-- Callers hold the per-(server, call bucket) advisory locks of pbx_sla/store/calls.py before calling,
-- and fill the session's temporary table cdr_legs_stage (same transaction). `cdr import` stages COPY
-- text in which the empty string stands for NULL, so a NULL text column reads as '' here.

ALTER TABLE cdr_legs DROP CONSTRAINT cdr_legs_pkey;
ALTER TABLE cdr_legs ADD PRIMARY KEY (fingerprint);

SELECT calls_refresh(array_agg(server), array_agg(call_key))
FROM (SELECT DISTINCT server, call_key FROM calls_pending) p
HAVING count(*) > 0;
DROP TABLE calls_pending;

CREATE FUNCTION cdr_store_stage(p_source text) RETURNS bigint
    LANGUAGE plpgsql
    SET work_mem = '64MB'
    AS $fn$
DECLARE
    n bigint;
BEGIN
    EXECUTE $q$
WITH ins AS (
    INSERT INTO cdr_legs (server, fingerprint, call_key, source, accountcode, src, dst, dcontext, clid, channel,
                          dstchannel, lastapp, lastdata, start_at, answer_at, end_at, duration, billsec,
                          disposition, amaflags, uniqueid, userfield, peeraccount, linkedid, sequence, caller_e164,
                          dialled_e164, src_endpoint, dst_endpoint)
    SELECT server, fingerprint, call_key, $1, coalesce(accountcode, ''), coalesce(src, ''), coalesce(dst, ''),
           coalesce(dcontext, ''), coalesce(clid, ''), coalesce(channel, ''), coalesce(dstchannel, ''),
           coalesce(lastapp, ''), coalesce(lastdata, ''), to_timestamp(start_epoch), to_timestamp(answer_epoch),
           to_timestamp(end_epoch), duration, billsec, disposition, coalesce(amaflags, ''), coalesce(uniqueid, ''),
           coalesce(userfield, ''), coalesce(peeraccount, ''), coalesce(linkedid, ''), sequence, caller_e164,
           dialled_e164, src_endpoint, dst_endpoint
    FROM cdr_legs_stage
    ON CONFLICT (fingerprint) DO NOTHING
    RETURNING server, call_key, linkedid, start_at, end_at, billsec, disposition, accountcode, caller_e164,
              dialled_e164, src_endpoint, dst_endpoint, sequence, uniqueid, fingerprint
),
affected AS (
    SELECT DISTINCT server, call_key FROM ins
),
old AS (
    SELECT c.server, c.call_key, c.tenant_id, c.day, c.disposition, c.billsec
    FROM affected a JOIN calls c ON c.server = a.server AND c.call_key = a.call_key
),
all_legs AS (
    SELECT * FROM ins
    UNION ALL
    SELECT l.server, l.call_key, l.linkedid, l.start_at, l.end_at, l.billsec, l.disposition, l.accountcode,
           l.caller_e164, l.dialled_e164, l.src_endpoint, l.dst_endpoint, l.sequence, l.uniqueid, l.fingerprint
    FROM old o JOIN cdr_legs l ON l.server = o.server AND l.call_key = o.call_key
),
zone AS (
    SELECT coalesce((SELECT timezone FROM catalogue_settings), 'UTC') AS tz
),
legs AS (
    SELECT l.server, l.call_key, l.linkedid, l.start_at, l.end_at, l.billsec, l.disposition,
           l.caller_e164, l.dialled_e164,
           ta.tenant_id AS by_account, td.tenant_id AS by_did, rq.tenant_id AS by_phone,
           ts.name AS src_trunk, tt.name AS dst_trunk,
           row_number() OVER (PARTITION BY l.server, l.call_key
                              ORDER BY l.start_at, coalesce(l.sequence, 2147483648), l.uniqueid COLLATE "C",
                                       l.fingerprint::text COLLATE "C") AS n
    FROM all_legs l
    LEFT JOIN tenant_accountcodes ta ON l.accountcode <> '' AND ta.accountcode = l.accountcode AND ta.active
    LEFT JOIN tenant_dids td ON td.did = l.dialled_e164 AND td.active
    LEFT JOIN requester_phones rp ON rp.phone = l.caller_e164 AND rp.active
    LEFT JOIN requesters rq ON rq.id = rp.requester_id AND rq.active
    LEFT JOIN trunks ts ON ts.server = l.server AND ts.name = l.src_endpoint AND ts.active AND ts.in_catalogue
    LEFT JOIN trunks tt ON tt.server = l.server AND tt.name = l.dst_endpoint AND tt.active AND tt.in_catalogue
),
agg AS (
    SELECT server, call_key, count(*) AS legs, min(start_at) AS started_at, max(end_at) AS ended_at,
           sum(billsec) AS billsec, min(cdr_disposition_rank(disposition)) AS best,
           min(linkedid) FILTER (WHERE n = 1) AS linkedid,
           min(caller_e164) FILTER (WHERE n = 1) AS caller_e164,
           min(dialled_e164) FILTER (WHERE n = 1) AS dialled_e164,
           bool_or(src_trunk IS NOT NULL) FILTER (WHERE n = 1) AS first_src_trunk,
           bool_or(dst_trunk IS NOT NULL) FILTER (WHERE n = 1) AS first_dst_trunk,
           substr(min(to_char(n, 'FM0000000000') || by_account COLLATE "C"), 11) AS by_account,
           substr(min(to_char(n, 'FM0000000000') || by_did COLLATE "C"), 11) AS by_did,
           substr(min(to_char(n, 'FM0000000000') || by_phone COLLATE "C"), 11) AS by_phone,
           substr(min(to_char(n, 'FM0000000000') || coalesce(src_trunk, dst_trunk) COLLATE "C"), 11) AS trunk
    FROM legs
    GROUP BY server, call_key
),
upd AS (
    UPDATE calls AS c SET
        linkedid = g.linkedid, legs = g.legs, started_at = g.started_at, ended_at = g.ended_at,
        day = (g.started_at AT TIME ZONE z.tz)::date,
        disposition = (ARRAY['ANSWERED', 'BUSY', 'NO ANSWER', 'FAILED', 'CONGESTION'])[g.best],
        billsec = g.billsec, caller_e164 = g.caller_e164, dialled_e164 = g.dialled_e164,
        direction = CASE WHEN g.first_src_trunk THEN 'inbound' WHEN g.first_dst_trunk THEN 'outbound' ELSE 'internal' END,
        trunk = g.trunk, tenant_id = coalesce(g.by_account, g.by_did, g.by_phone),
        attributed_by = CASE WHEN g.by_account IS NOT NULL THEN 'accountcode'
                WHEN g.by_did IS NOT NULL THEN 'did'
                WHEN g.by_phone IS NOT NULL THEN 'requester' END,
        updated_at = now()
    FROM agg g CROSS JOIN zone z
    WHERE c.server = g.server AND c.call_key = g.call_key
      AND EXISTS (SELECT 1 FROM old o WHERE o.server = g.server AND o.call_key = g.call_key)
    RETURNING c.tenant_id, c.day, c.disposition, c.billsec
),
ins_calls AS (
    INSERT INTO calls AS c (server, call_key, linkedid, legs, started_at, ended_at, day, disposition, billsec,
                            caller_e164, dialled_e164, direction, trunk, tenant_id, attributed_by)
    SELECT g.server, g.call_key, g.linkedid, g.legs, g.started_at, g.ended_at,
           (g.started_at AT TIME ZONE z.tz)::date,
           (ARRAY['ANSWERED', 'BUSY', 'NO ANSWER', 'FAILED', 'CONGESTION'])[g.best],
           g.billsec, g.caller_e164, g.dialled_e164,
           CASE WHEN g.first_src_trunk THEN 'inbound' WHEN g.first_dst_trunk THEN 'outbound' ELSE 'internal' END,
           g.trunk,
           coalesce(g.by_account, g.by_did, g.by_phone),
           CASE WHEN g.by_account IS NOT NULL THEN 'accountcode'
                WHEN g.by_did IS NOT NULL THEN 'did'
                WHEN g.by_phone IS NOT NULL THEN 'requester' END
    FROM agg g CROSS JOIN zone z
    WHERE NOT EXISTS (SELECT 1 FROM old o WHERE o.server = g.server AND o.call_key = g.call_key)
    ORDER BY g.server, g.call_key
    RETURNING c.tenant_id, c.day, c.disposition, c.billsec
),
new AS (SELECT * FROM upd UNION ALL SELECT * FROM ins_calls),
delta AS (
    SELECT tenant_id, day,
           sum(s) AS calls,
           coalesce(sum(s) FILTER (WHERE disposition = 'ANSWERED'), 0) AS answered,
           coalesce(sum(s) FILTER (WHERE disposition = 'BUSY'), 0) AS busy,
           coalesce(sum(s) FILTER (WHERE disposition = 'NO ANSWER'), 0) AS no_answer,
           coalesce(sum(s) FILTER (WHERE disposition = 'FAILED'), 0) AS failed,
           coalesce(sum(s) FILTER (WHERE disposition = 'CONGESTION'), 0) AS congestion,
           sum(s * billsec) AS billsec
    FROM (SELECT tenant_id, day, disposition, billsec, -1 AS s FROM old
          UNION ALL
          SELECT tenant_id, day, disposition, billsec, 1 AS s FROM new) x
    GROUP BY tenant_id, day
),
roll AS (
INSERT INTO usage_daily AS u (tenant_id, day, calls, answered, busy, no_answer, failed, congestion, billsec)
SELECT tenant_id, day, calls, answered, busy, no_answer, failed, congestion, billsec
FROM delta
WHERE (calls, answered, busy, no_answer, failed, congestion, billsec) <> (0, 0, 0, 0, 0, 0, 0)
ORDER BY tenant_id, day
ON CONFLICT ON CONSTRAINT usage_daily_key DO UPDATE SET
    calls = u.calls + excluded.calls, answered = u.answered + excluded.answered, busy = u.busy + excluded.busy,
    no_answer = u.no_answer + excluded.no_answer, failed = u.failed + excluded.failed,
    congestion = u.congestion + excluded.congestion, billsec = u.billsec + excluded.billsec
)
SELECT count(*) FROM ins
$q$ INTO n USING p_source;
    RETURN n;
END
$fn$;

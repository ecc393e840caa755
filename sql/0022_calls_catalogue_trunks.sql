-- 0022: a call's direction and trunk count only the catalogue's trunks (docs/calls.md).
--
-- The trunks table also holds every PJSIP endpoint the AMI collector saw qualified (in_catalogue =
-- false): agents' phones too. 0021 treated those as trunks, so a queue call answered by an agent came
-- out "outbound" over trunk "agent1" (found by tests/e2e/test_calls.py). Same function as 0021
-- otherwise.

CREATE OR REPLACE FUNCTION calls_refresh(p_servers text[], p_keys text[]) RETURNS void
    LANGUAGE plpgsql
    SET work_mem = '64MB'
    AS $fn$
BEGIN
    EXECUTE $q$
WITH affected AS (
    SELECT DISTINCT s AS server, k AS call_key FROM unnest($1::text[], $2::text[]) AS a(s, k)
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
    FROM affected a
    JOIN cdr_legs l ON l.server = a.server AND l.call_key = a.call_key
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
old AS (
    SELECT c.tenant_id, c.day, c.disposition, c.billsec
    FROM calls c JOIN affected a ON a.server = c.server AND a.call_key = c.call_key
),
new AS (
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
    ORDER BY g.server, g.call_key
    ON CONFLICT (server, call_key) DO UPDATE SET
        linkedid = excluded.linkedid, legs = excluded.legs, started_at = excluded.started_at,
        ended_at = excluded.ended_at, day = excluded.day, disposition = excluded.disposition,
        billsec = excluded.billsec, caller_e164 = excluded.caller_e164, dialled_e164 = excluded.dialled_e164,
        direction = excluded.direction, trunk = excluded.trunk, tenant_id = excluded.tenant_id,
        attributed_by = excluded.attributed_by, updated_at = now()
    RETURNING c.tenant_id, c.day, c.disposition, c.billsec
),
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
)
INSERT INTO usage_daily AS u (tenant_id, day, calls, answered, busy, no_answer, failed, congestion, billsec)
SELECT tenant_id, day, calls, answered, busy, no_answer, failed, congestion, billsec
FROM delta
WHERE (calls, answered, busy, no_answer, failed, congestion, billsec) <> (0, 0, 0, 0, 0, 0, 0)
ORDER BY tenant_id, day
ON CONFLICT ON CONSTRAINT usage_daily_key DO UPDATE SET
    calls = u.calls + excluded.calls, answered = u.answered + excluded.answered, busy = u.busy + excluded.busy,
    no_answer = u.no_answer + excluded.no_answer, failed = u.failed + excluded.failed,
    congestion = u.congestion + excluded.congestion, billsec = u.billsec + excluded.billsec
$q$ USING p_servers, p_keys;
END
$fn$;

-- The rule that turns legs into calls (docs/calls.md), written once: the statement tail that both
-- cdr_store_stage (every write, live AMI and `cdr import`) and calls_refresh (re-attribution) run.
-- The tests compare its results with the definitions written plainly in tests/calls_model.py.
-- Billable seconds: the sum of billsec over the call's ANSWERED legs only (a NO ANSWER leg can carry
-- billsec > 0 when Queue or an IVR answered the inbound channel).
--
-- The head before it defines:
--   affected(server, call_key): the calls to recompute;
--   unlisted_legs(server, call_key, linkedid, start_at, end_at, billsec, disposition, accountcode,
--     caller_e164, dialled_e164, src_endpoint, dst_endpoint, sequence, uniqueid, fingerprint): the legs of
--     those calls that no call row lists (the legs just inserted, or all legs of a key without a row).
-- The tail reads the affected calls' stored rows (old) and, through their leg_fingerprints, their listed
-- legs (by cdr_legs' primary key (fingerprint, start_at): a call's legs start at or after the call's
-- started_at, so only the partitions from that month on are probed); UPDATEs the calls that have a row, INSERTs the others (callers hold
-- the call bucket locks, so no one else inserts them meanwhile), and moves usage_daily by the difference
-- between old and new rows. A call is found by (server, call_key) in every partition of calls (its
-- start is not known before its legs are read) and updated by its full key (server, call_key, started_at):
-- a new started_at moves the row to its month's partition. It ends with the CTE "roll"; the caller adds the final SELECT.
--
-- One grouping pass: the legs are numbered once per call (window), the catalogue is looked up per leg
-- with LEFT JOINs on primary keys, and every per-call figure comes from a single GROUP BY:
--   * first-leg fields: FILTER (WHERE n = 1);
--   * "the first leg (in order) for which a rule finds a tenant": min() over '<n as 10 digits><tenant>'
--     (C collation), then the tenant part; min() ignores the legs where the rule found nothing.
-- Only the catalogue's trunks (in_catalogue) count for direction and trunk: the trunks table also holds
-- every endpoint the AMI collector saw qualified, agents' phones too.
CREATE OR REPLACE FUNCTION calls_compute_sql() RETURNS text
    LANGUAGE sql IMMUTABLE
    AS $body$ SELECT $sql$
old AS (
    SELECT c.server, c.call_key, c.started_at, c.tenant_id, c.day, c.disposition, c.billsec, c.leg_fingerprints
    FROM affected a JOIN calls c ON c.server = a.server AND c.call_key = a.call_key
),
all_legs AS (
    SELECT * FROM unlisted_legs
    UNION ALL
    SELECT l.server, l.call_key, l.linkedid, l.start_at, l.end_at, l.billsec, l.disposition, l.accountcode,
           l.caller_e164, l.dialled_e164, l.src_endpoint, l.dst_endpoint, l.sequence, l.uniqueid, l.fingerprint
    FROM old o CROSS JOIN LATERAL unnest(o.leg_fingerprints) f(fingerprint)
    JOIN cdr_legs l ON l.fingerprint = f.fingerprint AND l.start_at >= o.started_at
),
zone AS (
    SELECT coalesce((SELECT timezone FROM catalogue_settings), 'UTC') AS tz
),
legs AS (
    SELECT l.server, l.call_key, l.linkedid, l.start_at, l.end_at, l.billsec, l.disposition,
           l.caller_e164, l.dialled_e164, l.fingerprint,
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
           coalesce(sum(billsec) FILTER (WHERE disposition = 'ANSWERED'), 0) AS billsec,
           min(cdr_disposition_rank(disposition)) AS best,
           array_agg(fingerprint) AS fingerprints,
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
        leg_fingerprints = g.fingerprints, updated_at = now()
    FROM agg g JOIN old o ON o.server = g.server AND o.call_key = g.call_key CROSS JOIN zone z
    WHERE c.server = o.server AND c.call_key = o.call_key AND c.started_at = o.started_at
    RETURNING c.tenant_id, c.day, c.disposition, c.billsec
),
ins_calls AS (
    INSERT INTO calls AS c (server, call_key, linkedid, legs, started_at, ended_at, day, disposition, billsec,
                            caller_e164, dialled_e164, direction, trunk, tenant_id, attributed_by,
                            leg_fingerprints)
    SELECT g.server, g.call_key, g.linkedid, g.legs, g.started_at, g.ended_at,
           (g.started_at AT TIME ZONE z.tz)::date,
           (ARRAY['ANSWERED', 'BUSY', 'NO ANSWER', 'FAILED', 'CONGESTION'])[g.best],
           g.billsec, g.caller_e164, g.dialled_e164,
           CASE WHEN g.first_src_trunk THEN 'inbound' WHEN g.first_dst_trunk THEN 'outbound' ELSE 'internal' END,
           g.trunk,
           coalesce(g.by_account, g.by_did, g.by_phone),
           CASE WHEN g.by_account IS NOT NULL THEN 'accountcode'
                WHEN g.by_did IS NOT NULL THEN 'did'
                WHEN g.by_phone IS NOT NULL THEN 'requester' END,
           g.fingerprints
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
$sql$ $body$;

-- 0026: a call lists its legs' fingerprints; one computation of calls for both writers; a first
-- import inserts its legs without the conflict check (docs/calls.md, "Import speed").
--
-- * calls.leg_fingerprints holds the fingerprints of every leg of the call (the legs whose
--   (server, call_key) is the call's). The older legs of a call that gains a leg are read through it,
--   by cdr_legs' primary key, so the cdr_legs_call index on (server, call_key) goes: maintaining it cost
--   every leg insert a second B-tree insertion of two text keys (bench/results/cdr.md).
-- * calls_compute_sql() is the one text of "calls and rollup from the legs of some calls": the
--   statement tail both cdr_store_stage (every write) and calls_refresh (re-attribution) run. They differ
--   only in how they find the legs and the calls' previous rows. 0022 and 0025 each had their own copy.
-- * cdr_store_stage(source, fresh): with fresh = true the legs are first inserted without ON CONFLICT,
--   inside a subtransaction. That skips the speculative insertion for every leg. The first leg that is
--   already stored (or twice in the batch) raises unique_violation. The subtransaction is then rolled
--   back and the batch is stored by the general statement, which gives the same result.
--
-- Callers hold the per-(server, call bucket) advisory locks of pbx_sla/store/calls.py, as before.
--
-- A writer of the previous version (a daemon still running, a `cdr import` started before the upgrade)
-- must not run its cdr_store_stage while this migration changes the tables: it could deadlock with it,
-- or run the 0025 statement against the new columns and store calls without their legs' fingerprints.
-- Every writer's transaction inserts into `servers` before it stores anything (store/calls.py), so this
-- lock first waits for the writers under way to commit, then makes new ones wait until this commits;
-- they then call the new function.

LOCK TABLE servers IN SHARE ROW EXCLUSIVE MODE;

ALTER TABLE calls ADD COLUMN leg_fingerprints uuid[] NOT NULL DEFAULT '{}';

UPDATE calls c SET leg_fingerprints = l.fingerprints
FROM (SELECT server, call_key, array_agg(fingerprint) AS fingerprints FROM cdr_legs GROUP BY server, call_key) l
WHERE l.server = c.server AND l.call_key = c.call_key;

DROP INDEX cdr_legs_call;

-- The statement tail that recomputes calls. The head before it defines:
--   affected(server, call_key): the calls to recompute;
--   unlisted_legs(server, call_key, linkedid, start_at, end_at, billsec, disposition, accountcode,
--     caller_e164, dialled_e164, src_endpoint, dst_endpoint, sequence, uniqueid, fingerprint): the legs of
--     those calls that no call row lists (the legs just inserted, or all legs of a key without a row).
-- The tail reads the affected calls' stored rows (old) and, through their leg_fingerprints, their listed
-- legs; UPDATEs the calls that have a row, INSERTs the others, and moves usage_daily by the difference
-- between old and new rows. It ends with the CTE "roll"; the caller adds the final SELECT.
CREATE FUNCTION calls_compute_sql() RETURNS text
    LANGUAGE sql IMMUTABLE
    AS $body$ SELECT $sql$
old AS (
    SELECT c.server, c.call_key, c.tenant_id, c.day, c.disposition, c.billsec, c.leg_fingerprints
    FROM affected a JOIN calls c ON c.server = a.server AND c.call_key = a.call_key
),
all_legs AS (
    SELECT * FROM unlisted_legs
    UNION ALL
    SELECT l.server, l.call_key, l.linkedid, l.start_at, l.end_at, l.billsec, l.disposition, l.accountcode,
           l.caller_e164, l.dialled_e164, l.src_endpoint, l.dst_endpoint, l.sequence, l.uniqueid, l.fingerprint
    FROM old o CROSS JOIN LATERAL unnest(o.leg_fingerprints) f(fingerprint)
    JOIN cdr_legs l ON l.fingerprint = f.fingerprint
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
           sum(billsec) AS billsec, min(cdr_disposition_rank(disposition)) AS best,
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
    FROM agg g CROSS JOIN zone z
    WHERE c.server = g.server AND c.call_key = g.call_key
      AND EXISTS (SELECT 1 FROM old o WHERE o.server = g.server AND o.call_key = g.call_key)
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

-- The legs staged in cdr_legs_stage (this session's temporary table), stored once each, and their calls
-- and the rollup brought up to date; returns the number of legs new to the database.
-- fresh: try the insert without conflict handling first (for batches expected to be all new).
DROP FUNCTION cdr_store_stage(text);
CREATE FUNCTION cdr_store_stage(p_source text, p_fresh boolean DEFAULT false) RETURNS bigint
    LANGUAGE plpgsql
    SET work_mem = '64MB'
    AS $fn$
DECLARE
    head constant text := $q$
WITH unlisted_legs AS (  -- the legs inserted now: no call row lists them yet
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
    %s
    RETURNING server, call_key, linkedid, start_at, end_at, billsec, disposition, accountcode, caller_e164,
              dialled_e164, src_endpoint, dst_endpoint, sequence, uniqueid, fingerprint
),
affected AS (
    SELECT DISTINCT server, call_key FROM unlisted_legs
),$q$;
    tail constant text := calls_compute_sql() || ' SELECT count(*) FROM unlisted_legs';
    n bigint;
BEGIN
    IF p_fresh THEN
        BEGIN
            EXECUTE format(head, '') || tail INTO n USING p_source;
            RETURN n;
        EXCEPTION WHEN unique_violation THEN
            NULL;  -- a leg already stored, or twice in the batch: the general statement below
        END;
    END IF;
    EXECUTE format(head, 'ON CONFLICT (fingerprint) DO NOTHING') || tail INTO n USING p_source;
    RETURN n;
END
$fn$;

-- Recompute the given calls from all of their legs (re-attribution after a catalogue change). The legs
-- of a call that has a row are read through its leg_fingerprints; those of a key without a row (a full
-- rebuild after emptying calls) by scanning cdr_legs, which is read only when there is such a key.
CREATE OR REPLACE FUNCTION calls_refresh(p_servers text[], p_keys text[]) RETURNS void
    LANGUAGE plpgsql
    SET work_mem = '64MB'
    AS $fn$
BEGIN
    EXECUTE $q$
WITH affected AS (
    SELECT DISTINCT s AS server, k AS call_key FROM unnest($1::text[], $2::text[]) AS a(s, k)
),
rowless AS (
    SELECT a.server, a.call_key FROM affected a
    WHERE NOT EXISTS (SELECT 1 FROM calls c WHERE c.server = a.server AND c.call_key = a.call_key)
),
unlisted_legs AS (
    SELECT l.server, l.call_key, l.linkedid, l.start_at, l.end_at, l.billsec, l.disposition, l.accountcode,
           l.caller_e164, l.dialled_e164, l.src_endpoint, l.dst_endpoint, l.sequence, l.uniqueid, l.fingerprint
    FROM cdr_legs l JOIN rowless r ON r.server = l.server AND r.call_key = l.call_key
    WHERE EXISTS (SELECT 1 FROM rowless)
),$q$ || calls_compute_sql() || ' SELECT 1' USING p_servers, p_keys;
END
$fn$;

-- Recompute the given calls from all of their legs (re-attribution after a catalogue change, or a full
-- rebuild after emptying calls), with the same rule as every write (calls_compute_sql). The legs of a
-- call that has a row are read through its leg_fingerprints; those of a key without a row by scanning
-- cdr_legs, which is read only when there is such a key. Callers hold the call bucket locks.
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

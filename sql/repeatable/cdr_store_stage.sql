-- The legs staged in cdr_legs_stage (this session's temporary table, see pbx_sla/store/calls.py), stored
-- once each, and their calls and the rollup brought up to date in the same statement; returns the number
-- of legs new to the database. The one write path of live AMI CDRs and `cdr import`.
--
-- The legs it inserts come back from INSERT ... RETURNING and feed the call computation
-- (calls_compute_sql) directly. `cdr import` stages COPY text in which the empty string stands for NULL,
-- so a NULL text column reads as '' here.
-- fresh = true: the legs are first inserted without ON CONFLICT, inside a subtransaction, which skips
-- the speculative insertion for every leg (batches expected to be all new). Legs already stored are left out by
-- the look-up below either way; a leg twice in the batch raises unique_violation; the subtransaction is rolled back and the batch is
-- stored by the general statement, with the same result.
--
-- cdr_legs is partitioned by month of start_at (sql/1703), so its key is (fingerprint, start_at): a leg
-- already stored is looked up by its fingerprint within 27 hours of its start (more than any two time
-- zones differ: a Master.csv read again under another zone has the same fingerprints, other starts), one
-- index probe per staged leg in at most two partitions (a scalar subquery: a join could be planned as a
-- hash join over all of cdr_legs, the staging table having no statistics). Such a leg is not inserted
-- again; `cdr import` then finds it with other times and refuses the batch (pbx_sla/store/calls.py).
--
-- A leg that starts before the end of the newest month retention dropped from cdr_legs (history_dropped,
-- sql/1704) is not stored again: its call was counted in usage_daily when it was first stored.
--
-- Callers hold the per-(server, call bucket) advisory locks of pbx_sla/store/calls.py and fill
-- cdr_legs_stage in the same transaction. PL/pgSQL EXECUTE: the statement is planned knowing the batch;
-- work_mem is raised so that the sort of a large batch stays in memory.
CREATE OR REPLACE FUNCTION cdr_store_stage(p_source text, p_fresh boolean DEFAULT false) RETURNS bigint
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
    FROM cdr_legs_stage s
    WHERE (SELECT 1 FROM cdr_legs l
           WHERE l.fingerprint = s.fingerprint AND l.start_at >= to_timestamp(s.start_epoch) - interval '27 hours'
             AND l.start_at <= to_timestamp(s.start_epoch) + interval '27 hours'
           LIMIT 1) IS NULL
      AND to_timestamp(s.start_epoch) >= $2
    %s
    RETURNING server, call_key, linkedid, start_at, end_at, billsec, disposition, accountcode, caller_e164,
              dialled_e164, src_endpoint, dst_endpoint, sequence, uniqueid, fingerprint
),
affected AS (
    SELECT DISTINCT server, call_key FROM unlisted_legs
),$q$;
    tail constant text := calls_compute_sql() || ' SELECT count(*) FROM unlisted_legs';
    n bigint;
    horizon timestamptz := '-infinity';
BEGIN
    IF to_regclass('history_dropped') IS NOT NULL THEN  -- sql/1704; a database at an earlier version has none
        EXECUTE $h$SELECT coalesce(max(to_at), '-infinity') FROM history_dropped WHERE parent = 'cdr_legs'$h$
            INTO horizon;
    END IF;
    IF p_fresh THEN
        BEGIN
            EXECUTE format(head, '') || tail INTO n USING p_source, horizon;
            RETURN n;
        EXCEPTION WHEN unique_violation THEN
            NULL;  -- a leg already stored, or twice in the batch: the general statement below
        END;
    END IF;
    EXECUTE format(head, 'ON CONFLICT (fingerprint, start_at) DO NOTHING') || tail INTO n USING p_source, horizon;
    RETURN n;
END
$fn$;

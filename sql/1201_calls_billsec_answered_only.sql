-- Issue 12: billable seconds count only legs whose disposition is ANSWERED (a NO ANSWER leg can carry
-- billsec > 0 when Queue or an IVR answered the inbound channel). The rule itself is in
-- repeatable/calls_compute_sql.sql; this recomputes what calls and usage_daily already hold.
UPDATE calls c SET billsec = coalesce((
    SELECT sum(l.billsec) FILTER (WHERE l.disposition = 'ANSWERED')
    FROM cdr_legs l WHERE l.fingerprint = ANY (c.leg_fingerprints)), 0);

UPDATE usage_daily u SET billsec = coalesce((
    SELECT sum(c.billsec) FROM calls c
    WHERE c.tenant_id IS NOT DISTINCT FROM u.tenant_id AND c.day = u.day), 0);

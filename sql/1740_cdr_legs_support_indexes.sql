-- 1740 (issue 17): partial indexes on cdr_legs for the three support-request reads of pbx_sla/store/requests.py,
-- which read every leg of the history on every report that derives a tenant's requests from the start
-- (sequential scans of all month partitions: ~8 s of an `sla` report with 25 M legs; docs/benchmarks.md):
--
-- * queue_member_endpoints: the endpoints that answered a Queue leg. Only the legs the query can return are
--   indexed, and the query skips from one endpoint to the next (a recursive CTE: one descent per distinct
--   endpoint and partition) instead of reading every answered queue leg.
-- * agi_failure_facts: legs in the support line's contexts of requester numbers (both lists come from the
--   catalogue, so neither can be a partial index's predicate): by (dcontext, caller_e164).
-- * staff_calls: answered legs placed by the staff endpoints: by (src_endpoint, start_at).
--
-- The queries name the predicates' IS NOT NULL (implied by their `= ANY ($n)`, which the planner does not prove
-- for a parameter array). Indexes on the partitioned table are made on every month partition (and on the partitions made later).
-- The first holds only answered Queue legs; the other two an entry per leg with a channel id and a caller
-- number, and per answered leg with an endpoint: their cost on the leg writers is measured in
-- docs/benchmarks.md. Building them reads every partition once (minutes for a large history; the migration
-- holds the table's lock meanwhile).
CREATE INDEX cdr_legs_queue_members ON cdr_legs (dst_endpoint)
    WHERE lastapp = 'Queue' AND disposition = 'ANSWERED' AND dst_endpoint <> '';
CREATE INDEX cdr_legs_support_line ON cdr_legs (dcontext, caller_e164)
    WHERE uniqueid <> '' AND caller_e164 IS NOT NULL;
CREATE INDEX cdr_legs_staff_answered ON cdr_legs (src_endpoint, start_at)
    WHERE disposition = 'ANSWERED' AND src_endpoint IS NOT NULL;

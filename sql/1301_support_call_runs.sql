-- 1301 (issue 12): every run of the support AGI is kept. A caller sent back to the support line runs the
-- AGI again on the same channel; keyed by (server, uniqueid) only the first run was stored and the second
-- decision was lost. A run is now (server, uniqueid, decided_at): a record replayed after an outage
-- carries its decided_at, so replays stay idempotent. Calls are grouped by (server, linkedid) in the view
-- support_call_outcomes (sql/repeatable/support_call_outcomes.sql).
ALTER TABLE support_calls DROP CONSTRAINT support_calls_pkey;
ALTER TABLE support_calls ADD PRIMARY KEY (server, uniqueid, decided_at);
CREATE INDEX support_calls_call ON support_calls (server, (COALESCE(linkedid, uniqueid)), decided_at);

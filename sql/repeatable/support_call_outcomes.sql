-- Outcomes of support calls, from support_calls and queue_events (sql/0030_support.sql, sql/1301).
--
-- support_call_runs: one row per AGI run. A run owns the queue events of its channel from its decision to
-- the next run's decision on the same channel (the first run also owns earlier ones, as before runs were
-- kept), so a caller sent back to the support line does not have one queue visit counted twice.
--   answered    an agent answered (AgentConnect); wait = its HoldTime
--   abandoned   joined a queue, never answered: the caller hung up (QueueCallerAbandon, wait = its
--               HoldTime) or the queue gave up (QueueCallerLeave: timeout, empty; wait = leave - join)
--   waiting     joined, nothing after yet (the call is still in the queue, or events were lost)
--   not-queued  never entered a queue (closed, hung up before, routed elsewhere)
-- A run recorded with server 'unknown' joins the queue events of its uniqueid on any server.
CREATE OR REPLACE VIEW support_call_runs AS
SELECT s.server, s.uniqueid, s.linkedid, s.decided_at, s.tenant_id, s.tier, s.action, s.reason,
       s.authorised, j.at AS joined_at, j.queue,
       CASE WHEN c.at IS NOT NULL THEN 'answered'
            WHEN a.at IS NOT NULL OR l.at IS NOT NULL THEN 'abandoned'
            WHEN j.at IS NOT NULL THEN 'waiting'
            ELSE 'not-queued' END AS outcome,
       CASE WHEN c.at IS NOT NULL THEN COALESCE(c.hold_time::double precision,
                                                extract(epoch FROM c.at - j.at)::double precision)
            WHEN a.at IS NOT NULL THEN COALESCE(a.hold_time::double precision,
                                                extract(epoch FROM a.at - j.at)::double precision)
            WHEN l.at IS NOT NULL THEN extract(epoch FROM l.at - j.at)::double precision
       END AS wait_seconds
FROM support_calls s
CROSS JOIN LATERAL (
    SELECT CASE WHEN EXISTS (SELECT 1 FROM support_calls p
                             WHERE p.server = s.server AND p.uniqueid = s.uniqueid AND p.decided_at < s.decided_at)
                THEN s.decided_at ELSE '-infinity'::timestamptz END AS since,
           COALESCE((SELECT min(n.decided_at) FROM support_calls n
                     WHERE n.server = s.server AND n.uniqueid = s.uniqueid AND n.decided_at > s.decided_at),
                    'infinity'::timestamptz) AS until) w
LEFT JOIN LATERAL (
    SELECT q.at, q.queue FROM queue_events q
    WHERE q.uniqueid = s.uniqueid AND (q.server = s.server OR s.server = 'unknown')
      AND q.event = 'QueueCallerJoin' AND q.at >= w.since AND q.at < w.until
    ORDER BY q.at LIMIT 1) j ON true
LEFT JOIN LATERAL (
    SELECT q.at, q.hold_time FROM queue_events q
    WHERE q.uniqueid = s.uniqueid AND (q.server = s.server OR s.server = 'unknown')
      AND q.event = 'AgentConnect' AND q.at >= w.since AND q.at < w.until
    ORDER BY q.at LIMIT 1) c ON true
LEFT JOIN LATERAL (
    SELECT q.at, q.hold_time FROM queue_events q
    WHERE q.uniqueid = s.uniqueid AND (q.server = s.server OR s.server = 'unknown')
      AND q.event = 'QueueCallerAbandon' AND q.at >= w.since AND q.at < w.until
    ORDER BY q.at LIMIT 1) a ON true
LEFT JOIN LATERAL (
    SELECT q.at FROM queue_events q
    WHERE q.uniqueid = s.uniqueid AND (q.server = s.server OR s.server = 'unknown')
      AND q.event = 'QueueCallerLeave' AND j.at IS NOT NULL AND q.at >= w.since AND q.at < w.until
    ORDER BY q.at DESC LIMIT 1) l ON true;

-- support_call_outcomes: one row per support CALL, counted once however many runs it had (docs/support-line.md
-- "Several runs per call"). A call is (server, linkedid) — a run whose linkedid could not be read counts
-- under its uniqueid, which is the linkedid of the caller's inbound channel. The row carries the first
-- run's server, uniqueid, linkedid and decided_at (the call is in the period it started in), the tenant of
-- its first run with one, the last run's tier/action/reason/authorised (where it was finally routed), and:
--   outcome  answered if any run was answered; else the last queued run's (abandoned / waiting);
--            else not-queued
--   wait     answered: the waits of every run up to and including the first answered one (the caller waited
--            all of it); abandoned or waiting: the waits of all runs
--   runs     how many AGI runs the call had
CREATE OR REPLACE VIEW support_call_outcomes AS
SELECT f.server, f.uniqueid, f.linkedid, f.decided_at, COALESCE(f.tenant_id, agg.tenant_id) AS tenant_id,
       agg.tier, agg.action, agg.reason, agg.authorised, agg.joined_at, agg.queue, agg.outcome,
       agg.wait_seconds, agg.runs
FROM support_calls f
CROSS JOIN LATERAL (
    SELECT count(*)::integer AS runs,
           (array_agg(x.tenant_id ORDER BY x.decided_at) FILTER (WHERE x.tenant_id IS NOT NULL))[1] AS tenant_id,
           (array_agg(x.tier ORDER BY x.decided_at DESC))[1] AS tier,
           (array_agg(x.action ORDER BY x.decided_at DESC))[1] AS action,
           (array_agg(x.reason ORDER BY x.decided_at DESC))[1] AS reason,
           (array_agg(x.authorised ORDER BY x.decided_at DESC))[1] AS authorised,
           min(x.joined_at) AS joined_at,
           CASE WHEN bool_or(x.outcome = 'answered')
                THEN (array_agg(x.queue ORDER BY x.decided_at) FILTER (WHERE x.outcome = 'answered'))[1]
                ELSE (array_agg(x.queue ORDER BY x.decided_at DESC) FILTER (WHERE x.joined_at IS NOT NULL))[1]
           END AS queue,
           CASE WHEN bool_or(x.outcome = 'answered') THEN 'answered'
                ELSE COALESCE((array_agg(x.outcome ORDER BY x.decided_at DESC)
                               FILTER (WHERE x.joined_at IS NOT NULL))[1], 'not-queued')
           END AS outcome,
           CASE WHEN bool_or(x.outcome = 'answered')
                THEN sum(x.wait_seconds) FILTER (WHERE x.decided_at <= x.answered_at)
                WHEN bool_or(x.joined_at IS NOT NULL) THEN sum(x.wait_seconds)
           END AS wait_seconds
    FROM (SELECT r.*, min(r.decided_at) FILTER (WHERE r.outcome = 'answered') OVER () AS answered_at
          FROM support_call_runs r
          WHERE r.server = f.server AND COALESCE(r.linkedid, r.uniqueid) = COALESCE(f.linkedid, f.uniqueid)) x
) agg
WHERE NOT EXISTS (
    SELECT 1 FROM support_calls e
    WHERE e.server = f.server AND COALESCE(e.linkedid, e.uniqueid) = COALESCE(f.linkedid, f.uniqueid)
      AND (e.decided_at, e.uniqueid) < (f.decided_at, f.uniqueid));

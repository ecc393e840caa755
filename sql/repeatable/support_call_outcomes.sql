-- One outcome per support call:
--   answered    an agent answered (AgentConnect); wait = its HoldTime
--   abandoned   joined a queue, never answered: the caller hung up (QueueCallerAbandon, wait = its
--               HoldTime) or the queue gave up (QueueCallerLeave: timeout, empty; wait = leave - join)
--   waiting     joined, nothing after yet (the call is still in the queue, or events were lost)
--   not-queued  never entered a queue (closed, hung up before, routed elsewhere)
-- A support call recorded with server 'unknown' joins the queue events of its uniqueid on any server.
CREATE OR REPLACE VIEW support_call_outcomes AS
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
LEFT JOIN LATERAL (
    SELECT q.at, q.queue FROM queue_events q
    WHERE q.uniqueid = s.uniqueid AND (q.server = s.server OR s.server = 'unknown')
      AND q.event = 'QueueCallerJoin'
    ORDER BY q.at LIMIT 1) j ON true
LEFT JOIN LATERAL (
    SELECT q.at, q.hold_time FROM queue_events q
    WHERE q.uniqueid = s.uniqueid AND (q.server = s.server OR s.server = 'unknown')
      AND q.event = 'AgentConnect'
    ORDER BY q.at LIMIT 1) c ON true
LEFT JOIN LATERAL (
    SELECT q.at, q.hold_time FROM queue_events q
    WHERE q.uniqueid = s.uniqueid AND (q.server = s.server OR s.server = 'unknown')
      AND q.event = 'QueueCallerAbandon'
    ORDER BY q.at LIMIT 1) a ON true
LEFT JOIN LATERAL (
    SELECT q.at FROM queue_events q
    WHERE q.uniqueid = s.uniqueid AND (q.server = s.server OR s.server = 'unknown')
      AND q.event = 'QueueCallerLeave' AND j.at IS NOT NULL
    ORDER BY q.at DESC LIMIT 1) l ON true;

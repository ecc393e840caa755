-- 0030: the support line. One row per call that reached the support AGI (FastAGI server or classic
-- script), the queue events of those calls (AMI, class agent), and a view joining them into one
-- outcome per support call. Written by pbx_sla/store/support.py; read by the `sla` report.

CREATE TABLE support_calls (
    server        text NOT NULL,           -- [[asterisk]] name, agi_arg_2, or 'unknown'
    uniqueid      text NOT NULL,           -- the caller channel's uniqueid (agi_uniqueid)
    linkedid      text,                    -- CHANNEL(linkedid); NULL when the channel was gone
    decided_at    timestamptz NOT NULL,
    caller        text NOT NULL DEFAULT '',   -- caller ID as received (sanitised)
    caller_e164   text,
    caller_name   text NOT NULL DEFAULT '',
    channel       text NOT NULL DEFAULT '',
    dialled       text,                    -- E.164 when the dialled number is one
    tenant_id     text,                    -- no FK: records outlive catalogue changes
    requester     text,
    authorised    boolean NOT NULL,
    in_hours      boolean NOT NULL,
    tier          text,
    action        text NOT NULL CHECK (action IN ('queue', 'closed', 'general', 'fallback', 'hangup')),
    reason        text NOT NULL,
    queue         text,
    priority      integer NOT NULL DEFAULT 0,
    latency_ms    double precision,        -- our time to decide and set the variables (PIN entry excluded)
    pin_attempts  integer NOT NULL DEFAULT 0,
    via           text NOT NULL DEFAULT 'fastagi' CHECK (via IN ('fastagi', 'classic')),
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (server, uniqueid)
);
CREATE INDEX support_calls_tenant_decided ON support_calls (tenant_id, decided_at);
CREATE INDEX support_calls_decided ON support_calls (decided_at);
CREATE INDEX support_calls_uniqueid ON support_calls (uniqueid);

CREATE TABLE queue_events (
    server     text NOT NULL,
    uniqueid   text NOT NULL,              -- the caller channel (same as support_calls.uniqueid)
    linkedid   text,
    event      text NOT NULL CHECK (event IN ('QueueCallerJoin', 'AgentConnect', 'QueueCallerAbandon',
                                              'AgentComplete', 'QueueCallerLeave')),
    at         timestamptz NOT NULL,       -- the event's Timestamp (timestampevents = yes)
    queue      text NOT NULL DEFAULT '',
    hold_time  integer,                    -- seconds (AgentConnect, QueueCallerAbandon, AgentComplete)
    ring_time  integer,
    talk_time  integer,
    position   integer,
    member     text,
    reason     text,                       -- AgentComplete Reason (caller | agent | transfer)
    UNIQUE (server, uniqueid, event, at)
);
CREATE INDEX queue_events_uniqueid ON queue_events (uniqueid);

-- One outcome per support call:
--   answered    an agent answered (AgentConnect); wait = its HoldTime
--   abandoned   joined a queue, never answered: the caller hung up (QueueCallerAbandon, wait = its
--               HoldTime) or the queue gave up (QueueCallerLeave: timeout, empty; wait = leave - join)
--   waiting     joined, nothing after yet (the call is still in the queue, or events were lost)
--   not-queued  never entered a queue (closed, hung up before, routed elsewhere)
-- A support call recorded with server 'unknown' joins the queue events of its uniqueid on any server.
CREATE VIEW support_call_outcomes AS
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

-- 0030 (baseline): the support line. One row per call that reached the support AGI (FastAGI server or
-- classic script) and the queue events of those calls (AMI, class agent); the view support_call_outcomes
-- (sql/repeatable/) joins them into one outcome per support call. Written by pbx_sla/store/support.py;
-- read by the `sla` report.

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

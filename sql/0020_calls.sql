-- 0020 (baseline): CDR legs, calls and the per-(tenant, day) usage rollup (docs/calls.md).
--
-- Legs are stored once per fingerprint: the fingerprint is computed in Python from fields that an AMI
-- `Cdr` event and every Master.csv layout both carry (server, uniqueid, channels, destination, times as UTC
-- instants, duration, billsec, disposition), so the same leg from either source collides; it already
-- hashes the server name, so it is the key alone (a (server, fingerprint) B-tree cost every leg insert
-- about twice as much).
-- A call is one row per (server, call_key), call_key = linkedid, else uniqueid, else 'leg:<fingerprint>';
-- it lists its legs' fingerprints, through which a call that gains a leg reads its older legs (by
-- cdr_legs' primary key: no index on cdr_legs (server, call_key) to maintain on every leg insert).
-- Every write stores its legs and recomputes their calls and the usage_daily rollup in one statement
-- (cdr_store_stage, sql/repeatable/), so both are always exact.
-- No index on calls (day, tenant_id): reports read usage_daily, writers find calls by their key.

CREATE TABLE cdr_legs (
    server        text NOT NULL,
    fingerprint   uuid NOT NULL,
    call_key      text NOT NULL,
    source        text NOT NULL CHECK (source IN ('ami', 'csv')),   -- who delivered it first
    accountcode   text NOT NULL DEFAULT '',
    src           text NOT NULL DEFAULT '',
    dst           text NOT NULL DEFAULT '',
    dcontext      text NOT NULL DEFAULT '',
    clid          text NOT NULL DEFAULT '',
    channel       text NOT NULL DEFAULT '',
    dstchannel    text NOT NULL DEFAULT '',
    lastapp       text NOT NULL DEFAULT '',
    lastdata      text NOT NULL DEFAULT '',
    start_at      timestamptz NOT NULL,
    answer_at     timestamptz,
    end_at        timestamptz NOT NULL,
    duration      integer NOT NULL CHECK (duration >= 0),
    billsec       integer NOT NULL CHECK (billsec >= 0),
    disposition   text NOT NULL CHECK (disposition IN ('ANSWERED', 'BUSY', 'NO ANSWER', 'FAILED', 'CONGESTION')),
    amaflags      text NOT NULL DEFAULT '',
    uniqueid      text NOT NULL DEFAULT '',
    userfield     text NOT NULL DEFAULT '',
    peeraccount   text NOT NULL DEFAULT '',
    linkedid      text NOT NULL DEFAULT '',
    sequence      integer,
    caller_e164   text,            -- src (else clid) normalised with the catalogue's country code
    dialled_e164  text,            -- dst normalised likewise; NULL for extensions such as 's' or '101'
    src_endpoint  text,            -- PJSIP/trunk-a-00000001 -> trunk-a
    dst_endpoint  text,
    received_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (fingerprint)
);

CREATE TABLE calls (
    server         text NOT NULL,
    call_key       text NOT NULL,
    linkedid       text NOT NULL DEFAULT '',
    legs           integer NOT NULL,
    started_at     timestamptz NOT NULL,
    ended_at       timestamptz NOT NULL,
    day            date NOT NULL,     -- of started_at in the catalogue's zone when written
    disposition    text NOT NULL,
    billsec        bigint NOT NULL,
    caller_e164    text,
    dialled_e164   text,
    direction      text NOT NULL CHECK (direction IN ('inbound', 'outbound', 'internal')),
    trunk          text,
    tenant_id      text,              -- NULL: no rule found a tenant (reported as unattributed)
    attributed_by  text CHECK (attributed_by IN ('accountcode', 'did', 'requester')),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    leg_fingerprints uuid[] NOT NULL DEFAULT '{}',   -- of every leg with this (server, call_key)
    PRIMARY KEY (server, call_key)
);
CREATE INDEX calls_unattributed ON calls (server, call_key) WHERE tenant_id IS NULL;

-- One row per (tenant, day); tenant NULL = unattributed calls. Moved by every call computation.
CREATE TABLE usage_daily (
    tenant_id   text,
    day         date NOT NULL,
    calls       bigint NOT NULL DEFAULT 0,
    answered    bigint NOT NULL DEFAULT 0,
    busy        bigint NOT NULL DEFAULT 0,
    no_answer   bigint NOT NULL DEFAULT 0,
    failed      bigint NOT NULL DEFAULT 0,
    congestion  bigint NOT NULL DEFAULT 0,
    billsec     bigint NOT NULL DEFAULT 0,
    CONSTRAINT usage_daily_key UNIQUE NULLS NOT DISTINCT (tenant_id, day)
);
CREATE INDEX usage_daily_day ON usage_daily (day);

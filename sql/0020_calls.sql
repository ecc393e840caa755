-- 0020: CDR legs, calls and the per-(tenant, day) usage rollup (docs/calls.md).
--
-- Legs are stored once per (server, fingerprint): the fingerprint is computed in Python from fields that
-- an AMI `Cdr` event and every Master.csv layout both carry (uniqueid, channels, destination, times as
-- UTC instants, duration, billsec, disposition), so the same leg from either source collides.
-- A call is one row per (server, call_key), call_key = linkedid, else uniqueid, else 'leg:<fingerprint>'.
-- Every leg insert recomputes its calls from all their legs (calls_refresh, same transaction) and applies
-- the difference to usage_daily, so both are always exact.

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
    PRIMARY KEY (server, fingerprint)
);
CREATE INDEX cdr_legs_call ON cdr_legs (server, call_key);

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
    PRIMARY KEY (server, call_key)
);
CREATE INDEX calls_day_tenant ON calls (day, tenant_id);
CREATE INDEX calls_unattributed ON calls (server, call_key) WHERE tenant_id IS NULL;

-- One row per (tenant, day); tenant NULL = unattributed calls. Maintained by calls_refresh.
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

CREATE FUNCTION cdr_disposition_rank(d text) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT array_position(ARRAY['ANSWERED', 'BUSY', 'NO ANSWER', 'FAILED', 'CONGESTION'], d) $$;

-- Recompute the given calls from all of their legs and move usage_daily by the difference.
-- Callers serialise per server (pg_advisory_xact_lock, see pbx_sla/store/calls.py) *before* inserting
-- legs, so this statement's snapshot sees every committed leg of these calls.
CREATE FUNCTION calls_refresh(p_servers text[], p_keys text[]) RETURNS void
    LANGUAGE sql
    AS $$
WITH affected AS (
    SELECT DISTINCT s AS server, k AS call_key FROM unnest(p_servers, p_keys) AS a(s, k)
),
zone AS (
    SELECT coalesce((SELECT timezone FROM catalogue_settings), 'UTC') AS tz
),
legs AS (
    SELECT l.server, l.call_key, l.linkedid, l.start_at, l.end_at, l.billsec, l.disposition, l.accountcode,
           l.caller_e164, l.dialled_e164, l.src_endpoint, l.dst_endpoint,
           row_number() OVER (PARTITION BY l.server, l.call_key
                              ORDER BY l.start_at, coalesce(l.sequence, 2147483648), l.uniqueid COLLATE "C",
                                       l.fingerprint::text COLLATE "C") AS n
    FROM cdr_legs l JOIN affected a ON a.server = l.server AND a.call_key = l.call_key
),
agg AS (
    SELECT server, call_key, count(*) AS legs, min(start_at) AS started_at, max(end_at) AS ended_at,
           sum(billsec) AS billsec, min(cdr_disposition_rank(disposition)) AS best
    FROM legs GROUP BY server, call_key
),
by_account AS (
    SELECT DISTINCT ON (l.server, l.call_key) l.server, l.call_key, t.tenant_id
    FROM legs l JOIN tenant_accountcodes t ON t.accountcode = l.accountcode AND t.active
    WHERE l.accountcode <> ''
    ORDER BY l.server, l.call_key, l.n
),
by_did AS (
    SELECT DISTINCT ON (l.server, l.call_key) l.server, l.call_key, d.tenant_id
    FROM legs l JOIN tenant_dids d ON d.did = l.dialled_e164 AND d.active
    ORDER BY l.server, l.call_key, l.n
),
by_phone AS (
    SELECT DISTINCT ON (l.server, l.call_key) l.server, l.call_key, r.tenant_id
    FROM legs l
    JOIN requester_phones p ON p.phone = l.caller_e164 AND p.active
    JOIN requesters r ON r.id = p.requester_id AND r.active
    ORDER BY l.server, l.call_key, l.n
),
by_trunk AS (
    SELECT DISTINCT ON (l.server, l.call_key) l.server, l.call_key, coalesce(ts.name, td.name) AS trunk
    FROM legs l
    LEFT JOIN trunks ts ON ts.server = l.server AND ts.name = l.src_endpoint AND ts.active
    LEFT JOIN trunks td ON td.server = l.server AND td.name = l.dst_endpoint AND td.active
    WHERE coalesce(ts.name, td.name) IS NOT NULL
    ORDER BY l.server, l.call_key, l.n
),
old AS (
    SELECT c.tenant_id, c.day, c.disposition, c.billsec
    FROM calls c JOIN affected a ON a.server = c.server AND a.call_key = c.call_key
),
new AS (
    INSERT INTO calls AS c (server, call_key, linkedid, legs, started_at, ended_at, day, disposition, billsec,
                            caller_e164, dialled_e164, direction, trunk, tenant_id, attributed_by)
    SELECT g.server, g.call_key, f.linkedid, g.legs, g.started_at, g.ended_at,
           (g.started_at AT TIME ZONE z.tz)::date,
           (ARRAY['ANSWERED', 'BUSY', 'NO ANSWER', 'FAILED', 'CONGESTION'])[g.best],
           g.billsec, f.caller_e164, f.dialled_e164,
           CASE WHEN EXISTS (SELECT 1 FROM trunks t
                             WHERE t.server = f.server AND t.name = f.src_endpoint AND t.active) THEN 'inbound'
                WHEN EXISTS (SELECT 1 FROM trunks t
                             WHERE t.server = f.server AND t.name = f.dst_endpoint AND t.active) THEN 'outbound'
                ELSE 'internal' END,
           bt.trunk,
           coalesce(ba.tenant_id, bd.tenant_id, bp.tenant_id),
           CASE WHEN ba.tenant_id IS NOT NULL THEN 'accountcode'
                WHEN bd.tenant_id IS NOT NULL THEN 'did'
                WHEN bp.tenant_id IS NOT NULL THEN 'requester' END
    FROM agg g
    JOIN legs f ON f.server = g.server AND f.call_key = g.call_key AND f.n = 1
    CROSS JOIN zone z
    LEFT JOIN by_account ba ON ba.server = g.server AND ba.call_key = g.call_key
    LEFT JOIN by_did bd ON bd.server = g.server AND bd.call_key = g.call_key
    LEFT JOIN by_phone bp ON bp.server = g.server AND bp.call_key = g.call_key
    LEFT JOIN by_trunk bt ON bt.server = g.server AND bt.call_key = g.call_key
    ORDER BY g.server, g.call_key
    ON CONFLICT (server, call_key) DO UPDATE SET
        linkedid = excluded.linkedid, legs = excluded.legs, started_at = excluded.started_at,
        ended_at = excluded.ended_at, day = excluded.day, disposition = excluded.disposition,
        billsec = excluded.billsec, caller_e164 = excluded.caller_e164, dialled_e164 = excluded.dialled_e164,
        direction = excluded.direction, trunk = excluded.trunk, tenant_id = excluded.tenant_id,
        attributed_by = excluded.attributed_by, updated_at = now()
    RETURNING c.tenant_id, c.day, c.disposition, c.billsec
),
delta AS (
    SELECT tenant_id, day,
           sum(s) AS calls,
           coalesce(sum(s) FILTER (WHERE disposition = 'ANSWERED'), 0) AS answered,
           coalesce(sum(s) FILTER (WHERE disposition = 'BUSY'), 0) AS busy,
           coalesce(sum(s) FILTER (WHERE disposition = 'NO ANSWER'), 0) AS no_answer,
           coalesce(sum(s) FILTER (WHERE disposition = 'FAILED'), 0) AS failed,
           coalesce(sum(s) FILTER (WHERE disposition = 'CONGESTION'), 0) AS congestion,
           sum(s * billsec) AS billsec
    FROM (SELECT tenant_id, day, disposition, billsec, -1 AS s FROM old
          UNION ALL
          SELECT tenant_id, day, disposition, billsec, 1 AS s FROM new) x
    GROUP BY tenant_id, day
)
INSERT INTO usage_daily AS u (tenant_id, day, calls, answered, busy, no_answer, failed, congestion, billsec)
SELECT tenant_id, day, calls, answered, busy, no_answer, failed, congestion, billsec
FROM delta
WHERE (calls, answered, busy, no_answer, failed, congestion, billsec) <> (0, 0, 0, 0, 0, 0, 0)
ORDER BY tenant_id, day
ON CONFLICT ON CONSTRAINT usage_daily_key DO UPDATE SET
    calls = u.calls + excluded.calls, answered = u.answered + excluded.answered, busy = u.busy + excluded.busy,
    no_answer = u.no_answer + excluded.no_answer, failed = u.failed + excluded.failed,
    congestion = u.congestion + excluded.congestion, billsec = u.billsec + excluded.billsec
$$;

-- Re-attribute the calls no rule attributed (after a catalogue change added account codes, DIDs or
-- requesters). Already attributed calls keep their tenant: a bill once issued does not move.
-- Returns the number of calls examined. Callers hold the same per-server locks as writers.
CREATE FUNCTION calls_reattribute_unattributed() RETURNS bigint
    LANGUAGE plpgsql
    AS $$
DECLARE
    n bigint;
    s text[];
    k text[];
BEGIN
    SELECT count(*), array_agg(server), array_agg(call_key) INTO n, s, k FROM calls WHERE tenant_id IS NULL;
    IF n > 0 THEN
        PERFORM calls_refresh(s, k);
    END IF;
    RETURN n;
END
$$;

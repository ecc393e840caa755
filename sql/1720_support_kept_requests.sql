-- 1720 (issue 16): each tenant's settled support requests, kept, so that the `sla` report (and the dashboard's
-- overview and tenant page, which read it) derives and assesses only the requests after a tenant's cut instead
-- of its whole history on every view (2.0 s for 50,000 support calls a month; docs/benchmarks.md).
--
-- support_kept_tenants.cut is an instant at which the tenant had no open request: the derivation
-- (pbx_sla.domain.requests.derive_requests) of the facts before it is complete and closed, and the facts from
-- it on derive the same requests with or without the earlier ones (pbx_sla.domain.requests.idle_cut).
-- Kept for a tenant: its requests opened before the cut (all reacted before it) assessed against the
-- catalogue revision revision_id (deadline, business seconds, met/breached: they never change for a reacted
-- request), its support time used before the cut per local day (talk seconds of answered support calls and
-- callbacks), and the support-line channels among those facts that had no support-call record (the AGI
-- failed). staff and line_contexts are the support staff endpoints (the catalogue's and the queues' members)
-- and the support line's dialplan contexts the rows were derived with.
--
-- Rows are written by pbx_sla/store/kept_requests.py (the report functions, on first use and when a cut is
-- old) and deleted by statement triggers (sql/repeatable/support_kept_invalidate.sql) whenever a change to
-- support_calls, queue_events or cdr_legs can reach a fact before a tenant's cut. A kept tenant whose
-- revision_id is not the current catalogue revision is ignored and derived again.
CREATE TABLE support_kept_tenants (
    tenant_id     text        PRIMARY KEY,
    revision_id   bigint      NOT NULL,
    cut           timestamptz NOT NULL,
    staff         text[]      NOT NULL,
    line_contexts text[]      NOT NULL,
    computed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX support_kept_tenants_cut ON support_kept_tenants (cut);

CREATE TABLE support_kept_requests (
    tenant_id        text             NOT NULL REFERENCES support_kept_tenants ON DELETE CASCADE,
    opened_at        timestamptz      NOT NULL,
    server           text             NOT NULL,   -- the server of the call that opened the request
    calls            integer          NOT NULL,
    reacted_at       timestamptz      NOT NULL,
    reacted_by       text             NOT NULL CHECK (reacted_by IN ('answer', 'callback')),
    deadline         timestamptz,                  -- NULL: the tier has no reaction target
    business_seconds double precision NOT NULL,   -- open seconds of the tenant's calendar, opening to reaction
    status           text             NOT NULL CHECK (status IN ('met', 'breached'))
);
CREATE INDEX support_kept_requests_tenant ON support_kept_requests (tenant_id, opened_at);

CREATE TABLE support_kept_uses (
    tenant_id text   NOT NULL REFERENCES support_kept_tenants ON DELETE CASCADE,
    day       date   NOT NULL,                    -- local day in the catalogue's zone
    seconds   bigint NOT NULL,
    PRIMARY KEY (tenant_id, day)
);

CREATE TABLE support_kept_agi_channels (
    tenant_id text NOT NULL REFERENCES support_kept_tenants ON DELETE CASCADE,
    uniqueid  text NOT NULL
);
CREATE INDEX support_kept_agi_channels_tenant ON support_kept_agi_channels (tenant_id);
CREATE INDEX support_kept_agi_channels_uniqueid ON support_kept_agi_channels (uniqueid);

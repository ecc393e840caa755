-- 1710 (issue 17): each QoS leg keeps its MOS and its call's tenant, so the `sla` report sums a month's
-- trunk legs per tenant in SQL instead of looking each leg's call up and computing its MOS in Python
-- (250,000 legs in a month of 4.2 M calls).
--
--   mos  the leg's MOS (pbx_sla.domain.qos.leg_mos), computed when the leg is stored by the SQL function
--        qos_leg_mos (sql/repeatable/qos_leg_figures.sql; the same operations as the Python, compared bit
--        for bit by the tests); a fact of the leg's stored figures and codec, which are never updated.
--        NULL: the leg received nothing (no MOS), or it was stored before this migration (the readers then
--        compute it, as before).
--
-- A leg's tenant is not a fact of the leg: it is the tenant its call (calls (server, call_key) = the leg's
-- (server, linkedid)) is attributed to, which the catalogue decides and can change (re-attribution after a
-- catalogue change, a late leg that makes another leg the call's first). So it is kept, not frozen:
--
--   call_tenant_known  true: call_tenant_id is the current tenant_id of the leg's call (NULL: the call is
--                      not attributed, or the leg has no linkedid and so no call); false: not known here,
--                      the readers look the call up as before (every leg stored before this migration,
--                      and a leg whose call was not stored, or not within the window below, when it was)
--   call_tenant_id     that tenant
--
-- Kept by (sql/repeatable/qos_legs_call_tenant.sql): the QoS leg writer, which looks the call up within
-- the window [at - 960 h, at + 24 h] of the call's start under the call bucket locks (the calls writers'
-- locks, so no call changes meanwhile); row triggers on calls, which set the legs within that window of a
-- call inserted (or moved to another start) and of a call whose tenant changed, and forget the legs of a
-- call deleted or moved; and qos_legs_fill(), which fills the MOS and the tenant of a period's legs that
-- have neither (legs stored before this migration).
--
-- The columns are added without a rewrite (nullable columns, and a constant default): metadata only, on
-- the partitioned table and every partition.

ALTER TABLE qos_legs
    ADD COLUMN mos double precision,
    ADD COLUMN call_tenant_id text,
    ADD COLUMN call_tenant_known boolean NOT NULL DEFAULT false;

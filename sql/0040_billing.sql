-- 0040 (baseline): the group role that may read the billing views (docs/billing-views.md). The views and
-- their grants are in sql/repeatable/billing_*.sql; they belong to the migrating user, so this role needs no
-- rights on the base tables. Roles are cluster-wide: every database of the cluster shares it.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pbx_sla_billing') THEN
        CREATE ROLE pbx_sla_billing NOLOGIN;
    END IF;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN
        NULL;  -- another database of the cluster created it at the same moment
END
$$;

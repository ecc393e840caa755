-- Read-only view for billing staff (docs/billing-views.md). It belongs to the migrating user, so the group
-- role pbx_sla_billing (sql/0040_billing.sql) needs no rights on the base tables.
CREATE OR REPLACE VIEW billing_daily_calls AS
SELECT u.tenant_id AS tenant,
       u.day,
       u.calls,
       u.answered,
       u.busy,
       u.no_answer,
       u.failed,
       u.congestion,
       u.billsec AS billable_seconds
FROM usage_daily u
WHERE u.calls > 0;

COMMENT ON VIEW billing_daily_calls IS
    'Calls per tenant and calendar day (catalogue time zone); tenant NULL = calls no rule attributed.';

GRANT SELECT ON billing_daily_calls TO pbx_sla_billing;

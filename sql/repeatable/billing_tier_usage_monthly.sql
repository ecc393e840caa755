-- Read-only view for billing staff (docs/billing-views.md). It belongs to the migrating user, so the group
-- role pbx_sla_billing (sql/0040_billing.sql) needs no rights on the base tables.
-- One row per tenant and month that has any call in usage_daily (every day of the month counts, zeros
-- included; p95 is the nearest-rank percentile, i.e. percentile_disc(0.95)).
CREATE OR REPLACE VIEW billing_tier_usage_monthly AS
WITH months AS (
    SELECT DISTINCT date_trunc('month', day)::date AS month FROM usage_daily WHERE calls > 0
),
grid AS (
    SELECT t.id AS tenant, m.month, d::date AS day
    FROM tenants t
    CROSS JOIN months m
    CROSS JOIN LATERAL generate_series(m.month, (m.month + interval '1 month' - interval '1 day')::date,
                                       interval '1 day') AS d
),
per_day AS (
    SELECT g.tenant, g.month, g.day, coalesce(u.calls, 0) AS calls, coalesce(u.answered, 0) AS answered,
           coalesce(u.billsec, 0) AS billsec
    FROM grid g LEFT JOIN usage_daily u ON u.tenant_id = g.tenant AND u.day = g.day
)
SELECT p.tenant,
       p.month,
       t.tier,
       sum(p.calls) AS calls,
       sum(p.answered) AS answered,
       sum(p.billsec) AS billable_seconds,
       round(avg(p.calls), 3) AS mean_per_day,
       percentile_disc(0.95) WITHIN GROUP (ORDER BY p.calls) AS p95_per_day,
       max(p.calls) AS max_per_day,
       tr.max_calls_per_day AS tier_max_calls_per_day,
       CASE WHEN tr.max_calls_per_day IS NULL THEN 0
            ELSE count(*) FILTER (WHERE p.calls > tr.max_calls_per_day) END AS over_tier_days
FROM per_day p
JOIN tenants t ON t.id = p.tenant
JOIN tiers tr ON tr.name = t.tier
GROUP BY p.tenant, p.month, t.tier, tr.max_calls_per_day;

COMMENT ON VIEW billing_tier_usage_monthly IS
    'Per tenant and calendar month: calls, mean/p95/max calls per day, the contracted tier and its over-tier days.';

GRANT SELECT ON billing_tier_usage_monthly TO pbx_sla_billing;

-- 0023: drop calls_day_tenant (docs/calls.md "Import speed").
--
-- No query reads calls by (day, tenant_id): `usage` and the billing views read the usage_daily rollup,
-- calls_refresh finds calls by their primary key, re-attribution by calls_unattributed. The index only
-- cost every call upsert a third B-tree insert (measured: bench/results/cdr.md).
DROP INDEX IF EXISTS calls_day_tenant;

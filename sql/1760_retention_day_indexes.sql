-- 1760 (issue 17): the retention marks' partial indexes (sql/1702, rebuilt on the partitions by sql/1703) are
-- keyed by the row's UTC day instead of its instant. Each held an entry for every row not yet pseudonymised,
-- that is every row of the months retention has not reached: 22.8 bytes a row on `calls` and `cdr_legs`
-- (1 M calls loaded by bench/partitions.py, bench/results/partitions.md run 8). A day's rows share one key, so
-- the B-tree keeps them as posting lists (deduplication, PostgreSQL 13+): about 6 bytes a row.
--
-- `retention apply` (pbx_sla/store/retention.py) reads them with the rows' day up to the cutoff's UTC day and
-- keeps its exact `< cutoff` test on the rows it reads (at most one day of rows more than before read and
-- passed over); rows already pseudonymised are still in none of them, so a history that is never dropped
-- (months without closed statements) is not read again by each daily run.
DROP INDEX cdr_legs_retention;
DROP INDEX calls_retention;
DROP INDEX support_calls_retention;
DROP INDEX queue_events_retention;
DROP INDEX qos_legs_retention;
CREATE INDEX cdr_legs_retention_day ON cdr_legs (((start_at AT TIME ZONE 'UTC')::date)) WHERE NOT pseudonymised;
CREATE INDEX calls_retention_day ON calls (((started_at AT TIME ZONE 'UTC')::date)) WHERE NOT pseudonymised;
CREATE INDEX support_calls_retention_day ON support_calls (((decided_at AT TIME ZONE 'UTC')::date))
    WHERE NOT pseudonymised;
CREATE INDEX queue_events_retention_day ON queue_events (((at AT TIME ZONE 'UTC')::date)) WHERE NOT pseudonymised;
CREATE INDEX qos_legs_retention_day ON qos_legs (((at AT TIME ZONE 'UTC')::date)) WHERE NOT pseudonymised;

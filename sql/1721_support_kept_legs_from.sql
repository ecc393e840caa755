-- 1721 (issue 16): support_kept_tenants.legs_from, the earliest start of a staff leg answered at or after the
-- tenant's cut (the cut when none). A staff leg that starts before a cut and is stored later deletes the
-- tenant's kept rows (sql/repeatable/support_kept_invalidate.sql), so while they are kept no staff leg answered
-- from the cut on started before legs_from: a report reads staff legs (callbacks) from there on only, the
-- month partitions of cdr_legs from then on, instead of every leg of the history.
-- What is kept is derived again from the facts at the next report (it is a cache of them).
DELETE FROM support_kept_tenants;
ALTER TABLE support_kept_tenants ADD COLUMN legs_from timestamptz NOT NULL;

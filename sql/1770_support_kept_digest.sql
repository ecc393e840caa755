-- 1770 (issue 17): support_kept_tenants.catalogue_digest, a digest of the parts of the catalogue a tenant's kept
-- rows were derived with (pbx_sla.domain.requests.derivation_digests: the zone and country code, the support
-- settings, its tier's reaction target and calendar, its requesters). Kept rows are used while the tenant's
-- digest in the current catalogue is the same, whatever the revision: a revision that changes one tenant
-- derives that tenant again, not every tenant (before, any new revision made every kept row unused).
-- revision_id stays: the revision the rows were derived, or last moved on, under.
-- The rows kept before have no digest: they are derived again at the next report (a cache of the facts).
DELETE FROM support_kept_tenants;
ALTER TABLE support_kept_tenants ADD COLUMN catalogue_digest text NOT NULL;

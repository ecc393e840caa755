-- 1601 (issue 16): monthly statements, append-only. `pbx-sla statement close --period YYYY-MM` writes one
-- statement_closes row and one statements row per tenant in one transaction; a second close of the same
-- month finds the statement_closes row and writes nothing. Rows are never updated or deleted: the triggers
-- below refuse it, for every role. (The trigger function lives here, not in sql/repeatable/: it belongs to
-- these tables, and a repeatable file would be applied to databases built only up to an earlier migration.) Changes to a closed month found later are frozen as
-- `adjustments` on the next month closed (pbx_sla/domain/statements.py). Written and read by
-- pbx_sla/store/statements.py.

CREATE TABLE statement_closes (
    period              text PRIMARY KEY CHECK (period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    closed_at           timestamptz NOT NULL DEFAULT now(),
    catalogue_revision  bigint,              -- catalogue_settings.revision_id when closed (NULL: none applied)
    code_version        text NOT NULL,       -- pbx-sla version that computed the figures
    tenants             integer NOT NULL
);

CREATE TABLE statements (
    period       text NOT NULL REFERENCES statement_closes (period),
    tenant_id    text NOT NULL,              -- no FK: statements outlive catalogue changes
    figures      jsonb NOT NULL,             -- the month's usage and sla figures, as frozen
    adjustments  jsonb NOT NULL DEFAULT '[]', -- earlier closed months' figures that changed since stated
    amount_due   numeric(14, 2) NOT NULL,    -- fee - credit, plus fee deltas, less credit deltas
    currency     text NOT NULL,
    PRIMARY KEY (period, tenant_id)
);

-- Statements are append-only: an UPDATE, DELETE or TRUNCATE of a closed month is
-- refused, whoever tries it. A correction is an adjustment on the next statement, never an edit.
CREATE OR REPLACE FUNCTION statements_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'statements are append-only: % on % refused (a closed month is never changed)',
        TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE OR REPLACE TRIGGER statements_append_only BEFORE UPDATE OR DELETE ON statements
    FOR EACH ROW EXECUTE FUNCTION statements_refuse_change();
CREATE OR REPLACE TRIGGER statements_no_truncate BEFORE TRUNCATE ON statements
    FOR EACH STATEMENT EXECUTE FUNCTION statements_refuse_change();
CREATE OR REPLACE TRIGGER statement_closes_append_only BEFORE UPDATE OR DELETE ON statement_closes
    FOR EACH ROW EXECUTE FUNCTION statements_refuse_change();
CREATE OR REPLACE TRIGGER statement_closes_no_truncate BEFORE TRUNCATE ON statement_closes
    FOR EACH STATEMENT EXECUTE FUNCTION statements_refuse_change();

-- billing staff read statements like the billing views (docs/billing-views.md)
GRANT SELECT ON statements, statement_closes TO pbx_sla_billing;

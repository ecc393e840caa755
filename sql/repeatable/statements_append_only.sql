-- Statements are append-only (sql/1601_statements.sql): an UPDATE, DELETE or TRUNCATE of a closed month is
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

-- The pseudonym of one personal value (a phone number in E.164, a caller ID, a name): 'erased:' and the
-- first 24 hex digits of SHA-256(key || value), the key being pseudonym_key's secret (docs/retention.md).
-- Stable (the same value gives the same token in every table and every run), so counts stay exact;
-- idempotent (a token, an empty string or NULL comes back unchanged). PL/pgSQL, not SQL: its body names
-- the table pseudonym_key, which a database migrated only up to an earlier version does not have.
CREATE OR REPLACE FUNCTION pseudonym(v text) RETURNS text
    LANGUAGE plpgsql STABLE
    AS $$
BEGIN
    IF v IS NULL OR v = '' OR v LIKE 'erased:%' THEN
        RETURN v;
    END IF;
    RETURN 'erased:' || substr(encode(sha256((SELECT key FROM pseudonym_key) || convert_to(v, 'UTF8')), 'hex'), 1, 24);
END
$$;
COMMENT ON FUNCTION pseudonym(text) IS 'erasure/retention token of a personal value (keyed SHA-256)';

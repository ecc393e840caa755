-- Re-attribute the calls no rule attributed (after a catalogue change added account codes, DIDs or
-- requesters). Already attributed calls keep their tenant: a bill once issued does not move.
-- Returns the number of calls examined. Callers hold the same locks as writers.
CREATE OR REPLACE FUNCTION calls_reattribute_unattributed() RETURNS bigint
    LANGUAGE plpgsql
    AS $$
DECLARE
    n bigint;
    s text[];
    k text[];
BEGIN
    SELECT count(*), array_agg(server), array_agg(call_key) INTO n, s, k FROM calls WHERE tenant_id IS NULL;
    IF n > 0 THEN
        PERFORM calls_refresh(s, k);
    END IF;
    RETURN n;
END
$$;

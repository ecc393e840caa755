-- The best disposition of a call's legs wins: ANSWERED > BUSY > NO ANSWER > FAILED > CONGESTION.
CREATE OR REPLACE FUNCTION cdr_disposition_rank(d text) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT array_position(ARRAY['ANSWERED', 'BUSY', 'NO ANSWER', 'FAILED', 'CONGESTION'], d) $$;

-- The MOS of a QoS leg in SQL, and per leg what the voice-quality figures aggregate (pbx_sla/domain/qos.py),
-- so a month's trunk legs can be summed per tenant without sending every leg to Python.
--
-- qos_leg_mos(received, lost, jitter_ms, rtt_ms, codec): pbx_sla.domain.qos.leg_mos of the leg with
-- codec(codec), step by step as the Python computes it (the same operations on the same doubles in the same
-- order; tests/integration/test_qos_sql_figures.py compares the two bit for bit over generated legs). NULL
-- when the leg received nothing. The QoS leg writer stores it in qos_legs.mos (sql/1710).
--   codec: the name (none or empty: g711) stripped of Python's whitespace (str.strip), lower-cased, dots
--          removed; g729a -> g729, g7231 -> g723; unknown names and ulaw/alaw/pcmu/pcma: G.711 with PLC;
--          Ie / Bpl from G.113 App. I (pbx_sla.domain.qos.CODECS)
--   E-model (G.107 simplified): jitter and RTT 0 when unknown; d = RTT/2 + 2·J + 20 ms;
--          Id = 0.024·d + 0.11·(d − 177.3)·H(d − 177.3); Ppl = loss %; Ie_eff = Ie + (95 − Ie)·Ppl/(Ppl + Bpl);
--          R = 93.2 − Id − Ie_eff; MOS = 1 + 0.035·R + 7·10⁻⁶·R·(R − 60)·(100 − R) clamped to 1..4.5
--          (1 for R <= 0, 4.5 for R >= 100)
CREATE OR REPLACE FUNCTION qos_leg_mos(p_received bigint, p_lost bigint, p_jitter_ms double precision,
                                       p_rtt_ms double precision, p_codec text) RETURNS double precision
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    AS $fn$
DECLARE
    codec_key text;
    ie double precision;
    bpl double precision;
    jitter double precision;
    rtt double precision;
    total bigint;
    loss double precision;
    d double precision;
    i_d double precision;
    ppl double precision;
    ie_eff double precision;
    r double precision;
BEGIN
    IF p_received IS NULL OR p_received <= 0 THEN
        RETURN NULL;
    END IF;
    codec_key := lower(replace(btrim(COALESCE(NULLIF(p_codec, ''), 'g711'),
                                     E'\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \u0085\u00a0\u1680\u2000\u2001\u2002\u2003'
                                     '\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000'),
                               '.', ''));
    ie := CASE WHEN codec_key IN ('g729', 'g729a') THEN 11.0::float8
               WHEN codec_key IN ('g723', 'g7231') THEN 15.0::float8
               WHEN codec_key = 'gsm-efr' THEN 5.0::float8
               ELSE 0.0::float8 END;
    bpl := CASE WHEN codec_key = 'g711-noplc' THEN 4.3::float8
                WHEN codec_key IN ('g729', 'g729a') THEN 19.0::float8
                WHEN codec_key IN ('g723', 'g7231') THEN 16.1::float8
                WHEN codec_key = 'gsm-efr' THEN 10.0::float8
                ELSE 25.1::float8 END;
    -- leg_mos: jitter and RTT unknown (or 0) count as 0.0
    jitter := CASE WHEN p_jitter_ms <> 0 THEN p_jitter_ms ELSE 0.0::float8 END;
    rtt := CASE WHEN p_rtt_ms <> 0 THEN p_rtt_ms ELSE 0.0::float8 END;
    -- LegQuality.loss_percent
    total := p_received + p_lost;
    loss := CASE WHEN total <> 0 THEN 100.0::float8 * p_lost::float8 / total::float8 ELSE 0.0::float8 END;
    -- r_factor
    -- RTT / 2 (Python's rtt_ms / 2): PostgreSQL refuses a nonzero quotient that rounds to zero ("underflow"),
    -- which only the smallest subnormal gives; Python gives a zero of its sign, as rtt * 0 does here
    d := CASE WHEN abs(rtt) = 5e-324::float8 THEN rtt * 0::float8 ELSE rtt / 2::float8 END
         + 2::float8 * jitter + 20.0::float8;
    i_d := 0.024::float8 * d + CASE WHEN d > 177.3::float8 THEN 0.11::float8 * (d - 177.3::float8) ELSE 0.0::float8 END;
    ppl := GREATEST(0.0::float8, loss);
    ie_eff := CASE WHEN ppl + bpl > 0 THEN ie + (95::float8 - ie) * ppl / (ppl + bpl) ELSE ie END;
    r := 93.2::float8 - i_d - ie_eff;
    -- r_to_mos
    IF r <= 0 THEN
        RETURN 1.0::float8;
    END IF;
    IF r >= 100 THEN
        RETURN 4.5::float8;
    END IF;
    RETURN LEAST(4.5::float8,
                 GREATEST(1.0::float8, 1::float8 + 0.035::float8 * r + 7e-6::float8 * r * (r - 60::float8) * (100::float8 - r)));
END
$fn$;

-- qos_leg_figures: per QoS leg
--   tenant_id      the tenant of the leg's call (calls (server, call_key) = (server, linkedid)): the kept
--                  qos_legs.call_tenant_id when call_tenant_known (sql/1710), else looked up as before sql/1710:
--                  a call that started in the 960 hours before the leg's hangup (or 24 h after), else any call
--                  of that key; NULL when no call is stored or it is not attributed
--   jitter_ms      the jitter at hangup, 0 when unknown (MeasuredLeg.jitter_ms)
--   jitter_max_ms  the highest jitter, else the jitter at hangup (MeasuredLeg.jitter_max_ms)
--   rtt_ms         as stored (NULL: the far end sent no RTCP report)
--   mos            the stored qos_legs.mos, computed by qos_leg_mos for a leg stored before sql/1710; NULL when
--                  the leg received nothing
-- Made only once qos_legs has sql/1710's columns (the rule files are also applied to a schema of an earlier
-- version: the tests of older migrations do that; the upgrade that applies 1710 applies them again).
DO $do$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns
               WHERE table_schema = current_schema() AND table_name = 'qos_legs'
                 AND column_name = 'call_tenant_known') THEN
        EXECUTE $view$
CREATE OR REPLACE VIEW qos_leg_figures AS
SELECT q.server, q.uniqueid, q.linkedid, q.endpoint, q.at, q.codec, q.received, q.lost,
       CASE WHEN q.call_tenant_known THEN q.call_tenant_id
            ELSE (COALESCE((SELECT ARRAY[c.tenant_id] FROM calls c
                            WHERE c.server = q.server AND c.call_key = q.linkedid
                              AND c.started_at > q.at - interval '960 hours'
                              AND c.started_at <= q.at + interval '24 hours'
                            LIMIT 1),
                           (SELECT ARRAY[c.tenant_id] FROM calls c
                            WHERE c.server = q.server AND c.call_key = q.linkedid
                            LIMIT 1)))[1]
       END AS tenant_id,
       CASE WHEN q.jitter_ms <> 0 THEN q.jitter_ms ELSE 0.0::float8 END AS jitter_ms,
       CASE WHEN q.jitter_max_ms <> 0 THEN q.jitter_max_ms
            WHEN q.jitter_ms <> 0 THEN q.jitter_ms ELSE 0.0::float8 END AS jitter_max_ms,
       q.rtt_ms,
       CASE WHEN q.received <= 0 THEN NULL
            WHEN q.mos IS NOT NULL THEN q.mos
            ELSE qos_leg_mos(q.received, q.lost, q.jitter_ms, q.rtt_ms, q.codec) END AS mos
FROM qos_legs q
        $view$;
    END IF;
END
$do$;

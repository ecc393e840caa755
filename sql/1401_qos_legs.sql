-- 1401 (issue 14): voice quality per call leg, from the AMI `Hangup` event's RTPAUDIOQOS* channel
-- variables (manager.conf channelvars). One row per channel (server, uniqueid); joined to calls by
-- (server, linkedid) = calls (server, call_key). Written by pbx_sla/store/qos.py (QosLegSink), read by
-- the `qos` and `sla` reports. Definitions: docs/qos.md.
--
-- Own measurement of the media Asterisk RECEIVED on the channel: received, lost, jitter_*.
-- Far-end RTCP reports about the media Asterisk SENT: far_lost, far_jitter_ms, rtt_*; NULL when the
-- far end sent no RTCP ("no data", never 0).

CREATE TABLE qos_legs (
    server         text NOT NULL,
    uniqueid       text NOT NULL,
    linkedid       text,
    channel        text NOT NULL DEFAULT '',
    endpoint       text,                        -- PJSIP endpoint of the channel (a trunk, a phone)
    at             timestamptz NOT NULL,        -- the Hangup event's Timestamp
    codec          text,                        -- Asterisk format name when known (E-model values)
    received       bigint NOT NULL CHECK (received >= 0),
    lost           bigint NOT NULL CHECK (lost >= 0),
    sent           bigint NOT NULL DEFAULT 0 CHECK (sent >= 0),
    jitter_ms      double precision,            -- RFC 3550 estimate at hangup (RTPAUDIOQOS txjitter)
    jitter_max_ms  double precision,            -- highest estimate sampled at RTCP reports (maxrxjitter)
    jitter_avg_ms  double precision,            -- Asterisk's avgrxjitter (kept, not used in figures)
    far_lost       bigint,
    far_jitter_ms  double precision,
    rtt_ms         double precision,
    rtt_max_ms     double precision,
    asterisk_mes   double precision,            -- Asterisk's own MES of what it received (not a MOS)
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (server, uniqueid)
);
CREATE INDEX qos_legs_at ON qos_legs (at);
CREATE INDEX qos_legs_linkedid ON qos_legs (server, linkedid);

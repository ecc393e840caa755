"""Voice quality core: parsing Asterisk's RTPAUDIOQOS* variables, units, the E-model, aggregation.

Expected values are computed here independently of pbx_sla.domain.qos: published G.107 R → MOS points,
hand-derived E-model results recomputed with exact fractions, and a naive aggregation reference.
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbx_sla.ami.connection import parse_message
from pbx_sla.domain import qos
from pbx_sla.domain.events import ParseError

# Real values from Asterisk 22.10 on the sandbox (a sipp caller on trunk-a, 5 % loss injected, no RTCP).
MAIN_5 = (
    "ssrc=1917210341;themssrc=1592594996;lp=20;rxjitter=0.000000;rxcount=380;txjitter=0.000000;txcount=0;"
    "rlp=0;rtt=0.000000;rxmes=0.000000;txmes=86.013796"
)
JITTER_5 = (
    "minrxjitter=000.000000;maxrxjitter=000.000625;avgrxjitter=000.000047;stdevrxjitter=000.000103;"
    "mintxjitter=000.000000;maxtxjitter=000.000000;avgtxjitter=000.000000;stdevtxjitter=000.000000;"
)
LOSS_5 = "  minrxlost=002.000000;  maxrxlost=003.000000;  avgrxlost=002.222222;  stdevrxlost=000.916246;"
RTT_NONE = "     minrtt=000.000000;     maxrtt=000.000000;     avgrtt=000.000000;     stdevrtt=000.000000;"
# 20 ms jitter injected (every other packet 20 ms late)
MAIN_J20 = (
    "ssrc=663243353;themssrc=1592594996;lp=0;rxjitter=0.000000;rxcount=400;txjitter=0.019875;txcount=0;"
    "rlp=0;rtt=0.000000;rxmes=0.000000;txmes=88.087887"
)
JITTER_J20 = "minrxjitter=000.002250;maxrxjitter=000.019875;avgrxjitter=000.018749;stdevrxjitter=000.002931;"


def hangup_block(**variables: str) -> str:
    lines = [
        "Event: Hangup",
        "Privilege: call,all",
        "Timestamp: 1796118666.892079",
        "Channel: PJSIP/trunk-a-00000002",
        "Uniqueid: 1796118656.4",
        "Linkedid: 1796118656.3",
    ]
    lines += [f"ChanVariable: {name}={value}" for name, value in variables.items()]
    lines += ["Cause: 16", "Cause-txt: Normal Clearing"]
    return "\r\n".join(lines)


# -- parsing ----------------------------------------------------------------------------------------------


def test_ami_block_keeps_every_channel_variable() -> None:
    event = parse_message(hangup_block(RTPAUDIOQOS=MAIN_5, RTPAUDIOQOSJITTER=JITTER_5, RTPAUDIOQOSLOSS=LOSS_5))
    assert event["ChanVariable(RTPAUDIOQOS)"] == MAIN_5
    assert event["ChanVariable(RTPAUDIOQOSJITTER)"] == JITTER_5
    assert event["ChanVariable(RTPAUDIOQOSLOSS)"] == LOSS_5
    assert event["Cause"] == "16"
    assert qos.chan_variables(event) == {
        "RTPAUDIOQOS": MAIN_5,
        "RTPAUDIOQOSJITTER": JITTER_5,
        "RTPAUDIOQOSLOSS": LOSS_5,
    }


def test_old_ami_spelling_with_the_channel_in_the_key() -> None:
    event = parse_message("Event: Hangup\r\nChanVariable(SIP/trunk-0001): RTPAUDIOQOS=lp=1;rxcount=9")
    assert qos.chan_variables(event) == {"RTPAUDIOQOS": "lp=1;rxcount=9"}


def test_padded_keys_zero_padded_numbers_and_trailing_semicolons() -> None:
    assert qos.parse_fields("RTPAUDIOQOSLOSS", LOSS_5) == {
        "minrxlost": 2.0,
        "maxrxlost": 3.0,
        "avgrxlost": 2.222222,
        "stdevrxlost": 0.916246,
    }
    assert qos.parse_fields("RTPAUDIOQOSJITTER", "MinRxJitter = 000.5 ;") == {"minrxjitter": 0.5}
    assert qos.parse_fields("RTPAUDIOQOS", "") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lp=1;rxcount=abc", "RTPAUDIOQOS: field 'rxcount' is not a number: 'abc'"),
        ("lp;rxcount=1", "RTPAUDIOQOS: field 'lp' has no value"),
        ("lp=-3", "RTPAUDIOQOS: field 'lp' is out of range: '-3'"),
        ("rtt=nan", "RTPAUDIOQOS: field 'rtt' is out of range: 'nan'"),
    ],
)
def test_malformed_values_name_variable_and_field(text: str, message: str) -> None:
    with pytest.raises(qos.QosParseError) as err:
        qos.parse_fields("RTPAUDIOQOS", text)
    assert str(err.value) == message


def test_label_trap_own_measurement_vs_far_end_report() -> None:
    # txjitter is Asterisk's measurement of what it received (seconds); rxjitter would be the far end's report
    leg = qos.leg_quality({"RTPAUDIOQOS": MAIN_J20, "RTPAUDIOQOSJITTER": JITTER_J20, "RTPAUDIOQOSRTT": RTT_NONE})
    assert leg is not None
    assert (leg.received, leg.lost, leg.sent) == (400, 0, 0)
    assert leg.jitter_ms == pytest.approx(19.875)
    assert leg.jitter_max_ms == pytest.approx(19.875)
    assert leg.jitter_avg_ms == pytest.approx(18.749)
    assert leg.asterisk_mes == pytest.approx(88.087887)
    # sipp sends no RTCP: far-end figures are "no data", not zero
    assert not leg.far_end_reported
    assert (leg.far_lost, leg.far_jitter_ms, leg.rtt_ms, leg.rtt_max_ms) == (None, None, None, None)


def test_far_end_figures_when_rtcp_arrived() -> None:
    main = "ssrc=1;themssrc=2;lp=3;rxjitter=0.004000;rxcount=997;txjitter=0.002000;txcount=1000;rlp=7;rtt=0.081000"
    rtt = "minrtt=000.070000;maxrtt=000.120000;avgrtt=000.080000;stdevrtt=000.010000;"
    leg = qos.leg_quality({"rtpaudioqos": main, "rtpaudioqosrtt": rtt})  # names in any case
    assert leg is not None and leg.far_end_reported
    assert (leg.received, leg.lost, leg.far_lost) == (997, 3, 7)
    assert leg.jitter_ms == pytest.approx(2.0)
    assert leg.far_jitter_ms == pytest.approx(4.0)
    assert leg.rtt_ms == pytest.approx(81.0)
    assert leg.rtt_max_ms == pytest.approx(120.0)


def test_no_rtp_and_nothing_received() -> None:
    assert qos.leg_quality({"RTPAUDIOQOS": ""}) is None
    assert qos.leg_quality({}) is None
    # an agent leg that only sent: Asterisk reports lp=1 with rxcount=0; nothing was measured
    leg = qos.leg_quality({"RTPAUDIOQOS": "ssrc=1;themssrc=0;lp=1;rxjitter=0;rxcount=0;txjitter=0;txcount=380"})
    assert leg is not None and not leg.measured
    assert (leg.lost, leg.jitter_ms, leg.asterisk_mes) == (0, None, None)
    assert qos.leg_mos(leg) is None


def test_units() -> None:
    assert qos.jitter_units_to_ms(160) == 20.0  # RTCP events: 1/8000 s
    assert qos.jitter_units_to_ms(320, clock_rate=16000) == 20.0
    leg = qos.leg_quality({"RTPAUDIOQOS": "rxcount=10;lp=0;txjitter=0.040000"})
    assert leg is not None and leg.jitter_ms == pytest.approx(40.0)  # variables: seconds


def test_hangup_record() -> None:
    event = parse_message(hangup_block(RTPAUDIOQOS=MAIN_5, RTPAUDIOQOSJITTER=JITTER_5, RTPAUDIOQOSRTT=RTT_NONE))
    data = qos.hangup_record("pbx1", event)
    assert data is not None
    assert (data["server"], data["uniqueid"], data["linkedid"]) == ("pbx1", "1796118656.4", "1796118656.3")
    assert (data["channel"], data["endpoint"]) == ("PJSIP/trunk-a-00000002", "trunk-a")
    assert data["at"] == "2026-12-01T09:51:06.892079+00:00"
    assert (data["received"], data["lost"], data["rtt_ms"]) == (380, 20, None)
    assert qos.leg_from_record(data) == qos.leg_quality(qos.chan_variables(event))


def test_hangup_without_qos_variables_or_uniqueid() -> None:
    assert qos.hangup_record("pbx1", parse_message(hangup_block())) is None
    assert qos.hangup_record("pbx1", parse_message(hangup_block(RTPAUDIOQOS=""))) is None
    event = parse_message(hangup_block(RTPAUDIOQOS=MAIN_5))
    del event["Uniqueid"]
    with pytest.raises(ParseError, match="Uniqueid"):
        qos.hangup_record("pbx1", event)


# -- E-model -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("r", "expected"), [(93.2, 4.41), (90, 4.34), (80, 4.02), (70, 3.60), (60, 3.10), (50, 2.58)])
def test_r_to_mos_published_points(r: float, expected: float) -> None:
    # ITU-T G.107 Annex B (Figure B.1 / the usual R-to-MOS table)
    assert round(qos.r_to_mos(r), 2) == expected


def test_r_to_mos_clamps() -> None:
    assert qos.r_to_mos(-5) == 1.0
    assert qos.r_to_mos(0) == 1.0
    assert qos.r_to_mos(120) == 4.5


def reference_mos(
    loss: Fraction, jitter: Fraction, rtt: Fraction, ptime: Fraction, ie: Fraction, bpl: Fraction
) -> float:
    """The issue's formula in exact arithmetic, written out separately."""
    d = rtt / 2 + 2 * jitter + ptime
    i_d = Fraction(24, 1000) * d + (Fraction(11, 100) * (d - Fraction(1773, 10)) if d > Fraction(1773, 10) else 0)
    ie_eff = ie + (95 - ie) * loss / (loss + bpl)
    r = Fraction(932, 10) - i_d - ie_eff
    m = 1 + Fraction(35, 1000) * r + Fraction(7, 10**6) * r * (r - 60) * (100 - r)
    return float(min(Fraction(9, 2), max(Fraction(1), m)))


@pytest.mark.parametrize(
    ("codec", "loss", "jitter", "rtt", "ie", "bpl"),
    [
        ("ulaw", 0, 0, 0, 0, Fraction(251, 10)),
        ("ulaw", 5, 20, 0, 0, Fraction(251, 10)),
        ("alaw", 10, 40, 0, 0, Fraction(251, 10)),
        ("ulaw", 2, 20, 300, 0, Fraction(251, 10)),  # d = 150 + 40 + 20 = 210 > 177.3: the delay term
        ("g711-noplc", 1, 0, 0, 0, Fraction(43, 10)),
        ("g729", 3, 10, 100, 11, 19),
        ("G.723.1", 0, 0, 0, 15, Fraction(161, 10)),
    ],
)
def test_mos_matches_the_formula(codec: str, loss: int, jitter: int, rtt: int, ie: int, bpl: Fraction) -> None:
    expected = reference_mos(Fraction(loss), Fraction(jitter), Fraction(rtt), Fraction(20), Fraction(ie), bpl)
    assert qos.mos(loss, jitter, rtt, codec_values=qos.codec(codec)) == pytest.approx(expected, abs=1e-12)


def test_mos_hand_computed_value() -> None:
    # 5 % random loss, 20 ms jitter, G.711 PLC: d = 60 ms, Id = 1.44, Ie_eff = 95·5/30.1 = 15.7807…,
    # R = 75.9793…, MOS = 1 + 2.65928 + 0.20414 = 3.8634… (computed by hand from G.107's expressions)
    assert qos.r_factor(5, 20) == pytest.approx(93.2 - 1.44 - 475 / 30.1, abs=1e-12)
    assert qos.mos(5, 20) == pytest.approx(3.8634, abs=5e-5)


def test_unknown_codec_is_g711() -> None:
    assert qos.codec(None) == qos.codec("ulaw") == qos.codec("opus") == qos.CODECS["g711"]


@given(
    st.floats(0, 50),
    st.floats(0, 200),
    st.floats(0, 1000),
)
def test_mos_bounded_and_monotonic(loss: float, jitter: float, rtt: float) -> None:
    m = qos.mos(loss, jitter, rtt)
    assert 1.0 <= m <= 4.5
    assert qos.mos(loss + 1, jitter, rtt) <= m
    assert qos.mos(loss, jitter + 1, rtt) <= m


# -- aggregation ------------------------------------------------------------------------------------------

legs_strategy = st.lists(
    st.builds(
        qos.MeasuredLeg,
        received=st.integers(1, 100_000),
        lost=st.integers(0, 5_000),
        jitter_ms=st.floats(0, 200),
        jitter_max_ms=st.floats(0, 400),
        rtt_ms=st.one_of(st.none(), st.floats(0.1, 1000)),
        mos=st.floats(1, 4.5),
    ),
    max_size=40,
)


@settings(max_examples=300)
@given(legs_strategy, st.floats(1, 4.5))
def test_figures_against_a_naive_reference(legs: list[qos.MeasuredLeg], poor: float) -> None:
    f = qos.figures(legs, poor_mos=poor)
    n = len(legs)
    received = sum(leg.received for leg in legs)
    lost = sum(leg.lost for leg in legs)
    assert (f.legs_measured, f.packets_received, f.packets_lost) == (n, received, lost)
    if n == 0:
        assert f == qos.QosFigures(0, 0, 0, None, None, None, None, None, None, 0, None)
        return
    assert f.loss_ratio == pytest.approx(lost / (received + lost))
    weighted = 0.0
    for leg in legs:
        weighted += leg.jitter_ms * leg.received
    assert f.jitter_ms_mean == pytest.approx(weighted / received)
    maxima = sorted(leg.jitter_max_ms for leg in legs)
    assert f.jitter_ms_p95 == maxima[math.ceil(0.95 * n) - 1]
    rtts = sorted(leg.rtt_ms for leg in legs if leg.rtt_ms is not None)
    assert f.rtt_coverage == pytest.approx(len(rtts) / n)
    assert f.rtt_ms_p95 == (rtts[math.ceil(0.95 * len(rtts)) - 1] if rtts else None)
    assert f.mos_mean == pytest.approx(sum(leg.mos for leg in legs) / n)
    poor_legs = [leg for leg in legs if leg.mos < poor]
    assert f.poor_calls == len(poor_legs)
    assert f.poor_ratio == pytest.approx(len(poor_legs) / n)


def test_loss_from_summed_packets_not_averaged_percentages() -> None:
    a = qos.MeasuredLeg(received=90, lost=10, jitter_ms=0, jitter_max_ms=0, rtt_ms=None, mos=3.0)  # 10 %
    b = qos.MeasuredLeg(received=9900, lost=100, jitter_ms=10, jitter_max_ms=12, rtt_ms=50.0, mos=4.0)  # 1 %
    f = qos.figures([a, b])
    assert f.loss_ratio == pytest.approx(110 / 10100)  # not (10 % + 1 %) / 2
    assert f.jitter_ms_mean == pytest.approx(10 * 9900 / 9990)
    assert (f.rtt_ms_p95, f.rtt_coverage) == (50.0, 0.5)
    assert (f.poor_calls, f.poor_ratio) == (1, 0.5)
    assert f.metric("qos_loss") == f.loss_ratio
    assert f.metric("qos_mos") == f.mos_mean


@given(
    st.dictionaries(
        st.from_regex(r"[a-z_]{1,12}", fullmatch=True),
        st.floats(0, 1e6, allow_nan=False).map(lambda v: f"{v:f}"),
        max_size=12,
    ),
    st.sampled_from(["", " ", "  "]),
    st.booleans(),
)
def test_parse_fields_matches_a_naive_split(fields: dict[str, str], pad: str, trailing: bool) -> None:
    text = ";".join(f"{pad}{k}={v}" for k, v in fields.items()) + (";" if trailing and fields else "")
    naive = {}
    for part in text.split(";"):
        if part.strip():
            key, _, value = part.partition("=")
            naive[key.strip()] = float(value)
    assert qos.parse_fields("X", text) == naive
    some = frozenset(list(fields)[:2])
    assert qos.parse_fields("X", text, some) == {k: v for k, v in naive.items() if k in some}


def test_variables_only_split_out_of_hangup_events() -> None:
    # with channelvars every channel event carries the lines (empty until the hangup); only Hangup's are read
    varset = "Event: VarSet\r\nChannel: PJSIP/a-1\r\nChanVariable: RTPAUDIOQOS=\r\nChanVariable: RTPAUDIOQOSRTT=\r\n"
    event = parse_message(varset + "Variable: X\r\nValue: 1")
    assert event == {"Event": "VarSet", "Channel": "PJSIP/a-1", "Variable": "X", "Value": "1"}
    hangup = parse_message(hangup_block(RTPAUDIOQOS=MAIN_5, RTPAUDIOQOSRTT=""))
    assert (hangup["ChanVariable(RTPAUDIOQOSRTT)"], hangup["Cause"], hangup["Linkedid"]) == ("", "16", "1796118656.3")
    assert "ChanVariable" not in hangup


def test_codec_from_the_native_format_variable() -> None:
    assert qos.native_format("(ulaw)") == "ulaw"
    assert qos.native_format("(g729|ulaw)") == "g729"
    assert qos.native_format("") is None and qos.native_format(None) is None
    block = hangup_block(RTPAUDIOQOS=MAIN_5) + "\r\nChanVariable: CHANNEL(audionativeformat)=(alaw)"
    event = parse_message(block)  # a variable after other lines: still found, and the lines between kept
    assert (event["Cause"], event["Cause-txt"]) == ("16", "Normal Clearing")
    data = qos.hangup_record("pbx1", event)
    assert data is not None and data["codec"] == "alaw" and data["lost"] == 20
    assert qos.codec(data["codec"]) == qos.CODECS["g711"]


# -- the ingest fast path: Asterisk's own layout read in three matches ---------------------------------------

_seconds = st.integers(min_value=0, max_value=2_000_000).map(lambda us: us / 1_000_000)
_counts = st.integers(min_value=0, max_value=4_000_000_000)


@settings(max_examples=300, deadline=None)
@given(
    lp=_counts, rxcount=_counts, txcount=_counts, rlp=_counts, ssrc=_counts,
    rxjitter=_seconds, txjitter=_seconds, rtt=_seconds, txmes=_seconds, rxmes=_seconds,
    maxrx=_seconds, avgrx=_seconds, maxrtt=_seconds, avgrtt=_seconds,
    with_jitter=st.booleans(), with_rtt=st.booleans(),
)  # fmt: skip
def test_asterisk_layout_reads_what_field_by_field_parsing_reads(
    lp: int, rxcount: int, txcount: int, rlp: int, ssrc: int, rxjitter: float, txjitter: float, rtt: float,
    txmes: float, rxmes: float, maxrx: float, avgrx: float, maxrtt: float, avgrtt: float,
    with_jitter: bool, with_rtt: bool,
) -> None:  # fmt: skip
    # the printf formats of Asterisk 22's rtp_engine.c
    main = (
        f"ssrc={ssrc};themssrc={ssrc};lp={lp};rxjitter={rxjitter:f};rxcount={rxcount};txjitter={txjitter:f};"
        f"txcount={txcount};rlp={rlp};rtt={rtt:f};rxmes={rxmes:f};txmes={txmes:f}"
    )
    jitter = (
        f"minrxjitter={0:010.6f};maxrxjitter={maxrx:010.6f};avgrxjitter={avgrx:010.6f};stdevrxjitter={0:010.6f};"
        f"mintxjitter={0:010.6f};maxtxjitter={0:010.6f};avgtxjitter={0:010.6f};stdevtxjitter={0:010.6f};"
        if with_jitter
        else ""
    )
    rtt_text = (
        f"     minrtt={0:010.6f};     maxrtt={maxrtt:010.6f};     avgrtt={avgrtt:010.6f};     stdevrtt={0:010.6f};"
        if with_rtt
        else ""
    )
    fast = qos._asterisk_leg_values(main, jitter, rtt_text)
    assert fast is not None
    assert fast == qos._field_leg_values(main, jitter, rtt_text)


@pytest.mark.parametrize(
    ("main", "rtt"),
    [
        (MAIN_5.replace("lp=20;", "lp=-3;"), RTT_NONE),  # a negative count: the field path names it
        (MAIN_5.replace("rtt=0.000000", "rtt=nan"), RTT_NONE),
        ("lp=20;rxcount=380;txjitter=0.000100;txcount=0", RTT_NONE),  # another order / fewer fields
        (MAIN_5, RTT_NONE.replace("avgrtt", "avgRTT")),  # another spelling of a key
        (MAIN_5, "avgrtt=0.020000;maxrtt=0.030000"),
        (MAIN_5.replace(";lp=", "; lp="), RTT_NONE),  # a padded key
    ],
)
def test_other_layouts_are_read_field_by_field(main: str, rtt: str) -> None:
    assert qos._asterisk_leg_values(main, JITTER_5, rtt) is None
    event = parse_message(hangup_block(RTPAUDIOQOS=main, RTPAUDIOQOSJITTER=JITTER_5, RTPAUDIOQOSRTT=rtt))
    try:
        expected = qos._field_leg_values(main, JITTER_5, rtt)
    except qos.QosParseError as exc:
        with pytest.raises(qos.QosParseError, match=str(exc).split(":")[0]):
            qos.hangup_record("pbx1", event)
        return
    data = qos.hangup_record("pbx1", event)
    assert data is not None and tuple(data[k] for k in qos._LEG_FIELDS) == expected


def test_far_end_report_through_the_fast_path() -> None:
    main = MAIN_5.replace("rlp=0;rtt=0.000000", "rlp=7;rtt=0.041000").replace("rxjitter=0.000000", "rxjitter=0.002000")
    rtt = "     minrtt=000.040000;     maxrtt=000.052000;     avgrtt=000.044000;     stdevrtt=000.001000;"
    fast = qos._asterisk_leg_values(main, JITTER_5, rtt)
    assert fast is not None
    leg = qos.LegQuality(*fast)
    assert (leg.far_lost, leg.far_jitter_ms, leg.rtt_ms, leg.rtt_max_ms) == (7, 2.0, 41.0, 52.0)
    main0 = main.replace("rtt=0.041000", "rtt=0.000000")  # no RTT at hangup: Asterisk's average over the call
    leg0 = qos.LegQuality(*(qos._asterisk_leg_values(main0, JITTER_5, rtt) or ()))
    assert leg0.rtt_ms == pytest.approx(44.0) and leg0.far_lost == 7


def test_variables_of_other_events_cost_no_keys_wherever_they_sit() -> None:
    # Asterisk writes a snapshot's variables after its Linkedid, before the event's own fields; DialBegin
    # carries a second snapshot whose lines are DestChanVariable
    block = (
        "Event: DialBegin\r\nChannel: PJSIP/trunk-a-1\r\nUniqueid: 1.1\r\nLinkedid: 1.1\r\n"
        "ChanVariable: RTPAUDIOQOS=\r\nChanVariable: CHANNEL(audionativeformat)=(ulaw)\r\n"
        "DestChannel: PJSIP/agent1-2\r\nDestUniqueid: 1.2\r\nDestChanVariable: RTPAUDIOQOS=\r\n"
        "DestChanVariable: RTPAUDIOQOSRTT=\r\nDialString: agent1"
    )
    assert parse_message(block) == {
        "Event": "DialBegin",
        "Channel": "PJSIP/trunk-a-1",
        "Uniqueid": "1.1",
        "Linkedid": "1.1",
        "DestChannel": "PJSIP/agent1-2",
        "DestUniqueid": "1.2",
        "DialString": "agent1",
    }
    hangup = parse_message(hangup_block(RTPAUDIOQOS=MAIN_5) + "\r\nDestChanVariable: X=1\r\nChanVariable: Y")
    assert hangup["DestChanVariable(X)"] == "1" and "ChanVariable(Y)" not in hangup and "ChanVariable" not in hangup

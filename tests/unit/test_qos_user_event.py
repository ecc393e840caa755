"""Voice quality from the dialplan's hangup handler: ``UserEvent: PbxSlaQos`` → the same ``qos_leg`` record as
the Hangup event's RTPAUDIOQOS variables; garbage refused with the header named; the feature's handler.

The fixtures are real events captured from Asterisk 22.10 on the sandbox (asterisk_conf/extensions.conf's
``pbx-sla-qos`` handler, a sipp caller on trunk-a with 5 % loss injected, an agent leg that sent but
received nothing), as AMI sends them; ``SEPARATE`` is the same leg from a handler written with separate
``Jitter:``/``Rtt:`` headers (``CHANNEL(rtcp,all_jitter)``, ``CHANNEL(rtcp,all_rtt)``), also captured.
"""

from __future__ import annotations

import pytest

from pbx_sla.ami.connection import parse_message
from pbx_sla.commands.status import QOS_WARN_AFTER_HANGUPS, qos_warnings
from pbx_sla.domain import qos
from pbx_sla.domain.events import ParseError
from pbx_sla.features.qos import RECENT_LEGS, HangupCounts, hangup_handler, user_event_handler

SNAPSHOT = (
    "Event: UserEvent\r\nPrivilege: user,all\r\nTimestamp: 1796140664.155075\r\nChannel: PJSIP/trunk-a-00000003\r\n"
    "ChannelState: 6\r\nChannelStateDesc: Up\r\nCallerIDNum: +420777000001\r\nCallerIDName: +420777000001\r\n"
    "ConnectedLineNum: agent1\r\nConnectedLineName: Agent One\r\nLanguage: en\r\nAccountCode: \r\n"
    "Context: pbx-sla-qos\r\nExten: s\r\nPriority: 2\r\nUniqueid: 1796140654.7\r\nLinkedid: 1796140654.7\r\n"
)
QOS = (
    "ssrc=1414285807;themssrc=1592594996;lp=20;rxjitter=0.000000;rxcount=380;txjitter=0.000000;txcount=0;rlp=0;"
    "rtt=0.000000;rxmes=0.000000;txmes=86.013796"
)
JITTER = (
    "minrxjitter=000.000000;maxrxjitter=000.000250;avgrxjitter=000.000025;stdevrxjitter=000.000063;"
    "mintxjitter=000.000000;maxtxjitter=000.000000;avgtxjitter=000.000000;stdevtxjitter=000.000000;"
)
# Asterisk's UserEvent strips the value: the RTTs' first key loses the padding RTPAUDIOQOSRTT has
RTT = "minrtt=000.000000;     maxrtt=000.000000;     avgrtt=000.000000;     stdevrtt=000.000000;"
SEPARATE = SNAPSHOT + f"UserEvent: PbxSlaQos\r\nQos: {QOS}\r\nJitter: {JITTER}\r\nRtt: {RTT}\r\nCodec: (ulaw)"
#: the shipped handler's form: CHANNEL(rtcp,all) and four single items in one header
REAL = (
    "Event: UserEvent\r\nPrivilege: user,all\r\nTimestamp: 1796140966.447903\r\nChannel: PJSIP/trunk-a-00000003\r\n"
    "ChannelState: 6\r\nChannelStateDesc: Up\r\nCallerIDNum: +420777000001\r\nCallerIDName: +420777000001\r\n"
    "ConnectedLineNum: agent1\r\nConnectedLineName: Agent One\r\nLanguage: en\r\nAccountCode: \r\n"
    "Context: pbx-sla-qos\r\nExten: s\r\nPriority: 7\r\nUniqueid: 1796140956.7\r\nLinkedid: 1796140956.7\r\n"
    "UserEvent: PbxSlaQos\r\nQos: ssrc=7352232;themssrc=1592594996;lp=20;rxjitter=0.000000;rxcount=380;"
    "txjitter=0.000000;txcount=0;rlp=0;rtt=0.000000;rxmes=0.000000;txmes=86.013796;maxrxjitter=0.006750;"
    "avgrxjitter=0.000791;maxrtt=0.000000;avgrtt=0.000000\r\nCodec: (ulaw)"
)
AGENT = (
    "Event: UserEvent\r\nPrivilege: user,all\r\nTimestamp: 1796140966.447972\r\nChannel: PJSIP/agent1-00000005\r\n"
    "ChannelState: 6\r\nChannelStateDesc: Up\r\nCallerIDNum: agent1\r\nCallerIDName: Agent One\r\n"
    "ConnectedLineNum: +420777000001\r\nConnectedLineName: +420777000001\r\nLanguage: en\r\nAccountCode: \r\n"
    "Context: pbx-sla-qos\r\nExten: s\r\nPriority: 7\r\nUniqueid: 1796140956.9\r\nLinkedid: 1796140956.7\r\n"
    "UserEvent: PbxSlaQos\r\nQos: ssrc=1084074242;themssrc=0;lp=0;rxjitter=0.000000;rxcount=0;txjitter=0.000000;"
    "txcount=378;rlp=0;rtt=0.000000;rxmes=0.000000;txmes=0.000000;maxrxjitter=0.000000;avgrxjitter=0.000000;"
    "maxrtt=0.000000;avgrtt=0.000000\r\nCodec: (ulaw)"
)
#: the same leg's Hangup with manager.conf channelvars (the other source)
HANGUP = (
    "Event: Hangup\r\nPrivilege: call,all\r\nTimestamp: 1796140664.155540\r\nChannel: PJSIP/trunk-a-00000003\r\n"
    "Uniqueid: 1796140654.7\r\nLinkedid: 1796140654.7\r\n"
    f"ChanVariable: RTPAUDIOQOS={QOS}\r\nChanVariable: RTPAUDIOQOSJITTER={JITTER}\r\n"
    f"ChanVariable: RTPAUDIOQOSRTT=     {RTT}\r\nChanVariable: CHANNEL(audionativeformat)=(ulaw)\r\n"
    "Cause: 16\r\nCause-txt: Normal Clearing"
)


def user_event(**headers: str) -> str:
    return SNAPSHOT + "UserEvent: PbxSlaQos\r\n" + "\r\n".join(f"{k}: {v}" for k, v in headers.items())


def test_real_user_event_gives_the_hangup_variables_record() -> None:
    data = qos.user_event_record("pbx1", parse_message(REAL))
    assert data is not None
    assert (data["server"], data["uniqueid"], data["linkedid"]) == ("pbx1", "1796140956.7", "1796140956.7")
    assert (data["channel"], data["endpoint"], data["codec"]) == ("PJSIP/trunk-a-00000003", "trunk-a", "ulaw")
    assert data["at"] == "2026-12-01T16:02:46.447903+00:00"
    assert (data["received"], data["lost"], data["sent"]) == (380, 20, 0)
    assert data["jitter_ms"] == 0.0 and data["jitter_max_ms"] == pytest.approx(6.75)
    assert data["jitter_avg_ms"] == pytest.approx(0.791)
    assert data["rtt_ms"] is None and data["far_lost"] is None and data["far_jitter_ms"] is None  # no RTCP: no data
    assert data["asterisk_mes"] == pytest.approx(86.013796)
    assert list(data)[7:] == list(qos._LEG_FIELDS)  # the record's literal follows LegQuality
    # the same leg's figures from the Hangup's variables (channelvars) and from the separate-headers form
    # (captured in another call: its own maximum and mean jitter)
    from_hangup = qos.hangup_record("pbx1", parse_message(HANGUP))
    separate = qos.user_event_record("pbx1", parse_message(SEPARATE))
    assert from_hangup is not None and separate is not None
    assert {k: v for k, v in separate.items() if k != "at"} == {k: v for k, v in from_hangup.items() if k != "at"}
    assert separate["at"] == "2026-12-01T15:57:44.155075+00:00" and separate["jitter_max_ms"] == pytest.approx(0.25)
    same = ("received", "lost", "sent", "jitter_ms", "far_lost", "rtt_ms", "asterisk_mes", "codec", "endpoint")
    assert {k: data[k] for k in same} == {k: separate[k] for k in same}


def test_shipped_form_agrees_with_the_field_by_field_path() -> None:
    text = parse_message(REAL)["Qos"]
    fast = qos._layout_values(*qos._USER_LAYOUT.fullmatch(text).groups())  # type: ignore[union-attr]
    fields = qos.parse_fields("Qos", text, qos._USER_FIELDS)
    assert fast == qos._values_from_fields(fields, fields, fields)
    with_rtt = text.replace("rlp=0;rtt=0.000000", "rlp=4;rtt=0.052000").replace("maxrtt=0.000000", "maxrtt=0.090000")
    event = parse_message(REAL.replace(text, with_rtt))
    data = qos.user_event_record("pbx1", event)
    assert data is not None and (data["far_lost"], data["rtt_ms"], data["rtt_max_ms"]) == (4, 52.0, 90.0)
    reordered = ";".join(reversed(with_rtt.split(";")))  # another layout: field by field, same figures
    other = qos.user_event_record("pbx1", parse_message(REAL.replace(text, reordered)))
    assert other == data


def test_leg_that_received_nothing_and_leg_without_media() -> None:
    data = qos.user_event_record("pbx1", parse_message(AGENT))
    assert data is not None and (data["received"], data["sent"], data["jitter_ms"]) == (0, 378, None)
    assert not qos.leg_from_record(data).measured
    # a leg never answered (or without an RTP session): the handler sends an empty Qos, no data (not 0)
    assert qos.user_event_record("pbx1", parse_message(user_event(Qos="", Codec="(ulaw)"))) is None
    assert qos.user_event_record("pbx1", parse_message(user_event(Qos="", Jitter="", Rtt="", Codec=""))) is None
    with pytest.raises(ParseError, match="'Qos' is missing"):
        qos.user_event_record("pbx1", parse_message(user_event(Codec="(ulaw)")))


def test_header_names_in_any_case_and_other_layouts() -> None:
    event = parse_message(user_event(QoS=parse_message(REAL)["Qos"], codec="(g729|ulaw)"))
    data = qos.user_event_record("pbx1", event)
    assert data is not None and (data["lost"], data["codec"]) == (20, "g729")
    event = parse_message(user_event(QoS=QOS, JITTER=JITTER, RTT=RTT, codec="(g729|ulaw)"))
    data = qos.user_event_record("pbx1", event)
    assert data is not None and (data["lost"], data["codec"]) == (20, "g729")
    # another order of fields (an older or newer Asterisk): field by field, same figures
    event = parse_message(user_event(Qos="rxcount=380;lp=20;txjitter=0.000000;txcount=0", Jitter=JITTER, Rtt=RTT))
    other = qos.user_event_record("pbx1", event)
    assert other is not None and (other["received"], other["lost"], other["jitter_max_ms"]) == (380, 20, 0.25)


@pytest.mark.parametrize(
    ("headers", "named"),
    [
        ({"Qos": QOS.replace("lp=20", "lp=20<script>"), "Jitter": JITTER, "Rtt": RTT}, "PbxSlaQos Qos: field 'lp'"),
        (
            {"Qos": QOS, "Jitter": JITTER.replace("maxrxjitter=000.000250", "maxrxjitter=x"), "Rtt": RTT},
            "PbxSlaQos Jitter: field 'maxrxjitter'",
        ),
        (
            {"Qos": QOS, "Jitter": JITTER, "Rtt": RTT.replace("avgrtt=000.000000", "avgrtt=-1")},
            "PbxSlaQos Rtt: field 'avgrtt'",
        ),
        ({"Qos": QOS.replace("rxcount=380", "rxcount=inf"), "Jitter": JITTER, "Rtt": RTT}, "field 'rxcount'"),
        ({"Qos": QOS + ";maxrxjitter=0.1;avgrxjitter=0.1;maxrtt=1e999;avgrtt=0"}, "PbxSlaQos Qos: field 'maxrtt'"),
        ({"Qos": QOS + ";maxrxjitter=;avgrxjitter=0.1;maxrtt=0;avgrtt=0"}, "PbxSlaQos Qos: field 'maxrxjitter'"),
        ({"Qos": "lp=3;txjitter=0.1"}, "PbxSlaQos Qos: field 'rxcount' is missing"),
        ({"Qos": QOS, "Jitter": JITTER, "Rtt": RTT, "Codec": "(ulaw'; DROP TABLE qos_legs)"}, "codec"),
    ],
)
def test_garbage_is_refused_naming_the_field(headers: dict[str, str], named: str) -> None:
    with pytest.raises(qos.QosParseError, match=named) as err:
        qos.user_event_record("pbx1", parse_message(user_event(**headers)))
    assert len(str(err.value)) < 120  # the rejected text is shown escaped and cut, never whole


def test_rejected_value_is_escaped_and_cut() -> None:
    long = "1" * 30 + "\x1b[31m" + "x" * 100
    with pytest.raises(qos.QosParseError) as err:
        qos.user_event_record("pbx1", parse_message(user_event(Qos=f"lp={long};rxcount=1", Jitter="", Rtt="")))
    assert "\x1b" not in str(err.value) and "\\x1b" in str(err.value) and str(err.value).endswith("…")


def test_feature_records_user_events_once_and_skips_the_hangup_of_the_same_leg() -> None:
    counts = HangupCounts()
    on_user, on_hangup = user_event_handler(counts), hangup_handler(counts)
    support = SNAPSHOT + "UserEvent: PbxSlaSupport\r\nAction: queue\r\nQueue: support-premium"
    assert list(on_user("pbx1", parse_message(support))) == []  # another UserEvent: not ours, not counted
    (record,) = on_user("pbx1", parse_message(SEPARATE))
    assert record.kind == qos.KIND and record.data["lost"] == 20
    # a PBX with channelvars as well: the leg's Hangup comes after its UserEvent and adds nothing
    assert list(on_hangup("pbx1", parse_message(HANGUP))) == []
    assert list(on_user("pbx1", parse_message(user_event(Qos="", Jitter="", Rtt="", Codec="")))) == []
    bad = user_event(Qos=QOS.replace("lp=20", "lp=x"), Jitter=JITTER, Rtt=RTT)
    assert list(on_user("pbx1", parse_message(bad))) == []  # logged, skipped, the daemon goes on
    assert counts.as_dict() == {"pbx1": {"hangups": 1, "hangups_with_qos": 1, "qos_events": 3, "legs_recorded": 1}}
    # without the UserEvent the Hangup's variables give the leg
    alone = HangupCounts()
    (again,) = hangup_handler(alone)("pbx1", parse_message(HANGUP))
    assert {k: v for k, v in again.data.items() if k != "at"} == {k: v for k, v in record.data.items() if k != "at"}


def test_recent_legs_stay_bounded() -> None:
    counts = HangupCounts()
    on_user = user_event_handler(counts)
    for i in range(2 * RECENT_LEGS + 1):
        list(on_user("pbx1", parse_message(REAL.replace("Uniqueid: 1796140956.7", f"Uniqueid: 9.{i}"))))
    recent = counts.recent["pbx1"]
    assert len(recent) == RECENT_LEGS and f"9.{2 * RECENT_LEGS}" in recent and "9.0" not in recent


def test_status_warns_when_neither_source_delivers() -> None:
    hangup = "Event: Hangup\r\nChannel: PJSIP/trunk-a-00000004\r\nUniqueid: 1.4\r\nCause: 16"
    counts = HangupCounts()
    on_user, on_hangup = user_event_handler(counts), hangup_handler(counts)
    for server in ("pbx1", "pbx2", "pbx3"):
        for _ in range(QOS_WARN_AFTER_HANGUPS):
            list(on_hangup(server, parse_message(hangup)))
    list(on_user("pbx1", parse_message(REAL)))  # the hangup handler reports: configured
    list(on_hangup("pbx3", parse_message(HANGUP)))  # channelvars: configured
    list(on_hangup("pbx4", parse_message(hangup)))  # too few Hangups to tell yet
    warnings = qos_warnings({"features": {"qos": counts.as_dict()}})
    assert len(warnings) == 1 and warnings[0].startswith(
        f"pbx2: {QOS_WARN_AFTER_HANGUPS} Hangup events but no PbxSlaQos UserEvent and no RTPAUDIOQOS variable"
    )
    assert "pbx-sla-qos hangup handler" in warnings[0] and "channelvars = RTPAUDIOQOS" in warnings[0]


def test_a_new_context_does_not_inherit_the_last_ones_legs() -> None:
    """The feature keys its counts by id(ctx), and an id is reused once its context is gone: a router built for
    a new context (the in-process benchmark builds one per run) must not skip its Hangups as already recorded."""
    from pbx_sla.features import qos as feature

    ctx = object()
    first = feature.event_handlers(ctx)  # type: ignore[arg-type]
    assert len(list(first[qos.USER_EVENT]("pbx1", parse_message(REAL)))) == 1
    again = feature.event_handlers(ctx)  # type: ignore[arg-type]  # same id: a new context in its place
    hangup = parse_message(HANGUP.replace("1796140654.7", "1796140956.7"))
    assert len(list(again[qos.HANGUP]("pbx1", hangup))) == 1
    assert feature.status(ctx)["pbx1"]["qos_events"] == 0  # type: ignore[arg-type]


def test_message_reader_counts_and_records_like_the_handler() -> None:
    """The raw-message reader gives the handler's record and counts; it declines other messages (not counted)."""
    counts, general = HangupCounts(), HangupCounts()
    reader = user_event_handler(counts).message
    (record,) = reader("pbx1", REAL) or ()
    assert [r.data for r in user_event_handler(general)("pbx1", parse_message(REAL))] == [record.data]
    support = SNAPSHOT + "UserEvent: PbxSlaSupport\r\nAction: queue\r\nQueue: support-premium"
    assert reader("pbx1", support) is None and reader("pbx1", SEPARATE) is None
    assert reader("pbx1", REAL.replace("(ulaw)", "(bad name!)")) is None  # refused by the general path, named
    assert (
        counts.as_dict()
        == general.as_dict()
        == {"pbx1": {"hangups": 0, "hangups_with_qos": 0, "qos_events": 1, "legs_recorded": 1}}
    )
    assert "1796140956.7" in counts.recent["pbx1"]

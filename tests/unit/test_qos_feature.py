"""The qos feature's Hangup handler (channelvars: records, counts) and the `status` warning built from its counts.

The UserEvent source: tests/unit/test_qos_user_event.py."""

from __future__ import annotations

from pbx_sla.ami.connection import parse_message
from pbx_sla.commands.status import QOS_WARN_AFTER_HANGUPS, qos_warnings
from pbx_sla.domain.qos import KIND
from pbx_sla.features.qos import HangupCounts, hangup_handler

WITH_QOS = (
    "Event: Hangup\r\nTimestamp: 1796118666.892079\r\nChannel: PJSIP/trunk-a-00000002\r\nUniqueid: 1.2\r\n"
    "Linkedid: 1.1\r\nChanVariable: RTPAUDIOQOS=ssrc=1;themssrc=2;lp=3;rxcount=97;txjitter=0.001;txcount=9\r\n"
    "Cause: 16"
)
EMPTY_QOS = "Event: Hangup\r\nChannel: Local/x-1;1\r\nUniqueid: 1.3\r\nChanVariable: RTPAUDIOQOS=\r\nCause: 16"
NO_QOS = "Event: Hangup\r\nChannel: PJSIP/trunk-a-00000004\r\nUniqueid: 1.4\r\nCause: 16"
BAD = "Event: Hangup\r\nChannel: PJSIP/trunk-a-5\r\nUniqueid: 1.5\r\nChanVariable: RTPAUDIOQOS=lp=x;rxcount=1"


def test_handler_records_and_counts() -> None:
    counts = HangupCounts()
    handle = hangup_handler(counts)
    (record,) = handle("pbx1", parse_message(WITH_QOS))
    assert record.kind == KIND and (record.data["received"], record.data["lost"]) == (97, 3)
    assert list(handle("pbx1", parse_message(EMPTY_QOS))) == []  # no RTP on that channel
    assert list(handle("pbx1", parse_message(NO_QOS))) == []
    assert list(handle("pbx1", parse_message(BAD))) == []  # logged and skipped, the daemon goes on
    assert counts.as_dict() == {"pbx1": {"hangups": 4, "hangups_with_qos": 3, "qos_events": 0, "legs_recorded": 1}}


def test_status_warns_only_when_no_hangup_carried_the_variables() -> None:
    counts = HangupCounts()
    handle = hangup_handler(counts)
    for _ in range(QOS_WARN_AFTER_HANGUPS):
        list(handle("pbx2", parse_message(NO_QOS)))
        list(handle("pbx1", parse_message(NO_QOS)))
    list(handle("pbx1", parse_message(WITH_QOS)))  # some Hangups with the variables: configured, no warning
    warnings = qos_warnings({"features": {"qos": counts.as_dict()}})
    assert len(warnings) == 1 and warnings[0].startswith(f"pbx2: {QOS_WARN_AFTER_HANGUPS} Hangup events but no")
    assert "channelvars = RTPAUDIOQOS" in warnings[0]
    assert qos_warnings({}) == [] and qos_warnings({"features": {}}) == []

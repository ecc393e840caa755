"""The daemon's ``Cdr`` handler: headers as cdr_manager's [mappings] spell them, and one warning per server
whose events carry no linkedid (each leg would otherwise silently become a call of its own)."""

from __future__ import annotations

from types import SimpleNamespace

from structlog.testing import capture_logs

from pbx_sla.features import calls as feature


def event(uid: str, seq: str, **extra: str) -> dict[str, str]:
    return {
        "Event": "Cdr", "AccountCode": "", "Source": "100", "Destination": "200", "DestinationContext": "ctx",
        "CallerID": '"x" <100>', "Channel": "PJSIP/a-00000001", "DestinationChannel": "PJSIP/b-00000002",
        "LastApplication": "Dial", "LastData": "", "StartTime": "2026-03-10 10:00:00", "AnswerTime": "",
        "EndTime": "2026-03-10 10:00:20", "Duration": "20", "BillableSeconds": "0", "Disposition": "NO ANSWER",
        "AMAFlags": "DOCUMENTATION", "UniqueID": uid, "UserField": "", **extra,
    }  # fmt: skip


def handler():
    ctx = SimpleNamespace(settings=SimpleNamespace(asterisk=()), catalogue=SimpleNamespace(current=None))
    return feature.event_handlers(ctx)["Cdr"]  # type: ignore[arg-type]


def test_a_remapped_linkedid_header_groups_the_legs():
    handle = handler()
    legs = [r.data for i in range(3) for r in handle("pbx1", event(f"1.{i}", str(i), Linkedid="1.0", sequence=str(i)))]
    assert {leg["call_key"] for leg in legs} == {"1.0"}
    assert [leg["sequence"] for leg in legs] == [0, 1, 2]


def test_events_without_linkedid_are_warned_about_once_per_server():
    handle = handler()
    with capture_logs() as logs:
        for server in ("pbx1", "pbx2", "pbx1"):
            for i in range(3):
                assert len(list(handle(server, event(f"{i}.1", str(i))))) == 1  # still stored
        handle("pbx3", event("9.1", "1", LinkedID="9.0"))  # a server that maps it: no warning
    warnings = [e for e in logs if "carry no linkedid" in e["event"]]
    assert [(e["log_level"], e["server"]) for e in warnings] == [("warning", "pbx1"), ("warning", "pbx2")]

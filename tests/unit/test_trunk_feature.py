"""The trunks feature: AMI events → trunk_observation records, and the post-login resync poll."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pbx_sla.config import Settings
from pbx_sla.domain.catalogue import Catalogue, Trunk
from pbx_sla.errors import RemoteError
from pbx_sla.features import ServiceContext
from pbx_sla.features import trunks as feature


class Holder:
    def __init__(self, catalogue: Catalogue | None) -> None:
        self.current = catalogue


def make_ctx(catalogue: Catalogue | None = None) -> ServiceContext:
    settings = Settings.__new__(Settings)  # the feature reads no setting
    return ServiceContext(settings=settings, dsn="", submit=lambda r: None, catalogue=Holder(catalogue))


class FakeAmi:
    """Answers like Asterisk 22 does (response, items, ...Complete); records the actions sent."""

    def __init__(self, answers: dict[tuple[str, str], list[dict[str, str]] | Exception]) -> None:
        self.answers = answers
        self.sent: list[dict[str, str]] = []

    async def send(self, action):
        self.sent.append(dict(action))
        answer = self.answers[(action["Action"], action.get("Endpoint", ""))]
        if isinstance(answer, Exception):
            raise answer
        return [{"Response": "Success", "EventList": "start"}, *answer, {"Event": action["Action"] + "Complete"}]


def test_contact_status_event_becomes_an_observation():
    handlers = feature.event_handlers(make_ctx())
    records = list(
        handlers["ContactStatus"](
            "pbx1",
            {
                "Event": "ContactStatus",
                "Timestamp": "1795046400.250000",
                "URI": "sip:trunk-a@127.0.0.1:5071",
                "ContactStatus": "Unreachable",
                "AOR": "trunk-a",
                "EndpointName": "trunk-a",
                "RoundtripUsec": "0",
            },
        )
    )
    assert [r.kind for r in records] == ["trunk_observation"]
    assert records[0].data == {
        "server": "pbx1",
        "trunk": "trunk-a",
        "at": "2026-11-19T00:00:00.250000+00:00",
        "source": "contact",
        "key": "sip:trunk-a@127.0.0.1:5071",
        "status": "Unreachable",
        "aor": "trunk-a",
        "rtt_usec": None,
        "polled": False,
    }


def test_bad_events_are_logged_and_skipped():
    handlers = feature.event_handlers(make_ctx())
    assert list(handlers["ContactStatus"]("pbx1", {"Event": "ContactStatus", "URI": "sip:x"})) == []
    assert (
        list(handlers["PeerStatus"]("pbx1", {"ChannelType": "SIP", "Peer": "SIP/x", "PeerStatus": "Reachable"})) == []
    )
    peer = list(
        handlers["PeerStatus"](
            "pbx1", {"ChannelType": "PJSIP", "Peer": "PJSIP/trunk-b", "PeerStatus": "Reachable", "Timestamp": "1"}
        )
    )
    assert [(r.data["trunk"], r.data["source"], r.data["status"]) for r in peer] == [("trunk-b", "peer", "Reachable")]


def endpoint_list(name: str, aors: str, contacts: str = "") -> dict[str, str]:
    return {"Event": "EndpointList", "ObjectName": name, "Aor": aors, "Contacts": contacts, "DeviceState": "Unknown"}


def detail(uri: str, status: str, rtt: str = "0") -> dict[str, str]:
    return {"Event": "ContactStatusDetail", "AOR": "trunk-a", "URI": uri, "Status": status, "RoundtripUsec": rtt}


async def test_on_login_polls_endpoints_and_registrations_stamped_with_send_time(monkeypatch):
    stamps = iter(datetime(2026, 11, 19, 10, 0, s, tzinfo=UTC) for s in range(10))
    monkeypatch.setattr(feature, "_now", lambda: next(stamps))
    catalogue = Catalogue("Europe/Prague", "420", trunks=(Trunk("trunk-a", "pbx1"), Trunk("trunk-gone", "pbx1")))
    ctx = make_ctx(catalogue)
    ami = FakeAmi(
        {
            ("PJSIPShowEndpoints", ""): [
                endpoint_list("anonymous", ""),
                endpoint_list("trunk-a", "trunk-a", "trunk-a/sip:a@h:5071,"),
                endpoint_list("trunk-b", "trunk-b"),
                endpoint_list("vanished", "vanished"),
            ],
            ("PJSIPShowEndpoint", "trunk-a"): [
                {"Event": "EndpointDetail", "ObjectName": "trunk-a"},
                detail("sip:a@h:5071", "Reachable", "1200"),
                detail("sip:a@h:5071", "Reachable", "1200"),  # listed once per AOR: counted once
            ],
            ("PJSIPShowEndpoint", "trunk-b"): [{"Event": "EndpointDetail", "ObjectName": "trunk-b"}],
            ("PJSIPShowEndpoint", "vanished"): RemoteError("Unable to retrieve endpoint vanished"),
            ("PJSIPShowRegistrationsOutbound", ""): [
                {
                    "Event": "OutboundRegistrationDetail",
                    "ObjectName": "carrier-reg",
                    "ClientUri": "sip:100@carrier",
                    "ServerUri": "sip:carrier",
                    "Status": "Registered",
                    "Endpoint": "trunk-b",
                }
            ],
        }
    )
    records = await feature.on_login(ctx, "pbx1", ami)
    got = [(r.data["trunk"], r.data["source"], r.data["key"], r.data["status"], r.data["at"][11:19]) for r in records]
    # stamps: 0 trunk-a poll, 1 trunk-b poll, 2 vanished poll, 3 missing catalogue trunk, 4 registrations
    assert got == [
        ("trunk-a", "contact", "sip:a@h:5071", "Reachable", "10:00:00"),
        ("trunk-b", "endpoint", "", "NoContacts", "10:00:01"),
        ("trunk-gone", "endpoint", "", "NoContacts", "10:00:03"),
        ("trunk-b", "registration", "carrier-reg", "Registered", "10:00:04"),
    ]
    assert all(r.data["polled"] for r in records)
    assert records[0].data["rtt_usec"] == 1200
    assert {a.get("Endpoint") for a in ami.sent if a["Action"] == "PJSIPShowEndpoint"} == {
        "trunk-a",
        "trunk-b",
        "vanished",
    }  # anonymous has no AOR and is not in the catalogue: not polled

    # the poll taught the Registry handler which trunk a registration belongs to
    registry = feature.event_handlers(ctx)["Registry"]
    event = {
        "Event": "Registry",
        "ChannelType": "PJSIP",
        "Username": "sip:100@carrier",
        "Domain": "sip:carrier",
        "Status": "Rejected",
        "Timestamp": "1795046400",
    }
    assert [(r.data["trunk"], r.data["key"], r.data["status"]) for r in registry("pbx1", event)] == [
        ("trunk-b", "carrier-reg", "Rejected")
    ]
    assert list(registry("pbx2", event)) == []


async def test_on_login_without_outbound_registration_module():
    ami = FakeAmi(
        {
            ("PJSIPShowEndpoints", ""): [],
            ("PJSIPShowRegistrationsOutbound", ""): RemoteError("Invalid/unknown command"),
        }
    )
    assert await feature.on_login(make_ctx(), "pbx1", ami) == []


async def test_on_login_lets_timeouts_through():
    ami = FakeAmi({("PJSIPShowEndpoints", ""): TimeoutError("no answer")})
    with pytest.raises(TimeoutError):
        await feature.on_login(make_ctx(), "pbx1", ami)


def test_sinks_cover_the_record_kind():
    assert [s.kind for s in feature.sinks(make_ctx())] == ["trunk_observation"]

"""Typed parsing of trunk-related AMI events: exact times, clear errors naming event and field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pbx_sla.domain import events as ev

CONTACT = {
    "Event": "ContactStatus",
    "Privilege": "system,all",
    "Timestamp": "1795046400.123456",
    "URI": "sip:trunk-a@127.0.0.1:5071",
    "ContactStatus": "Reachable",
    "AOR": "trunk-a",
    "EndpointName": "trunk-a",
    "RoundtripUsec": "1834",
}


def test_contact_status_fields_and_exact_microseconds():
    e = ev.contact_status(CONTACT)
    # 1795046400 = 86400 * 20776 = 2026-11-19T00:00:00Z
    assert e.at == datetime(2026, 11, 19, 0, 0, 0, 123456, tzinfo=UTC)
    assert (e.endpoint, e.aor, e.uri, e.status, e.rtt_usec) == (
        "trunk-a",
        "trunk-a",
        "sip:trunk-a@127.0.0.1:5071",
        "Reachable",
        1834,
    )


def test_timestamp_keeps_microseconds_a_float_would_round():
    e = ev.contact_status({**CONTACT, "Timestamp": "1795104000.000001"})
    assert e.at.microsecond == 1


def test_rtt_zero_means_not_measured():
    assert ev.contact_status({**CONTACT, "ContactStatus": "Unreachable", "RoundtripUsec": "0"}).rtt_usec is None


def test_created_is_the_old_name_of_nonqualified():
    assert ev.contact_status({**CONTACT, "ContactStatus": "Created"}).status == "NonQualified"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"Timestamp": None}, "Timestamp"),
        ({"Timestamp": "yesterday"}, "Timestamp"),
        ({"Timestamp": "-5"}, "Timestamp"),
        ({"EndpointName": ""}, "EndpointName"),
        ({"URI": None}, "URI"),
        ({"ContactStatus": "Sleeping"}, "ContactStatus"),
        ({"RoundtripUsec": "fast"}, "RoundtripUsec"),
    ],
)
def test_contact_status_errors_name_event_and_field(change, field):
    raw = {k: v for k, v in {**CONTACT, **change}.items() if v is not None}
    with pytest.raises(ev.ParseError) as info:
        ev.contact_status(raw)
    assert info.value.event == "ContactStatus"
    assert info.value.field == field
    assert "ContactStatus" in str(info.value) and field in str(info.value)


def test_peer_status_pjsip_only():
    raw = {"Event": "PeerStatus", "ChannelType": "PJSIP", "Peer": "PJSIP/trunk-b", "PeerStatus": "Unreachable"}
    e = ev.peer_status({**raw, "Timestamp": "1795104001.5"})
    assert (e.endpoint, e.status, e.at.microsecond) == ("trunk-b", "Unreachable", 500000)
    assert ev.peer_status({**raw, "ChannelType": "SIP", "Peer": "SIP/x", "Timestamp": "1"}) is None
    with pytest.raises(ev.ParseError, match="'Peer'"):
        ev.peer_status({**raw, "Peer": "trunk-b", "Timestamp": "1"})
    with pytest.raises(ev.ParseError, match="'PeerStatus'"):
        ev.peer_status({**raw, "PeerStatus": "Registered", "Timestamp": "1"})


def test_registry_event():
    raw = {
        "Event": "Registry",
        "ChannelType": "PJSIP",
        "Username": "sip:100@carrier.example",
        "Domain": "sip:carrier.example",
        "Status": "Rejected",
        "Cause": "403 Forbidden",
        "Timestamp": "1795104002.000000",
    }
    e = ev.registry(raw)
    assert (e.client_uri, e.server_uri, e.status, e.cause) == (
        "sip:100@carrier.example",
        "sip:carrier.example",
        "Rejected",
        "403 Forbidden",
    )
    with pytest.raises(ev.ParseError, match="'Status'"):
        ev.registry({**raw, "Status": ""})


def test_list_items():
    item = ev.endpoint_list_item(
        {
            "Event": "EndpointList",
            "ObjectName": "trunk-a",
            "Aor": "trunk-a",
            "Contacts": "trunk-a/sip:trunk-a@127.0.0.1:5071,",
            "DeviceState": "Not in use",
        }
    )
    assert item == ev.EndpointListItem("trunk-a", ("trunk-a",), "Not in use", ("trunk-a/sip:trunk-a@127.0.0.1:5071",))
    detail = ev.contact_status_detail(
        {
            "Event": "ContactStatusDetail",
            "AOR": "trunk-a",
            "URI": "sip:x@h",
            "Status": "Unknown",
            "RoundtripUsec": "N/A",
        },
        "trunk-a",
    )
    assert detail == ev.ContactStatusDetail("trunk-a", "trunk-a", "sip:x@h", "Unknown", None)
    with pytest.raises(ev.ParseError, match="ContactStatusDetail: field 'URI'"):
        ev.contact_status_detail({"Status": "Reachable"}, "trunk-a")
    reg = ev.outbound_registration_detail(
        {"ObjectName": "carrier", "ClientUri": "sip:1@c", "ServerUri": "sip:c", "Status": "Registered"}
    )
    assert (reg.name, reg.endpoint, reg.status) == ("carrier", "", "Registered")


@pytest.mark.parametrize(
    "text",
    ["1795104000.000001", "1795104000.000000", "1795104000.999999", " 1795104000.123456 ", "0.000000",
     "1795104000.5", "1795104000", "1795104000.1234565", "1795104000.1234555", "1.7951e9", "٣.000000"],
)  # fmt: skip
def test_timestamp_short_path_agrees_with_decimal(text):
    # Asterisk's own form (6 fraction digits) skips Decimal; every other spelling still goes through it
    from decimal import Decimal

    value = Decimal(text.strip())
    micros = int((value * 1_000_000).to_integral_value())
    expected = datetime.fromtimestamp(micros // 1_000_000, UTC).replace(microsecond=micros % 1_000_000)
    assert ev.parse_timestamp({"Timestamp": text}, "X") == expected

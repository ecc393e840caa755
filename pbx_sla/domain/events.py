"""Typed trunk-related AMI events, parsed from the plain ``str → str`` dicts the AMI adapter delivers.

Parsing is strict where pbx-sla depends on a field (endpoint, status, time) and lenient elsewhere: a bad or
missing required field raises :class:`ParseError` naming the event and the field, so a handler can log it and
skip that one event. Times come from the event's ``Timestamp`` (``epoch.usec``, ``timestampevents = yes``),
never from when we happened to read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from pbx_sla.errors import PbxSlaError

CONTACT_STATUS = "ContactStatus"
PEER_STATUS = "PeerStatus"
REGISTRY = "Registry"
ENDPOINT_LIST = "EndpointList"
CONTACT_STATUS_DETAIL = "ContactStatusDetail"
OUTBOUND_REGISTRATION_DETAIL = "OutboundRegistrationDetail"

#: contact states Asterisk reports; ``Created`` is the pre-16 name of ``NonQualified``
CONTACT_STATES = frozenset({"Reachable", "Unreachable", "Unknown", "NonQualified", "Removed"})
PEER_STATES = frozenset({"Reachable", "Unreachable"})


class ParseError(PbxSlaError, ValueError):
    """An AMI event lacks a field pbx-sla needs, or the field is malformed."""

    def __init__(self, event: str, field: str, problem: str) -> None:
        super().__init__(f"{event}: field {field!r} {problem}")
        self.event = event
        self.field = field


def _get(raw: Mapping[str, str], event: str, field: str) -> str:
    value = raw.get(field)
    if value is None or not value.strip():
        raise ParseError(event, field, "is missing or empty")
    return value.strip()


def parse_timestamp(raw: Mapping[str, str], event: str, field: str = "Timestamp") -> datetime:
    """``epoch.usec`` → aware UTC datetime, exact to the microsecond (no float rounding)."""
    text = _get(raw, event, field)
    seconds, _, fraction = text.partition(".")
    if seconds.isdigit() and seconds.isascii() and len(fraction) == 6 and fraction.isdigit() and fraction.isascii():
        # Asterisk's own form (``%ld.%06lu``): no Decimal needed for the exact value
        try:
            return datetime.fromtimestamp(int(seconds), UTC).replace(microsecond=int(fraction))
        except (OverflowError, OSError, ValueError):
            raise ParseError(event, field, f"is out of range: {text!r}") from None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ParseError(event, field, f"is not epoch seconds: {text!r}") from None
    if not value.is_finite() or value < 0:
        raise ParseError(event, field, f"is not epoch seconds: {text!r}")
    micros = int((value * 1_000_000).to_integral_value())
    try:
        return datetime.fromtimestamp(micros // 1_000_000, UTC).replace(microsecond=micros % 1_000_000)
    except (OverflowError, OSError, ValueError):
        raise ParseError(event, field, f"is out of range: {text!r}") from None


def non_negative_int(raw: Mapping[str, str], event: str, field: str) -> int | None:
    """An optional count or duration field: None when absent or empty; ParseError names a bad value."""
    text = (raw.get(field) or "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise ParseError(event, field, f"is not an integer: {text!r}") from None
    if value < 0:
        raise ParseError(event, field, f"is negative: {text!r}")
    return value


def _rtt(raw: Mapping[str, str], event: str, field: str = "RoundtripUsec") -> int | None:
    if (raw.get(field) or "").strip().upper() == "N/A":
        return None
    return non_negative_int(raw, event, field) or None  # Asterisk reports 0 when no round trip was measured


def _contact_state(raw: Mapping[str, str], event: str, field: str) -> str:
    status = _get(raw, event, field)
    if status == "Created":
        status = "NonQualified"
    if status not in CONTACT_STATES:
        raise ParseError(event, field, f"has an unknown contact state {status!r}")
    return status


@dataclass(frozen=True)
class ContactStatusEvent:
    """One contact (URI) of one AOR of one endpoint changed state."""

    at: datetime
    endpoint: str
    aor: str
    uri: str
    status: str  # Reachable | Unreachable | Unknown | NonQualified | Removed
    rtt_usec: int | None


@dataclass(frozen=True)
class PeerStatusEvent:
    """The endpoint's aggregate reachability changed (any contact reachable → Reachable)."""

    at: datetime
    endpoint: str
    status: str  # Reachable | Unreachable


@dataclass(frozen=True)
class RegistryEvent:
    """An outbound registration changed state; it names URIs only, not the registration or endpoint."""

    at: datetime
    client_uri: str
    server_uri: str
    status: str  # Registered | Unregistered | Rejected (anything else is kept as sent)
    cause: str


@dataclass(frozen=True)
class EndpointListItem:
    """One ``EndpointList`` item of ``PJSIPShowEndpoints``."""

    endpoint: str
    aors: tuple[str, ...]
    device_state: str
    contacts: tuple[str, ...]


@dataclass(frozen=True)
class ContactStatusDetail:
    """One ``ContactStatusDetail`` item of ``PJSIPShowEndpoint``: a contact's state at poll time."""

    endpoint: str
    aor: str
    uri: str
    status: str
    rtt_usec: int | None


@dataclass(frozen=True)
class OutboundRegistrationDetail:
    """One ``OutboundRegistrationDetail`` item of ``PJSIPShowRegistrationsOutbound``."""

    name: str
    client_uri: str
    server_uri: str
    status: str
    endpoint: str  # the registration's ``endpoint`` option; empty when not set


def contact_status(raw: Mapping[str, str]) -> ContactStatusEvent:
    ev = CONTACT_STATUS
    return ContactStatusEvent(
        at=parse_timestamp(raw, ev),
        endpoint=_get(raw, ev, "EndpointName"),
        aor=(raw.get("AOR") or "").strip(),
        uri=_get(raw, ev, "URI"),
        status=_contact_state(raw, ev, "ContactStatus"),
        rtt_usec=_rtt(raw, ev),
    )


def peer_status(raw: Mapping[str, str]) -> PeerStatusEvent | None:
    """``None`` for other channel technologies (chan_sip, IAX2): pbx-sla follows PJSIP only."""
    ev = PEER_STATUS
    tech = (raw.get("ChannelType") or "").strip()
    if tech.upper() != "PJSIP":
        return None
    peer = _get(raw, ev, "Peer")
    prefix, sep, endpoint = peer.partition("/")
    if not sep or prefix.upper() != "PJSIP" or not endpoint:
        raise ParseError(ev, "Peer", f"is not PJSIP/<endpoint>: {peer!r}")
    status = _get(raw, ev, "PeerStatus")
    if status not in PEER_STATES:
        raise ParseError(ev, "PeerStatus", f"has an unknown state {status!r}")
    return PeerStatusEvent(at=parse_timestamp(raw, ev), endpoint=endpoint, status=status)


def registry(raw: Mapping[str, str]) -> RegistryEvent | None:
    """``None`` for other channel technologies."""
    ev = REGISTRY
    tech = (raw.get("ChannelType") or raw.get("Channeltype") or "").strip()
    if tech.upper() != "PJSIP":
        return None
    return RegistryEvent(
        at=parse_timestamp(raw, ev),
        client_uri=_get(raw, ev, "Username"),
        server_uri=_get(raw, ev, "Domain"),
        status=_get(raw, ev, "Status"),
        cause=(raw.get("Cause") or "").strip(),
    )


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


def endpoint_list_item(raw: Mapping[str, str]) -> EndpointListItem:
    ev = ENDPOINT_LIST
    return EndpointListItem(
        endpoint=_get(raw, ev, "ObjectName"),
        aors=_split(raw.get("Aor")),
        device_state=(raw.get("DeviceState") or "").strip(),
        contacts=_split(raw.get("Contacts")),
    )


def contact_status_detail(raw: Mapping[str, str], endpoint: str | None = None) -> ContactStatusDetail:
    """``endpoint``: the endpoint that was asked about, used when the item does not name one."""
    ev = CONTACT_STATUS_DETAIL
    name = (raw.get("EndpointName") or "").strip() or (endpoint or "")
    if not name:
        raise ParseError(ev, "EndpointName", "is missing or empty")
    return ContactStatusDetail(
        endpoint=name,
        aor=(raw.get("AOR") or "").strip(),
        uri=_get(raw, ev, "URI"),
        status=_contact_state(raw, ev, "Status"),
        rtt_usec=_rtt(raw, ev),
    )


def outbound_registration_detail(raw: Mapping[str, str]) -> OutboundRegistrationDetail:
    ev = OUTBOUND_REGISTRATION_DETAIL
    return OutboundRegistrationDetail(
        name=_get(raw, ev, "ObjectName"),
        client_uri=_get(raw, ev, "ClientUri"),
        server_uri=_get(raw, ev, "ServerUri"),
        status=_get(raw, ev, "Status"),
        endpoint=(raw.get("Endpoint") or "").strip(),
    )

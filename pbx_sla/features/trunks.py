"""The trunks feature: AMI trunk events and a post-login poll → ``trunk_observation`` records.

Events (``ContactStatus``, ``PeerStatus`` with ``ChannelType: PJSIP``, ``Registry``) are sent on change only
and are lost while pbx-sla is disconnected, so after every login :func:`on_login` polls the current state:
``PJSIPShowEndpoints``, then ``PJSIPShowEndpoint`` for each endpoint that has AORs or is a catalogue trunk,
then ``PJSIPShowRegistrationsOutbound``. Polled observations are stamped with the time the poll was *sent*:
an event that races the poll then sorts after it, so a stale answer never overrides a newer event.

Every PJSIP endpoint's observations are recorded; which endpoints are trunks is decided when storing (the
catalogue's, plus any endpoint that ever reported Reachable/Unreachable, see docs/trunks.md).
``Registry`` events name only URIs: they are mapped to a registration and its trunk (the registration's
``endpoint`` option, else the registration's own name) with the map learned by the last poll.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from pbx_sla.domain import events as ev
from pbx_sla.domain.trunks import NO_CONTACTS
from pbx_sla.errors import RemoteError
from pbx_sla.features import ServiceContext
from pbx_sla.input_warnings import warn_input
from pbx_sla.log import get_logger
from pbx_sla.pipeline import EventHandler, Record, Sink
from pbx_sla.store.trunks import KIND, TrunkObservationSink, observation_record_data

log = get_logger(__name__)
T = TypeVar("T")


class AmiActions(Protocol):
    async def send(self, action: Mapping[str, str]) -> list[dict[str, str]]: ...


def _record(**fields: Any) -> Record:
    return Record(KIND, observation_record_data(**fields))


class RegistrationMap:
    """(client URI, server URI) → (registration name, trunk), per server, learned by the post-login poll."""

    def __init__(self) -> None:
        self._by_server: dict[str, dict[tuple[str, str], tuple[str, str]]] = {}

    def learn(self, server: str, details: Iterable[ev.OutboundRegistrationDetail]) -> None:
        self._by_server[server] = {(d.client_uri, d.server_uri): (d.name, d.endpoint or d.name) for d in details}

    def find(self, server: str, client_uri: str, server_uri: str) -> tuple[str, str] | None:
        return self._by_server.get(server, {}).get((client_uri, server_uri))


_maps: dict[int, RegistrationMap] = {}


def registrations(ctx: ServiceContext) -> RegistrationMap:
    """The registration map of one daemon (one :class:`ServiceContext`)."""
    return _maps.setdefault(id(ctx), RegistrationMap())


def _parsed(parse: Callable[[Mapping[str, str]], T | None], server: str, event: Mapping[str, str]) -> T | None:
    """``parse(event)``, or None after a warning naming the event and field when it is malformed."""
    try:
        return parse(event)
    except ev.ParseError as exc:
        warn_input(
            log,
            f"event.{event.get('Event', '?')}",
            f"{event.get('Event', '?')} event skipped",
            server=server,
            error=str(exc),
        )
        return None


def handle_contact_status(server: str, event: Mapping[str, str]) -> Iterable[Record]:
    e = _parsed(ev.contact_status, server, event)
    if e is None:
        return ()
    return (
        _record(
            server=server,
            trunk=e.endpoint,
            at=e.at,
            source="contact",
            key=e.uri,
            aor=e.aor,
            status=e.status,
            rtt_usec=e.rtt_usec,
        ),
    )


def handle_peer_status(server: str, event: Mapping[str, str]) -> Iterable[Record]:
    e = _parsed(ev.peer_status, server, event)
    if e is None:
        return ()
    return (_record(server=server, trunk=e.endpoint, at=e.at, source="peer", status=e.status),)


def registry_handler(ctx: ServiceContext) -> EventHandler:
    regs = registrations(ctx)

    def handle(server: str, event: Mapping[str, str]) -> Iterable[Record]:
        e = _parsed(ev.registry, server, event)
        if e is None:
            return ()
        found = regs.find(server, e.client_uri, e.server_uri)
        if found is None:
            log.info(
                "Registry event for a registration not seen by the last poll; skipped",
                server=server,
                client_uri=e.client_uri,
                server_uri=e.server_uri,
                status=e.status,
            )
            return ()
        name, trunk = found
        return (_record(server=server, trunk=trunk, at=e.at, source="registration", key=name, status=e.status),)

    return handle


def event_handlers(ctx: ServiceContext) -> Mapping[str, EventHandler]:
    return {
        ev.CONTACT_STATUS: handle_contact_status,
        ev.PEER_STATUS: handle_peer_status,
        ev.REGISTRY: registry_handler(ctx),
    }


def sinks(ctx: ServiceContext) -> Sequence[Sink]:
    return (TrunkObservationSink(),)


def _now() -> datetime:
    return datetime.now(UTC)


def _catalogue_trunks(ctx: ServiceContext, server: str) -> set[str]:
    catalogue = ctx.catalogue.current
    if catalogue is None:
        return set()
    return {t.name for t in catalogue.trunks if t.server == server}


async def poll_endpoint(server: str, ami: AmiActions, endpoint: str) -> list[Record]:
    """``PJSIPShowEndpoint`` → one observation per contact, or ``NoContacts`` when it has none."""
    at = _now()
    try:
        items = await ami.send({"Action": "PJSIPShowEndpoint", "Endpoint": endpoint})
    except RemoteError as exc:  # removed between the list and this question
        log.info("endpoint vanished during resync", server=server, endpoint=endpoint, error=str(exc))
        return []
    details: dict[str, ev.ContactStatusDetail] = {}
    for item in items:
        if item.get("Event") != ev.CONTACT_STATUS_DETAIL:
            continue
        try:
            detail = ev.contact_status_detail(item, endpoint)
        except ev.ParseError as exc:
            warn_input(
                log,
                "event.ContactStatusDetail",
                "ContactStatusDetail skipped",
                server=server,
                endpoint=endpoint,
                error=str(exc),
            )
            continue
        details.setdefault(detail.uri, detail)
    if not details:
        return [_record(server=server, trunk=endpoint, at=at, source="endpoint", status=NO_CONTACTS, polled=True)]
    return [
        _record(
            server=server,
            trunk=endpoint,
            at=at,
            source="contact",
            key=d.uri,
            aor=d.aor,
            status=d.status,
            rtt_usec=d.rtt_usec,
            polled=True,
        )
        for d in details.values()
    ]


async def poll_registrations(ctx: ServiceContext, server: str, ami: AmiActions) -> list[Record]:
    at = _now()
    try:
        items = await ami.send({"Action": "PJSIPShowRegistrationsOutbound"})
    except RemoteError as exc:  # res_pjsip_outbound_registration not loaded: no registrations to follow
        log.info("no outbound registrations to follow", server=server, error=str(exc))
        registrations(ctx).learn(server, ())
        return []
    details = []
    for item in items:
        if item.get("Event") != ev.OUTBOUND_REGISTRATION_DETAIL:
            continue
        try:
            details.append(ev.outbound_registration_detail(item))
        except ev.ParseError as exc:
            warn_input(
                log,
                "event.OutboundRegistrationDetail",
                "OutboundRegistrationDetail skipped",
                server=server,
                error=str(exc),
            )
    registrations(ctx).learn(server, details)
    return [
        _record(
            server=server,
            trunk=d.endpoint or d.name,
            at=at,
            source="registration",
            key=d.name,
            status=d.status,
            polled=True,
        )
        for d in details
    ]


async def on_login(ctx: ServiceContext, server: str, ami: AmiActions) -> list[Record]:
    """Resync after a login: the current state of every endpoint with AORs, and of outbound registrations.

    Timeouts and a lost connection propagate (the collector starts a new session); an endpoint that vanished
    meanwhile is skipped.
    """
    wanted = _catalogue_trunks(ctx, server)
    listed: dict[str, ev.EndpointListItem] = {}
    for message in await ami.send({"Action": "PJSIPShowEndpoints"}):
        if message.get("Event") != ev.ENDPOINT_LIST:
            continue
        try:
            parsed = ev.endpoint_list_item(message)
        except ev.ParseError as exc:
            warn_input(log, "event.EndpointList", "EndpointList item skipped", server=server, error=str(exc))
            continue
        listed[parsed.endpoint] = parsed
    records: list[Record] = []
    for name in sorted(listed):
        item = listed[name]
        if item.aors or item.contacts or name in wanted:
            records.extend(await poll_endpoint(server, ami, name))
    at = _now()
    for name in sorted(wanted - set(listed)):  # a catalogue trunk Asterisk does not know: nothing to reach
        log.warning("catalogue trunk is not a PJSIP endpoint on this server", server=server, trunk=name)
        records.append(_record(server=server, trunk=name, at=at, source="endpoint", status=NO_CONTACTS, polled=True))
    records.extend(await poll_registrations(ctx, server, ami))
    log.info("trunk resync done", server=server, endpoints=len(listed), observations=len(records))
    return records

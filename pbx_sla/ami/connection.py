"""One AMI connection to one Asterisk: panoramisk's ``Manager``, wrapped so that it fails loudly and cheaply.

What the wrapper changes, and why:

* no reconnect and no ping of panoramisk's own: :class:`pbx_sla.ami.collector.Collector` owns the
  reconnect loop (exponential backoff, so a wrong secret is not a login storm) and runs its own ``Ping``
  with a timeout (half-open TCP detection);
* a robust reader: bytes are decoded incrementally (a UTF-8 character split across two TCP reads is kept;
  bytes that are not UTF-8, such as a Latin-1 caller name, are read as CP1252 exactly as ``cdr import``
  reads them, :mod:`pbx_sla.domain.text`, and reported), a malformed message is logged and skipped, and
  events go straight to one callback as plain ``dict`` values (no fnmatch pattern scan, no
  case-insensitive dict per event: that is where the parse time went);
* every action is bounded by ``asyncio.wait_for`` and pending actions fail when the connection drops;
* the secret lives only in the ``Login`` action written to the socket, never in a config dict or a log.

Events carry AMI's own header names (``ContactStatus``, ``EndpointName``, ``Timestamp``...). Every event
gets a ``Timestamp`` (``epoch.usec``): Asterisk's (``timestampevents = yes``) when present, else the
receipt time.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from panoramisk import Manager
from panoramisk.actions import Action
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from pbx_sla.config import AsteriskServer
from pbx_sla.domain.text import TextDecoder
from pbx_sla.errors import PbxSlaError, RemoteError
from pbx_sla.input_warnings import warn_input
from pbx_sla.log import get_logger

log = get_logger(__name__)

EOM = "\r\n\r\n"
#: a peer that never ends a message must not grow our buffer without bound
MAX_MESSAGE = 1 << 20
#: what an AMI server says first, on a line of its own
GREETING = "Asterisk Call Manager/"

EventCallback = Callable[[dict[str, str]], None]
#: a raw ``UserEvent`` message (its lines joined by CRLF) → True when taken as it is, False to have it parsed
MessageCallback = Callable[[str], bool]


class AuthenticationError(RemoteError):
    """Asterisk refused our ``Login`` (wrong username or secret, or a host not permitted)."""


class ConnectionLost(PbxSlaError, ConnectionError):
    """The AMI connection closed while an action was waiting for its answer."""


#: events whose ``ChanVariable`` lines are split into ``ChanVariable(NAME)`` keys (block prefixes)
VARIABLE_EVENTS = ("Event: Hangup\r\n",)


def parse_message(block: str) -> dict[str, str]:
    """One AMI message (``Key: Value`` lines) → a dict; lines without ``": "`` are ignored.

    A repeated header keeps its first value. Channel variables (manager.conf ``channelvars``), which AMI
    sends as repeated ``ChanVariable: NAME=value`` lines (``DestChanVariable`` for a second channel),
    become one key each, ``ChanVariable(NAME)`` → value, in the events of :data:`VARIABLE_EVENTS` (the only
    ones whose variables pbx-sla reads). Other events go through the plain loop, lines and all, and lose the
    ``ChanVariable``/``DestChanVariable`` key their first such line left: with ``channelvars`` set every
    channel event carries these lines, so what they cost there is what QoS collection costs the whole
    ingest (bench/ami_ingest_qos.py; cutting them out with string searches first was measured slower).
    Raises nothing.
    """
    variables = "ChanVariable" in block
    if variables and block.startswith(VARIABLE_EVENTS):
        return _parse_with_variables(block)
    headers: dict[str, str] = {}
    for line in block.split("\r\n"):
        key, sep, value = line.partition(": ")
        if sep and key not in headers:
            headers[key] = value
    if variables:  # the lines went through the loop like any other (cheaper than cutting them out first)
        headers.pop("ChanVariable", None)
        headers.pop("DestChanVariable", None)
    return headers


def _parse_with_variables(block: str) -> dict[str, str]:
    """:func:`parse_message` of an event whose variables are read: ``ChanVariable: NAME=value`` (Asterisk 12+),
    ``ChanVariable(channel): NAME=value`` (1.8-11) and ``DestChanVariable`` become ``…(NAME)`` keys."""
    headers: dict[str, str] = {}
    for line in block.split("\r\n"):
        key, sep, value = line.partition(": ")
        if not sep:
            continue
        if "ChanVariable" in key:
            prefix, paren, _ = key.partition("(")
            if prefix in _VARIABLE_PREFIXES and (not paren or key[-1] == ")"):
                name, eq, value = value.partition("=")
                if eq:
                    key = f"{prefix}({name.strip()})"
                    if key not in headers:
                        headers[key] = value
                continue
        if key not in headers:
            headers[key] = value
    return headers


_VARIABLE_PREFIXES = ("ChanVariable", "DestChanVariable")


#: a header's value: ``.`` stops only at ``\n``, and every ``\n`` must be the end of a ``\r\n`` the pattern names,
#: so a value is exactly the rest of its line as :func:`parse_message` reads it (a lone ``\r`` included, a
#: lone ``\n`` fails the match); ``.*`` runs about twice as fast as ``[^\r\n]*`` in ``re``
_LINE = r".*"
#: ``UserEvent: PbxSlaQos`` (the dialplan's hangup handler, one per call leg: docs/qos.md) in Asterisk 22's exact
#: layout: manager.c's ``Event``/``Privilege``/``Timestamp`` (``SystemName`` when set), the channel snapshot
#: (``ast_manager_build_channel_state_string``: 15 lines, then any ``ChanVariable`` lines), the event's own
#: ``UserEvent``, ``Qos`` and ``Codec``. The named groups are the headers the QoS feature reads.
_QOS_USER_EVENT = re.compile(
    rf"Event: (?P<Event>UserEvent)\r\nPrivilege: {_LINE}\r\nTimestamp: (?P<Timestamp>{_LINE})\r\n"
    rf"(?:SystemName: {_LINE}\r\n)?Channel: (?P<Channel>{_LINE})\r\nChannelState: {_LINE}\r\n"
    rf"ChannelStateDesc: {_LINE}\r\nCallerIDNum: {_LINE}\r\nCallerIDName: {_LINE}\r\n"
    rf"ConnectedLineNum: {_LINE}\r\nConnectedLineName: {_LINE}\r\nLanguage: {_LINE}\r\n"
    rf"AccountCode: {_LINE}\r\nContext: {_LINE}\r\nExten: {_LINE}\r\nPriority: {_LINE}\r\n"
    rf"Uniqueid: (?P<Uniqueid>{_LINE})\r\nLinkedid: (?P<Linkedid>{_LINE})\r\n(?:ChanVariable: {_LINE}\r\n)*"
    rf"UserEvent: (?P<UserEvent>PbxSlaQos)\r\nQos: (?P<Qos>{_LINE})\r\nCodec: (?P<Codec>{_LINE})"
)
_QOS_PREFIX = "Event: UserEvent\r\n"
_QOS_MARK = "\r\nUserEvent: PbxSlaQos\r\n"


def read_message(block: str) -> dict[str, str]:
    """:func:`parse_message`, except for the one event that comes once per call leg with a 17-line channel
    snapshot nobody reads: a ``UserEvent: PbxSlaQos`` in Asterisk's exact layout (:data:`_QOS_USER_EVENT`)
    gives only the headers pbx-sla reads of it (``Event``, ``Timestamp``, ``Channel``, ``Uniqueid``,
    ``Linkedid``, ``UserEvent``, ``Qos``, ``Codec``), each exactly as :func:`parse_message` reads it, in one
    regex match instead of a dict of every line (about half the time; bench/ami_ingest_qos.py). Any other
    layout (another order, a header more or less, a handler with ``Jitter``/``Rtt`` headers, a line break
    inside a value) takes :func:`parse_message`: the fast path is only ever a subset of its dict
    (tests/unit/test_ami_read_message.py). Raises nothing."""
    if block.startswith(_QOS_PREFIX) and _QOS_MARK in block:
        found = _QOS_USER_EVENT.fullmatch(block)
        if found is not None:
            return found.groupdict()
    return parse_message(block)


class AmiProtocol(AMIProtocol):
    """panoramisk's protocol with a reader that never dies on bad input and a direct event path."""

    responses: dict[str, Any]  # panoramisk's pending actions by ActionID

    def __init__(
        self,
        server_name: str,
        on_event: EventCallback,
        on_lost: Callable[[BaseException | None], None],
        on_user_event: MessageCallback | None = None,
    ) -> None:
        super().__init__()
        self.server_name = server_name
        self.on_event = on_event
        self.on_lost = on_lost
        #: offered every ``Event: UserEvent`` message before it is parsed (the once-per-leg QoS event): when it
        #: returns True the message is taken; else it is parsed and goes to ``on_event`` as any other
        self.on_user_event = on_user_event

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._decoder = TextDecoder()
        self._buffer = ""
        #: inside an oversized message: everything up to the next message end is dropped
        self._discarding = False
        self.malformed = 0
        self.bad_bytes = 0
        self.oversized = 0
        #: the server's first line once it has sent it (see :meth:`AmiManager.open`)
        self.greeting: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def _warn(self, kind: str, event: str, **kw: Any) -> None:
        warn_input(log, f"ami.{kind}", event, server=self.server_name, **kw)

    def _greet(self, text: str) -> str:
        """Take the greeting line off the front of the stream (it ends in one CRLF, not two)."""
        line, sep, rest = text.partition("\r\n")
        if not sep:
            if len(text) > 200:  # no line end after 200 characters: not an AMI server
                self.greeting.set_result(text[:80])
            return text
        self.greeting.set_result(line)
        return rest if line.startswith(GREETING) else text

    def _skip_oversized(self, text: str) -> str:
        """Inside an oversized message: drop up to and including its end; what follows is a new message."""
        end = text.find(EOM)
        if end < 0:
            self._buffer = text[-(len(EOM) - 1) :]  # a terminator split across two reads is still found
            return ""
        self._discarding = False
        return text[end + len(EOM) :]

    def data_received(self, data: bytes) -> None:
        recoded = self._decoder.recoded
        text = self._decoder.decode(data)
        if self._decoder.recoded != recoded:
            self.bad_bytes += 1
            self._warn("not-utf8", "AMI sent bytes that are not UTF-8; read as CP1252", sample=text[:80])
        if self._buffer:
            text = self._buffer + text
            self._buffer = ""
        if not self.greeting.done():
            text = self._greet(text)
            if not self.greeting.done():
                self._buffer = text
                return
        if self._discarding:
            text = self._skip_oversized(text)
            if self._discarding:
                return
        blocks = text.split(EOM)
        self._buffer = blocks.pop()
        if len(self._buffer) > MAX_MESSAGE:
            # an unterminated message past the cap: the rest of it, up to its end, is not a new message
            self._oversized(len(self._buffer))
            self._discarding = True
            self._buffer = self._buffer[-(len(EOM) - 1) :]
        on_event, on_user_event = self.on_event, self.on_user_event
        for block in blocks:
            if len(block) > MAX_MESSAGE:
                self._oversized(len(block))
                continue
            try:
                # (the prefix test inline: one call fewer for every other event)
                if block.startswith(_QOS_PREFIX):
                    if on_user_event is not None and on_user_event(block):
                        continue
                    headers = read_message(block)
                else:
                    headers = parse_message(block)
                if "ActionID" in headers or "Response" in headers:
                    self._answer(headers, block)
                elif "Event" in headers:
                    on_event(headers)
                elif block.strip() and not block.lstrip().startswith(GREETING):
                    self.malformed += 1
                    self._warn("no-event", "AMI message without Event or Response skipped", sample=block[:120])
            except Exception:
                # a bug in our own callback must cost one message, never the connection
                self.malformed += 1
                warn_input(
                    log,
                    "ami.handler-error",
                    "AMI message could not be handled; skipped",
                    exception=True,
                    server=self.server_name,
                    sample=block[:120],
                )

    def _oversized(self, size: int) -> None:
        self.malformed += 1
        self.oversized += 1
        self._warn(
            "oversized",
            "AMI message longer than 1 MiB; discarded up to its end",
            size=size,
        )

    def send(self, data: Mapping[str, Any], as_list: bool | None = None) -> asyncio.Future[Any]:
        """Write one action; its future gets the response (or the list up to ``...Complete``).

        Unlike panoramisk's, this never logs the action: a ``Login`` carries the secret.
        """
        action = data if isinstance(data, Action) else Action(dict(data), as_list=as_list)
        future: asyncio.Future[Any] = action.future
        if self.closed:
            future.set_exception(ConnectionLost(f"AMI connection to {self.server_name} is down"))
            return future
        self.responses[action.id] = action
        self.transport.write(str(action).encode("utf-8"))
        return future

    def _answer(self, headers: dict[str, str], block: str) -> None:
        """Responses and list items go to the action waiting for them (panoramisk's bookkeeping)."""
        action_id = headers.get("ActionID")
        action = self.responses.get(action_id) if action_id else None
        if action is None:
            if "Event" in headers:  # an event that merely carries an ActionID
                self.on_event(headers)
            elif "Response" in headers:
                log.debug("AMI response to no pending action", server=self.server_name)
            return
        message = Message(headers)
        if action.add_message(message):
            self.responses.pop(action.id, None)
            if action.action_id:
                self.responses.pop(action.action_id, None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.greeting.done():
            self.greeting.set_exception(ConnectionLost("connection closed before the AMI greeting"))
            self.greeting.exception()  # retrieved: nobody may be waiting for it
        if self._buffer.strip():
            log.info("AMI connection closed inside a message; partial message discarded", server=self.server_name)
        pending: dict[str, Any] = self.responses
        self.responses = {}
        for action in pending.values():
            if not action.future.done():
                action.future.set_exception(ConnectionLost(f"AMI connection to {self.server_name} lost"))
        self.on_lost(exc)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()


class AmiManager(Manager):
    """A panoramisk ``Manager`` whose connection life cycle we drive (no reconnect, no pinger of its own)."""

    def __init__(
        self, server: AsteriskServer, on_event: EventCallback, on_user_event: MessageCallback | None = None
    ) -> None:
        super().__init__(
            host=server.host,
            port=server.port,
            ping_delay=0,
            reconnect_timeout=0,
            encoding="utf8",
            loop=asyncio.get_running_loop(),
        )
        self.server = server
        self.on_event = on_event
        self.on_user_event = on_user_event
        self.lost: asyncio.Future[BaseException | None] = self.loop.create_future()

    async def open(self) -> None:
        """Connect, wait for the greeting, log in; raises OSError/TimeoutError (network, no greeting, no
        answer; the message says which) or AuthenticationError (refused)."""
        server = self.server
        timeout = server.action_timeout
        try:
            _transport, protocol = await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: AmiProtocol(server.name, self.on_event, self._lost, self.on_user_event),
                    server.host,
                    server.port,
                ),
                timeout,
            )
        except TimeoutError:
            raise TimeoutError(f"no TCP connection within {timeout:g} s") from None
        assert isinstance(protocol, AmiProtocol)
        try:
            greeting = await asyncio.wait_for(asyncio.shield(protocol.greeting), timeout)
        except TimeoutError:
            protocol.transport.abort()
            raise TimeoutError(f"connected but no AMI greeting within {timeout:g} s") from None
        except ConnectionLost:
            raise ConnectionLost("connected, then closed by the server before any AMI greeting") from None
        if not greeting.startswith(GREETING):
            protocol.transport.abort()
            raise ConnectionLost(f"connected but the server is not AMI (it said {greeting[:60]!r})")
        protocol.factory = self
        protocol.encoding = self.encoding = "utf8"
        self.protocol = protocol
        self.responses = protocol.responses
        self._connected = True
        login = Action(
            {"Action": "Login", "Username": server.username, "Secret": server.secret.reveal(), "Events": "on"},
            as_list=False,
        )
        try:
            reply = await asyncio.wait_for(protocol.send(login), timeout)
        except TimeoutError:
            self.abort()
            raise TimeoutError(f"connected and greeted, but no answer to Login within {timeout:g} s") from None
        except BaseException:
            self.abort()
            raise
        if not reply.success:
            self.abort()
            raise AuthenticationError(
                f"AMI login to {server.name} ({server.host}:{server.port}) as {server.username!r} refused: "
                f"{reply.get('Message', 'no reason given')}"
            )
        self.authenticated = True

    def _lost(self, exc: BaseException | None) -> None:
        self._connected = False
        self.authenticated = False
        if not self.lost.done():
            self.lost.set_result(exc)

    # panoramisk's own machinery, switched off: the collector decides when to reconnect and ping
    def connection_lost(self, exc: BaseException | None) -> None:
        self._lost(exc)

    def ping(self) -> None:
        return None

    def dispatch(self, event: Mapping[str, str]) -> list[str]:
        self.on_event(dict(event))
        return []

    def abort(self) -> None:
        """Drop the TCP connection at once (half-open detection, shutdown)."""
        protocol = self.protocol
        if protocol is not None and not protocol.closed:
            protocol.transport.abort()

    def close(self) -> None:
        protocol = self.protocol
        if protocol is not None:
            protocol.close()


class AmiActions:
    """The small action facade features use (``on_login`` resync): bounded, errors as exceptions."""

    def __init__(self, manager: AmiManager, timeout: float) -> None:
        self._manager = manager
        self._timeout = timeout

    async def send(self, action: Mapping[str, str]) -> list[dict[str, str]]:
        """Send one action; return its response followed by the list items up to ``...Complete``.

        Raises :class:`RemoteError` on ``Response: Error``, ``TimeoutError`` after ``action_timeout``,
        :class:`ConnectionLost` when the connection drops meanwhile.
        """
        manager = self._manager
        protocol = manager.protocol
        if protocol is None or protocol.closed:
            raise ConnectionLost(f"AMI connection to {manager.server.name} is down")
        future = protocol.send(dict(action))
        try:
            reply = await asyncio.wait_for(future, self._timeout)
        except TimeoutError:
            raise TimeoutError(
                f"AMI action {action.get('Action')!r} on {manager.server.name}: no answer within {self._timeout:g} s"
            ) from None
        messages = reply if isinstance(reply, list) else [reply]
        first = messages[0]
        if first.get("Response", "").lower() in ("error", "fail", "failure"):
            raise RemoteError(
                f"AMI action {action.get('Action')!r} on {manager.server.name} failed: "
                f"{first.get('Message', 'no message')}"
            )
        return [dict(m) for m in messages]


def now_stamp() -> str:
    """Receipt time in AMI's ``Timestamp`` format (``epoch.usec``)."""
    return f"{time.time():.6f}"

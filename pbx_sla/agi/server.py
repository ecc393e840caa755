"""The FastAGI server of the support line: ``AGI(agi://HOST:4573/support,${EXTEN})``.

One asyncio task per Asterisk connection, over the sans-IO codec of :mod:`pbx_sla.agi.protocol`:

* deadlines are overall, never per read: the headers must be complete ``header_timeout`` seconds after
  the connection (5 s), each command's reply within its own deadline, and the whole session ends
  ``session_timeout`` seconds after the connection (60 s), whatever the peer dribbles in between
  (blank lines and ``HANGUP`` notices included); headers have a size limit too;
* at most ``max_sessions`` sessions at once (default: derived from the open-file limit, see
  :mod:`pbx_sla.fd_limit`); connections beyond it are closed at once and counted; accept backs off when
  descriptors run out (:mod:`pbx_sla.agi.listener`);
* only the addresses of the configured ``[[asterisk]]`` servers (their ``agi_peers``, else their
  ``host``) are served; other connections are closed at once and counted;
* the decision comes from the in-memory catalogue (``catalogue.current``) through
  :func:`pbx_sla.domain.routing.decide`: nothing here ever waits on PostgreSQL;
* an unknown caller who dialled a tenant's DID is asked for a PIN (``GET DATA``, up to 3 tries);
  scrypt runs in a worker thread so other calls keep their 300 ms;
* the variables are set, the call's ``linkedid`` is read, and one ``support_call`` record goes to
  ``submit`` (the durable writer, which spools while the database is away);
* a ``HANGUP`` at any point ends the session quietly; the record is still kept when the call reached
  the script (reason kept, action ``hangup`` if it hung up before a decision was set), also when the
  call ends during the PIN prompt (hang-up, timeout, garbage, a closed connection);
* an unknown script name is logged and the AGI session is closed (the call continues its dialplan).

Which Asterisk sent a call (``server`` of the record) comes from the peer address: the ``[[asterisk]]``
whose allow-list holds it. ``agi_arg_2`` only chooses among the servers sharing that address (it is never
trusted beyond them); ``unknown`` when it stays ambiguous. With no ``[[asterisk]]`` configured, only
loopback peers are served and ``agi_arg_2`` names the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import re
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pbx_sla import fd_limit
from pbx_sla.agi import protocol as p
from pbx_sla.agi.listener import Listener, RateLimitedLog
from pbx_sla.agi.pins import MAX_ATTEMPTS, PIN_MAX_DIGITS, PIN_PROMPT, PIN_TIMEOUT_MS, PinLimiter, match_pin
from pbx_sla.agi.record import record_data
from pbx_sla.config import AsteriskServer
from pbx_sla.domain import pin_limits as pl
from pbx_sla.domain.routing import VARIABLES, Decision, PinOutcome, decide
from pbx_sla.log import get_logger
from pbx_sla.pipeline import CatalogueSource, Record
from pbx_sla.web.metrics import AgiMetrics

log = get_logger(__name__)
_stdlog = logging.getLogger(__name__)

SCRIPT = "support"
HEADER_TIMEOUT = 5.0
COMMAND_TIMEOUT = 5.0
SESSION_TIMEOUT = 60.0
#: pending connections the kernel keeps (Asterisk opens one per call; bursts beyond the default 100
#: would see their SYN dropped and retried after 1 s)
BACKLOG = 1024


class SessionClosed(Exception):
    """Asterisk closed the connection (or broke the protocol): nothing more can be sent."""


class Session(asyncio.Protocol):
    """One FastAGI connection as a bare protocol (no streams: a call is ~11 round trips, so per-message
    overhead is what limits decisions/s). ``send`` writes one command and awaits its reply; ``HANGUP``
    notices are noted (:attr:`hung_up`), never taken for replies.

    Every wait has an absolute deadline: the header's, a command's, and the session's (``session_timeout``
    after the connection), whichever comes first. Nothing the peer sends moves a deadline."""

    def __init__(self, on_connect: Callable[[Session], Any], session_timeout: float = SESSION_TIMEOUT) -> None:
        self._on_connect = on_connect
        self.parser = p.FastAGIParser()
        self.hung_up = False
        self.closed = False
        self.error: str | None = None
        self.transport: asyncio.Transport | None = None
        self.peer: str | None = None
        self._events: deque[p.Event] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._loop = asyncio.get_running_loop()
        self.task: asyncio.Task[None] | None = None
        self.session_timeout = session_timeout
        self.deadline = self._loop.time() + session_timeout
        #: True once the session deadline cut a wait short
        self.expired = False

    # protocol callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peername = transport.get_extra_info("peername")
        self.peer = str(peername[0]) if isinstance(peername, tuple) and peername else None
        self.deadline = self._loop.time() + self.session_timeout
        self.task = self._loop.create_task(self._on_connect(self))

    def data_received(self, data: bytes) -> None:
        try:
            self._events.extend(self.parser.feed(data))
        except p.ProtocolError as exc:
            self.error = str(exc)
            self.closed = True
            assert self.transport is not None
            self.transport.abort()
        self._wake()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # the call's side
    async def _next(self, deadline: float) -> p.Event:
        """The next event, or TimeoutError at ``deadline`` (loop time) or the session deadline."""
        if deadline >= self.deadline:
            deadline = self.deadline
            session_bound = True
        else:
            session_bound = False
        while not self._events:
            if self.closed:
                raise SessionClosed(self.error or "connection closed")
            if self._loop.time() >= deadline:
                self.expired = self.expired or session_bound
                raise TimeoutError("session deadline reached" if session_bound else "")
            waiter = self._waiter = self._loop.create_future()
            timer = self._loop.call_at(deadline, _expire, waiter)
            try:
                await waiter
            except TimeoutError:
                self.expired = self.expired or session_bound
                raise TimeoutError("session deadline reached" if session_bound else "") from None
            finally:
                timer.cancel()
                self._waiter = None
        return self._events.popleft()

    async def headers(self, timeout: float = HEADER_TIMEOUT) -> p.Headers:  # noqa: ASYNC109
        deadline = self._loop.time() + timeout
        while True:
            event = await self._next(deadline)
            if isinstance(event, p.Headers):
                return event

    async def send(self, line: bytes, timeout: float = COMMAND_TIMEOUT) -> p.Reply:  # noqa: ASYNC109
        """Send one command and wait for its reply; a HANGUP seen on the way sets :attr:`hung_up`."""
        if self.closed or self.transport is None or self.transport.is_closing():
            raise SessionClosed(self.error or "connection closed")
        self.transport.write(line)
        deadline = self._loop.time() + timeout
        while True:
            event = await self._next(deadline)
            if isinstance(event, p.Hangup):
                self.hung_up = True
            elif isinstance(event, p.Reply):
                if event.code == 511:
                    self.hung_up = True
                return event

    def close(self) -> None:
        """Close; a session cut by a deadline is aborted (its peer may not be reading what we send)."""
        if self.transport is not None:
            if self.expired or self.error:
                self.transport.abort()
            else:
                self.transport.close()


_LINKEDID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def linkedid_arg(args: list[str]) -> str | None:
    """``agi_arg_3`` when the dialplan passes ``${CHANNEL(linkedid)}`` there (saves a round trip);
    None (then it is asked with ``GET FULL VARIABLE``) when absent or not a plausible linkedid."""
    value = args[2].strip() if len(args) >= 3 else ""
    return value if _LINKEDID.match(value) else None


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class Stopwatch:
    """Our own time on a call: paused while the caller keys a PIN."""

    def __init__(self) -> None:
        self.total = 0.0
        self._since: float | None = time.perf_counter()

    def pause(self) -> None:
        if self._since is not None:
            self.total += time.perf_counter() - self._since
            self._since = None

    def resume(self) -> None:
        if self._since is None:
            self._since = time.perf_counter()

    @property
    def ms(self) -> float:
        running = time.perf_counter() - self._since if self._since is not None else 0.0
        return round((self.total + running) * 1000, 3)


@dataclass
class _Call:
    headers: p.Headers
    server: str
    decision: Decision | None = None
    pin_attempts: int = 0
    linkedid: str | None = None
    decided_at: datetime | None = None
    variables_set: bool = False
    decide_ms: float | None = None
    #: wrong PINs keyed during this call (the record says ``pin-failed`` if it ends during the prompt)
    pin_wrong: int = 0

    @functools.cached_property
    def log(self) -> Any:
        """A logger naming the call (bound only when a call logs something: rare)."""
        return log.bind(uniqueid=p.sanitise(self.headers.get("uniqueid"), max_chars=64), server=self.server)


@functools.lru_cache(maxsize=4096)
def _commands(items: tuple[tuple[str, str], ...]) -> tuple[list[tuple[bytes, list[str]]], list[tuple[bytes, str]]]:
    """:func:`protocol.set_variables`, memoised: a catalogue yields few distinct decisions."""
    return p.set_variables(dict(items))


def _address(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The peer address, IPv4-mapped IPv6 (``::ffff:10.0.0.5``) as the IPv4 address it is."""
    try:
        address = ipaddress.ip_address((text or "").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class SupportAGIServer:
    """The FastAGI server; :meth:`serve` binds it, :meth:`handle` serves one connection."""

    def __init__(
        self,
        catalogue: CatalogueSource,
        submit: Callable[[Record], None],
        *,
        servers: Sequence[AsteriskServer] = (),
        limiter: PinLimiter | None = None,
        header_timeout: float = HEADER_TIMEOUT,
        command_timeout: float = COMMAND_TIMEOUT,
        session_timeout: float = SESSION_TIMEOUT,
        max_sessions: int | None = None,
        pin_timeout_ms: int = PIN_TIMEOUT_MS,
        pin_prompt: str = PIN_PROMPT,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        metrics: AgiMetrics | None = None,
    ) -> None:
        self.catalogue, self.submit = catalogue, submit
        self.metrics = metrics or AgiMetrics()
        self.servers = tuple(servers)
        self.limiter = limiter or PinLimiter()
        self.header_timeout, self.command_timeout = header_timeout, command_timeout
        self.session_timeout = session_timeout
        self.max_sessions = max_sessions if max_sessions is not None else fd_limit.auto_max_sessions()
        self.pin_timeout_ms, self.pin_prompt = pin_timeout_ms, pin_prompt
        self.clock = clock
        #: (network, server name) of every configured server's allow-list
        self._peers: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]] = []
        self._log = RateLimitedLog()
        self.sessions = 0
        self.decisions = 0
        self.active = 0
        self.rejected_over_cap = 0
        self.refused_peers = 0
        self.session_deadline = 0
        self.listener: Listener | None = None

    @property
    def stats(self) -> dict[str, int]:
        """Counters for ``status.json`` and the tests."""
        return {
            "sessions": self.sessions,
            "active": self.active,
            "max_sessions": self.max_sessions,
            "decisions": self.decisions,
            "rejected_over_cap": self.rejected_over_cap,
            "refused_peers": self.refused_peers,
            "session_deadline": self.session_deadline,
            "accept_resource_errors": self.listener.resource_errors if self.listener else 0,
        }

    async def serve(self, host: str, port: int) -> Listener:
        await self._resolve_servers()
        self.listener = await Listener.bind(host, port, BACKLOG, self._accept)
        log.info("FastAGI server listening", host=host, port=port, script=f"/{SCRIPT}", max_sessions=self.max_sessions)
        return self.listener

    async def _resolve_servers(self) -> None:
        loop = asyncio.get_running_loop()
        peers: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]] = []
        for s in self.servers:
            if s.agi_peers:
                peers.extend((ipaddress.ip_network(n, strict=False), s.name) for n in s.agi_peers)
                continue
            addresses = {s.host}
            with contextlib.suppress(OSError):
                async with asyncio.timeout(2):
                    infos = await loop.getaddrinfo(s.host, None, type=socket.SOCK_STREAM)
                addresses |= {str(info[4][0]) for info in infos}
            for text in sorted(addresses):
                address = _address(text)
                if address is not None:
                    peers.append((ipaddress.ip_network(address), s.name))
            if not any(name == s.name for _, name in peers):
                log.warning("[[asterisk]] host is not an address and does not resolve: its FastAGI calls will be "
                            "refused (set agi_peers)", server=s.name, host=s.host)  # fmt: skip
        self._peers = peers

    def peer_servers(self, peer: str | None) -> set[str] | None:
        """Names of the servers whose allow-list holds ``peer``; None when the peer is not allowed.
        With no ``[[asterisk]]`` configured, loopback peers are allowed (an empty set: no name known)."""
        address = _address(peer)
        if address is None:
            return None
        if not self.servers:
            return set() if address.is_loopback else None
        names = {name for network, name in self._peers if address in network}
        return names or None

    def server_name(self, peer: str | None, headers: p.Headers) -> str:
        explicit = p.sanitise(headers.get("arg_2"), max_chars=64).strip()
        names = self.peer_servers(peer) or set()
        if not self.servers:
            return explicit or "unknown"
        if explicit in names:
            return explicit
        if explicit and (folded := self._log.allow(f"arg2-{peer}")) is not None:
            log.warning("agi_arg_2 names a server this peer is not allowed for; using the allow-list's", peer=peer,
                        arg_2=explicit, allowed=sorted(names), similar_since_last_line=folded)  # fmt: skip
        return next(iter(names)) if len(names) == 1 else "unknown"

    def _accept(self, conn: socket.socket, address: Any) -> None:
        """A new connection (from :class:`Listener`): closed at once over the cap or from an unknown peer."""
        peer = str(address[0]) if isinstance(address, tuple) and address else None
        if self.active >= self.max_sessions:
            self.rejected_over_cap += 1
            conn.close()
            if (folded := self._log.allow("cap")) is not None:
                log.warning("FastAGI session cap reached; connection closed ([agi] max_sessions)", peer=peer,
                            max_sessions=self.max_sessions, similar_since_last_line=folded,
                            total=self.rejected_over_cap)  # fmt: skip
            return
        if self.peer_servers(peer) is None:
            self.refused_peers += 1
            conn.close()
            if (folded := self._log.allow(f"peer-{peer}")) is not None:
                log.warning("FastAGI connection from an address no [[asterisk]] allows; closed (agi_peers)",
                            peer=peer, similar_since_last_line=folded, total=self.refused_peers)  # fmt: skip
            return
        self.active += 1
        asyncio.get_running_loop().create_task(self._connect(conn))

    async def _connect(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(lambda: Session(self.handle, self.session_timeout), conn)
        except Exception:
            self.active -= 1
            conn.close()

    async def handle(self, session: Session) -> None:
        """Serve one connection (the task :class:`Session` starts when Asterisk connects)."""
        self.sessions += 1
        peer = session.peer
        in_flight = self.metrics.in_flight
        in_flight.inc()
        try:
            try:
                headers = await session.headers(self.header_timeout)
            except (SessionClosed, TimeoutError) as exc:
                if (folded := self._log.allow("early")) is not None:
                    log.info("FastAGI client left before its headers", peer=peer,
                             error=str(exc) or type(exc).__name__, similar_since_last_line=folded)  # fmt: skip
                session.expired = session.expired or isinstance(exc, TimeoutError)
                return
            script = headers.get("network_script").split("?", 1)[0].strip("/")
            if script != SCRIPT:
                log.error("unknown FastAGI script; closing the AGI session", script=p.sanitise(script, max_chars=80),
                          peer=peer, uniqueid=headers.get("uniqueid"))  # fmt: skip
                return
            call = _Call(headers, self.server_name(peer, headers))
            await self._support(session, call)
        except Exception:
            log.exception("FastAGI session failed", peer=peer)
        finally:
            self.active -= 1
            if session.expired:
                self.session_deadline += 1
            in_flight.dec()
            session.close()

    # --- the support script ----------------------------------------------------------------------

    async def _support(self, session: Session, call: _Call) -> None:
        watch = Stopwatch()
        h = call.headers
        caller = h.get("callerid")
        args = h.args
        dialled = args[0] if args and args[0] else h.get("extension") or h.get("dnid")
        call.linkedid = linkedid_arg(args)
        try:
            t = time.perf_counter()
            decision = decide(caller, dialled, self.clock(), self.catalogue.current)
            call.decide_ms = (time.perf_counter() - t) * 1000
            if decision.pin_needed:
                call.decision = decision  # the call is recorded even if it ends during the prompt
                watch.pause()
                outcome = await self._pin(session, call, decision)
                watch.resume()
                if outcome is None:  # hung up during the prompt
                    return
                t = time.perf_counter()
                decision = decide(caller, dialled, self.clock(), self.catalogue.current, outcome)
                call.decide_ms += (time.perf_counter() - t) * 1000
            call.decision, call.decided_at = decision, self.clock()
            self.decisions += 1
            call.variables_set = await self._set_variables(session, call, decision.variables())
            if call.linkedid is None and not session.hung_up:
                reply = await session.send(p.get_full_variable("${CHANNEL(linkedid)}"), self.command_timeout)
                if reply.ok and reply.result == 1 and reply.data:
                    call.linkedid = p.sanitise(reply.data, max_chars=64)
        except (SessionClosed, TimeoutError) as exc:
            call.log.info("support call ended during the AGI session", error=str(exc) or type(exc).__name__)
        finally:
            if call.decision is not None and call.decision.pin_needed:  # ended during the PIN prompt
                outcome = PinOutcome("failed" if call.pin_wrong else "none")
                call.decision = decide(caller, dialled, self.clock(), self.catalogue.current, outcome)
            self._record(call, watch.ms)

    async def _set_variables(self, session: Session, call: _Call, variables: dict[str, str]) -> bool:
        """All variables in as few commands as possible: one ``EXEC MSet`` for the safe tokens (all of
        them, with a valid catalogue), ``SET VARIABLE`` for anything else, or for everything if this
        session refuses ``MSet``. The refusal holds for this session only: one odd channel (or peer) must
        not cost every later call eight more round trips. True when every variable was acknowledged."""
        batches, singles = _commands(tuple(variables.items()))
        singles = list(singles)
        mset = True
        for line, names in batches:
            if not mset:
                singles.extend((p.set_variable(n, variables[n]), n) for n in names)
                continue
            reply = await session.send(line, self.command_timeout)
            if session.hung_up:
                return False
            if not reply.ok or reply.result is None or reply.result < 0:
                if not reply.ok or reply.result == -2:
                    mset = False
                    if (folded := self._log.allow("mset")) is not None:
                        call.log.warning(
                            "Asterisk refused EXEC MSet; this call's variables are set one by one",
                            reply=p.sanitise(reply.text, max_chars=120),
                            similar_since_last_line=folded,
                        )
                singles.extend((p.set_variable(n, variables[n]), n) for n in names)
        for line, _name in singles:
            reply = await session.send(line, self.command_timeout)
            if session.hung_up or not reply.ok:
                return False
        return True

    async def _pin(self, session: Session, call: _Call, decision: Decision) -> PinOutcome | None:
        """Up to :data:`MAX_ATTEMPTS` prompts; each PIN keyed is reserved in the guess limits *before* it is
        checked (one synchronous step: concurrent calls cannot all pass a check and then guess)."""
        caller, tenant = decision.caller, decision.tenant or None
        blocked = self.limiter.blocked(caller, tenant)
        if blocked is not None:
            call.log.warning("PIN prompt skipped: too many wrong PINs", bucket=blocked)
            return PinOutcome("locked")
        wrong = 0
        for _ in range(MAX_ATTEMPTS):
            call.pin_attempts += 1
            reply = await session.send(
                p.get_data(self.pin_prompt, self.pin_timeout_ms, PIN_MAX_DIGITS),
                self.pin_timeout_ms / 1000 + self.command_timeout,
            )
            if session.hung_up or (reply.ok and reply.value.startswith("-")):
                return None
            digits, _timed_out = p.digits_of(reply)
            if not digits:
                continue
            blocked, stamp, filled = self.limiter.reserve(caller, tenant)
            for bucket in filled:
                log.warning("PIN lockout begins: wrong-PIN limit reached", bucket=bucket,
                            window_seconds=self.limiter.limits.window)  # fmt: skip
            if blocked is not None:
                call.log.warning("PIN not checked: too many wrong PINs", bucket=blocked)
                return PinOutcome("failed" if wrong else "locked")
            name = await asyncio.to_thread(match_pin, digits, decision.pin_candidates)
            if name is not None:
                self.limiter.release(caller, tenant, stamp)
                call.log.info("PIN accepted", caller=caller, requester=name, attempts=call.pin_attempts)
                return PinOutcome("ok", name)
            wrong += 1
            call.pin_wrong += 1
            call.log.warning("wrong PIN", caller=caller or pl.ANONYMOUS, attempt=call.pin_attempts,
                             failures_in_window=self.limiter.failures(pl.caller_bucket(caller)))  # fmt: skip
            if self.limiter.blocked(caller, tenant) is not None:
                self.metrics.pin_lockouts.inc()
                break
        return PinOutcome("failed") if wrong else PinOutcome("none")

    def _record(self, call: _Call, latency_ms: float) -> None:
        h, d = call.headers, call.decision
        if d is None:
            return  # nothing decided (catalogue code failed): logged above
        data: dict[str, Any] = record_data(
            d,
            uniqueid=h.get("uniqueid"),
            linkedid=call.linkedid,
            server=call.server,
            caller_id=h.get("callerid"),
            caller_name=h.get("calleridname"),
            channel=h.get("channel"),
            decided_at=call.decided_at or self.clock(),
            latency_ms=latency_ms,
            pin_attempts=call.pin_attempts,
            via="fastagi",
        )
        if not call.variables_set:
            data["action"] = "hangup"
        if call.decide_ms is not None:
            data["decide_ms"] = round(call.decide_ms, 3)  # not stored: for the benchmark and debugging
        self.submit(Record("support_call", data))
        self.metrics.decided(data["action"], data["reason"], latency_ms)
        if _stdlog.isEnabledFor(logging.DEBUG):  # structlog would run its processors even when filtered
            call.log.debug("support call routed", action=data["action"], reason=data["reason"], tenant=data["tenant"],
                           latency_ms=latency_ms)  # fmt: skip


__all__ = ["VARIABLES", "SupportAGIServer"]

"""The FastAGI server of the support line: ``AGI(agi://HOST:4573/support,${EXTEN})``.

One asyncio task per Asterisk connection, over the sans-IO codec of :mod:`pbx_sla.agi.protocol`:

* headers are read with a deadline and a size limit; a client that goes away or stalls mid-headers
  costs one closed socket, never a spinning loop;
* the decision comes from the in-memory catalogue (``catalogue.current``) through
  :func:`pbx_sla.domain.routing.decide`: nothing here ever waits on PostgreSQL;
* an unknown caller who dialled a tenant's DID is asked for a PIN (``GET DATA``, up to 3 tries);
  scrypt runs in a worker thread so other calls keep their 300 ms;
* the variables are set, the call's ``linkedid`` is read, and one ``support_call`` record goes to
  ``submit`` (the durable writer, which spools while the database is away);
* a ``HANGUP`` at any point ends the session quietly; the record is still kept when the call reached
  the script (reason kept, action ``hangup`` if it hung up before a decision was set);
* an unknown script name is logged and the AGI session is closed (the call continues its dialplan).

Which Asterisk sent a call (``server`` of the record): ``agi_arg_2`` when the dialplan passes it,
else the ``[[asterisk]]`` whose host is the peer address, else the only configured one, else
``unknown``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pbx_sla.agi import protocol as p
from pbx_sla.agi.pins import MAX_ATTEMPTS, PIN_MAX_DIGITS, PIN_PROMPT, PIN_TIMEOUT_MS, PinLimiter, match_pin
from pbx_sla.agi.record import record_data
from pbx_sla.config import AsteriskServer
from pbx_sla.domain.routing import VARIABLES, Decision, PinOutcome, decide
from pbx_sla.log import get_logger
from pbx_sla.pipeline import CatalogueSource, Record

log = get_logger(__name__)
_stdlog = logging.getLogger(__name__)

SCRIPT = "support"
HEADER_TIMEOUT = 5.0
COMMAND_TIMEOUT = 5.0
#: pending connections the kernel keeps (Asterisk opens one per call; bursts beyond the default 100
#: would see their SYN dropped and retried after 1 s)
BACKLOG = 1024


class SessionClosed(Exception):
    """Asterisk closed the connection (or broke the protocol): nothing more can be sent."""


class Session(asyncio.Protocol):
    """One FastAGI connection as a bare protocol (no streams: a call is ~11 round trips, so per-message
    overhead is what limits decisions/s). ``send`` writes one command and awaits its reply; ``HANGUP``
    notices are noted (:attr:`hung_up`), never taken for replies."""

    def __init__(self, on_connect: Callable[[Session], Any]) -> None:
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

    # protocol callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peername = transport.get_extra_info("peername")
        self.peer = str(peername[0]) if isinstance(peername, tuple) and peername else None
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
    async def _next(self, timeout: float) -> p.Event:  # noqa: ASYNC109
        while not self._events:
            if self.closed:
                raise SessionClosed(self.error or "connection closed")
            waiter = self._waiter = self._loop.create_future()
            timer = self._loop.call_later(timeout, _expire, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        return self._events.popleft()

    async def headers(self, timeout: float = HEADER_TIMEOUT) -> p.Headers:  # noqa: ASYNC109
        deadline = self._loop.time() + timeout
        while True:
            event = await self._next(max(0.0, deadline - self._loop.time()))
            if isinstance(event, p.Headers):
                return event

    async def send(self, line: bytes, timeout: float = COMMAND_TIMEOUT) -> p.Reply:  # noqa: ASYNC109
        """Send one command and wait for its reply; a HANGUP seen on the way sets :attr:`hung_up`."""
        if self.closed or self.transport is None or self.transport.is_closing():
            raise SessionClosed(self.error or "connection closed")
        self.transport.write(line)
        while True:
            event = await self._next(timeout)
            if isinstance(event, p.Hangup):
                self.hung_up = True
            elif isinstance(event, p.Reply):
                if event.code == 511:
                    self.hung_up = True
                return event

    def close(self) -> None:
        if self.transport is not None:
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

    @functools.cached_property
    def log(self) -> Any:
        """A logger naming the call (bound only when a call logs something: rare)."""
        return log.bind(uniqueid=p.sanitise(self.headers.get("uniqueid"), max_chars=64), server=self.server)


@functools.lru_cache(maxsize=4096)
def _commands(items: tuple[tuple[str, str], ...]) -> tuple[list[tuple[bytes, list[str]]], list[tuple[bytes, str]]]:
    """:func:`protocol.set_variables`, memoised: a catalogue yields few distinct decisions."""
    return p.set_variables(dict(items))


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
        pin_timeout_ms: int = PIN_TIMEOUT_MS,
        pin_prompt: str = PIN_PROMPT,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.catalogue, self.submit = catalogue, submit
        self.servers = tuple(servers)
        self.limiter = limiter or PinLimiter()
        self.header_timeout, self.command_timeout = header_timeout, command_timeout
        self.pin_timeout_ms, self.pin_prompt = pin_timeout_ms, pin_prompt
        self.clock = clock
        self._by_address: dict[str, set[str]] = {}
        self.sessions = 0
        self.decisions = 0
        #: False once an Asterisk answered ``EXEC MSet`` with "no such application" (then SET VARIABLE)
        self._mset = True

    async def serve(self, host: str, port: int) -> asyncio.Server:
        await self._resolve_servers()
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: Session(self.handle), host, port, reuse_address=True, backlog=BACKLOG)
        log.info("FastAGI server listening", host=host, port=port, script=f"/{SCRIPT}")
        return server

    async def _resolve_servers(self) -> None:
        loop = asyncio.get_running_loop()
        for s in self.servers:
            addresses = {s.host}
            with contextlib.suppress(OSError):
                async with asyncio.timeout(2):
                    infos = await loop.getaddrinfo(s.host, None, type=socket.SOCK_STREAM)
                addresses |= {str(info[4][0]) for info in infos}
            for address in addresses:
                self._by_address.setdefault(address, set()).add(s.name)

    def server_name(self, peer: str | None, headers: p.Headers) -> str:
        explicit = p.sanitise(headers.get("arg_2"), max_chars=64).strip()
        if explicit:
            return explicit
        names = self._by_address.get(peer or "", set())
        if not names and peer and peer.startswith("::ffff:"):
            names = self._by_address.get(peer[7:], set())
        if len(names) == 1:
            return next(iter(names))
        if len(self.servers) == 1:
            return self.servers[0].name
        return "unknown"

    async def handle(self, session: Session) -> None:
        """Serve one connection (the task :class:`Session` starts when Asterisk connects)."""
        self.sessions += 1
        peer = session.peer
        try:
            try:
                headers = await session.headers(self.header_timeout)
            except (SessionClosed, TimeoutError) as exc:
                log.info("FastAGI client left before its headers", peer=peer, error=str(exc) or type(exc).__name__)
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
                watch.pause()
                outcome = await self._pin(session, call, decision)
                watch.resume()
                if outcome is None:  # hung up during the prompt
                    call.decision = decision
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
            self._record(call, watch.ms)

    async def _set_variables(self, session: Session, call: _Call, variables: dict[str, str]) -> bool:
        """All variables in as few commands as possible: one ``EXEC MSet`` for the safe tokens (all of
        them, with a valid catalogue), ``SET VARIABLE`` for anything else, or for everything if this
        Asterisk has no ``MSet``. True when every variable was acknowledged."""
        batches, singles = _commands(tuple(variables.items()))
        singles = list(singles)
        for line, names in batches:
            if not self._mset:
                singles.extend((p.set_variable(n, variables[n]), n) for n in names)
                continue
            reply = await session.send(line, self.command_timeout)
            if session.hung_up:
                return False
            if not reply.ok or reply.result is None or reply.result < 0:
                if not reply.ok or reply.result == -2:
                    self._mset = False
                    call.log.warning("Asterisk refused EXEC MSet; setting variables one by one from now on",
                                reply=p.sanitise(reply.text, max_chars=120))  # fmt: skip
                singles.extend((p.set_variable(n, variables[n]), n) for n in names)
        for line, _name in singles:
            reply = await session.send(line, self.command_timeout)
            if session.hung_up or not reply.ok:
                return False
        return True

    async def _pin(self, session: Session, call: _Call, decision: Decision) -> PinOutcome | None:
        key = decision.caller or p.sanitise(call.headers.get("callerid"), max_chars=64) or "anonymous"
        if self.limiter.locked(key):
            call.log.warning("PIN prompt skipped: too many wrong PINs", caller=key)
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
            name = await asyncio.to_thread(match_pin, digits, decision.pin_candidates)
            if name is not None:
                self.limiter.succeed(key)
                call.log.info("PIN accepted", caller=key, requester=name, attempts=call.pin_attempts)
                return PinOutcome("ok", name)
            wrong += 1
            failures = self.limiter.fail(key)
            call.log.warning("wrong PIN", caller=key, attempt=call.pin_attempts, failures_in_window=failures)
            if self.limiter.locked(key):
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
        if _stdlog.isEnabledFor(logging.DEBUG):  # structlog would run its processors even when filtered
            call.log.debug("support call routed", action=data["action"], reason=data["reason"], tenant=data["tenant"],
                           latency_ms=latency_ms)  # fmt: skip


__all__ = ["VARIABLES", "SupportAGIServer"]
